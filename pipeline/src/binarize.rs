//! Adaptive binarisation: a threshold per region of the page, not one for the whole page.
//!
//! The page is cut into square tiles; each tile's paper level (a high percentile) and ink level
//! (a low percentile) are taken over its neighbours, and the threshold is interpolated smoothly
//! between tile centres. Grey paper, uneven lighting and faint print each get their own
//! threshold; a region without ink gets a threshold below any bleed-through.

use image::GrayImage;

/// Tile statistics of a page, computed once and shared by the decisions that need them.
#[derive(Debug, Clone)]
pub struct TileStats {
    pub tile: u32,
    pub cols: u32,
    pub rows: u32,
    /// Paper level per tile (95th percentile), after a 3×3 max.
    pub paper: Vec<u8>,
    /// Ink level per tile (3rd percentile), after a 3×3 min.
    pub ink: Vec<u8>,
    /// Share of a tile's samples that are mid-tones (photographs, halftones), per tile, 0-255.
    pub midtone: Vec<u8>,
    /// Page paper level (median of tile paper levels).
    pub page_paper: u8,
    /// Page ink level (median ink level of the tiles that hold ink).
    pub page_ink: u8,
}

/// A bitonal page: one byte per pixel, 1 = ink.
#[derive(Debug, Clone)]
pub struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub ink: Vec<u8>,
}

impl Bitmap {
    /// The bitmap mirrored left to right.
    pub fn flip_horizontal(&mut self) {
        let w = self.width as usize;
        if w > 0 {
            self.ink.chunks_exact_mut(w).for_each(<[u8]>::reverse);
        }
    }

    pub fn row(&self, y: u32) -> &[u8] {
        let w = self.width as usize;
        &self.ink[y as usize * w..(y as usize + 1) * w]
    }
}

/// Smallest paper-to-ink difference that counts as ink, on 0-255.
pub const MIN_CONTRAST: u8 = 48;

pub fn tile_stats(page: &GrayImage, dpi: f32) -> TileStats {
    let (w, h) = page.dimensions();
    let tile = ((dpi * 0.22) as u32).clamp(16, 128); // ~5.5 mm
    let cols = w.div_ceil(tile);
    let rows = h.div_ceil(tile);
    let n = (cols * rows) as usize;
    let mut p95 = vec![255u8; n];
    let mut p03 = vec![255u8; n];
    let mut hists = vec![[0u16; 64]; cols as usize];
    let raw = page.as_raw();
    for ty in 0..rows {
        for hst in hists.iter_mut() {
            *hst = [0; 64];
        }
        let y0 = ty * tile;
        let y1 = (y0 + tile).min(h);
        for y in (y0..y1).step_by(2) {
            let row = &raw[(y * w) as usize..((y + 1) * w) as usize];
            for (tx, hst) in hists.iter_mut().enumerate() {
                let x0 = tx as u32 * tile;
                let x1 = (x0 + tile).min(w);
                for &v in row[x0 as usize..x1 as usize].iter().step_by(2) {
                    hst[(v >> 2) as usize] += 1;
                }
            }
        }
        for (tx, hst) in hists.iter().enumerate() {
            let total: u32 = hst.iter().map(|&c| c as u32).sum();
            let i = (ty * cols) as usize + tx;
            p95[i] = percentile(hst, total, 0.95);
            p03[i] = percentile(hst, total, 0.03);
        }
    }
    // Mid-tone share needs the page levels: a second, sparser pass over the tiles.
    let mut sorted_paper = p95.clone();
    sorted_paper.sort_unstable();
    let page_paper = sorted_paper[sorted_paper.len() / 2];
    // Ink level of the tiles that hold ink (a sparse page has few of them).
    let mut inked: Vec<u8> = p03.iter().zip(&p95).filter(|(i, p)| p.saturating_sub(**i) >= MIN_CONTRAST).map(|(i, _)| *i).collect();
    inked.sort_unstable();
    let page_ink = inked.get(inked.len() / 2).copied().unwrap_or(page_paper);
    // Mid-tones are counted against each tile's own paper and ink levels: a text tile is paper
    // with a little ink and thin edges between; a photograph is mostly in between.
    let mut midtone = vec![0u8; n];
    for ty in 0..rows {
        for tx in 0..cols {
            let i = (ty * cols + tx) as usize;
            let span = p95[i] as i32 - p03[i] as i32;
            if span < 40 {
                continue;
            }
            let lo = p03[i] as i32 + span / 4;
            let hi = p95[i] as i32 - span / 4;
            let (x0, y0) = (tx * tile, ty * tile);
            let (x1, y1) = ((x0 + tile).min(w), (y0 + tile).min(h));
            let (mut m, mut t) = (0u32, 0u32);
            for y in (y0..y1).step_by(4) {
                let row = &raw[(y * w + x0) as usize..(y * w + x1) as usize];
                for &v in row.iter().step_by(4) {
                    t += 1;
                    if (v as i32) > lo && (v as i32) < hi {
                        m += 1;
                    }
                }
            }
            midtone[i] = (m * 255).checked_div(t).map_or(0, |v| v as u8);
        }
    }
    let paper = neighbourhood(&p95, cols, rows, u8::max);
    let ink = neighbourhood(&p03, cols, rows, u8::min);
    TileStats { tile, cols, rows, paper, ink, midtone, page_paper, page_ink }
}

fn percentile(hist: &[u16; 64], total: u32, q: f32) -> u8 {
    if total == 0 {
        return 255;
    }
    let target = (total as f32 * q) as u32;
    let mut acc = 0u32;
    for (i, &c) in hist.iter().enumerate() {
        acc += c as u32;
        if acc > target {
            return ((i << 2) + 2) as u8;
        }
    }
    255
}

fn neighbourhood(v: &[u8], cols: u32, rows: u32, f: fn(u8, u8) -> u8) -> Vec<u8> {
    let mut out = v.to_vec();
    for ty in 0..rows as i32 {
        for tx in 0..cols as i32 {
            let mut acc = v[(ty as u32 * cols + tx as u32) as usize];
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (x, y) = (tx + dx, ty + dy);
                    if x >= 0 && y >= 0 && x < cols as i32 && y < rows as i32 {
                        acc = f(acc, v[(y as u32 * cols + x as u32) as usize]);
                    }
                }
            }
            out[(ty as u32 * cols + tx as u32) as usize] = acc;
        }
    }
    out
}

/// Threshold of a tile: half-way between paper and ink where there is ink, and below anything
/// faint (bleed-through, noise) where there is none.
fn tile_threshold(paper: u8, ink: u8, min_contrast: u8) -> f32 {
    let mid = (paper as f32 + ink as f32) / 2.0;
    mid.min(paper as f32 - min_contrast as f32)
}

/// Binarises a page with the thresholds of its tiles, interpolated between tile centres.
pub fn binarize(page: &GrayImage, stats: &TileStats, min_contrast: u8) -> Bitmap {
    let (w, h) = page.dimensions();
    let (cols, rows, tile) = (stats.cols as usize, stats.rows as usize, stats.tile as f32);
    let thr: Vec<f32> = stats.paper.iter().zip(&stats.ink).map(|(&p, &i)| tile_threshold(p, i, min_contrast)).collect();
    // Column interpolation weights, computed once.
    let col_pos: Vec<(usize, usize, f32)> = (0..w)
        .map(|x| {
            let fx = ((x as f32 + 0.5) / tile - 0.5).clamp(0.0, (cols - 1) as f32);
            let c0 = fx.floor() as usize;
            let c1 = (c0 + 1).min(cols - 1);
            (c0, c1, fx - c0 as f32)
        })
        .collect();
    let mut ink = vec![0u8; (w * h) as usize];
    let mut row_thr = vec![0f32; cols];
    let mut px_thr = vec![0u8; w as usize];
    let raw = page.as_raw();
    for y in 0..h as usize {
        let fy = ((y as f32 + 0.5) / tile - 0.5).clamp(0.0, (rows - 1) as f32);
        let r0 = fy.floor() as usize;
        let r1 = (r0 + 1).min(rows - 1);
        let wy = fy - r0 as f32;
        // Recompute the per-pixel row of thresholds only when it changes noticeably.
        if y == 0 || y % 4 == 0 {
            for c in 0..cols {
                row_thr[c] = thr[r0 * cols + c] * (1.0 - wy) + thr[r1 * cols + c] * wy;
            }
            for (x, &(c0, c1, wx)) in col_pos.iter().enumerate() {
                px_thr[x] = (row_thr[c0] * (1.0 - wx) + row_thr[c1] * wx).clamp(0.0, 255.0) as u8;
            }
        }
        let src = &raw[y * w as usize..(y + 1) * w as usize];
        let dst = &mut ink[y * w as usize..(y + 1) * w as usize];
        for ((d, &s), &t) in dst.iter_mut().zip(src).zip(&px_thr) {
            *d = (s < t) as u8;
        }
    }
    Bitmap { width: w, height: h, ink }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dark_text_on_grey_paper_and_faint_bleed_through() {
        // Grey paper (200) with a dark bar (40) and a faint smudge (185) elsewhere.
        let mut page = GrayImage::from_pixel(600, 600, image::Luma([200]));
        for y in 100..110 {
            for x in 100..400 {
                page.put_pixel(x, y, image::Luma([40]));
            }
        }
        for y in 400..450 {
            for x in 100..400 {
                page.put_pixel(x, y, image::Luma([185]));
            }
        }
        let st = tile_stats(&page, 300.0);
        let bits = binarize(&page, &st, MIN_CONTRAST);
        let ink_at = |x: u32, y: u32| bits.ink[(y * 600 + x) as usize];
        assert_eq!(ink_at(200, 105), 1);
        assert_eq!(ink_at(200, 50), 0);
        assert_eq!(ink_at(200, 420), 0, "bleed-through is not ink");
    }

    #[test]
    fn uneven_lighting_does_not_blacken_the_dark_side() {
        // Paper from 240 on the left to 150 on the right, text strokes 60 darker than local paper.
        let page = GrayImage::from_fn(800, 400, |x, y| {
            let paper = 240.0 - 90.0 * x as f32 / 800.0;
            let stroke = (y % 40) < 4 && (x % 50) < 30;
            image::Luma([if stroke { (paper - 100.0) as u8 } else { paper as u8 }])
        });
        let st = tile_stats(&page, 300.0);
        let bits = binarize(&page, &st, MIN_CONTRAST);
        let inked: usize = bits.ink.iter().map(|&b| b as usize).sum();
        let strokes = (0..400u32).filter(|y| y % 40 < 4).count() * (0..800u32).filter(|x| x % 50 < 30).count();
        assert!((inked as f32 - strokes as f32).abs() / (strokes as f32) < 0.05, "inked {inked} vs strokes {strokes}");
    }
}
