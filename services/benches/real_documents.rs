//! The job on real documents: official specimens, redacted real scans, phone photos and
//! born-digital PDFs published by others, each deposited alone on the portal for a known
//! request, as a counter would.
//!
//!   REAL_DOCS=/path/to/folder cargo bench -p scanbureau --bench real_documents
//!
//! The folder holds the documents and a `truth.csv` (`file,categorie,type,kind,holder`, the
//! holder as `SURNAME|Given names|YYYY-MM-DD`). The documents themselves are not in the
//! repository (licences, personal data): `tests/real-documents/manifest.csv` says where each
//! was published (repository, commit, path) and `scripts/real-documents.sh` gathers them.
//! A document's holder is the request's applicant, so that identity documents can be filed;
//! `categorie = OUTSIDE` marks documents outside the filing plan, which must be refused.
//!
//! Prints, per document, what the job made of it, then: type right (of the piece holding the
//! document's first page), review share (any piece of the document in review), wrong refusals
//! (any refusal but HORS_PERIMETRE_REGLEMENTAIRE of an OUTSIDE document), documents with a
//! piece filed under another type, documents cut into several pieces (each file is one
//! document), and time per page. REAL_DOCS_ONLY=substring runs the matching files only;
//! REAL_DOCS_KEEP=folder writes the stored pieces there, to look at.
//!
//! With the `tesseract` and `pdftoppm` commands (REAL_DOCS_LEGIBILITY=0 skips it): how legible
//! each stored page of the JPEG and PNG documents is, as the words Tesseract reads with
//! confidence on the original file that it still reads on the stored page (both read at the same
//! size, see `kept_words`).

use std::path::PathBuf;
use std::time::Instant;

use scanbureau::process::{MailingJob, execute};
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::config::SiteConfig;
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::reason::ReasonCode;
use scanbureau_pipeline::registry::Registry;
use scanbureau_pipeline::report::{PieceStatus, Report};

mod common;
use common::{JobKit, Truth, kept_words, read_truth};

const NUMERO: &str = "0930325091042G3533";

/// A registry whose one request's applicant is the document's holder (or someone made up when
/// the document names nobody legible).
fn registry_for(t: &Truth) -> Registry {
    let (nom, prenoms, born) = t.holder.clone().unwrap_or(("DUPONT".into(), "MARIE".into(), Some("1980-02-14".into())));
    let json = serde_json::json!({
        "plan_version": "2026.1",
        "demandes": [{
            "numero_unique": NUMERO, "nom": nom.to_uppercase(), "prenoms": prenoms.to_uppercase(),
            "date_naissance": born.unwrap_or_else(|| "1980-02-14".into()), "email": "demandeur@example.org",
            "etat": "active", "pieces": {}
        }],
        "guichets": [{"numero": "G3533", "departement": "093", "email_referent": "pj.g3533@bailleur-093.example"}]
    });
    Registry::from_json(&json.to_string()).expect("registry")
}

struct Outcome {
    pages: usize,
    /// The piece holding the document's first page: categorie/type, status, reason, confidence.
    got: String,
    status: PieceStatus,
    reason: Option<ReasonCode>,
    type_right: bool,
    pieces: usize,
    /// Some piece of the document (not only its first) went to review.
    any_review: bool,
    /// Pieces of the document filed under another type than its own (a page of a livret
    /// filed as a death act), or filed at all for a document outside the plan.
    misfiled_pieces: usize,
    millis: f64,
    evidence: Vec<String>,
    page_detail: Vec<String>,
    /// Every page's reading log.
    reading: Vec<String>,
}

/// Pages read whole by the fallback, and the OCR milliseconds it took, from the pages' logs
/// ("ocr whole page (fallback): 1 regions, 2.10 Mpx, 1234 ms, ...").
fn fallback_cost<'a>(lines: impl Iterator<Item = &'a String>) -> (usize, f64) {
    let mut n = 0;
    let mut ms = 0.0;
    for l in lines.filter(|l| l.starts_with("ocr whole page")) {
        n += 1;
        ms += l.split(", ").find_map(|part| part.strip_suffix(" ms")).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    }
    (n, ms)
}

fn outcome_of(t: &Truth, report: &Report, millis: f64) -> Outcome {
    let pieces: Vec<_> = report.requests.iter().flat_map(|r| &r.pieces).collect();
    let first = pieces.iter().min_by_key(|p| p.pages.first().copied().unwrap_or(usize::MAX));
    let outside = t.categorie == "OUTSIDE";
    // Each page with the piece it went to, to see where a document was cut.
    let piece_of = |i: usize| {
        pieces
            .iter()
            .enumerate()
            .find(|(_, p)| p.pages.contains(&i))
            .map(|(k, p)| format!(" in piece {k} ({} {:.2})", p.type_code.as_deref().unwrap_or("-"), p.confidence))
            .unwrap_or_default()
    };
    let page_detail = report
        .pages
        .iter()
        .map(|p| format!("{:?}{} {}", p.role, piece_of(p.index), p.detail.as_deref().or(p.reason.map(|r| r.code())).unwrap_or("")))
        .collect();
    let reading: Vec<String> = report.pages.iter().flat_map(|p| p.reading.clone()).collect();
    match first {
        None => Outcome {
            pages: report.pages.len(),
            got: "no piece".into(),
            status: PieceStatus::Rejected,
            reason: report.pages.iter().find_map(|p| p.reason),
            type_right: false,
            pieces: 0,
            any_review: false,
            misfiled_pieces: 0,
            millis,
            evidence: Vec::new(),
            page_detail,
            reading,
        },
        Some(p) => {
            let type_right = if outside {
                p.reason == Some(ReasonCode::HorsPerimetreReglementaire)
            } else {
                p.reason.is_none() && p.categorie.as_deref() == Some(t.categorie.as_str()) && p.type_code.as_deref() == Some(t.type_code.as_str())
            };
            let misfiled_pieces = pieces
                .iter()
                .filter(|q| {
                    q.status == PieceStatus::Uploaded
                        && (outside || q.categorie.as_deref() != Some(t.categorie.as_str()) || q.type_code.as_deref() != Some(t.type_code.as_str()))
                })
                .count();
            Outcome {
                pages: report.pages.len(),
                any_review: pieces.iter().any(|q| q.status == PieceStatus::Review),
                misfiled_pieces,
                got: format!("{}/{} {:.2}", p.categorie.as_deref().unwrap_or("-"), p.type_code.as_deref().unwrap_or("-"), p.confidence),
                status: p.status,
                reason: p.reason,
                type_right,
                pieces: pieces.len(),
                millis,
                evidence: p.evidence.clone(),
                page_detail,
                reading,
            }
        }
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
    let Some(dir) = std::env::var_os("REAL_DOCS").map(PathBuf::from) else {
        println!(
            "REAL_DOCS is not set: gather the documents with scripts/real-documents.sh DIR, then REAL_DOCS=DIR cargo bench -p scanbureau --bench real_documents"
        );
        return;
    };
    let only = std::env::var("REAL_DOCS_ONLY").ok();
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    let JobKit { site, plan, classifier, pool, received_at } = JobKit::new(SiteConfig::embedded_default());
    let truths: Vec<Truth> = read_truth(&dir).into_iter().filter(|t| only.as_deref().is_none_or(|o| t.file.contains(o))).collect();
    let tools = ["tesseract", "pdftoppm"].iter().all(|c| std::process::Command::new(c).arg("-v").output().is_ok());
    let legibility = tools && std::env::var("REAL_DOCS_LEGIBILITY").map_or(true, |v| v != "0");
    let scratch = tempfile::tempdir().expect("tmp");
    let keep = std::env::var_os("REAL_DOCS_KEEP").map(PathBuf::from);
    if let Some(keep) = &keep {
        std::fs::create_dir_all(keep).expect("REAL_DOCS_KEEP folder");
    }
    let mut legible: Vec<(String, &str, f64)> = Vec::new();
    println!("== real documents: {} files from {}", truths.len(), dir.display());
    let mut results = Vec::new();
    for t in &truths {
        let registry = registry_for(t);
        let files = vec![(0usize, dir.join("files").join(&t.file))];
        let job = MailingJob {
            files: &files,
            channel: Channel::Portal,
            received_at,
            numero: Some(NumeroUnique::parse(NUMERO).expect("numero")),
            notify: Some("agent@guichet.example".into()),
            site: &site,
            registry: &registry,
            plan: &plan,
        };
        let started = Instant::now();
        let out = execute(&job, &classifier, &pool, &|_| {}, &|| {}).expect("job");
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = out.report.check_accounting() {
            panic!("{}: {e}", t.file);
        }
        if let Some(keep) = &keep {
            for (k, piece) in out.pieces.iter().enumerate() {
                std::fs::write(keep.join(format!("{}.{k}.pdf", t.file)), &piece.bytes).expect("piece written");
            }
        }
        let o = outcome_of(t, &out.report, millis);
        let mark = if o.type_right {
            "ok "
        } else if o.status == PieceStatus::Review && o.reason.is_none() {
            "rev"
        } else {
            "XX "
        };
        println!(
            "{mark} {:<52} {:<7} want {:<4}/{:<27} got {:<36} {:<8} {:<28} {} p {} pc {:>6.0} ms",
            t.file,
            t.kind,
            t.categorie,
            t.type_code,
            o.got,
            format!("{:?}", o.status),
            o.reason.map(|r| r.code()).unwrap_or(""),
            o.pages,
            o.pieces,
            o.millis
        );
        if verbose || (!o.type_right && std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "errors")) {
            for e in &o.evidence {
                println!("      evidence: {e}");
            }
            for d in &o.page_detail {
                println!("      page: {d}");
            }
            for r in &o.reading {
                println!("      read: {r}");
            }
        }
        if legibility
            && (t.file.ends_with(".jpg") || t.file.ends_with(".jpeg") || t.file.ends_with(".png"))
            && let Some(piece) = out.pieces.first()
            && let Some(kept) = kept_words(&dir.join("files").join(&t.file), &piece.bytes, &scratch.path().join(format!("l{}", legible.len())))
        {
            let has = |what: &[u8]| piece.bytes.windows(what.len()).any(|w| w == what);
            let codec = if has(b"/ImageMask") {
                "mixed"
            } else if has(b"DCTDecode") {
                "JPEG"
            } else {
                "bitonal"
            };
            println!("      stored as {codec}: keeps {:.1} % of the words read with confidence on the original", 100.0 * kept);
            legible.push((t.file.clone(), codec, kept));
        }
        results.push((t, o));
    }
    let n = results.len();
    let right = results.iter().filter(|(_, o)| o.type_right).count();
    let filed_right = results.iter().filter(|(_, o)| o.type_right && !o.any_review && o.misfiled_pieces == 0).count();
    let review = results.iter().filter(|(_, o)| o.any_review).count();
    let wrong_refusals: Vec<&str> = results
        .iter()
        .filter(|(t, o)| o.status == PieceStatus::Rejected && !(t.categorie == "OUTSIDE" && o.reason == Some(ReasonCode::HorsPerimetreReglementaire)))
        .map(|(t, _)| t.file.as_str())
        .collect();
    let misfiled: Vec<&str> = results.iter().filter(|(_, o)| o.misfiled_pieces > 0).map(|(t, _)| t.file.as_str()).collect();
    let cut: Vec<String> = results.iter().filter(|(_, o)| o.pieces > 1).map(|(t, o)| format!("{} ({} p, {} pc)", t.file, o.pages, o.pieces)).collect();
    let pages: usize = results.iter().map(|(_, o)| o.pages).sum();
    let fallback = fallback_cost(results.iter().flat_map(|(_, o)| &o.reading));
    let millis: f64 = results.iter().map(|(_, o)| o.millis).sum();
    let types: std::collections::BTreeSet<&str> = results.iter().map(|(t, _)| t.type_code.as_str()).filter(|t| !t.is_empty()).collect();
    let outside = results.iter().filter(|(t, _)| t.categorie == "OUTSIDE").count();
    println!("== {n} documents ({} of {} types of the plan, {outside} outside it), {pages} pages", n - outside, types.len());
    println!("type right (filed or proposed for review) {:5.1} % ({right}/{n})", pct(right, n));
    println!("filed with the right type, no review    {:5.1} % ({filed_right}/{n})", pct(filed_right, n));
    println!("review (any piece of the document)       {:5.1} % ({review}/{n})", pct(review, n));
    let needs_none: Vec<_> = results.iter().filter(|(t, _)| !t.review_expected).collect();
    let needless: Vec<&str> = needs_none.iter().filter(|(_, o)| o.any_review).map(|(t, _)| t.file.as_str()).collect();
    println!(
        "  of documents whose right outcome is no review {:5.1} % ({}/{}) {needless:?}",
        pct(needless.len(), needs_none.len()),
        needless.len(),
        needs_none.len()
    );
    println!("wrong refusals                           {} {:?}", wrong_refusals.len(), wrong_refusals);
    println!("filed under a wrong type (any piece)     {} {misfiled:?}", misfiled.len());
    println!("documents cut into several pieces        {} {cut:?}", cut.len());
    println!("time                                     {:.0} ms per page (wall, {} threads)", millis / pages.max(1) as f64, pool.current_num_threads());
    println!(
        "whole-page fallback                      {} of {pages} pages ({:.0} %), {:.0} ms of OCR each on average",
        fallback.0,
        pct(fallback.0, pages),
        fallback.1 / fallback.0.max(1) as f64
    );
    let (kept, drawn) = pages_kept_as_sent(results.iter().flat_map(|(_, o)| &o.page_detail));
    println!(
        "PDF pages kept as sent (text and vectors) {} of {}: {:.1} KB, against {:.1} KB as their rasters; {} kept as rasters, lighter",
        kept.len(),
        kept.len() + drawn.len(),
        kept.iter().map(|k| k.0).sum::<f64>(),
        kept.iter().map(|k| k.1).sum::<f64>(),
        drawn.len()
    );
    if !legible.is_empty() {
        for codec in ["JPEG", "mixed", "bitonal"] {
            let l: Vec<&(String, &str, f64)> = legible.iter().filter(|l| l.1 == codec).collect();
            if l.is_empty() {
                continue;
            }
            let worst = l.iter().min_by(|a, b| a.2.total_cmp(&b.2)).expect("one");
            println!(
                "stored as {codec:<5}: {} pages keep {:.1} % of the words Tesseract reads with confidence on the original (worst {:.1} %, {})",
                l.len(),
                100.0 * l.iter().map(|x| x.2).sum::<f64>() / l.len() as f64,
                100.0 * worst.2,
                worst.0
            );
        }
    }
    for kind in ["scan", "photo", "digital"] {
        let k: Vec<_> = results.iter().filter(|(t, _)| t.kind == kind).collect();
        println!(
            "  {kind:<8} {:>3} documents: type right {:5.1} %, review {:5.1} %",
            k.len(),
            pct(k.iter().filter(|(_, o)| o.type_right).count(), k.len()),
            pct(k.iter().filter(|(_, o)| o.any_review).count(), k.len())
        );
    }
}

/// A page's KB as stored, and the KB of the other way it could have been stored.
type KbPair = (f64, f64);

/// From the report's page details, the PDF pages kept as sent, as (KB stored, KB of the raster
/// they replace), and those stored as rasters lighter than the page sent, as (KB stored, KB of
/// the page sent): the last two figures in KB each detail gives.
fn pages_kept_as_sent<'a>(details: impl Iterator<Item = &'a String>) -> (Vec<KbPair>, Vec<KbPair>) {
    let (mut kept, mut drawn) = (Vec::new(), Vec::new());
    for d in details {
        let kb: Vec<f64> = d.split(" KB").filter_map(|s| s.rsplit(['(', ' ']).next()?.parse().ok()).collect();
        let last_two = || Some((*kb.last()?, *kb.get(kb.len().checked_sub(2)?)?));
        if d.contains("stored as the PDF page as sent") {
            kept.extend(last_two());
        } else if d.contains("lighter than the PDF page as sent") {
            drawn.extend(last_two());
        }
    }
    (kept, drawn)
}
