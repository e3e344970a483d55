//! What one page is: a slip, a blank page, a page of text or a picture, and which way up.
//!
//! [`analyse_page`] is the per-page step of the job: it runs on one decoded page, returns small
//! values and the page's light encoding, and lets the pixels go.

use image::GrayImage;

use crate::binarize::{Bitmap, MIN_CONTRAST, TileStats, binarize, tile_stats};
use crate::geometry::{Corrections, straighten};
use crate::lightpdf::{COARSEST_STENCIL_DPI, EncodeParams, EncodedPage, PageContent, Taken, store_page};
use crate::originals::{PaperSigns, paper_signs};
use crate::qr::{QrHit, QrSearch, find_qr_codes_in, quarter_turn};
use crate::qualify::{PageFeatures, PageView};
use crate::raster::PageRaster;
use crate::slip::{SlipParse, parse_payload};

/// Tunable thresholds of the page decisions.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisParams {
    pub qr: QrSearch,
    /// Contrast (0-255) a mark needs over the paper to count when deciding blankness; bleed-through
    /// and scanner noise stay under it.
    pub blank_contrast: u8,
    /// A page with fewer inked cells (of ~0.7 mm) than this in its interior is blank.
    pub blank_max_cells: u32,
    /// Step between neighbouring pixels that counts as a printed edge.
    pub blank_edge: u8,
    /// Margins ignored for blankness (scanner edges, punch holes, staples), as page shares.
    pub blank_margin_x: f32,
    pub blank_margin_y: f32,
    /// Washed-out print: a second, lower contrast, with edges still sharper than bleed-through
    /// (which the paper diffuses) ever gives. A page with such marks is faint, not blank.
    pub faint_contrast: u8,
    pub faint_edge: u8,
    /// Paper darker than this is an unreadable scan (lid open, dark copy), never a blank page.
    pub dark_paper: u8,
    pub encode: EncodeParams,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            qr: QrSearch::default(),
            blank_contrast: 72,
            blank_max_cells: 24,
            blank_edge: 40,
            blank_margin_x: 0.075,
            blank_margin_y: 0.045,
            faint_contrast: 36,
            faint_edge: 32,
            dark_paper: 110,
            encode: EncodeParams::default(),
        }
    }
}

/// Which way up a page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Upright,
    UpsideDown,
    /// Not enough text to tell; the page is kept as scanned.
    Unknown,
}

/// A slip found on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct SlipSighting {
    pub payload: Vec<u8>,
    pub parse: SlipParse,
    /// Quarter turn of the sheet as read from the code (0, 90, 180, 270).
    pub turn: u16,
}

/// The decisions about one page.
#[derive(Debug, Clone)]
pub struct PageAnalysis {
    /// The first slip on the page, if any (a QR code that is not a slip is content).
    pub slip: Option<SlipSighting>,
    /// Every QR code read on the page, slip or not.
    pub qr_codes: Vec<QrHit>,
    pub blank: bool,
    /// Inked cells counted in the interior (evidence for the blank decision).
    pub ink_cells: u32,
    pub orientation: Orientation,
    pub content: PageContent,
    /// The page encoded for its piece; None for slips and blank pages.
    pub encoded: Option<EncodedPage>,
    /// What was done to put the page straight (outline, light, skew, turn, scale).
    pub corrections: Corrections,
    /// The paper as scanned (its size, its blue ink): an original sent by mistake shows there.
    pub paper: PaperSigns,
}

/// Analyses a decoded page and encodes it if it will be part of a piece.
pub fn analyse_page(raster: PageRaster, params: &AnalysisParams) -> PageAnalysis {
    analyse_and_read(raster, params, &|_| PageFeatures::default()).0
}

/// As [`analyse_page`], and hands a page that will be part of a piece (upright, binarised) to
/// `read` for what the qualifier needs from it. Slips and blank pages are not read.
pub fn analyse_and_read(raster: PageRaster, params: &AnalysisParams, read: &dyn Fn(&PageView<'_>) -> PageFeatures) -> (PageAnalysis, PageFeatures) {
    let mut raster = raster;
    // The paper as scanned, before the page is cut to its document or rescaled.
    let paper = paper_signs(&raster);
    let mut stats = tile_stats(&raster.gray, raster.dpi);
    let mut bits = binarize(&raster.gray, &stats, MIN_CONTRAST);
    let qr_codes = find_qr_codes_in(&raster.gray, &bits, &params.qr);
    let mut ink_cells = inked_cells(&raster.gray, Some(&bits), &stats, raster.dpi, params, (params.blank_contrast, params.blank_edge));
    // A code read only on the grey second look, on a page with no print of its own, is the
    // other side's code showing through a blank back: not a slip.
    let printed = ink_cells >= params.blank_max_cells;
    let slip = qr_codes.iter().filter(|hit| printed || !hit.faint).find_map(|hit| {
        let parse = parse_payload(&hit.payload);
        (!matches!(parse, SlipParse::NotASlip)).then(|| SlipSighting { payload: hit.payload.clone(), parse, turn: quarter_turn(hit.rotation) })
    });
    if ink_cells < params.blank_max_cells {
        // Faint print, or a dark scan: pages to read (and to refuse if unreadable), not to drop.
        // The dark-paper test is a sort of the tile levels: it goes first, the faint scan only
        // when it says nothing.
        if paper_median(&stats) < params.dark_paper {
            ink_cells = params.blank_max_cells;
        } else {
            let faint = inked_cells(&raster.gray, None, &stats, raster.dpi, params, (params.faint_contrast, params.faint_edge));
            if faint >= params.blank_max_cells * 3 {
                ink_cells = ink_cells.max(faint);
            }
        }
    }
    let blank = slip.is_none() && ink_cells < params.blank_max_cells;
    if slip.is_some() || blank {
        let orientation = if slip.as_ref().is_some_and(|s| s.turn == 180) { Orientation::UpsideDown } else { Orientation::Unknown };
        return (
            PageAnalysis {
                slip,
                qr_codes,
                blank,
                ink_cells,
                orientation,
                content: PageContent::Text,
                encoded: None,
                corrections: Corrections::default(),
                paper,
            },
            PageFeatures::default(),
        );
    }
    // Only a page that will be read is put straight (half a duplex mailing is blank backs).
    let (straight, corrections) = straighten(raster);
    raster = straight;
    if corrections.changed() {
        stats = tile_stats(&raster.gray, raster.dpi);
        bits = binarize(&raster.gray, &stats, MIN_CONTRAST);
    }
    let (orientation, strength) = orientation_evidence(&bits, raster.dpi);
    let content = content_kind(&raster, &stats);
    if orientation == Orientation::UpsideDown {
        raster.rotate180();
        bits.ink.reverse();
    }
    if orientation == Orientation::UpsideDown
        && let Some(l) = raster.text_layer.as_mut()
    {
        l.positioned = false;
    }
    // Print that says clearly which way up it reads is believed; anything weaker (capitals, a
    // card's patterns, a passport's facing page printed the other way) is checked by reading.
    let unsure = orientation == Orientation::Unknown || strength < SURE_ORIENTATION;
    // A 2D-Doc reads the same either way up: found before reading, so the reader can look for
    // what it signs in the print.
    let datamatrix = crate::qr::find_datamatrix_in(&raster.gray, &bits, raster.dpi);
    // Where the page sits in its input, only the caller knows: its `read` says it.
    let view = PageView {
        raster: &raster,
        ink: &bits,
        content,
        orientation_unsure: unsure,
        text_layer: raster.text_layer.as_ref(),
        datamatrix: &datamatrix,
        opens_input: false,
    };
    let mut features = read(&view);
    let mut orientation = orientation;
    if features.half_turn {
        // The reader read it better the other way up (from the scan's point of view, turned
        // once more: back to as scanned if the print had turned it).
        raster.rotate180();
        bits.ink.reverse();
        orientation = if orientation == Orientation::UpsideDown { Orientation::Upright } else { Orientation::UpsideDown };
    }
    if features.mirrored {
        raster.flip_horizontal();
        bits.flip_horizontal();
        if let Some(l) = raster.text_layer.as_mut() {
            l.positioned = false;
        }
    }
    features.reading.push(format!("orientation from the print: {orientation:?} ({strength:.1} times more ink on that side)"));
    // An identity document's photograph must stay recognisable, which a mixed page's
    // low-resolution background does not promise: its pictures are kept as pictures.
    let content = match content {
        PageContent::Text | PageContent::ColourText if features.layout.cards > 0 || features.mrz.is_some() => PageContent::PrintAndPictures,
        c => c,
    };
    let encoded = store_page(&raster, &bits, content, Taken::from(&corrections), &params.encode);
    features.other_qr = qr_codes.iter().map(|q| String::from_utf8_lossy(&q.payload).into_owned()).collect();
    features.datamatrix = datamatrix;
    let mut notes = corrections.notes.clone();
    if orientation == Orientation::UpsideDown {
        notes.push(if features.half_turn { "read upside down: turned".into() } else { "turned upside up".into() });
    }
    if features.mirrored {
        notes.push("read mirrored (a front camera's photo): put right".into());
    }
    features.reading.splice(0..0, notes);
    (PageAnalysis { slip, qr_codes, blank, ink_cells, orientation, content, encoded: Some(encoded), corrections, paper }, features)
}

/// Counts the ~0.7 mm cells of the interior holding a real mark: enough pixels clearly darker
/// than the local paper, with at least a few sharp edges. Specks of noise, the margins (scanner
/// edges, punch holes) and bleed-through (diffused by the paper: no sharp edge) do not count.
/// Stops counting once the page is clearly not blank.
/// With `bits`, only pixels the binarisation took for ink count. `(contrast, edge)` are the
/// thresholds of a mark.
fn inked_cells(gray: &GrayImage, bits: Option<&Bitmap>, stats: &TileStats, dpi: f32, params: &AnalysisParams, (contrast, edge): (u8, u8)) -> u32 {
    let (w, h) = gray.dimensions();
    let cell = ((dpi / 36.0) as u32).max(3);
    let x0 = (w as f32 * params.blank_margin_x) as u32;
    let x1 = w - x0;
    let y0 = (h as f32 * params.blank_margin_y) as u32;
    let y1 = h - y0;
    let min_px = (cell * cell / 6).max(3);
    let enough = params.blank_max_cells * 4;
    let raw = gray.as_raw();
    let mut count = 0;
    let mut y = y0;
    while y + cell <= y1 {
        let ty = (y / stats.tile) as usize;
        let mut x = x0;
        while x + cell <= x1 {
            let tx = (x / stats.tile) as usize;
            let paper = stats.paper[ty * stats.cols as usize + tx];
            let limit = paper.saturating_sub(contrast);
            let mut n = 0;
            for yy in y..y + cell {
                let base = (yy * w) as usize;
                for xx in x..x + cell {
                    let i = base + xx as usize;
                    n += (bits.is_none_or(|b| b.ink[i] == 1) && raw[i] < limit) as u32;
                }
            }
            let sharp = if bits.is_some() { has_sharp_edges(raw, w, x, y, cell, edge) } else { has_sharp_smoothed_edges(raw, w, x, y, cell, edge) };
            if n >= min_px && sharp {
                count += 1;
                if count >= enough {
                    return count;
                }
            }
            x += cell;
        }
        y += cell;
    }
    count
}

/// As [`has_sharp_edges`] on 2×2 averages two pixels apart: scanner noise averages out, a
/// printed stroke's edge stays a step, the paper-diffused edge of bleed-through does not.
fn has_sharp_smoothed_edges(raw: &[u8], w: u32, x: u32, y: u32, cell: u32, edge: u8) -> bool {
    let avg = |xx: u32, yy: u32| -> i32 {
        let i = (yy * w + xx) as usize;
        let j = i + w as usize;
        (raw[i] as i32 + raw[i + 1] as i32 + raw.get(j).copied().unwrap_or(raw[i]) as i32 + raw.get(j + 1).copied().unwrap_or(raw[i]) as i32) / 4
    };
    let mut steps = 0;
    for yy in y..y + cell {
        for xx in x..(x + cell).min(w.saturating_sub(4)) {
            if (avg(xx, yy) - avg(xx + 2, yy)).unsigned_abs() >= edge as u32 {
                steps += 1;
                if steps >= 3 {
                    return true;
                }
            }
        }
    }
    false
}

/// The page's paper level: the median of its tiles' paper levels.
fn paper_median(stats: &TileStats) -> u8 {
    let mut p = stats.paper.clone();
    p.sort_unstable();
    p.get(p.len() / 2).copied().unwrap_or(255)
}

/// At least three steps between neighbouring pixels as large as printed edges give.
fn has_sharp_edges(raw: &[u8], w: u32, x: u32, y: u32, cell: u32, edge: u8) -> bool {
    let mut steps = 0;
    for yy in y..y + cell {
        let row = &raw[(yy * w + x) as usize..(yy * w + x + cell + 1).min(w * (yy + 1)) as usize];
        for pair in row.windows(2) {
            if pair[0].abs_diff(pair[1]) >= edge {
                steps += 1;
                if steps >= 3 {
                    return true;
                }
            }
        }
    }
    false
}

/// Evidence over which the orientation the print gives is not checked by reading.
const SURE_ORIENTATION: f32 = 3.0;

/// Tells upright from upside-down text without OCR: in Latin script ascenders (b, d, h, l,
/// capitals) are far more frequent than descenders (g, p, q, y), so within each text line more ink
/// sits above the x-height band than below it. Lines are measured in narrow vertical strips so
/// that a few degrees of skew do not blur them.
pub fn orientation(bits: &Bitmap, dpi: f32) -> Orientation {
    orientation_evidence(bits, dpi).0
}

/// As [`orientation`], with the strength of the evidence: how many times more ink the winning
/// side has (1 when nothing was measured).
pub fn orientation_evidence(bits: &Bitmap, dpi: f32) -> (Orientation, f32) {
    let (w, h) = (bits.width as usize, bits.height as usize);
    let strip = ((dpi * 0.5) as usize).max(32);
    let min_line = (dpi * 0.04) as usize; // ~1 mm
    let max_line = (dpi * 0.30) as usize; // ~7.5 mm
    let (mut above, mut below) = (0u64, 0u64);
    let mut profile = vec![0u32; h];
    let mut sx = 0;
    while sx + strip <= w {
        for (y, p) in profile.iter_mut().enumerate() {
            let row = &bits.ink[y * w + sx..y * w + sx + strip];
            let n: u32 = row.iter().map(|&b| b as u32).sum();
            // A rule (table border, underline) separates lines rather than belonging to one.
            *p = if n as usize > strip * 6 / 10 { 0 } else { n };
        }
        let mut y = 0;
        while y < h {
            if profile[y] == 0 {
                y += 1;
                continue;
            }
            let start = y;
            while y < h && profile[y] > 0 {
                y += 1;
            }
            let line = &profile[start..y];
            if line.len() < min_line || line.len() > max_line {
                continue;
            }
            // A vertical border crossing the line adds the same few pixels to every row.
            let floor = line.iter().copied().min().unwrap_or(0);
            let peak = line.iter().copied().max().unwrap_or(0) - floor;
            if peak < 4 {
                continue;
            }
            let core = floor + peak * 2 / 5;
            let c0 = line.iter().position(|&p| p >= core).unwrap_or(0);
            let c1 = line.iter().rposition(|&p| p >= core).unwrap_or(line.len() - 1);
            above += line[..c0].iter().map(|&p| (p - floor) as u64).sum::<u64>();
            below += line[c1 + 1..].iter().map(|&p| (p - floor) as u64).sum::<u64>();
        }
        sx += strip;
    }
    let total = above + below;
    // Evidence needed, in pixels at 300 dpi.
    let needed = (1_500.0 * (dpi / 300.0).powi(2)) as u64;
    if total < needed {
        return (Orientation::Unknown, 1.0);
    }
    let strength = (above.max(below) as f32 / above.min(below).max(1) as f32).min(100.0);
    // Turning a page is only done on clear evidence: capitals, accents and a card's patterns
    // blur the count; an unsure page is left to the reader, which reads it both ways.
    let o = if above as f64 > below as f64 * 1.2 {
        Orientation::Upright
    } else if below as f64 > above as f64 * 2.0 {
        Orientation::UpsideDown
    } else {
        Orientation::Unknown
    };
    (o, strength)
}

/// Tiles (about 5.5 mm) mostly of mid-tones that make a page a picture: an identity photo covers
/// some fifty.
const PHOTO_TILES: usize = 12;

/// Text (bitonal or mixed: the encoder measures its paper) when binarising keeps the print
/// legible, print and pictures when it also holds photographs; a picture (JPEG) when the print is
/// too faint to binarise safely. Colour is kept either way.
fn content_kind(raster: &PageRaster, stats: &TileStats) -> PageContent {
    // Print is stored up to 65,535 pixels a side (see `lightpdf::encode_page`).
    if raster.width() > u16::MAX as u32 || raster.height() > u16::MAX as u32 {
        return if raster.rgb.is_some() { PageContent::Colour } else { PageContent::Photo };
    }
    if raster.bilevel {
        return PageContent::Text;
    }
    let photo_tiles = stats.midtone.iter().filter(|&&m| m > 75).count();
    let contrast = stats.page_paper.saturating_sub(stats.page_ink);
    // Faint print or a very coarse scan: binarisation would break strokes; keep the grey levels.
    // Print of 120-180 dpi is binarised on the page enlarged (see `lightpdf::COARSE_DPI`).
    let soft = contrast < 110 || raster.dpi < COARSEST_STENCIL_DPI;
    // A few square centimetres of continuous tone: an identity photo, a picture, kept as a
    // picture (the encoder finds where). A title in bold or a band's edge makes a few tiles of
    // mid-tones: the encoder measures the rest.
    let pictures = photo_tiles >= PHOTO_TILES;
    match (raster.rgb.is_some(), soft, pictures) {
        (true, true, _) => PageContent::Colour,
        (false, true, _) => PageContent::Photo,
        (_, false, true) => PageContent::PrintAndPictures,
        (true, false, false) => PageContent::ColourText,
        (false, false, false) => PageContent::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_like(upside_down: bool) -> Bitmap {
        // Lines of "letters": an x-height band with tall strokes above it (ascenders).
        let (w, h) = (1200u32, 1200u32);
        let mut ink = vec![0u8; (w * h) as usize];
        for line in 0..20u32 {
            let top = 60 + line * 55;
            for x in (40..1160u32).step_by(9) {
                for y in top + 12..top + 30 {
                    for dx in 0..3 {
                        ink[(y * w + x + dx) as usize] = 1;
                    }
                }
                if x % 27 == 4 {
                    for y in top..top + 12 {
                        ink[(y * w + x) as usize] = 1;
                    }
                }
                if x % 90 == 4 {
                    for y in top + 30..top + 38 {
                        ink[(y * w + x) as usize] = 1;
                    }
                }
            }
        }
        if upside_down {
            ink.reverse();
        }
        Bitmap { width: w, height: h, ink }
    }

    #[test]
    fn ascenders_tell_which_way_up() {
        assert_eq!(orientation(&text_like(false), 300.0), Orientation::Upright);
        assert_eq!(orientation(&text_like(true), 300.0), Orientation::UpsideDown);
        let empty = Bitmap { width: 500, height: 500, ink: vec![0; 250_000] };
        assert_eq!(orientation(&empty, 300.0), Orientation::Unknown);
    }

    #[test]
    fn white_page_is_blank_and_a_short_line_is_not() {
        let params = AnalysisParams::default();
        let blank = PageRaster::from_gray(GrayImage::from_pixel(1240, 1754, image::Luma([235])), false);
        let a = analyse_page(blank.clone(), &params);
        assert!(a.blank && a.encoded.is_none());
        let mut line = blank;
        for y in 800..830 {
            for x in 400..700 {
                if (x / 6) % 3 != 0 {
                    line.gray.put_pixel(x, y, image::Luma([30]));
                }
            }
        }
        let a = analyse_page(line, &params);
        assert!(!a.blank, "a page with one short line is not blank ({} cells)", a.ink_cells);
        assert!(a.encoded.is_some());
    }

    #[test]
    fn crisp_print_is_print_down_to_120_dpi_and_a_picture_below() {
        // Lines of dark print on white, as an A4 scanned at `dpi`.
        let page = |dpi: f32| {
            let (w, h) = ((8.27 * dpi) as u32, (11.69 * dpi) as u32);
            let unit = (dpi / 60.0).max(1.0) as u32;
            let mut r = PageRaster::from_gray(
                GrayImage::from_fn(w, h, |x, y| {
                    let print =
                        y > h / 10 && y < h - h / 10 && (y / (2 * unit)).is_multiple_of(3) && !(x / unit).is_multiple_of(3) && x > w / 10 && x < w - w / 10;
                    image::Luma([if print { 25 } else { 240 }])
                }),
                false,
            );
            r.dpi = dpi;
            r
        };
        for (dpi, expected) in [(300.0, PageContent::Text), (150.0, PageContent::Text), (100.0, PageContent::Photo)] {
            let r = page(dpi);
            assert_eq!(content_kind(&r, &tile_stats(&r.gray, r.dpi)), expected, "{dpi} dpi");
        }
    }

    #[test]
    fn washed_out_print_and_dark_scans_are_not_blank() {
        let params = AnalysisParams::default();
        // Print at 185 on paper at 240: fainter than a blank page's threshold, still sharp.
        let mut faint = PageRaster::from_gray(GrayImage::from_pixel(1240, 1754, image::Luma([240])), false);
        for row in 0..12 {
            for y in 300 + row * 60..318 + row * 60 {
                for x in 200..1000 {
                    if (x / 5) % 3 != 0 {
                        faint.gray.put_pixel(x, y, image::Luma([185]));
                    }
                }
            }
        }
        let a = analyse_page(faint, &params);
        assert!(!a.blank, "washed-out print is content ({} cells)", a.ink_cells);
        // A scan with the lid open: dark grey all over.
        let dark = PageRaster::from_gray(GrayImage::from_pixel(1240, 1754, image::Luma([60])), false);
        assert!(!analyse_page(dark, &params).blank);
    }
}
