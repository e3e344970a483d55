//! JBIG2 generic region coding (ITU-T T.88, 6.2 and Annex E) of a bitonal page: lossless, as
//! PDF's `/JBIG2Decode` reads it in the embedded organisation (a page information segment and
//! one immediate lossless generic region, no file header, no globals).
//!
//! Each pixel is coded by the MQ arithmetic coder in the context of the 16 pixels before it
//! (template 0, its adaptive pixels where the standard puts them), so the coder learns the
//! page's print. This is the generic region alone: no symbol dictionary, no "pattern
//! matching and substitution", which is what turns a 6 into an 8. On text it takes fewer bytes
//! than CCITT G4, which codes the same pixels by run lengths with fixed tables.

use image::GrayImage;

use crate::binarize::Bitmap;

/// Probability states of the MQ coder (T.88 Table E.1): Qe, next state after the more
/// probable symbol, after the less probable one, whether the less probable swaps the two.
const STATES: [(u32, u8, u8, bool); 47] = [
    (0x5601, 1, 1, true),
    (0x3401, 2, 6, false),
    (0x1801, 3, 9, false),
    (0x0AC1, 4, 12, false),
    (0x0521, 5, 29, false),
    (0x0221, 38, 33, false),
    (0x5601, 7, 6, true),
    (0x5401, 8, 14, false),
    (0x4801, 9, 14, false),
    (0x3801, 10, 14, false),
    (0x3001, 11, 17, false),
    (0x2401, 12, 18, false),
    (0x1C01, 13, 20, false),
    (0x1601, 29, 21, false),
    (0x5601, 15, 14, true),
    (0x5401, 16, 14, false),
    (0x5101, 17, 15, false),
    (0x4801, 18, 16, false),
    (0x3801, 19, 17, false),
    (0x3401, 20, 18, false),
    (0x3001, 21, 19, false),
    (0x2801, 22, 19, false),
    (0x2401, 23, 20, false),
    (0x2201, 24, 21, false),
    (0x1C01, 25, 22, false),
    (0x1801, 26, 23, false),
    (0x1601, 27, 24, false),
    (0x1401, 28, 25, false),
    (0x1201, 29, 26, false),
    (0x1101, 30, 27, false),
    (0x0AC1, 31, 28, false),
    (0x09C1, 32, 29, false),
    (0x08A1, 33, 30, false),
    (0x0521, 34, 31, false),
    (0x0441, 35, 32, false),
    (0x02A1, 36, 33, false),
    (0x0221, 37, 34, false),
    (0x0141, 38, 35, false),
    (0x0111, 39, 36, false),
    (0x0085, 40, 37, false),
    (0x0049, 41, 38, false),
    (0x0025, 42, 39, false),
    (0x0015, 43, 40, false),
    (0x0009, 44, 41, false),
    (0x0005, 45, 42, false),
    (0x0001, 45, 43, false),
    (0x5601, 46, 46, false),
];

/// The MQ encoder (T.88 E.2). `out[0]` is the byte before the stream that the procedures
/// assume; it never takes a carry (the first byte out leaves C under 2^27) and is dropped.
struct MqEncoder {
    a: u32,
    c: u32,
    ct: u32,
    out: Vec<u8>,
}

/// A context's state: index into [`STATES`] in the low 7 bits, the more probable symbol in bit 7.
type Context = u8;

impl MqEncoder {
    fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 1);
        out.push(0);
        Self { a: 0x8000, c: 0, ct: 12, out }
    }

    #[inline(always)]
    fn encode(&mut self, cx: &mut Context, bit: u8) {
        let (qe, nmps, nlps, switch) = STATES[usize::from(*cx & 0x7F)];
        let mps = *cx >> 7;
        self.a -= qe;
        if bit == mps {
            if self.a & 0x8000 != 0 {
                self.c += qe;
                return;
            }
            if self.a < qe {
                self.a = qe;
            } else {
                self.c += qe;
            }
            *cx = (mps << 7) | nmps;
        } else {
            if self.a < qe {
                self.c += qe;
            } else {
                self.a = qe;
            }
            let mps = if switch { 1 - mps } else { mps };
            *cx = (mps << 7) | nlps;
        }
        self.renormalise();
    }

    /// `n` white pixels in the all-white context: as `n` calls of [`Self::encode`], but the
    /// stretch where the interval stays at least half is one subtraction (most of a page).
    fn encode_white_run(&mut self, cx: &mut Context, mut n: usize) {
        while n > 0 {
            let qe = STATES[usize::from(*cx & 0x7F)].0;
            let room = ((self.a - 0x8000) / qe) as usize;
            if *cx >> 7 == 0 && room > 0 {
                let t = room.min(n);
                self.a -= t as u32 * qe;
                self.c += t as u32 * qe;
                n -= t;
            } else {
                self.encode(cx, 0);
                n -= 1;
            }
        }
    }

    #[inline(always)]
    fn renormalise(&mut self) {
        loop {
            self.a <<= 1;
            self.c <<= 1;
            self.ct -= 1;
            if self.ct == 0 {
                self.byte_out();
            }
            if self.a & 0x8000 != 0 {
                break;
            }
        }
    }

    fn byte_out(&mut self) {
        let last = self.out.len() - 1;
        if self.out[last] == 0xFF {
            self.emit_7();
        } else if self.c < 0x800_0000 {
            self.emit_8();
        } else {
            self.out[last] += 1;
            if self.out[last] == 0xFF {
                self.c &= 0x7FF_FFFF;
                self.emit_7();
            } else {
                self.emit_8();
            }
        }
    }

    /// After a 0xFF, seven bits only: the bit stuffed keeps the decoder from reading a marker.
    fn emit_7(&mut self) {
        self.out.push((self.c >> 20) as u8);
        self.c &= 0xF_FFFF;
        self.ct = 7;
    }

    fn emit_8(&mut self) {
        self.out.push((self.c >> 19) as u8);
        self.c &= 0x7_FFFF;
        self.ct = 8;
    }

    /// FLUSH (E.2.9), then the 0xFF 0xAC that ends arithmetically coded data.
    fn finish(mut self) -> Vec<u8> {
        let top = self.c + self.a;
        self.c |= 0xFFFF;
        if self.c >= top {
            self.c -= 0x8000;
        }
        self.c <<= self.ct;
        self.byte_out();
        self.c <<= self.ct;
        self.byte_out();
        if self.out.last() != Some(&0xFF) {
            self.out.push(0xFF);
        }
        self.out.push(0xAC);
        self.out.remove(0);
        self.out
    }
}

/// The generic region's pixels coded with template 0 and its default adaptive pixels
/// (A1 = (3, −1), A2 = (−3, −1), A3 = (2, −2), A4 = (−2, −2)), without typical prediction.
fn code_generic(bits: &Bitmap) -> Vec<u8> {
    let (w, h) = (bits.width as usize, bits.height as usize);
    debug_assert_eq!(bits.ink.len(), w * h, "a bitmap of its size");
    let mut contexts = vec![0 as Context; 1 << 16];
    let mut mq = MqEncoder::new(w * h / 64);
    // The two rows above, white past the page's right edge and above its top.
    let mut up2 = vec![0u8; w + 5];
    let mut up1 = vec![0u8; w + 5];
    for row in bits.ink.chunks_exact(w.max(1)).take(h) {
        // Windows at x: row y−2 over x−2..=x+2, row y−1 over x−3..=x+3, row y over x−4..=x−1.
        let mut r2 = u32::from(up2[0]) << 2 | u32::from(up2[1]) << 1 | u32::from(up2[2]);
        let mut r1 = u32::from(up1[0]) << 3 | u32::from(up1[1]) << 2 | u32::from(up1[2]) << 1 | u32::from(up1[3]);
        let mut r0 = 0u32;
        let mut x = 0;
        while x < w {
            let cx = (r2 << 11) | (r1 << 4) | r0;
            let bit = row[x] & 1;
            if cx == 0 && bit == 0 {
                // White with white all around, as far as every pixel entering the windows is
                // white: the windows stay empty.
                let n = white_together(&row[x..], &up1[x + 4..], &up2[x + 3..]);
                if n > 0 {
                    mq.encode_white_run(&mut contexts[0], n);
                    x += n;
                    continue;
                }
            }
            mq.encode(&mut contexts[cx as usize], bit);
            r2 = ((r2 << 1) | u32::from(up2[x + 3])) & 0x1F;
            r1 = ((r1 << 1) | u32::from(up1[x + 4])) & 0x7F;
            r0 = ((r0 << 1) | u32::from(bit)) & 0xF;
            x += 1;
        }
        std::mem::swap(&mut up2, &mut up1);
        up1[..w].iter_mut().zip(row).for_each(|(u, &p)| *u = p & 1);
    }
    mq.finish()
}

/// How many pixels from the start are white in all three rows, read side by side (up to the
/// shortest): the time taken is the run's, whatever lies beyond it.
fn white_together(a: &[u8], b: &[u8], c: &[u8]) -> usize {
    let len = a.len().min(b.len()).min(c.len());
    let word = |s: &[u8], i: usize| u64::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3], s[i + 4], s[i + 5], s[i + 6], s[i + 7]]);
    let mut i = 0;
    while i + 8 <= len && (word(a, i) | word(b, i) | word(c, i)) & 0x0101_0101_0101_0101 == 0 {
        i += 8;
    }
    while i < len && (a[i] | b[i] | c[i]) & 1 == 0 {
        i += 1;
    }
    i
}

fn segment(out: &mut Vec<u8>, number: u32, kind: u8, data: &[u8]) {
    out.extend_from_slice(&number.to_be_bytes());
    out.push(kind); // page association in one byte, not deferred
    out.push(0); // refers to no segment
    out.push(1); // page 1
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// A bitonal page (1 = ink) as a JBIG2 embedded stream for `/JBIG2Decode`.
pub fn encode(bits: &Bitmap) -> Vec<u8> {
    let (w, h) = (bits.width.to_be_bytes(), bits.height.to_be_bytes());
    let mut page = Vec::with_capacity(19);
    page.extend_from_slice(&w);
    page.extend_from_slice(&h);
    page.extend_from_slice(&[0; 8]); // resolution unknown: the PDF page says the size
    page.push(0x01); // eventually lossless, white by default, combined by OR
    page.extend_from_slice(&[0, 0]); // not striped
    let coded = code_generic(bits);
    let mut region = Vec::with_capacity(26 + coded.len());
    region.extend_from_slice(&w);
    region.extend_from_slice(&h);
    region.extend_from_slice(&[0; 8]); // at the page's top left
    region.push(0); // combined by OR
    region.push(0); // arithmetic coding, template 0, no typical prediction
    region.extend_from_slice(&[3, 0xFF, 0xFD, 0xFF, 2, 0xFE, 0xFE, 0xFE]);
    region.extend_from_slice(&coded);
    let mut out = Vec::with_capacity(page.len() + region.len() + 22);
    segment(&mut out, 0, 48, &page);
    segment(&mut out, 1, 39, &region);
    out
}

/// Whether a JBIG2 embedded stream's segments read strictly, whole, for a page of `width` ×
/// `height`: the check [`decode`] makes before decoding, without decoding.
pub fn reads_at(data: &[u8], width: u32, height: u32) -> bool {
    page_at(data, width, height).is_some()
}

fn page_at(data: &[u8], width: u32, height: u32) -> Option<hayro_jbig2::Page<'_>> {
    let page = hayro_jbig2::Page::new_embedded(data, None, &hayro_jbig2::DecodeSettings { strict: true }).ok()?;
    ((page.width(), page.height()) == (width, height)).then_some(page)
}

/// Decodes a JBIG2 embedded stream (no globals) into a grey page, 0 for black, as a viewer
/// draws it. None when the data is not of the size expected or breaks off: read strictly, as a
/// lenient reader stops at a segment cut short and draws the page white.
pub fn decode(data: &[u8], width: u32, height: u32) -> Option<GrayImage> {
    struct Rows {
        pixels: Vec<u8>,
    }
    impl hayro_jbig2::Decoder for Rows {
        fn push_pixel(&mut self, black: bool) {
            self.pixels.push(if black { 0 } else { 255 });
        }
        fn push_pixel_chunk(&mut self, black: bool, chunk_count: u32) {
            let n = self.pixels.len() + 8 * chunk_count as usize;
            self.pixels.resize(n, if black { 0 } else { 255 });
        }
        fn next_line(&mut self) {}
    }
    let page = page_at(data, width, height)?;
    let mut rows = Rows { pixels: Vec::with_capacity(width as usize * height as usize) };
    page.decode(&mut rows).ok()?;
    rows.pixels.truncate(width as usize * height as usize);
    GrayImage::from_raw(width, height, rows.pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightpdf::encode_g4;

    fn bitmap(width: u32, height: u32, f: impl Fn(u32, u32) -> bool) -> Bitmap {
        let ink = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| u8::from(f(x, y))).collect();
        Bitmap { width, height, ink }
    }

    fn same_pixels(bits: &Bitmap, drawn: &GrayImage) -> bool {
        bits.ink.iter().zip(drawn.as_raw()).all(|(&i, &v)| (i == 1) == (v == 0)) && drawn.as_raw().len() == bits.ink.len()
    }

    /// Lines of letter-like strokes at 300 dpi: what a page of print is to a bitonal coder.
    fn print_page(width: u32, height: u32) -> Bitmap {
        bitmap(width, height, |x, y| {
            let (line, in_line) = (y / 50, y % 50);
            let letter = x / 24;
            let seed = (line.wrapping_mul(7919) ^ letter.wrapping_mul(104_729)).wrapping_mul(2_654_435_761) >> 24;
            let (lx, ly) = (x % 24, in_line);
            (100..width - 100).contains(&x)
                && (10..40).contains(&ly)
                && seed % 7 != 0
                && match seed % 4 {
                    0 => (3..7).contains(&lx),
                    1 => (3..7).contains(&lx) || (ly % 15 < 4 && lx < 18),
                    2 => (lx as i32 - 10).abs() + (ly as i32 - 25).abs() / 2 < 9 && (lx as i32 - 10).abs() + (ly as i32 - 25).abs() / 2 > 5,
                    _ => (ly + lx) % 20 < 5 && lx < 18,
                }
        })
    }

    #[test]
    fn a_page_comes_back_pixel_for_pixel_in_fewer_bytes_than_g4() {
        let page = print_page(1240, 1754);
        let coded = encode(&page);
        let drawn = decode(&coded, page.width, page.height).expect("decodes");
        assert!(same_pixels(&page, &drawn), "the page is not drawn as coded");
        let g4 = encode_g4(&page).len();
        assert!(coded.len() * 10 < g4 * 9, "JBIG2 {} bytes against G4 {g4}", coded.len());
    }

    /// Template 0 as T.88 draws it, pixel by pixel from the bitmap: the coder's windows and its
    /// white runs must give exactly these bytes.
    fn coded_pixel_by_pixel(bits: &Bitmap) -> Vec<u8> {
        let (w, h) = (bits.width as i64, bits.height as i64);
        let px = |x: i64, y: i64| -> u32 { if x < 0 || y < 0 || x >= w { 0 } else { u32::from(bits.ink[(y * w + x) as usize] & 1) } };
        let template: [(i64, i64); 16] = [
            (-2, -2),
            (-1, -2),
            (0, -2),
            (1, -2),
            (2, -2),
            (-3, -1),
            (-2, -1),
            (-1, -1),
            (0, -1),
            (1, -1),
            (2, -1),
            (3, -1),
            (-4, 0),
            (-3, 0),
            (-2, 0),
            (-1, 0),
        ];
        let mut contexts = vec![0 as Context; 1 << 16];
        let mut mq = MqEncoder::new(0);
        for y in 0..h {
            for x in 0..w {
                let cx = template.iter().fold(0u32, |cx, &(dx, dy)| (cx << 1) | px(x + dx, y + dy));
                mq.encode(&mut contexts[cx as usize], px(x, y) as u8);
            }
        }
        mq.finish()
    }

    #[test]
    fn white_runs_code_the_bytes_of_pixel_by_pixel() {
        let pages = [
            print_page(640, 400),
            bitmap(300, 40, |x, y| x == 299 || y == 39 || (x + 3 * y) % 97 == 0),
            bitmap(90, 90, |x, y| (x / 30 + y / 30) % 2 == 1),
            bitmap(5000, 3, |x, _| x == 4000),
            // Sparse ink above long white rows: runs cut short by the rows above.
            bitmap(3000, 6, |x, y| y % 3 == 0 && x % 5 == 0),
        ];
        for bits in &pages {
            assert!(code_generic(bits) == coded_pixel_by_pixel(bits), "{}×{} coded otherwise", bits.width, bits.height);
        }
    }

    #[test]
    fn odd_sizes_noise_and_solid_pages_come_back_exactly() {
        let noise = |x: u32, y: u32| (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(2_246_822_519)).wrapping_mul(3_266_489_917) >> 31 == 1;
        let cases = [
            bitmap(1, 1, |_, _| true),
            bitmap(1, 1, |_, _| false),
            bitmap(1, 300, |_, y| y % 3 == 0),
            bitmap(300, 1, |x, _| x % 5 < 2),
            bitmap(3, 2, |x, y| (x + y) % 2 == 0),
            bitmap(201, 97, noise),
            bitmap(64, 64, |_, _| true),
            bitmap(640, 480, |_, _| false),
            // Runs of 0xFF bytes out of the coder: every pixel its less probable symbol.
            bitmap(257, 33, |x, y| (x / 3 + y) % 2 == 0),
        ];
        for bits in &cases {
            let coded = encode(bits);
            let drawn = decode(&coded, bits.width, bits.height).unwrap_or_else(|| panic!("{}×{} decodes", bits.width, bits.height));
            assert!(same_pixels(bits, &drawn), "{}×{} drawn otherwise", bits.width, bits.height);
            assert_eq!(coded, encode(bits), "the same page, the same bytes");
        }
    }

    #[test]
    fn damaged_or_mismatched_data_is_none_not_a_panic() {
        let page = print_page(300, 200);
        let coded = encode(&page);
        assert!(decode(&coded, 301, 200).is_none(), "a size the stream does not have");
        // Cut anywhere but between its two segments (the page information alone is a white page).
        for cut in [0, 5, 11, 29, 35, 50, coded.len() / 2, coded.len() - 3] {
            assert!(decode(&coded[..cut], 300, 200).is_none(), "cut at {cut} of {} bytes", coded.len());
        }
        for i in (0..coded.len()).step_by(7) {
            let mut bad = coded.clone();
            bad[i] ^= 0x5A;
            let _ = decode(&bad, 300, 200);
        }
    }
}
