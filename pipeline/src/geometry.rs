//! Pages as people send them, put straight before anything reads them: a phone photo's
//! document found on the table and its perspective undone, uneven light flattened, any skew
//! levelled, a sideways page turned, and the scale measured from the text itself (a phone says
//! 72 dpi whatever it photographed; a card alone in an image is not an A4 page).
//!
//! Everything is measured on small maps of the page (a few hundred thousand cells), so a page
//! that needs nothing costs a few milliseconds; the full-resolution work (warp, rotation,
//! resampling) runs only when a correction is due. The corrected page is the one stored.

use image::{GrayImage, RgbImage};

use crate::raster::{PageRaster, is_colourful, luma, luma_of};

/// Resolution the reader and the encoder work best at; pages far from it are resampled.
pub const WORKING_DPI: f32 = 300.0;
/// Height of a line of body text (ascenders to descenders) in millimetres: the unit the scale
/// is measured in when the page's size says nothing (10-11 pt print).
const BODY_LINE_MM: f32 = 3.4;
/// A skew from which the page itself is turned level (under it, the reader levels the lines it
/// reads and the stored page keeps a scanner's usual tilt).
const DESKEW_FROM_DEG: f32 = 2.0;
/// Long side under which an image of unknown scale is enlarged before reading.
const SMALL_IMAGE_PX: f32 = 1600.0;

/// What was done to the page, for its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrections {
    /// The document's outline was found in a photo and its perspective undone.
    pub outline: bool,
    /// Uneven light was flattened.
    pub flattened: bool,
    /// Degrees the page was turned to level its lines (the residual skew is the reader's).
    pub deskew_deg: f32,
    /// A sideways page was turned a quarter.
    pub turned: bool,
    /// The page was resampled by this factor (1 = not).
    pub scale: f32,
    /// How the resolution was found.
    pub dpi_from_text: bool,
    pub notes: Vec<String>,
}

impl Corrections {
    /// The page was enlarged: its pixels are more than the source's.
    pub fn enlarged(&self) -> bool {
        self.scale > 1.05
    }
}

impl Default for Corrections {
    fn default() -> Self {
        Self { outline: false, flattened: false, deskew_deg: 0.0, turned: false, scale: 1.0, dpi_from_text: false, notes: Vec::new() }
    }
}

impl Corrections {
    /// Whether the page's pixels or resolution changed.
    pub fn changed(&self) -> bool {
        self.outline || self.flattened || self.turned || self.deskew_deg != 0.0 || self.scale != 1.0 || self.dpi_from_text
    }
}

/// A grey map of the page reduced by `f` (box means).
struct Map {
    w: usize,
    h: usize,
    v: Vec<u8>,
}

fn reduce(gray: &GrayImage, f: u32) -> Map {
    let (w, h, v) = box_means(gray.as_raw(), gray.width() as usize, 1, f);
    Map { w, h, v }
}

/// Box means of `f` × `f` cells of interleaved samples (`channels` per pixel, `width` pixels a
/// row): the map's width, height and samples, row by row.
fn box_means(raw: &[u8], width: usize, channels: usize, f: u32) -> (usize, usize, Vec<u8>) {
    let f = f.max(1) as usize;
    let (w, h) = (width / f, raw.len() / (width * channels).max(1) / f);
    let n = (f * f) as u32;
    let mut sums = vec![0u32; w * channels];
    let mut v = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        sums.iter_mut().for_each(|s| *s = 0);
        for yy in y * f..(y + 1) * f {
            let row = &raw[yy * width * channels..(yy * width + w * f) * channels];
            for (s, cell) in sums.chunks_exact_mut(channels).zip(row.chunks_exact(f * channels)) {
                for px in cell.chunks_exact(channels) {
                    s.iter_mut().zip(px).for_each(|(s, &p)| *s += p as u32);
                }
            }
        }
        v.extend(sums.iter().map(|s| (s / n) as u8));
    }
    (w, h, v)
}

/// The paper's brightness over the map: the 90th percentile of blocks of `b` cells, one value per
/// block.
fn paper_field(m: &Map, b: usize) -> (usize, usize, Vec<u8>) {
    let (bw, bh) = (m.w.div_ceil(b), m.h.div_ceil(b));
    let mut out = vec![255u8; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let mut hist = [0u32; 256];
            let mut n = 0;
            for y in by * b..((by + 1) * b).min(m.h) {
                for x in bx * b..((bx + 1) * b).min(m.w) {
                    hist[m.v[y * m.w + x] as usize] += 1;
                    n += 1;
                }
            }
            let mut acc = 0;
            out[by * bw + bx] = (0..256)
                .rev()
                .find(|&i| {
                    acc += hist[i];
                    acc * 10 >= n
                })
                .unwrap_or(255) as u8;
        }
    }
    (bw, bh, out)
}

// ---------------------------------------------------------------------------------------------
// The document in a photo.

/// A quadrilateral in page pixels: top-left, top-right, bottom-right, bottom-left.
pub type Quad = [(f32, f32); 4];

/// Finds the document in a photo: the largest bright region that is not the whole picture,
/// whose outline is close to a quadrilateral. None for a scan (the paper fills the image) or
/// when no clean outline is seen.
pub fn find_outline(gray: &GrayImage) -> Option<Quad> {
    let f = outline_cell(gray.width(), gray.height());
    outline_of(&reduce(gray, f), f, false)
}

/// The side of the maps outlines are looked for on, in pixels: about 400 cells on the long side.
fn outline_cell(w: u32, h: u32) -> u32 {
    (w.max(h) / 400).max(1)
}

/// Finds the document in a colour photo whose table is as bright as the document: a blue card
/// on light wood (a real phone photo of an identity card's verso in its sleeve: card and table
/// both about 110 in grey) is told from the table by its colour only. The map is each cell's
/// distance from the colour around the picture's edge, and the document the largest region far
/// from it. None when that edge is the paper itself (a colour scan, where the cards copied on
/// the sheet are far from the paper's colour but are not the document).
pub fn find_outline_by_colour(rgb: &RgbImage) -> Option<Quad> {
    let f = outline_cell(rgb.width(), rgb.height());
    let (w, h) = (rgb.width() as usize / f as usize, rgb.height() as usize / f as usize);
    if w < 40 || h < 40 {
        return None;
    }
    // Most colour pages are scans: told from one pixel a cell before every pixel is summed.
    let centre = |x: usize, y: usize| rgb.get_pixel((x * f as usize + f as usize / 2) as u32, (y * f as usize + f as usize / 2) as u32).0;
    table_and_paper(&(0..w * h).map(|i| centre(i % w, i / w)).collect::<Vec<_>>(), w, h)?;
    let cells = reduce_rgb(rgb, f);
    let table = table_and_paper(&cells, w, h)?;
    let m = Map { w, h, v: cells.iter().map(|p| colour_distance(p, &table).min(255.0) as u8).collect() };
    let quad = outline_of(&m, f, true)?;
    // A document has paper brighter than the table somewhere (the card's white band): a dark
    // thing on a light table (a passport's cover) cut out alone would read as nothing at all.
    let bright = |p: &[u8; 3]| f32::from(luma(*p));
    let mut inside: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| in_quad(&quad, ((x as f32 + 0.5) * f as f32, (y as f32 + 0.5) * f as f32)))
        .map(|(x, y)| bright(&cells[y * w + x]))
        .collect();
    inside.sort_by(f32::total_cmp);
    let paper = inside.get(inside.len() * 9 / 10).copied()?;
    // A sheet or a card, in a paper or card format's proportions (A4 1.41, ID-1 1.59, perspective
    // allowed): on a card that fills the picture, the ring is the card itself and what is far
    // from it only its white boxes (a redacted student card's were cut out as a 3:1 strip).
    let side = |a: usize, b: usize| dist(quad[a], quad[b]);
    let (across, down) = ((side(0, 1) + side(3, 2)) / 2.0, (side(0, 3) + side(1, 2)) / 2.0);
    let proportions = across.max(down) / across.min(down).max(1.0);
    (paper > bright(&table.map(|c| c as u8)) + PAPER_OVER_TABLE && SHEET_OR_CARD.contains(&proportions)).then_some(quad)
}

/// Long side over short side of what is taken for a sheet or a card when found by its colour.
const SHEET_OR_CARD: std::ops::RangeInclusive<f32> = 1.25..=1.75;

/// How much brighter than the table (in grey levels) a document's paper must be somewhere.
const PAPER_OVER_TABLE: f32 = 15.0;

/// The table's colour on a colour map `w` × `h`: the median, channel by channel, of its two
/// outermost rings of cells. None when the brightest tenth of the cells (the paper) is of that
/// colour: the picture is a scan of the paper, not a photo of it on something else.
fn table_and_paper(cells: &[[u8; 3]], w: usize, h: usize) -> Option<[f32; 3]> {
    let ring: Vec<[u8; 3]> =
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| x < 2 || y < 2 || x + 2 >= w || y + 2 >= h).map(|(x, y)| cells[y * w + x]).collect();
    let median = |c: usize| {
        let mut v: Vec<u8> = ring.iter().map(|p| p[c]).collect();
        v.sort_unstable();
        v[v.len() / 2] as f32
    };
    let table = [median(0), median(1), median(2)];
    let mut by_light: Vec<&[u8; 3]> = cells.iter().collect();
    by_light.sort_by_key(|p| p.iter().map(|&c| c as u32).sum::<u32>());
    let brightest = &by_light[by_light.len() * 9 / 10..];
    let paper_far = brightest.iter().map(|p| colour_distance(p, &table)).sum::<f32>() / brightest.len().max(1) as f32;
    (paper_far >= PAPER_FROM_TABLE).then_some(table)
}

/// Euclidean distance between a colour and the table's (RGB, 0-441).
fn colour_distance(p: &[u8; 3], table: &[f32; 3]) -> f32 {
    p.iter().zip(table).map(|(&c, t)| (f32::from(c) - t).powi(2)).sum::<f32>().sqrt()
}

/// Colour distance (RGB, 0-441) under which the brightest part of a picture is the colour of its
/// edge: the picture is the paper itself.
const PAPER_FROM_TABLE: f32 = 40.0;

/// A colour map of the page reduced by `f` (box means), row by row.
fn reduce_rgb(rgb: &RgbImage, f: u32) -> Vec<[u8; 3]> {
    box_means(rgb.as_raw(), rgb.width() as usize, 3, f).2.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
}

/// The document on a map where it is the bright part (see [`find_outline`]), in page pixels
/// (the map's cells are `f` pixels a side). On a map of colours, a region the frame cuts on two
/// sides or more is as likely a band of the picture's own colours as a document (a small scan on
/// a tinted ground gave a strip of it), and none is fitted by its sides.
fn outline_of(m: &Map, f: u32, by_colour: bool) -> Option<Quad> {
    if m.w < 40 || m.h < 40 {
        return None;
    }
    // Otsu's threshold between the background and the paper.
    let mut hist = [0u64; 256];
    for &p in &m.v {
        hist[p as usize] += 1;
    }
    let total = m.v.len() as f64;
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &c)| i as f64 * c as f64).sum();
    let (mut wb, mut sb, mut best, mut t) = (0.0, 0.0, 0.0, 128usize);
    for (i, &c) in hist.iter().enumerate() {
        wb += c as f64;
        if wb == 0.0 || wb == total {
            continue;
        }
        sb += i as f64 * c as f64;
        let (mb, mf) = (sb / wb, (sum_all - sb) / (total - wb));
        let between = wb * (total - wb) * (mb - mf) * (mb - mf);
        if between > best {
            best = between;
            t = i;
        }
    }
    let bright: Vec<bool> = m.v.iter().map(|&p| p as usize > t).collect();
    // Close the paper over its print: text and photos inside the document are dark too.
    let r = (m.w.max(m.h) / 60).max(2);
    let closed = erode(&dilate(&bright, m.w, m.h, r), m.w, m.h, r);
    let (label, area) = largest_component(&closed, m.w, m.h)?;
    let share = area as f32 / (m.w * m.h) as f32;
    if !(0.12..=0.93).contains(&share) {
        return None;
    }
    // Its border cells, then the four extreme corners along the diagonals.
    let mut pts = Vec::new();
    for y in 0..m.h {
        for x in 0..m.w {
            if label[y * m.w + x] {
                let edge = x == 0
                    || y == 0
                    || x + 1 == m.w
                    || y + 1 == m.h
                    || !label[y * m.w + x - 1]
                    || !label[y * m.w + x + 1]
                    || !label[(y - 1) * m.w + x]
                    || !label[(y + 1) * m.w + x];
                if edge {
                    pts.push((x as f32, y as f32));
                }
            }
        }
    }
    let pick = |score: &dyn Fn(&(f32, f32)) -> f32| pts.iter().copied().max_by(|a, b| score(a).total_cmp(&score(b)));
    let tl = pick(&|p| -p.0 - p.1)?;
    let tr = pick(&|p| p.0 - p.1)?;
    let br = pick(&|p| p.0 + p.1)?;
    let bl = pick(&|p| -p.0 + p.1)?;
    let quad = [tl, tr, br, bl];
    // A document: the quadrilateral covers the region well, and the region is not the picture's
    // own frame (a scan of a dark-bordered page touches every edge).
    let qa = quad_area(&quad);
    let touching =
        [tl.1.min(tr.1) <= 1.0, tr.0.max(br.0) >= (m.w - 2) as f32, bl.1.max(br.1) >= (m.h - 2) as f32, tl.0.min(bl.0) <= 1.0].iter().filter(|&&b| b).count();
    let quad = if touching >= 3 || (by_colour && touching >= 2) {
        return None;
    } else if (area as f32 * 0.9..=area as f32 * 1.12).contains(&qa) {
        quad
    } else if touching > 0 && !by_colour {
        clipped_outline(&label, m.w, m.h, area)?
    } else {
        return None;
    };
    let scale = |p: (f32, f32)| ((p.0 + 0.5) * f as f32, (p.1 + 0.5) * f as f32);
    Some(quad.map(scale))
}

/// A side of a document as a line: `y = k·x + d` for the top and bottom, `x = k·y + d` for the
/// left and right.
#[derive(Debug, Clone, Copy)]
struct Side {
    k: f32,
    d: f32,
}

/// The outline of a document the picture cuts off: each side fitted to the region's edge where
/// it is seen, a side the picture's edge hides taken as that edge, the corners where the sides
/// meet, in the picture or out of it. Only cells where the edge runs the side's way count: where
/// the frame cuts a slanting side, a row's last cells are that slant, not the right side. A real
/// phone photo of a book's page, cut by the frame at the right and the bottom, was left whole by
/// the extreme corners (they covered 0.89 of its region), its dark cloth stored with it.
fn clipped_outline(label: &[bool], w: usize, h: usize, area: usize) -> Option<Quad> {
    let at = |x: usize, y: usize| label[y * w + x];
    // Each column's first and last cells, each row's, where the region has any.
    let columns: Vec<Option<(usize, usize)>> =
        (0..w).map(|x| (0..h).find(|&y| at(x, y)).map(|top| (top, (0..h).rev().find(|&y| at(x, y)).unwrap_or(top)))).collect();
    let rows: Vec<Option<(usize, usize)>> =
        (0..h).map(|y| (0..w).find(|&x| at(x, y)).map(|left| (left, (0..w).rev().find(|&x| at(x, y)).unwrap_or(left)))).collect();
    // The cells of one side: off the frame, and where the edge runs the side's way (the next
    // line's cell at most one cell on).
    let side_cells = |ends: &[Option<(usize, usize)>], last: bool, frame: usize| -> Vec<(f32, f32)> {
        let end = |i: usize| ends.get(i).copied().flatten().map(|(a, b)| if last { b } else { a });
        (0..ends.len())
            .filter_map(|i| {
                let e = end(i)?;
                let steady = [i.checked_sub(1), Some(i + 1)].into_iter().flatten().filter_map(end).all(|n| n.abs_diff(e) <= 1);
                (e != 0 && e != frame && steady).then_some((i as f32, e as f32))
            })
            .collect()
    };
    let extent = |ends: &[Option<(usize, usize)>]| ends.iter().filter(|e| e.is_some()).count();
    // A side seen along less than a third of the region is the frame's; one seen is straight:
    // most of its cells on its line (a round thing's edge is not).
    let fit = |cells: Vec<(f32, f32)>, extent: usize, frame: f32| -> Option<Side> {
        if cells.len() * 3 < extent {
            return Some(Side { k: 0.0, d: frame });
        }
        let side = theil_sen(&cells);
        let on_line = cells.iter().filter(|&&(i, e)| (e - side.k * i - side.d).abs() <= 2.0).count();
        (on_line * 5 >= cells.len() * 3).then_some(side)
    };
    let top = fit(side_cells(&columns, false, h - 1), extent(&columns), 0.0)?;
    let bottom = fit(side_cells(&columns, true, h - 1), extent(&columns), (h - 1) as f32)?;
    let left = fit(side_cells(&rows, false, w - 1), extent(&rows), 0.0)?;
    let right = fit(side_cells(&rows, true, w - 1), extent(&rows), (w - 1) as f32)?;
    let quad = [meet(top, left)?, meet(top, right)?, meet(bottom, right)?, meet(bottom, left)?];
    // Corners out of the picture, but near it: the page is unwarped to its outline's size, and
    // sides nearly parallel to the frame meet far away (a page of hundreds of megapixels).
    let (fw, fh) = (w as f32, h as f32);
    if quad.iter().any(|&(x, y)| !(-fw / 2.0..=fw * 1.5).contains(&x) || !(-fh / 2.0..=fh * 1.5).contains(&y)) {
        return None;
    }
    // The outline holds the region, and the part of it in the picture is not much more.
    let (mut held, mut seen) = (0usize, 0usize);
    for y in 0..h {
        for x in 0..w {
            if in_quad(&quad, (x as f32, y as f32)) {
                seen += 1;
                held += usize::from(at(x, y));
            }
        }
    }
    (held as f32 >= area as f32 * 0.9 && seen as f32 <= area as f32 * 1.12).then_some(quad)
}

/// A robust line through cells `(i, e)`: `e = k·i + d`, the slope the median of those between
/// cells half the list apart, the offset the median of what is left (a notch or a bump of the
/// edge does not pull it).
fn theil_sen(cells: &[(f32, f32)]) -> Side {
    let half = cells.len() / 2;
    let mut slopes: Vec<f32> = (0..cells.len() - half).map(|j| (cells[j + half].1 - cells[j].1) / (cells[j + half].0 - cells[j].0).max(1.0)).collect();
    slopes.sort_by(f32::total_cmp);
    let k = slopes.get(slopes.len() / 2).copied().unwrap_or(0.0);
    let mut offsets: Vec<f32> = cells.iter().map(|&(i, e)| e - k * i).collect();
    offsets.sort_by(f32::total_cmp);
    Side { k, d: offsets.get(offsets.len() / 2).copied().unwrap_or(0.0) }
}

/// Where a top or bottom side (`y = k·x + d`) meets a left or right one (`x = k·y + d`); None
/// when they are nearly parallel.
fn meet(across: Side, down: Side) -> Option<(f32, f32)> {
    let det = 1.0 - across.k * down.k;
    if det.abs() < 0.2 {
        return None;
    }
    let x = (down.k * across.d + down.d) / det;
    Some((x, across.k * x + across.d))
}

/// Whether `p` is inside the quadrilateral `q` (its corners clockwise in image coordinates, as
/// an outline's are).
fn in_quad(q: &Quad, (x, y): (f32, f32)) -> bool {
    (0..4).all(|i| {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0) >= 0.0
    })
}

fn quad_area(q: &Quad) -> f32 {
    let mut a = 0.0;
    for i in 0..4 {
        let (x0, y0) = q[i];
        let (x1, y1) = q[(i + 1) % 4];
        a += x0 * y1 - x1 * y0;
    }
    a.abs() / 2.0
}

fn dilate(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    morph(m, w, h, r, true)
}

fn erode(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    morph(m, w, h, r, false)
}

/// Square dilation (or erosion), separable: rows then columns.
fn morph(m: &[bool], w: usize, h: usize, r: usize, grow: bool) -> Vec<bool> {
    let pass = |src: &[bool], len: usize, stride: usize, count: usize, step: usize| -> Vec<bool> {
        let mut out = src.to_vec();
        for k in 0..count {
            let base = k * step;
            // Running count of set cells in the window.
            let at = |i: usize| src[base + i * stride];
            let mut n: i64 = (0..=r.min(len - 1)).filter(|&i| at(i)).count() as i64;
            for i in 0..len {
                let lo = i.saturating_sub(r);
                let hi = (i + r).min(len - 1);
                let size = (hi - lo + 1) as i64;
                out[base + i * stride] = if grow { n > 0 } else { n == size };
                // Slide: drop lo, add hi + 1.
                if i >= r && at(i - r) {
                    n -= 1;
                }
                if i + r + 1 < len && at(i + r + 1) {
                    n += 1;
                }
            }
        }
        out
    };
    let rows = pass(m, w, 1, h, w);
    pass(&rows, h, w, w, 1)
}

/// The largest 4-connected set region and its size (the first of equals, in reading order).
fn largest_component(m: &[bool], w: usize, h: usize) -> Option<(Vec<bool>, usize)> {
    let (groups, label) = crate::grid::components(m, w, h, crate::grid::Joined::ByEdge);
    let best = groups.iter().enumerate().fold(None::<(usize, usize)>, |best, (i, g)| match best {
        Some((_, size)) if size >= g.cells => best,
        _ => Some((i, g.cells)),
    })?;
    Some((label.iter().map(|&l| l == best.0 as u32).collect(), best.1))
}

/// Solves the 3×3 projective map sending `from[i]` to `to[i]` (4 point pairs).
pub fn homography(from: &Quad, to: &Quad) -> Option<[f64; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (from[i].0 as f64, from[i].1 as f64);
        let (u, v) = (to[i].0 as f64, to[i].1 as f64);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gauss-Jordan with partial pivoting on the 8×8 system.
    for c in 0..8 {
        let p = (c..8).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-9 {
            return None;
        }
        a.swap(c, p);
        let d = a[c][c];
        for v in &mut a[c][c..] {
            *v /= d;
        }
        let pivot = a[c];
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c];
                for (v, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *v -= f * p;
                }
            }
        }
    }
    Some([a[0][8], a[1][8], a[2][8], a[3][8], a[4][8], a[5][8], a[6][8], a[7][8], 1.0])
}

fn dist(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// Undoes the perspective: the quadrilateral becomes an upright rectangle of its own size.
pub fn unwarp(raster: &PageRaster, q: &Quad) -> Option<PageRaster> {
    let w = ((dist(q[0], q[1]) + dist(q[3], q[2])) / 2.0).round() as u32;
    let h = ((dist(q[0], q[3]) + dist(q[1], q[2])) / 2.0).round() as u32;
    if w < 64 || h < 64 {
        return None;
    }
    let rect: Quad = [(0.0, 0.0), (w as f32, 0.0), (w as f32, h as f32), (0.0, h as f32)];
    let m = homography(&rect, q)?;
    let map = |x: f32, y: f32| -> (f32, f32) {
        let (x, y) = (x as f64 + 0.5, y as f64 + 0.5);
        let d = m[6] * x + m[7] * y + m[8];
        (((m[0] * x + m[1] * y + m[2]) / d - 0.5) as f32, ((m[3] * x + m[4] * y + m[5]) / d - 0.5) as f32)
    };
    let mut out = resample_with(raster, w, h, &map);
    // The sheet's own size now says the resolution (until the text says otherwise).
    out.dpi = crate::raster::estimate_dpi(w, h);
    Some(out)
}

/// The paper's colour: the brightest tenth of the page (a grey paper stays grey).
fn paper_colour(raster: &PageRaster) -> [f32; 3] {
    let level = |img: &[u8], stride: usize, c: usize| -> f32 {
        let mut hist = [0u32; 256];
        for p in img.chunks_exact(stride).step_by(7) {
            hist[p[c] as usize] += 1;
        }
        let n: u32 = hist.iter().sum();
        let mut acc = 0;
        (0..256)
            .rev()
            .find(|&v| {
                acc += hist[v];
                acc * 10 >= n
            })
            .unwrap_or(255) as f32
    };
    match &raster.rgb {
        Some(rgb) => [level(rgb.as_raw(), 3, 0), level(rgb.as_raw(), 3, 1), level(rgb.as_raw(), 3, 2)],
        None => [level(raster.gray.as_raw(), 1, 0); 3],
    }
}

/// A new page `w` × `h` whose pixel (x, y) is the source's at `map(x, y)` (bilinear; the
/// paper's colour outside: white corners on grey paper would look like print to the threshold).
fn resample_with(raster: &PageRaster, w: u32, h: u32, map: &dyn Fn(f32, f32) -> (f32, f32)) -> PageRaster {
    let fill = paper_colour(raster);
    let sample_gray = |img: &GrayImage, sx: f32, sy: f32| -> u8 {
        let (iw, ih) = (img.width() as i64, img.height() as i64);
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let px = |x: i64, y: i64| -> f32 { if x < 0 || y < 0 || x >= iw || y >= ih { fill[0] } else { img.as_raw()[(y * iw + x) as usize] as f32 } };
        let v = px(x0, y0) * (1.0 - fx) * (1.0 - fy) + px(x0 + 1, y0) * fx * (1.0 - fy) + px(x0, y0 + 1) * (1.0 - fx) * fy + px(x0 + 1, y0 + 1) * fx * fy;
        v.round().clamp(0.0, 255.0) as u8
    };
    match &raster.rgb {
        Some(rgb) => {
            let (iw, ih) = (rgb.width() as i64, rgb.height() as i64);
            let raw = rgb.as_raw();
            let img = RgbImage::from_fn(w, h, |x, y| {
                let (sx, sy) = map(x as f32, y as f32);
                let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
                let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                let mut px = [0u8; 3];
                for (c, out) in px.iter_mut().enumerate() {
                    let at =
                        |x: i64, y: i64| -> f32 { if x < 0 || y < 0 || x >= iw || y >= ih { fill[c] } else { raw[((y * iw + x) * 3) as usize + c] as f32 } };
                    let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                        + at(x0 + 1, y0) * fx * (1.0 - fy)
                        + at(x0, y0 + 1) * (1.0 - fx) * fy
                        + at(x0 + 1, y0 + 1) * fx * fy;
                    *out = v.round().clamp(0.0, 255.0) as u8;
                }
                image::Rgb(px)
            });
            PageRaster {
                gray: luma_of(&img),
                rgb: Some(img),
                dpi: raster.dpi,
                bilevel: false,
                text_layer: None,
                wet_ink: raster.wet_ink,
                sent: None,
                vector: None,
            }
        }
        None => {
            let img = GrayImage::from_fn(w, h, |x, y| {
                let (sx, sy) = map(x as f32, y as f32);
                image::Luma([sample_gray(&raster.gray, sx, sy)])
            });
            PageRaster { gray: img, rgb: None, dpi: raster.dpi, bilevel: false, text_layer: None, wet_ink: raster.wet_ink, sent: None, vector: None }
        }
    }
}

/// Turns the page by `deg` (counter-clockwise positive in image coordinates: the print's lines
/// go down to the right when `deg` > 0 and are level after), same size, corners the paper's colour.
pub fn rotate(raster: &PageRaster, deg: f32) -> PageRaster {
    let (w, h) = (raster.width(), raster.height());
    let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let mut out = resample_with(raster, w, h, &|x, y| {
        let (dx, dy) = (x - cx, y - cy);
        (cx + dx * c - dy * s, cy + dx * s + dy * c)
    });
    out.bilevel = raster.bilevel;
    out
}

/// Resamples the page by `scale`: an area average when shrinking, Catmull-Rom cubic when
/// enlarging (strokes keep their edges; a coarse page's print is cut from this, see
/// `lightpdf::COARSE_DPI`).
pub fn rescale(raster: &PageRaster, scale: f32) -> PageRaster {
    let (w, h) = (((raster.width() as f32 * scale).round() as u32).max(1), ((raster.height() as f32 * scale).round() as u32).max(1));
    let (shrink, from) = (scale < 1.0, (raster.width(), raster.height()));
    let rgb = raster.rgb.as_ref().map(|rgb| {
        if shrink {
            image::imageops::resize(rgb, w, h, image::imageops::FilterType::Triangle)
        } else {
            RgbImage::from_raw(w, h, enlarge(rgb.as_raw(), 3, from, (w, h))).unwrap_or_else(|| RgbImage::new(w, h))
        }
    });
    let gray = match &rgb {
        Some(rgb) => luma_of(rgb),
        None if shrink => image::imageops::resize(&raster.gray, w, h, image::imageops::FilterType::Triangle),
        None => GrayImage::from_raw(w, h, enlarge(raster.gray.as_raw(), 1, from, (w, h))).unwrap_or_else(|| GrayImage::new(w, h)),
    };
    // Enlarged or reduced, the page still shows the file's pixels.
    PageRaster {
        gray,
        rgb,
        dpi: raster.dpi * scale,
        bilevel: raster.bilevel && scale == 1.0,
        text_layer: None,
        wet_ink: raster.wet_ink,
        sent: raster.sent.clone(),
        vector: raster.vector.clone(),
    }
}

/// Fixed-point unit of the enlargement's weights.
const WEIGHT_ONE: i32 = 1 << 12;

/// For each output position along an axis of `from` samples enlarged to `to`, the first of its
/// four source samples (edges repeated) and their Catmull-Rom weights, summing to
/// [`WEIGHT_ONE`].
fn cubic_taps(from: u32, to: u32) -> Vec<([usize; 4], [i32; 4])> {
    let ratio = from as f32 / to as f32;
    let last = from.saturating_sub(1) as i64;
    (0..to)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio - 0.5;
            let i0 = centre.floor();
            let t = centre - i0;
            let (t2, t3) = (t * t, t * t * t);
            let f = [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2];
            let mut weights = f.map(|v| (v * WEIGHT_ONE as f32).round() as i32);
            // Rounding leaves the sum a unit off at most: the nearest sample takes it.
            weights[1 + (t >= 0.5) as usize] += WEIGHT_ONE - weights.iter().sum::<i32>();
            let at = |k: i64| (i0 as i64 + k).clamp(0, last) as usize;
            ([at(-1), at(0), at(1), at(2)], weights)
        })
        .collect()
}

/// Enlarges interleaved samples (`channels` per pixel) from `from` to `to` pixels with the
/// Catmull-Rom cubic, separably in fixed point: along rows into 16-bit intermediates with four
/// bits of fraction, then down columns a whole row at a time. About ten times faster than the
/// `image` crate's float resize, which took 350-490 ms for a coarse A4 page.
fn enlarge(samples: &[u8], channels: usize, from: (u32, u32), to: (u32, u32)) -> Vec<u8> {
    let (fw, fh) = (from.0 as usize, from.1 as usize);
    let (tw, th) = (to.0 as usize, to.1 as usize);
    if fw == 0 || fh == 0 || samples.len() < fw * fh * channels {
        return vec![0; tw * th * channels];
    }
    let across = cubic_taps(from.0, to.0);
    let down = cubic_taps(from.1, to.1);
    let row_len = tw * channels;
    let mut rows = vec![0i16; fh * row_len];
    for y in 0..fh {
        let src = &samples[y * fw * channels..(y + 1) * fw * channels];
        let dst = &mut rows[y * row_len..(y + 1) * row_len];
        for (x, (idx, wt)) in across.iter().enumerate() {
            for c in 0..channels {
                let sum: i32 = (0..4).map(|k| i32::from(src[idx[k] * channels + c]) * wt[k]).sum();
                dst[x * channels + c] = ((sum + (1 << 7)) >> 8) as i16;
            }
        }
    }
    let mut out = vec![0u8; th * row_len];
    let shift = 12 + 4;
    for (y, (idx, wt)) in down.iter().enumerate() {
        let r: [&[i16]; 4] = idx.map(|i| &rows[i * row_len..(i + 1) * row_len]);
        let dst = &mut out[y * row_len..(y + 1) * row_len];
        for (x, o) in dst.iter_mut().enumerate() {
            let sum = i32::from(r[0][x]) * wt[0] + i32::from(r[1][x]) * wt[1] + i32::from(r[2][x]) * wt[2] + i32::from(r[3][x]) * wt[3];
            *o = ((sum + (1 << (shift - 1))) >> shift).clamp(0, 255) as u8;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Light, skew, quarter turns and scale, from the print.

/// Flattens uneven light (a phone's shadow, a lamp's falloff): each pixel divided by the
/// paper's brightness around it. Returns false when the light is even enough to leave alone.
pub fn flatten_light(raster: &mut PageRaster) -> bool {
    let f = (raster.width().max(raster.height()) / 300).max(1);
    let m = reduce(&raster.gray, f);
    if m.w < 16 || m.h < 16 {
        return false;
    }
    let b = (m.w.max(m.h) / 12).max(4);
    let (bw, bh, field) = paper_field(&m, b);
    // Only paper: a block dark all over (a photo, a logo) says nothing of the light, so each
    // block takes the median of its neighbourhood; a shadow is wider than that.
    let field = median3(&median3(&field, bw, bh), bw, bh);
    let mut levels: Vec<u8> = field.clone();
    levels.sort_unstable();
    let hi = levels[levels.len() * 9 / 10] as f32;
    let lo = levels[levels.len() / 10] as f32;
    if hi < 80.0 || lo > hi * 0.82 {
        return false;
    }
    // Paper level at a pixel: bilinear between block centres, never below a third of the
    // brightest (a black block is a picture, not a shadow).
    let floor = (hi / 3.0).max(40.0);
    let cell = (b as u32 * f) as f32;
    let level = |x: u32, y: u32| -> f32 {
        let gx = ((x as f32 / cell) - 0.5).clamp(0.0, (bw - 1) as f32);
        let gy = ((y as f32 / cell) - 0.5).clamp(0.0, (bh - 1) as f32);
        let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(bw - 1), (y0 + 1).min(bh - 1));
        let (fx, fy) = (gx - x0 as f32, gy - y0 as f32);
        let v = |x: usize, y: usize| (field[y * bw + x] as f32).max(floor);
        v(x0, y0) * (1.0 - fx) * (1.0 - fy) + v(x1, y0) * fx * (1.0 - fy) + v(x0, y1) * (1.0 - fx) * fy + v(x1, y1) * fx * fy
    };
    let target = hi.max(200.0);
    let (w, h) = (raster.width(), raster.height());
    // The field is smooth: computed every 8 pixels and held.
    let mut gains = vec![0f32; (w.div_ceil(8) * h.div_ceil(8)) as usize];
    let gw = w.div_ceil(8);
    for gy in 0..h.div_ceil(8) {
        for gx in 0..gw {
            gains[(gy * gw + gx) as usize] = target / level(gx * 8 + 4, gy * 8 + 4);
        }
    }
    let gain = |x: u32, y: u32| gains[((y / 8) * gw + x / 8) as usize];
    raster.pixels_changed();
    for (x, y, p) in raster.gray.enumerate_pixels_mut() {
        p.0[0] = (p.0[0] as f32 * gain(x, y)).min(255.0) as u8;
    }
    if let Some(rgb) = raster.rgb.as_mut() {
        for (x, y, p) in rgb.enumerate_pixels_mut() {
            let g = gain(x, y);
            for c in &mut p.0 {
                *c = (*c as f32 * g).min(255.0) as u8;
            }
        }
    }
    true
}

/// Each block the median of itself and its neighbours.
fn median3(v: &[u8], w: usize, h: usize) -> Vec<u8> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let mut n: Vec<u8> = Vec::with_capacity(9);
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    n.push(v[yy * w + xx]);
                }
            }
            n.sort_unstable();
            n[n.len() / 2]
        })
        .collect()
}

/// Ink cells of a map: clearly darker than the paper around them, and not inside a dense
/// region (a photograph, a table's texture, a dark border): those say nothing of lines of print.
fn ink_of(m: &Map) -> Vec<bool> {
    let b = 24usize;
    let (bw, _, field) = paper_field(m, b);
    let ink: Vec<bool> = (0..m.w * m.h)
        .map(|i| {
            let (x, y) = (i % m.w, i / m.w);
            let paper = field[(y / b) * bw + x / b] as u32;
            (m.v[i] as u32) * 100 < paper * 72
        })
        .collect();
    // Share of ink in a window around each cell, from a summed-area table.
    let r = (m.w.max(m.h) / 150).max(3);
    let mut sat = vec![0u32; (m.w + 1) * (m.h + 1)];
    for y in 0..m.h {
        let mut row = 0;
        for x in 0..m.w {
            row += u32::from(ink[y * m.w + x]);
            sat[(y + 1) * (m.w + 1) + x + 1] = sat[y * (m.w + 1) + x + 1] + row;
        }
    }
    (0..m.w * m.h)
        .map(|i| {
            if !ink[i] {
                return false;
            }
            let (x, y) = (i % m.w, i / m.w);
            let (x0, y0, x1, y1) = (x.saturating_sub(r), y.saturating_sub(r), (x + r + 1).min(m.w), (y + r + 1).min(m.h));
            let n = sat[y1 * (m.w + 1) + x1] + sat[y0 * (m.w + 1) + x0] - sat[y0 * (m.w + 1) + x1] - sat[y1 * (m.w + 1) + x0];
            (n as usize) * 100 < (x1 - x0) * (y1 - y0) * 55
        })
        .collect()
}

/// How the print runs on the page: the angle that makes its lines sharpest, and whether they
/// run across (rows) or down (a sideways page).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrintDirection {
    /// Degrees, -45..45.
    pub angle: f32,
    pub sideways: bool,
    /// How much sharper than ink spread evenly (1 = no line structure at all).
    pub sharpness: f32,
}

/// Profile concentration of points projected at `deg` along rows (or columns): Σp² · n / (Σp)².
fn concentration(pts: &[(f32, f32)], deg: f32, columns: bool, len: usize, centre: (f32, f32), profile: &mut Vec<u32>) -> f32 {
    profile.clear();
    profile.resize(len * 2, 0);
    let t = deg.to_radians().tan();
    for &(x, y) in pts {
        let v = if columns { x - (y - centre.1) * t } else { y - (x - centre.0) * t };
        let i = v as i64 + len as i64 / 2;
        if i >= 0 && (i as usize) < profile.len() {
            profile[i as usize] += 1;
        }
    }
    let n = pts.len().max(1) as f64;
    let sq: f64 = profile.iter().map(|&p| (p as f64) * (p as f64)).sum();
    (sq * len as f64 / (n * n)) as f32
}

/// The ink map without its rules: thin straight runs of ink far longer than a letter (a
/// document's edges on a bigger scan, a fold, a table's lines). A small document on a big sheet
/// has long sharp edges that would outweigh its print, and a tall one's would say "sideways".
/// A line of print is broken by the gaps between its words long before that length, or is
/// thicker than a rule, so it stays (a rule tilted more than a degree or two stays too).
fn without_rules(ink: &[bool], w: usize, h: usize) -> Vec<bool> {
    /// Thickest run across that is still a rule, in cells.
    const THIN: u32 = 3;
    let long = (w.max(h) / 12).max(12) as u32;
    // Length of the run of ink each cell is part of, along rows and along columns.
    let runs = |n_lines: usize, n_along: usize, at: &dyn Fn(usize, usize) -> usize| {
        let mut len = vec![0u32; w * h];
        for line in 0..n_lines {
            let mut start = 0;
            for i in 0..=n_along {
                if i < n_along && ink[at(line, i)] {
                    continue;
                }
                for j in start..i {
                    len[at(line, j)] = (i - start) as u32;
                }
                start = i + 1;
            }
        }
        len
    };
    let across = runs(h, w, &|y, x| y * w + x);
    let down = runs(w, h, &|x, y| y * w + x);
    (0..w * h).map(|i| ink[i] && !(down[i] >= long && across[i] <= THIN || across[i] >= long && down[i] <= THIN)).collect()
}

/// Finds the print's direction on an ink map of cells.
fn print_direction(ink: &[bool], w: usize, h: usize) -> Option<PrintDirection> {
    let ink = &without_rules(ink, w, h)[..];
    // Up to ~20,000 ink cells, the sheet's border left out.
    let (bx, by) = (w / 25, h / 25);
    let total = ink.iter().filter(|&&b| b).count();
    if total < 200 {
        return None;
    }
    let step = (total / 20_000).max(1);
    let pts: Vec<(f32, f32)> = (by..h - by)
        .flat_map(|y| (bx..w - bx).map(move |x| (x, y)))
        .filter(|&(x, y)| ink[y * w + x])
        .step_by(step)
        .map(|(x, y)| (x as f32, y as f32))
        .collect();
    if pts.len() < 150 {
        return None;
    }
    let centre = (w as f32 / 2.0, h as f32 / 2.0);
    let mut profile = Vec::new();
    let level = concentration(&pts, 0.0, false, h + 2 * w.max(h), centre, &mut profile);
    let mut best_of = [PrintDirection { angle: 0.0, sideways: false, sharpness: 0.0 }; 2];
    for (k, columns) in [false, true].into_iter().enumerate() {
        let len = if columns { w } else { h } + 2 * (w.max(h));
        let mut a = -45.0f32;
        while a <= 45.0 {
            let s = concentration(&pts, a, columns, len, centre, &mut profile);
            if s > best_of[k].sharpness {
                best_of[k] = PrintDirection { angle: a, sideways: columns, sharpness: s };
            }
            a += 1.0;
        }
    }
    // Lines across the page are the rule: down the page must be clearly sharper.
    let mut best = if best_of[1].sharpness > best_of[0].sharpness * 1.3 { best_of[1] } else { best_of[0] };
    // Refine to a quarter of a degree.
    let len = if best.sideways { w } else { h } + 2 * (w.max(h));
    let centre_angle = best.angle;
    let mut a = centre_angle - 0.75;
    while a <= centre_angle + 0.75 {
        let s = concentration(&pts, a, best.sideways, len, centre, &mut profile);
        if s > best.sharpness {
            best.angle = a;
            best.sharpness = s;
        }
        a += 0.25;
    }
    // Level rows are the rule: another direction must be clearly sharper to be believed.
    if best.sharpness < level * 1.2 {
        best = PrintDirection { angle: 0.0, sideways: false, sharpness: level };
    }
    Some(best)
}

/// The median height, in cells, of the bands of inked rows in vertical strips: the height of a
/// line of print. Only strips whose bands are alike count (lines of text are; the shapes of a
/// picture or a pattern are not).
fn line_height_cells(ink: &[bool], w: usize, h: usize) -> Option<f32> {
    let strip = (w / 10).max(8);
    let mut heights = Vec::new();
    let mut x0 = 0;
    while x0 + strip <= w {
        let mut bands = Vec::new();
        let mut y = 0;
        while y < h {
            let inked = |y: usize| ink[y * w + x0..y * w + x0 + strip].iter().filter(|&&b| b).count();
            if inked(y) == 0 {
                y += 1;
                continue;
            }
            let start = y;
            while y < h && inked(y) > 0 {
                y += 1;
            }
            let band = y - start;
            // A band of one or two cells is a rule or a speck; a huge one a picture.
            if (2..h / 8).contains(&band) {
                bands.push(band as f32);
            }
        }
        if bands.len() >= 3 {
            bands.sort_by(f32::total_cmp);
            let median = bands[bands.len() / 2];
            let (q1, q3) = (bands[bands.len() / 4], bands[bands.len() * 3 / 4]);
            if q1 >= median * 0.6 && q3 <= median * 1.6 {
                heights.extend(bands);
            }
        }
        x0 += strip;
    }
    if heights.len() < 12 {
        return None;
    }
    heights.sort_by(f32::total_cmp);
    Some(heights[heights.len() / 2])
}

/// Whether the page's pixel size fits an A4 sheet at the resolution the raster was given.
fn a4_shaped(w: u32, h: u32) -> bool {
    let r = w.max(h) as f32 / w.min(h).max(1) as f32;
    (r - 1.414).abs() < 0.06
}

/// A4-shaped and at least this long (A4 at 85 dpi), an image is a scanned sheet whose size says
/// its scale. Shorter, it is a thumbnail or a passport's data page (ID-3, 125 × 88 mm, has an
/// A4's proportions), whose text must say it.
const SHEET_MIN_PX: u32 = 1000;

fn sheet_shaped(w: u32, h: u32) -> bool {
    a4_shaped(w, h) && w.max(h) >= SHEET_MIN_PX
}

/// An ID-1 card's long side (identity cards, residence permits, bank and health cards).
const CARD_LONG_MM: f32 = 85.6;

/// Whether the image is an ID-1 card filling the frame (85.6 × 54 mm, 1.585): a card scanned or
/// cropped alone, whose size then says the scale better than its text, which a card's guilloche
/// background hides from the line measure. A photo's frame (4:3, 3:2) is not this shape.
fn card_shaped(w: u32, h: u32) -> bool {
    let r = w.max(h) as f32 / w.min(h).max(1) as f32;
    (r - 1.585).abs() < 0.02
}

/// Straightens a page: outline and perspective (photos), light, skew, quarter turn, scale.
/// The sense of the text (upright or upside down) is left to [`crate::analysis::orientation`],
/// which reads ascenders on the binarised page.
pub fn straighten(mut raster: PageRaster) -> (PageRaster, Corrections) {
    // A born-digital page is straight by construction, and its text's positions are exact.
    if raster.text_layer.as_ref().is_some_and(|t| !t.ocr_layer && t.picture_cover < 0.5) {
        return (raster, Corrections::default());
    }
    // The text layer of a scan follows the page through rescaling (its positions are shares of
    // the page), not through a turn or an unwarp.
    let mut layer = raster.text_layer.take();
    let (mut raster, c) = straighten_pixels(raster);
    if let Some(l) = layer.as_mut()
        && (c.outline || c.turned || c.deskew_deg != 0.0)
    {
        l.positioned = false;
    }
    raster.text_layer = layer;
    (raster, c)
}

fn straighten_pixels(mut raster: PageRaster) -> (PageRaster, Corrections) {
    let mut c = Corrections::default();
    if raster.bilevel {
        // A bitonal scan comes from a document scanner: no perspective, no light to flatten.
        return level_and_scale(raster, c);
    }
    let found = match find_outline(&raster.gray) {
        Some(q) => Some((q, "")),
        None => raster.rgb.as_ref().and_then(find_outline_by_colour).map(|q| (q, " by its colour")),
    };
    if let Some((q, how)) = found
        && let Some(flat) = unwarp(&raster, &q)
    {
        c.outline = true;
        c.notes.push(format!(
            "document found in the photo{how} ({}×{} of {}×{} pixels), perspective undone",
            flat.width(),
            flat.height(),
            raster.width(),
            raster.height()
        ));
        raster = flat;
        // The colour of a photo is often all in the table around the sheet: a grey page is
        // stored grey.
        if raster.rgb.as_ref().is_some_and(|rgb| !is_colourful(rgb)) {
            raster.rgb = None;
            c.notes.push("no colour on the document itself: kept grey".into());
        }
    }
    if flatten_light(&mut raster) {
        c.flattened = true;
        c.notes.push("uneven light flattened".into());
    }
    level_and_scale(raster, c)
}

fn level_and_scale(mut raster: PageRaster, mut c: Corrections) -> (PageRaster, Corrections) {
    let f = (raster.width().max(raster.height()) / 1000).max(1);
    let m = reduce(&raster.gray, f);
    let ink = ink_of(&m);
    let direction = print_direction(&ink, m.w, m.h);
    if let Some(d) = direction
        && d.sharpness > 1.4
    {
        if d.angle.abs() >= DESKEW_FROM_DEG {
            // Columns' angle is measured the other way round.
            let turn = if d.sideways { -d.angle } else { d.angle };
            raster = rotate(&raster, turn);
            c.deskew_deg = turn;
            c.notes.push(format!("levelled by {turn:.1}°"));
        }
        if d.sideways {
            // The lines run down the page: turn it a quarter; which quarter the ascenders say
            // (the caller tries half a turn more when the page reads upside down).
            raster.rotate90();
            c.turned = true;
            c.notes.push("sideways page turned a quarter".into());
        }
    }
    // The scale: an A4 page's size says it (a sheet's proportions are the surest measure, and a
    // page with a card and three lines of text says little of print sizes), and so does a card
    // alone; anything else is measured from its lines.
    let (w, h) = (raster.width(), raster.height());
    let measured = if sheet_shaped(w, h) {
        None
    } else if card_shaped(w, h) {
        let dpi = w.max(h) as f32 * 25.4 / CARD_LONG_MM;
        Some((dpi, format!("a card filling the image: {dpi:.0} dpi from its size (the file would say {:.0})", raster.dpi)))
    } else {
        let f = (w.max(h) / 1000).max(1);
        let m = reduce(&raster.gray, f);
        line_height_cells(&ink_of(&m), m.w, m.h)
            .map(|cells| cells * f as f32 * 25.4 / BODY_LINE_MM)
            .map(|t| (t, format!("scale from the text: about {t:.0} dpi (the image's size would say {:.0})", raster.dpi)))
    };
    let by_text = measured.as_ref().map(|m| m.0);
    let dpi = match measured {
        Some((t, note)) => {
            c.dpi_from_text = true;
            c.notes.push(note);
            t
        }
        None => raster.dpi,
    };
    raster.dpi = dpi.clamp(40.0, 2400.0);
    // A small image whose text could not be measured (a card's thumbnail): enlarged so its
    // print has pixels enough to be read.
    let long = w.max(h) as f32;
    if by_text.is_none() && !sheet_shaped(w, h) && long < SMALL_IMAGE_PX {
        let s = (SMALL_IMAGE_PX / long).min(3.0);
        raster = rescale(&raster, s);
        c.scale = s;
        c.notes.push(format!("small image ({w}×{h}) enlarged ×{s:.2}"));
        return (raster, c);
    }
    // Far from the working resolution: resample (big phone photos shrink, small images grow).
    // Scanners' own resolutions (150-600 dpi) are read as they come.
    let scale = WORKING_DPI / raster.dpi;
    let big = raster.width() as f32 * scale * raster.height() as f32 * scale;
    let due = if c.dpi_from_text { !(0.7..=1.45).contains(&scale) } else { scale < 0.5 };
    if due && big < 60e6 && !raster.bilevel {
        let s = scale.clamp(0.1, 3.0);
        raster = rescale(&raster, s);
        c.scale = s;
        c.notes.push(format!("resampled ×{s:.2} to {:.0} dpi", raster.dpi));
    }
    (raster, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of "text": lines of strokes on white, `w` × `h`, lines every `pitch` pixels,
    /// strokes `x` px tall.
    fn text_page(w: u32, h: u32, pitch: u32, x: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |px, py| {
            let margin = w / 10;
            let in_line = py % pitch < x && py > h / 12 && py < h - h / 12;
            // Letters of varied widths, not aligned from one line to the next.
            let line = py / pitch;
            let k = (px + line * 37) / (x / 2).max(2);
            let letter = !(k.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(5);
            image::Luma([if in_line && letter && px > margin && px < w - margin { 20 } else { 245 }])
        })
    }

    #[test]
    fn enlarging_keeps_flat_flat_ramps_straight_and_draws_what_a_float_cubic_draws() {
        // Flat grey stays flat, to the level, at any ratio.
        let flat = vec![137u8; 31 * 17];
        assert!(enlarge(&flat, 1, (31, 17), (77, 50)).iter().all(|&v| v == 137));
        // A ramp along x stays a ramp: Catmull-Rom reproduces straight lines.
        let ramp: Vec<u8> = (0..20 * 8).map(|i| (10 * (i % 20)) as u8).collect();
        let big = enlarge(&ramp, 1, (20, 8), (50, 20));
        for x in 5..45 {
            let expected = 10.0 * ((x as f32 + 0.5) * 0.4 - 0.5);
            assert!((f32::from(big[10 * 50 + x]) - expected).abs() <= 1.0, "x {x}: {} for {expected}", big[10 * 50 + x]);
        }
        // Print on paper, in colour: the same picture as the image crate's float Catmull-Rom,
        // within rounding away from the edges (which each handles its own way).
        let src = RgbImage::from_fn(120, 90, |x, y| {
            let ink = (x / 3 + y / 5) % 4 == 0;
            image::Rgb(if ink { [20, 30, 120] } else { [240, 236, 230 - (x % 7) as u8] })
        });
        let ours = enlarge(src.as_raw(), 3, (120, 90), (210, 158));
        let theirs = image::imageops::resize(&src, 210, 158, image::imageops::FilterType::CatmullRom);
        let (mut total, mut n, mut worst) = (0u64, 0u64, 0u8);
        for y in 4..154 {
            for x in 4..206 {
                for c in 0..3 {
                    let d = ours[(y * 210 + x) * 3 + c].abs_diff(theirs.get_pixel(x as u32, y as u32)[c]);
                    total += u64::from(d);
                    worst = worst.max(d);
                    n += 1;
                }
            }
        }
        assert!(total as f64 / (n as f64) < 0.6 && worst <= 3, "mean {} worst {worst}", total as f64 / n as f64);
        // A single pixel enlarged, and nothing to enlarge: no panic, the right sizes.
        assert_eq!(enlarge(&[9], 1, (1, 1), (3, 3)), vec![9; 9]);
        assert_eq!(enlarge(&[], 1, (0, 0), (2, 2)).len(), 4);
    }

    #[test]
    fn a_card_filling_the_image_and_a_small_a4_shaped_image_are_scaled_for_what_they_are() {
        // A card scanned alone at 1,360 dpi: its size says the scale, and it is read at the
        // working resolution (its guilloche would have fooled the line measure).
        let card = PageRaster::from_gray(GrayImage::from_pixel(4584, 2892, image::Luma([235])), false);
        let (r, c) = straighten(card);
        assert!((r.dpi - WORKING_DPI).abs() < 5.0 && r.width().abs_diff(1011) < 5, "{} dpi, {}×{}", r.dpi, r.width(), r.height());
        assert!(c.notes.iter().any(|n| n.starts_with("a card filling the image: 1360 dpi")), "{:?}", c.notes);
        // A passport's data page, 419 × 293 pixels: an A4's shape, not an A4 scan's size. Its
        // print is enlarged to be read.
        let passport = PageRaster::from_gray(GrayImage::from_pixel(419, 293, image::Luma([235])), false);
        let (r, c) = straighten(passport);
        assert!(r.width() >= 419 * 3 - 2, "{}×{} {:?}", r.width(), r.height(), c.notes);
        // An A4 scan keeps the scale its size says.
        let sheet = PageRaster::from_gray(GrayImage::from_pixel(1240, 1754, image::Luma([235])), false);
        let (r, _) = straighten(sheet);
        assert_eq!((r.width(), r.height()), (1240, 1754));
    }

    #[test]
    fn a_tilted_page_is_levelled_and_a_sideways_one_turned() {
        let page = PageRaster::from_gray(text_page(1240, 1754, 40, 24), false);
        let tilted = rotate(&page, -7.0);
        let (_, c) = straighten(tilted);
        assert!((c.deskew_deg - 7.0).abs() < 1.0, "{c:?}");
        let mut sideways = page.clone();
        sideways.rotate90();
        let (out, c) = straighten(sideways);
        assert!(c.notes.iter().any(|n| n.contains("quarter")), "{c:?}");
        assert!(out.height() > out.width());
        // A level, upright page is left alone.
        let (_, c) = straighten(page);
        assert_eq!(c, Corrections::default());
    }

    #[test]
    fn a_small_document_s_edges_on_a_big_sheet_do_not_turn_it() {
        // An open passport, 420 × 700 pixels, alone on a landscape sheet scanned at 100 dpi
        // (as a redacted real one was): its long dark sides are sharper than its few small
        // lines of print, but the print runs across.
        let text = text_page(380, 150, 30, 4);
        let sheet = GrayImage::from_fn(1654, 1169, |x, y| {
            let (dx, dy) = (x as i64 - 1150, y as i64 - 250);
            let inside = (0..420).contains(&dx) && (0..700).contains(&dy);
            if inside && !(2..418).contains(&dx) {
                image::Luma([60])
            } else if inside && (20..400).contains(&dx) && (420..570).contains(&dy) {
                *text.get_pixel(dx as u32 - 20, dy as u32 - 420)
            } else {
                image::Luma([245])
            }
        });
        let (out, c) = straighten(PageRaster::from_gray(sheet, false));
        assert!(!c.turned && out.width() > out.height(), "{c:?}");
    }

    #[test]
    fn the_scale_of_a_card_alone_comes_from_its_text() {
        // A card image 1000 × 630 with 3.4 mm lines at 300 dpi: 40 px lines.
        let card = PageRaster::from_gray(text_page(1000, 630, 60, 40), false);
        assert!(card.dpi < 150.0, "the image's size alone says {}", card.dpi);
        let (out, c) = straighten(card);
        assert!(c.dpi_from_text, "{c:?}");
        assert!((out.dpi - 300.0).abs() < 60.0, "{} {c:?}", out.dpi);
    }

    /// A `w` × `h` photo of a white sheet, the quadrilateral `sheet`, on a dark table of about
    /// `table`; lines of print on the sheet where `printed` says.
    fn sheet_on_table(w: u32, h: u32, sheet: Quad, printed: impl Fn(u32, u32) -> bool, table: u8) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let v = if in_quad(&sheet, (x as f32, y as f32)) {
                if (y / 20) % 2 == 0 && (x / 7) % 3 != 0 && printed(x, y) { 30 } else { 235 }
            } else {
                table + ((x + y) % 17) as u8
            };
            image::Luma([v])
        })
    }

    #[test]
    fn a_document_photographed_on_a_table_is_cut_out_and_unwarped() {
        // A white sheet (a trapezium) with text on a dark table.
        let (w, h) = (1600u32, 1200u32);
        let quad: Quad = [(300.0, 150.0), (1250.0, 200.0), (1300.0, 1100.0), (250.0, 1050.0)];
        let raster = PageRaster::from_gray(sheet_on_table(w, h, quad, |x, _| x > 400 && x < 1150, 60), false);
        let found = find_outline(&raster.gray).expect("outline");
        for (got, want) in found.iter().zip(&quad) {
            assert!(dist(*got, *want) < 20.0, "{found:?} vs {quad:?}");
        }
        let flat = unwarp(&raster, &found).expect("unwarped");
        assert!((flat.width() as f32 - 960.0).abs() < 40.0 && (flat.height() as f32 - 900.0).abs() < 40.0, "{}x{}", flat.width(), flat.height());
        // No table left in the corners.
        assert!(flat.gray.get_pixel(5, 5).0[0] > 180 && flat.gray.get_pixel(flat.width() - 6, flat.height() - 6).0[0] > 180);
        // A plain scan has no outline to find.
        assert!(find_outline(&text_page(1240, 1754, 40, 24)).is_none());
    }

    #[test]
    fn a_card_as_bright_as_its_table_is_found_by_its_colour_and_nothing_else_that_is_far_from_the_edge_s_colour() {
        // A blue card with lines of print and a white band on light wood: in grey, the card's
        // blue and the table are both about 146 (a real phone photo of an identity card's verso
        // was like that).
        let (w, h) = (1600u32, 1000u32);
        let card: Quad = [(350.0, 220.0), (1250.0, 250.0), (1230.0, 820.0), (330.0, 790.0)];
        let blue = [110u8, 160, 200];
        let photo = RgbImage::from_fn(w, h, |x, y| {
            let p = if in_quad(&card, (x as f32, y as f32)) {
                if y > 700 {
                    [225, 228, 232]
                } else if (y / 24) % 3 == 0 && (x / 9) % 4 != 0 && (450..1100).contains(&x) {
                    [30, 40, 60]
                } else {
                    blue
                }
            } else {
                let grain = ((x / 3 + y / 40) % 13) as u8;
                [175 - grain, 140 - grain, 100 - grain / 2]
            };
            image::Rgb(p)
        });
        let raster = PageRaster::from_rgb(photo);
        assert!(find_outline(&raster.gray).is_none(), "the grey map sees no card on this table");
        let found = find_outline_by_colour(raster.rgb.as_ref().expect("colour")).expect("outline by colour");
        for (got, want) in found.iter().zip(&card) {
            assert!(dist(*got, *want) < 20.0, "{found:?} vs {card:?}");
        }
        let (flat, c) = straighten(raster);
        assert!(c.outline, "{:?}", c.notes);
        assert!((flat.width() as f32 - 900.0).abs() < 40.0 && (flat.height() as f32 - 570.0).abs() < 40.0, "{}x{}", flat.width(), flat.height());
        // A colour scan: the paper fills the picture, a card copied on it. The card is far
        // from the paper's colour but is not the document: the page is left whole.
        let scan = RgbImage::from_fn(w, h, |x, y| image::Rgb(if in_quad(&card, (x as f32, y as f32)) { blue } else { [244, 243, 240] }));
        assert!(find_outline_by_colour(&scan).is_none());
        // A closed passport's dark red cover on pale glass with a lamp's glare in a corner (a
        // real photo): the cover is far from the glass's colour, but it has no paper brighter
        // than the glass; cut out alone, it would read as nothing and be refused as illegible.
        let passport: Quad = [(500.0, 300.0), (1000.0, 320.0), (990.0, 700.0), (490.0, 690.0)];
        let cover = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb(if in_quad(&passport, (x as f32, y as f32)) {
                [120, 30, 40]
            } else if x > 1300 && y < 350 {
                [250, 250, 250]
            } else {
                [150, 175, 170]
            })
        });
        assert!(find_outline_by_colour(&cover).is_none());
        // A grey card filling the picture, its redaction boxes white: the band they make is far
        // from the card's colour and brighter, but no sheet's or card's shape.
        let redacted = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb(if (150..1450).contains(&x) && (420..760).contains(&y) && x % 300 > 20 { [250, 250, 250] } else { [185, 186, 188] })
        });
        assert!(find_outline_by_colour(&redacted).is_none());
    }

    #[test]
    fn a_document_the_picture_cuts_off_is_cut_out_along_its_seen_sides() {
        // A sheet photographed too close: its right side and its bottom-left corner are out of
        // the picture, and its bottom side runs out of it on a slant. Its extreme corners cover
        // too little of it for an outline; its sides, where seen, give one.
        let (w, h) = (1600u32, 1200u32);
        let sheet: Quad = [(300.0, 150.0), (1700.0, 100.0), (1700.0, 600.0), (250.0, 1550.0)];
        let raster = PageRaster::from_gray(sheet_on_table(w, h, sheet, |x, y| x > 400 && y < 900, 50), false);
        let found = find_outline(&raster.gray).expect("outline");
        // Top-left as it is; top-right and bottom-right where the sides leave the picture;
        // bottom-left out of it, where the left and bottom sides meet.
        let want: Quad = [(300.0, 150.0), (1600.0, 104.0), (1600.0, 666.0), (250.0, 1550.0)];
        for (got, want) in found.iter().zip(&want) {
            assert!(dist(*got, *want) < 30.0, "{found:?} vs {want:?}");
        }
        let flat = unwarp(&raster, &found).expect("unwarped");
        // No table left in the corners (the one out of the picture is paper).
        for (x, y) in [(5, 5), (flat.width() - 6, 5), (flat.width() - 6, flat.height() - 6), (5, flat.height() - 6)] {
            assert!(flat.gray.get_pixel(x, y).0[0] > 180, "({x}, {y}) of {}x{}", flat.width(), flat.height());
        }
        // A round bright thing cut by the frame has sides nowhere near straight: no document.
        let disc = GrayImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 - 800.0, y as f32 - 1000.0);
            image::Luma([if dx * dx + dy * dy < 600.0 * 600.0 { 235 } else { 50 }])
        });
        assert!(find_outline(&disc).is_none());
    }

    #[test]
    fn a_shadow_is_flattened() {
        let mut r = PageRaster::from_gray(
            GrayImage::from_fn(1200, 1600, |x, y| {
                let light = 250.0 - 140.0 * (x as f32 / 1200.0);
                let ink = (y / 40) % 2 == 0 && (x / 6) % 3 != 0;
                image::Luma([if ink { (light * 0.25) as u8 } else { light as u8 }])
            }),
            false,
        );
        assert!(flatten_light(&mut r));
        let left = r.gray.get_pixel(100, 60).0[0] as i32;
        let right = r.gray.get_pixel(1100, 60).0[0] as i32;
        assert!((left - right).abs() < 30, "{left} vs {right}");
    }
}
