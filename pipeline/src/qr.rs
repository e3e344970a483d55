//! Finding QR codes on a page, fast enough for every page of every mailing.
//!
//! Slips carry their code near a corner, so the four corners are searched first at full
//! resolution (a 12 mm code at 300 dpi has modules of under 4 pixels: downscaling would lose it).
//! Whatever the sheet's orientation, the code then sits in one of the corners. A full-page pass
//! runs only when asked (`thorough`). The decoder is guarded: a panic inside it is a miss, never a
//! crash of the worker.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::GrayImage;

use crate::binarize::Bitmap;
use rxing::common::HybridBinarizer;
use rxing::datamatrix::DataMatrixReader;
use rxing::qrcode::QRCodeReader;
use rxing::qrcode::cpp_port::QrReader;
use rxing::{BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, LuminanceSource, RXingResult, RXingResultMetadataType, RXingResultMetadataValue, Reader};

/// A decoded QR code.
#[derive(Debug, Clone, PartialEq)]
pub struct QrHit {
    /// The raw bytes of the code (byte-mode segments), not a charset guess.
    pub payload: Vec<u8>,
    /// Rotation of the code on the page in degrees (0 = upright, 180 = upside down), clockwise.
    pub rotation: f32,
    /// Centre of the code on the page, in pixels.
    pub centre: (f32, f32),
    /// Read only on the second look at the grey levels (a faint code, or a code showing
    /// through from the other side of the sheet: a blank back must not become a slip).
    pub faint: bool,
}

/// How hard to look.
#[derive(Debug, Clone, Copy)]
pub struct QrSearch {
    /// Share of the page width and height that a corner window covers.
    pub corner_w: f32,
    pub corner_h: f32,
    /// Search the whole page instead of its corners.
    pub thorough: bool,
}

impl Default for QrSearch {
    fn default() -> Self {
        Self { corner_w: 0.36, corner_h: 0.26, thorough: false }
    }
}

/// Finds the QR codes of a page (binarises it first; see [`find_qr_codes_in`]).
pub fn find_qr_codes(page: &GrayImage, search: &QrSearch) -> Vec<QrHit> {
    let dpi = crate::raster::estimate_dpi(page.width(), page.height());
    let stats = crate::binarize::tile_stats(page, dpi);
    let bits = crate::binarize::binarize(page, &stats, crate::binarize::MIN_CONTRAST);
    find_qr_codes_in(page, &bits, search)
}

/// Finds the QR codes of a page whose bitonal version is already made.
///
/// Finder patterns (the three 1:1:3:1:1 squares) are looked for on the bitonal page first, on
/// every other row of the searched windows: cheap, and nearly every page has none. Only where
/// finder patterns group like a code's does the decoder run, on a tight crop of the grey page.
pub fn find_qr_codes_in(page: &GrayImage, bits: &Bitmap, search: &QrSearch) -> Vec<QrHit> {
    let (w, h) = page.dimensions();
    if w < 32 || h < 32 || bits.width != w || bits.height != h {
        return Vec::new();
    }
    let cw = ((w as f32 * search.corner_w) as u32).clamp(16, w);
    let ch = ((h as f32 * search.corner_h) as u32).clamp(16, h);
    // Upright slips have their code top right; upside-down ones bottom left.
    let windows: Vec<(u32, u32, u32, u32)> =
        if search.thorough { vec![(0, 0, w, h)] } else { vec![(w - cw, 0, cw, ch), (0, h - ch, cw, ch), (0, 0, cw, ch), (w - cw, h - ch, cw, ch)] };
    let mut hits: Vec<QrHit> = Vec::new();
    let add = |hit: QrHit, hits: &mut Vec<QrHit>| {
        if !hits.iter().any(|h| h.payload == hit.payload) {
            hits.push(hit);
        }
    };
    let mut first_look_saw = Vec::with_capacity(windows.len());
    for &(x, y, ww, wh) in &windows {
        let candidates = finder_candidates(bits, x, y, x + ww, y + wh);
        first_look_saw.push(!candidates.is_empty());
        for hit in decode_boxes(page, &candidates, (x, y, ww, wh), false) {
            add(hit, &mut hits);
        }
    }
    // The page's bitonal version can lose a faint or blurred code (too little contrast for text,
    // modules run together): when it shows none, each window's grey levels are stretched locally
    // and searched once more, decoding only where three finder patterns stand as a code's do.
    if hits.is_empty() && !search.thorough {
        for (&(x, y, ww, wh), first_look_saw) in windows.iter().zip(first_look_saw) {
            let stretched = local_contrast(page, x, y, ww, wh);
            let (mut found, saw) = second_look(page, &stretched, (x, y));
            // A blurred code's finder patterns lose their inner white ring: where either look saw
            // one, the window is sharpened at about a module's scale and looked at again.
            if found.is_empty() && (saw || first_look_saw) {
                let sharp = sharpen(page, x, y, ww, wh);
                found = second_look(page, &local_contrast(&sharp, 0, 0, ww, wh), (x, y)).0;
            }
            for hit in found {
                add(hit, &mut hits);
            }
        }
    }
    hits
}

/// Searches a window's stretched grey levels (see [`local_contrast`]) for codes; `origin` is
/// where the window stands on `page`. Returns the codes read, in page coordinates, and whether
/// any finder pattern was seen.
fn second_look(page: &GrayImage, stretched: &GrayImage, origin: (u32, u32)) -> (Vec<QrHit>, bool) {
    let (ww, wh) = stretched.dimensions();
    let (x, y) = (origin.0 as f32, origin.1 as f32);
    let bits = Bitmap { width: ww, height: wh, ink: stretched.as_raw().iter().map(|&v| u8::from(v < 128)).collect() };
    let candidates = finder_candidates(&bits, 0, 0, ww, wh);
    let mut found: Vec<QrHit> = decode_boxes(stretched, &candidates, (0, 0, ww, wh), true)
        .into_iter()
        .map(|hit| QrHit { centre: (hit.centre.0 + x, hit.centre.1 + y), faint: true, ..hit })
        .collect();
    if found.is_empty() {
        // Stretching bends grey levels tile by tile; module by module, the page's own levels
        // follow the blur better.
        let on_page = |f: FinderCandidate| FinderCandidate { x: f.x + x, y: f.y + y, ..f };
        found.extend(
            code_boxes(&candidates)
                .iter()
                .flat_map(|b| b.corners.iter().take(6))
                .find_map(|c| decode_sampled(page, c.map(on_page)))
                .map(|hit| QrHit { faint: true, ..hit }),
        );
    }
    (found, !candidates.is_empty())
}

/// Decodes a code around each group of finder patterns of `window`. A `second_look` decodes
/// only groups of three (a code's corners), on their crop and enlarged; the first look also
/// tries pairs, and the whole window when a crop cuts a skewed code.
fn decode_boxes(page: &GrayImage, candidates: &[FinderCandidate], window: (u32, u32, u32, u32), second_look: bool) -> Vec<QrHit> {
    let (w, h) = page.dimensions();
    let (x, y, ww, wh) = window;
    let mut out = Vec::new();
    for CodeBox { rect: (bx0, by0, bx1, by1), corners } in code_boxes(candidates) {
        if second_look && corners.is_empty() {
            continue;
        }
        let (cx0, cy0) = (bx0.max(0.0) as u32, by0.max(0.0) as u32);
        let (cx1, cy1) = ((bx1 as u32).min(w), (by1 as u32).min(h));
        if cx1 <= cx0 + 16 || cy1 <= cy0 + 16 {
            continue;
        }
        let crop = (cx0, cy0, cx1 - cx0, cy1 - cy0);
        let hit = decode_window(page, crop.0, crop.1, crop.2, crop.3)
            .or_else(|| if second_look { None } else { decode_window(page, x, y, ww, wh) })
            // Small blurred modules: sampled again on the crop, enlarged.
            .or_else(|| if corners.is_empty() { None } else { decode_enlarged(page, crop.0, crop.1, crop.2, crop.3) })
            // Modules run together: read one by one where the finder patterns put them (each
            // group of three that could be the code's corners: print around it makes others).
            .or_else(|| corners.iter().take(6).find_map(|&c| decode_sampled(page, c)));
        if let Some(hit) = hit {
            out.push(hit);
        }
    }
    out
}

/// A window of the page with its grey levels stretched tile by tile: in each 16-pixel tile,
/// the darkest and lightest levels of the tile and its eight neighbours (5th and 95th
/// percentiles, so noise does not count) become black and white. A faint code (modules 40 grey
/// levels under the paper) comes out as a black-on-white one; a region whose levels hardly
/// change (paper, a solid area) comes out white.
fn local_contrast(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> GrayImage {
    const TILE: u32 = 16;
    const FLAT: i32 = 24;
    // Averaged over 3×3 pixels first: paper grain and JPEG noise then stay under FLAT.
    let page = &box_mean_3x3(page, x, y, w, h);
    let (x, y) = (0u32, 0u32);
    let (cols, rows) = (w.div_ceil(TILE), h.div_ceil(TILE));
    let mut lo = vec![0u8; (cols * rows) as usize];
    let mut hi = vec![0u8; (cols * rows) as usize];
    for ty in 0..rows {
        for tx in 0..cols {
            let mut hist = [0u32; 256];
            let (x0, y0) = (x + tx * TILE, y + ty * TILE);
            let (x1, y1) = ((x0 + TILE).min(x + w), (y0 + TILE).min(y + h));
            let raw = page.as_raw();
            let pw = page.width() as usize;
            for yy in y0..y1 {
                for &v in &raw[yy as usize * pw + x0 as usize..yy as usize * pw + x1 as usize] {
                    hist[v as usize] += 1;
                }
            }
            let n = (x1 - x0) * (y1 - y0);
            let level = |share: u32| {
                let mut acc = 0;
                for (v, c) in hist.iter().enumerate() {
                    acc += c;
                    if acc * 100 >= n * share {
                        return v as u8;
                    }
                }
                255
            };
            let i = (ty * cols + tx) as usize;
            (lo[i], hi[i]) = (level(5), level(95));
        }
    }
    let mut range = vec![(0u8, 0u8); (cols * rows) as usize];
    for ty in 0..rows {
        for tx in 0..cols {
            let (mut l, mut u) = (255u8, 0u8);
            for ny in ty.saturating_sub(1)..(ty + 2).min(rows) {
                for nx in tx.saturating_sub(1)..(tx + 2).min(cols) {
                    let j = (ny * cols + nx) as usize;
                    l = l.min(lo[j]);
                    u = u.max(hi[j]);
                }
            }
            range[(ty * cols + tx) as usize] = (l, u);
        }
    }
    let (raw, pw) = (page.as_raw(), page.width() as usize);
    let mut out = Vec::with_capacity((w * h) as usize);
    for yy in 0..h {
        let row = &raw[(y + yy) as usize * pw + x as usize..][..w as usize];
        for (xx, &v) in row.iter().enumerate() {
            let (l, u) = range[((yy / TILE) * cols + xx as u32 / TILE) as usize];
            let (l, u) = (i32::from(l), i32::from(u));
            out.push(if u - l < FLAT { 255 } else { ((i32::from(v) - l) * 255 / (u - l)).clamp(0, 255) as u8 });
        }
    }
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::from_pixel(w, h, image::Luma([255])))
}

/// A window of the page sharpened: each pixel pushed away from the mean of the 7×7 pixels
/// around it, twice the difference (sums from an integral image: a few milliseconds a window).
fn sharpen(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> GrayImage {
    const R: usize = 3;
    let (raw, pw) = (page.as_raw(), page.width() as usize);
    let (w, h) = (w as usize, h as usize);
    let mut integral = vec![0u32; (w + 1) * (h + 1)];
    for yy in 0..h {
        let row = &raw[(y as usize + yy) * pw + x as usize..][..w];
        let mut across = 0u32;
        for xx in 0..w {
            across += u32::from(row[xx]);
            integral[(yy + 1) * (w + 1) + xx + 1] = integral[yy * (w + 1) + xx + 1] + across;
        }
    }
    let mut out = vec![0u8; w * h];
    for yy in 0..h {
        let (y0, y1) = (yy.saturating_sub(R), (yy + R + 1).min(h));
        for xx in 0..w {
            let (x0, x1) = (xx.saturating_sub(R), (xx + R + 1).min(w));
            let sum = integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0] - integral[y0 * (w + 1) + x1] - integral[y1 * (w + 1) + x0];
            let mean = sum as i32 / ((y1 - y0) * (x1 - x0)) as i32;
            let v = i32::from(raw[(y as usize + yy) * pw + x as usize + xx]);
            out[yy * w + xx] = (v + 2 * (v - mean)).clamp(0, 255) as u8;
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or_default()
}

/// The mean of each pixel's 3×3 neighbourhood, over a window of the page (edges repeated).
fn box_mean_3x3(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> GrayImage {
    let (raw, pw) = (page.as_raw(), page.width() as usize);
    let (w, h) = (w as usize, h as usize);
    // Sums of three pixels across, row by row.
    let mut across = vec![0u16; w * h];
    for yy in 0..h {
        let row = &raw[(y as usize + yy) * pw + x as usize..][..w];
        for xx in 0..w {
            let (l, r) = (xx.saturating_sub(1), (xx + 1).min(w - 1));
            across[yy * w + xx] = u16::from(row[l]) + u16::from(row[xx]) + u16::from(row[r]);
        }
    }
    let mut out = vec![0u8; w * h];
    for yy in 0..h {
        let (up, down) = (yy.saturating_sub(1), (yy + 1).min(h - 1));
        for xx in 0..w {
            out[yy * w + xx] = ((across[up * w + xx] + across[yy * w + xx] + across[down * w + xx]) / 9) as u8;
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or_default()
}

/// Decodes a crop enlarged: small, blurred modules are then sampled on several pixels each
/// (twice the size and sharpened, then three times the size).
fn decode_enlarged(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> Option<QrHit> {
    let crop = image::imageops::crop_imm(page, x, y, w, h).to_image();
    [(2u32, 4.0f32), (3, 0.0)].into_iter().find_map(|(k, sharpen)| {
        let big = image::imageops::resize(&crop, w * k, h * k, image::imageops::FilterType::CatmullRom);
        let big = if sharpen > 0.0 { image::imageops::unsharpen(&big, sharpen, 0) } else { big };
        let hit = decode_window(&big, 0, 0, w * k, h * k)?;
        Some(QrHit { centre: (x as f32 + hit.centre.0 / k as f32, y as f32 + hit.centre.1 / k as f32), ..hit })
    })
}

/// Reads a code module by module where its three finder patterns put the modules, for codes so
/// blurred that no binarisation of the pixels keeps them apart. Each module's grey level is
/// sampled at its centre; the blur is then learnt from the modules every code has in the same
/// place (finder patterns, their white borders, timing lines, the quiet zone): how much a dark
/// module and each ring of dark neighbours darken a sample. Each other module is then taken as
/// dark or light, whichever with its neighbours' current values predicts its sample better,
/// sweep after sweep. The grid comes from the finder centres (a flatbed scan's code is a
/// parallelogram), the version from their distance, tried one either side. Error correction
/// refuses a wrong grid: a misread is a miss, never a wrong payload.
fn decode_sampled(page: &GrayImage, corner: [FinderCandidate; 3]) -> Option<QrHit> {
    let dist = |p: &FinderCandidate, q: &FinderCandidate| ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
    let [a, b, c] = corner;
    // The corner finder faces the longest side.
    let (tl, p, q) = if dist(&b, &c) >= dist(&a, &b).max(dist(&a, &c)) {
        (a, b, c)
    } else if dist(&a, &c) >= dist(&a, &b) {
        (b, a, c)
    } else {
        (c, a, b)
    };
    // Clockwise from the corner (y downwards): top right, then bottom left.
    let (tr, bl) = if (p.x - tl.x) * (q.y - tl.y) - (p.y - tl.y) * (q.x - tl.x) > 0.0 { (p, q) } else { (q, p) };
    let module = (tl.module + tr.module + bl.module) / 3.0;
    let side = (dist(&tl, &tr) + dist(&tl, &bl)) / 2.0;
    let version = ((side / module + 7.0 - 17.0) / 4.0).round() as i32;
    let hints = DecodeHints { CharacterSet: Some("UTF-8".into()), ..Default::default() };
    for version in [version, version - 1, version + 1] {
        if !(1..=10).contains(&version) {
            continue;
        }
        let n = (17 + 4 * version) as usize;
        let g = n + 2 * MARGIN;
        let known: Vec<Option<bool>> = (0..g * g).map(|i| known_module(i / g, i % g, MARGIN, n)).collect();
        // The finder centres seen on a blurred code can be a pixel or two off, and the grid
        // drifts with them: each is moved a pixel, then half a pixel, at a time, for as long as
        // the known modules then fit the blur model better.
        let mut corners = [tl, tr, bl];
        let fit = |c: &[FinderCandidate; 3]| {
            let level = sample_modules(page, c, n);
            BlurModel::fit(&level, &known, g).map(|m| (m, level))
        };
        let Some((mut blur, mut level)) = fit(&corners) else { continue };
        // Three finder patterns found in print (letters, rules) fit no code's fixed modules:
        // their own darkening drowns in the error of the fit.
        if f64::from(blur.weights[1]).powi(2) < 4.0 * blur.residual {
            continue;
        }
        for step in [1.0f32, 1.0, 0.5, 0.5] {
            for k in 0..3 {
                for (dx, dy) in [(-step, 0.0), (step, 0.0), (0.0, -step), (0.0, step)] {
                    let mut moved = corners;
                    moved[k].x += dx;
                    moved[k].y += dy;
                    if let Some((m, l)) = fit(&moved).filter(|(m, _)| m.residual < blur.residual) {
                        (corners, blur, level) = (moved, m, l);
                    }
                }
            }
        }
        let [tl, tr, bl] = corners;
        // A first guess by the local mean, then sweeps that account for the neighbours.
        let mut dark: Vec<bool> = (0..g * g)
            .map(|i| {
                known[i].unwrap_or_else(|| {
                    let (r, c) = (i / g, i % g);
                    let (mut sum, mut k) = (0.0, 0.0);
                    for rr in r.saturating_sub(4)..(r + 5).min(g) {
                        for cc in c.saturating_sub(4)..(c + 5).min(g) {
                            sum += level[rr * g + cc];
                            k += 1.0;
                        }
                    }
                    level[i] < sum / k
                })
            })
            .collect();
        for sweep in 0..=6 {
            if sweep > 0 {
                let mut changed = false;
                for i in (0..g * g).filter(|&i| known[i].is_none()) {
                    let guess = blur.closer_dark(&level, &dark, g, i);
                    changed |= guess != dark[i];
                    dark[i] = guess;
                }
                if !changed {
                    break;
                }
            }
            {
                let modules: Vec<Vec<bool>> = (0..n).map(|r| dark[(r + MARGIN) * g + MARGIN..][..n].to_vec()).collect();
                let decoded = catch_unwind(AssertUnwindSafe(|| rxing::qrcode::decoder::qrcode_decoder::decode_bool_array_with_hints(&modules, &hints).ok()))
                    .ok()
                    .flatten();
                if let Some(d) = decoded {
                    let rotation = ((tr.y - tl.y).atan2(tr.x - tl.x).to_degrees() + 360.0) % 360.0;
                    let centre = ((tr.x + bl.x) / 2.0, (tr.y + bl.y) / 2.0);
                    return Some(QrHit { payload: payload_of(d.getText(), d.getByteSegments()), rotation, centre, faint: false });
                }
            }
        }
    }
    None
}

/// Modules of quiet zone sampled around a code read module by module.
const MARGIN: usize = 3;

/// The grey level of each module of a code of `n` modules a side whose finder centres are
/// `[top left, top right, bottom left]`, and of a quiet zone of [`MARGIN`] modules around it,
/// row by row: the mean of nine points a quarter module apart around its centre (JPEG noise).
fn sample_modules(page: &GrayImage, [tl, tr, bl]: &[FinderCandidate; 3], n: usize) -> Vec<f32> {
    let (w, h) = (page.width() as f32, page.height() as f32);
    let grey = |x: f32, y: f32| -> f32 {
        let (x, y) = (x.clamp(0.0, w - 2.0), y.clamp(0.0, h - 2.0));
        let (x0, y0) = (x as u32, y as u32);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |dx: u32, dy: u32| f32::from(page.get_pixel(x0 + dx, y0 + dy).0[0]);
        (at(0, 0) * (1.0 - fx) + at(1, 0) * fx) * (1.0 - fy) + (at(0, 1) * (1.0 - fx) + at(1, 1) * fx) * fy
    };
    let span = (n - 7) as f32;
    let (ux, uy) = ((tr.x - tl.x) / span, (tr.y - tl.y) / span);
    let (vx, vy) = ((bl.x - tl.x) / span, (bl.y - tl.y) / span);
    let g = n + 2 * MARGIN;
    let mut level = vec![0f32; g * g];
    for row in 0..g {
        for col in 0..g {
            let (du, dv) = (col as f32 - MARGIN as f32 - 3.0, row as f32 - MARGIN as f32 - 3.0);
            let mut sum = 0.0;
            for (ou, ov) in [(-0.25f32, -0.25f32), (0.0, -0.25), (0.25, -0.25), (-0.25, 0.0), (0.0, 0.0), (0.25, 0.0), (-0.25, 0.25), (0.0, 0.25), (0.25, 0.25)]
            {
                let (u, v) = (du + ou, dv + ov);
                sum += grey(tl.x + u * ux + v * vx, tl.y + u * uy + v * vy);
            }
            level[row * g + col] = sum / 9.0;
        }
    }
    level
}

/// The modules every code of `n` modules a side has in the same place, on a grid with a quiet
/// zone of `margin` modules: the finder patterns and their white borders, the timing lines,
/// the dark module by the bottom left finder, and the quiet zone (light).
fn known_module(row: usize, col: usize, margin: usize, n: usize) -> Option<bool> {
    let (r, c) = (row as i64 - margin as i64, col as i64 - margin as i64);
    let n = n as i64;
    if r < 0 || c < 0 || r >= n || c >= n {
        return Some(false);
    }
    for (fr, fc) in [(0, 0), (0, n - 7), (n - 7, 0)] {
        if (fr - 1..fr + 8).contains(&r) && (fc - 1..fc + 8).contains(&c) {
            let (dr, dc) = (r - fr, c - fc);
            let ring = (dr - 3).abs().max((dc - 3).abs());
            return Some(ring != 2 && ring <= 3);
        }
    }
    if (r == 6 && (8..n - 8).contains(&c)) || (c == 6 && (8..n - 8).contains(&r)) {
        return Some((r + c) % 2 == 0);
    }
    (r == n - 8 && c == 8).then_some(true)
}

/// How a module's sample depends on it and its neighbours, learnt by least squares on the
/// modules whose values are known: `base + own·[dark] + edge·(dark among the 4 beside) +
/// diagonal·(dark among the 4 at the corners) + far·(dark among the 4 two modules away)`.
struct BlurModel {
    weights: [f32; 5],
    /// Mean squared error of the fit on the known modules.
    residual: f64,
}

impl BlurModel {
    fn features(dark: &dyn Fn(usize, usize) -> Option<bool>, r: usize, c: usize) -> Option<[f32; 5]> {
        let f = |dr: i64, dc: i64| dark((r as i64 + dr) as usize, (c as i64 + dc) as usize).map(f32::from);
        let sum = |offsets: [(i64, i64); 4]| offsets.iter().map(|&(dr, dc)| f(dr, dc)).sum::<Option<f32>>();
        Some([1.0, f(0, 0)?, sum([(-1, 0), (1, 0), (0, -1), (0, 1)])?, sum([(-1, -1), (-1, 1), (1, -1), (1, 1)])?, sum([(-2, 0), (2, 0), (0, -2), (0, 2)])?])
    }

    fn fit(level: &[f32], known: &[Option<bool>], g: usize) -> Option<Self> {
        let at = |r: usize, c: usize| if r < g && c < g { known[r * g + c] } else { None };
        // Normal equations of the least squares fit.
        let mut ata = [[0f64; 5]; 5];
        let mut atb = [0f64; 5];
        let mut samples = 0;
        for r in 2..g.saturating_sub(2) {
            for c in 2..g.saturating_sub(2) {
                let Some(x) = Self::features(&at, r, c) else { continue };
                samples += 1;
                for i in 0..5 {
                    atb[i] += f64::from(x[i]) * f64::from(level[r * g + c]);
                    for j in 0..5 {
                        ata[i][j] += f64::from(x[i]) * f64::from(x[j]);
                    }
                }
            }
        }
        if samples < 50 {
            return None;
        }
        let weights = solve5(ata, atb)?;
        let mut squares = 0.0;
        for r in 2..g.saturating_sub(2) {
            for c in 2..g.saturating_sub(2) {
                let Some(x) = Self::features(&at, r, c) else { continue };
                let predicted: f64 = (0..5).map(|i| weights[i] * f64::from(x[i])).sum();
                squares += (predicted - f64::from(level[r * g + c])).powi(2);
            }
        }
        // A dark module must darken its own sample, or the model learnt noise.
        (weights[1] < -4.0).then(|| Self { weights: weights.map(|w| w as f32), residual: squares / f64::from(samples) })
    }

    /// Whether module `i` is better taken as dark, given its neighbours' current values.
    fn closer_dark(&self, level: &[f32], dark: &[bool], g: usize, i: usize) -> bool {
        let at = |r: usize, c: usize| Some(r < g && c < g && dark[r * g + c]);
        let Some(x) = Self::features(&at, i / g, i % g) else { return dark[i] };
        let around: f32 = self.weights[0] + (2..5).map(|k| self.weights[k] * x[k]).sum::<f32>();
        (level[i] - (around + self.weights[1])).abs() < (level[i] - around).abs()
    }
}

/// Solves a 5×5 linear system by Gaussian elimination with partial pivoting.
fn solve5(mut a: [[f64; 5]; 5], mut b: [f64; 5]) -> Option<[f64; 5]> {
    for col in 0..5 {
        let pivot = (col..5).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..5 {
            let k = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (v, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= k * p;
            }
            b[row] -= k * b[col];
        }
    }
    let mut x = [0f64; 5];
    for row in (0..5).rev() {
        x[row] = (b[row] - (row + 1..5).map(|j| a[row][j] * x[j]).sum::<f64>()) / a[row][row];
    }
    Some(x)
}

/// A code's payload: its raw bytes when it is all in byte mode. A code of mixed segments
/// (numeric, alphanumeric and byte parts, as general encoders write) has only its byte parts
/// there: its text then, decoded as UTF-8 (the slips' encoding).
fn payload_of(text: &str, byte_segments: &[Vec<u8>]) -> Vec<u8> {
    if byte_segments.iter().map(Vec::len).sum::<usize>() >= text.chars().count() { byte_segments.concat() } else { text.as_bytes().to_vec() }
}

/// A finder pattern seen on the page: centre and module size in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinderCandidate {
    pub x: f32,
    pub y: f32,
    pub module: f32,
}

fn ratio_ok(runs: &[u32; 5]) -> Option<f32> {
    let total: u32 = runs.iter().sum();
    if total < 7 {
        return None;
    }
    let m = total as f32 / 7.0;
    let tol = m * 0.7;
    let ok = (runs[0] as f32 - m).abs() <= tol
        && (runs[1] as f32 - m).abs() <= tol
        && (runs[2] as f32 - 3.0 * m).abs() <= 3.0 * tol
        && (runs[3] as f32 - m).abs() <= tol
        && (runs[4] as f32 - m).abs() <= tol;
    ok.then_some(m)
}

/// Vertical cross-check at column `x` around row `y`: the same 1:1:3:1:1 pattern, and its centre.
fn vertical_check(bits: &Bitmap, x: u32, y: u32, y0: u32, y1: u32) -> Option<(f32, f32)> {
    let at = |yy: u32| bits.ink[(yy * bits.width + x) as usize] == 1;
    if !at(y) {
        return None;
    }
    let mut runs = [0u32; 5];
    // Up: centre black, white, black.
    let mut yy = y as i64;
    for (i, colour) in [(2usize, true), (1, false), (0, true)] {
        while yy >= y0 as i64 && at(yy as u32) == colour {
            runs[i] += 1;
            yy -= 1;
        }
    }
    let top = yy + 1;
    let mut yy = y as i64 + 1;
    for (i, colour) in [(2usize, true), (3, false), (4, true)] {
        while yy < y1 as i64 && at(yy as u32) == colour {
            runs[i] += 1;
            yy += 1;
        }
    }
    let m = ratio_ok(&runs)?;
    let centre = top as f32 + runs[0] as f32 + runs[1] as f32 + runs[2] as f32 / 2.0;
    Some((centre, m))
}

/// Finder patterns in a window of the bitonal page, merged.
pub fn finder_candidates(bits: &Bitmap, x0: u32, y0: u32, x1: u32, y1: u32) -> Vec<FinderCandidate> {
    let mut found: Vec<(FinderCandidate, u32)> = Vec::new();
    let w = bits.width as usize;
    for y in (y0..y1).step_by(2) {
        let row = &bits.ink[y as usize * w + x0 as usize..y as usize * w + x1 as usize];
        // Run lengths with their start positions.
        let mut runs: Vec<(u32, u32, u8)> = Vec::with_capacity(64);
        let mut start = 0usize;
        for i in 1..=row.len() {
            if i == row.len() || row[i] != row[start] {
                runs.push((start as u32, (i - start) as u32, row[start]));
                start = i;
            }
        }
        for win in runs.windows(5) {
            if win[0].2 != 1 {
                continue;
            }
            let lens = [win[0].1, win[1].1, win[2].1, win[3].1, win[4].1];
            let Some(m) = ratio_ok(&lens) else { continue };
            if m < 1.2 {
                continue;
            }
            let cx = x0 + win[2].0 + win[2].1 / 2;
            let Some((cy, mv)) = vertical_check(bits, cx, y, y0, y1) else { continue };
            if (mv / m) > 1.6 || (m / mv) > 1.6 {
                continue;
            }
            let c = FinderCandidate { x: x0 as f32 + win[2].0 as f32 + win[2].1 as f32 / 2.0, y: cy, module: (m + mv) / 2.0 };
            match found.iter_mut().find(|(f, _)| (f.x - c.x).abs() < 3.0 * f.module && (f.y - c.y).abs() < 3.0 * f.module) {
                Some((f, n)) => {
                    let k = *n as f32;
                    f.x = (f.x * k + c.x) / (k + 1.0);
                    f.y = (f.y * k + c.y) / (k + 1.0);
                    f.module = (f.module * k + c.module) / (k + 1.0);
                    *n += 1;
                }
                None => found.push((c, 1)),
            }
        }
    }
    found.into_iter().map(|(f, _)| f).collect()
}

/// Where to decode: a box around finder patterns that could belong to one code.
struct CodeBox {
    rect: (f32, f32, f32, f32),
    /// The groups of three finder patterns that stand as a code's corners do (two equal sides
    /// at a right angle); none when there are only pairs that could be.
    corners: Vec<[FinderCandidate; 3]>,
}

/// Groups finder patterns that could belong to one code (similar modules, 14-50 modules apart)
/// and returns the box to decode around each group.
fn code_boxes(c: &[FinderCandidate]) -> Vec<CodeBox> {
    let mut boxes: Vec<CodeBox> = Vec::new();
    for (i, a) in c.iter().enumerate() {
        for b in &c[i + 1..] {
            let m = (a.module + b.module) / 2.0;
            if a.module / b.module > 1.5 || b.module / a.module > 1.5 {
                continue;
            }
            let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt() / m;
            // Side (14..50 modules) or diagonal (x1.41) of versions 1 to 10.
            if !(11.0..=75.0).contains(&d) {
                continue;
            }
            let reach = d * m + 8.0 * m;
            let rect = (a.x.min(b.x) - reach, a.y.min(b.y) - reach, a.x.max(b.x) + reach, a.y.max(b.y) + reach);
            let corners: Vec<[FinderCandidate; 3]> = c.iter().filter(|k| corner_of(a, b, k)).map(|k| [*a, *b, *k]).collect();
            match boxes.iter_mut().find(|o| rect.0 < o.rect.2 && o.rect.0 < rect.2 && rect.1 < o.rect.3 && o.rect.1 < rect.3) {
                Some(o) => o.corners.extend(corners),
                None => boxes.push(CodeBox { rect, corners }),
            }
        }
    }
    boxes
}

/// Whether `a`, `b` and `k` stand as a code's three finder patterns: similar modules, two
/// equal sides and the third √2 times as long.
fn corner_of(a: &FinderCandidate, b: &FinderCandidate, k: &FinderCandidate) -> bool {
    if std::ptr::eq(k, a) || std::ptr::eq(k, b) || k.module / a.module > 1.5 || a.module / k.module > 1.5 {
        return false;
    }
    let dist = |p: &FinderCandidate, q: &FinderCandidate| ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
    let mut sides = [dist(a, b), dist(a, k), dist(b, k)];
    sides.sort_by(f32::total_cmp);
    sides[0] > 0.0 && sides[1] / sides[0] < 1.2 && (sides[2] / sides[1] - std::f32::consts::SQRT_2).abs() < 0.2
}

fn decode_window(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> Option<QrHit> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let full = Luma8Source::new_with_slice(page.as_raw(), page.width(), page.height()).ok()?;
        let view = full.crop(x as usize, y as usize, w as usize, h as usize).ok()?;
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(view));
        let hints = DecodeHints {
            TryHarder: Some(true),
            PossibleFormats: Some(HashSet::from([BarcodeFormat::QR_CODE])),
            CharacterSet: Some("UTF-8".into()),
            ..Default::default()
        };
        QrReader.decode_with_hints(&mut bitmap, &hints).or_else(|_| QRCodeReader.decode_with_hints(&mut bitmap, &hints)).ok()
    }));
    let r = result.ok().flatten()?;
    Some(to_hit(&r, x as f32, y as f32))
}

/// Finds and decodes the DataMatrix codes of a page (the French 2D-Doc: tax notices, pay
/// slips, bills), returning their text as the decoder gives it (separators GS, RS and US kept).
///
/// A prescreen on the bitonal page finds square blocks of dense, fine-grained ink, 8 to 40 mm
/// a side (text has gaps between its lines; a photograph is not fine-grained); the decoder runs
/// on those crops only, at most four a page.
pub fn find_datamatrix_in(page: &GrayImage, bits: &Bitmap, dpi: f32) -> Vec<String> {
    let (w, h) = page.dimensions();
    if w < 64 || h < 64 || bits.width != w || bits.height != h {
        return Vec::new();
    }
    let cell = ((dpi * 1.5 / 25.4) as u32).max(4);
    let (cw, ch) = ((w / cell) as usize, (h / cell) as usize);
    // A cell of a code: a third to three quarters ink, and changing from ink to paper often.
    let dense: Vec<bool> = (0..cw * ch)
        .map(|i| {
            let (cx, cy) = ((i % cw) as u32 * cell, (i / cw) as u32 * cell);
            let (mut ink, mut changes) = (0u32, 0u32);
            for y in cy..cy + cell {
                let row = &bits.ink[(y * w + cx) as usize..(y * w + cx + cell) as usize];
                ink += row.iter().map(|&b| b as u32).sum::<u32>();
                changes += row.windows(2).filter(|p| p[0] != p[1]).count() as u32;
            }
            let share = ink as f32 / (cell * cell) as f32;
            (0.25..=0.85).contains(&share) && changes >= cell * 2 / 3
        })
        .collect();
    // 8-connected, and across one missing cell (a code's white modules line up).
    let (groups, _) = crate::grid::components(&dense, cw, ch, crate::grid::Joined::Within(2));
    let mut boxes = Vec::new();
    for g in groups {
        let (x0, y0, x1, y1, n) = (g.x0, g.y0, g.x1, g.y1, g.cells);
        let (bw, bh) = ((x1 - x0 + 1) as f32 * 1.5, (y1 - y0 + 1) as f32 * 1.5);
        if (7.5..=40.0).contains(&bw) && (7.5..=40.0).contains(&bh) && (0.65..=1.5).contains(&(bw / bh)) && g.fill() > 0.55 {
            boxes.push((n, x0 as u32 * cell, y0 as u32 * cell, (x1 + 1) as u32 * cell, (y1 + 1) as u32 * cell));
        }
    }
    boxes.sort_by_key(|b| std::cmp::Reverse(b.0));
    let margin = (dpi * 3.0 / 25.4) as u32;
    let mut found: Vec<String> = Vec::new();
    for &(_, x0, y0, x1, y1) in boxes.iter().take(4) {
        let (cx0, cy0) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
        let (cx1, cy1) = ((x1 + margin).min(w), (y1 + margin).min(h));
        if let Some(text) = decode_datamatrix(page, cx0, cy0, cx1 - cx0, cy1 - cy0)
            && !found.contains(&text)
        {
            found.push(text);
        }
    }
    found
}

fn decode_datamatrix(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> Option<String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let full = Luma8Source::new_with_slice(page.as_raw(), page.width(), page.height()).ok()?;
        let view = full.crop(x as usize, y as usize, w as usize, h as usize).ok()?;
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(view));
        let hints = DecodeHints { TryHarder: Some(true), PossibleFormats: Some(HashSet::from([BarcodeFormat::DATA_MATRIX])), ..Default::default() };
        DataMatrixReader.decode_with_hints(&mut bitmap, &hints).ok()
    }));
    result.ok().flatten().map(|r| r.getText().to_string())
}

fn to_hit(r: &RXingResult, dx: f32, dy: f32) -> QrHit {
    let payload = match r.getRXingResultMetadata().get(&RXingResultMetadataType::BYTE_SEGMENTS) {
        Some(RXingResultMetadataValue::ByteSegments(segs)) => payload_of(r.getText(), segs),
        _ => r.getText().as_bytes().to_vec(),
    };
    let pts = r.getPoints();
    // Finder pattern centres come as bottom-left, top-left, top-right.
    let (rotation, centre) = if pts.len() >= 3 {
        let (tl, tr, bl) = (pts[1], pts[2], pts[0]);
        let angle = (tr.y - tl.y).atan2(tr.x - tl.x).to_degrees();
        let rotation = (angle + 360.0) % 360.0;
        let cx = (bl.x + tr.x) / 2.0 + dx;
        let cy = (bl.y + tr.y) / 2.0 + dy;
        (rotation, (cx, cy))
    } else {
        (0.0, (dx, dy))
    };
    QrHit { payload, rotation, centre, faint: false }
}

/// The quarter turn (0, 90, 180, 270) nearest to a rotation.
pub fn quarter_turn(rotation: f32) -> u16 {
    (((rotation + 45.0).rem_euclid(360.0) / 90.0) as u16 % 4) * 90
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_turns() {
        assert_eq!(quarter_turn(2.0), 0);
        assert_eq!(quarter_turn(358.0), 0);
        assert_eq!(quarter_turn(93.0), 90);
        assert_eq!(quarter_turn(181.0), 180);
        assert_eq!(quarter_turn(265.0), 270);
    }

    #[test]
    fn blank_and_tiny_pages_have_no_codes() {
        assert!(find_qr_codes(&GrayImage::from_pixel(2480, 3508, image::Luma([250])), &QrSearch::default()).is_empty());
        assert!(find_qr_codes(&GrayImage::new(10, 10), &QrSearch::default()).is_empty());
        let noise = GrayImage::from_fn(600, 800, |x, y| image::Luma([((x * 7919 + y * 104729) % 251) as u8]));
        assert!(find_qr_codes(&noise, &QrSearch { thorough: true, ..Default::default() }).is_empty());
    }

    /// A page with one QR code drawn top right, `module` pixels a module, `ink` on `paper`.
    fn page_with_code(payload: &str, module: u32, ink: u8, paper: u8) -> GrayImage {
        let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M).expect("encodes");
        let n = code.width() as u32;
        let colours = code.to_colors();
        let (x0, y0) = (2480 - 200 - n * module, 150);
        GrayImage::from_fn(2480, 3508, |x, y| {
            let grain = ((x * 7919 + y * 104_729) % 7) as u8;
            let inside = x >= x0 && y >= y0 && x < x0 + n * module && y < y0 + n * module;
            let dark = inside && colours[(((y - y0) / module) * n + (x - x0) / module) as usize] == qrcode::Color::Dark;
            image::Luma([if dark { ink } else { paper } - grain])
        })
    }

    #[test]
    fn a_faint_code_the_bitonal_page_loses_is_read_from_the_grey_page() {
        let payload = "SNE-BT|1|G3533|93|3|17|2026-11-18";
        // Modules 40 grey levels under the paper: below the bitonal page's contrast floor.
        let page = page_with_code(payload, 7, 195, 235);
        let stats = crate::binarize::tile_stats(&page, 300.0);
        let bits = crate::binarize::binarize(&page, &stats, crate::binarize::MIN_CONTRAST);
        assert!(finder_candidates(&bits, 0, 0, 2480, 900).is_empty(), "the bitonal page shows no finder pattern");
        let hits = find_qr_codes_in(&page, &bits, &QrSearch::default());
        assert_eq!(hits.iter().map(|h| h.payload.as_slice()).collect::<Vec<_>>(), [payload.as_bytes()]);
    }

    #[test]
    fn a_small_blurred_code_is_read() {
        let payload = "SNE-AT|1|0930123456789|REN|2026-02-01";
        let sharp = page_with_code(payload, 3, 20, 240);
        let page = image::imageops::blur(&sharp, 1.6);
        let hits = find_qr_codes(&page, &QrSearch::default());
        assert_eq!(hits.iter().map(|h| h.payload.as_slice()).collect::<Vec<_>>(), [payload.as_bytes()]);
    }

    #[test]
    fn a_code_blurred_past_any_binarisation_is_read_module_by_module() {
        let payload = "SNE-FR|1|093052612345678901|MARTIN|Jeanne Louise|1987-03-14|2|5|2026-11-16";
        // Modules of 5 pixels under a blur of 3.2: the finest modules keep a tenth of their contrast.
        let page = image::imageops::blur(&page_with_code(payload, 5, 30, 235), 3.2);
        // As the second look sees the top right window: stretched, then thresholded.
        let window = local_contrast(&page, 1400, 0, 1080, 900);
        let bits = Bitmap { width: 1080, height: 900, ink: window.as_raw().iter().map(|&v| u8::from(v < 128)).collect() };
        let boxes = code_boxes(&finder_candidates(&bits, 0, 0, 1080, 900));
        let corner = boxes.iter().find_map(|b| b.corners.first().copied()).expect("the three finder patterns are seen");
        let (x0, y0, x1, y1) = boxes[0].rect;
        let crop = (x0.max(0.0) as u32, y0.max(0.0) as u32, (x1.min(1080.0) - x0.max(0.0)) as u32, (y1.min(900.0) - y0.max(0.0)) as u32);
        assert!(decode_window(&window, crop.0, crop.1, crop.2, crop.3).is_none(), "the pixels alone do not decode");
        assert!(decode_enlarged(&window, crop.0, crop.1, crop.2, crop.3).is_none(), "nor enlarged");
        let hit = decode_sampled(&window, corner).expect("read module by module");
        assert_eq!(hit.payload, payload.as_bytes());
        let hits = find_qr_codes(&page, &QrSearch::default());
        assert_eq!(hits.iter().map(|h| h.payload.as_slice()).collect::<Vec<_>>(), [payload.as_bytes()]);
        assert_eq!(quarter_turn(hit.rotation), 0);
    }
}
