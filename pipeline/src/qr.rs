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
use rxing::common::HybridBinarizer;
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
}

/// How hard to look.
#[derive(Debug, Clone, Copy)]
pub struct QrSearch {
    /// Share of the page width and height that a corner window covers.
    pub corner_w: f32,
    pub corner_h: f32,
    /// Also search the whole page (at half resolution above 250 dpi) when the corners gave nothing.
    pub thorough: bool,
}

impl Default for QrSearch {
    fn default() -> Self {
        Self { corner_w: 0.36, corner_h: 0.26, thorough: false }
    }
}

/// Finds the QR codes of a page: the first one decoded in each searched window.
pub fn find_qr_codes(page: &GrayImage, search: &QrSearch) -> Vec<QrHit> {
    let (w, h) = page.dimensions();
    if w < 32 || h < 32 {
        return Vec::new();
    }
    let cw = ((w as f32 * search.corner_w) as u32).clamp(16, w);
    let ch = ((h as f32 * search.corner_h) as u32).clamp(16, h);
    // Upright slips have their code top right; upside-down ones bottom left.
    let corners = [(w - cw, 0), (0, h - ch), (0, 0), (w - cw, h - ch)];
    let mut hits = Vec::new();
    for (x, y) in corners {
        if let Some(hit) = decode_window(page, x, y, cw, ch) {
            let known = hits.iter().any(|h: &QrHit| h.payload == hit.payload);
            if !known {
                hits.push(hit);
            }
        }
    }
    if hits.is_empty() && search.thorough {
        if let Some(hit) = decode_window(page, 0, 0, w, h) {
            hits.push(hit);
        }
    }
    hits
}

fn decode_window(page: &GrayImage, x: u32, y: u32, w: u32, h: u32) -> Option<QrHit> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let full = Luma8Source::new_with_slice(page.as_raw(), page.width(), page.height()).ok()?;
        let view = full.crop(x as usize, y as usize, w as usize, h as usize).ok()?;
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(view));
        let hints = DecodeHints {
            TryHarder: Some(true),
            PossibleFormats: Some(HashSet::from([BarcodeFormat::QR_CODE])),
            ..Default::default()
        };
        QrReader
            .decode_with_hints(&mut bitmap, &hints)
            .or_else(|_| QRCodeReader.decode_with_hints(&mut bitmap, &hints))
            .ok()
    }));
    let r = result.ok().flatten()?;
    Some(to_hit(&r, x as f32, y as f32))
}

fn to_hit(r: &RXingResult, dx: f32, dy: f32) -> QrHit {
    let payload = match r.getRXingResultMetadata().get(&RXingResultMetadataType::BYTE_SEGMENTS) {
        Some(RXingResultMetadataValue::ByteSegments(segs)) if !segs.is_empty() => segs.concat(),
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
    QrHit { payload, rotation, centre }
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
}
