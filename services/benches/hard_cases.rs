//! The job on the hard cases our clean scans do not have, each document deposited alone on the
//! portal for a known request, as real people send them: phone photos (JPEG, WebP, HEIC, some
//! sideways, some taken too close, a corner out of the picture), sideways scans, born-digital
//! PDFs (and one hiding words in white), cards and passports photographed alone
//! (machine-readable zones), someone else's card (refused, on proof), documents that name other
//! people by nature, tax notices with a signed 2D-Doc (and forged ones). Then the zero-touch
//! share and speed of generated counter mailings.
//!
//!   cargo bench -p scanbureau --bench hard_cases
//!
//! HARD_N (default 6) documents of each kind, HARD_MAILINGS (default 4) counter mailings.
//! BENCH_VERBOSE=1 lists every miss with its evidence; HARD_KEEP=folder writes each missed
//! case's file there, to read it with `scanbureau inspect`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use scanbureau::process::{MailingJob, execute};
use scanbureau_fixtures::catalogue::{self, Cast, PlanDoc, Split, Subject};
use scanbureau_fixtures::hard::{Forgery, Framing, avis_with_2ddoc, born_digital, crop_mm, phone_photo, photograph, test_trust_list};
use scanbureau_fixtures::mailing::{MailingKind, Scanning, generate, random_spec};
use scanbureau_fixtures::page::{ScanDefects, scan};
use scanbureau_fixtures::people::{Person, guichet, person, registry_json};
use scanbureau_fixtures::write::{heic_bytes, jpeg_bytes, webp_bytes, write_jpeg_folder};
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::config::SiteConfig;
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::reason::ReasonCode;
use scanbureau_pipeline::registry::Registry;
use scanbureau_pipeline::report::{PieceStatus, Report};

mod common;
use common::{JobKit, env_usize};

/// What must become of a case.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    /// Filed under this category and type, no review.
    Filed(&'static str, &'static str),
    /// Proposed as this type, waiting for an operator (a forged 2D-Doc).
    Review(&'static str),
    /// Refused with this reason.
    Refused(ReasonCode),
}

struct Case {
    kind: &'static str,
    file: (String, Vec<u8>),
    person: Person,
    want: Want,
}

fn doc_of(code: &str, subject: Subject, rng: &mut SmallRng) -> PlanDoc {
    PlanDoc::of_type(code, subject, rng).expect("type in the catalogue")
}

fn want_of(doc: &PlanDoc) -> Want {
    match (doc.expected_rejection(), doc.plan_code()) {
        (Some(r), _) => Want::Refused(ReasonCode::from_code(r).expect("reason")),
        (None, Some((c, t))) => Want::Filed(c, t),
        (None, None) => Want::Refused(ReasonCode::HorsPerimetreReglementaire),
    }
}

/// A document of the plan (no card), drawn at 300 dpi.
fn any_document(p: &Person, rng: &mut SmallRng) -> (PlanDoc, scanbureau_fixtures::page::Scan) {
    loop {
        let doc = catalogue::random_doc(p, Split::Tune, false, rng);
        if doc.entry().layout == catalogue::Layout::Card || doc.pages > 1 {
            continue;
        }
        let cast = Cast::new(&doc, p, rng);
        return (doc, catalogue::draw(&doc, 0, &cast, 300.0, rng.random_range(232..250), rng));
    }
}

fn cases(n: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut rng = SmallRng::seed_from_u64(7000 + i as u64);
        let g = guichet(&mut rng);
        let mut seed = 100 * i as u64;
        let mut p = || {
            seed += 1;
            person(&mut SmallRng::seed_from_u64(seed), &g.departement, &g.numero)
        };
        let mut rng2 = SmallRng::seed_from_u64(9000 + i as u64);
        let rng = &mut rng2;
        // Phone photos, in the formats phones write.
        for (kind, format) in [("phone photo JPEG", 0), ("phone photo WebP", 1), ("phone photo HEIC", 2), ("phone photo sideways", 3)] {
            let who = p();
            let (doc, page) = any_document(&who, rng);
            let photo = phone_photo(&page, 2400, 10.0, format == 3, rng);
            let file = match format {
                1 => ("photo.webp".to_string(), webp_bytes(&photo)),
                2 => ("IMG_0001.HEIC".to_string(), heic_bytes(&photo, 70).expect("HEIC")),
                _ => ("IMG_0001.jpg".to_string(), jpeg_bytes(&photo, 85)),
            };
            out.push(Case { kind, file, want: want_of(&doc), person: who });
        }
        // A sheet fed sideways into the scanner.
        let who = p();
        let (doc, page) = any_document(&who, rng);
        let sideways = scan(page, &ScanDefects { quarter: if i % 2 == 0 { 90 } else { 270 }, noise: 5.0, skew_deg: 0.7, ..ScanDefects::default() }, 240, rng);
        out.push(Case { kind: "scan sideways", file: ("scan.jpg".into(), jpeg_bytes(&sideways, 80)), want: want_of(&doc), person: who });
        // Born-digital, and with words hidden in white.
        for (kind, decoy) in
            [("born-digital PDF", None), ("born-digital, hidden words", Some("AVIS D'IMPOT SUR LE REVENU REVENU FISCAL DE REFERENCE ORDONNANCE DE PROTECTION"))]
        {
            let who = p();
            let doc = loop {
                let d = catalogue::random_doc(&who, Split::Tune, false, rng);
                if d.entry().layout != catalogue::Layout::Card && !matches!(d.entry().type_code.as_str(), "AVIS_IMPOSITION" | "ORDONNANCE_PROTECTION") {
                    break d;
                }
            };
            let cast = Cast::new(&doc, &who, rng);
            let lines = catalogue::text_lines(&doc, &cast, rng);
            out.push(Case { kind, file: ("document.pdf".into(), born_digital(lines, decoy)), want: want_of(&doc), person: who });
        }
        // Cards and passports photographed alone: the passport's data page, a card's back.
        let who = p();
        let (code, subject) =
            [("PASSEPORT", Subject::Demandeur), ("CNI", Subject::Demandeur), ("TITRE_SEJOUR", Subject::Demandeur), ("CNI", Subject::Conjoint)][i % 4];
        let subject = if subject == Subject::Conjoint && who.conjoint.is_none() { Subject::Demandeur } else { subject };
        let doc = doc_of(code, subject, rng);
        let cast = Cast::new(&doc, &who, rng);
        let sheet = if doc.card_two_sheets { 1 } else { 0 };
        let page = catalogue::draw(&doc, sheet, &cast, 300.0, 245, rng);
        let card = crop_mm(&page, 300.0, catalogue::card_rect(&doc, code != "PASSEPORT"));
        let photo = phone_photo(&card, 1600, 8.0, false, rng);
        out.push(Case { kind: "card alone, photographed", file: ("card.jpg".into(), jpeg_bytes(&photo, 85)), want: want_of(&doc), person: who });
        // Someone else's card photocopied: refused, on the proof of its zone.
        let who = p();
        let doc = doc_of(["CNI", "PASSEPORT", "TITRE_SEJOUR"][i % 3], Subject::Etranger, rng);
        let cast = Cast::new(&doc, &who, rng);
        let pages: Vec<_> = (0..doc.sheet_count()).map(|s| catalogue::draw(&doc, s, &cast, 300.0, 245, rng)).collect();
        let pdf = scanbureau_fixtures::write::pdf_bytes(&pages, 80, false);
        out.push(Case { kind: "someone else's card", file: ("carte.pdf".into(), pdf), want: want_of(&doc), person: who });
        // Documents that name other people by nature.
        let who = p();
        let code = ["LIVRET_FAMILLE", "ACTE_NAISSANCE", "ACTE_MARIAGE", "ACTE_DECES"][i % 4];
        let doc = doc_of(code, Subject::Demandeur, rng);
        let cast = Cast::new(&doc, &who, rng);
        let pages: Vec<_> = (0..doc.sheet_count()).map(|s| catalogue::draw(&doc, s, &cast, 300.0, 245, rng)).collect();
        out.push(Case {
            kind: "names other people",
            file: ("acte.pdf".into(), scanbureau_fixtures::write::pdf_bytes(&pages, 80, false)),
            want: want_of(&doc),
            person: who,
        });
        // Tax notices with a 2D-Doc: genuine, its code altered, its print altered.
        for (kind, forgery) in
            [("2D-Doc signed", Forgery::None), ("2D-Doc, code altered", Forgery::AlteredCode), ("2D-Doc, print altered", Forgery::AlteredPrint)]
        {
            let who = p();
            let page = avis_with_2ddoc(&who.as_member(), 300.0, forgery, rng);
            let want = if forgery == Forgery::None { Want::Filed("RFR", "AVIS_IMPOSITION") } else { Want::Review("AVIS_IMPOSITION") };
            out.push(Case { kind, file: ("avis.jpg".into(), jpeg_bytes(&page, 80)), want, person: who });
        }
        // A sheet photographed too close: its bottom-right corner out of the picture.
        let who = p();
        let (doc, page) = any_document(&who, rng);
        let photo = photograph(&page, 2400, 6.0, false, Framing::TooClose, rng);
        out.push(Case { kind: "phone photo, too close", file: ("IMG_0002.jpg".into(), jpeg_bytes(&photo, 85)), want: want_of(&doc), person: who });
    }
    out
}

struct Outcome {
    category: bool,
    type_right: bool,
    review: bool,
    refused_wrongly: bool,
    segment: bool,
    pages: usize,
    millis: f64,
    evidence: Vec<String>,
    got: String,
}

fn judge(want: Want, report: &Report, millis: f64) -> Outcome {
    let pieces: Vec<_> = report.requests.iter().flat_map(|r| &r.pieces).collect();
    let p = pieces.first();
    let got = p
        .map(|p| {
            format!(
                "{}/{} {:?} {} {:.2}",
                p.categorie.as_deref().unwrap_or("-"),
                p.type_code.as_deref().unwrap_or("-"),
                p.status,
                p.reason.map(|r| r.code()).unwrap_or(""),
                p.confidence
            )
        })
        .unwrap_or_else(|| "no piece".into());
    let review = p.is_some_and(|p| p.status == PieceStatus::Review);
    let refused = p.and_then(|p| p.reason);
    let (category, type_right) = match (want, p) {
        (_, None) => (false, false),
        (Want::Filed(c, t), Some(p)) => (
            p.categorie.as_deref() == Some(c) && refused.is_none(),
            p.categorie.as_deref() == Some(c) && p.type_code.as_deref() == Some(t) && refused.is_none(),
        ),
        (Want::Review(t), Some(p)) => (refused.is_none(), p.type_code.as_deref() == Some(t) && refused.is_none()),
        (Want::Refused(r), Some(_)) => (refused == Some(r), refused == Some(r)),
    };
    let refused_wrongly = refused.is_some() && !matches!(want, Want::Refused(r) if Some(r) == refused);
    Outcome {
        category,
        type_right,
        review,
        refused_wrongly,
        segment: pieces.len() == 1,
        pages: report.pages.len(),
        millis,
        evidence: p.map(|p| p.evidence.clone()).unwrap_or_default(),
        got,
    }
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 { f64::NAN } else { 100.0 * n as f64 / d as f64 }
}

fn main() {
    // Tesseract's OpenMP threads on top of the job's own would cost several times the CPU.
    if let Err(e) = scanbureau_classifier::ocr::ensure_single_thread_ocr() {
        eprintln!("could not restart with OMP_THREAD_LIMIT=1: {e}");
    }
    let n = env_usize("HARD_N", 6);
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    let keep = std::env::var_os("HARD_KEEP").map(PathBuf::from);
    if let Some(k) = &keep {
        std::fs::create_dir_all(k).expect("HARD_KEEP folder");
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let trust = tmp.path().join("trust.txt");
    std::fs::write(&trust, test_trust_list()).expect("trust list");
    let mut site = SiteConfig::embedded_default();
    site.qualify.twoddoc_trust = Some(trust.display().to_string());
    let kit = JobKit::new(site);
    let JobKit { site, plan, classifier, pool, received_at } = &kit;
    let received_at = *received_at;
    let started = Instant::now();
    let cases = cases(n);
    println!("== hard cases: {} documents ({n} of each kind), generated in {:.1} s", cases.len(), started.elapsed().as_secs_f64());
    let mut results: Vec<(&'static str, Want, Outcome)> = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case-{k}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(&case.file.0);
        std::fs::write(&path, &case.file.1).expect("write");
        let g = guichet(&mut SmallRng::seed_from_u64(k as u64));
        let registry = Registry::from_json(&registry_json(std::slice::from_ref(&case.person), &[g])).expect("registry");
        let files = vec![(0usize, path)];
        let job = MailingJob {
            files: &files,
            channel: Channel::Portal,
            received_at,
            numero: Some(NumeroUnique::parse(&case.person.numero_unique).expect("numero")),
            notify: Some("agent@guichet.example".into()),
            site,
            registry: &registry,
            plan,
        };
        let t0 = Instant::now();
        let out = execute(&job, classifier, pool, &|_| {}, &|| {}).expect("job");
        let o = judge(case.want, &out.report, t0.elapsed().as_secs_f64() * 1000.0);
        let missed = !(o.type_right && o.segment && (o.review == matches!(case.want, Want::Review(_))));
        if missed && let Some(folder) = &keep {
            std::fs::write(folder.join(format!("{k:03}-{}", case.file.0)), &case.file.1).expect("keep the case");
        }
        if verbose && missed {
            println!(
                "  miss [{}] {}: got {}",
                case.kind,
                match case.want {
                    Want::Filed(c, t) => format!("{c}/{t}"),
                    Want::Review(t) => format!("review {t}"),
                    Want::Refused(r) => r.code().to_string(),
                },
                o.got
            );
            for e in &o.evidence {
                println!("      {e}");
            }
        }
        results.push((case.kind, case.want, o));
    }
    let kinds: Vec<&str> = results.iter().map(|r| r.0).fold(Vec::new(), |mut v, k| {
        if !v.contains(&k) {
            v.push(k);
        }
        v
    });
    for kind in &kinds {
        let rs: Vec<&(&str, Want, Outcome)> = results.iter().filter(|r| r.0 == *kind).collect();
        let expected_review = rs.iter().filter(|r| matches!(r.1, Want::Review(_))).count();
        println!(
            "{kind:<28} {:>3} | category {:5.1} % | type {:5.1} % | one piece {:5.1} % | review {:5.1} % (expected {:4.1} %) | wrong refusals {} | {:.0} ms/page",
            rs.len(),
            pct(rs.iter().filter(|r| r.2.category).count(), rs.len()),
            pct(rs.iter().filter(|r| r.2.type_right).count(), rs.len()),
            pct(rs.iter().filter(|r| r.2.segment).count(), rs.len()),
            pct(rs.iter().filter(|r| r.2.review).count(), rs.len()),
            pct(expected_review, rs.len()),
            rs.iter().filter(|r| r.2.refused_wrongly).count(),
            rs.iter().map(|r| r.2.millis).sum::<f64>() / rs.iter().map(|r| r.2.pages).sum::<usize>().max(1) as f64,
        );
    }
    // Over the cases that should be filed without an operator.
    let filed: Vec<&(&str, Want, Outcome)> = results.iter().filter(|r| !matches!(r.1, Want::Review(_))).collect();
    println!(
        "== all {} | category {:5.1} % | type {:5.1} % | segmentation {:5.1} % | review {:5.1} % (of cases that need none) | wrong refusals {}",
        results.len(),
        pct(results.iter().filter(|r| r.2.category).count(), results.len()),
        pct(results.iter().filter(|r| r.2.type_right).count(), results.len()),
        pct(results.iter().filter(|r| r.2.segment).count(), results.len()),
        pct(filed.iter().filter(|r| r.2.review).count(), filed.len()),
        results.iter().filter(|r| r.2.refused_wrongly).count()
    );
    mailings(env_usize("HARD_MAILINGS", 4), &kit, tmp.path());
}

/// Generated counter mailings (clean production scans, 200 dpi duplex JPEG): how many go through
/// with no piece for an operator, and how fast.
fn mailings(n: usize, kit: &JobKit, tmp: &Path) {
    let JobKit { site, plan, classifier, pool, received_at } = kit;
    let received_at = *received_at;
    if n == 0 {
        return;
    }
    let (mut zero_touch, mut pages, mut seconds, mut pieces, mut review) = (0, 0, 0.0, 0, 0);
    // Pages read whole by the fallback, and why (the first reason the reader gave).
    let mut whole: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for k in 0..n {
        let spec = random_spec(300 + k as u64, MailingKind::Guichet, 4, Scanning { dpi: 200.0, duplex: true, ..Scanning::default() });
        let g = generate(&spec);
        let dir = tmp.join(format!("mailing-{k}"));
        write_jpeg_folder(&dir, &g.pages, 75).expect("write");
        let people: Vec<Person> = spec.requests.iter().map(|r| r.person.clone()).collect();
        let registry = Registry::from_json(&registry_json(&people, std::slice::from_ref(&spec.guichet))).expect("registry");
        let files: Vec<(usize, PathBuf)> = {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            v.into_iter().map(|p| (0, p)).collect()
        };
        let job = MailingJob { files: &files, channel: Channel::Paper, received_at, numero: None, notify: None, site, registry: &registry, plan };
        let t0 = Instant::now();
        let out = execute(&job, classifier, pool, &|_| {}, &|| {}).expect("job");
        seconds += t0.elapsed().as_secs_f64();
        pages += out.report.pages.len();
        for p in &out.report.pages {
            if p.reading.iter().any(|l| l.starts_with("ocr whole page")) {
                let why = p
                    .reading
                    .iter()
                    .find(|l| l.ends_with("page read whole"))
                    .map(|l| l.split(':').next().unwrap_or(l).to_string())
                    .unwrap_or_else(|| "nothing known read".into());
                *whole.entry(why).or_default() += 1;
            }
        }
        let ps: Vec<_> = out.report.requests.iter().flat_map(|r| &r.pieces).collect();
        pieces += ps.len();
        review += ps.iter().filter(|p| p.status == PieceStatus::Review).count();
        if ps.iter().all(|p| p.status != PieceStatus::Review) {
            zero_touch += 1;
        }
    }
    println!(
        "== generated counter mailings: {n}, {pages} pages | zero-touch (no piece in review) {:5.1} % | pieces in review {:4.1} % | {:.1} pages/s on {} threads",
        pct(zero_touch, n),
        pct(review, pieces),
        pages as f64 / seconds,
        pool.current_num_threads()
    );
    let read_whole: usize = whole.values().sum();
    println!("   pages read whole: {read_whole} of {pages} ({:.1} %)", pct(read_whole, pages));
    for (why, k) in &whole {
        println!("     {k:>4}  {why}");
    }
}
