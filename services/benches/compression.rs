//! Light pages: how small and how legible each kind of page is stored, and what encoding costs,
//! beside OCRmyPDF -O3 and Ghostscript /ebook on the same pages.
//!
//!   cargo bench -p scanbureau --bench compression
//!
//! Pages: generated ones of every kind the bureau receives (COMPRESSION_N per kind, default 3:
//! letters, dense grey and colour tax notices, pay slips and forms with tinted tables, identity
//! card copies in grey and colour, phone photos), and with REAL_DOCS=folder (the real-documents
//! set, see `real_documents`) its scanned and photographed image files.
//!
//! For each page: the storage the job chooses (analysis, then `store_page`), the bytes of the
//! one-page PDF, encode time on one core (measured alone, before any OCR runs), and legibility:
//! every PDF is drawn by poppler (`pdftoppm -r 300`) and read by Tesseract; on generated pages
//! against the known text (word recall, the original scan read the same way beside it), on
//! every page as the share of the words read with confidence on the original that are read
//! again. That share is judged only on pages whose reading holds still: the original's twin
//! (its pixels at quality 91 rather than 92) must keep 99 % of those words; on the others the
//! reader's own spread is printed beside it. The same original page, as a one-page PDF, goes
//! through `ocrmypdf -O3 --tesseract-timeout 0` (optimisation only) and `gs
//! -dPDFSETTINGS=/ebook` when those commands are there (`scripts/setup.sh --bench-tools`
//! installs them; COMPRESSION_OTHERS=0 leaves them out). COMPRESSION_KEEP=folder keeps the
//! PDFs and the pages as drawn, to look at them. COMPRESSION_LEGIBILITY=0 leaves the reading
//! out: sizes, storage and encode times only, in a minute, for trying a change before measuring
//! it whole. COMPRESSION_INSET_DPI and COMPRESSION_INSET_QUALITY store the pictures among a
//! mixed page's print otherwise; COMPRESSION_PICTURE_DPI and COMPRESSION_PICTURE_QUALITY the
//! pages stored whole as JPEG.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use image::{GrayImage, ImageFormat};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use scanbureau_fixtures::docs::{DocKind, draw_document_with_text};
use scanbureau_fixtures::hard::phone_photo;
use scanbureau_fixtures::page::{Scan, ScanDefects, scan};
use scanbureau_fixtures::people::{guichet, person};
use scanbureau_fixtures::write::jpeg_bytes;
use scanbureau_pipeline::analysis::{AnalysisParams, analyse_page};
use scanbureau_pipeline::binarize::{Bitmap, MIN_CONTRAST, binarize, tile_stats};
use scanbureau_pipeline::geometry::straighten;
use scanbureau_pipeline::jbig2;
use scanbureau_pipeline::lightpdf::{EncodeParams, EncodedPage, PageCodec, PageContent, Taken, encode_g4, store_page, write_pdf};
use scanbureau_pipeline::raster::{Limits, PageBlob, PageRaster, decode_page};

mod common;
use common::{LEGIBLE_ON_ORIGINAL, confident, env_usize, median, multiset_hits, ocr_read, quantile, tinted, words_of};

/// A page to store: where it comes from, the file the bureau received, the text printed on it
/// when known.
struct Source {
    kind: String,
    /// The file's name, or the generated page's kind and number.
    name: String,
    bytes: Vec<u8>,
    format: ImageFormat,
    words: Option<Vec<String>>,
}

/// An identity card copied in colour: the card's print toned, the paper around it left white.
fn colour_card(g: &GrayImage) -> image::RgbImage {
    image::RgbImage::from_fn(g.width(), g.height(), |x, y| {
        let v = g.get_pixel(x, y).0[0] as f32;
        if v > 225.0 {
            image::Rgb([v as u8, v as u8, v as u8])
        } else {
            image::Rgb([(v * 0.92 + 18.0) as u8, (v * 0.86 + 10.0) as u8, (v * 0.8 + 40.0).min(255.0) as u8])
        }
    })
}

fn generated(n: usize) -> Vec<Source> {
    let kinds: [(&str, DocKind); 8] = [
        ("letter", DocKind::ContratTravail),
        ("grey notice", DocKind::AvisImposition),
        ("colour notice", DocKind::AvisImposition),
        ("pay slip", DocKind::BulletinSalaire),
        ("colour form", DocKind::AttestationCaf),
        ("ID copy grey", DocKind::Cni),
        ("ID copy colour", DocKind::Cni),
        ("phone photo", DocKind::AvisImposition),
    ];
    (0..kinds.len() * n)
        .into_par_iter()
        .map(|i| {
            let (label, kind) = kinds[i / n];
            let mut rng = SmallRng::seed_from_u64(31_000 + i as u64);
            let g = guichet(&mut rng);
            let p = person(&mut rng, &g.departement, &g.numero);
            let paper = if label == "letter" || label.starts_with("ID") { rng.random_range(238..250) } else { rng.random_range(210..228) };
            let (sheet, words) = draw_document_with_text(kind, 0, &p, 300.0, paper, &mut rng);
            let grey = sheet.to_gray();
            let sheet = match label {
                "grey notice" => Scan::Gray(image::DynamicImage::ImageRgb8(tinted(&grey, i)).into_luma8()),
                "colour notice" | "pay slip" | "colour form" => Scan::Rgb(tinted(&grey, i)),
                "ID copy colour" => Scan::Rgb(colour_card(&grey)),
                _ => sheet,
            };
            let page = if label == "phone photo" {
                phone_photo(&sheet, 3000, 8.0, false, &mut rng)
            } else {
                scan(sheet, &ScanDefects { skew_deg: rng.random_range(-0.8..0.8), noise: 4.0, ..ScanDefects::default() }, paper, &mut rng)
            };
            Source {
                kind: label.to_string(),
                name: format!("{label} {i}"),
                bytes: jpeg_bytes(&page, 90),
                format: ImageFormat::Jpeg,
                words: Some(words.iter().flat_map(|w| words_of(w)).collect()),
            }
        })
        .collect()
}

/// The scanned and photographed image files of the real-documents set.
fn real(dir: &Path) -> Vec<Source> {
    let Ok(truth) = std::fs::read_to_string(dir.join("truth.csv")) else { return Vec::new() };
    truth
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            let (file, kind) = (*cols.first()?, *cols.get(3)?);
            let format = ImageFormat::from_path(file).ok().filter(|f| matches!(f, ImageFormat::Jpeg | ImageFormat::Png))?;
            let bytes = std::fs::read(dir.join("files").join(file)).ok()?;
            Some(Source { kind: format!("real {kind}"), name: file.to_string(), bytes, format, words: None })
        })
        .collect()
}

/// What one way of storing made of a page.
#[derive(Default, Clone)]
struct Stored {
    kb: f64,
    ms: f64,
    /// Word recall against the known text (generated pages).
    known: Option<f64>,
    /// Share of the original's confidently read words read again.
    kept: Option<f64>,
}

/// A tool's output for a page: its PDF, encode ms and where it was written.
type ToolRun = (Vec<u8>, f64, PathBuf);

struct Row {
    kind: String,
    source: String,
    /// The page as straightened and as stored: pixels and resolution.
    dims: String,
    codec: &'static str,
    /// What the analysis said the page holds, and the storage chosen for it.
    content: PageContent,
    choice: String,
    original_known: Option<f64>,
    /// Share of the original's confident words read again on its twin: the same pixels at
    /// quality 91 rather than 92, a change no eye sees. Below 99 %, Tesseract's reading of the
    /// page moves with noise, and so would a stored page's however faithful.
    twin_kept: Option<f64>,
    tools: Vec<(&'static str, Option<Stored>)>,
}

fn render_png(pdf: &Path, out: &Path) -> Option<PathBuf> {
    let ok = Command::new("pdftoppm")
        .args(["-r", "300", "-gray", "-png", "-f", "1", "-l", "1", "-singlefile"])
        .arg(pdf)
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    ok.then(|| out.with_extension("png"))
}

/// What Tesseract reads on a PDF's first page drawn by poppler, with confidences.
fn read_pdf(pdf: &Path, scratch: &Path, name: &str) -> Option<Vec<(String, f64)>> {
    ocr_read(&render_png(pdf, &scratch.join(name))?)
}

/// Share of `expected` found among the words read.
fn recall(expected: &[String], read: &[(String, f64)]) -> f64 {
    multiset_hits(expected, &confident(read, 0.0)) as f64 / expected.len().max(1) as f64
}

fn tool_run(cmd: &mut Command, out: &Path) -> Option<(Vec<u8>, f64)> {
    let t0 = Instant::now();
    let ok = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?.success();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    ok.then(|| std::fs::read(out).ok().map(|b| (b, ms))).flatten()
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A page's storage in the words of the issue's targets: a mixed page with pictures kept as
/// insets (an identity card on a sheet) is held to the photo and identity target.
fn codec_label(p: &EncodedPage) -> &'static str {
    match p.codec {
        PageCodec::CcittG4 | PageCodec::Jbig2 => "bitonal",
        PageCodec::Mixed if p.mixed.as_ref().is_some_and(|m| !m.insets.is_empty()) => "mixed+pictures",
        PageCodec::Mixed => "mixed",
        PageCodec::JpegGray | PageCodec::JpegRgb => "JPEG",
    }
}

/// The print of every bitonal and mixed page, in the JBIG2 the job stores and in the CCITT G4 it
/// stored before: bytes and encode time on one core, the same pixels either way.
fn print_stencils(stored: &[(PageRaster, PageContent, EncodedPage, f64)]) {
    let (mut jbig2, mut g4, mut jbig2_ms, mut g4_ms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, _, enc, _) in stored {
        if !matches!(enc.codec, PageCodec::Jbig2 | PageCodec::Mixed) {
            continue;
        }
        let drawn = jbig2::decode(&enc.data, enc.width, enc.height).expect("the stored print decodes");
        let bits = Bitmap { width: enc.width, height: enc.height, ink: drawn.as_raw().iter().map(|&v| u8::from(v == 0)).collect() };
        let t0 = Instant::now();
        let again = jbig2::encode(&bits);
        jbig2_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(again, enc.data, "the print codes to the same bytes");
        let t0 = Instant::now();
        g4.push(encode_g4(&bits).len() as f64 / 1024.0);
        g4_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        jbig2.push(enc.data.len() as f64 / 1024.0);
    }
    if jbig2.is_empty() {
        return;
    }
    let (total, total_g4) = (jbig2.iter().sum::<f64>(), g4.iter().sum::<f64>());
    println!(
        "print of {} bitonal and mixed pages: JBIG2 {:.1} KB median, {:.1} max, {:.0} KB in all; CCITT G4 {:.1} KB median, {:.1} max, {:.0} KB in all ({:+.1} %); encode {:.0} ms median, {:.0} max (G4 {:.0}, {:.0})",
        jbig2.len(),
        median(jbig2.clone()),
        quantile(&jbig2, 1.0),
        total,
        median(g4.clone()),
        quantile(&g4, 1.0),
        total_g4,
        100.0 * (total / total_g4 - 1.0),
        median(jbig2_ms.clone()),
        quantile(&jbig2_ms, 1.0),
        median(g4_ms.clone()),
        quantile(&g4_ms, 1.0),
    );
}

fn main() {
    let n = env_usize("COMPRESSION_N", 3);
    let mut sources = generated(n);
    if let Ok(dir) = std::env::var("REAL_DOCS") {
        sources.extend(real(Path::new(&dir)));
    }
    // COMPRESSION_INSET_* and COMPRESSION_PICTURE_* try another storage of the pictures among a
    // mixed page's print (identity cards copied on a sheet) and of the pages stored whole as
    // JPEG, without rebuilding.
    let defaults = EncodeParams::default();
    let quality = |name: &str, default: u8| env_usize(name, usize::from(default)).clamp(1, 100) as u8;
    let params = EncodeParams {
        inset_dpi: env_usize("COMPRESSION_INSET_DPI", defaults.inset_dpi as usize) as f32,
        inset_quality: quality("COMPRESSION_INSET_QUALITY", defaults.inset_quality),
        picture_dpi: env_usize("COMPRESSION_PICTURE_DPI", defaults.picture_dpi as usize) as f32,
        jpeg_quality: quality("COMPRESSION_PICTURE_QUALITY", defaults.jpeg_quality),
        ..defaults
    };
    if (params.inset_dpi, params.inset_quality) != (defaults.inset_dpi, defaults.inset_quality) {
        println!("   (pictures among print kept at {:.0} dpi, quality {})", params.inset_dpi, params.inset_quality);
    }
    if (params.picture_dpi, params.jpeg_quality) != (defaults.picture_dpi, defaults.jpeg_quality) {
        println!("   (pages stored whole as JPEG at {:.0} dpi, quality {})", params.picture_dpi, params.jpeg_quality);
    }
    // First, alone on the machine: what the job stores, and the encoding's cost on one core.
    let mut stored: Vec<(PageRaster, PageContent, EncodedPage, f64)> = Vec::new();
    for s in &sources {
        let blob = PageBlob::ImageFile { data: std::sync::Arc::new(s.bytes.clone()), format: s.format };
        let raster = decode_page(&blob, &Limits::default()).expect("the page decodes");
        let analysis = analyse_page(raster.clone(), &AnalysisParams::default());
        let content = analysis.content;
        let (page, _) = straighten(raster);
        let bits = binarize(&page.gray, &tile_stats(&page.gray, page.dpi), MIN_CONTRAST);
        let t0 = Instant::now();
        let enc = store_page(&page, &bits, content, Taken::from(&analysis.corrections), &params);
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        stored.push((page, content, enc, ms));
    }
    let legibility = std::env::var("COMPRESSION_LEGIBILITY").map_or(true, |v| v != "0");
    let ocr = legibility && have("tesseract", "--version") && have("pdftoppm", "-v");
    // COMPRESSION_OTHERS=0 leaves OCRmyPDF and Ghostscript out (quicker, for trying a change).
    let others = std::env::var("COMPRESSION_OTHERS").map_or(true, |v| v != "0");
    let ocrmypdf = others && ocr && have("ocrmypdf", "--version");
    let gs = others && have("gs", "--version");
    println!(
        "== light pages: {} pages ({n} generated per kind{}); legibility {}",
        sources.len(),
        if sources.iter().any(|s| s.words.is_none()) { " and the real set's image files" } else { "" },
        match (ocr, legibility) {
            (true, _) => "by Tesseract (fra) on pages drawn by poppler at 300 dpi",
            (false, true) => "skipped (no tesseract or pdftoppm)",
            (false, false) => "not measured (COMPRESSION_LEGIBILITY=0)",
        }
    );
    if !others {
        println!("   (OCRmyPDF and Ghostscript left out: COMPRESSION_OTHERS=0)");
    } else if !ocrmypdf || !gs {
        println!(
            "   (ocrmypdf {}, gs {}: scripts/setup.sh --bench-tools installs them)",
            if ocrmypdf { "found" } else { "missing" },
            if gs { "found" } else { "missing" }
        );
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // COMPRESSION_KEEP=folder keeps every page's PDFs and renders there, to look at.
    let scratch = std::env::var("COMPRESSION_KEEP").map_or_else(|_| tmp.path().to_path_buf(), PathBuf::from);
    let rows: Vec<Row> = sources
        .par_iter()
        .zip(stored.par_iter())
        .enumerate()
        .map(|(i, (s, (page, content, enc, ms)))| {
            let dir = scratch.join(format!("p{i}-{}", s.kind.replace(' ', "-")));
            std::fs::create_dir_all(&dir).expect("mkdir");
            // The original, as a one-page PDF (its JPEG as received, or the straightened page).
            let at_quality = |quality: u8| EncodedPage {
                codec: if page.rgb.is_some() { PageCodec::JpegRgb } else { PageCodec::JpegGray },
                width: page.width(),
                height: page.height(),
                page_w_pt: enc.page_w_pt,
                page_h_pt: enc.page_h_pt,
                data: match &page.rgb {
                    Some(rgb) => jpeg_bytes(&Scan::Rgb(rgb.clone()), quality),
                    None => jpeg_bytes(&Scan::Gray(page.gray.clone()), quality),
                },
                mixed: None,
                choice: String::new(),
                vector: None,
            };
            let input = dir.join("original.pdf");
            std::fs::write(&input, write_pdf(&[&at_quality(92)], "original")).expect("write");
            let ours = dir.join("ours.pdf");
            let our_pdf = write_pdf(&[enc], "stored");
            std::fs::write(&ours, &our_pdf).expect("write");
            let mut tools: Vec<(&'static str, Option<ToolRun>)> = vec![("scanbureau", Some((our_pdf, *ms, ours)))];
            if ocrmypdf {
                let out = dir.join("ocrmypdf.pdf");
                let r = tool_run(Command::new("ocrmypdf").args(["-O3", "--tesseract-timeout", "0", "--quiet", "--jobs", "1"]).arg(&input).arg(&out), &out);
                tools.push(("OCRmyPDF -O3", r.map(|(b, t)| (b, t, out))));
            }
            if gs {
                let out = dir.join("gs.pdf");
                let r = tool_run(
                    Command::new("gs")
                        .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite", "-dPDFSETTINGS=/ebook"])
                        .arg(format!("-sOutputFile={}", out.display()))
                        .arg(&input),
                    &out,
                );
                tools.push(("gs /ebook", r.map(|(b, t)| (b, t, out))));
            }
            // The original read once: all its words against the known text, the confident ones
            // as what a stored page must still show.
            let original = if ocr { read_pdf(&input, &dir, "original") } else { None };
            let original_known = original.as_ref().zip(s.words.as_deref()).map(|(r, w)| recall(w, r));
            let sure = original.as_ref().map(|r| confident(r, LEGIBLE_ON_ORIGINAL)).filter(|c| c.len() >= 10);
            let twin_kept = sure.as_deref().and_then(|c| {
                let twin = dir.join("twin.pdf");
                std::fs::write(&twin, write_pdf(&[&at_quality(91)], "twin")).expect("write");
                Some(recall(c, &read_pdf(&twin, &dir, "twin")?))
            });
            let tools = tools
                .into_iter()
                .map(|(name, r)| {
                    let stored = r.map(|(bytes, ms, path)| {
                        let read = if ocr { read_pdf(&path, &dir, &name.replace([' ', '/'], "_")) } else { None };
                        let known = read.as_ref().zip(s.words.as_deref()).map(|(r, w)| recall(w, r));
                        let kept = read.as_ref().zip(sure.as_deref()).map(|(r, c)| recall(c, r));
                        Stored { kb: bytes.len() as f64 / 1024.0, ms, known, kept }
                    });
                    (name, stored)
                })
                .collect();
            let dims = format!("{}×{} px at {:.0} dpi, stored {}×{}", page.width(), page.height(), page.dpi, enc.width, enc.height);
            Row {
                kind: s.kind.clone(),
                source: s.name.clone(),
                dims,
                codec: codec_label(enc),
                content: *content,
                choice: enc.choice.clone(),
                original_known,
                twin_kept,
                tools,
            }
        })
        .collect();
    let verbose = std::env::var("BENCH_VERBOSE").is_ok();
    let mut kinds: Vec<&str> = Vec::new();
    for r in &rows {
        if !kinds.contains(&r.kind.as_str()) {
            kinds.push(&r.kind);
        }
    }
    let pts = |v: Option<f64>| v.map_or("  -  ".to_string(), |v| format!("{:5.1}", 100.0 * v));
    for kind in &kinds {
        let of_kind: Vec<&Row> = rows.iter().filter(|r| r.kind == *kind).collect();
        let mut codecs: Vec<String> = Vec::new();
        for c in ["bitonal", "mixed", "mixed+pictures", "JPEG"] {
            let k = of_kind.iter().filter(|r| r.codec == c).count();
            if k > 0 {
                codecs.push(format!("{k} {c}"));
            }
        }
        let orig: Vec<f64> = of_kind.iter().filter_map(|r| r.original_known).collect();
        let orig_mean = (!orig.is_empty()).then(|| orig.iter().sum::<f64>() / orig.len() as f64);
        println!("  {kind:<14} {} pages, stored as {}; original scan read {} % of the known words", of_kind.len(), codecs.join(", "), pts(orig_mean));
        for t in 0..of_kind[0].tools.len() {
            let name = of_kind[0].tools[t].0;
            let s: Vec<&Stored> = of_kind.iter().filter_map(|r| r.tools[t].1.as_ref()).collect();
            if s.is_empty() {
                println!("      {name:<13} failed on every page");
                continue;
            }
            let kb: Vec<f64> = s.iter().map(|x| x.kb).collect();
            let ms: Vec<f64> = s.iter().map(|x| x.ms).collect();
            // Loss against the original, page by page, in points of word recall.
            let losses: Vec<f64> = of_kind.iter().filter_map(|r| Some(100.0 * (r.original_known? - r.tools[t].1.as_ref()?.known?))).collect();
            let kept: Vec<f64> = s.iter().filter_map(|x| x.kept).collect();
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            println!(
                "      {name:<13} {:6.1} KB median, {:6.1} max; {:6.0} ms median, {:6.0} max; known words {} % (worst page {} pt); confident words kept {} % (worst {})",
                median(kb.clone()),
                quantile(&kb, 1.0),
                median(ms.clone()),
                quantile(&ms, 1.0),
                pts(mean(&s.iter().filter_map(|x| x.known).collect::<Vec<_>>())),
                losses.iter().cloned().reduce(f64::max).map_or("-".to_string(), |l| format!("{:+.1}", -l)),
                pts(mean(&kept)),
                pts(kept.iter().cloned().reduce(f64::min)),
            );
        }
        if verbose {
            for r in &of_kind {
                let ours = r.tools[0].1.as_ref();
                let kb = ours.map_or(String::from("-"), |s| format!("{:.1} KB", s.kb));
                let kept = ours.and_then(|s| s.kept).map_or(String::from("-"), |k| format!("{:.1} %", 100.0 * k));
                let kept = match r.twin_kept {
                    Some(t) => format!("{kept} (twin {:.1} %)", 100.0 * t),
                    None => kept,
                };
                let ms = ours.map_or(String::from("-"), |s| format!("{:.0} ms", s.ms));
                let known =
                    r.original_known.zip(ours.and_then(|s| s.known)).map_or(String::new(), |(o, k)| format!(", known words {:+.1} pt", 100.0 * (k - o)));
                println!("        {} {}, {kb}, {ms}, kept {kept}{known} ({}; {:?}): {}", r.source, r.codec, r.dims, r.content, r.choice);
            }
        }
    }
    // The issue's targets, over our pages.
    let ours = |r: &Row| r.tools[0].1.clone();
    for (codec, limit) in [("bitonal", 20.0), ("mixed", 40.0), ("mixed+pictures", 60.0), ("JPEG", 60.0)] {
        let kb: Vec<f64> = rows.iter().filter(|r| r.codec == codec).filter_map(|r| ours(r).map(|s| s.kb)).collect();
        if !kb.is_empty() {
            let over = kb.iter().filter(|&&k| k > limit).count();
            println!(
                "target {codec:<14} ≤ {limit:.0} KB: median {:.1} KB, max {:.1} KB, {over} of {} pages over",
                median(kb.clone()),
                quantile(&kb, 1.0),
                kb.len()
            );
        }
    }
    print_stencils(&stored);
    let ms: Vec<f64> = rows.iter().filter_map(|r| ours(r).map(|s| s.ms)).collect();
    println!(
        "target encode ≤ 150 ms a page on one core: median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        median(ms.clone()),
        quantile(&ms, 0.9),
        quantile(&ms, 1.0)
    );
    if ocr {
        let losses: Vec<(f64, &str)> = rows.iter().filter_map(|r| Some((100.0 * (r.original_known? - ours(r)?.known?), r.kind.as_str()))).collect();
        let within = losses.iter().filter(|l| l.0 <= 1.0).count();
        let worst = losses.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map_or_else(|| "none".into(), |w| format!("{:.1} pt ({})", w.0, w.1));
        println!("target legibility within 1 point of the original (known words): {within} of {} generated pages; worst loss {worst}", losses.len());
        // Judged only where the reading holds still: on a page whose twin loses words, a
        // stored page's loss cannot be told from the reader's own spread.
        let stable = |r: &&Row| r.twin_kept.is_some_and(|t| t >= 0.99);
        let kept: Vec<(f64, &str)> = rows.iter().filter(stable).filter_map(|r| Some((100.0 * ours(r)?.kept?, r.kind.as_str()))).collect();
        let worst = kept.iter().min_by(|a, b| a.0.total_cmp(&b.0)).map_or_else(|| "none".into(), |w| format!("{:.1} % ({})", w.0, w.1));
        println!(
            "  confident words of the original read again, on pages whose twin keeps ≥ 99 % of them: {} of {} pages keep ≥ 99 %; worst {worst}",
            kept.iter().filter(|k| k.0 >= 99.0).count(),
            kept.len()
        );
        let unstable: Vec<(f64, f64)> = rows.iter().filter(|r| !stable(r)).filter_map(|r| Some((100.0 * r.twin_kept?, 100.0 * ours(r)?.kept?))).collect();
        if !unstable.is_empty() {
            let spread = |v: Vec<f64>| format!("{:.1}-{:.1} %", quantile(&v, 0.0), quantile(&v, 1.0));
            println!(
                "  {} pages read unsteadily (their twin keeps {}): stored, they keep {}; {} of them as many as their twin or more",
                unstable.len(),
                spread(unstable.iter().map(|u| u.0).collect()),
                spread(unstable.iter().map(|u| u.1).collect()),
                unstable.iter().filter(|u| u.1 >= u.0).count()
            );
        }
    }
}
