//! Decoding one page into pixels, under limits (decompression bombs, enormous scans).
//!
//! A page arrives as a [`PageBlob`]: still-encoded bytes cut out of its file by [`crate::input`].
//! Pages are decoded one at a time and dropped after encoding, so a 1,000-page mailing never holds
//! all of its pages decoded at once.

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use thiserror::Error;

use crate::reason::ReasonCode;

/// The professional portal's limit per uploaded file (DOMAIN.md): a larger file never came
/// through the portal, whoever hands it to the job.
pub const PORTAL_FILE_BYTES: u64 = 18_000_000;

/// Bounds on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_pages_per_file: usize,
    /// Largest page accepted, in pixels (a 600-dpi A3 page is about 70 Mpx).
    pub max_page_pixels: u64,
    /// Largest decompressed stream of a PDF.
    pub max_decompressed_bytes: usize,
}

impl Limits {
    /// The limits of a channel: the portal's files are bounded by the portal's own limit.
    pub fn for_channel(channel: crate::mailing::Channel) -> Self {
        match channel {
            crate::mailing::Channel::Portal => Self { max_file_bytes: PORTAL_FILE_BYTES, ..Self::default() },
            _ => Self::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_file_bytes: 256 << 20, max_pages_per_file: 5_000, max_page_pixels: 80_000_000, max_decompressed_bytes: 256 << 20 }
    }
}

/// A page decoded into pixels. `gray` is always there; `rgb` only when the page carries colour.
#[derive(Debug, Clone)]
pub struct PageRaster {
    pub gray: GrayImage,
    pub rgb: Option<RgbImage>,
    /// Resolution of the scan, estimated from the page size when the file does not say.
    pub dpi: f32,
    /// The text the page carries (a PDF's text layer), when it has one.
    pub text_layer: Option<crate::pdftext::TextLayer>,
    /// The source was already bitonal (1-bit TIFF, CCITT in a PDF).
    pub bilevel: bool,
    /// Share of the page, as decoded, in blue or violet ink (a stamp or signature in wet ink),
    /// measured before a page with too little colour to keep is made grey.
    pub wet_ink: f32,
    /// The JPEG file the page was decoded from, while its pixels are still the file's (an
    /// enlargement aside): every correction that changes them drops it.
    pub sent: Option<SentJpeg>,
    /// The born-digital PDF page the pixels were drawn from, while they are still its drawing
    /// (every correction that changes them drops it): a piece may show the page as it was sent.
    pub vector: Option<Arc<crate::vector_page::VectorPage>>,
}

/// A JPEG file as it was sent, which a light PDF can hold as it is (`/DCTDecode`) when that
/// is lighter than encoding its pixels again: the same pixels, no second loss (see
/// `lightpdf::store_page`). Only what every PDF reader draws as an image viewer does: 8-bit
/// baseline or progressive, grey or YCbCr, shown the way up it is stored (no EXIF turn).
#[derive(Debug, Clone)]
pub struct SentJpeg {
    pub data: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
    pub colour: bool,
}

impl SentJpeg {
    /// Reads the file's frame header; None when a PDF reader could draw it otherwise than an
    /// image viewer does: arithmetic or lossless coding, 12 bits, CMYK, or three components
    /// that may not be YCbCr (an Adobe marker, components named R, G, B).
    pub fn of(data: &Arc<Vec<u8>>) -> Option<Self> {
        let mut adobe = false;
        let mut frame = None;
        for s in crate::jpeg_huffman::segments_to_scan(data.as_slice())? {
            match s.marker {
                0xEE if s.body.starts_with(b"Adobe") => adobe = true,
                0xC0..=0xC2 => {
                    let (&[precision, h0, h1, w0, w1, n], rest) = s.body.split_first_chunk::<6>()?;
                    let ids: Vec<u8> = rest.chunks_exact(3).take(usize::from(n)).map(|c| c[0]).collect();
                    if precision != 8 || !(n == 1 || (n == 3 && ids != b"RGB")) {
                        return None;
                    }
                    frame = Some((u32::from(u16::from_be_bytes([w0, w1])), u32::from(u16::from_be_bytes([h0, h1])), n == 3));
                }
                0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                _ => {}
            }
        }
        let (width, height, colour) = frame?;
        (width > 0 && height > 0 && !(colour && adobe)).then(|| Self { data: data.clone(), width, height, colour })
    }
}

impl PageRaster {
    pub fn from_gray(gray: GrayImage, bilevel: bool) -> Self {
        let dpi = estimate_dpi(gray.width(), gray.height());
        Self { gray, rgb: None, dpi, bilevel, text_layer: None, wet_ink: 0.0, sent: None, vector: None }
    }

    /// Keeps the colour only when the page really carries some (a grey page scanned in colour
    /// is stored grey); its blue and violet ink is measured first (see [`Self::wet_ink`]).
    pub fn from_rgb(rgb: RgbImage) -> Self {
        let gray = luma_of(&rgb);
        let dpi = estimate_dpi(rgb.width(), rgb.height());
        let (colourful, wet_ink) = colour_of(&rgb, true);
        let rgb = colourful.then_some(rgb);
        Self { gray, rgb, dpi, bilevel: false, text_layer: None, wet_ink, sent: None, vector: None }
    }

    pub fn width(&self) -> u32 {
        self.gray.width()
    }
    pub fn height(&self) -> u32 {
        self.gray.height()
    }

    /// Forgets the file or PDF page the pixels came from: a correction changed them.
    pub fn pixels_changed(&mut self) {
        self.sent = None;
        self.vector = None;
    }

    /// Turns the page a quarter turn clockwise (a sideways sheet).
    pub fn rotate90(&mut self) {
        self.pixels_changed();
        self.gray = image::imageops::rotate90(&self.gray);
        if let Some(rgb) = self.rgb.as_mut() {
            *rgb = image::imageops::rotate90(rgb);
        }
    }

    /// Turns the page half a turn (an upside-down sheet).
    pub fn rotate180(&mut self) {
        self.pixels_changed();
        image::imageops::rotate180_in_place(&mut self.gray);
        if let Some(rgb) = self.rgb.as_mut() {
            image::imageops::rotate180_in_place(rgb);
        }
    }

    /// Mirrors the page left to right (a mirrored photo put right).
    pub fn flip_horizontal(&mut self) {
        self.pixels_changed();
        image::imageops::flip_horizontal_in_place(&mut self.gray);
        if let Some(rgb) = self.rgb.as_mut() {
            image::imageops::flip_horizontal_in_place(rgb);
        }
    }
}

/// One colour's brightness: Rec. 601 luma in integers.
pub fn luma(p: [u8; 3]) -> u8 {
    ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8
}

/// Rec. 601 luma in integers (the float conversion of `image` costs three times as much).
pub fn luma_of(rgb: &RgbImage) -> GrayImage {
    let raw: Vec<u8> = rgb.as_raw().chunks_exact(3).map(|p| luma([p[0], p[1], p[2]])).collect();
    GrayImage::from_raw(rgb.width(), rgb.height(), raw).expect("same dimensions")
}

/// Scans are of A4 sheets nearly always: the long side says the resolution (2480×3508 → 300).
pub fn estimate_dpi(w: u32, h: u32) -> f32 {
    let long = w.max(h) as f32;
    let dpi = long / 11.69;
    // Snap to the usual scanner settings when close.
    for std in [100.0, 150.0, 200.0, 240.0, 300.0, 400.0, 600.0] {
        if (dpi - std).abs() / std < 0.04 {
            return std;
        }
    }
    dpi.max(50.0)
}

/// A colour whose chroma (its strongest channel over its weakest) is beyond scanner noise.
pub(crate) fn chroma_visible(p: [u8; 3]) -> bool {
    let (max, min) = (p.iter().max().copied().unwrap_or(0), p.iter().min().copied().unwrap_or(0));
    max - min > 48
}

/// A page whose chroma is visible somewhere beyond scanner noise.
pub(crate) fn is_colourful(rgb: &RgbImage) -> bool {
    colour_of(rgb, false).0
}

/// Whether a page carries colour worth keeping (over 0.5 % of it), on one pixel a cell, and its
/// share of wet ink: blue or violet marks that a hand or a stamp made (see
/// [`crate::originals::hand_or_stamp_cells`]), looked for on cells of 4 × 4 pixels (coarser
/// above 4,000 pixels a side, at most 1,000 cells along it, which bounds the work on a
/// 100-megapixel photo), each marked when one of four of its pixels is (a ballpoint's stroke is
/// finer than a cell at 150 dpi). The cells' size comes from the page taken as A4, as a scan's
/// resolution does. Without `ink`, the share is 0 and only the colour is measured.
fn colour_of(rgb: &RgbImage, ink: bool) -> (bool, f32) {
    let long = rgb.width().max(rgb.height());
    let step = long.div_ceil(1000).max(4).next_multiple_of(2);
    let (w, h) = (rgb.width().div_ceil(step) as usize, rgb.height().div_ceil(step) as usize);
    let mut wet = if ink { vec![false; w * h] } else { Vec::new() };
    let mut coloured = 0u64;
    let half = step / 2;
    for cy in 0..h {
        for cx in 0..w {
            let (x, y) = (cx as u32 * step, cy as u32 * step);
            coloured += u64::from(chroma_visible(rgb.get_pixel(x, y).0));
            if ink {
                wet[cy * w + cx] = [(0, 0), (half, 0), (0, half), (half, half)].iter().any(|&(dx, dy)| {
                    let p = rgb.get_pixel((x + dx).min(rgb.width() - 1), (y + dy).min(rgb.height() - 1)).0;
                    crate::originals::is_wet_ink(p)
                });
            }
        }
    }
    let seen = (w * h) as u64;
    let mm = step as f32 * 297.0 / long.max(1) as f32;
    let marks = if ink { crate::originals::hand_or_stamp_cells(&wet, w, h, mm) } else { 0 };
    (seen > 0 && coloured * 1000 > seen * 5, marks as f32 / seen.max(1) as f32)
}

/// A still-encoded page.
#[derive(Debug, Clone)]
pub enum PageBlob {
    /// A whole single-page image file (JPEG, PNG, WebP).
    ImageFile { data: Arc<Vec<u8>>, format: ImageFormat },
    /// A HEIC, HEIF or AVIF image (a phone's photo), decoded with libheif.
    Heif { data: Arc<Vec<u8>> },
    /// Page `index` of a TIFF file.
    TiffPage { data: Arc<Vec<u8>>, index: usize },
    /// The one image of a scanned PDF page.
    PdfImage(PdfPageImage),
    /// A born-digital PDF page (text and vectors): rendered at [`RENDER_DPI`].
    /// `vector` is the page's drawing taken out of the PDF, when it can be kept as it is.
    PdfRender { data: Arc<Vec<u8>>, page: usize, vector: Option<Arc<crate::vector_page::VectorPage>> },
    /// The file or page could not be read at all: the reason is known before decoding.
    Unreadable { reason: ReasonCode, detail: String },
}

/// An image taken out of a PDF page without rendering.
#[derive(Debug, Clone)]
pub struct PdfPageImage {
    pub width: u32,
    pub height: u32,
    pub encoding: PdfImageEncoding,
    /// `/Decode [1 0]` (or `/BlackIs1` for CCITT): samples are inverted.
    pub inverted: bool,
    pub data: Vec<u8>,
    /// The whole PDF and the page's index, for the page's text layer (a scanner's OCR).
    pub source: Option<(Arc<Vec<u8>>, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfImageEncoding {
    /// DCTDecode: a JPEG stream.
    Jpeg,
    /// CCITT Group 4 (K < 0).
    CcittG4,
    /// JBIG2, one page's segments without shared symbols.
    Jbig2,
    /// Already decompressed samples.
    Raw { bits: u8, components: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {detail}")]
pub struct PageError {
    pub reason: ReasonCode,
    pub detail: String,
}

impl PageError {
    pub fn new(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

fn corrupt(detail: impl Into<String>) -> PageError {
    PageError::new(ReasonCode::FichierCorrompu, detail)
}

fn check_pixels(w: u64, h: u64, limits: &Limits) -> Result<(), PageError> {
    if w == 0 || h == 0 {
        return Err(corrupt("image of size zero"));
    }
    if w * h > limits.max_page_pixels {
        return Err(PageError::new(
            ReasonCode::FichierTropVolumineux,
            format!("page of {w}×{h} pixels exceeds the limit of {} Mpx", limits.max_page_pixels / 1_000_000),
        ));
    }
    Ok(())
}

/// Decodes one page. Never panics on bad bytes: errors carry the reason code of the report.
pub fn decode_page(blob: &PageBlob, limits: &Limits) -> Result<PageRaster, PageError> {
    match blob {
        PageBlob::Unreadable { reason, detail } => Err(PageError::new(*reason, detail.clone())),
        PageBlob::ImageFile { data, format } => decode_image_file(data, Some(data), *format, limits),
        PageBlob::Heif { data } => decode_heif(data, limits),
        PageBlob::TiffPage { data, index } => decode_tiff_page(data, *index, limits),
        PageBlob::PdfImage(img) => decode_pdf_image(img, limits),
        PageBlob::PdfRender { data, page, vector } => {
            let mut raster = render_pdf_page(data, *page, limits)?;
            // Kept as sent only when the file shows all it holds: a box drawn over a scan or
            // over text hides nothing from whoever opens the file, while the raster does.
            raster.vector = vector.clone().filter(|_| raster.text_layer.as_ref().is_some_and(|t| t.shows_all_it_holds()));
            Ok(raster)
        }
    }
}

/// Resolution at which born-digital pages are rendered: text stays as sharp as a 300-dpi scan.
pub const RENDER_DPI: f32 = 300.0;

/// Renders a born-digital page with hayro (pure Rust, no unsafe code: the right trade for PDFs
/// from outside). A panic in the renderer is the page's failure, not the worker's.
fn render_pdf_page(data: &Arc<Vec<u8>>, index: usize, limits: &Limits) -> Result<PageRaster, PageError> {
    use hayro::hayro_interpret::InterpreterSettings;
    use hayro::hayro_syntax::Pdf;
    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<RgbImage, PageError> {
        let pdf = Pdf::new(data.clone()).map_err(|e| corrupt(format!("unreadable PDF: {e:?}")))?;
        let page = pdf.pages().get(index).ok_or_else(|| corrupt(format!("PDF page {} missing", index + 1)))?;
        let (w_pt, h_pt) = page.render_dimensions();
        let scale = RENDER_DPI / 72.0;
        check_pixels((w_pt * scale) as u64, (h_pt * scale) as u64, limits)?;
        if w_pt * scale > u16::MAX as f32 || h_pt * scale > u16::MAX as f32 {
            return Err(PageError::new(ReasonCode::FichierTropVolumineux, "PDF page too large to render"));
        }
        let pixmap = hayro::render(
            page,
            &hayro::RenderCache::new(),
            &InterpreterSettings::default(),
            &hayro::RenderSettings::default(),
            &hayro::PixmapSettings { x_scale: scale, y_scale: scale, bg_color: hayro::vello_cpu::color::palette::css::WHITE },
        );
        let (w, h) = (pixmap.width() as u32, pixmap.height() as u32);
        // Premultiplied RGBA on a white background: opaque, so the colour channels are the colour.
        let rgb: Vec<u8> = pixmap.data_as_u8_slice().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        RgbImage::from_raw(w, h, rgb).ok_or_else(|| corrupt("rendered page of inconsistent size"))
    }));
    match rendered {
        Ok(Ok(rgb)) => {
            let mut r = PageRaster::from_rgb(rgb);
            r.dpi = RENDER_DPI;
            r.text_layer = crate::pdftext::page_text(data, index);
            Ok(r)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PageError::new(ReasonCode::FormatNonSupporte, format!("PDF page {} could not be rendered", index + 1))),
    }
}

/// A JPEG cut short decodes without error into a page whose lower part is grey: filed, the
/// applicant's page would silently miss what was cut. A whole JPEG ends with its end-of-image
/// marker, at most followed by a camera's trailer (a small share of the file).
fn jpeg_cut_short(data: &[u8]) -> bool {
    let end = data.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    match end {
        None => true,
        Some(at) => data.len() - (at + 2) > (64 << 10).max(data.len() / 10),
    }
}

/// Decodes an image file; `file` is the whole file when it came alone (a JPEG may then be kept as
/// sent, see [`SentJpeg`]), None for an image cut out of a PDF.
fn decode_image_file(data: &[u8], file: Option<&Arc<Vec<u8>>>, format: ImageFormat, limits: &Limits) -> Result<PageRaster, PageError> {
    if format == ImageFormat::Jpeg && jpeg_cut_short(data) {
        return Err(corrupt("JPEG file cut short (no end-of-image marker): part of the page is missing"));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(data), format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_page_pixels * 4);
    reader.limits(l);
    let (w, h) = reader.into_dimensions().map_err(|e| corrupt(format!("unreadable image header: {e}")))?;
    check_pixels(w as u64, h as u64, limits)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(data), format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_page_pixels * 4);
    reader.limits(l);
    let unreadable = |e: image::ImageError| corrupt(format!("unreadable image: {e}"));
    // A phone says in the file which way up it held the camera (EXIF orientation).
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let orientation = image::ImageDecoder::orientation(&mut decoder).unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    let upright = orientation == image::metadata::Orientation::NoTransforms;
    img.apply_orientation(orientation);
    let mut raster = from_dynamic(img);
    if let Some(file) = file.filter(|_| format == ImageFormat::Jpeg && upright) {
        raster.sent = SentJpeg::of(file).filter(|s| (s.width, s.height) == raster.gray.dimensions());
    }
    Ok(raster)
}

/// Decodes a HEIC/HEIF/AVIF photo (its rotation and crop applied by libheif).
fn decode_heif(data: &[u8], limits: &Limits) -> Result<PageRaster, PageError> {
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};
    let lib = LibHeif::new();
    let ctx = HeifContext::read_from_bytes(data).map_err(|e| corrupt(format!("unreadable HEIF file: {e}")))?;
    let handle = ctx.primary_image_handle().map_err(|e| corrupt(format!("HEIF file without an image: {e}")))?;
    check_pixels(handle.width() as u64, handle.height() as u64, limits)?;
    // Options are never passed: libheif-rs 0.20 frees them before the call.
    let image = lib.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None).map_err(|e| corrupt(format!("HEIF image could not be decoded: {e}")))?;
    let planes = image.planes();
    let plane = planes.interleaved.ok_or_else(|| corrupt("HEIF image without pixels"))?;
    let (w, h) = (plane.width as usize, plane.height as usize);
    if plane.bits_per_pixel != 24 && plane.storage_bits_per_pixel != 24 {
        return Err(PageError::new(ReasonCode::FormatNonSupporte, format!("HEIF image of {} bits per pixel", plane.bits_per_pixel)));
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let row = plane.data.get(y * plane.stride..y * plane.stride + w * 3).ok_or_else(|| corrupt("truncated HEIF image"))?;
        rgb.extend_from_slice(row);
    }
    let rgb = RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(|| corrupt("HEIF image of inconsistent size"))?;
    Ok(PageRaster::from_rgb(rgb))
}

fn from_dynamic(img: DynamicImage) -> PageRaster {
    match img {
        DynamicImage::ImageLuma8(g) => PageRaster::from_gray(g, false),
        DynamicImage::ImageRgb8(rgb) => PageRaster::from_rgb(rgb),
        other if other.color().has_color() => PageRaster::from_rgb(other.into_rgb8()),
        other => PageRaster::from_gray(other.into_luma8(), false),
    }
}

/// Counts the pages of a TIFF file (reads the directories only).
pub fn tiff_page_count(data: &[u8], limits: &Limits) -> Result<usize, PageError> {
    let mut dec = tiff::decoder::Decoder::new(Cursor::new(data)).map_err(|e| corrupt(format!("unreadable TIFF: {e}")))?;
    let mut n = 1;
    while dec.more_images() {
        if n >= limits.max_pages_per_file {
            return Err(PageError::new(ReasonCode::FichierTropVolumineux, format!("more than {} pages", limits.max_pages_per_file)));
        }
        dec.next_image().map_err(|e| corrupt(format!("unreadable TIFF directory {n}: {e}")))?;
        n += 1;
    }
    Ok(n)
}

fn decode_tiff_page(data: &[u8], index: usize, limits: &Limits) -> Result<PageRaster, PageError> {
    use tiff::ColorType;
    use tiff::decoder::{Decoder, DecodingResult};
    let mut tl = tiff::decoder::Limits::default();
    tl.decoding_buffer_size = (limits.max_page_pixels * 3) as usize;
    let mut dec = Decoder::new(Cursor::new(data)).map_err(|e| corrupt(format!("unreadable TIFF: {e}")))?.with_limits(tl);
    dec.seek_to_image(index).map_err(|e| corrupt(format!("TIFF page {index}: {e}")))?;
    let (w, h) = dec.dimensions().map_err(|e| corrupt(format!("TIFF page {index}: {e}")))?;
    check_pixels(w as u64, h as u64, limits)?;
    let colour = dec.colortype().map_err(|e| PageError::new(ReasonCode::FormatNonSupporte, format!("TIFF page {index}: {e}")))?;
    // The tiff crate hands samples back as BlackIsZero whatever the file's photometric
    // interpretation (it inverts WhiteIsZero itself): 0 is black.
    let img = dec.read_image().map_err(|e| corrupt(format!("TIFF page {index}: {e}")))?;
    let DecodingResult::U8(buf) = img else {
        return Err(PageError::new(ReasonCode::FormatNonSupporte, format!("TIFF page {index}: samples wider than 8 bits")));
    };
    let (w, h) = (w as usize, h as usize);
    match colour {
        ColorType::Gray(1) => {
            let stride = w.div_ceil(8);
            if buf.len() < stride * h {
                return Err(corrupt(format!("TIFF page {index}: truncated bitonal data")));
            }
            let mut g = GrayImage::new(w as u32, h as u32);
            for (y, row) in g.rows_mut().enumerate() {
                let src = &buf[y * stride..(y + 1) * stride];
                for (x, p) in row.enumerate() {
                    let bit = (src[x / 8] >> (7 - (x % 8))) & 1;
                    p.0[0] = if bit == 0 { 0 } else { 255 };
                }
            }
            Ok(PageRaster::from_gray(g, true))
        }
        ColorType::Gray(8) => {
            let g = GrayImage::from_raw(w as u32, h as u32, buf).ok_or_else(|| corrupt("truncated grey TIFF"))?;
            Ok(PageRaster::from_gray(g, false))
        }
        ColorType::RGB(8) => {
            let rgb = RgbImage::from_raw(w as u32, h as u32, buf).ok_or_else(|| corrupt("truncated colour TIFF"))?;
            Ok(PageRaster::from_rgb(rgb))
        }
        other => Err(PageError::new(ReasonCode::FormatNonSupporte, format!("TIFF page {index}: colour type {other:?}"))),
    }
}

fn decode_pdf_image(img: &PdfPageImage, limits: &Limits) -> Result<PageRaster, PageError> {
    check_pixels(img.width as u64, img.height as u64, limits)?;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut raster = match img.encoding {
        PdfImageEncoding::Jpeg => decode_image_file(&img.data, None, ImageFormat::Jpeg, limits)?,
        PdfImageEncoding::CcittG4 => {
            let g = crate::lightpdf::decode_g4(&img.data, img.width, img.height).ok_or_else(|| corrupt("damaged CCITT G4 image"))?;
            PageRaster::from_gray(g, true)
        }
        PdfImageEncoding::Jbig2 => {
            let g = crate::jbig2::decode(&img.data, img.width, img.height).ok_or_else(|| corrupt("damaged JBIG2 image"))?;
            PageRaster::from_gray(g, true)
        }
        PdfImageEncoding::Raw { bits: 8, components: 1 } => {
            let data = img.data.get(..w * h).ok_or_else(|| corrupt("truncated grey image"))?;
            PageRaster::from_gray(GrayImage::from_raw(img.width, img.height, data.to_vec()).ok_or_else(|| corrupt("grey image"))?, false)
        }
        PdfImageEncoding::Raw { bits: 8, components: 3 } => {
            let data = img.data.get(..w * h * 3).ok_or_else(|| corrupt("truncated colour image"))?;
            PageRaster::from_rgb(RgbImage::from_raw(img.width, img.height, data.to_vec()).ok_or_else(|| corrupt("colour image"))?)
        }
        PdfImageEncoding::Raw { bits: 1, components: 1 } => {
            let stride = w.div_ceil(8);
            let data = img.data.get(..stride * h).ok_or_else(|| corrupt("truncated bitonal image"))?;
            let mut g = GrayImage::new(img.width, img.height);
            for (y, row) in g.rows_mut().enumerate() {
                for (x, p) in row.enumerate() {
                    let bit = (data[y * stride + x / 8] >> (7 - (x % 8))) & 1;
                    p.0[0] = if bit == 1 { 255 } else { 0 };
                }
            }
            PageRaster::from_gray(g, true)
        }
        PdfImageEncoding::Raw { bits, components } => {
            return Err(PageError::new(ReasonCode::FormatNonSupporte, format!("PDF image of {components} components at {bits} bits")));
        }
    };
    if img.inverted {
        image::imageops::invert(&mut raster.gray);
        if let Some(rgb) = raster.rgb.as_mut() {
            image::imageops::invert(rgb);
        }
    }
    raster.text_layer = img.source.as_ref().and_then(|(pdf, page)| crate::pdftext::page_text(pdf, *page));
    Ok(raster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpi_from_a4_sizes() {
        assert_eq!(estimate_dpi(2480, 3508), 300.0);
        assert_eq!(estimate_dpi(1654, 2339), 200.0);
        assert_eq!(estimate_dpi(3508, 2480), 300.0);
    }

    #[test]
    fn garbage_is_a_reason_not_a_panic() {
        let junk = Arc::new(b"\xff\xd8\xff\xe0 not really a jpeg".to_vec());
        let e = decode_page(&PageBlob::ImageFile { data: junk.clone(), format: ImageFormat::Jpeg }, &Limits::default()).expect_err("junk");
        assert_eq!(e.reason, ReasonCode::FichierCorrompu);
        let e = decode_page(&PageBlob::TiffPage { data: junk, index: 0 }, &Limits::default()).expect_err("junk");
        assert_eq!(e.reason, ReasonCode::FichierCorrompu);
        let bad_g4 = PdfPageImage { width: 100, height: 100, encoding: PdfImageEncoding::CcittG4, inverted: false, data: vec![0xff; 10], source: None };
        assert!(decode_page(&PageBlob::PdfImage(bad_g4), &Limits::default()).is_err());
        let bad_jbig2 = PdfPageImage { width: 100, height: 100, encoding: PdfImageEncoding::Jbig2, inverted: false, data: vec![0xff; 10], source: None };
        assert!(decode_page(&PageBlob::PdfImage(bad_jbig2), &Limits::default()).is_err());
    }

    #[test]
    fn a_jpeg_cut_short_is_corrupt_not_a_grey_page() {
        let mut jpeg = Vec::new();
        let img = image::RgbImage::from_fn(400, 600, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg).expect("jpeg");
        let whole = decode_page(&PageBlob::ImageFile { data: Arc::new(jpeg.clone()), format: ImageFormat::Jpeg }, &Limits::default());
        assert!(whole.is_ok());
        let cut = jpeg[..jpeg.len() * 4 / 10].to_vec();
        let e = decode_page(&PageBlob::ImageFile { data: Arc::new(cut), format: ImageFormat::Jpeg }, &Limits::default()).expect_err("cut");
        assert_eq!(e.reason, ReasonCode::FichierCorrompu);
        assert!(e.detail.contains("cut short"), "{}", e.detail);
    }

    /// A JPEG file of `img` at `quality`, with `app` segments inserted after its start marker.
    fn jpeg_file(img: DynamicImage, quality: u8, app: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (w, h) = (img.width() as u16, img.height() as u16);
        let enc = jpeg_encoder::Encoder::new(&mut out, quality);
        match img {
            DynamicImage::ImageLuma8(g) => enc.encode(g.as_raw(), w, h, jpeg_encoder::ColorType::Luma),
            other => enc.encode(other.to_rgb8().as_raw(), w, h, jpeg_encoder::ColorType::Rgb),
        }
        .expect("jpeg");
        out.splice(2..2, app.iter().copied());
        out
    }

    #[test]
    fn a_jpeg_file_is_kept_as_sent_only_when_a_pdf_reader_draws_it_as_it_is() {
        let colour = DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])));
        let grey = DynamicImage::ImageLuma8(GrayImage::from_fn(120, 80, |x, y| image::Luma([((x * y) % 256) as u8])));
        let decode =
            |bytes: Vec<u8>| decode_page(&PageBlob::ImageFile { data: Arc::new(bytes), format: ImageFormat::Jpeg }, &Limits::default()).expect("decodes");
        let sent = decode(jpeg_file(colour.clone(), 60, &[])).sent.expect("a plain colour JPEG");
        assert_eq!((sent.width, sent.height, sent.colour), (300, 200, true));
        let sent = decode(jpeg_file(grey.clone(), 60, &[])).sent.expect("a plain grey JPEG");
        assert_eq!((sent.width, sent.height, sent.colour), (120, 80, false));
        // A phone's turn in EXIF (orientation 6): the file is drawn sideways by a PDF reader.
        let exif: &[u8] = b"\xff\xe1\x00\x22Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00";
        let turned = decode(jpeg_file(colour.clone(), 60, exif));
        assert_eq!(turned.gray.dimensions(), (200, 300), "the decoder applied the turn");
        assert!(turned.sent.is_none(), "a turned file is not drawn as decoded");
        // An Adobe marker may say its three components are RGB, which readers take differently.
        let adobe: &[u8] = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00";
        assert!(decode(jpeg_file(colour, 60, adobe)).sent.is_none());
        assert!(decode(jpeg_file(grey, 60, adobe)).sent.is_some(), "one component is grey whatever the marker");
        // Pixels changed by a correction are no longer the file's.
        let mut page = decode(jpeg_file(DynamicImage::ImageLuma8(GrayImage::new(64, 64)), 60, &[]));
        assert!(page.sent.is_some());
        page.rotate180();
        assert!(page.sent.is_none());
        // Damaged headers say nothing rather than panic.
        for bad in [
            &b"\xff\xd8"[..],
            b"\xff\xd8\xff\xc0\x00\x40\x08",
            b"\xff\xd8\xff\xe0\xff\xff",
            b"\xff\xd8\xff\xc0\x00\x08\x0c\x00\x10\x00\x10\x01\xff\xda",
            b"PNG",
        ] {
            assert!(SentJpeg::of(&Arc::new(bad.to_vec())).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn enormous_pages_are_refused_before_decoding() {
        // A 4000x4000 PNG is refused from its header when the limit is 10 Mpx.
        let mut png = Vec::new();
        GrayImage::new(4000, 4000).write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("png");
        let limits = Limits { max_page_pixels: 10_000_000, ..Limits::default() };
        let e = decode_page(&PageBlob::ImageFile { data: Arc::new(png), format: ImageFormat::Png }, &limits).expect_err("too big");
        assert_eq!(e.reason, ReasonCode::FichierTropVolumineux);
    }
}
