//! Reads a page for the classifier, spending OCR only where it pays.
//!
//! A full 300-dpi page costs ~2.7 s of Tesseract; a line of text a few milliseconds. So the
//! reader measures the layout first (no OCR), then reads in passes and stops as soon as the page
//! is told: (1) the title lines; (2) the header, address block, the foot of the page (page
//! numbers) and any photocopied card; (3) only when still nothing is recognised, the rest of
//! the upper page, line by line. A per-page time budget stops further passes.

use std::time::Instant;

use image::GrayImage;
use scanbureau_pipeline::binarize::Bitmap;
use scanbureau_pipeline::qualify::{PageFeatures, PageView};

use crate::layout::{PageLayoutDetail, Rect, TextLine, crop_level, measure};
use crate::lexicon::{Lexicon, Reading, normalise, score_outside, score_type};
use crate::ocr::{OcrConfig, Segmentation, read as ocr_read};

#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub ocr: OcrConfig,
    /// No further OCR pass starts once a page has taken this long (milliseconds).
    pub budget_ms: f32,
    /// Most lines read in the last pass.
    pub max_body_lines: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self { ocr: OcrConfig::default(), budget_ms: 1500.0, max_body_lines: 24 }
    }
}

/// Resolution at which photocopied cards are read.
const CARD_DPI: f32 = 400.0;

/// Stacks crops one under the other on white, for one Tesseract call, enlarged by `scale`.
fn stack(gray: &GrayImage, rects: &[Rect], skew: f32, gap: u32, scale: f32) -> Option<GrayImage> {
    if rects.is_empty() {
        return None;
    }
    let crops: Vec<GrayImage> = rects
        .iter()
        .map(|r| {
            let c = crop_level(gray, *r, skew);
            if scale > 1.05 {
                let (w, h) = ((c.width() as f32 * scale) as u32, (c.height() as f32 * scale) as u32);
                image::imageops::resize(&c, w.max(1), h.max(1), image::imageops::FilterType::Triangle)
            } else {
                c
            }
        })
        .collect();
    let w = crops.iter().map(|c| c.width()).max().unwrap_or(1) + 2 * gap;
    let h: u32 = crops.iter().map(|c| c.height() + gap).sum::<u32>() + gap;
    let mut out = GrayImage::from_pixel(w, h, image::Luma([255]));
    let mut y = gap;
    for c in &crops {
        image::imageops::replace(&mut out, c, gap as i64, y as i64);
        y += c.height() + gap;
    }
    Some(out)
}

/// A line's box with a margin, so accents and descenders are not cut.
fn line_box(l: &TextLine, dpi: f32, w: u32, h: u32) -> Rect {
    l.rect.grown((dpi * 0.03) as u32 + 2, w, h)
}

/// Whether the lexicon recognises the page's title (or an outside document's).
fn told(lex: &Lexicon, title: &str, text: &str, cards: u8) -> bool {
    let r = Reading { title: normalise(title), text: normalise(text), cards };
    lex.types.iter().any(|t| score_type(t, &r).score >= 5.0) || lex.outside.iter().any(|o| score_outside(o, &r).score >= 5.0)
}

struct Pass<'a> {
    gray: &'a GrayImage,
    dpi: f32,
    layout: &'a PageLayoutDetail,
    cfg: &'a ReaderConfig,
    log: Vec<String>,
    ocr_failed: bool,
}

impl Pass<'_> {
    /// Reads the regions, enlarged so their print is seen at `min_dpi` at least.
    fn ocr(&mut self, name: &str, rects: &[Rect], min_dpi: f32) -> String {
        let scale = (min_dpi / self.dpi).clamp(1.0, 3.0);
        let Some(img) = stack(self.gray, rects, self.layout.skew_deg, (self.dpi * 0.08) as u32, scale) else { return String::new() };
        match ocr_read(&self.cfg.ocr, &img, (self.dpi * scale).round() as u32, Segmentation::Block) {
            Ok(t) => {
                self.log.push(format!("ocr {name}: {} regions, {:.0} ms, confidence {}", rects.len(), t.millis, t.confidence));
                t.text
            }
            Err(e) => {
                if !self.ocr_failed {
                    tracing::error!("{e}");
                    self.log.push(format!("ocr unavailable: {e}"));
                }
                self.ocr_failed = true;
                String::new()
            }
        }
    }
}

/// Reads an upright page.
pub fn read_page(view: &PageView<'_>, lex: &Lexicon, cfg: &ReaderConfig) -> PageFeatures {
    let started = Instant::now();
    let raster = view.raster;
    if raster.gray.width() > raster.gray.height() {
        // Sideways: try a quarter turn each way and keep the reading that makes more sense.
        let turns = [image::imageops::rotate90(&raster.gray), image::imageops::rotate270(&raster.gray)];
        let mut best: Option<(usize, PageFeatures)> = None;
        for (k, g) in turns.iter().enumerate() {
            let bits = rotate_bits(view.ink, k == 0);
            let mut f = read_upright(g, &bits, raster.dpi, lex, cfg, started);
            f.reading.insert(0, format!("sideways page read turned {}°", if k == 0 { 90 } else { 270 }));
            let words = normalise(f.text.as_deref().unwrap_or("")).split_whitespace().filter(|w| w.len() >= 4 && w.chars().all(char::is_alphabetic)).count();
            let recognised = told(lex, f.title.as_deref().unwrap_or(""), f.text.as_deref().unwrap_or(""), f.layout.cards);
            let score = words + if recognised { 1000 } else { 0 };
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, f));
            }
            if recognised {
                break;
            }
        }
        let mut f = best.map(|b| b.1).unwrap_or_default();
        f.read_ms = started.elapsed().as_secs_f32() * 1000.0;
        return f;
    }
    let mut f = read_upright(&raster.gray, view.ink, raster.dpi, lex, cfg, started);
    f.read_ms = started.elapsed().as_secs_f32() * 1000.0;
    f
}

fn rotate_bits(b: &Bitmap, clockwise: bool) -> Bitmap {
    let (w, h) = (b.width as usize, b.height as usize);
    let mut ink = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            // Clockwise: (x, y) goes to (h - 1 - y, x) in a picture h wide.
            let (nx, ny) = if clockwise { (h - 1 - y, x) } else { (y, w - 1 - x) };
            ink[ny * h + nx] = b.ink[y * w + x];
        }
    }
    Bitmap { width: b.height, height: b.width, ink }
}

fn read_upright(gray: &GrayImage, bits: &Bitmap, dpi: f32, lex: &Lexicon, cfg: &ReaderConfig, started: Instant) -> PageFeatures {
    let layout = measure(gray, bits, dpi);
    let mut f = PageFeatures { layout: layout.summary, ..PageFeatures::default() };
    f.reading.push(format!(
        "layout: {} lines ({} title), {} cards, {} photos, skew {:.2}°",
        layout.lines.len(),
        layout.titles.len(),
        layout.cards.len(),
        layout.summary.photos,
        layout.skew_deg
    ));
    if layout.summary.unreadable {
        f.reading.push("print too dark or too faint: not read".into());
        return f;
    }
    let (w, h) = gray.dimensions();
    let mut pass = Pass { gray, dpi, layout: &layout, cfg, log: Vec::new(), ocr_failed: false };
    let in_card = |l: &TextLine| layout.cards.iter().any(|c| l.rect.y + l.rect.h / 2 >= c.y && l.rect.y + l.rect.h / 2 <= c.bottom());
    let mut done = vec![false; layout.lines.len()];

    // 1. Titles.
    let title_idx: Vec<usize> = layout.titles.iter().copied().take(3).collect();
    let mut by_y = title_idx.clone();
    by_y.sort_by_key(|&i| layout.lines[i].rect.y);
    let title_rects: Vec<Rect> = by_y.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
    for &i in &title_idx {
        done[i] = true;
    }
    let title = pass.ocr("titles", &title_rects, 0.0);

    // 2. Header, address, foot of the page, cards.
    let mut key: Vec<usize> = Vec::new();
    let page_lines: Vec<usize> = (0..layout.lines.len()).filter(|&i| !in_card(&layout.lines[i])).collect();
    for &i in page_lines.iter().take(4) {
        key.push(i);
    }
    for &i in &page_lines {
        let l = &layout.lines[i];
        if l.rect.y < h * 4 / 10 && key.len() < 12 {
            key.push(i);
        }
    }
    if let Some(&last) = page_lines.last()
        && layout.lines[last].rect.y > h * 85 / 100
    {
        key.push(last);
    }
    key.retain(|&i| !done[i]);
    key.sort_unstable();
    key.dedup();
    for &i in &key {
        done[i] = true;
    }
    // The address block (right half, upper part) is read on its own: it says whom the
    // document is sent to.
    let (address, key): (Vec<usize>, Vec<usize>) = key.into_iter().partition(|&i| {
        let l = &layout.lines[i];
        l.rect.x > w / 2 && l.rect.y < h * 4 / 10 && l.rect.y > h / 20
    });
    let mut rects: Vec<Rect> = key.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
    let mut text = pass.ocr("header", &rects, 0.0);
    if !address.is_empty() {
        let boxes: Vec<Rect> = address.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
        let block = pass.ocr("address", &boxes, 0.0);
        text.push('\n');
        text.push_str(&block);
        f.addressee = Some(block);
    }
    // Inside the card's frame: its border, touching the first letters, would garble them.
    let cards: Vec<Rect> = layout.cards.iter().map(|c| c.inset((dpi * 0.03) as u32)).collect();
    if !cards.is_empty() {
        // A card's print is small (6-8 pt): read it as if scanned at 400 dpi.
        let mut card_text = pass.ocr("cards", &cards, CARD_DPI);
        // A card gives too little text for the page's orientation to be told without OCR: when
        // nothing known was read, the sheet may have been fed upside down.
        if !pass.ocr_failed && !told(lex, &title, &format!("{text}\n{card_text}"), layout.summary.cards) {
            let turned = image::imageops::rotate180(gray);
            let flipped: Vec<Rect> = cards.iter().map(|c| Rect { x: w - c.x - c.w, y: h - c.y - c.h, ..*c }).collect();
            let mut again = Pass { gray: &turned, dpi, layout: &layout, cfg, log: Vec::new(), ocr_failed: false };
            let turned_text = again.ocr("cards turned 180°", &flipped, CARD_DPI);
            pass.log.append(&mut again.log);
            if told(lex, &title, &format!("{text}\n{turned_text}"), layout.summary.cards) {
                card_text = turned_text;
            }
        }
        text.push('\n');
        text.push_str(&card_text);
    }

    // 3. The rest of the upper page, when nothing told the page yet and time remains.
    let elapsed = started.elapsed().as_secs_f32() * 1000.0;
    if !pass.ocr_failed && !told(lex, &title, &text, layout.summary.cards) {
        if elapsed < cfg.budget_ms {
            let rest: Vec<usize> = page_lines.iter().copied().filter(|&i| !done[i] && layout.lines[i].rect.y < h * 7 / 10).take(cfg.max_body_lines).collect();
            rects = rest.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
            if !rects.is_empty() {
                text.push('\n');
                text.push_str(&pass.ocr("body", &rects, 0.0));
            }
        } else {
            pass.log.push(format!("time budget spent ({elapsed:.0} ms): body not read"));
        }
    }
    f.reading.extend(pass.log);
    f.title = Some(title);
    f.text = Some(text);
    f
}
