//! What several benchmarks share: the job's setting, figures, generated pages, and reading a
//! page with Tesseract to judge how legible it is.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, FixedOffset};
use image::{GrayImage, ImageFormat};
use scanbureau::process::classifier_for;
use scanbureau_classifier::Classifier;
use scanbureau_pipeline::config::{DEFAULT_PLAN, SiteConfig};
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::raster::{Limits, PageBlob, PageRaster, decode_page};

/// What the benchmarks that run the job need: a site (the embedded one, or as a bench changed
/// it), the bundled filing plan, its classifier, a pool of every core, and the reception time
/// every deposit and mailing is given.
pub struct JobKit {
    pub site: SiteConfig,
    pub plan: FilingPlan,
    pub classifier: Classifier,
    pub pool: rayon::ThreadPool,
    pub received_at: DateTime<FixedOffset>,
}

impl JobKit {
    pub fn new(site: SiteConfig) -> Self {
        let plan = FilingPlan::from_toml(DEFAULT_PLAN).expect("plan");
        let classifier = classifier_for(&site, &plan).expect("classifier");
        let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
        let received_at = DateTime::parse_from_rfc3339("2026-11-18T09:12:00+01:00").expect("date");
        Self { site, plan, classifier, pool, received_at }
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `q` quantile of the figures (NaN when there are none).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q) as usize]
}

/// A generated JPEG page as the job decodes it.
pub fn raster_of(jpeg: &[u8]) -> PageRaster {
    let blob = PageBlob::ImageFile { data: std::sync::Arc::new(jpeg.to_vec()), format: ImageFormat::Jpeg };
    decode_page(&blob, &Limits::default()).expect("generated JPEG decodes")
}

pub fn png(img: &GrayImage) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = img.write_to(&mut std::io::Cursor::new(&mut v), ImageFormat::Png);
    v
}

/// A grey page printed on tinted paper with coloured bands across its top third, as forms print
/// their headers and tables: a colour form.
pub fn tinted(g: &GrayImage, i: usize) -> image::RgbImage {
    let tints = [[235.0, 242.0, 255.0], [255.0, 246.0, 225.0], [236.0, 252.0, 238.0]];
    let t = tints[i % tints.len()];
    image::RgbImage::from_fn(g.width(), g.height(), |x, y| {
        let v = g.get_pixel(x, y).0[0] as f32 / 255.0;
        let band = if y < g.height() / 3 && (y / 40) % 6 == 0 { 0.85 } else { 1.0 };
        image::Rgb([(t[0] * v * band) as u8, (t[1] * v * band) as u8, (t[2] * v) as u8])
    })
}

/// Words of three letters or more, lower case.
pub fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3).map(|w| w.to_lowercase()).collect()
}

/// How many of `expected` are in `found`, each found word counting once.
pub fn multiset_hits(expected: &[String], found: &[String]) -> usize {
    let mut found = found.to_vec();
    expected
        .iter()
        .filter(|w| match found.iter().position(|f| f == *w) {
            Some(i) => {
                found.swap_remove(i);
                true
            }
            None => false,
        })
        .count()
}

/// Words Tesseract (French, one thread) reads on an image file, each with its confidence (0-100);
/// None without the `tesseract` command.
pub fn ocr_read(image: &Path) -> Option<Vec<(String, f64)>> {
    let out = Command::new("tesseract")
        .arg(image)
        .arg("stdout")
        .args(["-l", "fra", "--psm", "3", "tsv"])
        .env("OMP_THREAD_LIMIT", "1")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let tsv = String::from_utf8_lossy(&out.stdout).into_owned();
    let read = tsv.lines().skip(1).filter_map(|l| {
        let cols: Vec<&str> = l.split('\t').collect();
        let conf: f64 = cols.get(10)?.parse().ok()?;
        Some(words_of(cols.get(11).copied().unwrap_or("")).into_iter().map(move |w| (w, conf)))
    });
    Some(read.flatten().collect())
}

/// The words of a reading read with at least `min_conf` confidence.
pub fn confident(read: &[(String, f64)], min_conf: f64) -> Vec<String> {
    read.iter().filter(|(_, c)| *c >= min_conf).map(|(w, _)| w.clone()).collect()
}

/// Words Tesseract reads on an image file with at least `min_conf` confidence.
pub fn ocr_words(image: &Path, min_conf: f64) -> Option<Vec<String>> {
    Some(confident(&ocr_read(image)?, min_conf))
}

/// Share of the printed words that OCR finds on a page (multiset recall).
pub fn ocr_accuracy(png: &[u8], truth: &[String], dir: &Path, name: &str) -> Option<f64> {
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).ok()?;
    let found = ocr_words(&path, 0.0)?;
    let expected: Vec<String> = truth.iter().flat_map(|w| words_of(w)).collect();
    Some(multiset_hits(&expected, &found) as f64 / expected.len().max(1) as f64)
}

/// How sure Tesseract must be of a word on the original for it to count.
pub const LEGIBLE_ON_ORIGINAL: f64 = 60.0;

/// The share of the words Tesseract reads with confidence on the original that it still reads on
/// the stored piece's first page. Both are read at the same size, the stored page's at 300 dpi:
/// a 400-pixel photo is enlarged and a 4,000-pixel card photo reduced to where OCR reads best, so
/// what is judged is what storing lost, not how well OCR copes with a scale.
pub fn kept_words(original: &Path, piece_pdf: &[u8], scratch: &Path) -> Option<f64> {
    std::fs::create_dir_all(scratch).ok()?;
    let pdf = scratch.join("piece.pdf");
    std::fs::write(&pdf, piece_pdf).ok()?;
    let render = |args: &[&str]| {
        std::process::Command::new("pdftoppm")
            .args(args)
            .args(["-png", "-f", "1", "-l", "1", "-singlefile"])
            .arg(&pdf)
            .arg(scratch.join("page"))
            .status()
            .ok()
            .filter(|s| s.success())
    };
    render(&["-r", "300"])?;
    let (sw, sh) = image::image_dimensions(scratch.join("page.png")).ok()?;
    let long = sw.max(sh);
    let img = image::open(original).ok()?;
    let original = scratch.join("original.png");
    img.resize(long, long, image::imageops::FilterType::Lanczos3).save(&original).ok()?;
    let before = ocr_words(&original, LEGIBLE_ON_ORIGINAL)?;
    if before.len() < 10 {
        return None;
    }
    let after = ocr_words(&scratch.join("page.png"), 0.0)?;
    Some(multiset_hits(&before, &after) as f64 / before.len() as f64)
}

/// One row of the real-documents set's `truth.csv` (see `real_documents`).
pub struct Truth {
    pub file: String,
    pub categorie: String,
    pub type_code: String,
    pub kind: String,
    pub holder: Option<(String, String, Option<String>)>,
    /// Review is the right outcome (a redacted identity document names nobody to check; a
    /// signed 2D-Doc contradicts its print; a foreign text proves nothing either way).
    pub review_expected: bool,
}

/// Splits a CSV line (quotes allowed, no line breaks inside fields).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

pub fn read_truth(dir: &Path) -> Vec<Truth> {
    let text = std::fs::read_to_string(dir.join("truth.csv")).unwrap_or_else(|e| panic!("{}/truth.csv: {e}", dir.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f = csv_fields(l);
            let field = |i: usize| f.get(i).cloned().unwrap_or_default();
            let holder = field(4);
            let holder = (!holder.is_empty()).then(|| {
                let mut parts = holder.split('|').map(str::to_string);
                let nom = parts.next().unwrap_or_default();
                let prenoms = parts.next().unwrap_or_default();
                (nom, prenoms, parts.next().filter(|d| !d.is_empty()))
            });
            Truth { file: field(0), categorie: field(1), type_code: field(2), kind: field(3), holder, review_expected: field(5) == "review" }
        })
        .collect()
}
