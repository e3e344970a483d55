//! Accuracy and cost of the qualifier on a generated corpus, in the figures the targets name.
//!
//!   cargo bench -p scanbureau-classifier --bench qualify
//!
//! BENCH_PIECES (default 1000) documents, drawn from the catalogue's tuning wordings and, for
//! as many again with BENCH_HELD_SHARE (default 0.5), from the held-apart wordings; requests of
//! 1-4 documents for applicants with families; pages scanned at 300 dpi (skew, noise, grey
//! paper, upside-down sheets) and stored as JPEG, then decoded and analysed by the pipeline as
//! the job does. BENCH_BAD (default 12) pages of each kind of bad input. BENCH_VERBOSE=1 lists
//! every error with its evidence.

use std::sync::Arc;
use std::time::Instant;

use image::ImageFormat;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use scanbureau_classifier::{Classifier, ReaderConfig, layout, ocr, pieces};
use scanbureau_fixtures::catalogue::{self, Cast, PlanDoc, Split};
use scanbureau_fixtures::page::{Canvas, Scan, ScanDefects, scan};
use scanbureau_fixtures::people::{Person, person};
use scanbureau_fixtures::write::jpeg_bytes;
use scanbureau_pipeline::analysis::{AnalysisParams, analyse_and_read};
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::qualify::{Household, HouseholdMember, PageFeatures, PieceDraft, Qualifier};
use scanbureau_pipeline::raster::{Limits, PageBlob, decode_page};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU time of the calling thread, in milliseconds (Linux schedstat, nanosecond precision).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map(|ns| ns / 1e6)
        .unwrap_or(0.0)
}

struct PageCost {
    read_ms: f64,
    layout_ms: f64,
}

/// Scans a printed side as a production scanner would, stores it as JPEG and reads it back
/// through the pipeline's decoding and analysis, with the classifier's reader.
fn through_pipeline(sheet: Scan, d: &ScanDefects, paper: u8, classifier: &Classifier, rng: &mut SmallRng) -> (PageFeatures, PageCost, bool) {
    let scanned = scan(sheet, d, paper, rng);
    let jpeg = jpeg_bytes(&scanned, 75);
    drop(scanned);
    let blob = PageBlob::ImageFile { data: Arc::new(jpeg), format: ImageFormat::Jpeg };
    let raster = decode_page(&blob, &Limits::default()).expect("generated JPEG decodes");
    let cost = std::cell::Cell::new((0.0, 0.0));
    let (analysis, features) = analyse_and_read(raster, &AnalysisParams::default(), &|view| {
        let t0 = thread_cpu_ms();
        let _ = layout::measure(&view.raster.gray, view.ink, view.raster.dpi);
        let t1 = thread_cpu_ms();
        let f = classifier.read_page(view);
        let t2 = thread_cpu_ms();
        cost.set((t2 - t1, t1 - t0));
        f
    });
    let (read_ms, layout_ms) = cost.get();
    (features, PageCost { read_ms, layout_ms }, analysis.blank)
}

fn household_of(p: &Person) -> Household {
    let m = |nom: &str, prenoms: &str, d| HouseholdMember { nom: nom.into(), prenoms: prenoms.into(), date_naissance: Some(d) };
    Household {
        demandeur: Some(m(&p.nom, &p.prenoms, p.date_naissance)),
        conjoint: p.conjoint.as_ref().map(|c| m(&c.nom, &c.prenoms, c.date_naissance)),
        personnes_a_charge: p.personnes_a_charge.iter().map(|c| m(&c.nom, &c.prenoms, c.date_naissance)).collect(),
    }
}

struct DocOutcome {
    split: Split,
    doc: PlanDoc,
    seg_exact: bool,
    category_ok: bool,
    type_ok: bool,
    review: bool,
    confidence: f32,
    predicted: String,
    evidence: Vec<String>,
}

struct RequestResult {
    docs: Vec<DocOutcome>,
    costs: Vec<PageCost>,
    qualify_ms: f64,
    pages: usize,
}

fn run_request(seed: u64, split: Split, n_docs: usize, classifier: &Classifier, threshold: f32) -> RequestResult {
    let mut rng = SmallRng::seed_from_u64(seed);
    let p = person(&mut rng, "069", "G0042");
    let docs: Vec<PlanDoc> = (0..n_docs).map(|_| catalogue::random_doc(&p, split, true, &mut rng)).collect();
    let mut features = Vec::new();
    let mut costs = Vec::new();
    let mut truth_pages: Vec<Vec<usize>> = Vec::new();
    for doc in &docs {
        let cast = Cast::new(doc, &p, &mut rng);
        let mut pages = Vec::new();
        for sheet in 0..doc.sheet_count() {
            let paper = if rng.random_bool(0.2) { rng.random_range(205..225) } else { rng.random_range(235..252) };
            let printed = catalogue::draw(doc, sheet, &cast, 300.0, paper, &mut rng);
            let d = ScanDefects {
                skew_deg: rng.random_range(-1.5..1.5),
                noise: 6.0,
                upside_down: rng.random_bool(0.05),
                edges: rng.random_bool(0.2),
                punch_holes: rng.random_bool(0.2),
                ..ScanDefects::default()
            };
            let (f, c, _) = through_pipeline(printed, &d, paper, classifier, &mut rng);
            pages.push(features.len());
            features.push(f);
            costs.push(c);
        }
        truth_pages.push(pages);
    }
    let household = household_of(&p);
    let refs: Vec<(usize, &PageFeatures)> = features.iter().enumerate().collect();
    let t0 = thread_cpu_ms();
    let drafts = pieces::qualify_pages(&classifier.lexicon, &household, &refs);
    let qualify_ms = thread_cpu_ms() - t0;
    let outcomes = docs
        .iter()
        .zip(&truth_pages)
        .map(|(doc, pages)| {
            let piece: Option<&PieceDraft> = drafts.iter().find(|d| d.pages.contains(&pages[0]));
            let expected = doc.plan_code();
            let rejection = doc.expected_rejection();
            let (category_ok, type_ok, review, confidence, predicted, evidence) = match piece {
                None => (false, false, true, 0.0, "none".into(), vec![]),
                Some(d) => {
                    let got_rejection = d.rejection.map(|r| r.code());
                    let review = d.rejection.is_none() && (d.categorie.is_none() || d.confidence < threshold);
                    let (cat_ok, type_ok) = match rejection {
                        Some(code) => (got_rejection == Some(code), got_rejection == Some(code)),
                        None => {
                            let cat = expected.map(|e| e.0) == d.categorie.as_deref() && got_rejection.is_none();
                            (cat, cat && expected.map(|e| e.1) == d.type_code.as_deref())
                        }
                    };
                    let predicted =
                        format!("{}/{} {}", d.categorie.as_deref().unwrap_or("-"), d.type_code.as_deref().unwrap_or("-"), got_rejection.unwrap_or(""));
                    (cat_ok, type_ok, review, d.confidence, predicted, d.evidence.clone())
                }
            };
            DocOutcome { split, doc: *doc, seg_exact: piece.is_some_and(|d| &d.pages == pages), category_ok, type_ok, review, confidence, predicted, evidence }
        })
        .collect();
    RequestResult { docs: outcomes, pages: features.len(), costs, qualify_ms }
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 { f64::NAN } else { 100.0 * n as f64 / d as f64 }
}

fn report(name: &str, docs: &[&DocOutcome]) {
    let n = docs.len();
    let auto: Vec<&&DocOutcome> = docs.iter().filter(|d| !d.review).collect();
    println!(
        "{name:<6} pieces {n:>5} | segmentation exact {:5.1} % | review {:4.1} % | category {:5.1} % type {:5.1} % (of decided) | category {:5.1} % type {:5.1} % (review counted wrong)",
        pct(docs.iter().filter(|d| d.seg_exact).count(), n),
        pct(docs.iter().filter(|d| d.review).count(), n),
        pct(auto.iter().filter(|d| d.category_ok).count(), auto.len()),
        pct(auto.iter().filter(|d| d.type_ok).count(), auto.len()),
        pct(docs.iter().filter(|d| !d.review && d.category_ok).count(), n),
        pct(docs.iter().filter(|d| !d.review && d.type_ok).count(), n),
    );
}

/// Pages that must not break the reader: each kind drawn `n` times.
fn bad_input(n: usize, classifier: &Classifier) {
    println!("== bad input: {n} pages of each kind (outcome of the page as a one-page piece)");
    let kinds = ["very dark", "very light", "blank-ish", "sideways", "upside-down", "other language", "handwriting"];
    for kind in kinds {
        let results: Vec<(String, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut rng = SmallRng::seed_from_u64(9000 + i as u64);
                let p = person(&mut rng, "069", "G0042");
                let mut paper = 242u8;
                let mut d = ScanDefects { skew_deg: rng.random_range(-1.0..1.0), noise: 6.0, ..ScanDefects::default() };
                let doc = catalogue::random_doc(&p, Split::Tune, false, &mut rng);
                let cast = Cast::new(&doc, &p, &mut rng);
                let sheet = match kind {
                    "very dark" => {
                        paper = 60;
                        catalogue::draw(&doc, 0, &cast, 300.0, paper, &mut rng)
                    }
                    "very light" => faint(catalogue::draw(&doc, 0, &cast, 300.0, paper, &mut rng)),
                    "blank-ish" => {
                        let mut c = Canvas::new(300.0, paper, false);
                        c.text(150.0, 280.0, 7.0, "1", false, [150, 150, 150]);
                        c.finish()
                    }
                    "sideways" => {
                        d.quarter = if i % 2 == 0 { 90 } else { 270 };
                        catalogue::draw(&doc, 0, &cast, 300.0, paper, &mut rng)
                    }
                    "upside-down" => {
                        d.upside_down = true;
                        catalogue::draw(&doc, 0, &cast, 300.0, paper, &mut rng)
                    }
                    "other language" => {
                        let mut c = Canvas::new(300.0, paper, false);
                        c.text(20.0, 30.0, 14.0, "TENANCY AGREEMENT / CONTRATO DE ARRENDAMIENTO", true, [20, 20, 25]);
                        for k in 0..20 {
                            c.text(
                                20.0,
                                50.0 + k as f32 * 6.0,
                                10.0,
                                "The landlord agrees to let and the tenant agrees to take the premises for the term.",
                                false,
                                [20, 20, 25],
                            );
                        }
                        c.finish()
                    }
                    _ => {
                        let mut c = Canvas::new(300.0, paper, false);
                        for k in 0..12 {
                            c.signature(25.0, 40.0 + k as f32 * 12.0, 150.0, &mut rng);
                        }
                        c.finish()
                    }
                };
                let started = Instant::now();
                let (f, _, blank) = through_pipeline(sheet, &d, paper, classifier, &mut rng);
                let drafts = pieces::qualify_pages(&classifier.lexicon, &household_of(&p), &[(0, &f)]);
                let took = started.elapsed().as_secs_f64() * 1000.0;
                let outcome = match drafts.first() {
                    _ if blank => "dropped as blank".to_string(),
                    None => "no piece".to_string(),
                    Some(d) => match (d.rejection, &d.categorie) {
                        (Some(r), _) => r.code().to_string(),
                        (None, None) => "review".into(),
                        (None, Some(_)) if d.confidence < 0.8 => "review".into(),
                        (None, Some(_)) => {
                            let ok = doc.plan_code().map(|c| c.1) == d.type_code.as_deref();
                            if ok { "classified right".into() } else { "classified wrong".into() }
                        }
                    },
                };
                (outcome, took)
            })
            .collect();
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for (o, _) in &results {
            *counts.entry(o.as_str()).or_default() += 1;
        }
        let worst = results.iter().map(|r| r.1).fold(0.0, f64::max);
        println!("  {kind:<15} {counts:?}  slowest page {worst:.0} ms (decode, analysis and read)");
    }
}

fn faint(s: Scan) -> Scan {
    let g = s.to_gray();
    // Washed out: the darkest print comes out at 185 on paper of about 240.
    Scan::Gray(image::GrayImage::from_fn(g.width(), g.height(), |x, y| image::Luma([185 + (g.get_pixel(x, y).0[0] as u16 * 60 / 255) as u8])))
}

fn main() {
    if let Err(e) = ocr::ensure_single_thread_ocr() {
        eprintln!("could not restart with OMP_THREAD_LIMIT=1: {e}");
    }
    let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
    let classifier = Classifier::new(&plan, ReaderConfig::default()).expect("lexicon");
    let threshold = 0.80;
    if let Ok(path) = std::env::var("BENCH_FILE") {
        // What the reader makes of one scanned page (JPEG, PNG or TIFF file).
        let data = std::fs::read(&path).expect("BENCH_FILE readable");
        let format = ImageFormat::from_path(&path).expect("image file name");
        let raster = decode_page(&PageBlob::ImageFile { data: Arc::new(data), format }, &Limits::default()).expect("decodable");
        let (a, f) = analyse_and_read(raster, &AnalysisParams::default(), &|v| classifier.read_page(v));
        println!(
            "blank {} slip {}\n{:#?}\nlayout {:?}\nTITLE: {:?}\nTEXT: {}",
            a.blank,
            a.slip.is_some(),
            f.reading,
            f.layout,
            f.title,
            f.text.unwrap_or_default()
        );
        return;
    }
    if let Ok(which) = std::env::var("BENCH_SHOW") {
        // What the reader makes of one document of the catalogue (by type code).
        let mut rng = SmallRng::seed_from_u64(env_usize("BENCH_SEED", 5) as u64);
        let p = person(&mut rng, "069", "G0042");
        let i = catalogue::entries().iter().position(|e| e.type_code == which).expect("type code of the catalogue");
        let doc = PlanDoc::random(i, Split::Tune, &mut rng);
        let cast = Cast::new(&doc, &p, &mut rng);
        for sheet in 0..doc.sheet_count() {
            let paper = env_usize("BENCH_PAPER", 240) as u8;
            let printed = catalogue::draw(&doc, sheet, &cast, 300.0, paper, &mut rng);
            let d = ScanDefects {
                skew_deg: 0.8,
                noise: 6.0,
                edges: std::env::var("BENCH_EDGES").is_ok(),
                punch_holes: std::env::var("BENCH_HOLES").is_ok(),
                ..ScanDefects::default()
            };
            let (f, c, _) = through_pipeline(printed, &d, paper, &classifier, &mut rng);
            println!("--- page {sheet} ({:.0} ms)\n{:#?}\nTITLE: {:?}\nTEXT: {}", c.read_ms, f.reading, f.title, f.text.unwrap_or_default());
        }
        return;
    }
    let n_tune = env_usize("BENCH_PIECES", 1000);
    let held_share: f64 = std::env::var("BENCH_HELD_SHARE").ok().and_then(|v| v.parse().ok()).unwrap_or(0.5);
    let n_held = (n_tune as f64 * held_share) as usize;
    let verbose = std::env::var("BENCH_VERBOSE").is_ok_and(|v| v == "1");
    println!(
        "== qualifier: {n_tune} pieces (tuning wordings) + {n_held} pieces (held-apart wordings), 300 dpi JPEG scans, OMP_THREAD_LIMIT={}",
        std::env::var("OMP_THREAD_LIMIT").unwrap_or_default()
    );

    // Requests of 1-4 documents until the wanted number of pieces.
    let mut jobs = Vec::new();
    for (split, n, base) in [(Split::Tune, n_tune, 1u64), (Split::Held, n_held, 1_000_000u64)] {
        let mut left = n;
        let mut k = 0;
        while left > 0 {
            let docs = (1 + (k * 7 % 4)).min(left);
            jobs.push((base + k as u64, split, docs));
            left -= docs;
            k += 1;
        }
    }
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = jobs.len();
    let results: Vec<RequestResult> = jobs
        .par_iter()
        .map(|&(seed, split, n)| {
            let r = run_request(seed, split, n, &classifier, threshold);
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if k.is_multiple_of(50) {
                eprintln!("  {k}/{total} requests, {:.0} s", started.elapsed().as_secs_f64());
            }
            r
        })
        .collect();
    let wall = started.elapsed().as_secs_f64();

    let all: Vec<&DocOutcome> = results.iter().flat_map(|r| r.docs.iter()).collect();
    let tune: Vec<&DocOutcome> = all.iter().copied().filter(|d| d.split == Split::Tune).collect();
    let held: Vec<&DocOutcome> = all.iter().copied().filter(|d| d.split == Split::Held).collect();
    report("tune", &tune);
    report("held", &held);
    report("all", &all);

    // Calibration: does a confidence of 0.9 mean right nine times in ten?
    println!("calibration (pieces not refused): confidence bin -> pieces, type right");
    for (lo, hi) in [(0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 0.99), (0.99, 1.01)] {
        let bin: Vec<&&DocOutcome> = all.iter().filter(|d| d.doc.expected_rejection().is_none() && d.confidence >= lo && d.confidence < hi).collect();
        println!("  [{lo:.2}, {hi:.2}) {:>5} pieces, {:5.1} % right", bin.len(), pct(bin.iter().filter(|d| d.type_ok).count(), bin.len()));
    }
    let strays: Vec<&&DocOutcome> = all.iter().filter(|d| d.doc.expected_rejection().is_some()).collect();
    println!(
        "refusals expected (someone else's identity document, outside the plan): {} pieces, {:.1} % refused with the right code",
        strays.len(),
        pct(strays.iter().filter(|d| d.category_ok).count(), strays.len())
    );

    let costs: Vec<&PageCost> = results.iter().flat_map(|r| r.costs.iter()).collect();
    let pages: usize = results.iter().map(|r| r.pages).sum();
    let read: f64 = costs.iter().map(|c| c.read_ms).sum::<f64>() / pages as f64;
    let lay: f64 = costs.iter().map(|c| c.layout_ms).sum::<f64>() / pages as f64;
    let qual: f64 = results.iter().map(|r| r.qualify_ms).sum::<f64>() / pages as f64;
    let mut sorted: Vec<f64> = costs.iter().map(|c| c.read_ms).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        sorted.push(f64::NAN);
    }
    println!(
        "cost per page ({pages} pages, CPU of the reading thread): with OCR {:.0} ms (p50 {:.0}, p95 {:.0}, max {:.0}); without OCR {:.1} ms (layout {lay:.1} + segmentation and classification {qual:.2})",
        read + qual,
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 95 / 100],
        sorted.last().copied().unwrap_or(0.0),
        lay + qual
    );
    println!("corpus generated and read in {wall:.0} s on {} threads", rayon::current_num_threads());

    if verbose {
        for d in all.iter().filter(|d| !d.seg_exact || !d.type_ok || d.review) {
            let e = d.doc.entry();
            println!(
                "  {:?} {}/{} title {} subject {:?} pages {} -> {} conf {:.2} seg {} | {}",
                d.split,
                e.categorie,
                e.type_code,
                d.doc.title,
                d.doc.subject,
                d.doc.pages,
                d.predicted,
                d.confidence,
                d.seg_exact,
                d.evidence.join(" | ")
            );
        }
    }
    bad_input(env_usize("BENCH_BAD", 12), &classifier);
}
