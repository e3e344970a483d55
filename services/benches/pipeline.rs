//! Benchmarks of the one-shot job, printing the figures the targets are checked against.
//!
//!   cargo bench -p scanbureau --bench pipeline
//!
//! Sizes can be changed with BENCH_SLIPS, BENCH_HARD_CODES, BENCH_BLANK, BENCH_PDF, BENCH_OCR (0 skips the OCR
//! comparison, which needs the `tesseract` command) and BENCH_PAGES (whole job). Page work is
//! measured on one thread; the whole job on all cores, in a separate process whose peak memory is
//! read from /proc.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::GrayImage;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use scanbureau_fixtures::docs::{DocKind, QrPrint, draw_attestation, draw_bordereau, draw_document, draw_document_with_text, draw_fiche};
use scanbureau_fixtures::mailing::{MailingKind, Scanning, generate_into, random_spec};
use scanbureau_fixtures::page::{Scan, ScanDefects, blank_back, scan};
use scanbureau_fixtures::people::{Guichet, Person, guichet, person, registry_json};
use scanbureau_fixtures::write::jpeg_bytes;
use scanbureau_pipeline::analysis::{AnalysisParams, analyse_page};
use scanbureau_pipeline::binarize::{MIN_CONTRAST, binarize, tile_stats};
use scanbureau_pipeline::lightpdf::{EncodeParams, PageCodec, PageContent, decode_encoded, encode_page};
use scanbureau_pipeline::qr::{QrSearch, find_qr_codes_in};
use scanbureau_pipeline::raster::PageRaster;
use scanbureau_pipeline::slip::{SlipParse, parse_payload};

mod common;
use common::{env_usize, median, ocr_accuracy, png, quantile, raster_of, tinted};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Degraded slips (size, faint print, noise, JPEG, skew, any quarter turn, 200/300 dpi) and
/// ordinary pages (some with QR codes of their own).
fn bench_slips(n: usize) {
    println!("== slips: {n} degraded slip pages + {n} other pages");
    let cases: Vec<(Vec<u8>, Option<String>, String)> = (0..2 * n)
        .into_par_iter()
        .map(|i| {
            let mut rng = SmallRng::seed_from_u64(1000 + i as u64);
            let dpi = if rng.random_bool(0.25) { 200.0 } else { 300.0 };
            let g = guichet(&mut rng);
            let p = person(&mut rng, &g.departement, &g.numero);
            let paper = rng.random_range(205..250);
            let d = ScanDefects {
                skew_deg: rng.random_range(-3.0..3.0),
                noise: rng.random_range(3.0..12.0),
                upside_down: rng.random_bool(0.25),
                quarter: [0, 0, 90, 270][rng.random_range(0..4)],
                edges: rng.random_bool(0.3),
                punch_holes: rng.random_bool(0.3),
                blur: u32::from(rng.random_bool(0.15)),
            };
            let quality = rng.random_range(45..85);
            if i < n {
                let qr = QrPrint { size_mm: rng.random_range(12.0..30.0), ink: if rng.random_bool(0.3) { rng.random_range(90..140) } else { 15 } };
                let (sheet, payload) = slip_sheet(i, &p, &g, dpi, paper, qr);
                let desc = format!("{dpi} dpi, QR {:.0} mm ink {}, paper {paper}, JPEG q{quality}, {d:?}", qr.size_mm, qr.ink);
                (jpeg_bytes(&scan(sheet, &d, paper, &mut rng), quality), Some(payload), desc)
            } else {
                let kind = [DocKind::AvisImposition, DocKind::BulletinSalaire, DocKind::QuittanceLoyer, DocKind::Cni, DocKind::ContratTravail][i % 5];
                let sheet = draw_document(kind, 0, &p, dpi, paper, &mut rng);
                (jpeg_bytes(&scan(sheet, &d, paper, &mut rng), quality), None, format!("{kind:?}, {dpi} dpi"))
            }
        })
        .collect();
    let search = QrSearch::default();
    let (mut found, mut false_slips, mut wrong) = (0, 0, 0);
    let (mut t_search, mut t_bin, mut t_total) = (Vec::new(), Vec::new(), Vec::new());
    let mut misses = Vec::new();
    for (jpeg, payload, desc) in &cases {
        let t0 = Instant::now();
        let raster = raster_of(jpeg);
        let t1 = Instant::now();
        // The bitonal page is made once per page for everything (blank, orientation, storage).
        let st = tile_stats(&raster.gray, raster.dpi);
        let bits = binarize(&raster.gray, &st, MIN_CONTRAST);
        let t2 = Instant::now();
        let hits = find_qr_codes_in(&raster.gray, &bits, &search);
        let t3 = Instant::now();
        t_search.push(ms(t3 - t2));
        t_bin.push(ms(t3 - t1));
        t_total.push(ms(t3 - t0));
        let slip = hits.iter().find(|h| !matches!(parse_payload(&h.payload), SlipParse::NotASlip));
        match (payload, slip) {
            (Some(p), Some(h)) if h.payload == p.as_bytes() => found += 1,
            (Some(_), Some(_)) => wrong += 1,
            (Some(_), None) => misses.push(desc),
            (None, Some(_)) => false_slips += 1,
            (None, None) => {}
        }
    }
    println!("  found and parsed: {found}/{n} = {:.2} %   wrong payloads: {wrong}   false slips: {false_slips}", 100.0 * found as f64 / n as f64);
    for m in misses.iter().take(5) {
        println!("  missed: {m}");
    }
    println!(
        "  slip search per page (1 thread), on the bitonal page: median {:.1} ms, p90 {:.1} ms; with binarisation: median {:.1} ms; with the file's decode: median {:.1} ms, p90 {:.1} ms",
        median(t_search.clone()),
        quantile(&t_search, 0.9),
        median(t_bin.clone()),
        median(t_total.clone()),
        quantile(&t_total, 0.9)
    );
    let slip_only: Vec<f64> = t_search[..n].to_vec();
    let other: Vec<f64> = t_search[n..].to_vec();
    println!("  search median on slip pages {:.1} ms, on other pages {:.1} ms", median(slip_only), median(other));
}

/// The sheet of a fiche, a bordereau or an attestation (by `i`), with its payload.
fn slip_sheet(i: usize, p: &Person, g: &Guichet, dpi: f32, paper: u8, qr: QrPrint) -> (Scan, String) {
    match i % 3 {
        0 => {
            let pl = format!("SNE-FR|1|{}|{}|{}|{}|2|5|2026-11-16", p.numero_unique, p.nom, p.prenoms, p.date_naissance);
            (draw_fiche(p, 2, 5, &pl, dpi, paper, qr), pl)
        }
        1 => {
            let pl = format!("SNE-BT|1|{}|{}|3|17|2026-11-18", g.numero, g.departement);
            (draw_bordereau(g, 3, 17, &pl, dpi, paper, qr), pl)
        }
        _ => {
            let pl = format!("SNE-AT|1|{}|REN|2026-02-01", p.numero_unique);
            (draw_attestation(p, &pl, dpi, paper, qr), pl)
        }
    }
}

/// The slip codes that printing and scanning damage most, `n` of each: faint (a worn toner
/// cartridge: modules 150-195 on paper 215-250), blurred (scanner out of focus, blur radius
/// 1.5-3 px at 300 dpi) and small (10-13 mm codes at 200 dpi). Target: 99.5 % read.
fn bench_hard_slip_codes(n: usize) {
    println!("== slip codes, hard: {n} faint + {n} blurred + {n} small");
    let classes = ["faint", "blurred", "small"];
    let cases: Vec<(usize, Vec<u8>, String, String)> = (0..3 * n)
        .into_par_iter()
        .map(|i| {
            let class = i / n;
            let mut rng = SmallRng::seed_from_u64(9000 + i as u64);
            let g = guichet(&mut rng);
            let p = person(&mut rng, &g.departement, &g.numero);
            let paper: u8 = rng.random_range(215..250);
            let mut d = ScanDefects {
                skew_deg: rng.random_range(-3.0..3.0),
                noise: rng.random_range(3.0..10.0),
                upside_down: rng.random_bool(0.25),
                ..ScanDefects::default()
            };
            let (dpi, qr) = match class {
                0 => (300.0, QrPrint { size_mm: rng.random_range(12.0..25.0), ink: rng.random_range(150..196).min(paper.saturating_sub(20)) }),
                1 => {
                    d.blur = rng.random_range(2..=3);
                    (300.0, QrPrint { size_mm: rng.random_range(15.0..25.0), ink: rng.random_range(15..100) })
                }
                _ => (200.0, QrPrint { size_mm: rng.random_range(10.0..13.0), ink: rng.random_range(15..120) }),
            };
            let (sheet, payload) = slip_sheet(i, &p, &g, dpi, paper, qr);
            let quality = rng.random_range(45..85);
            let desc = format!("{} {dpi} dpi, QR {:.1} mm ink {}, paper {paper}, JPEG q{quality}, blur {}", classes[class], qr.size_mm, qr.ink, d.blur);
            (class, jpeg_bytes(&scan(sheet, &d, paper, &mut rng), quality), payload, desc)
        })
        .collect();
    let search = QrSearch::default();
    let mut read = [0usize; 3];
    let mut misses = Vec::new();
    let mut times = Vec::new();
    for (class, jpeg, payload, desc) in &cases {
        let raster = raster_of(jpeg);
        let t = Instant::now();
        let st = tile_stats(&raster.gray, raster.dpi);
        let bits = binarize(&raster.gray, &st, MIN_CONTRAST);
        let hits = find_qr_codes_in(&raster.gray, &bits, &search);
        times.push(ms(t.elapsed()));
        if hits.iter().any(|h| h.payload == payload.as_bytes()) {
            read[*class] += 1;
        } else {
            misses.push(desc);
            // BENCH_DUMP_MISSES=dir keeps the missed pages, to look at.
            if let Some(dir) = std::env::var_os("BENCH_DUMP_MISSES") {
                let _ = std::fs::write(Path::new(&dir).join(format!("miss-{}.jpg", misses.len())), jpeg);
            }
        }
    }
    for (c, name) in classes.iter().enumerate() {
        println!("  {name}: {}/{n} = {:.2} %", read[c], 100.0 * read[c] as f64 / n as f64);
    }
    let all: usize = read.iter().sum();
    println!("  all hard codes read: {all}/{} = {:.2} %   (target 99.5 %)", 3 * n, 100.0 * all as f64 / (3 * n) as f64);
    for m in misses.iter().take(8) {
        println!("  missed: {m}");
    }
    println!("  binarisation and search per slip page (1 thread): median {:.1} ms, p90 {:.1} ms", median(times.clone()), quantile(&times, 0.9));
}

/// Blank backs (bleed-through, noise, grey paper, edges, punch holes) against nearly blank pages.
fn bench_blank(n: usize) {
    println!("== blank pages: {n} blank backs (bleed-through 5-30 %) + {n} printed pages (a third one-line pages, a quarter faint print)");
    let cases: Vec<(Vec<u8>, bool, String)> = (0..2 * n)
        .into_par_iter()
        .map(|i| {
            let mut rng = SmallRng::seed_from_u64(5000 + i as u64);
            let dpi = if rng.random_bool(0.3) { 200.0 } else { 300.0 };
            let g = guichet(&mut rng);
            let p = person(&mut rng, &g.departement, &g.numero);
            let paper = if rng.random_bool(0.3) { rng.random_range(200..225) } else { rng.random_range(230..252) };
            let d = ScanDefects {
                skew_deg: rng.random_range(-2.0..2.0),
                noise: rng.random_range(2.0..10.0),
                edges: rng.random_bool(0.4),
                punch_holes: rng.random_bool(0.4),
                ..ScanDefects::default()
            };
            let kind = if i % 3 == 0 { DocKind::CourteMention } else { DocKind::ALL[rng.random_range(0..DocKind::ALL.len())] };
            let front = scan(draw_document(kind, 0, &p, dpi, paper, &mut rng), &d, paper, &mut rng);
            if i < n {
                let bleed = rng.random_range(0.05..0.3);
                let back = blank_back(&front, paper, bleed, d.noise, &mut rng);
                let back = scan(back, &ScanDefects { skew_deg: 0.0, ..d }, paper, &mut rng);
                (jpeg_bytes(&back, 70), true, format!("blank back of {kind:?}, {dpi} dpi, paper {paper}, bleed {bleed:.2}, {d:?}"))
            } else if i % 4 == 1 {
                // Faint print (a worn toner cartridge): ink at 45 % of its usual contrast.
                let faint = match &front {
                    Scan::Gray(g) => Scan::Gray(GrayImage::from_fn(g.width(), g.height(), |x, y| {
                        let v = g.get_pixel(x, y).0[0] as f32;
                        image::Luma([(paper as f32 - (paper as f32 - v).max(0.0) * 0.45) as u8])
                    })),
                    other => other.clone(),
                };
                (jpeg_bytes(&faint, 70), false, format!("faint {kind:?}, {dpi} dpi, paper {paper}, {d:?}"))
            } else {
                (jpeg_bytes(&front, 70), false, format!("{kind:?}, {dpi} dpi, paper {paper}, {d:?}"))
            }
        })
        .collect();
    let params = AnalysisParams::default();
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    for (jpeg, blank, desc) in &cases {
        let a = analyse_page(raster_of(jpeg), &params);
        match (blank, a.blank) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            _ => {}
        }
        if *blank != a.blank && fp + fneg <= 5 {
            println!("  miss ({} inked cells): {desc}", a.ink_cells);
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fneg).max(1) as f64;
    println!("  precision {:.2} %  recall {:.2} %  (false blanks {fp}, missed blanks {fneg})", 100.0 * precision, 100.0 * recall);
}

/// Light PDF: size and encode cost of text and picture pages; OCR legibility kept.
fn bench_light_pdf(n: usize, n_ocr: usize) {
    println!("== light PDF: {n} text pages + {n} photo/ID pages at 300 dpi (JPEG scans)");
    let text_kinds =
        [DocKind::AvisImposition, DocKind::BulletinSalaire, DocKind::QuittanceLoyer, DocKind::AttestationCaf, DocKind::ContratTravail, DocKind::ActeNaissance];
    let cases: Vec<(Vec<u8>, Vec<String>, bool)> = (0..2 * n)
        .into_par_iter()
        .map(|i| {
            let mut rng = SmallRng::seed_from_u64(9000 + i as u64);
            let g = guichet(&mut rng);
            let p = person(&mut rng, &g.departement, &g.numero);
            let paper = if rng.random_bool(0.25) { rng.random_range(205..225) } else { rng.random_range(232..250) };
            let kind = if i < n { text_kinds[i % text_kinds.len()] } else { [DocKind::Cni, DocKind::CniRectoVerso][i % 2] };
            let (sheet, words) = draw_document_with_text(kind, 0, &p, 300.0, paper, &mut rng);
            let d = ScanDefects { skew_deg: rng.random_range(-1.0..1.0), noise: 5.0, ..ScanDefects::default() };
            (jpeg_bytes(&scan(sheet, &d, paper, &mut rng), 85), words, i < n)
        })
        .collect();
    let params = EncodeParams::default();
    let (mut text_kb, mut photo_kb, mut text_ms, mut photo_ms, mut src_kb) = (vec![], vec![], vec![], vec![], vec![]);
    let mut kinds = [0usize; 4];
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut ocr_src, mut ocr_out) = (Vec::new(), Vec::new());
    for (i, (jpeg, words, is_text)) in cases.iter().enumerate() {
        let raster = raster_of(jpeg);
        src_kb.push(jpeg.len() as f64 / 1024.0);
        let analysis = analyse_page(raster.clone(), &AnalysisParams::default());
        let content = analysis.content;
        let t0 = Instant::now();
        let st = tile_stats(&raster.gray, raster.dpi);
        let bits = binarize(&raster.gray, &st, MIN_CONTRAST);
        let enc = encode_page(&raster, &bits, content, &params);
        let t = ms(t0.elapsed());
        kinds[match enc.codec {
            PageCodec::CcittG4 | PageCodec::Jbig2 => 0,
            PageCodec::Mixed => 1,
            PageCodec::JpegGray => 2,
            PageCodec::JpegRgb => 3,
        }] += 1;
        if *is_text {
            text_kb.push(enc.data.len() as f64 / 1024.0);
            text_ms.push(t);
            if ocr_src.len() < n_ocr {
                let out = decode_encoded(&enc).expect("decodes");
                if let (Some(a), Some(b)) =
                    (ocr_accuracy(&png(&raster.gray), words, tmp.path(), &format!("s{i}")), ocr_accuracy(&png(&out), words, tmp.path(), &format!("o{i}")))
                {
                    ocr_src.push(a);
                    ocr_out.push(b);
                }
            }
        } else {
            photo_kb.push(enc.data.len() as f64 / 1024.0);
            photo_ms.push(t);
        }
    }
    println!("  source scans: median {:.0} KB a page (JPEG q85)", median(src_kb));
    println!("  stored as: {} bitonal, {} mixed, {} grey JPEG, {} colour JPEG", kinds[0], kinds[1], kinds[2], kinds[3]);
    println!(
        "  text pages:     median {:.1} KB, p90 {:.1} KB; encode median {:.1} ms, p90 {:.1} ms",
        median(text_kb.clone()),
        quantile(&text_kb, 0.9),
        median(text_ms.clone()),
        quantile(&text_ms, 0.9)
    );
    println!(
        "  photo/ID pages: median {:.1} KB, p90 {:.1} KB; encode median {:.1} ms, p90 {:.1} ms",
        median(photo_kb.clone()),
        quantile(&photo_kb, 0.9),
        median(photo_ms.clone()),
        quantile(&photo_ms, 0.9)
    );
    if ocr_src.is_empty() {
        println!("  OCR comparison skipped (no `tesseract` command, or BENCH_OCR=0)");
    } else {
        let mean = |v: &[f64]| 100.0 * v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "  OCR word accuracy on {} text pages (tesseract fra): original scan {:.1} %, light PDF page {:.1} %",
            ocr_src.len(),
            mean(&ocr_src),
            mean(&ocr_out)
        );
    }
}

/// Pages stored as pictures (JPEG): dense forms on tinted paper, in grey and in colour, and
/// phone photos of them (straightened by the job): size and OCR word accuracy of the stored
/// page against the page it was made from, for the stored resolutions and qualities given.
fn bench_picture_legibility(n: usize, settings: &[(f32, u8)]) {
    use scanbureau_fixtures::hard::phone_photo;
    use scanbureau_pipeline::geometry::straighten;
    println!("== pictures kept legible: {n} dense grey forms, {n} colour forms, {n} phone photos (OCR word accuracy, tesseract fra)");
    let kinds = [DocKind::AvisImposition, DocKind::BulletinSalaire, DocKind::AttestationCaf];
    let tmp = tempfile::tempdir().expect("tmp");
    // Per kind: its label, pages, the sources' accuracies, and per setting (KB, accuracy) a page.
    type KindRow<'a> = (&'a str, usize, Vec<f64>, Vec<Vec<(f64, f64)>>);
    let mut rows: Vec<KindRow> = Vec::new();
    for (label, variant) in [("grey form", 0), ("colour form", 1), ("phone photo", 2)] {
        let cases: Vec<(PageRaster, Vec<String>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut rng = SmallRng::seed_from_u64(12_000 + i as u64 + 100 * variant as u64);
                let g = guichet(&mut rng);
                let p = person(&mut rng, &g.departement, &g.numero);
                let paper = rng.random_range(208..226);
                let (sheet, words) = draw_document_with_text(kinds[i % kinds.len()], 0, &p, 300.0, paper, &mut rng);
                let sheet = if variant == 0 { sheet } else { scanbureau_fixtures::page::Scan::Rgb(tinted(&sheet.to_gray(), i)) };
                let page = if variant == 2 {
                    phone_photo(&sheet, 3000, 8.0, false, &mut rng)
                } else {
                    scan(sheet, &ScanDefects { noise: 4.0, ..ScanDefects::default() }, paper, &mut rng)
                };
                let raster = raster_of(&jpeg_bytes(&page, 90));
                (straighten(raster).0, words)
            })
            .collect();
        let mut src = Vec::new();
        let mut per_setting = vec![Vec::new(); settings.len()];
        for (i, (raster, words)) in cases.iter().enumerate() {
            let Some(a) = ocr_accuracy(&png(&raster.gray), words, tmp.path(), &format!("p{variant}-{i}")) else { continue };
            src.push(a);
            let st = tile_stats(&raster.gray, raster.dpi);
            let bits = binarize(&raster.gray, &st, MIN_CONTRAST);
            let content = if raster.rgb.is_some() { PageContent::Colour } else { PageContent::Photo };
            for (k, &(dpi, quality)) in settings.iter().enumerate() {
                let enc = encode_page(raster, &bits, content, &EncodeParams { picture_dpi: dpi, jpeg_quality: quality, ..EncodeParams::default() });
                let out = decode_encoded(&enc).expect("decodes");
                let b = ocr_accuracy(&png(&out), words, tmp.path(), &format!("q{variant}-{i}-{k}")).unwrap_or(0.0);
                per_setting[k].push((b, enc.data.len() as f64 / 1024.0));
            }
        }
        rows.push((label, src.len(), src, per_setting));
    }
    let mean = |v: &[f64]| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64;
    for (label, n, src, per) in &rows {
        println!("  {label:<12} {n:>3} pages: original {:.1} %", mean(src));
        for ((dpi, q), r) in settings.iter().zip(per) {
            let acc: Vec<f64> = r.iter().map(|x| x.0).collect();
            let kb: Vec<f64> = r.iter().map(|x| x.1).collect();
            let worst = src.iter().zip(&acc).map(|(a, b)| 100.0 * (a - b)).fold(f64::MIN, f64::max);
            println!(
                "      stored at {dpi:>3.0} dpi q{q}: {:.1} % (mean loss {:.1} pt, worst page {:.1} pt), median {:.0} KB, max {:.0} KB",
                mean(&acc),
                mean(src) - mean(&acc),
                worst,
                median(kb.clone()),
                kb.iter().cloned().fold(0.0, f64::max)
            );
        }
    }
}

/// The whole job on a generated counter mailing, in its own process, all cores.
fn bench_whole_job(requests: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(77, MailingKind::Guichet, requests, Scanning { upside_down_rate: 0.05, noise: 4.0, ..Scanning::default() });
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(&scans).expect("mkdir");
    // Pages are written as they are generated: a 1,000-page mailing is never in memory.
    let (truth, people) = generate_into(&spec, &mut |i, page| {
        std::fs::write(scans.join(format!("scan-{:05}.jpg", i + 1)), jpeg_bytes(&page, 75)).expect("write page");
    });
    let pages = truth.pages.len();
    std::fs::write(dir.path().join("registry.json"), registry_json(&people, std::slice::from_ref(&spec.guichet))).expect("write");
    let bytes: u64 = std::fs::read_dir(dir.path().join("scans")).expect("ls").flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "== whole job: counter mailing of {pages} pages at 300 dpi ({:.0} MB of JPEG, {:.2} MB a page), 2 cores, OCR and classification included",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / pages as f64
    );
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanbureau"))
        .args(["process", "--received-at", "2026-11-18T09:12:00+01:00", "--json", "--out"])
        .arg(dir.path().join("out"))
        .arg("--registry")
        .arg(dir.path().join("registry.json"))
        .arg(dir.path().join("scans"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run scanbureau");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kb = peak_kb.max(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0));
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = t0.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).expect("report")).expect("json");
    let accounted = report["pages"].as_array().map(|a| a.len()).unwrap_or(0);
    println!(
        "  exit {status}: {pages} pages in {secs:.1} s = {:.1} pages/s; peak memory {:.0} MB; {accounted}/{pages} pages in the report",
        pages as f64 / secs,
        peak_kb as f64 / 1024.0
    );
    // Documents cut exactly and filed under the right type, against the generator's truth.
    let (mut docs, mut exact, mut review) = (0, 0, 0);
    for (rt, rr) in truth.requests.iter().zip(report["requests"].as_array().into_iter().flatten()) {
        for d in &rt.docs {
            docs += 1;
            let piece = rr["pieces"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["pages"].as_array().is_some_and(|a| a.first().and_then(|v| v.as_u64()) == Some(d.pages[0] as u64)));
            let Some(p) = piece else { continue };
            let pages: Vec<u64> = p["pages"].as_array().into_iter().flatten().filter_map(|v| v.as_u64()).collect();
            review += (p["status"] == "review") as usize;
            exact += (pages == d.pages.iter().map(|&v| v as u64).collect::<Vec<_>>() && p["type"] == d.type_code && p["status"] == "uploaded") as usize;
        }
    }
    println!("  {docs} documents: {exact} cut and filed exactly ({:.1} %), {review} sent to review", 100.0 * exact as f64 / docs.max(1) as f64);
}

fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let t = Instant::now();
    // A size of 0 skips that part.
    let run = |n: usize, f: &dyn Fn(usize)| {
        if n > 0 {
            f(n)
        }
    };
    run(env_usize("BENCH_SLIPS", 300), &bench_slips);
    run(env_usize("BENCH_HARD_CODES", 200), &bench_hard_slip_codes);
    run(env_usize("BENCH_BLANK", 200), &bench_blank);
    let ocr =
        if Command::new("tesseract").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() { env_usize("BENCH_OCR", 12) } else { 0 };
    run(env_usize("BENCH_PDF", 40), &|n| bench_light_pdf(n, ocr));
    // The stored picture pages: the default, and the 150 dpi / q55 of before, for comparison.
    let now = EncodeParams::default();
    run(if ocr > 0 { env_usize("BENCH_PICTURES", 6) } else { 0 }, &|n| bench_picture_legibility(n, &[(150.0, 55), (now.picture_dpi, now.jpeg_quality)]));
    run(env_usize("BENCH_REQUESTS", 60), &bench_whole_job);
    println!("(benchmarks took {:.0} s)", t.elapsed().as_secs_f64());
}
