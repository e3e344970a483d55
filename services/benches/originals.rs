//! Originals sent by mistake: how well the job suspects them on paper mailings.
//!
//!   cargo bench -p scanbureau --bench originals
//!
//! Generated counter mailings (ORIGINALS_MAILINGS, default 6, of 4 requests each, scanned in
//! colour at ORIGINALS_DPI, default 200, duplex, JPEG) whose identity documents and civil-status
//! acts are, at random, the originals themselves (a card or passport scanned at its own size, an
//! act with its stamp and signature in wet ink), their colour photocopies on A4, or
//! black-and-white copies of stamped acts; other documents of the plan among them. A document is
//! suspected when a piece holding its first page says "original ?" in its evidence.
//!
//! Prints recall (originals suspected) and precision (suspicions that are originals), by kind of
//! document, and every miss with BENCH_VERBOSE=1.
//!
//! With REAL_DOCS=folder (the real-documents set, see `real_documents`): the wet-ink sign on its
//! civil-status acts and livrets de famille, each a scan or photo of the document itself, never
//! of a photocopy: what the job measures on each page as it would on a paper mailing, and whether
//! it suspects the document. The size signs cannot be measured there: a published file does not
//! say the size of the paper it shows (a livret's scans are letter-sized pages of the whole glass,
//! an image's resolution is a guess). Then the same sign on the set's other documents, whose blue
//! is all printed: how often it would take print for a stamp.

use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use scanbureau::process::{MailingJob, execute};
use scanbureau_fixtures::catalogue::{self, Paper, PlanDoc, Split, Subject};
use scanbureau_fixtures::docs::DocKind;
use scanbureau_fixtures::mailing::{Fault, MailingKind, MailingSpec, RequestSpec, Scanning, generate};
use scanbureau_fixtures::people::{Person, guichet, person, registry_json};
use scanbureau_fixtures::write::write_jpeg_folder;
use scanbureau_pipeline::config::SiteConfig;
use scanbureau_pipeline::input::split_file;
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::originals::{WET_INK_MIN, paper_signs, stamped_by_nature, suspicion};
use scanbureau_pipeline::raster::{Limits, PageRaster, decode_page};
use scanbureau_pipeline::registry::Registry;

/// The documents whose originals get sent: cards, passports and civil-status acts.
const ORIGINAL_PRONE: &[&str] = &["CNI", "PASSEPORT", "TITRE_SEJOUR", "ACTE_NAISSANCE", "ACTE_DECES", "ACTE_MARIAGE", "LIVRET_FAMILLE"];

mod common;
use common::{JobKit, env_usize, read_truth};

/// One request's documents: two or three prone to be sent as originals, each an original, a
/// colour copy or a black-and-white copy of an original, and one other document of the plan.
fn request_docs(p: &Person, rng: &mut SmallRng) -> Vec<DocKind> {
    let mut docs = Vec::new();
    for _ in 0..rng.random_range(2..=3) {
        let code = ORIGINAL_PRONE[rng.random_range(0..ORIGINAL_PRONE.len())];
        let Some(doc) = PlanDoc::of_type(code, Subject::Demandeur, rng) else { continue };
        let doc = match rng.random_range(0..10) {
            0..4 => doc.as_original(),
            4..7 => PlanDoc { paper: Paper::CopyOfOriginal, ..doc },
            _ => doc,
        };
        docs.push(DocKind::Plan(doc));
    }
    docs.push(DocKind::Plan(catalogue::random_doc(p, Split::Tune, false, rng)));
    docs
}

#[derive(Default)]
struct Tally {
    originals: usize,
    found: usize,
    false_alarms: usize,
}

fn main() {
    if let Err(e) = scanbureau_classifier::ocr::ensure_single_thread_ocr() {
        eprintln!("could not restart with OMP_THREAD_LIMIT=1: {e}");
    }
    let n = env_usize("ORIGINALS_MAILINGS", 6);
    let dpi = env_usize("ORIGINALS_DPI", 200) as f32;
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    let JobKit { site, plan, classifier, pool, received_at } = JobKit::new(SiteConfig::embedded_default());
    let tmp = tempfile::tempdir().expect("tmp");
    let mut by_type: std::collections::BTreeMap<&'static str, Tally> = std::collections::BTreeMap::new();
    let (mut pages, mut documents) = (0, 0);
    let started = std::time::Instant::now();
    for k in 0..n {
        let mut rng = SmallRng::seed_from_u64(900 + k as u64);
        let g = guichet(&mut rng);
        let requests = (0..4)
            .map(|_| {
                let person = person(&mut rng, &g.departement, &g.numero);
                let docs = request_docs(&person, &mut rng);
                RequestSpec { person, docs, fault: Fault::None }
            })
            .collect();
        let scanning = Scanning { dpi, duplex: true, ..Scanning::default() };
        let spec = MailingSpec {
            kind: MailingKind::Guichet,
            guichet: g,
            requests,
            without_bordereau: false,
            washed_out_bordereau: false,
            scanning,
            seed: 900 + k as u64,
        };
        let generated = generate(&spec);
        let dir = tmp.path().join(format!("mailing-{k}"));
        write_jpeg_folder(&dir, &generated.pages, 80).expect("write");
        let people: Vec<Person> = spec.requests.iter().map(|r| r.person.clone()).collect();
        let registry = Registry::from_json(&registry_json(&people, std::slice::from_ref(&spec.guichet))).expect("registry");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let files: Vec<(usize, PathBuf)> = files.into_iter().map(|p| (0, p)).collect();
        let job = MailingJob { files: &files, channel: Channel::Paper, received_at, numero: None, notify: None, site: &site, registry: &registry, plan: &plan };
        let out = execute(&job, &classifier, &pool, &|_| {}, &|| {}).expect("job");
        pages += out.report.pages.len();
        let pieces: Vec<_> = out.report.requests.iter().flat_map(|r| &r.pieces).collect();
        for doc in generated.truth.requests.iter().flat_map(|r| &r.docs) {
            documents += 1;
            let Some(&first) = doc.pages.first() else { continue };
            let piece = pieces.iter().find(|p| p.pages.contains(&first));
            let suspected = piece.is_some_and(|p| p.evidence.iter().any(|e| e.starts_with("original ?")));
            let t = by_type.entry(if doc.type_code.is_empty() { "(outside the plan)" } else { doc.type_code }).or_default();
            t.originals += usize::from(doc.original);
            t.found += usize::from(doc.original && suspected);
            t.false_alarms += usize::from(!doc.original && suspected);
            if verbose && doc.original != suspected {
                let what = if doc.original { "original missed" } else { "copy suspected" };
                let paper = match doc.kind {
                    DocKind::Plan(d) => format!("{:?}", d.paper),
                    _ => String::new(),
                };
                println!("  {what}: mailing {k}, {} ({paper}), pages {:?}", doc.type_code, doc.pages);
                for e in piece.map(|p| p.evidence.as_slice()).unwrap_or_default() {
                    println!("      {e}");
                }
            }
        }
    }
    let originals: usize = by_type.values().map(|t| t.originals).sum();
    let found: usize = by_type.values().map(|t| t.found).sum();
    let false_alarms: usize = by_type.values().map(|t| t.false_alarms).sum();
    let pct = |a: usize, b: usize| if b == 0 { f64::NAN } else { 100.0 * a as f64 / b as f64 };
    println!(
        "== originals among copies: {n} paper mailings, {pages} pages, {documents} documents, {originals} of them originals, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("recall (originals suspected)               {:5.1} % ({found}/{originals})", pct(found, originals));
    println!("precision (suspicions that are originals)  {:5.1} % ({found}/{})", pct(found, found + false_alarms), found + false_alarms);
    println!("   {:<24} {:>9} {:>9} {:>13}", "type", "originals", "suspected", "copies flagged");
    for (code, t) in &by_type {
        println!("   {code:<24} {:>9} {:>9} {:>13}", t.originals, t.found, t.false_alarms);
    }
    if let Ok(dir) = std::env::var("REAL_DOCS") {
        real_wet_ink(Path::new(&dir));
    }
}

/// The wet-ink sign on the real set's acts and livrets (see the module's comment).
fn real_wet_ink(dir: &Path) {
    if !dir.join("truth.csv").is_file() {
        println!("(no truth.csv in {}: the real set is left out)", dir.display());
        return;
    }
    let limits = Limits::default();
    let (mut documents, mut suspected, mut grey) = (0, 0, 0);
    println!("== the wet-ink sign on the real set's acts and livrets (every one shows the document itself)");
    for t in read_truth(dir).iter().filter(|t| stamped_by_nature(&t.type_code)) {
        let (file, type_code, kind) = (t.file.as_str(), t.type_code.as_str(), t.kind.as_str());
        let Some(rasters) = real_pages(dir, file, &limits) else {
            println!("   {file}: missing");
            continue;
        };
        let in_colour = rasters.iter().any(|r| r.rgb.is_some());
        let signs: Vec<_> = rasters.iter().map(paper_signs).collect();
        let dpi = rasters.first().map_or(300.0, |r| r.dpi);
        let why = suspicion(Some(type_code), &signs, dpi);
        let most = signs.iter().map(|s| s.wet_ink).fold(0.0_f32, f32::max);
        documents += 1;
        grey += usize::from(!in_colour);
        suspected += usize::from(why.is_some());
        println!(
            "   {file:<52} {kind:<6} {} page(s), {}, wet ink (a stamp or handwriting in blue or violet) on {:.2} % of its most inked page: {}",
            rasters.len(),
            if in_colour { "kept in colour" } else { "decoded grey" },
            most * 100.0,
            why.as_deref().unwrap_or("not suspected")
        );
    }
    println!(
        "suspected {suspected} of {documents} (threshold {:.1} % of a page); {grey} of them decoded grey (no colour, or colour on under 0.5 % of the page; their ink is measured before)",
        WET_INK_MIN * 100.0
    );
    printed_blue_as_wet_ink(dir, &limits);
}

/// The set holds no copy of an act, so the wet-ink sign's precision cannot be measured on real
/// acts. What can be: how often the sign fires on the real set's other documents, whose blue is
/// printed (logos, tinted boxes, born-digital letters, card guilloches), never wet ink. An act
/// printed or copied with such blue would be suspected the same way.
fn printed_blue_as_wet_ink(dir: &Path, limits: &Limits) {
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    let (mut documents, mut in_colour, mut firing) = (0, 0, Vec::new());
    for t in read_truth(dir).iter().filter(|t| !stamped_by_nature(&t.type_code)) {
        let Some(rasters) = real_pages(dir, &t.file, limits) else { continue };
        let most = rasters.iter().map(|r| paper_signs(r).wet_ink).fold(0.0_f32, f32::max);
        documents += 1;
        in_colour += usize::from(rasters.iter().any(|r| r.rgb.is_some()));
        if most >= WET_INK_MIN {
            firing.push((t.file.clone(), t.kind.clone(), most));
        }
    }
    println!(
        "== the same sign on the real set's other documents (their blue is printed): fires on {} of {documents} ({in_colour} kept in colour)",
        firing.len()
    );
    for (file, kind, most) in firing.iter().filter(|_| verbose) {
        println!("   {file:<52} {kind:<6} taken for wet ink on {:.2} % of its most inked page", most * 100.0);
    }
}

/// A real document's pages as the job decodes them; None when its file is missing.
fn real_pages(dir: &Path, file: &str, limits: &Limits) -> Option<Vec<PageRaster>> {
    let bytes = std::fs::read(dir.join("files").join(file)).ok()?;
    Some(split_file(file, bytes, limits).iter().filter_map(|p| decode_page(&p.blob, limits).ok()).collect())
}
