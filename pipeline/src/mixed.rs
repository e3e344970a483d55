//! Mixed raster content (the ISO/IEC 16485 model, as a PDF draws it): a page cut into a bitonal
//! mask of its print at scan resolution, a background picture at low resolution (the paper, tinted
//! boxes, logos, with the print taken out) and the colour the print is painted in.
//!
//! Legibility lives in the mask, which is the page's binarised print, lossless; the background
//! only has to look right, so it is small. The layers are pure data: the PDF writer
//! (`lightpdf`) encodes and places them, and [`composite`] puts them back together the way a
//! viewer does, to measure what a reader will see.

use image::GrayImage;

use crate::binarize::Bitmap;
use crate::grid::{Joined, components};

/// A picture at low resolution: interleaved samples, 1 (grey) or 3 (RGB) channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub samples: Vec<u8>,
    /// Scan pixels per sample, on each axis.
    pub cell: u32,
}

impl Plane {
    /// The sample covering scan pixel (x, y), channel `c`.
    #[cfg(test)]
    fn at(&self, x: u32, y: u32, c: usize) -> u8 {
        let (cx, cy) = ((x / self.cell).min(self.width - 1), (y / self.cell).min(self.height - 1));
        self.samples[(cy as usize * self.width as usize + cx as usize) * self.channels + c]
    }

    /// The grey level of every sample, row by row.
    fn lumas(&self) -> Vec<u8> {
        if self.channels == 1 { self.samples.clone() } else { self.samples.chunks(self.channels).map(|s| luma([s[0], s[1], s[2]])).collect() }
    }

    /// For each scan column up to `width`, the sample column covering it.
    fn columns(&self, width: u32) -> Vec<usize> {
        (0..width).map(|x| (x / self.cell).min(self.width - 1) as usize).collect()
    }
}

/// Rec. 601 luma of an RGB sample.
fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

/// The colour the print is painted in: one colour when the print is all of one ink (most pages:
/// a few bytes instead of a picture), a low-resolution picture when it is not (a red stamp, a
/// blue signature, grey headings).
#[derive(Debug, Clone, PartialEq)]
pub enum InkColour {
    Solid(Vec<u8>),
    Varying(Plane),
}

/// A page cut into layers, with what was measured while cutting it.
#[derive(Debug, Clone)]
pub struct Layers {
    pub background: Plane,
    pub ink: InkColour,
    /// Share of the background's cells that are not plain paper (tinted boxes, bands, logos).
    pub tinted_share: f32,
    /// Scan pixels on or next to print (1), which the background leaves out.
    pub near_ink: Vec<u8>,
    /// The background's cells that are not paper (1), print's cells taking their neighbours'.
    pub tint: Vec<bool>,
}

/// Scan pixels within this distance of print are left out of the background: a scan blurs ink
/// into the paper around it, and that halo would show as a grey ghost of the text.
fn halo(dpi: f32) -> usize {
    ((dpi / 150.0).round() as usize).max(1)
}

/// Cuts a page (`pixels`: interleaved samples of `channels` channels, `mask.width` × `mask.height`)
/// into layers: the background in cells of `bg_cell` pixels, the print's colour in cells of
/// `ink_cell` pixels. `paper` is the page's paper level, for the tint measure.
pub fn separate(pixels: &[u8], channels: usize, mask: &Bitmap, dpi: f32, bg_cell: u32, ink_cell: u32, paper: u8) -> Layers {
    let (w, h) = (mask.width as usize, mask.height as usize);
    debug_assert_eq!(pixels.len(), w * h * channels);
    let near_ink = dilate(&mask.ink, w, h, halo(dpi));
    let bg_cell = bg_cell.max(1);
    let paper_pixels: Vec<u8> = near_ink.iter().map(|&n| n ^ 1).collect();
    let (background, known) = cell_means(pixels, channels, w, h, bg_cell, &paper_pixels);
    let background = fill_unknown(background, &known, paper);
    // Tint: a cell that is not paper, in level (grey boxes) or in colour (tinted forms).
    let tint: Vec<bool> = background
        .samples
        .chunks(channels)
        .map(|s| {
            let (lo, hi) = (*s.iter().min().unwrap_or(&0), *s.iter().max().unwrap_or(&0));
            paper.saturating_sub(lo) > 28 || hi - lo > 24
        })
        .collect();
    let counted = known.iter().filter(|&&k| k).count();
    let tinted = known.iter().zip(&tint).filter(|(k, t)| **k && **t).count();
    let tinted_share = tinted as f32 / counted.max(1) as f32;
    Layers { background, ink: ink_colour(pixels, channels, mask, ink_cell), tinted_share, near_ink, tint }
}

/// The print's colour (the ink layer of [`separate`]), from the inside of strokes: their edges
/// are blurred into the paper.
pub fn ink_colour(pixels: &[u8], channels: usize, mask: &Bitmap, ink_cell: u32) -> InkColour {
    let (w, h) = (mask.width as usize, mask.height as usize);
    let ink_cell = ink_cell.max(1);
    let (mut ink_plane, mut ink_known) = cell_means(pixels, channels, w, h, ink_cell, &stroke_cores(&mask.ink, w, h));
    if !ink_known.iter().any(|&k| k) {
        // Print of hairlines only: their own pixels.
        (ink_plane, ink_known) = cell_means(pixels, channels, w, h, ink_cell, &mask.ink);
    }
    solid_ink(&ink_plane, &ink_known).map_or_else(|| InkColour::Varying(fill_unknown(ink_plane, &ink_known, 0)), InkColour::Solid)
}

/// The inside of strokes (1): print pixels whose four neighbours are print too, none on the
/// page's edge. Row slices combined whole, so that the compiler runs them many bytes at a time.
fn stroke_cores(ink: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut core = vec![0u8; w * h];
    if w < 3 || h < 3 {
        return core;
    }
    for y in 1..h - 1 {
        let (above, row, below) = (&ink[(y - 1) * w..y * w], &ink[y * w..(y + 1) * w], &ink[(y + 1) * w..(y + 2) * w]);
        let out = &mut core[y * w + 1..(y + 1) * w - 1];
        for (x, o) in out.iter_mut().enumerate() {
            *o = row[x + 1] & row[x] & row[x + 2] & above[x + 1] & below[x + 1];
        }
    }
    core
}

/// Square dilation of a 0/1 map by `r` pixels: each row ORed with itself shifted by up to `r`
/// pixels, then each row with the `r` rows on either side. Whole slices at a time: this runs on
/// every pixel of every page cut into layers.
fn dilate(map: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let mut rows = map.to_vec();
    for y in 0..h {
        let src = &map[y * w..(y + 1) * w];
        let dst = &mut rows[y * w..(y + 1) * w];
        for d in 1..=r.min(w.saturating_sub(1)) {
            for (o, &v) in dst[d..].iter_mut().zip(&src[..w - d]) {
                *o |= v;
            }
            for (o, &v) in dst[..w - d].iter_mut().zip(&src[d..]) {
                *o |= v;
            }
        }
    }
    let mut out = rows.clone();
    for y in 0..h {
        let (lo, hi) = (y.saturating_sub(r), (y + r).min(h.saturating_sub(1)));
        let dst = &mut out[y * w..(y + 1) * w];
        for n in (lo..=hi).filter(|&n| n != y) {
            for (o, &v) in dst.iter_mut().zip(&rows[n * w..(n + 1) * w]) {
                *o |= v;
            }
        }
    }
    out
}

/// Mean of the pixels that `keep` marks (1) in each `cell` × `cell` cell; cells with none are
/// unknown. Sums weighted by the 0/1 mark, without a branch per pixel.
fn cell_means(pixels: &[u8], ch: usize, w: usize, h: usize, cell: u32, keep: &[u8]) -> (Plane, Vec<bool>) {
    let c = cell as usize;
    let (cw, chh) = (w.div_ceil(c), h.div_ceil(c));
    let mut sums = vec![0u32; cw * chh * ch];
    let mut counts = vec![0u32; cw * chh];
    for y in 0..h {
        let row = (y / c) * cw;
        let (px_row, keep_row) = (&pixels[y * w * ch..(y + 1) * w * ch], &keep[y * w..(y + 1) * w]);
        for cx in 0..cw {
            let k = row + cx;
            let (x0, x1) = (cx * c, ((cx + 1) * c).min(w));
            let marks = &keep_row[x0..x1];
            counts[k] += marks.iter().map(|&m| u32::from(m)).sum::<u32>();
            let px = &px_row[x0 * ch..x1 * ch];
            if ch == 1 {
                sums[k] += px.iter().zip(marks).map(|(&p, &m)| u32::from(p) * u32::from(m)).sum::<u32>();
            } else {
                for (p, &m) in px.chunks_exact(ch).zip(marks) {
                    for j in 0..ch {
                        sums[k * ch + j] += u32::from(p[j]) * u32::from(m);
                    }
                }
            }
        }
    }
    let known: Vec<bool> = counts.iter().map(|&n| n > 0).collect();
    let samples = sums.iter().enumerate().map(|(i, &s)| (s + counts[i / ch] / 2).checked_div(counts[i / ch]).unwrap_or(0) as u8).collect();
    (Plane { width: cw as u32, height: chh as u32, channels: ch, samples, cell }, known)
}

/// Fills unknown cells from their known neighbours, ring by ring; what no ring reaches (a page
/// all of print) takes the mean of the known cells, or `default`.
fn fill_unknown(mut plane: Plane, known: &[bool], default: u8) -> Plane {
    let (w, h, ch) = (plane.width as usize, plane.height as usize, plane.channels);
    let mut known = known.to_vec();
    for _ in 0..24 {
        let before = known.clone();
        let mut changed = false;
        for y in 0..h {
            for x in 0..w {
                if before[y * w + x] {
                    continue;
                }
                let mut sum = [0u32; 3];
                let mut n = 0u32;
                for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)] {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 || !before[ny as usize * w + nx as usize] {
                        continue;
                    }
                    let k = ny as usize * w + nx as usize;
                    for (j, s) in sum.iter_mut().enumerate().take(ch) {
                        *s += plane.samples[k * ch + j] as u32;
                    }
                    n += 1;
                }
                if let Some(n) = std::num::NonZeroU32::new(n) {
                    for (j, s) in sum.iter().enumerate().take(ch) {
                        plane.samples[(y * w + x) * ch + j] = ((s + n.get() / 2) / n) as u8;
                    }
                    known[y * w + x] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut mean = vec![default as u64; ch];
    if let Some(n) = std::num::NonZeroU64::new(known.iter().filter(|&&k| k).count() as u64) {
        for (j, m) in mean.iter_mut().enumerate() {
            *m = known.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| plane.samples[i * ch + j] as u64).sum::<u64>() / n;
        }
    }
    for (i, k) in known.iter().enumerate() {
        if !k {
            for (j, m) in mean.iter().enumerate() {
                plane.samples[i * ch + j] = *m as u8;
            }
        }
    }
    plane
}

/// One colour for all the print when nearly every cell of it is close to the median: grey print
/// within 48 levels, and no cell of clear colour (a stamp, a signature in blue) on a colour page.
fn solid_ink(plane: &Plane, known: &[bool]) -> Option<Vec<u8>> {
    let ch = plane.channels;
    let cells: Vec<&[u8]> = known.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| &plane.samples[i * ch..(i + 1) * ch]).collect();
    if cells.is_empty() {
        return Some(vec![0; ch]);
    }
    let median: Vec<u8> = (0..ch)
        .map(|j| {
            let mut v: Vec<u8> = cells.iter().map(|c| c[j]).collect();
            v.sort_unstable();
            v[v.len() / 2]
        })
        .collect();
    let far = cells.iter().filter(|c| c.iter().zip(&median).any(|(a, b)| a.abs_diff(*b) > 48)).count();
    let coloured = if ch == 3 { cells.iter().filter(|c| c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) > 48).count() } else { 0 };
    (far * 100 <= cells.len() * 3 && coloured <= 6).then_some(median)
}

/// The page as a viewer draws it, in grey at mask resolution: the background, then the print
/// painted through the mask.
pub fn composite(mask: &Bitmap, layers: &Layers) -> GrayImage {
    // Per row, the samples' grey levels looked up by precomputed columns: this runs on every
    // pixel of every page measured for layers.
    let (w, h) = (mask.width, mask.height);
    let bg = &layers.background;
    let (bg_luma, bg_cols) = (bg.lumas(), bg.columns(w));
    /// The print's grey: one level, or a plane's levels and columns.
    enum InkGrey<'p> {
        Solid(u8),
        Varying(&'p Plane, Vec<u8>, Vec<usize>),
    }
    let ink = match &layers.ink {
        InkColour::Solid(c) => InkGrey::Solid(if c.len() == 3 { luma([c[0], c[1], c[2]]) } else { c.first().copied().unwrap_or(0) }),
        InkColour::Varying(p) => InkGrey::Varying(p, p.lumas(), p.columns(w)),
    };
    let mut out = GrayImage::new(w, h);
    for (y, row) in out.chunks_mut(w.max(1) as usize).enumerate() {
        let y = y as u32;
        let bg_row = &bg_luma[(y / bg.cell).min(bg.height - 1) as usize * bg.width as usize..];
        let mask_row = &mask.ink[(y * w) as usize..((y + 1) * w) as usize];
        match &ink {
            InkGrey::Solid(solid) => {
                for ((v, &m), &cx) in row.iter_mut().zip(mask_row).zip(&bg_cols) {
                    *v = if m == 1 { *solid } else { bg_row[cx] };
                }
            }
            InkGrey::Varying(p, ink_luma, ink_cols) => {
                let ink_row = &ink_luma[(y / p.cell).min(p.height - 1) as usize * p.width as usize..];
                for (((v, &m), &cx), &ix) in row.iter_mut().zip(mask_row).zip(&bg_cols).zip(ink_cols) {
                    *v = if m == 1 { ink_row[ix] } else { bg_row[cx] };
                }
            }
        }
    }
    out
}

/// Which tiles of a page the layers would blur (see [`picture_tiles`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TileMap {
    /// Tile side in scan pixels.
    pub tile: u32,
    pub cols: u32,
    pub rows: u32,
    pub picture: Vec<bool>,
}

impl TileMap {
    pub fn share(&self) -> f32 {
        self.picture.iter().filter(|&&p| p).count() as f32 / self.picture.len().max(1) as f32
    }
}

/// The page's tiles (about 2.7 mm) where the background drawn back differs from the scan by more
/// than `level` on average, away from the print: continuous tone (a photograph, a card's
/// guilloches) that a low-resolution background would blur. Print and the blur around it
/// (`near_ink`) are the mask's, and do not count.
///
/// A tile half to nine tenths of which the mask takes for print is mottled continuous tone too
/// (a dark photograph binarised into grain): print, even bold, leaves more paper than that, and
/// a filled shape leaves less.
pub fn picture_tiles(original: &GrayImage, drawn: &GrayImage, mask: &Bitmap, near_ink: &[u8], dpi: f32, level: u32) -> TileMap {
    let (w, h) = original.dimensions();
    let t = ((dpi / 9.4) as u32).max(8);
    let (a, b) = (original.as_raw(), drawn.as_raw());
    let (cols, rows) = (w.div_ceil(t), h.div_ceil(t));
    let mut picture = Vec::with_capacity((cols * rows) as usize);
    for ty in (0..h).step_by(t as usize) {
        for tx in (0..w).step_by(t as usize) {
            let (x1, y1) = ((tx + t).min(w), (ty + t).min(h));
            let (mut diff, mut n, mut ink) = (0u64, 0u64, 0u64);
            for y in ty..y1 {
                let r = (y * w) as usize;
                for i in r + tx as usize..r + x1 as usize {
                    ink += mask.ink.get(i).copied().unwrap_or(0) as u64;
                    if near_ink.get(i).copied().unwrap_or(0) == 0 {
                        diff += a[i].abs_diff(b[i]) as u64;
                        n += 1;
                    }
                }
            }
            let size = ((x1 - tx) * (y1 - ty)) as u64;
            // A tile mostly of print says nothing of the background.
            let blurred = n * 4 >= size && diff > level as u64 * n;
            let mottled = ink * 2 >= size && ink * 10 <= size * 9;
            picture.push(blurred || mottled);
        }
    }
    TileMap { tile: t, cols, rows, picture }
}

/// A rectangle of scan pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Region {
    fn overlaps(&self, o: &Region) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }

    fn union(&self, o: &Region) -> Region {
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        Region { x, y, w: (self.x + self.w).max(o.x + o.w) - x, h: (self.y + self.h).max(o.y + o.h) - y }
    }

    pub fn area(&self) -> u64 {
        self.w as u64 * self.h as u64
    }
}

/// The page's pictures as rectangles (a card, a photograph, a logo): the picture tiles gathered
/// into groups (tiles up to one apart belong together), each group's bounding box grown by a
/// tile so that a picture's soft edge is inside it, overlapping boxes merged. A group of one or
/// two tiles (a speck, a stain, a few millimetres) is no picture: the background keeps it,
/// blurred. More than `most` boxes become one: a page of scattered pictures is one as a whole.
pub fn picture_regions(tiles: &TileMap, width: u32, height: u32, most: usize) -> Vec<Region> {
    let (groups, _) = components(&tiles.picture, tiles.cols as usize, tiles.rows as usize, Joined::Within(2));
    let t = tiles.tile as i64;
    let mut regions: Vec<Region> = groups
        .iter()
        .filter(|g| g.cells >= 3)
        .map(|g| {
            let (x0, y0, x1, y1) = (g.x0 as i64, g.y0 as i64, g.x1 as i64, g.y1 as i64);
            let (px0, py0) = (((x0 - 1) * t).max(0), ((y0 - 1) * t).max(0));
            let (px1, py1) = (((x1 + 2) * t).min(width as i64), ((y1 + 2) * t).min(height as i64));
            Region { x: px0 as u32, y: py0 as u32, w: (px1 - px0).max(1) as u32, h: (py1 - py0).max(1) as u32 }
        })
        .collect();
    regions = merge_overlapping(regions);
    if regions.len() > most {
        let all = regions.iter().skip(1).fold(regions[0], |a, r| a.union(r));
        regions = vec![all];
    }
    regions.sort_by_key(|r| (r.y, r.x));
    regions
}

/// Rectangles merged until none overlap, in reading order.
pub fn merge_overlapping(mut regions: Vec<Region>) -> Vec<Region> {
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..regions.len() {
            for j in i + 1..regions.len() {
                if regions[i].overlaps(&regions[j]) {
                    regions[i] = regions[i].union(&regions[j]);
                    regions.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    regions.sort_by_key(|r| (r.y, r.x));
    regions
}

/// Card-shaped tinted areas of the background: an identity card or a passport's data page
/// copied on a sheet (70 to 140 mm by 45 to 100 mm, 1.25 to 1.75 times as long as wide, filled
/// for the most part). Its print sits on guilloches and a photograph that binarising spoils even
/// where no tile looks like a picture (a smooth photograph, fine print on a tinted card): it is
/// kept as a picture whatever the reader made of the page.
pub fn card_regions(layers: &Layers, dpi: f32) -> Vec<Region> {
    let p = &layers.background;
    let (w, h) = (p.width as usize, p.height as usize);
    if layers.tint.len() != w * h || w == 0 || h == 0 {
        return Vec::new();
    }
    let mm = p.cell as f32 * 25.4 / dpi.max(1.0);
    let (groups, _) = components(&layers.tint, w, h, Joined::ByEdge);
    let mut cards = Vec::new();
    for g in groups {
        let (x0, y0, x1, y1) = (g.x0, g.y0, g.x1, g.y1);
        let (bw, bh) = ((x1 - x0 + 1) as f32 * mm, (y1 - y0 + 1) as f32 * mm);
        let (long, short) = (bw.max(bh), bw.min(bh));
        if (70.0..=140.0).contains(&long) && (45.0..=100.0).contains(&short) && (1.25..=1.75).contains(&(long / short)) && g.fill() >= 0.8 {
            // A millimetre around, for the card's soft edge.
            let c = p.cell as usize;
            let margin = (dpi / 25.4).ceil() as usize;
            let (px0, py0) = ((x0 * c).saturating_sub(margin), (y0 * c).saturating_sub(margin));
            let (pw, ph) = (w * c, h * c);
            let (px1, py1) = (((x1 + 1) * c + margin).min(pw), ((y1 + 1) * c + margin).min(ph));
            cards.push(Region { x: px0 as u32, y: py0 as u32, w: (px1 - px0) as u32, h: (py1 - py0) as u32 });
        }
    }
    cards
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of "print" (dark bars) on paper, with a tinted box behind some of it.
    fn page(w: u32, h: u32, tint: bool) -> (Vec<u8>, Bitmap) {
        let mut px = vec![240u8; (w * h) as usize];
        let mut ink = vec![0u8; (w * h) as usize];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                if tint && x < w / 2 && y < h / 2 {
                    px[i] = 170;
                }
                if (y / 6) % 3 == 0 && (x / 4) % 3 != 0 {
                    px[i] = 30;
                    ink[i] = 1;
                }
            }
        }
        (px, Bitmap { width: w, height: h, ink })
    }

    #[test]
    fn the_background_keeps_the_tint_and_leaves_out_the_print() {
        let (px, mask) = page(300, 300, true);
        let layers = separate(&px, 1, &mask, 300.0, 3, 12, 240);
        assert!(layers.tinted_share > 0.2 && layers.tinted_share < 0.3, "{}", layers.tinted_share);
        // Background samples are paper or tint, never the print's level.
        assert!(layers.background.samples.iter().all(|&v| v >= 160), "{:?}", layers.background.samples.iter().min());
        assert_eq!(layers.ink, InkColour::Solid(vec![30]));
        let drawn = composite(&mask, &layers);
        assert_eq!(drawn.get_pixel(4, 0).0[0], 30);
        assert!(picture_tiles(&GrayImage::from_raw(300, 300, px).expect("page"), &drawn, &mask, &layers.near_ink, 300.0, 12).share() < 0.05);
    }

    #[test]
    fn plain_paper_is_not_tinted_and_a_page_all_of_print_still_has_a_background() {
        let (px, mask) = page(120, 90, false);
        assert!(separate(&px, 1, &mask, 300.0, 3, 12, 240).tinted_share < 0.01);
        let black = Bitmap { width: 50, height: 40, ink: vec![1; 2000] };
        let layers = separate(&[0u8; 2000], 1, &black, 300.0, 3, 12, 240);
        assert_eq!(layers.background.samples.len(), 17 * 14);
        assert!(layers.background.samples.iter().all(|&v| v == 240));
    }

    #[test]
    fn a_red_stamp_keeps_its_colour() {
        let (w, h) = (240u32, 240u32);
        let (grey, mask) = page(w, h, false);
        let mut px: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
        for y in 0..h / 3 {
            for x in 0..w {
                let i = (y * w + x) as usize;
                if mask.ink[i] == 1 {
                    px[i * 3..i * 3 + 3].copy_from_slice(&[200, 20, 30]);
                }
            }
        }
        let layers = separate(&px, 3, &mask, 300.0, 3, 12, 240);
        let InkColour::Varying(p) = &layers.ink else { panic!("one colour for red and black print") };
        assert!(p.at(10, 10, 0) > 150 && p.at(10, 10, 1) < 80, "{:?}", &p.samples[..3]);
        assert!(p.at(10, 200, 0) < 80);
    }

    /// A 0/1 map of sparse specks and strokes, the same for every run.
    fn specks(w: usize, h: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                u8::from(state.is_multiple_of(11))
            })
            .collect()
    }

    #[test]
    fn dilation_is_the_square_neighbourhood_s_maximum_up_to_the_edges() {
        for (w, h, r) in [(37, 23, 1), (37, 23, 2), (5, 40, 3), (1, 9, 2), (64, 2, 4)] {
            let map = specks(w, h);
            let d = dilate(&map, w, h, r);
            for y in 0..h {
                for x in 0..w {
                    let near = (y.saturating_sub(r)..=(y + r).min(h - 1)).any(|ny| (x.saturating_sub(r)..=(x + r).min(w - 1)).any(|nx| map[ny * w + nx] == 1));
                    assert_eq!(d[y * w + x], u8::from(near), "{w}×{h} r {r} at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn stroke_cores_are_print_with_print_on_four_sides_away_from_the_edges() {
        let (w, h) = (41, 29);
        let map: Vec<u8> = specks(w, h).iter().zip(specks(h, w)).map(|(a, b)| 1 - (a | b)).collect();
        let core = stroke_cores(&map, w, h);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let inside = x > 0 && y > 0 && x + 1 < w && y + 1 < h && [i, i - 1, i + 1, i - w, i + w].iter().all(|&j| map[j] == 1);
                assert_eq!(core[i], u8::from(inside), "({x}, {y})");
            }
        }
        assert!(core.contains(&1) && core.contains(&0));
    }

    #[test]
    fn dilation_reaches_the_radius_and_no_further() {
        let mut map = vec![0u8; 81];
        map[40] = 1;
        let d = dilate(&map, 9, 9, 2);
        assert_eq!(d.iter().filter(|&&v| v == 1).count(), 25);
        assert_eq!(d[40 - 2 * 9 - 2], 1);
        assert_eq!(d[40 - 3 * 9], 0);
    }

    #[test]
    fn pictures_are_gathered_into_rectangles_and_specks_left_out() {
        let (cols, rows) = (40u32, 60u32);
        let mut picture = vec![false; (cols * rows) as usize];
        let mut set = |x: u32, y: u32| picture[(y * cols + x) as usize] = true;
        // A card: 10 × 6 tiles, with a gap of one tile in it.
        for y in 5..11 {
            for x in 5..15 {
                if x != 9 {
                    set(x, y);
                }
            }
        }
        // A speck of two tiles, far from it.
        set(30, 40);
        set(31, 40);
        // A logo of 2 × 2 tiles.
        for (x, y) in [(30, 50), (31, 50), (30, 51), (31, 51)] {
            set(x, y);
        }
        let tiles = TileMap { tile: 32, cols, rows, picture };
        let regions = picture_regions(&tiles, cols * 32, rows * 32, 6);
        assert_eq!(regions.len(), 2, "{regions:?}");
        // Each grown by a tile around.
        assert_eq!(regions[0], Region { x: 4 * 32, y: 4 * 32, w: 12 * 32, h: 8 * 32 });
        assert_eq!(regions[1], Region { x: 29 * 32, y: 49 * 32, w: 4 * 32, h: 4 * 32 });
        // Fewer boxes allowed than found: one around them all.
        let one = picture_regions(&tiles, cols * 32, rows * 32, 1);
        assert_eq!(one, vec![Region { x: 4 * 32, y: 4 * 32, w: 29 * 32, h: 49 * 32 }]);
    }
}
