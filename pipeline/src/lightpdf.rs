//! Light PDFs: each piece as small as legibility allows.
//!
//! Text pages are stored bitonal in CCITT Group 4 at the scan's resolution (lossless on the
//! binarised page; a lossy symbol-substituting coder such as JBIG2 "pattern matching" is never
//! used: it swaps digits). Photographs, identity cards, colour forms and faint print are stored
//! as JPEG at 200 dpi (150 lost a point or more of OCR word accuracy on small print in photos:
//! see the pipeline benchmark), grey unless the page carries colour. The PDF is written by hand: a few
//! objects per page, deterministic bytes (no dates), A4 media boxes for A4 scans.

use std::fmt::Write as _;
use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use crate::binarize::Bitmap;
use crate::raster::PageRaster;

/// What a page holds, which decides how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageContent {
    /// Text and line art on paper: bitonal.
    Text,
    /// Photographs, halftones or faint print: grey JPEG.
    Photo,
    /// Colour that carries information: colour JPEG.
    Colour,
}

#[derive(Debug, Clone, Copy)]
pub struct EncodeParams {
    /// Resolution of JPEG-stored pages.
    pub picture_dpi: f32,
    pub jpeg_quality: u8,
}

impl Default for EncodeParams {
    fn default() -> Self {
        Self { picture_dpi: 200.0, jpeg_quality: 55 }
    }
}

/// How the bytes of an encoded page are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCodec {
    CcittG4,
    JpegGray,
    JpegRgb,
}

/// One page ready to be placed in a piece's PDF.
#[derive(Debug, Clone)]
pub struct EncodedPage {
    pub codec: PageCodec,
    pub width: u32,
    pub height: u32,
    /// Page size in PDF points.
    pub page_w_pt: f32,
    pub page_h_pt: f32,
    pub data: Vec<u8>,
}

const A4_PT: (f32, f32) = (595.276, 841.89);

/// The media box of a page scanned at `dpi`: exactly A4 when within 3 % of it.
fn page_size_pt(w: u32, h: u32, dpi: f32) -> (f32, f32) {
    let (pw, ph) = (w as f32 * 72.0 / dpi, h as f32 * 72.0 / dpi);
    let near = |a: f32, b: f32| (a - b).abs() / b < 0.03;
    if near(pw, A4_PT.0) && near(ph, A4_PT.1) {
        A4_PT
    } else if near(pw, A4_PT.1) && near(ph, A4_PT.0) {
        (A4_PT.1, A4_PT.0)
    } else {
        (pw, ph)
    }
}

/// Encodes a page: G4 from the binarised bits for text, JPEG for pictures.
pub fn encode_page(raster: &PageRaster, bits: &Bitmap, content: PageContent, params: &EncodeParams) -> EncodedPage {
    let (pw, ph) = page_size_pt(raster.width(), raster.height(), raster.dpi);
    match content {
        PageContent::Text => EncodedPage {
            codec: PageCodec::CcittG4,
            width: bits.width,
            height: bits.height,
            page_w_pt: pw,
            page_h_pt: ph,
            data: encode_g4(bits),
        },
        PageContent::Photo | PageContent::Colour => {
            let scale = (params.picture_dpi / raster.dpi).min(1.0);
            let (data, w, h, codec) = match (&raster.rgb, content) {
                (Some(rgb), PageContent::Colour) => {
                    let img = downscale_rgb(rgb, scale);
                    let (w, h) = img.dimensions();
                    (jpeg(DynamicImage::ImageRgb8(img), params.jpeg_quality), w, h, PageCodec::JpegRgb)
                }
                _ => {
                    let img = downscale_gray(&raster.gray, scale);
                    let (w, h) = img.dimensions();
                    (jpeg(DynamicImage::ImageLuma8(img), params.jpeg_quality), w, h, PageCodec::JpegGray)
                }
            };
            EncodedPage { codec, width: w, height: h, page_w_pt: pw, page_h_pt: ph, data }
        }
    }
}

/// CCITT Group 4 (T.6) of a bitonal page, as PDF reads it with `/K -1` and `/BlackIs1 false`.
pub fn encode_g4(bits: &Bitmap) -> Vec<u8> {
    let width = u16::try_from(bits.width).unwrap_or(u16::MAX);
    let mut enc = fax::encoder::Encoder::new(fax::VecWriter::new());
    for y in 0..bits.height {
        let row = bits.row(y);
        let pels = row.iter().take(width as usize).map(|&b| if b == 1 { fax::Color::Black } else { fax::Color::White });
        // VecWriter never fails.
        let _ = enc.encode_line(pels, width);
    }
    match enc.finish() {
        Ok(w) => w.finish(),
        Err(_) => Vec::new(),
    }
}

/// Decodes CCITT Group 4 data (`/BlackIs1 false`) into a grey page, 0 for black. None when the
/// data is damaged or ends before the last row.
pub fn decode_g4(data: &[u8], width: u32, height: u32) -> Option<GrayImage> {
    let (w16, h16) = (u16::try_from(width).ok()?, u16::try_from(height).ok()?);
    let (w, h) = (width as usize, height as usize);
    let mut g = GrayImage::new(width, height);
    let raw: &mut [u8] = &mut g;
    let mut y = 0usize;
    fax::decoder::decode_g4(data.iter().copied(), w16, Some(h16), |transitions| {
        if y < h {
            let row = &mut raw[y * w..(y + 1) * w];
            for (x, c) in fax::decoder::pels(transitions, w16).enumerate().take(w) {
                row[x] = if c == fax::Color::Black { 0 } else { 255 };
            }
        }
        y += 1;
    })?;
    (y >= h).then_some(g)
}

fn jpeg(img: DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    // Encoding into memory cannot fail for 8-bit grey or RGB.
    let _ = img.write_with_encoder(enc);
    out
}

/// Box-filter downscale (exact halving when the ratio is 1/2: the common 300 → 150 dpi).
pub fn downscale_gray(img: &GrayImage, scale: f32) -> GrayImage {
    if scale >= 0.99 {
        return img.clone();
    }
    if (scale - 0.5).abs() < 0.01 {
        let (w, h) = (img.width() / 2, img.height() / 2);
        let src = img.as_raw();
        let sw = img.width() as usize;
        return GrayImage::from_fn(w, h, |x, y| {
            let (x, y) = (2 * x as usize, 2 * y as usize);
            let s = src[y * sw + x] as u32 + src[y * sw + x + 1] as u32 + src[(y + 1) * sw + x] as u32 + src[(y + 1) * sw + x + 1] as u32;
            image::Luma([((s + 2) / 4) as u8])
        });
    }
    let (w, h) = (((img.width() as f32 * scale) as u32).max(1), ((img.height() as f32 * scale) as u32).max(1));
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

fn downscale_rgb(img: &RgbImage, scale: f32) -> RgbImage {
    if scale >= 0.99 {
        return img.clone();
    }
    if (scale - 0.5).abs() < 0.01 {
        let (w, h) = (img.width() / 2, img.height() / 2);
        let src = img.as_raw();
        let sw = img.width() as usize * 3;
        return RgbImage::from_fn(w, h, |x, y| {
            let (x, y) = (6 * x as usize, 2 * y as usize);
            let px = |c: usize| {
                let s = src[y * sw + x + c] as u32 + src[y * sw + x + 3 + c] as u32 + src[(y + 1) * sw + x + c] as u32 + src[(y + 1) * sw + x + 3 + c] as u32;
                ((s + 2) / 4) as u8
            };
            image::Rgb([px(0), px(1), px(2)])
        });
    }
    let (w, h) = (((img.width() as f32 * scale) as u32).max(1), ((img.height() as f32 * scale) as u32).max(1));
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// Re-encodes a JPEG page smaller (to bring a piece under the size limit). G4 pages are kept.
pub fn shrink_page(page: &EncodedPage, scale: f32, quality: u8) -> EncodedPage {
    let decoded = match page.codec {
        PageCodec::CcittG4 => return page.clone(),
        _ => image::load_from_memory_with_format(&page.data, ImageFormat::Jpeg),
    };
    let Ok(img) = decoded else { return page.clone() };
    let (w, h) = (((img.width() as f32 * scale) as u32).max(1), ((img.height() as f32 * scale) as u32).max(1));
    let small = img.resize_exact(w, h, image::imageops::FilterType::Triangle);
    let data = jpeg(small, quality);
    EncodedPage { width: w, height: h, data, ..page.clone() }
}

/// Writes the pages as one PDF. Deterministic: the same pages give the same bytes.
pub fn write_pdf(pages: &[&EncodedPage], title: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(pages.iter().map(|p| p.data.len() + 600).sum::<usize>() + 1024);
    let mut offsets: Vec<usize> = Vec::new();
    out.extend_from_slice(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 info, then per page: page, content, image.
    let page_obj = |i: usize| 4 + 3 * i;
    let obj = |out: &mut Vec<u8>, offsets: &mut Vec<usize>, body: &[u8]| {
        offsets.push(out.len());
        let id = offsets.len();
        out.extend_from_slice(format!("{id} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    obj(&mut out, &mut offsets, b"<< /Type /Catalog /Pages 2 0 R >>");
    let mut kids = String::new();
    for i in 0..n {
        let _ = write!(kids, "{} 0 R ", page_obj(i));
    }
    obj(&mut out, &mut offsets, format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.trim_end()).as_bytes());
    obj(&mut out, &mut offsets, format!("<< /Producer (scanbureau) /Title ({}) >>", pdf_string(title)).as_bytes());
    for (i, p) in pages.iter().enumerate() {
        let (content_id, image_id) = (page_obj(i) + 1, page_obj(i) + 2);
        obj(
            &mut out,
            &mut offsets,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {:.2} {:.2}] /Resources << /XObject << /Im0 {image_id} 0 R >> >> /Contents {content_id} 0 R >>",
                p.page_w_pt, p.page_h_pt
            )
            .as_bytes(),
        );
        let content = format!("q {:.2} 0 0 {:.2} 0 0 cm /Im0 Do Q", p.page_w_pt, p.page_h_pt);
        obj(&mut out, &mut offsets, format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).as_bytes());
        let dict = match p.codec {
            PageCodec::CcittG4 => format!(
                "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms << /K -1 /Columns {w} /Rows {h} /BlackIs1 false >> /Length {len} >>",
                w = p.width,
                h = p.height,
                len = p.data.len()
            ),
            PageCodec::JpegGray | PageCodec::JpegRgb => format!(
                "<< /Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /{} /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>",
                p.width,
                p.height,
                if p.codec == PageCodec::JpegRgb { "DeviceRGB" } else { "DeviceGray" },
                p.data.len()
            ),
        };
        let mut body = dict.into_bytes();
        body.extend_from_slice(b"\nstream\n");
        body.extend_from_slice(&p.data);
        body.extend_from_slice(b"\nendstream");
        obj(&mut out, &mut offsets, &body);
    }
    let xref_at = out.len();
    let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1);
    for off in &offsets {
        let _ = writeln!(xref, "{off:010} 00000 n ");
    }
    let _ = write!(xref, "trailer\n<< /Size {} /Root 1 0 R /Info 3 0 R >>\nstartxref\n{xref_at}\n%%EOF\n", offsets.len() + 1);
    out.extend_from_slice(xref.as_bytes());
    out
}

fn pdf_string(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).flat_map(|c| match c {
        '(' | ')' | '\\' => vec!['\\', c],
        c => vec![c],
    }).collect()
}

/// Decodes a piece page back to pixels (tests and benchmarks compare it with the scan).
pub fn decode_encoded(page: &EncodedPage) -> Option<GrayImage> {
    match page.codec {
        PageCodec::CcittG4 => decode_g4(&page.data, page.width, page.height),
        _ => image::load(Cursor::new(&page.data), ImageFormat::Jpeg).ok().map(|i| i.into_luma8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g4_round_trips_exactly() {
        let (w, h) = (333u32, 120u32);
        let ink: Vec<u8> = (0..w * h).map(|i| (((i % w) / 7 + (i / w) / 5) % 3 == 0) as u8).collect();
        let bits = Bitmap { width: w, height: h, ink: ink.clone() };
        let page = EncodedPage { codec: PageCodec::CcittG4, width: w, height: h, page_w_pt: 100.0, page_h_pt: 100.0, data: encode_g4(&bits) };
        let back = decode_encoded(&page).expect("decodes");
        let again: Vec<u8> = back.as_raw().iter().map(|&v| (v == 0) as u8).collect();
        assert_eq!(again, ink);
    }

    #[test]
    fn pdf_structure_is_sound_and_deterministic() {
        let bits = Bitmap { width: 2480, height: 3508, ink: vec![0; 2480 * 3508] };
        let raster = PageRaster::from_gray(GrayImage::from_pixel(2480, 3508, image::Luma([255])), false);
        let p = encode_page(&raster, &bits, PageContent::Text, &EncodeParams::default());
        assert_eq!((p.page_w_pt, p.page_h_pt), A4_PT);
        let pdf = write_pdf(&[&p, &p], "piece (test)");
        assert_eq!(pdf, write_pdf(&[&p, &p], "piece (test)"));
        let doc = lopdf::Document::load_mem(&pdf).expect("lopdf reads what we write");
        assert_eq!(doc.get_pages().len(), 2);
        // The xref offsets point at the objects.
        let text = String::from_utf8_lossy(&pdf[15..]);
        let xref = text.find("\nxref\n").expect("xref") + 1;
        let first = text[xref..].lines().nth(3).expect("entry");
        let off: usize = first[..10].parse().expect("offset");
        assert!(pdf[off..].starts_with(b"1 0 obj"));
    }

    #[test]
    fn grey_pictures_are_stored_at_200_dpi() {
        let raster = PageRaster::from_gray(GrayImage::from_fn(2480, 3508, |x, y| image::Luma([((x / 3 + y / 5) % 200) as u8 + 30])), false);
        let bits = Bitmap { width: 2480, height: 3508, ink: vec![0; 2480 * 3508] };
        let p = encode_page(&raster, &bits, PageContent::Photo, &EncodeParams::default());
        assert_eq!((p.codec, p.width, p.height), (PageCodec::JpegGray, 1653, 2338));
        let small = shrink_page(&p, 0.5, 40);
        assert_eq!(small.width, 826);
        assert!(small.data.len() < p.data.len());
    }
}
