//! Cheap image measures of a page, without OCR: skew, text lines and their size, titles,
//! card-sized frames (photocopied identity cards), photographs, table rules, print quality.
//!
//! Everything works on a reduced ink map (about 100 dpi): a page costs a few milliseconds.
//! The lines found here decide what OCR reads first (titles, headers, page numbers), so the
//! expensive full-page OCR is only spent where nothing else told what the page is.

use image::GrayImage;
use scanbureau_pipeline::binarize::Bitmap;
use scanbureau_pipeline::grid::{Joined, components};
use scanbureau_pipeline::qualify::PageLayout;

/// A rectangle in pixels of the full-resolution, deskewed page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }

    /// Shrunk by `m` pixels on every side (a frame's border left out).
    pub fn inset(&self, m: u32) -> Rect {
        let m = m.min(self.w / 4).min(self.h / 4);
        Rect { x: self.x + m, y: self.y + m, w: self.w - 2 * m, h: self.h - 2 * m }
    }

    /// Grown by `m` pixels on every side, kept inside `w` x `h`.
    pub fn grown(&self, m: u32, w: u32, h: u32) -> Rect {
        let x = self.x.saturating_sub(m);
        let y = self.y.saturating_sub(m);
        Rect { x, y, w: (self.x + self.w + m).min(w) - x, h: (self.y + self.h + m).min(h) - y }
    }
}

/// A run of text on one line (a column's part of a text line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextLine {
    pub rect: Rect,
    /// Height of the inked band in millimetres (ascenders to descenders).
    pub height_mm: f32,
    /// Share of inked pixels in the band: bold print is darker.
    pub density: f32,
}

#[derive(Debug, Clone, Default)]
pub struct PageLayoutDetail {
    pub summary: PageLayout,
    /// Skew of the print, degrees (positive: lines go down to the right).
    pub skew_deg: f32,
    pub lines: Vec<TextLine>,
    /// Indices into `lines` of the title lines, largest print first.
    pub titles: Vec<usize>,
    pub cards: Vec<Rect>,
    /// The page is wider than tall (a sideways scan or a landscape document).
    pub landscape: bool,
}

/// Reduced ink map: one cell per `f` x `f` pixels, inked if any pixel of it is.
struct Reduced {
    w: usize,
    h: usize,
    f: u32,
    ink: Vec<u8>,
}

fn reduce(bits: &Bitmap, f: u32) -> Reduced {
    let (w, h) = ((bits.width / f) as usize, (bits.height / f) as usize);
    let mut ink = vec![0u8; w * h];
    let bw = bits.width as usize;
    for y in 0..h * f as usize {
        let row = &bits.ink[y * bw..y * bw + w * f as usize];
        let out = &mut ink[(y / f as usize) * w..(y / f as usize + 1) * w];
        for (x, &b) in row.iter().enumerate() {
            out[x / f as usize] |= b;
        }
    }
    Reduced { w, h, f, ink }
}

/// The skew angle that makes text rows sharpest (most variance in the row profile). The sheet's
/// borders are left out: a scanner's dark edges are square to the image, not to the print.
fn skew(r: &Reduced, border: usize) -> f32 {
    let mut best = (0.0f32, 0.0f64);
    let (xs, ys) = (border..r.w.saturating_sub(border), border..r.h.saturating_sub(border));
    let pts: Vec<(f32, f32)> = ys.flat_map(|y| xs.clone().filter(move |&x| r.ink[y * r.w + x] == 1).map(move |x| (x as f32, y as f32))).collect();
    if pts.len() < 50 {
        return 0.0;
    }
    let mut profile = vec![0u32; r.h * 2 + 4];
    let mut score = |deg: f32| -> f64 {
        profile.iter_mut().for_each(|p| *p = 0);
        let t = deg.to_radians().tan();
        let cx = r.w as f32 / 2.0;
        for &(x, y) in &pts {
            let yy = (y - (x - cx) * t + r.h as f32 / 2.0) as i64;
            if yy >= 0 && (yy as usize) < profile.len() {
                profile[yy as usize] += 1;
            }
        }
        profile.iter().map(|&p| (p as f64) * (p as f64)).sum()
    };
    let mut a = -3.0f32;
    while a <= 3.0 {
        let s = score(a);
        if s > best.1 {
            best = (a, s);
        }
        a += 0.25;
    }
    // Refine around the best coarse angle.
    let centre = best.0;
    let mut a = centre - 0.2;
    while a <= centre + 0.2 {
        let s = score(a);
        if s > best.1 {
            best = (a, s);
        }
        a += 0.05;
    }
    best.0
}

/// Rotates the reduced map by `-deg` around its centre (nearest neighbour), so rows are level.
fn level(r: &Reduced, deg: f32) -> Reduced {
    if deg.abs() < 0.1 {
        return Reduced { w: r.w, h: r.h, f: r.f, ink: r.ink.clone() };
    }
    let t = deg.to_radians().tan();
    let cx = r.w as f32 / 2.0;
    let mut ink = vec![0u8; r.w * r.h];
    for y in 0..r.h {
        for x in 0..r.w {
            let sy = y as f32 + (x as f32 - cx) * t;
            if sy >= 0.0 && (sy as usize) < r.h {
                ink[y * r.w + x] = r.ink[sy as usize * r.w + x];
            }
        }
    }
    Reduced { w: r.w, h: r.h, f: r.f, ink }
}

/// Clears vertical runs at least `min` cells long (table borders, card edges, the dark edges of
/// a misfed sheet): they would join every text row they cross into one band.
fn erase_vertical_runs(r: &mut Reduced, min: usize) {
    for x in 0..r.w {
        let mut y = 0;
        while y < r.h {
            if r.ink[y * r.w + x] == 0 {
                y += 1;
                continue;
            }
            let s = y;
            while y < r.h && r.ink[y * r.w + x] == 1 {
                y += 1;
            }
            if y - s >= min {
                for yy in s..y {
                    r.ink[yy * r.w + x] = 0;
                }
            }
        }
    }
}

/// Horizontal rules at least `min` cells long: (y, x0, x1). A rule a row thick may step from
/// one row to the next (residual slant, anti-aliasing): runs are taken over three rows at once,
/// and the rows of one rule count once.
fn horizontal_rules(r: &Reduced, min: usize) -> Vec<(usize, usize, usize)> {
    let mut rules: Vec<(usize, usize, usize)> = Vec::new();
    let mut band = vec![0u8; r.w];
    for y in 0..r.h {
        band.fill(0);
        for yy in y.saturating_sub(1)..(y + 2).min(r.h) {
            for (b, &v) in band.iter_mut().zip(&r.ink[yy * r.w..(yy + 1) * r.w]) {
                *b |= v;
            }
        }
        let mut x = 0;
        while x < r.w {
            if band[x] == 0 {
                x += 1;
                continue;
            }
            let s = x;
            while x < r.w && band[x] == 1 {
                x += 1;
            }
            if x - s < min {
                continue;
            }
            match rules.iter_mut().rev().find(|(ry, rx0, rx1)| y <= *ry + 3 && s < *rx1 && x > *rx0) {
                Some(rule) => {
                    rule.1 = rule.1.min(s);
                    rule.2 = rule.2.max(x);
                }
                None => rules.push((y, s, x)),
            }
        }
    }
    rules
}

/// Measures a page. `gray` is the upright page; `bits` its ink map; `dpi` its resolution.
pub fn measure(gray: &GrayImage, bits: &Bitmap, dpi: f32) -> PageLayoutDetail {
    let f = ((dpi / 100.0).round() as u32).max(1);
    let r0 = reduce(bits, f);
    let cell_mm = 25.4 * f as f32 / dpi;
    let mm = |cells: usize| cells as f32 * cell_mm;
    let cells = |mm: f32| (mm / cell_mm).round().max(1.0) as usize;
    let skew_deg = skew(&r0, cells(8.0));
    let mut r = level(&r0, skew_deg);
    erase_vertical_runs(&mut r, cells(12.0));
    let ink_total: usize = r.ink.iter().map(|&b| b as usize).sum();

    // Rules: long runs; text rows are broken by letter gaps at this resolution.
    let rules = horizontal_rules(&r, cells(60.0));
    let mut rule_rows = vec![false; r.h];
    for &(y, _, _) in &rules {
        // The rule's band: the row found and the (up to three) rows the rule is thick.
        for row in rule_rows.iter_mut().skip(y).take(4) {
            *row = true;
        }
    }
    // Cards: two rules of a card's width, aligned, a card's height apart.
    let mut cards = Vec::new();
    let mut used = vec![false; rules.len()];
    for i in 0..rules.len() {
        let (y, x0, x1) = rules[i];
        let len = mm(x1 - x0);
        if used[i] || !(75.0..=135.0).contains(&len) {
            continue;
        }
        for j in i + 1..rules.len() {
            let (y2, a0, a1) = rules[j];
            let gap = mm(y2 - y);
            if !used[j] && a0.abs_diff(x0) <= cells(3.0) && a1.abs_diff(x1) <= cells(3.0) && (45.0..=95.0).contains(&gap) {
                used[i] = true;
                used[j] = true;
                cards.push(Rect { x: (x0 as u32) * f, y: (y as u32) * f, w: ((x1 - x0) as u32) * f, h: ((y2 - y + 1) as u32) * f });
                break;
            }
        }
    }

    // Text lines: bands of inked rows, split into runs where the gap is wider than ~12 mm.
    let mut lines = Vec::new();
    let mut y = 0;
    let min_row_ink = 2;
    let row_ink: Vec<usize> = (0..r.h).map(|y| if rule_rows[y] { 0 } else { r.ink[y * r.w..(y + 1) * r.w].iter().map(|&b| b as usize).sum() }).collect();
    while y < r.h {
        if row_ink[y] < min_row_ink {
            y += 1;
            continue;
        }
        let y0 = y;
        while y < r.h && row_ink[y] >= min_row_ink {
            y += 1;
        }
        let y1 = y;
        let band_mm = mm(y1 - y0);
        if !(1.2..=14.0).contains(&band_mm) {
            continue;
        }
        // Column profile of the band, then runs separated by wide gaps.
        let cols: Vec<bool> = (0..r.w).map(|x| (y0..y1).any(|yy| r.ink[yy * r.w + x] == 1)).collect();
        let gap = cells(12.0);
        let mut x = 0;
        while x < r.w {
            if !cols[x] {
                x += 1;
                continue;
            }
            let x0 = x;
            let mut last = x;
            while x < r.w && x - last <= gap {
                if cols[x] {
                    last = x;
                }
                x += 1;
            }
            let x1 = last + 1;
            if mm(x1 - x0) < 3.0 {
                continue;
            }
            // The run's own vertical extent and density.
            let rows: Vec<usize> = (y0..y1).filter(|&yy| r.ink[yy * r.w + x0..yy * r.w + x1].contains(&1)).collect();
            let (ry0, ry1) = (rows.first().copied().unwrap_or(y0), rows.last().map(|v| v + 1).unwrap_or(y1));
            let inked: usize = (ry0..ry1).map(|yy| r.ink[yy * r.w + x0..yy * r.w + x1].iter().map(|&b| b as usize).sum::<usize>()).sum();
            let area = ((ry1 - ry0) * (x1 - x0)).max(1);
            // Specks, and the scanner's dark edge at the very top or bottom of the sheet.
            if mm(ry1 - ry0) < 1.0 || mm(ry0) < 4.0 || mm(r.h - ry1) < 4.0 {
                continue;
            }
            lines.push(TextLine {
                rect: Rect { x: x0 as u32 * f, y: ry0 as u32 * f, w: (x1 - x0) as u32 * f, h: (ry1 - ry0) as u32 * f },
                height_mm: mm(ry1 - ry0),
                density: inked as f32 / area as f32,
            });
        }
    }
    // Lines inside a card are the card's, not the page's text.
    let in_card = |l: &TextLine| cards.iter().any(|c| l.rect.y >= c.y && l.rect.bottom() <= c.bottom() + f * 2 && l.rect.x >= c.x.saturating_sub(f * 2));
    let mut heights: Vec<f32> = lines.iter().filter(|l| !in_card(l)).map(|l| l.height_mm).collect();
    heights.sort_by(f32::total_cmp);
    let line_mm = heights.get(heights.len() / 2).copied().unwrap_or(0.0);
    let mut densities: Vec<f32> = lines.iter().filter(|l| !in_card(l)).map(|l| l.density).collect();
    densities.sort_by(f32::total_cmp);
    let density = densities.get(densities.len() / 2).copied().unwrap_or(0.0);
    let page_h = r.h as u32 * f;
    // Titles are set larger, or bold (darker), than the body; in the upper part of the page.
    let mut titles: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let l = &lines[i];
            let larger = l.height_mm >= line_mm * 1.18;
            let bolder = l.density >= density * 1.25 && l.height_mm >= line_mm * 0.9;
            !in_card(l) && l.rect.y < page_h * 6 / 10 && (larger || bolder) && l.height_mm <= 9.0 && l.rect.w as f32 * 25.4 / dpi > 25.0
        })
        .collect();
    titles.sort_by(|&a, &b| (lines[b].height_mm * lines[b].density).total_cmp(&(lines[a].height_mm * lines[a].density)));
    // Photographs: blocks of 5 mm cells that are mostly inked (text never is).
    let c = cells(5.0);
    let (gw, gh) = (r.w / c, r.h / c);
    let dense: Vec<bool> = (0..gw * gh)
        .map(|i| {
            let (gx, gy) = (i % gw, i / gw);
            let n: usize = (gy * c..(gy + 1) * c).map(|yy| r.ink[yy * r.w + gx * c..yy * r.w + (gx + 1) * c].iter().map(|&b| b as usize).sum::<usize>()).sum();
            n * 10 > c * c * 6
        })
        .collect();
    let photos = count_blobs(&dense, gw, gh, 6);

    // Print quality: the paper's grey (the page's median) against the grey of the print.
    let mut hist = [0u32; 256];
    let (mut ink_sum, mut ink_n) = (0u64, 0u64);
    for (i, p) in gray.as_raw().iter().enumerate().step_by(5) {
        hist[*p as usize] += 1;
        if bits.ink.get(i) == Some(&1) {
            ink_sum += *p as u64;
            ink_n += 1;
        }
    }
    let total: u32 = hist.iter().sum();
    let mut acc = 0;
    let median = hist.iter().position(|&n| {
        acc += n;
        acc * 2 >= total
    });
    let median = median.unwrap_or(255) as f32;
    let print = if ink_n > 0 { ink_sum as f32 / ink_n as f32 } else { median };
    let unreadable = median < 90.0 || (ink_n > 0 && median - print < 40.0);

    let summary = PageLayout {
        text_lines: lines.len().min(u16::MAX as usize) as u16,
        title_lines: titles.len() as u16,
        cards: cards.len().min(255) as u8,
        photos: photos.min(255) as u8,
        rules: rules.len().min(u16::MAX as usize) as u16,
        ink_ratio: ink_total as f32 / (r.w * r.h).max(1) as f32,
        line_mm,
        unreadable,
    };
    PageLayoutDetail { summary, skew_deg, lines, titles, cards, landscape: gray.width() > gray.height() }
}

/// Connected groups of at least `min` set cells (4-neighbours).
fn count_blobs(cells: &[bool], w: usize, h: usize, min: usize) -> usize {
    let (groups, _) = components(cells, w, h, Joined::ByEdge);
    groups.iter().filter(|g| g.cells >= min).count()
}

/// Copies `rect` of the page, turned by `-deg` about the page centre so its text is level, and
/// enlarged (or reduced) by `scale` in the same pass: bilinear, in fixed point.
pub fn crop_level_scaled(gray: &GrayImage, rect: Rect, deg: f32, scale: f32) -> GrayImage {
    if (scale - 1.0).abs() <= 0.05 {
        return crop_level(gray, rect, deg);
    }
    let (pw, ph) = (gray.width() as i64, gray.height() as i64);
    let t = deg.to_radians().tan();
    let cx = pw as f32 / 2.0;
    let raw = gray.as_raw();
    let (ow, oh) = (((rect.w as f32 * scale) as u32).max(1), ((rect.h as f32 * scale) as u32).max(1));
    let inv = 1.0 / scale;
    let at = |x: i64, y: i64| -> i32 { if x < 0 || y < 0 || x >= pw || y >= ph { 255 } else { raw[(y * pw + x) as usize] as i32 } };
    let mut out = GrayImage::new(ow, oh);
    for (oy, row) in out.rows_mut().enumerate() {
        let gy = rect.y as f32 + (oy as f32 + 0.5) * inv - 0.5;
        for (ox, p) in row.enumerate() {
            let gx = rect.x as f32 + (ox as f32 + 0.5) * inv - 0.5;
            let sy = gy + (gx - cx) * t;
            let (x0, y0) = (gx.floor() as i64, sy.floor() as i64);
            // Weights in 1/256.
            let (fx, fy) = (((gx - x0 as f32) * 256.0) as i32, ((sy - y0 as f32) * 256.0) as i32);
            let top = at(x0, y0) * (256 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (256 - fx) + at(x0 + 1, y0 + 1) * fx;
            p.0[0] = ((top * (256 - fy) + bottom * fy) >> 16) as u8;
        }
    }
    out
}

/// Copies `rect` of the page, turned by `-deg` about the page centre so its text is level.
pub fn crop_level(gray: &GrayImage, rect: Rect, deg: f32) -> GrayImage {
    let (pw, ph) = gray.dimensions();
    let t = deg.to_radians().tan();
    let cx = pw as f32 / 2.0;
    let raw = gray.as_raw();
    GrayImage::from_fn(rect.w.max(1), rect.h.max(1), |x, y| {
        let (gx, gy) = (rect.x + x, rect.y + y);
        // The leveled map was sampled at y + (x - cx) * tan: do the same here.
        let sy = gy as f32 + (gx as f32 - cx) * t;
        let v = if gx < pw && sy >= 0.0 && (sy as u32) < ph { raw[sy as usize * pw as usize + gx as usize] } else { 255 };
        image::Luma([v])
    })
}
