//! Reads a page for the classifier, spending OCR only where it pays.
//!
//! A full 300-dpi page costs ~2.7 s of Tesseract; a line of text a few milliseconds. So the
//! reader measures the layout first (no OCR), then reads in passes and stops as soon as the page
//! is told: (1) the title lines; (2) the header, address block, the foot of the page (page
//! numbers) and any card (a photocopied card's frame, or the whole image when it is a card);
//! (3) a machine-readable zone, when lines of one are seen; (4) the rest of the upper page, line
//! by line; (5) when still nothing is known, the whole page at a scale that suits its print.
//!
//! The budget is counted in megapixels read, not in milliseconds: the same page is read the same
//! way on an idle machine and on a loaded one, so a mailing done twice is cut and classified the
//! same twice.

use image::GrayImage;
use scanbureau_pipeline::binarize::Bitmap;
use scanbureau_pipeline::qualify::{PageFeatures, PageView};

use crate::layout::{PageLayoutDetail, Rect, TextLine, crop_level_scaled, measure};
use crate::lexicon::{Lexicon, Reading, TypeRule, normalise, score_outside, score_type};
use crate::mrz;
use crate::ocr::{MRZ_CHARSET, OcrConfig, Segmentation, read_with as ocr_read};

#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub ocr: OcrConfig,
    /// Megapixels OCR may read on one page, all passes together: no pass starts that would go
    /// over it (the whole-page pass of a 300-dpi A4 page is 8.7).
    pub budget_mpx: f32,
    /// Most lines read in the body pass.
    pub max_body_lines: usize,
    /// Read the whole page when the passes found nothing known.
    pub whole_page: bool,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self { ocr: OcrConfig::default(), budget_mpx: 12.0, max_body_lines: 24, whole_page: true }
    }
}

/// Resolution at which photocopied cards are read.
const CARD_DPI: f32 = 400.0;
/// Resolution at which a card alone in its image is read (it is read whole: less enlarged).
const WHOLE_CARD_DPI: f32 = 300.0;
/// Height, in pixels, Tesseract reads a line of print best at (x-height about 20 px).
const OCR_LINE_PX: f32 = 40.0;
/// Height of the capitals of a machine-readable zone when read.
const MRZ_CHAR_PX: f32 = 32.0;

/// The median height of the ink in each box: from its first to its last row holding ink over
/// a fiftieth of its width.
fn ink_height(bits: &Bitmap, boxes: &[Rect]) -> Option<u32> {
    let mut heights: Vec<u32> = boxes
        .iter()
        .filter_map(|r| {
            let inked = |y: u32| -> bool {
                let row = &bits.ink[(y * bits.width + r.x) as usize..(y * bits.width + (r.x + r.w).min(bits.width)) as usize];
                row.iter().filter(|&&b| b == 1).count() as u32 > r.w / 50
            };
            let rows: Vec<u32> = (r.y..(r.y + r.h).min(bits.height)).filter(|&y| inked(y)).collect();
            Some(rows.last()? - rows.first()? + 1)
        })
        .collect();
    heights.sort_unstable();
    heights.get(heights.len() / 2).copied()
}

/// Stacks crops one under the other on white, for one Tesseract call, enlarged by `scale`.
fn stack(gray: &GrayImage, rects: &[Rect], skew: f32, gap: u32, scale: f32) -> Option<GrayImage> {
    if rects.is_empty() {
        return None;
    }
    let crops: Vec<GrayImage> = rects.iter().map(|r| crop_level_scaled(gray, *r, skew, scale)).collect();
    let w = crops.iter().map(|c| c.width()).max().unwrap_or(1) + 2 * gap;
    let h: u32 = crops.iter().map(|c| c.height() + gap).sum::<u32>() + gap;
    // Between the crops, the paper's own grey: white around grey paper makes Tesseract's
    // threshold fall between the two and blacken the paper.
    let mut hist = [0u32; 256];
    for c in &crops {
        for p in c.as_raw().iter().step_by(7) {
            hist[*p as usize] += 1;
        }
    }
    let n: u32 = hist.iter().sum();
    let mut acc = 0;
    let paper = (0..256usize).rev().find(|&v| {
        acc += hist[v];
        acc * 5 >= n
    });
    let mut out = GrayImage::from_pixel(w, h, image::Luma([paper.unwrap_or(255) as u8]));
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

/// The best score any type (or outside document) of the lexicon gives the page's reading.
fn evidence(lex: &Lexicon, title: &str, text: &str, cards: u8) -> f32 {
    let r = Reading { title: normalise(title), text: normalise(text), cards };
    lex.types.iter().map(|t| score_type(t, &r).score).chain(lex.outside.iter().map(|o| score_outside(o, &r).score)).fold(0.0, f32::max)
}

/// Whether the lexicon recognises the page's title (or an outside document's).
fn told(lex: &Lexicon, title: &str, text: &str, cards: u8) -> bool {
    evidence(lex, title, text, cards) >= TOLD
}

/// Whether the page is told by a type whose title no other type's pages also carry (see
/// `read_on`): only then does the reader stop before the rest of the upper page.
fn decided(lex: &Lexicon, title: &str, text: &str, cards: u8) -> bool {
    let r = Reading { title: normalise(title), text: normalise(text), cards };
    let outside = lex.outside.iter().map(|o| score_outside(o, &r).score).fold(0.0, f32::max);
    match best_type(lex, &r) {
        Some((score, rule)) if score >= outside => score >= TOLD && !rule.read_on,
        _ => outside >= TOLD,
    }
}

/// Under this many lines found, the layout is taken to have missed the page's small print.
const FEW_LINES: usize = 10;
/// A score from which a page is told (a title, or a title's words among the text's).
const TOLD: f32 = 5.0;
/// Words read by the cheap passes from which a page whose text points to a document without
/// naming it is its continuation: it reads fine as it is, and is not read again whole or turned.
const PLAIN_TEXT_WORDS: usize = 25;
/// Tesseract's confidence from which those words are text, not a reading of upside-down print.
const PLAIN_TEXT_CONFIDENCE: f32 = 60.0;

/// Words of four letters or more with a vowel: OCR of upside-down or garbled print gives few.
fn words(text: &str) -> usize {
    normalise(text).split_whitespace().filter(|w| w.len() >= 4 && w.chars().all(char::is_alphabetic) && w.chars().any(|c| "aeiouy".contains(c))).count()
}
/// Under this score, the cheap passes read nothing that points to a document: only then is the
/// page read whole, or the other way up (a page whose body already points somewhere is not
/// worth two seconds more).
const WEAK: f32 = 3.0;

/// What to read of a set of regions, and how.
struct Ask<'r> {
    name: &'r str,
    rects: &'r [Rect],
    /// Enlarge so the print is seen at this resolution at least.
    min_dpi: f32,
    mode: Segmentation,
    charset: Option<&'r str>,
}

struct Pass<'a> {
    gray: &'a GrayImage,
    dpi: f32,
    layout: &'a PageLayoutDetail,
    cfg: &'a ReaderConfig,
    log: Vec<String>,
    ocr_failed: bool,
    /// Megapixels read so far.
    spent: f32,
    /// Confidence times characters, and characters, of the reads in the full alphabet.
    confidence: (f64, usize),
}

impl Pass<'_> {
    fn ocr(&mut self, name: &str, rects: &[Rect], min_dpi: f32) -> String {
        self.read(&Ask { name, rects, min_dpi, mode: Segmentation::Block, charset: None })
    }

    /// Reads the regions (enlarged so their print is seen at `min_dpi` at least), if the page's
    /// budget allows.
    fn read(&mut self, ask: &Ask<'_>) -> String {
        let scale = (ask.min_dpi / self.dpi).clamp(1.0, 3.0);
        self.read_scaled(ask, scale)
    }

    fn read_scaled(&mut self, ask: &Ask<'_>, scale: f32) -> String {
        let gap = (self.dpi * 0.08) as u32;
        // The stacked image's size, known before it is made.
        let width = ask.rects.iter().map(|r| (r.w as f32 * scale) as u32).max().unwrap_or(0) + 2 * gap;
        let height: u32 = ask.rects.iter().map(|r| (r.h as f32 * scale) as u32 + gap).sum::<u32>() + gap;
        let mpx = width as f32 * height as f32 / 1e6;
        if self.spent + mpx > self.cfg.budget_mpx {
            self.log.push(format!("budget spent ({:.1} of {:.1} Mpx read): {} not read ({mpx:.1} Mpx)", self.spent, self.cfg.budget_mpx, ask.name));
            return String::new();
        }
        let Some(img) = stack(self.gray, ask.rects, self.layout.skew_deg, gap, scale) else { return String::new() };
        self.spent += mpx;
        match ocr_read(&self.cfg.ocr, &img, (self.dpi * scale).round() as u32, ask.mode, ask.charset) {
            Ok(t) => {
                self.log.push(format!("ocr {}: {} regions, {mpx:.2} Mpx, {:.0} ms, confidence {}", ask.name, ask.rects.len(), t.millis, t.confidence));
                if ask.charset.is_none() {
                    let n = t.text.chars().filter(|c| !c.is_whitespace()).count();
                    self.confidence.0 += t.confidence as f64 * n as f64;
                    self.confidence.1 += n;
                }
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

/// Reads a page the pipeline has put straight (outline, skew, quarter turns). When the print
/// did not say which way up it is and nothing known was read, the page is read half a turn
/// round too, and the better reading kept (`half_turn` then says the page is to be turned).
pub fn read_page(view: &PageView<'_>, lex: &Lexicon, cfg: &ReaderConfig) -> PageFeatures {
    let started = std::time::Instant::now();
    // The page's own text, exact, when it has some worth reading: no OCR.
    let mut note = None;
    if let Some(layer) = view.text_layer {
        if layer.usable() {
            let mut f = from_text_layer(layer, view);
            let known = sense(lex, &f) >= KNOWN;
            // A picture on the page (a card pasted into a letter) may hold what the text
            // does not say: it is read too.
            if !known && layer.picture_cover >= 0.3 {
                let ocr = read_upright(&view.raster.gray, view.ink, view.raster.dpi, lex, cfg, cfg.whole_page);
                f.reading.extend(ocr.reading);
                f.text = Some(format!("{}\n{}", f.text.unwrap_or_default(), ocr.text.unwrap_or_default()));
                f.mrz = f.mrz.or(ocr.mrz);
            }
            f.read_ms = started.elapsed().as_secs_f32() * 1000.0;
            return f;
        }
        note = Some(format!("text layer not used: {} lines that do not read as text", layer.lines.len()));
    }
    let dpi = view.raster.dpi;
    let mut f = read_upright(&view.raster.gray, view.ink, dpi, lex, cfg, false);
    f.reading.splice(0..0, note);
    // Which way up: the cheap passes both ways, when the print could not tell and nothing
    // known was read.
    // The page turned half a turn, when it was read that way too; whether that way won, and
    // whether neither way read anything (the whole page is then read both ways too).
    let mut turned_page = None;
    let (mut upside_down, mut tied) = (false, false);
    if view.orientation_unsure && !f.layout.unreadable && weak(lex, &f) {
        let gray = image::imageops::rotate180(&view.raster.gray);
        let mut ink = view.ink.clone();
        ink.ink.reverse();
        let mut turned = read_upright(&gray, &ink, dpi, lex, cfg, false);
        let (a, b) = (sense(lex, &f), sense(lex, &turned));
        if turn_wins(a, b) {
            turned.half_turn = true;
            turned.reading.insert(0, format!("read both ways up: upside down makes more sense ({b} against {a})"));
            f = turned;
            upside_down = true;
        } else {
            tied = a.abs_diff(b) <= SENSE_MARGIN;
            f.reading.push(format!("read both ways up: as it is makes more sense ({a} against {b})"));
        }
        turned_page = Some((gray, ink));
    }
    // Still nothing known, or a signed 2D-Doc whose figures the print read so far does not show:
    // the page is read again, whole this time, the way up it makes sense.
    let unchecked = view.datamatrix.iter().filter_map(|t| crate::twoddoc::parse(t).ok()).any(|d| {
        let text = crate::lexicon::normalise(f.text.as_deref().unwrap_or(""));
        crate::twoddoc::print_unchecked(&d, &text)
    });
    if unchecked {
        f.reading.push("the signed 2D-Doc's revenu fiscal de référence not read yet in the print: page read whole".into());
    }
    // A civil-status act's title read: a livret de famille's pages carry the same, and tell
    // themselves apart only further down (the couple's and the children's headings).
    let best = best_type_of(lex, &f).filter(|(score, _)| *score >= WEAK).map(|(_, rule)| rule);
    let nothing_known = weak(lex, &f);
    let undecided = !nothing_known && best.is_some_and(|rule| rule.read_on);
    if undecided {
        f.reading.push("a title other documents' pages also carry: page read whole".into());
    }
    // An identity document told without its machine-readable zone: the zone (whose document it
    // is) may be in the print the cheap passes left.
    let no_zone = !undecided && best.is_some_and(|rule| rule.identity) && f.mrz.as_deref().and_then(mrz::find).is_none();
    if no_zone {
        f.reading.push("an identity document whose machine-readable zone was not read: page read whole".into());
    }
    // An input's first page begins a document: when nothing names it yet, its plain text is not
    // a continuation's, and it is read whole (a livret's page whose heading the line passes
    // missed, an old extract whose title the line passes did not read).
    let untold_opening = view.opens_input && !nothing_known && !undecided && !no_zone && untold(lex, &f);
    if untold_opening {
        f.reading.push("an input's first page that names no document yet: page read whole".into());
    }
    if cfg.whole_page && !f.layout.unreadable && (nothing_known || unchecked || undecided || no_zone || untold_opening) {
        let (gray, ink) = match &turned_page {
            Some((g, i)) if upside_down => (g, i),
            _ => (&view.raster.gray, view.ink),
        };
        let half_turn = f.half_turn;
        let mut whole = read_upright(gray, ink, dpi, lex, cfg, true);
        whole.half_turn = half_turn;
        if tied
            && weak(lex, &whole)
            && let Some((gray, ink)) = &turned_page
        {
            let mut turned = read_upright(gray, ink, dpi, lex, cfg, true);
            let (a, b) = (sense(lex, &whole), sense(lex, &turned));
            if turn_wins(a, b) {
                turned.half_turn = true;
                turned.reading.insert(0, format!("read whole both ways up: upside down makes more sense ({b} against {a})"));
                whole = turned;
            }
        }
        // Why the page was read whole, and which way up it was found to read.
        let notes: Vec<String> = f.reading.iter().filter(|r| r.starts_with("read both ways") || r.ends_with("page read whole")).cloned().collect();
        whole.reading.extend(notes);
        f = whole;
    }
    // Print read with confidence is print the right way round: mirrored print never is.
    if cfg.whole_page && !f.layout.unreadable && weak(lex, &f) && f.ocr_confidence < PLAIN_TEXT_CONFIDENCE {
        let (gray, ink) = match &turned_page {
            Some((g, i)) if f.half_turn => (g, i),
            _ => (&view.raster.gray, view.ink),
        };
        match read_mirrored(gray, ink, dpi, lex, cfg, &f) {
            Ok(m) => f = m,
            Err(note) => f.reading.push(note),
        }
    }
    f.read_ms = started.elapsed().as_secs_f32() * 1000.0;
    f
}

/// A page that made no sense whichever way up, read mirrored: a phone's front camera mirrors
/// what it takes, and a mirrored page upside down reads flipped top to bottom. Both mirrors are
/// read by the cheap passes; one that makes clearly more sense than `f` is kept, and read whole
/// when it is still weak; when neither wins, what was tried. Only a page nothing else could
/// read pays for this.
fn read_mirrored(gray: &GrayImage, ink: &Bitmap, dpi: f32, lex: &Lexicon, cfg: &ReaderConfig, f: &PageFeatures) -> Result<PageFeatures, String> {
    let before = sense(lex, f);
    let mut best: Option<(usize, PageFeatures, GrayImage, Bitmap)> = None;
    for top_to_bottom in [false, true] {
        let mut g = image::imageops::flip_horizontal(gray);
        let mut i = ink.clone();
        i.flip_horizontal();
        if top_to_bottom {
            image::imageops::rotate180_in_place(&mut g);
            i.ink.reverse();
        }
        let mut m = read_upright(&g, &i, dpi, lex, cfg, false);
        m.mirrored = true;
        // Flipped top to bottom is mirrored and turned half a turn from the page as read.
        m.half_turn = f.half_turn != top_to_bottom;
        let made = sense(lex, &m);
        if turn_wins(before, made) && best.as_ref().is_none_or(|(b, ..)| made > *b) {
            best = Some((made, m, g, i));
        }
    }
    let Some((made, mut m, g, i)) = best else {
        return Err(format!("read mirrored both ways: no more sense than as it is ({before})"));
    };
    if weak(lex, &m) {
        let (mirrored, half_turn) = (m.mirrored, m.half_turn);
        m = read_upright(&g, &i, dpi, lex, cfg, true);
        (m.mirrored, m.half_turn) = (mirrored, half_turn);
    }
    let how = if m.half_turn != f.half_turn { "flipped top to bottom" } else { "mirrored left to right" };
    let mut reading = f.reading.clone();
    reading.push(format!("read {how}: makes more sense ({made} against {before})"));
    m.reading.splice(0..0, reading);
    Ok(m)
}

/// The type a page's reading points to best, and its score.
fn best_type_of<'l>(lex: &'l Lexicon, f: &PageFeatures) -> Option<(f32, &'l TypeRule)> {
    let r = Reading { title: normalise(f.title.as_deref().unwrap_or("")), text: normalise(f.text.as_deref().unwrap_or("")), cards: f.layout.cards };
    best_type(lex, &r)
}

/// The best score a type gives a reading, and that type.
fn best_type<'l>(lex: &'l Lexicon, r: &Reading) -> Option<(f32, &'l TypeRule)> {
    lex.types.iter().map(|t| (score_type(t, r).score, t)).max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Nothing known read, and not the plain text of a known document's continuation either (many
/// words read with confidence, some of them a document's: not worth reading whole or turned).
fn weak(lex: &Lexicon, f: &PageFeatures) -> bool {
    let text = f.text.as_deref().unwrap_or("");
    let score = evidence(lex, f.title.as_deref().unwrap_or(""), text, f.layout.cards);
    let continuation = score >= 1.0 && words(text) >= PLAIN_TEXT_WORDS && f.ocr_confidence >= PLAIN_TEXT_CONFIDENCE;
    !continuation && !zone_checked(f) && score < WEAK
}

/// A machine-readable zone read with its check digits holding.
fn zone_checked(f: &PageFeatures) -> bool {
    f.mrz.as_deref().and_then(mrz::find).is_some_and(|m| m.checked())
}

/// Nothing read names a document (no title told, no checked zone), whatever the text around.
fn untold(lex: &Lexicon, f: &PageFeatures) -> bool {
    !zone_checked(f) && !told(lex, f.title.as_deref().unwrap_or(""), f.text.as_deref().unwrap_or(""), f.layout.cards)
}

/// Features from a page's text layer. The title is the largest print in the upper part of the
/// page; the address block the lines in the upper right (as the layout would find them).
fn from_text_layer(layer: &scanbureau_pipeline::pdftext::TextLayer, view: &PageView<'_>) -> PageFeatures {
    let layout = measure(&view.raster.gray, view.ink, view.raster.dpi);
    let mut f = PageFeatures { layout: layout.summary, text_layer: true, ..PageFeatures::default() };
    let text = layer.text();
    let mut sizes: Vec<f32> = layer.lines.iter().map(|l| l.size).collect();
    sizes.sort_by(f32::total_cmp);
    let body = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0);
    let (pw, ph) = (layer.page_w.max(1.0), layer.page_h.max(1.0));
    let mut titles: Vec<&scanbureau_pipeline::pdftext::TextLine> = layer
        .lines
        .iter()
        .filter(|l| l.size >= body * 1.18 && (!layer.positioned || l.y < ph * 0.6) && l.text.chars().filter(|c| c.is_alphabetic()).count() >= 4)
        .collect();
    titles.sort_by(|a, b| b.size.total_cmp(&a.size));
    titles.truncate(3);
    titles.sort_by(|a, b| a.y.total_cmp(&b.y));
    f.title = Some(titles.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n"));
    if layer.positioned {
        let block: Vec<&str> = layer.lines.iter().filter(|l| l.x > pw / 2.0 && l.y < ph * 0.4 && l.y > ph / 20.0).map(|l| l.text.as_str()).collect();
        if !block.is_empty() {
            f.addressee = Some(block.join("\n"));
        }
    }
    if text.contains("<<") && mrz::find(&text).is_some() {
        f.mrz = Some(text.clone());
    }
    f.reading.push(format!(
        "text layer{}: {} lines, {} characters, read as it is (no OCR){}",
        if layer.ocr_layer { " (a scanner's OCR)" } else { "" },
        layer.lines.len(),
        text.chars().count(),
        if layer.hidden_chars > 0 { format!("; {} hidden characters left out", layer.hidden_chars) } else { String::new() }
    ));
    f.text = Some(text);
    f
}

/// A reading's score above which the page is known (a document recognised, or a checked zone).
const KNOWN: usize = 1_000;

/// A machine-readable zone's run of fillers, and the same read upside down.
const FILLERS: &str = "<<<<<";
const UPSIDE_DOWN_FILLERS: &str = ">>>>>";

/// How many more words of sense the page turned half a turn must make to be turned: OCR makes a
/// word or two out of a card's guilloches either way up (an upright driving-licence specimen made
/// 2 words upside down and 0 as it is, and was stored upside down). Within this, both readings are
/// tied and the whole page is read both ways.
const SENSE_MARGIN: usize = 2;

/// Whether the reading turned half a turn (`turned` words of sense) beats the upright one.
fn turn_wins(upright: usize, turned: usize) -> bool {
    turned > upright + SENSE_MARGIN
}

/// How much sense a reading makes: a known document or a checked zone first, then a zone (or a
/// run of its fillers), then the words of four letters or more with a vowel (OCR of upside-down
/// print gives few). A zone read upside down makes none.
fn sense(lex: &Lexicon, f: &PageFeatures) -> usize {
    let title = f.title.as_deref().unwrap_or("");
    let text = f.text.as_deref().unwrap_or("");
    let zone = f.mrz.as_deref().and_then(mrz::find);
    // A zone's fillers read upside down come out as ">>>>>": this is upside-down print, and a
    // run of fillers the right way up says the other reading is.
    if text.contains(UPSIDE_DOWN_FILLERS) && !text.contains(FILLERS) {
        return 0;
    }
    // Garbage read from upside-down print makes words too, with little confidence.
    let words = (words(text) as f32 * (f.ocr_confidence / 100.0).clamp(0.2, 1.0)) as usize;
    let known = told(lex, title, text, f.layout.cards) || zone.as_ref().is_some_and(|m| m.checked());
    usize::from(known) * KNOWN + usize::from(zone.is_some()) * 300 + usize::from(text.contains(FILLERS)) * 50 + words.min(299)
}

/// Groups of two or three lines that look like a machine-readable zone: long, as wide as one
/// another, left-aligned, evenly spaced, each a continuous run of print. Lowest first. Zones are
/// printed on cards and passports: looked for inside a card's frame, or anywhere on a page that
/// is not a plain sheet of text (a photograph on it, or not an A4 sheet).
fn mrz_candidates(layout: &PageLayoutDetail, dpi: f32, (w, h): (u32, u32)) -> Vec<Vec<usize>> {
    let mm = |px: u32| px as f32 * 25.4 / dpi;
    let ratio = w.max(h) as f32 / w.min(h).max(1) as f32;
    let anywhere = layout.summary.photos > 0 || (ratio - 1.414).abs() > 0.06;
    let in_card = |l: &TextLine| {
        let (cx, cy) = (l.rect.x + l.rect.w / 2, l.rect.y + l.rect.h / 2);
        layout.cards.iter().any(|c| cx >= c.x && cx <= c.x + c.w && cy >= c.y && cy <= c.bottom())
    };
    let mut order: Vec<usize> = (0..layout.lines.len()).filter(|&i| anywhere || in_card(&layout.lines[i])).collect();
    order.sort_by_key(|&i| layout.lines[i].rect.y);
    let mut groups = Vec::new();
    let mut used = vec![false; layout.lines.len()];
    for (k, &i) in order.iter().enumerate() {
        let a = &layout.lines[i];
        if used[i] || mm(a.rect.w) < 35.0 {
            continue;
        }
        let mut group = vec![i];
        let mut last = a;
        for &j in &order[k + 1..] {
            let b = &layout.lines[j];
            let gap = b.rect.y as f32 - last.rect.y as f32;
            if gap < last.rect.h as f32 * 0.9 {
                continue;
            }
            if gap > last.rect.h as f32 * 2.8 || group.len() == 3 {
                break;
            }
            let ratio = b.rect.w as f32 / a.rect.w as f32;
            let heights = b.rect.h as f32 / a.rect.h as f32;
            if mm(b.rect.x.abs_diff(a.rect.x)) < 4.0 && (0.85..=1.18).contains(&ratio) && (0.7..=1.4).contains(&heights) {
                group.push(j);
                last = b;
            }
        }
        if group.len() >= 2 {
            for &g in &group {
                used[g] = true;
            }
            groups.push(group);
        }
    }
    groups.reverse();
    groups.truncate(3);
    groups
}

/// A page that is a card by itself (a card photographed or scanned alone): its size and
/// proportions, at the scale its text gave.
fn whole_card(w: u32, h: u32, dpi: f32) -> bool {
    let (long, short) = (w.max(h) as f32 * 25.4 / dpi, w.min(h) as f32 * 25.4 / dpi);
    let ratio = long / short.max(1.0);
    long < 190.0 && (1.3..=1.8).contains(&ratio)
}

fn read_upright(gray: &GrayImage, bits: &Bitmap, dpi: f32, lex: &Lexicon, cfg: &ReaderConfig, whole_page: bool) -> PageFeatures {
    let mut layout = measure(gray, bits, dpi);
    let (w, h) = gray.dimensions();
    // A card photographed or scanned alone: the whole image is the card.
    let alone = layout.cards.is_empty() && whole_card(w, h, dpi);
    if alone {
        layout.cards.push(Rect { x: 0, y: 0, w, h });
        layout.summary.cards = 1;
    }
    let mut f = PageFeatures { layout: layout.summary, ..PageFeatures::default() };
    f.reading.push(format!(
        "layout: {} lines ({} title), {} cards{}, {} photos, skew {:.2}°",
        layout.lines.len(),
        layout.titles.len(),
        layout.cards.len(),
        if alone { " (the image is a card)" } else { "" },
        layout.summary.photos,
        layout.skew_deg
    ));
    if layout.summary.unreadable {
        f.reading.push("print too dark or too faint: not read".into());
        return f;
    }
    let mut pass = Pass { gray, dpi, layout: &layout, cfg, log: Vec::new(), ocr_failed: false, spent: 0.0, confidence: (0.0, 0) };
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
    // Inside the card's frame: its border, touching the first letters, would garble them. A
    // card alone is read as a page (Tesseract finds its blocks), at the card's resolution.
    let cards: Vec<Rect> = if alone { layout.cards.clone() } else { layout.cards.iter().map(|c| c.inset((dpi * 0.03) as u32)).collect() };
    if !cards.is_empty() {
        let mode = if alone { Segmentation::Auto } else { Segmentation::Block };
        let card_dpi = if alone { dpi.max(WHOLE_CARD_DPI) } else { CARD_DPI };
        // A card's print is small (6-8 pt): read it as if scanned at 400 dpi.
        let mut card_text = pass.read(&Ask { name: "cards", rects: &cards, min_dpi: card_dpi, mode, charset: None });
        // A card gives too little text for the page's orientation to be told without OCR: when
        // nothing known was read, the sheet may have been fed upside down.
        if !pass.ocr_failed && !told(lex, &title, &format!("{text}\n{card_text}"), layout.summary.cards) {
            let turned = image::imageops::rotate180(gray);
            let flipped: Vec<Rect> = cards.iter().map(|c| Rect { x: w - c.x - c.w, y: h - c.y - c.h, ..*c }).collect();
            let mut again = Pass { gray: &turned, dpi, layout: &layout, cfg, log: Vec::new(), ocr_failed: false, spent: pass.spent, confidence: (0.0, 0) };
            let turned_text = again.read(&Ask { name: "cards turned 180°", rects: &flipped, min_dpi: card_dpi, mode, charset: None });
            pass.spent = again.spent;
            pass.log.append(&mut again.log);
            if told(lex, &title, &format!("{text}\n{turned_text}"), layout.summary.cards) {
                card_text = turned_text;
            }
        }
        text.push('\n');
        text.push_str(&card_text);
    }

    // 3. A machine-readable zone: two or three long even lines. Read with its own alphabet.
    if !pass.ocr_failed {
        for group in mrz_candidates(&layout, dpi, (w, h)) {
            let boxes: Vec<Rect> = group.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
            // The zone's print is read best about 32 pixels tall: measured on the ink itself
            // (a line's box can take in a pattern behind it).
            let tall = ink_height(bits, &boxes).unwrap_or(layout.lines[group[0]].rect.h) as f32;
            let scale = (MRZ_CHAR_PX / tall.max(1.0)).clamp(0.25, 3.0);
            let zone = pass
                .read_scaled(&Ask { name: "machine-readable zone", rects: &boxes, min_dpi: 0.0, mode: Segmentation::Block, charset: Some(MRZ_CHARSET) }, scale);
            if let Some(m) = mrz::find(&zone) {
                pass.log.push(m.describe());
                let checked = m.checked();
                f.mrz = Some(zone);
                if checked {
                    break;
                }
            }
        }
    }
    let checked = zone_checked(&f);

    // 4. The rest of the upper page, when nothing decided the page yet.
    if !pass.ocr_failed && !checked && !decided(lex, &title, &text, layout.summary.cards) {
        let rest: Vec<usize> = page_lines.iter().copied().filter(|&i| !done[i] && layout.lines[i].rect.y < h * 7 / 10).take(cfg.max_body_lines).collect();
        for &i in &rest {
            done[i] = true;
        }
        rects = rest.iter().map(|&i| line_box(&layout.lines[i], dpi, w, h)).collect();
        if !rects.is_empty() {
            text.push('\n');
            text.push_str(&pass.ocr("body", &rects, 0.0));
        }
    }

    // 5. Still nothing known: the whole page, at the scale that suits its print (small print
    //    enlarged, big photos' print reduced), as Tesseract lays it out.
    if whole_page && !pass.ocr_failed && !checked && !alone {
        let line_px = layout.summary.line_mm * dpi / 25.4;
        let wanted = if line_px > 1.0 { (OCR_LINE_PX / line_px).clamp(0.5, 2.0) } else { 1.0 };
        // A few lines found are the big ones (headings, typed names): the small print the
        // layout missed would be lost by reducing the page for them.
        let wanted = if layout.lines.len() < FEW_LINES { wanted.max(1.0) } else { wanted };
        // Within what is left of the budget: a smaller image rather than none.
        let left = (cfg.budget_mpx - pass.spent).max(0.0);
        let fits = (left * 1e6 / (w as f32 * h as f32)).sqrt();
        let scale = wanted.min(fits * 0.97);
        let page = [Rect { x: 0, y: 0, w, h }];
        if scale < 0.35 {
            pass.log.push(format!("budget spent ({:.1} of {:.1} Mpx read): whole page not read", pass.spent, cfg.budget_mpx));
        } else {
            let all = pass.read_scaled(&Ask { name: "whole page (fallback)", rects: &page, min_dpi: 0.0, mode: Segmentation::Auto, charset: None }, scale);
            if !all.trim().is_empty() {
                // A zone the line passes missed may be in it.
                if f.mrz.is_none() && all.contains("<<") && mrz::find(&all).is_some() {
                    f.mrz = Some(all.clone());
                }
                text.push('\n');
                text.push_str(&all);
            }
        }
    }
    pass.log.push(format!("read {:.1} Mpx", pass.spent));
    f.ocr_confidence = if pass.confidence.1 > 0 { (pass.confidence.0 / pass.confidence.1 as f64) as f32 } else { 0.0 };
    f.reading.extend(pass.log);
    f.title = Some(title);
    f.text = Some(text);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanbureau_pipeline::plan::FilingPlan;

    #[test]
    fn a_zone_read_upside_down_makes_no_sense_and_one_read_upright_does() {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
        let lex = Lexicon::load(crate::lexicon::DEFAULT_LEXICON, &plan).expect("lexicon");
        let reading = |text: &str| PageFeatures { text: Some(text.into()), ocr_confidence: 40.0, ..PageFeatures::default() };
        // As Tesseract read a passport's page upside down, and the right way up.
        let upside_down = reading("20>>>>>>>>>>>>>>202C0911902206/N4tS19SVS2LSX\nNSNOAdS wvu VAYIVNTA LHO4SSYd");
        let upright = reading("PASSPORT JAPAN\nP<JPNGAIMU<<SAKURA<<<<<<<<<<<<<<<<<<");
        assert_eq!(sense(&lex, &upside_down), 0);
        assert!(sense(&lex, &upright) > sense(&lex, &upside_down));
        // A page is turned on words of sense, not on a word or two of a card's guilloches.
        let guilloches = PageFeatures { text: Some("aN 6 reprbs JÉCP LE 99".into()), ocr_confidence: 100.0, ..PageFeatures::default() };
        assert!(sense(&lex, &guilloches) > 0);
        assert!(!turn_wins(sense(&lex, &reading("")), sense(&lex, &guilloches)));
        assert!(turn_wins(sense(&lex, &upside_down), sense(&lex, &upright)));
    }
}
