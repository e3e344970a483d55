//! The text a PDF page carries: a born-digital page's own text, or the invisible layer a
//! scanner's OCR laid over its image. Read exactly, it needs no OCR.
//!
//! The page is interpreted with hayro (pure Rust, the same interpreter that renders it) into a
//! device that keeps only the glyphs: their Unicode text (ToUnicode, glyph names), their box
//! on the page, their paint. Glyphs are then grouped into lines and words by position.
//!
//! Not every text is to be believed: text drawn invisible or transparent, or in white anywhere
//! but on a dark shape (a heading in a coloured band), is hidden from the reader of the page (a
//! way to fool a classifier) and is left out, unless the page is a scanned picture with its OCR
//! layer; and so is a layer whose "words" are not words (a broken font encoding).

use std::sync::Arc;

use hayro::hayro_interpret::font::Glyph;
use hayro::hayro_interpret::hayro_cmap::BfString;
use hayro::hayro_interpret::kurbo::{Affine, BezPath, Rect};
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, Image, ImageDrawProps, InterpreterCache, InterpreterSettings, Paint, RenderContent, SoftMask,
    TransformExt, interpret_page,
};
use hayro::hayro_syntax::Pdf;

/// A line of text on the page, in points from the page's top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub text: String,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Font size, in points.
    pub size: f32,
}

/// What a page's text layer holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextLayer {
    /// Lines in reading order (top to bottom, then left to right).
    pub lines: Vec<TextLine>,
    /// Page size in points (after the page's own rotation).
    pub page_w: f32,
    pub page_h: f32,
    /// The largest share of the page one picture covers (a scan under an OCR layer: ~1).
    pub picture_cover: f32,
    /// Characters left out because they are hidden from whoever looks at the page.
    pub hidden_chars: usize,
    /// Glyphs and pictures drawn over by a later opaque shape (or glyphs by a picture or a
    /// thick stroke): out of sight, still in the file (a redaction drawn as a box over the
    /// text). None when the page is too busy to tell.
    pub covered: Option<usize>,
    /// The text is an OCR layer over a scan (invisible text on a picture).
    pub ocr_layer: bool,
    /// The lines' positions still match the page (false once the page was turned or unwarped).
    pub positioned: bool,
}

impl TextLayer {
    /// A born-digital page that holds nothing out of sight (no hidden or covered text, no
    /// covered picture, no scan under it): its file shows all it holds, and can be kept as it
    /// was sent without keeping what its sender meant to hide.
    pub fn shows_all_it_holds(&self) -> bool {
        !self.ocr_layer && self.picture_cover < 0.5 && self.hidden_chars == 0 && self.covered == Some(0)
    }

    /// All the text, one line per line.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// Whether the text reads as text: enough of it, and mostly words. A font without a usable
    /// Unicode map gives symbols or letter salad. A blank form's fill-in rules (`_ _ _`, dot
    /// leaders) are neither words nor salad: they are not counted.
    pub fn usable(&self) -> bool {
        let text = self.text();
        let tokens: Vec<&str> = text.split_whitespace().filter(|t| t.chars().any(char::is_alphanumeric)).collect();
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        if letters < 40 || tokens.len() < 8 {
            return false;
        }
        let wordlike = tokens
            .iter()
            .filter(|t| {
                let letters: Vec<char> = t.chars().filter(|c| c.is_alphabetic()).collect();
                letters.len() >= 2 && letters.iter().any(|c| "aeiouyAEIOUYéèêàâîôûÉÈÊÀ".contains(*c))
            })
            .count();
        let odd = text.chars().filter(|c| !(c.is_alphanumeric() || c.is_whitespace() || ".,;:!?'’\"()/-–%€&°+*=<>[]@#_«»".contains(*c))).count();
        wordlike * 10 >= tokens.len() * 4 && odd * 10 < letters
    }
}

/// One glyph as drawn.
struct Char {
    text: String,
    bbox: Rect,
    size: f32,
    hidden: bool,
    /// How many covering shapes and pictures were drawn before it (those after it may cover it).
    drawn_at: (usize, usize),
}

struct Collector {
    chars: Vec<Char>,
    /// Opaque shapes and pictures drawn so far, in order, within their clip: whether each is
    /// dark (white print on the last one under a glyph shows; on paper or a picture it does not).
    grounds: Vec<(Rect, bool)>,
    /// The clip in force, as a box (a stack: each push narrows the one below).
    clips: Vec<Rect>,
    page: Rect,
    cover: f32,
    invisible: usize,
    /// Opaque shapes filled and thick strokes, in order, within their clip.
    fills: Vec<Rect>,
    /// Each picture's box, and how many opaque shapes were filled before it.
    pictures: Vec<(Rect, usize)>,
}

/// Width, in points, from which a stroke covers what it is drawn over (a marker's line).
const THICK_STROKE_PT: f64 = 4.0;
/// Comparisons of drawn boxes beyond which a page is too busy to tell what covers what.
const MOST_COVER_CHECKS: usize = 20_000_000;

impl Collector {
    /// Glyphs (their centre) under an opaque shape, a thick stroke or a picture drawn after
    /// them, and pictures (a hundredth of them or more) under a shape or stroke drawn after
    /// them; None when the page is too busy to tell. (A picture over another is not counted:
    /// its transparency is not known here, and producers lay transparent pictures over others.)
    fn covered(&self) -> Option<usize> {
        let mut budget = MOST_COVER_CHECKS;
        let mut spend = |n: usize| {
            budget = budget.checked_sub(n)?;
            Some(())
        };
        let mut covered = 0;
        for c in self.chars.iter().filter(|c| !c.hidden) {
            let (fills, pictures) = (self.fills.get(c.drawn_at.0..).unwrap_or_default(), self.pictures.get(c.drawn_at.1..).unwrap_or_default());
            spend(fills.len() + pictures.len())?;
            let centre = c.bbox.center();
            covered += usize::from(fills.iter().any(|r| r.contains(centre)) || pictures.iter().any(|(r, _)| r.contains(centre)));
        }
        for (p, at) in &self.pictures {
            let later = self.fills.get(*at..).unwrap_or_default();
            spend(later.len())?;
            covered += usize::from(later.iter().any(|r| r.intersect(*p).area().max(0.0) * 100.0 >= p.area().max(f64::MIN_POSITIVE)));
        }
        Some(covered)
    }
}

impl Collector {
    fn clip(&self) -> Rect {
        self.clips.last().copied().unwrap_or(self.page)
    }
}

impl<'a> Device<'a> for Collector {
    fn draw_path(&mut self, path: &BezPath, props: DrawProps<'a>, mode: &DrawMode) {
        // An opaque shape filled: a dark one is ground white print shows on (a heading in a
        // coloured band), a light one covers it again.
        if let (DrawMode::Fill(_) | DrawMode::FillAndStroke(..), Paint::Color(c)) = (mode, &props.paint) {
            let [r, g, b, a] = c.to_rgba().to_rgba8();
            if a > 128 {
                let dark = u32::from(r) * 3 + u32::from(g) * 6 + u32::from(b) < 160 * 10;
                let area = props.transform.transform_rect_bbox(hayro::hayro_interpret::kurbo::Shape::bounding_box(path)).intersect(self.clip());
                self.grounds.push((area, dark));
                self.fills.push(area);
            }
        }
        // A marker's thick stroke hides what it is drawn over; a table's rules do not.
        if let (DrawMode::Stroke(stroke) | DrawMode::FillAndStroke(_, stroke), Paint::Color(c)) = (mode, &props.paint) {
            let [a, b, c_, d, _, _] = props.transform.as_coeffs();
            let width = f64::from(stroke.line_width) * (a * d - b * c_).abs().sqrt();
            if c.to_rgba().to_rgba8()[3] > 128 && width >= THICK_STROKE_PT {
                let area = props.transform.transform_rect_bbox(hayro::hayro_interpret::kurbo::Shape::bounding_box(path)).inflate(width / 2.0, width / 2.0);
                self.fills.push(area.intersect(self.clip()));
            }
        }
    }
    fn push_clip_path(&mut self, clip: &ClipPath) {
        let narrowed = hayro::hayro_interpret::kurbo::Shape::bounding_box(&clip.path).intersect(self.clip());
        self.clips.push(narrowed);
    }
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn pop_clip(&mut self) {
        self.clips.pop();
    }
    fn pop_transparency_group(&mut self) {}

    fn draw_image(&mut self, image: Image<'a, '_>, props: ImageDrawProps<'a>) {
        let (w, h) = (image.width() as f64, image.height() as f64);
        let r = props.transform.transform_rect_bbox(Rect::new(0.0, 0.0, w, h)).intersect(self.page);
        let area = (r.width().max(0.0) * r.height().max(0.0)) / (self.page.width() * self.page.height()).max(1.0);
        self.cover = self.cover.max(area as f32);
        self.grounds.push((r.intersect(self.clip()), false));
        self.pictures.push((r.intersect(self.clip()), self.fills.len()));
    }

    fn draw_glyph_run(&mut self, run: &hayro::hayro_interpret::font::GlyphRun<'_, 'a>, props: DrawProps<'a>, mode: &DrawMode) {
        // Fill-and-stroke modes draw a run twice; the stroke pass adds nothing.
        if matches!(mode, DrawMode::Stroke(_)) && self.chars.last().is_some_and(|c| !c.hidden) {
            return;
        }
        let invisible = matches!(mode, DrawMode::Invisible);
        // Transparent, or white (which shows only on a dark ground).
        let (transparent, white) = match &props.paint {
            Paint::Color(c) => {
                let [r, g, b, a] = c.to_rgba().to_rgba8();
                (a < 20, r > 240 && g > 240 && b > 240)
            }
            Paint::Pattern(_) => (false, false),
        };
        for g in run.glyphs() {
            let Some(u) = g.as_unicode() else { continue };
            let advance = match &**g {
                Glyph::Outline(o) => o.advance_width(),
                Glyph::Type3(t) => t.advance_width(),
            }
            .unwrap_or(500.0) as f64;
            let t: Affine = props.transform * g.transform();
            let bbox = t.transform_rect_bbox(Rect::new(0.0, -200.0, advance.max(100.0), 800.0));
            // The em's height on the page: the font size, whatever the text's direction.
            let em = (t * hayro::hayro_interpret::kurbo::Point::new(0.0, 1000.0)) - (t * hayro::hayro_interpret::kurbo::Point::new(0.0, 0.0));
            let size = em.hypot() as f32;
            let text = match u {
                BfString::Char(c) => c.to_string(),
                BfString::String(s) => s,
            };
            if invisible {
                self.invisible += 1;
            }
            let tiny = size < 1.0;
            let outside = bbox.intersect(self.page).area() <= 0.0;
            // Only white print looks for its ground (a page may draw thousands of shapes).
            let on_light = || !self.grounds.iter().rev().find(|(r, _)| r.contains(bbox.center())).is_some_and(|(_, dark)| *dark);
            let hidden = invisible || transparent || tiny || outside || white && on_light();
            self.chars.push(Char { text, bbox, size, hidden, drawn_at: (self.fills.len(), self.pictures.len()) });
        }
    }
}

/// Reads the text layer of page `index` (0-based) of a PDF. None when the page cannot be read
/// or carries no text; a panic in the interpreter is the page's, not the caller's.
pub fn page_text(data: &Arc<Vec<u8>>, index: usize) -> Option<TextLayer> {
    let data = data.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || read_page_text(data, index))).ok().flatten()
}

fn read_page_text(data: Arc<Vec<u8>>, index: usize) -> Option<TextLayer> {
    let pdf = Pdf::new(data).ok()?;
    let page = pdf.pages().get(index)?;
    let (w, h) = page.render_dimensions();
    let page_rect = Rect::new(0.0, 0.0, w as f64, h as f64);
    let cache = InterpreterCache::new();
    let settings = InterpreterSettings { render_content: RenderContent::PAGE, ..InterpreterSettings::default() };
    let mut ctx = Context::new(page.initial_transform(true).to_kurbo(), page_rect, &cache, pdf.xref(), settings);
    let mut dev = Collector {
        chars: Vec::new(),
        grounds: Vec::new(),
        clips: Vec::new(),
        page: page_rect,
        cover: 0.0,
        invisible: 0,
        fills: Vec::new(),
        pictures: Vec::new(),
    };
    interpret_page(page, &mut ctx, &mut dev);
    if dev.chars.is_empty() {
        return None;
    }
    let covered = dev.covered();
    // Invisible text over a picture covering the page is a scanner's OCR layer: the text of the
    // picture, to be read. Anywhere else, hidden text is hidden.
    let ocr_layer = dev.cover > 0.7 && dev.invisible * 2 > dev.chars.len();
    let mut hidden_chars = 0;
    let visible: Vec<Char> = dev
        .chars
        .into_iter()
        .filter(|c| {
            let keep = !c.hidden || (ocr_layer && c.size >= 1.0);
            if !keep && !c.text.trim().is_empty() {
                hidden_chars += 1;
            }
            keep
        })
        .collect();
    Some(TextLayer { lines: group_lines(visible), page_w: w, page_h: h, picture_cover: dev.cover, hidden_chars, covered, ocr_layer, positioned: true })
}

/// Groups glyphs into lines (glyphs whose vertical middles are within half a size of the
/// line's) and words (a gap of a quarter of the size makes a space).
fn group_lines(mut chars: Vec<Char>) -> Vec<TextLine> {
    chars.sort_by(|a, b| a.bbox.center().y.total_cmp(&b.bbox.center().y).then(a.bbox.x0.total_cmp(&b.bbox.x0)));
    let mut rows: Vec<Vec<Char>> = Vec::new();
    for c in chars {
        let mid = c.bbox.center().y;
        match rows.iter_mut().rev().take(3).find(|r| {
            let first = &r[0];
            (first.bbox.center().y - mid).abs() < (first.size.max(c.size) as f64) * 0.5 && (first.size / c.size.max(0.1)).clamp(0.0, 10.0) > 0.5
        }) {
            Some(row) => row.push(c),
            None => rows.push(vec![c]),
        }
    }
    let mut lines = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| a.bbox.x0.total_cmp(&b.bbox.x0));
        // A line breaks where a gap is wider than three sizes (another column).
        let mut current: Vec<&Char> = Vec::new();
        let mut flush = |cur: &mut Vec<&Char>| {
            if let Some(line) = line_of(cur) {
                lines.push(line);
            }
            cur.clear();
        };
        for c in &row {
            if let Some(prev) = current.last()
                && c.bbox.x0 - prev.bbox.x1 > prev.size as f64 * 3.0
            {
                flush(&mut current);
            }
            current.push(c);
        }
        flush(&mut current);
    }
    lines.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    lines
}

fn line_of(chars: &[&Char]) -> Option<TextLine> {
    let mut text = String::new();
    let mut prev: Option<&Char> = None;
    for c in chars {
        if let Some(p) = prev {
            let gap = c.bbox.x0 - p.bbox.x1;
            if gap > p.size as f64 * 0.22 && !text.ends_with(' ') && !c.text.starts_with(' ') {
                text.push(' ');
            }
        }
        text.push_str(&c.text);
        prev = Some(c);
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let x0 = chars.iter().map(|c| c.bbox.x0).fold(f64::MAX, f64::min);
    let y0 = chars.iter().map(|c| c.bbox.y0).fold(f64::MAX, f64::min);
    let x1 = chars.iter().map(|c| c.bbox.x1).fold(f64::MIN, f64::max);
    let y1 = chars.iter().map(|c| c.bbox.y1).fold(f64::MIN, f64::max);
    let mut sizes: Vec<f32> = chars.iter().map(|c| c.size).collect();
    sizes.sort_by(f32::total_cmp);
    Some(TextLine { text, x: x0 as f32, y: y0 as f32, w: (x1 - x0) as f32, h: (y1 - y0) as f32, size: sizes[sizes.len() / 2] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page PDF with the given content stream and Helvetica as F1.
    fn pdf(content: &str) -> Arc<Vec<u8>> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".to_string(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
        ];
        out.extend_from_slice(b"%PDF-1.4\n");
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
        Arc::new(out)
    }

    #[test]
    fn a_born_digital_page_gives_its_lines_with_their_sizes() {
        let body = "Revenu fiscal de reference du foyer pour cette annee et nombre de parts";
        let content = format!(
            "BT /F1 18 Tf 72 770 Td (AVIS D'IMPOT 2025) Tj ET BT /F1 10 Tf 72 700 Td ({body}) Tj ET BT /F1 10 Tf 72 686 Td (Montant a payer 0 euro) Tj ET"
        );
        let layer = page_text(&pdf(&content), 0).expect("text");
        assert_eq!(layer.lines.len(), 3, "{layer:?}");
        assert_eq!(layer.lines[0].text, "AVIS D'IMPOT 2025");
        assert!((layer.lines[0].size - 18.0).abs() < 0.5 && (layer.lines[1].size - 10.0).abs() < 0.5);
        assert!(layer.lines[0].y < layer.lines[1].y, "top-down");
        assert_eq!(layer.lines[1].text, body);
        assert!(layer.usable());
        assert_eq!(layer.hidden_chars, 0);
    }

    #[test]
    fn hidden_text_on_a_page_without_a_picture_is_left_out() {
        // Visible: a rent receipt; invisible (render mode 3) and white: words to fool a reader.
        let content = "BT /F1 12 Tf 72 770 Td (QUITTANCE DE LOYER du mois de mars) Tj ET \
                       BT 3 Tr /F1 12 Tf 72 700 Td (AVIS D'IMPOT SUR LE REVENU) Tj ET \
                       BT 1 1 1 rg /F1 12 Tf 72 650 Td (REVENU FISCAL DE REFERENCE) Tj ET";
        let layer = page_text(&pdf(content), 0).expect("text");
        let text = layer.text();
        assert!(text.contains("QUITTANCE") && !text.contains("IMPOT") && !text.contains("FISCAL"), "{text}");
        assert!(layer.hidden_chars > 30);
        assert!(!layer.ocr_layer);
    }

    #[test]
    fn white_print_on_a_dark_band_is_read() {
        // A form's heading in white on a teal band; white words beside the band stay hidden.
        let content = "0.1 0.4 0.45 rg 60 760 480 30 re f \
                       BT 1 1 1 rg /F1 16 Tf 72 770 Td (CERTIFICAT MEDICAL) Tj ET \
                       BT 1 1 1 rg /F1 12 Tf 72 650 Td (REVENU FISCAL DE REFERENCE) Tj ET \
                       BT 0 g /F1 10 Tf 72 700 Td (a joindre a une demande) Tj ET";
        let layer = page_text(&pdf(content), 0).expect("text");
        let text = layer.text();
        assert!(text.contains("CERTIFICAT MEDICAL") && !text.contains("FISCAL"), "{text}");
        // A dark band clipped to nothing, or painted over in white, is no ground.
        for cover in ["q 0 0 1 1 re W n 0 g 60 760 480 30 re f Q", "0 g 60 760 480 30 re f 1 g 60 760 480 30 re f"] {
            let content =
                format!("{cover} BT 1 1 1 rg /F1 16 Tf 72 770 Td (CERTIFICAT MEDICAL) Tj ET BT 0 g /F1 10 Tf 72 700 Td (a joindre a une demande) Tj ET");
            let text = page_text(&pdf(&content), 0).expect("text").text();
            assert!(!text.contains("CERTIFICAT"), "{cover}: {text}");
        }
    }

    #[test]
    fn a_blank_forms_fill_in_rules_do_not_make_its_text_unusable() {
        // A cerfa as published: each field's label followed by its rule of underscores.
        let rule = " _".repeat(40);
        let content = format!(
            "BT /F1 14 Tf 72 770 Td (ATTESTATION D'ELECTION DE DOMICILE) Tj ET \
             BT /F1 10 Tf 72 740 Td (Nom\\(s\\) :{rule}) Tj ET BT /F1 10 Tf 72 725 Td (Prenom\\(s\\) :{rule}) Tj ET \
             BT /F1 10 Tf 72 710 Td (Date de naissance : _ _ /_ _ /_ _ _ _ Lieu de naissance :{rule}) Tj ET \
             BT /F1 10 Tf 72 695 Td (Adresse postale :{rule}) Tj ET"
        );
        let layer = page_text(&pdf(&content), 0).expect("text");
        assert!(layer.text().contains("Nom(s) : _ _"), "{}", layer.text());
        assert!(layer.usable(), "{}", layer.text());
    }

    #[test]
    fn letter_salad_is_not_usable_text() {
        let content = "BT /F1 12 Tf 72 770 Td (#$%& ()*+ ,-./ 0123 4567 89:; <=>? @ABC DEFG HIJK) Tj ET";
        let layer = page_text(&pdf(content), 0).expect("text");
        assert!(!layer.usable(), "{layer:?}");
        // Nothing drawn as text, or no PDF at all: no layer.
        assert!(page_text(&pdf("0 0 m 100 100 l S"), 0).is_none());
        assert!(page_text(&Arc::new(b"%PDF-1.4 garbage".to_vec()), 0).is_none());
    }
}
