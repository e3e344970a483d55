//! Light PDFs: each piece as small as legibility allows.
//!
//! One page, one choice, made by measuring the page:
//! - text on plain paper: bitonal at the scan's resolution, in JBIG2 generic region coding (see
//!   `jbig2`: lossless on the binarised page; a lossy symbol-substituting coder such as JBIG2
//!   "pattern matching" is never used: it swaps digits);
//! - text on tinted paper, grey boxes, colour forms, logos: mixed raster content (see `mixed`),
//!   the print as a JBIG2 stencil at scan resolution over a low-resolution JPEG background,
//!   painted in its own colour;
//! - print with pictures among it (an identity card copied on a sheet, a photograph in a letter):
//!   mixed, with each picture as a JPEG inset at up to 300 dpi (quality 40) over the background
//!   and the stencil empty there;
//! - print scanned at 120-180 dpi: any of the above, its print cut from the page enlarged to 300
//!   dpi (a stencil at the scan's own resolution breaks strokes);
//! - photographs, cards scanned alone, photos of documents, faint print and whatever the layers
//!   would blur: JPEG at 200 dpi (150 lost a point or more of OCR word accuracy on small print in
//!   photos: see the pipeline benchmark), grey unless the page carries colour.
//!
//! The PDF is written by hand: a few objects per page, deterministic bytes (no dates), A4 media
//! boxes for A4 scans. The stencil is drawn as `/ImageMask` (one colour) or as the `/Mask` of a
//! small colour image (print of several colours), in `/JBIG2Decode`: PDF 1.4, which the file
//! declares and poppler, pdfium (Chrome) and hayro draw.

use std::fmt::Write as _;
use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use crate::binarize::{Bitmap, MIN_CONTRAST, binarize, tile_stats};
use crate::geometry::{Corrections, rescale};
use crate::jbig2;
use crate::mixed::{InkColour, Layers, Plane, Region, card_regions, composite, ink_colour, merge_overlapping, picture_regions, picture_tiles, separate};
use crate::raster::PageRaster;
use crate::vector_page::VectorPage;

/// What a page holds, as the page analysis sees it; the encoder measures the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageContent {
    /// Grey text and line art: bitonal, or mixed when its paper is tinted.
    Text,
    /// Photographs, halftones or faint print: grey JPEG.
    Photo,
    /// Colour with photographs in it: colour JPEG.
    Colour,
    /// Colour text and line art (forms, letterheads, stamps): mixed, or colour JPEG when the
    /// layers would blur it.
    ColourText,
    /// Print with pictures among it (an identity card copied on a sheet, a passport page, a
    /// letter with a photograph): the pictures, looked for closely, are kept at the picture
    /// resolution, the rest is stored as text; all of it a picture when they cannot be told
    /// apart from the print or fill most of the page.
    PrintAndPictures,
}

impl PageContent {
    /// Print of some kind (text, colour text, print with pictures), which may be cut into a
    /// stencil; photographs never are.
    fn is_print(self) -> bool {
        matches!(self, PageContent::Text | PageContent::ColourText | PageContent::PrintAndPictures)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct EncodeParams {
    /// Resolution and quality of JPEG-stored pages.
    pub picture_dpi: f32,
    pub jpeg_quality: u8,
    /// Greatest resolution and quality of the pictures among a mixed page's print (identity
    /// cards copied on a sheet), from scans of `inset_scan_dpi` or finer. A card's print
    /// is smaller than a page's and needs pixels more than a fine JPEG: the generated grey ID
    /// copies lost at most 10.3 points of their known words at 200 dpi and quality 55, 3.4 at
    /// 250 dpi and quality 40 or 55, none at 300 dpi and quality 40 (55 KB a page; 75 KB at
    /// quality 55, over the 60 KB target). Whole pages were measured the same way on the real
    /// documents: 4 to 26 % more bytes and no word kept more, so they stay at `picture_dpi`.
    pub inset_dpi: f32,
    pub inset_quality: u8,
    /// Scans this fine or finer keep their pictures among print at `inset_quality`; coarser
    /// ones have few pixels to spare and keep them at the pictures' finer quantiser.
    pub inset_scan_dpi: f32,
    /// Resolution and quality of a mixed page's background.
    pub background_dpi: f32,
    pub background_quality: u8,
    /// A grey text page whose background is tinted on more than this share of its cells is
    /// stored mixed (below, the tint is a speck or a shadow and the bitonal print alone says it all).
    pub tint_share: f32,
    /// A page whose background drawn back differs from the scan on more than this share of its
    /// tiles holds pictures: JPEG (an identity photo on an A4 copy is some 2.5 %).
    pub picture_share: f32,
    /// Above this share, a grey page with something the mask cannot draw (a small picture, a
    /// shaded logo) keeps it in a mixed page's background instead of losing it in bitonal print alone.
    pub speck_share: f32,
    /// A page whose pictures fill at most this share of it is stored mixed with its pictures as
    /// JPEG insets at the picture resolution (an identity card copied on A4, a photo in a
    /// letter); above, the whole page is one JPEG.
    pub inset_share: f32,
}

impl Default for EncodeParams {
    fn default() -> Self {
        Self {
            picture_dpi: 200.0,
            jpeg_quality: 55,
            inset_dpi: 300.0,
            inset_quality: 40,
            inset_scan_dpi: 250.0,
            background_dpi: 75.0,
            background_quality: 40,
            tint_share: 0.02,
            picture_share: 0.01,
            speck_share: 0.002,
            inset_share: 0.45,
        }
    }
}

impl EncodeParams {
    /// Resolution and quality of a mixed page's pictures: a scan coarser than `inset_scan_dpi`
    /// keeps the page pictures' storage; a finer one, at most `inset_dpi` (never more than the
    /// scan's own, see [`picture_layer`]).
    fn inset_storage(&self, scan_dpi: f32) -> (f32, u8) {
        if scan_dpi >= self.inset_scan_dpi { (self.inset_dpi, self.inset_quality) } else { (self.picture_dpi, self.jpeg_quality) }
    }
}

/// How the bytes of an encoded page are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCodec {
    /// Bitonal in CCITT Group 4, as scanners write it (the samples and fixtures).
    CcittG4,
    /// Bitonal in JBIG2 generic region coding, as the job stores print.
    Jbig2,
    JpegGray,
    JpegRgb,
    /// `data` is the JBIG2 stencil of the print; `mixed` holds the other layers.
    Mixed,
}

/// A JPEG picture layer of a mixed page.
#[derive(Debug, Clone, PartialEq)]
pub struct JpegLayer {
    pub width: u32,
    pub height: u32,
    pub colour: bool,
    pub data: Vec<u8>,
}

/// The paint of a mixed page's print.
#[derive(Debug, Clone, PartialEq)]
pub enum InkPaint {
    /// One colour, 0-255 per component (1 grey or 3 RGB).
    Solid(Vec<u8>),
    Picture(JpegLayer),
}

/// A picture of a mixed page drawn over its background at its own resolution: where a card, a
/// photograph or a logo is, which the low-resolution background would blur. The stencil is empty
/// there.
#[derive(Debug, Clone, PartialEq)]
pub struct Inset {
    /// Where it goes, in stencil pixels.
    pub region: Region,
    pub layer: JpegLayer,
}

/// What a mixed page adds to its stencil.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedLayers {
    pub background: JpegLayer,
    pub ink: InkPaint,
    pub insets: Vec<Inset>,
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
    pub mixed: Option<Box<MixedLayers>>,
    /// Why the page is stored this way, in a few words (the report's page detail).
    pub choice: String,
    /// A born-digital page shown as it was sent, its text, fonts and vectors, instead of the
    /// raster above, which stays for a piece that must shrink (see [`shrink_page`]).
    pub vector: Option<Arc<VectorPage>>,
}

impl EncodedPage {
    /// Bytes of image data in all the page's layers, or of the drawing of a page kept as sent.
    pub fn bytes(&self) -> usize {
        if let Some(v) = &self.vector {
            return v.bytes;
        }
        self.data.len()
            + self.mixed.as_ref().map_or(0, |m| {
                m.background.data.len()
                    + m.insets.iter().map(|i| i.layer.data.len()).sum::<usize>()
                    + match &m.ink {
                        InkPaint::Solid(_) => 0,
                        InkPaint::Picture(p) => p.data.len(),
                    }
            })
    }

    /// The codec in the words of the report.
    pub fn codec_name(&self) -> &'static str {
        if self.vector.is_some() {
            return "the PDF page as sent (text and vectors)";
        }
        match self.codec {
            PageCodec::CcittG4 => "bitonal G4",
            PageCodec::Jbig2 => "bitonal JBIG2",
            PageCodec::JpegGray => "grey JPEG",
            PageCodec::JpegRgb => "colour JPEG",
            PageCodec::Mixed if self.mixed.as_ref().is_some_and(|m| !m.insets.is_empty()) => {
                "mixed raster (JBIG2 print over a JPEG background, pictures as JPEG insets)"
            }
            PageCodec::Mixed => "mixed raster (JBIG2 print over a JPEG background)",
        }
    }

    /// How the page is stored, why, and its weight, as the report's page `detail` says it.
    pub fn describe(&self) -> String {
        format!("stored as {}: {}; {:.1} KB", self.codec_name(), self.choice, self.bytes() as f64 / 1024.0)
    }
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

/// More pictures than this on a page are one inset around them all.
const MOST_INSETS: usize = 6;

/// Print scanned coarser than this is not binarised at its own resolution: a stencil cut from
/// 150-180 dpi pixels lost 3 to 8 points of OCR word accuracy on real scans (a tax notice at
/// 150 dpi, a pay slip at 171, a CV at 179), where the same print cut from the page enlarged
/// smoothly kept 98 to 100 % of its words. Such a page is stored from its enlargement, see
/// [`COARSE_STENCIL_DPI`].
pub const COARSE_DPI: f32 = 180.0;
/// Below this, print is too coarse for any stencil: it stays a picture.
pub const COARSEST_STENCIL_DPI: f32 = 120.0;
/// The resolution a coarse page is enlarged to before its print is cut.
const COARSE_STENCIL_DPI: f32 = 300.0;

/// How a page was taken, as far as its storage cares (see [`store_page`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// A photo of a document: its outline was found or its light flattened.
    pub photographed: bool,
    /// A small image enlarged to be read.
    pub enlarged: bool,
}

impl From<&Corrections> for Taken {
    fn from(c: &Corrections) -> Self {
        Self { photographed: c.outline || c.flattened, enlarged: c.enlarged() }
    }
}

/// The job's storage of a page: [`encode_page`], except for pages of print that were
/// photographed or enlarged. A small image enlarged is kept whole as a picture: a stencil cut
/// from pixels the enlarging made up lost 4 to 9 points on real scans. A photo of a page of
/// print under 300 dpi is cut from its enlargement to 300 dpi, as a coarse scan is, when that
/// leaves print alone (generated phone photos at 182-200 dpi: 73-77 KB of JPEG, now 16-18 KB,
/// reading the same words); with pictures among its print, or finer, it is kept whole as a
/// picture (a 359-dpi photo of a thermal receipt cut as it was lost 2 points of its words).
///
/// A page kept whole as a picture is stored as the JPEG file it came in when that file is the
/// lighter of the two (see [`as_sent`]). Tried and not adopted: an enlarged page stored at the
/// pixels it came with, its enlargement shrunk back (26 real pages 18-80 % lighter at quality
/// 55): shrinking blurs what the file held, and they lost up to 75 points of their confident
/// words (a passport specimen 92 → 17 %), still up to 65 at quality 90 (a passport's data page
/// 88 → 24 %; compression benchmark).
pub fn store_page(raster: &PageRaster, bits: &Bitmap, content: PageContent, taken: Taken, params: &EncodeParams) -> EncodedPage {
    let page = store_pixels(raster, bits, content, taken, params);
    as_drawn(raster, as_sent(raster, page))
}

/// A page drawn from a PDF (born-digital, or a scan in layers) shown as it was sent when its
/// drawing is lighter than its raster and the pixels are still its drawing (no turn,
/// straightening or levelling changed them): its exact text, fonts and vectors, sharp at any
/// zoom, a reader's to select and search. The raster stays beside it for a piece that must
/// shrink.
fn as_drawn(raster: &PageRaster, page: EncodedPage) -> EncodedPage {
    let Some(v) = &raster.vector else { return page };
    let kb = |b: usize| b as f32 / 1024.0;
    if v.bytes >= page.bytes() {
        let choice = format!("{}; lighter than the PDF page as sent ({:.1} KB)", page.choice, kb(v.bytes));
        return EncodedPage { choice, ..page };
    }
    let (page_w_pt, page_h_pt) = v.size_pt();
    let choice = format!("lighter than its raster ({}: {}; {:.1} KB)", page.codec_name(), page.choice, kb(page.bytes()));
    let kept = EncodedPage { page_w_pt, page_h_pt, choice, vector: Some(v.clone()), ..page.clone() };
    // Checked as written: it draws as the page was drawn, and still shows all it holds.
    let (w, h) = raster.gray.dimensions();
    let checked = drawn_as_written(&kept, w, h).is_some_and(|(gray, text)| drawn_alike(&gray, &raster.gray) && text.is_some_and(|t| t.shows_all_it_holds()));
    if checked {
        return kept;
    }
    EncodedPage { choice: format!("{}; the PDF page as sent, taken out of its file, did not draw or read as the page", page.choice), ..page }
}

/// A page kept as sent, written in a PDF of its own and drawn again by the renderer as a viewer
/// draws it, at `w` × `h` pixels, with the text layer read from it.
fn drawn_as_written(page: &EncodedPage, w: u32, h: u32) -> Option<(GrayImage, Option<crate::pdftext::TextLayer>)> {
    let blob = crate::raster::PageBlob::PdfRender { data: Arc::new(write_pdf(&[page], "")), page: 0, vector: None };
    let drawn = crate::raster::decode_page(&blob, &crate::raster::Limits::default()).ok()?;
    let gray = if drawn.gray.dimensions() == (w, h) { drawn.gray } else { image::imageops::resize(&drawn.gray, w, h, image::imageops::FilterType::Triangle) };
    Some((gray, drawn.text_layer))
}

/// Two drawings of a page at the same size, alike but for antialiasing: at most one pixel in
/// a thousand more than a quarter of the scale apart.
fn drawn_alike(a: &GrayImage, b: &GrayImage) -> bool {
    a.dimensions() == b.dimensions() && a.as_raw().iter().zip(b.as_raw()).filter(|(x, y)| x.abs_diff(**y) > 64).count() * 1000 <= a.as_raw().len()
}

/// A page stored as a whole JPEG, replaced by the JPEG file it was sent as when the file is
/// lighter and its pixels are the page's (no turn, levelling, unwarping or flattening changed
/// them): encoding a JPEG's pixels again copies its blocks' artefacts at a second loss, for more
/// bytes.
///
/// A small image enlarged to be read is stored as sent too, its enlargement left to the viewer,
/// which `/Interpolate` asks to smooth (see [`page_images`]). On the real documents, 10 such
/// pages weighed more than their file (a passport 278 KB against 176, a bill 406 against 120).
/// Stored as sent without the flag, 4 of the 8 that Tesseract reads lost 5 to 38 points of
/// their confident words, drawn by poppler at 300 dpi: poppler enlarges 4 times or more pixel
/// by pixel unless asked. With it, 4 keep the same share, one reads 4.8 points more and three
/// (a UK passport sample published twice, a RIB) 1.6 to 2.3 points less, where they were 1.2
/// to 4.3 points under the original already: the file's own pixels, smoothed by the viewer
/// rather than by the reader's cubic (compression benchmark).
///
/// Tried and not adopted: PNG files kept as sent the same way, their zlib stream under
/// `/FlateDecode` with PNG predictors (lossless, drawn right by poppler, pdfium and hayro). The
/// three real PNGs it applied to, tax and identity attestations exported at 72 dpi, weighed 55
/// to 74 KB instead of 186 to 223, but read 2.4 to 9.3 points fewer of their confident words
/// drawn by poppler at 300 dpi (an avis d'impôt 98.0 → 88.7 %), 0 to 5.3 drawn by pdfium: a
/// viewer's bilinear enlargement of thin antialiased print blurs it more than the reader's
/// cubic, which the JPEG of the enlargement keeps.
fn as_sent(raster: &PageRaster, page: EncodedPage) -> EncodedPage {
    let Some(sent) = &raster.sent else { return page };
    let whole_jpeg = matches!(page.codec, PageCodec::JpegGray | PageCodec::JpegRgb) && page.mixed.is_none();
    // The same picture: its sides in the page's proportions, to a pixel.
    let (w, h) = (u64::from(raster.width()), u64::from(raster.height()));
    let same_shape = (u64::from(sent.width) * h).abs_diff(u64::from(sent.height) * w) <= w.max(h);
    if !whole_jpeg || !same_shape || sent.data.len() >= page.data.len() {
        return page;
    }
    let choice = format!(
        "{}; stored as the JPEG file sent ({}×{} px, {:.1} KB), lighter than its pixels encoded again ({}×{} px, {:.1} KB)",
        page.choice,
        sent.width,
        sent.height,
        sent.data.len() as f32 / 1024.0,
        page.width,
        page.height,
        page.data.len() as f32 / 1024.0
    );
    EncodedPage {
        codec: if sent.colour { PageCodec::JpegRgb } else { PageCodec::JpegGray },
        width: sent.width,
        height: sent.height,
        data: sent.data.to_vec(),
        choice,
        ..page
    }
}

fn store_pixels(raster: &PageRaster, bits: &Bitmap, content: PageContent, taken: Taken, params: &EncodeParams) -> EncodedPage {
    let print = content.is_print();
    if print && taken.photographed && !taken.enlarged && raster.dpi < COARSE_STENCIL_DPI {
        return print_from_enlargement(raster, content, params, "photographed");
    }
    if print && (taken.photographed || taken.enlarged) {
        let whole = if raster.rgb.is_some() { PageContent::Colour } else { PageContent::Photo };
        return encode_page(raster, bits, whole, params);
    }
    encode_page(raster, bits, content, params)
}

/// Encodes a page: JBIG2 from the binarised bits for text on plain paper, mixed layers for text on
/// tinted paper or in colour (with its pictures as JPEG insets), JPEG for pictures. The choice is
/// measured on the page (tint of its background, what the layers drawn back lose, where) and said
/// in `choice`.
pub fn encode_page(raster: &PageRaster, bits: &Bitmap, content: PageContent, params: &EncodeParams) -> EncodedPage {
    let print = content.is_print();
    if print && !raster.bilevel && (COARSEST_STENCIL_DPI..COARSE_DPI).contains(&raster.dpi) {
        return print_from_enlargement(raster, content, params, "scanned");
    }
    let (pw, ph) = page_size_pt(raster.width(), raster.height(), raster.dpi);
    // Print is stored up to 65,535 pixels a side, as the analysis reads it: nothing larger is a
    // scan of paper.
    let print_fits = bits.width <= u16::MAX as u32 && bits.height <= u16::MAX as u32 && bits.width == raster.width() && bits.height == raster.height();
    let picture = |content: PageContent, why: String| {
        let mut p = encode_picture(raster, content, params, pw, ph);
        p.choice = why;
        p
    };
    let pictures = content == PageContent::PrintAndPictures;
    let whole = whole_picture(raster, content);
    match content {
        PageContent::Text | PageContent::ColourText | PageContent::PrintAndPictures if print_fits => {
            let colour = content != PageContent::Text && raster.rgb.is_some();
            let (pixels, channels): (&[u8], usize) = match (&raster.rgb, colour) {
                (Some(rgb), true) => (rgb.as_raw(), 3),
                _ => (raster.gray.as_raw(), 1),
            };
            let paper = page_paper(&raster.gray);
            let bg_cell = (raster.dpi / params.background_dpi).round().max(1.0) as u32;
            let mut layers = separate(pixels, channels, bits, raster.dpi, bg_cell, bg_cell * 4, paper);
            let drawn = composite(bits, &layers);
            // Pictures known to be there are looked for more closely: an identity photograph
            // must stay recognisable.
            let level = if pictures { 8 } else { 14 };
            let tiles = picture_tiles(&raster.gray, &drawn, bits, &layers.near_ink, raster.dpi, level);
            let lost = tiles.share();
            // Bitonal alone when the paper is plain and nothing the mask cannot draw is on it
            // (a small picture is kept, blurred, in a mixed page's background).
            if !colour && !pictures && layers.tinted_share <= params.tint_share && lost <= params.speck_share {
                return EncodedPage {
                    codec: PageCodec::Jbig2,
                    width: bits.width,
                    height: bits.height,
                    page_w_pt: pw,
                    page_h_pt: ph,
                    data: jbig2::encode(bits),
                    mixed: None,
                    choice: format!("text on plain paper (tint on {:.1} % of it)", 100.0 * layers.tinted_share),
                    vector: None,
                };
            }
            let mut regions = if pictures || lost > params.picture_share { picture_regions(&tiles, bits.width, bits.height, MOST_INSETS) } else { Vec::new() };
            regions.extend(card_regions(&layers, raster.dpi));
            let regions: Vec<Region> = merge_overlapping(regions)
                .into_iter()
                .filter(|r| r.x < bits.width && r.y < bits.height)
                .map(|r| Region { w: r.w.min(bits.width - r.x), h: r.h.min(bits.height - r.y), ..r })
                .collect();
            let inset_area = regions.iter().map(Region::area).sum::<u64>() as f32 / (bits.width as f32 * bits.height as f32);
            if pictures && regions.is_empty() {
                return picture(whole, "pictures that cannot be told from the print".into());
            }
            if inset_area > params.inset_share {
                return picture(whole, format!("pictures the layers would blur ({:.0} % of the page)", 100.0 * lost));
            }
            // The stencil is empty where an inset is: the print there is the inset's, and a
            // photograph binarised would show as grain over it.
            let stencil = if regions.is_empty() {
                jbig2::encode(bits)
            } else {
                let mut cleared = bits.clone();
                for r in &regions {
                    for y in r.y..r.y + r.h {
                        let row = (y * cleared.width) as usize;
                        cleared.ink[row + r.x as usize..row + (r.x + r.w) as usize].fill(0);
                    }
                }
                // The print left decides its colour; the background under an inset is hidden.
                layers.ink = ink_colour(pixels, channels, &cleared, bg_cell * 4);
                jbig2::encode(&cleared)
            };
            let mut mixed = encode_layers(&layers, params.background_quality);
            let inset_storage = params.inset_storage(raster.dpi);
            mixed.insets = regions.iter().map(|r| Inset { region: *r, layer: picture_layer(raster, colour, *r, inset_storage) }).collect();
            let paper = if colour {
                "a colour page"
            } else if layers.tinted_share <= params.tint_share {
                "plain paper with shading the print's mask cannot draw"
            } else {
                "tinted paper"
            };
            let ink = if matches!(mixed.ink, InkPaint::Solid(_)) { "one colour" } else { "several colours" };
            let mut why = format!("text on {paper} ({:.0} % tinted, {:.1} % shaded), print in {ink}", 100.0 * layers.tinted_share, 100.0 * lost);
            if !regions.is_empty() {
                why = format!(
                    "print with {} picture(s) kept at {:.0} dpi ({:.0} % of the page); {why}",
                    regions.len(),
                    inset_storage.0.min(raster.dpi),
                    100.0 * inset_area
                );
            }
            EncodedPage {
                codec: PageCodec::Mixed,
                width: bits.width,
                height: bits.height,
                page_w_pt: pw,
                page_h_pt: ph,
                data: stencil,
                mixed: Some(Box::new(mixed)),
                choice: why,
                vector: None,
            }
        }
        PageContent::Text | PageContent::ColourText | PageContent::PrintAndPictures => picture(whole, "a page too large for bitonal storage".into()),
        PageContent::Photo => picture(content, "photographs, a photo of a page, faint print or a small image enlarged".into()),
        PageContent::Colour => picture(content, "colour photographs, a photo of a page or a small image enlarged".into()),
    }
}

/// A page of print coarser than [`COARSE_STENCIL_DPI`], `how` it was taken: scanned at 120-180
/// dpi, or photographed under 300 dpi (see [`store_page`]). The page is enlarged to 300 dpi, its
/// print cut there, then stored as any page of print. The stencil follows the strokes' edges
/// between the scan's pixels instead of their staircase, and the background keeps its own
/// resolution, so only the stencil pays for the enlargement (a 171-dpi pay slip: a 242 KB JPEG,
/// 33 KB of JBIG2 keeping its words). Kept only when that stores as print alone (bitonal, or mixed
/// without pictures); otherwise the page is stored as it came, as a picture: on the enlargement,
/// a tax notice's 2D-Doc and logos as insets lost 4 points of its words, and a picture of the
/// enlargement has more pixels than the scan (an 1895 extract: 132 KB to 193). Pictures the
/// analysis already saw skip the enlargement (it cost 600-800 ms for nothing).
fn print_from_enlargement(raster: &PageRaster, content: PageContent, params: &EncodeParams, how: &str) -> EncodedPage {
    let as_taken = || {
        let (pw, ph) = page_size_pt(raster.width(), raster.height(), raster.dpi);
        let mut p = encode_picture(raster, whole_picture(raster, content), params, pw, ph);
        p.choice = format!("print {how} at {:.0} dpi with pictures among it, kept as {how}", raster.dpi);
        p
    };
    if !matches!(content, PageContent::Text | PageContent::ColourText) {
        return as_taken();
    }
    let enlarged = rescale(raster, COARSE_STENCIL_DPI / raster.dpi);
    let bits = binarize(&enlarged.gray, &tile_stats(&enlarged.gray, enlarged.dpi), MIN_CONTRAST);
    let page = encode_page(&enlarged, &bits, content, params);
    let print_only = page.codec == PageCodec::Jbig2 || page.mixed.as_ref().is_some_and(|m| m.insets.is_empty());
    if !print_only {
        return as_taken();
    }
    EncodedPage { choice: format!("print {how} at {:.0} dpi, cut from the page enlarged to {COARSE_STENCIL_DPI:.0}: {}", raster.dpi, page.choice), ..page }
}

/// How a page of `content` is stored when it is stored whole as a picture: in colour when it
/// has colour and its print is not grey.
fn whole_picture(raster: &PageRaster, content: PageContent) -> PageContent {
    if raster.rgb.is_some() && content != PageContent::Text { PageContent::Colour } else { PageContent::Photo }
}

/// The page's paper level: the 90th percentile of its pixels (some 200,000 of them sampled).
fn page_paper(gray: &GrayImage) -> u8 {
    let raw = gray.as_raw();
    let mut hist = [0u64; 256];
    for &v in raw.iter().step_by((raw.len() / 200_000).max(1)) {
        hist[v as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let mut seen = 0;
    for (v, &n) in hist.iter().enumerate() {
        seen += n;
        if seen * 10 >= total * 9 {
            return v as u8;
        }
    }
    255
}

/// JPEG of the page, grey or colour, at the picture resolution. The paper's noise is kept:
/// flattening it to one level saved 8 % of the bytes of identity-card copies but made Tesseract
/// read nothing on one of them (a global threshold falls between an even paper and the card),
/// measured by the compression benchmark.
fn encode_picture(raster: &PageRaster, content: PageContent, params: &EncodeParams, pw: f32, ph: f32) -> EncodedPage {
    let page = Region { x: 0, y: 0, w: raster.width(), h: raster.height() };
    let l = picture_layer(raster, matches!(content, PageContent::Colour | PageContent::ColourText), page, (params.picture_dpi, params.jpeg_quality));
    let codec = if l.colour { PageCodec::JpegRgb } else { PageCodec::JpegGray };
    EncodedPage { codec, width: l.width, height: l.height, page_w_pt: pw, page_h_pt: ph, data: l.data, mixed: None, choice: String::new(), vector: None }
}

/// A region of the page as a JPEG at the picture resolution, in colour when asked and the page
/// has it.
fn picture_layer(raster: &PageRaster, colour: bool, r: Region, (dpi, quality): (f32, u8)) -> JpegLayer {
    let scale = (dpi / raster.dpi).min(1.0);
    let whole = r.x == 0 && r.y == 0 && r.w == raster.width() && r.h == raster.height();
    match (&raster.rgb, colour) {
        (Some(rgb), true) => {
            let img = if whole { downscale_rgb(rgb, scale) } else { downscale_rgb(&image::imageops::crop_imm(rgb, r.x, r.y, r.w, r.h).to_image(), scale) };
            let (width, height) = img.dimensions();
            JpegLayer { width, height, colour: true, data: jpeg_samples(img.as_raw(), width, height, true, quality) }
        }
        _ => {
            let gray = &raster.gray;
            let img = if whole { downscale_gray(gray, scale) } else { downscale_gray(&image::imageops::crop_imm(gray, r.x, r.y, r.w, r.h).to_image(), scale) };
            let (width, height) = img.dimensions();
            JpegLayer { width, height, colour: false, data: jpeg_samples(img.as_raw(), width, height, false, quality) }
        }
    }
}

fn jpeg_plane(p: &Plane, quality: u8) -> JpegLayer {
    let colour = p.channels == 3;
    JpegLayer { width: p.width, height: p.height, colour, data: jpeg_samples(&p.samples, p.width, p.height, colour, quality) }
}

fn encode_layers(layers: &Layers, quality: u8) -> MixedLayers {
    let ink = match &layers.ink {
        InkColour::Solid(c) => InkPaint::Solid(c.clone()),
        InkColour::Varying(p) => InkPaint::Picture(jpeg_plane(p, quality.max(50))),
    };
    MixedLayers { background: jpeg_plane(&layers.background, quality), ink, insets: Vec::new() }
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

/// Baseline JPEG of 8-bit grey or RGB samples, with Huffman tables fitted to the image (lossless:
/// up to a fifth fewer bytes than the standard tables on real scans and photos). Colour has its
/// chroma halved both ways (4:2:0, a 2 × 2 box average), in one interleaved scan whose tables
/// are fitted afterwards by [`crate::jpeg_huffman`]; where that cannot be done, the standard
/// tables stay. (This encoder fits tables only when it writes a scan per colour, and the
/// `image` crate's decoder, also under the PDF renderer, draws such a file green at 4:2:0; the
/// job decodes its own JPEGs again when it shrinks a piece to its size limit.) On the real
/// pages stored in colour, 4:2:0 took 8 to 32 % fewer bytes (a passport photo 473 → 383 KB,
/// whole-page JPEGs over 60 KB 39 → 33 of 49) and encoded faster, and cost no word on any page
/// whose reading holds still (its twin keeps 99 % of the words; compression benchmark). Cards
/// read unsteadily moved by as much as one step of quality moves them at 4:4:4 (either way, up
/// to 21 points), and look the same side by side. Tried instead: this encoder's progressive
/// mode (5 to 25 % bigger than baseline); JPEG 2000 (OpenJPEG, outside the job, on ten of the
/// heaviest real pages at their stored size), which at the JPEG's bytes kept fewer confident
/// words on print (a tax notice 96.5 → 92.5 %, a bank statement 96.8 → 94.2) and at 60 KB
/// lost 30 to 70 points of them. No other quantisation table of this
/// encoder stores the 40 real pages kept as JPEG better: MS-SSIM, PSNR-HVS, ImageMagick's and
/// Klein's took 9 % fewer bytes to 5 % more and kept 1.3 to 3.1 points fewer of the confident
/// words, and quality 70 kept none more for 24 % more bytes (the compression benchmark). Its
/// AVX2 path is not used: 5 % faster, it writes other bytes than the plain one, so two machines
/// would store the same page differently. Empty for an image over the format's
/// 65,535 pixels a side (a strip over 8 m long at 200 dpi), stored empty in a PDF that still
/// opens.
fn jpeg_samples(samples: &[u8], width: u32, height: u32, colour: bool, quality: u8) -> Vec<u8> {
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else { return Vec::new() };
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    let kind = if colour {
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        enc.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
        jpeg_encoder::ColorType::Rgb
    } else {
        enc.set_optimized_huffman_tables(true);
        jpeg_encoder::ColorType::Luma
    };
    if enc.encode(samples, w, h, kind).is_err() {
        return Vec::new();
    }
    if colour {
        // One interleaved scan with the standard tables, then tables fitted to it (see
        // `jpeg_huffman`); a file it cannot re-code is kept as written.
        return crate::jpeg_huffman::fit_huffman_tables(&out).unwrap_or(out);
    }
    out
}

/// A decoded picture of any pixel format as JPEG (grey or RGB, as it has colour or not).
fn jpeg(img: DynamicImage, quality: u8) -> Vec<u8> {
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageLuma8(g) => jpeg_samples(g.as_raw(), w, h, false, quality),
        DynamicImage::ImageRgb8(c) => jpeg_samples(c.as_raw(), w, h, true, quality),
        other if other.color().has_color() => jpeg_samples(other.to_rgb8().as_raw(), w, h, true, quality),
        other => jpeg_samples(other.to_luma8().as_raw(), w, h, false, quality),
    }
}

/// Downscale of a grey page, each pixel a tent-weighted mean of the scan's pixels around it.
pub fn downscale_gray(img: &GrayImage, scale: f32) -> GrayImage {
    if scale >= 0.99 {
        return img.clone();
    }
    let (samples, w, h) = resample_down(img.as_raw(), img.width(), img.height(), 1, scale);
    GrayImage::from_raw(w, h, samples).unwrap_or_else(|| GrayImage::new(w, h))
}

fn downscale_rgb(img: &RgbImage, scale: f32) -> RgbImage {
    if scale >= 0.99 {
        return img.clone();
    }
    let (samples, w, h) = resample_down(img.as_raw(), img.width(), img.height(), 3, scale);
    RgbImage::from_raw(w, h, samples).unwrap_or_else(|| RgbImage::new(w, h))
}

/// Fixed-point weights of the resampling taps: 14 bits.
const TAP_ONE: u32 = 1 << 14;

/// For each output position, the source positions it draws on and their weights (summing to
/// [`TAP_ONE`]): a tent as wide as two output pixels, centred on the output pixel's centre.
/// A plain area average (a box) is sharper but aliases fine print: it cost passports' small
/// print 5 to 6 points of OCR legibility in the real-documents benchmark.
fn tent_weights(from: u32, to: u32) -> Vec<Vec<(usize, u32)>> {
    let step = from as f64 / to as f64;
    (0..to)
        .map(|o| {
            let centre = (o as f64 + 0.5) * step - 0.5;
            let (lo, hi) = ((centre - step).ceil().max(0.0) as usize, ((centre + step).floor() as usize).min(from as usize - 1));
            let raw: Vec<(usize, f64)> = (lo..=hi).map(|i| (i, (1.0 - (i as f64 - centre).abs() / step).max(0.0))).filter(|t| t.1 > 0.0).collect();
            let total: f64 = raw.iter().map(|t| t.1).sum();
            let mut taps: Vec<(usize, u32)> = raw.iter().map(|&(i, w)| (i, (w / total * TAP_ONE as f64).round() as u32)).collect();
            if taps.is_empty() {
                taps.push((centre.round().clamp(0.0, from as f64 - 1.0) as usize, TAP_ONE));
            }
            // Rounding's remainder to the largest tap, so that flat stays flat.
            let sum: u32 = taps.iter().map(|t| t.1).sum();
            if let Some(big) = taps.iter_mut().max_by_key(|t| t.1) {
                big.1 = (big.1 + TAP_ONE).saturating_sub(sum);
            }
            taps
        })
        .collect()
}

/// Resampling of interleaved samples (`ch` channels) by `scale` ≤ 1 through [`tent_weights`], in
/// fixed point: rows are weighed into a row of sums, then the sums across. Quicker than the
/// same filter in floating point on an A4 page (the picture encoder's own cost).
fn resample_down(src: &[u8], w: u32, h: u32, ch: usize, scale: f32) -> (Vec<u8>, u32, u32) {
    let (nw, nh) = (((w as f32 * scale) as u32).clamp(1, w.max(1)), ((h as f32 * scale) as u32).clamp(1, h.max(1)));
    let (cols, rows) = (tent_weights(w, nw), tent_weights(h, nh));
    let row_len = w as usize * ch;
    let mut out = Vec::with_capacity(nw as usize * nh as usize * ch);
    let mut sums = vec![0u32; row_len];
    for taps in &rows {
        sums.fill(0);
        for &(y, wt) in taps {
            for (s, &v) in sums.iter_mut().zip(&src[y * row_len..(y + 1) * row_len]) {
                *s += v as u32 * wt;
            }
        }
        // Sums of at most 255 × 2^14: six bits off keeps them under 2^16, so the second
        // weighting stays within 32 bits. A colour pixel's three channels are weighed in one
        // pass over its taps rather than one pass each: the same sums, the same bytes.
        for taps in &cols {
            let mut acc = [0u32; 4];
            for &(x, wt) in taps {
                for (a, &s) in acc.iter_mut().zip(&sums[x * ch..(x + 1) * ch]) {
                    *a += (s >> 6) * wt;
                }
            }
            out.extend(acc[..ch.min(4)].iter().map(|&a| ((a + (1 << 21)) >> 22).min(255) as u8));
        }
    }
    (out, nw, nh)
}

/// Re-encodes a page's pictures smaller (to bring a piece under the size limit): a JPEG page, or
/// a mixed page's background. Bitonal stencils and pages are kept.
pub fn shrink_page(page: &EncodedPage, scale: f32, quality: u8) -> EncodedPage {
    // A page kept as sent gives way to its raster shrunk, when that is the lighter.
    if let Some(v) = &page.vector {
        let raster = shrink_page(&EncodedPage { vector: None, ..page.clone() }, scale, quality);
        // Kept, the raster beside it is the shrunk one: the next step shrinks it further.
        return if raster.bytes() < v.bytes { raster } else { EncodedPage { vector: page.vector.clone(), ..raster } };
    }
    let shrink = |data: &[u8]| -> Option<(Vec<u8>, u32, u32)> {
        let img = image::load_from_memory_with_format(data, ImageFormat::Jpeg).ok()?;
        let (w, h) = (((img.width() as f32 * scale) as u32).max(1), ((img.height() as f32 * scale) as u32).max(1));
        Some((jpeg(img.resize_exact(w, h, image::imageops::FilterType::Triangle), quality), w, h))
    };
    match page.codec {
        PageCodec::CcittG4 | PageCodec::Jbig2 => page.clone(),
        PageCodec::Mixed => {
            let Some(m) = &page.mixed else { return page.clone() };
            let Some((data, width, height)) = shrink(&m.background.data) else { return page.clone() };
            let background = JpegLayer { width, height, data, colour: m.background.colour };
            let insets = m
                .insets
                .iter()
                .map(|i| match shrink(&i.layer.data) {
                    Some((data, width, height)) => Inset { region: i.region, layer: JpegLayer { width, height, data, colour: i.layer.colour } },
                    None => i.clone(),
                })
                .collect();
            EncodedPage { mixed: Some(Box::new(MixedLayers { background, ink: m.ink.clone(), insets })), ..page.clone() }
        }
        PageCodec::JpegGray | PageCodec::JpegRgb => match shrink(&page.data) {
            Some((data, width, height)) => EncodedPage { width, height, data, ..page.clone() },
            None => page.clone(),
        },
    }
}

fn jpeg_dict((w, h, colour, len): (u32, u32, bool, usize), extra: &str) -> String {
    let space = if colour { "DeviceRGB" } else { "DeviceGray" };
    format!("<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /{space} /BitsPerComponent 8 /Filter /DCTDecode{extra} /Length {len} >>")
}

impl JpegLayer {
    fn shape(&self) -> (u32, u32, bool, usize) {
        (self.width, self.height, self.colour, self.data.len())
    }
}

fn g4_dict(w: u32, h: u32, len: usize) -> String {
    format!(
        "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms << /K -1 /Columns {w} /Rows {h} /BlackIs1 false >> /Length {len} >>"
    )
}

/// A JBIG2 image decodes to 0 where its pixels are black, as PDF's grey and its image masks read
/// them (a mask paints where it is 0).
fn jbig2_dict(w: u32, h: u32, len: usize, stencil: bool) -> String {
    let kind = if stencil { "/ImageMask true" } else { "/ColorSpace /DeviceGray" };
    format!("<< /Type /XObject /Subtype /Image /Width {w} /Height {h} {kind} /BitsPerComponent 1 /Filter /JBIG2Decode /Length {len} >>")
}

/// The image objects of a page, in the order they are written: (name in the content stream or
/// "" for a mask referenced by the next image, dictionary, data).
fn page_images(p: &EncodedPage) -> Vec<(String, String, &[u8])> {
    match (p.codec, &p.mixed) {
        (PageCodec::CcittG4, _) => vec![("Im0".into(), g4_dict(p.width, p.height, p.data.len()), &p.data)],
        (PageCodec::Jbig2, _) | (PageCodec::Mixed, None) => vec![("Im0".into(), jbig2_dict(p.width, p.height, p.data.len(), false), &p.data)],
        // A picture drawn larger than its pixels (a small file stored as sent) is smoothed, not
        // drawn in blocks: poppler does so at 4 times or more only when asked.
        (PageCodec::JpegGray | PageCodec::JpegRgb, _) => {
            vec![("Im0".into(), jpeg_dict((p.width, p.height, p.codec == PageCodec::JpegRgb, p.data.len()), " /Interpolate true"), &p.data)]
        }
        (PageCodec::Mixed, Some(m)) => {
            let mut images = vec![("Bg".to_string(), jpeg_dict(m.background.shape(), " /Interpolate true"), m.background.data.as_slice())];
            for (k, inset) in m.insets.iter().enumerate() {
                images.push((format!("In{k}"), jpeg_dict(inset.layer.shape(), ""), inset.layer.data.as_slice()));
            }
            match &m.ink {
                InkPaint::Solid(_) => images.push(("Mk".into(), jbig2_dict(p.width, p.height, p.data.len(), true), &p.data)),
                // The stencil first, then the ink picture that names it as its /Mask.
                InkPaint::Picture(l) => {
                    images.push((String::new(), jbig2_dict(p.width, p.height, p.data.len(), true), &p.data));
                    images.push(("Fg".into(), jpeg_dict(l.shape(), " /Interpolate true /Mask {mask}"), l.data.as_slice()));
                }
            }
            images
        }
    }
}

/// What the page's content stream draws: the background, the insets where they go, the print.
fn page_content(p: &EncodedPage) -> String {
    let place = |name: &str| format!("q {:.2} 0 0 {:.2} 0 0 cm /{name} Do Q", p.page_w_pt, p.page_h_pt);
    match (p.codec, &p.mixed) {
        (PageCodec::Mixed, Some(m)) => {
            let (sx, sy) = (p.page_w_pt / p.width.max(1) as f32, p.page_h_pt / p.height.max(1) as f32);
            let insets: String = m
                .insets
                .iter()
                .enumerate()
                .map(|(k, i)| {
                    let r = i.region;
                    format!(
                        " q {:.3} 0 0 {:.3} {:.3} {:.3} cm /In{k} Do Q",
                        r.w as f32 * sx,
                        r.h as f32 * sy,
                        r.x as f32 * sx,
                        p.page_h_pt - (r.y + r.h) as f32 * sy
                    )
                })
                .collect();
            match &m.ink {
                InkPaint::Solid(c) => {
                    let f = |v: &u8| format!("{:.3}", *v as f32 / 255.0);
                    let colour = if c.len() == 3 {
                        format!("{} rg", c.iter().map(f).collect::<Vec<_>>().join(" "))
                    } else {
                        format!("{} g", c.first().map(f).unwrap_or_else(|| "0".into()))
                    };
                    format!("{}{insets} {colour} {}", place("Bg"), place("Mk"))
                }
                InkPaint::Picture(_) => format!("{}{insets} {}", place("Bg"), place("Fg")),
            }
        }
        _ => place("Im0"),
    }
}

/// Writes the pages as one PDF. Deterministic: the same pages give the same bytes.
pub fn write_pdf(pages: &[&EncodedPage], title: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(pages.iter().map(|p| p.bytes() + 1200).sum::<usize>() + 1024);
    let mut offsets: Vec<usize> = Vec::new();
    // A page kept as sent may use what later versions brought (JPEG 2000, OpenType fonts).
    let version: &[u8] = if pages.iter().any(|p| p.vector.is_some()) { b"%PDF-1.7\n" } else { b"%PDF-1.4\n" };
    out.extend_from_slice(version);
    out.extend_from_slice(b"%\xe2\xe3\xcf\xd3\n");
    // Objects: 1 catalog, 2 pages, 3 info, then per page: page, content, its images.
    // A page kept as sent has, instead of images, its drawing and what that refers to.
    let images: Vec<_> = pages.iter().map(|p| if p.vector.is_some() { Vec::new() } else { page_images(p) }).collect();
    let mut page_ids = Vec::with_capacity(pages.len());
    let mut next = 4;
    for (p, imgs) in pages.iter().zip(&images) {
        page_ids.push(next);
        next += 2 + imgs.len() + p.vector.as_ref().map_or(0, |v| v.objects.len());
    }
    let obj = |out: &mut Vec<u8>, offsets: &mut Vec<usize>, body: &[u8]| {
        offsets.push(out.len());
        let id = offsets.len();
        out.extend_from_slice(format!("{id} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    obj(&mut out, &mut offsets, b"<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = page_ids.iter().map(|id| format!("{id} 0 R")).collect();
    obj(&mut out, &mut offsets, format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).as_bytes());
    obj(&mut out, &mut offsets, format!("<< /Producer (scanbureau) /Title ({}) >>", pdf_string(title)).as_bytes());
    for ((p, imgs), &page_id) in pages.iter().zip(&images).zip(&page_ids) {
        let content_id = page_id + 1;
        if let Some(v) = &p.vector {
            let page = format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {:.2} {:.2}] /Resources << /XObject << /Pg {} 0 R >> >> /Contents {content_id} 0 R >>",
                p.page_w_pt,
                p.page_h_pt,
                content_id + 1
            );
            obj(&mut out, &mut offsets, page.as_bytes());
            let content = v.placement();
            obj(&mut out, &mut offsets, format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).as_bytes());
            for body in v.bodies(content_id as u32 + 1) {
                obj(&mut out, &mut offsets, &body);
            }
            continue;
        }
        let xobjects: Vec<String> = imgs
            .iter()
            .enumerate()
            .filter(|(_, (name, _, _))| !name.is_empty())
            .map(|(k, (name, _, _))| format!("/{name} {} 0 R", content_id + 1 + k))
            .collect();
        obj(
            &mut out,
            &mut offsets,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {:.2} {:.2}] /Resources << /XObject << {} >> >> /Contents {content_id} 0 R >>",
                p.page_w_pt,
                p.page_h_pt,
                xobjects.join(" ")
            )
            .as_bytes(),
        );
        let content = page_content(p);
        obj(&mut out, &mut offsets, format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).as_bytes());
        for (k, (_, dict, data)) in imgs.iter().enumerate() {
            // An image with a /Mask names the object written just before it.
            let dict = dict.replace("{mask}", &format!("{} 0 R", content_id + k));
            let mut body = dict.into_bytes();
            body.extend_from_slice(b"\nstream\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\nendstream");
            obj(&mut out, &mut offsets, &body);
        }
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
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '(' | ')' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// Decodes a piece page back to pixels in grey, as a viewer draws it (tests and benchmarks compare
/// it with the scan).
pub fn decode_encoded(page: &EncodedPage) -> Option<GrayImage> {
    if page.vector.is_some() {
        // Drawn as a viewer draws it, at the raster's resolution.
        return drawn_as_written(page, page.width, page.height).map(|(gray, _)| gray);
    }
    let load = |data: &[u8]| image::load(Cursor::new(data), ImageFormat::Jpeg).ok();
    match (page.codec, &page.mixed) {
        (PageCodec::CcittG4, _) => decode_g4(&page.data, page.width, page.height),
        (PageCodec::Jbig2, _) | (PageCodec::Mixed, None) => jbig2::decode(&page.data, page.width, page.height),
        (PageCodec::JpegGray | PageCodec::JpegRgb, _) => load(&page.data).map(|i| i.into_luma8()),
        (PageCodec::Mixed, Some(m)) => {
            let stencil = jbig2::decode(&page.data, page.width, page.height)?;
            let ink: Vec<u8> = stencil.as_raw().iter().map(|&v| (v == 0) as u8).collect();
            let mask = Bitmap { width: page.width, height: page.height, ink };
            let plane = |l: &JpegLayer| -> Option<Plane> {
                let img = load(&l.data)?;
                let (samples, channels) = if l.colour { (img.into_rgb8().into_raw(), 3) } else { (img.into_luma8().into_raw(), 1) };
                Some(Plane { width: l.width, height: l.height, channels, samples, cell: page.width.div_ceil(l.width.max(1)) })
            };
            let ink = match &m.ink {
                InkPaint::Solid(c) => InkColour::Solid(c.clone()),
                InkPaint::Picture(l) => InkColour::Varying(plane(l)?),
            };
            let mut drawn = composite(&mask, &Layers { background: plane(&m.background)?, ink, tinted_share: 0.0, near_ink: Vec::new(), tint: Vec::new() });
            for inset in &m.insets {
                let r = inset.region;
                let img = image::imageops::resize(&load(&inset.layer.data)?.into_luma8(), r.w, r.h, image::imageops::FilterType::Triangle);
                image::imageops::replace(&mut drawn, &img, r.x as i64, r.y as i64);
            }
            Some(drawn)
        }
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
        let page = EncodedPage {
            codec: PageCodec::CcittG4,
            width: w,
            height: h,
            page_w_pt: 100.0,
            page_h_pt: 100.0,
            data: encode_g4(&bits),
            mixed: None,
            choice: String::new(),
            vector: None,
        };
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

    /// An A4 page at 300 dpi: lines of "print" on paper, a grey or colour band behind the top
    /// lines, and a red stamp when `stamp`.
    fn form(tint: Option<[u8; 3]>, stamp: bool) -> PageRaster {
        let (w, h) = (2480u32, 3508u32);
        let rgb = RgbImage::from_fn(w, h, |x, y| {
            let print = (300..3200).contains(&y) && (y / 9) % 4 == 0 && (x / 5) % 4 != 0 && (200..2280).contains(&x);
            let in_stamp = stamp && (2600..2900).contains(&y) && (1600..2100).contains(&x);
            match (print, tint) {
                (true, _) if in_stamp => image::Rgb([190, 30, 40]),
                (true, _) => image::Rgb([25, 25, 30]),
                (false, Some(t)) if y < 900 => image::Rgb(t),
                _ => image::Rgb([244, 244, 242]),
            }
        });
        let colour = tint.is_some_and(|t| t[0] != t[2]);
        let mut r = PageRaster::from_rgb(rgb.clone());
        if colour {
            // Colour the page carries, whatever the colour test makes of a pale tint.
            r.rgb = Some(rgb);
        }
        r.dpi = 300.0;
        r
    }

    fn encode(r: &PageRaster, content: PageContent) -> EncodedPage {
        let stats = crate::binarize::tile_stats(&r.gray, r.dpi);
        let bits = crate::binarize::binarize(&r.gray, &stats, crate::binarize::MIN_CONTRAST);
        encode_page(r, &bits, content, &EncodeParams::default())
    }

    #[test]
    fn each_page_gets_the_storage_its_paper_asks_for() {
        let plain = encode(&form(None, false), PageContent::Text);
        assert_eq!(plain.codec, PageCodec::Jbig2, "{}", plain.choice);
        let grey = encode(&form(Some([200, 200, 200]), false), PageContent::Text);
        assert_eq!(grey.codec, PageCodec::Mixed, "{}", grey.choice);
        let m = grey.mixed.as_ref().expect("layers");
        assert!(!m.background.colour && matches!(m.ink, InkPaint::Solid(_)), "{m:?}");
        // The layers cost little beside the stencil.
        assert!(m.background.data.len() < grey.data.len() / 2, "background {} B, stencil {} B", m.background.data.len(), grey.data.len());
        let colour = form(Some([215, 230, 250]), true);
        assert!(colour.rgb.is_some());
        let c = encode(&colour, PageContent::ColourText);
        assert_eq!(c.codec, PageCodec::Mixed, "{}", c.choice);
        let m = c.mixed.as_ref().expect("layers");
        assert!(m.background.colour && matches!(m.ink, InkPaint::Picture(_)), "the stamp keeps its red: {:?}", c.choice);
        // What a viewer draws is the scan, print for print.
        let drawn = decode_encoded(&c).expect("decodes");
        let diff = drawn.as_raw().iter().zip(colour.gray.as_raw()).filter(|(a, b)| a.abs_diff(**b) > 40).count();
        assert!(diff * 200 < drawn.as_raw().len(), "{diff} pixels far from the scan");
    }

    #[test]
    fn print_scanned_at_150_dpi_is_cut_from_the_page_enlarged_and_stays_print() {
        // The tinted form scanned at half the resolution: 150 dpi, strokes 2 to 3 pixels wide.
        let fine = form(Some([200, 200, 200]), false);
        let mut coarse = rescale(&fine, 0.5);
        coarse.rgb = None;
        assert_eq!(coarse.dpi, 150.0);
        let p = encode(&coarse, PageContent::Text);
        assert_eq!(p.codec, PageCodec::Mixed, "{}", p.choice);
        assert!(p.choice.starts_with("print scanned at 150 dpi, cut from the page enlarged to 300"), "{}", p.choice);
        // The stencil is at 300 dpi, the page still A4, the background at its own resolution.
        assert_eq!((p.width, p.height), (fine.width(), fine.height()));
        assert_eq!((p.page_w_pt, p.page_h_pt), A4_PT);
        assert!(p.mixed.as_ref().is_some_and(|m| m.background.width < 700), "{:?}", p.mixed.as_ref().map(|m| m.background.width));
        // Drawn back, it is the print of the scan: dark where the lines are, paper between them.
        let drawn = decode_encoded(&p).expect("decodes");
        let far = drawn.as_raw().iter().zip(fine.gray.as_raw()).filter(|(a, b)| a.abs_diff(**b) > 60).count();
        assert!(far * 50 < drawn.as_raw().len(), "{far} pixels far from the print");
        // With a card among the print, the scan is kept as it came: a picture of its own pixels,
        // none made up.
        let card = rescale(&card_copy(false), 0.5);
        let p = encode(&card, PageContent::PrintAndPictures);
        assert_eq!(p.codec, PageCodec::JpegGray, "{}", p.choice);
        assert!(p.width <= card.width() && p.choice.contains("kept as scanned"), "{}×{}: {}", p.width, p.height, p.choice);
    }

    #[test]
    fn a_photo_of_print_under_300_dpi_is_stored_as_print_and_an_enlarged_image_as_a_picture() {
        let fine = form(None, false);
        let bits_of = |r: &PageRaster| binarize(&r.gray, &tile_stats(&r.gray, r.dpi), MIN_CONTRAST);
        let photo = rescale(&fine, 2.0 / 3.0);
        let params = EncodeParams::default();
        let p = store_page(&photo, &bits_of(&photo), PageContent::Text, Taken { photographed: true, enlarged: false }, &params);
        assert!(matches!(p.codec, PageCodec::Jbig2 | PageCodec::Mixed), "{:?}: {}", p.codec, p.choice);
        assert!(p.width >= fine.width() - 2 && p.choice.starts_with("print photographed at 200 dpi"), "{}×{}: {}", p.width, p.height, p.choice);
        // Drawn back at the original's resolution, the print is where it was.
        let drawn = decode_encoded(&p).expect("decodes");
        let drawn = image::imageops::resize(&drawn, fine.width(), fine.height(), image::imageops::FilterType::Triangle);
        let far = drawn.pixels().zip(fine.gray.pixels()).filter(|(a, b)| a.0[0].abs_diff(b.0[0]) > 96).count();
        assert!((far as f64) < 0.02 * f64::from(fine.width() * fine.height()), "{far} pixels far from the original");
        // The same page enlarged from a small image, or photographed at 300 dpi: a picture.
        for (raster, taken) in [(&photo, Taken { photographed: false, enlarged: true }), (&fine, Taken { photographed: true, enlarged: false })] {
            let p = store_page(raster, &bits_of(raster), PageContent::Text, taken, &params);
            assert_eq!(p.codec, PageCodec::JpegGray, "{taken:?}: {}", p.choice);
        }
        // Print with pictures among it, photographed: kept as photographed, not enlarged.
        let p = store_page(&photo, &bits_of(&photo), PageContent::PrintAndPictures, Taken { photographed: true, enlarged: false }, &params);
        assert!(p.width <= photo.width() && p.choice.contains("kept as photographed"), "{}: {}", p.width, p.choice);
    }

    #[test]
    fn a_photograph_is_not_cut_into_layers() {
        // Continuous tone with fine detail (grain, hair, a card's guilloches), in colour.
        let rgb = RgbImage::from_fn(2480, 3508, |x, y| {
            let grain = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(2_246_822_519)).wrapping_mul(3_266_489_917) >> 25;
            let v = ((x as f32 / 40.0).sin() * 30.0 + 70.0) as u32 + grain;
            image::Rgb([v.min(255) as u8, (v / 2 + 60) as u8, (255 - v.min(255)) as u8])
        });
        let mut r = PageRaster::from_rgb(rgb);
        r.dpi = 300.0;
        let p = encode(&r, PageContent::ColourText);
        assert_eq!(p.codec, PageCodec::JpegRgb, "{}", p.choice);
        assert!(p.choice.contains("blur"), "{}", p.choice);
    }

    /// An A4 copy of an identity card: lines of print on the sheet, and a card with a grainy
    /// photograph and guilloches at (600..1610, 500..1140).
    fn card_copy(colour: bool) -> PageRaster {
        let card = |x: u32, y: u32| (600..1610).contains(&x) && (500..1140).contains(&y);
        let rgb = RgbImage::from_fn(2480, 3508, |x, y| {
            let grain = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(2_246_822_519)).wrapping_mul(3_266_489_917) >> 26) as f32;
            if card(x, y) {
                let v = ((x as f32 / 9.0).sin() * (y as f32 / 7.0).cos() * 40.0 + 150.0 + grain) as u8;
                if (650..950).contains(&x) && (560..960).contains(&y) { image::Rgb([v / 2, v / 3, v / 3]) } else { image::Rgb([v, v, v.saturating_add(30)]) }
            } else if (1500..3200).contains(&y) && (y / 9) % 4 == 0 && (x / 5) % 4 != 0 && (200..2280).contains(&x) {
                image::Rgb([25, 25, 30])
            } else {
                image::Rgb([244, 244, 242])
            }
        });
        let mut r = if colour { PageRaster::from_rgb(rgb.clone()) } else { PageRaster::from_gray(DynamicImage::ImageRgb8(rgb.clone()).into_luma8(), false) };
        if colour {
            r.rgb = Some(rgb);
        }
        r.dpi = 300.0;
        r
    }

    #[test]
    fn pictures_among_print_keep_up_to_300_dpi_from_fine_scans_and_a_finer_quantiser_from_coarse_ones() {
        let p = EncodeParams::default();
        assert_eq!(p.inset_storage(600.0), (300.0, 40), "a 600-dpi scan's card is brought to 300 dpi");
        assert_eq!(p.inset_storage(270.0), (300.0, 40), "a 270-dpi scan's card keeps its pixels at quality 40");
        assert_eq!(p.inset_storage(200.0), (p.picture_dpi, p.jpeg_quality), "a 200-dpi scan has no pixels to spare");
    }

    #[test]
    fn a_card_on_a_sheet_is_kept_as_a_picture_and_the_sheet_as_print() {
        for colour in [false, true] {
            let r = card_copy(colour);
            let p = encode(&r, PageContent::PrintAndPictures);
            assert_eq!(p.codec, PageCodec::Mixed, "{}", p.choice);
            let m = p.mixed.as_ref().expect("layers");
            assert_eq!(m.insets.len(), 1, "{}", p.choice);
            let inset = &m.insets[0];
            let inside = |x: u32, y: u32| {
                (inset.region.x..inset.region.x + inset.region.w).contains(&x) && (inset.region.y..inset.region.y + inset.region.h).contains(&y)
            };
            assert!(inside(600, 500) && inside(1609, 1139), "the whole card is in the inset: {:?}", inset.region);
            assert!(!inside(300, 2000) && inset.region.area() < 2480 * 3508 / 4, "the print is not: {:?}", inset.region);
            assert_eq!(inset.layer.colour, colour);
            assert_eq!(inset.layer.width, inset.region.w, "at the scan's own 300 dpi");
            assert_eq!(first_quantiser(&inset.layer.data), Some(20), "at quality 40");
            // Lighter than the whole page as one JPEG, and drawn back as the scan.
            let whole = encode(&r, if colour { PageContent::Colour } else { PageContent::Photo });
            assert!(p.bytes() < whole.bytes(), "{} B against {} B as one JPEG", p.bytes(), whole.bytes());
            let drawn = decode_encoded(&p).expect("decodes");
            let far = drawn.as_raw().iter().zip(r.gray.as_raw()).filter(|(a, b)| a.abs_diff(**b) > 40).count();
            assert!(far * 200 < drawn.as_raw().len(), "{far} pixels far from the scan");
            // The renderer draws the inset where it belongs.
            let pdf = write_pdf(&[&p], "card");
            let limits = crate::raster::Limits::default();
            let rendered = crate::raster::decode_page(&crate::input::split_pdf("card.pdf", &pdf, &limits)[0].blob, &limits).expect("renders");
            let small = |g: &GrayImage| image::imageops::resize(g, 620, 877, image::imageops::FilterType::Triangle);
            let (a, b) = (small(&rendered.gray), small(&r.gray));
            let mean = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() as f64 / a.as_raw().len() as f64;
            assert!(mean < 6.0, "rendered page differs from the scan by {mean:.1} levels on average");
        }
        // Pictures the analysis saw but the encoder cannot place: the page is kept whole as a
        // picture rather than risk losing a photograph.
        let p = encode(&form(None, false), PageContent::PrintAndPictures);
        assert_eq!(p.codec, PageCodec::JpegGray, "{}", p.choice);
    }

    #[test]
    fn a_card_shaped_tint_is_kept_as_a_picture_even_when_nothing_on_it_looks_like_one() {
        // A grey card copied on A4 (85.6 × 54 mm at 300 dpi), its photograph a smooth gradient
        // and its print fine: no tile of it looks like a photograph, and the reader found no card.
        let (x0, y0, cw, ch) = (500u32, 600u32, 1011u32, 638u32);
        let gray = GrayImage::from_fn(2480, 3508, |x, y| {
            let on_card = (x0..x0 + cw).contains(&x) && (y0..y0 + ch).contains(&y);
            let photo = (x0 + 40..x0 + 300).contains(&x) && (y0 + 100..y0 + 440).contains(&y);
            let print = (y / 7) % 5 == 0 && (x / 3) % 3 != 0;
            let v = if photo {
                (120 + (y - y0) / 6) as u8
            } else if on_card && print && x > x0 + 340 && x < x0 + cw - 40 && y > y0 + 80 && y < y0 + ch - 60 {
                60
            } else if on_card {
                200
            } else if (1500..3000).contains(&y) && print && (200..2280).contains(&x) {
                25
            } else {
                244
            };
            image::Luma([v])
        });
        let mut r = PageRaster::from_gray(gray, false);
        r.dpi = 300.0;
        let p = encode(&r, PageContent::Text);
        assert_eq!(p.codec, PageCodec::Mixed, "{}", p.choice);
        let insets = &p.mixed.as_ref().expect("layers").insets;
        assert_eq!(insets.len(), 1, "{}", p.choice);
        let g = insets[0].region;
        assert!(g.x <= x0 && g.y <= y0 && g.x + g.w >= x0 + cw && g.y + g.h >= y0 + ch, "{g:?}");
        assert!(g.w < cw + 60 && g.h < ch + 60, "the card and a margin only: {g:?}");
        // A grey band across the page is no card.
        let band = encode(&form(Some([200, 200, 200]), false), PageContent::Text);
        assert!(band.mixed.as_ref().is_some_and(|m| m.insets.is_empty()), "{}", band.choice);
    }

    #[test]
    fn viewers_draw_a_mixed_page_as_it_was_cut() {
        // The PDF is read back by the renderer the job uses for PDFs it cannot take apart.
        for (tint, stamp) in [(Some([200, 200, 200]), false), (Some([215, 230, 250]), true)] {
            let r = form(tint, stamp);
            let p = encode(&r, if r.rgb.is_some() { PageContent::ColourText } else { PageContent::Text });
            assert_eq!(p.codec, PageCodec::Mixed);
            let pdf = write_pdf(&[&p], "mixed");
            assert_eq!(pdf, write_pdf(&[&p], "mixed"), "deterministic");
            let limits = crate::raster::Limits::default();
            let pages = crate::input::split_pdf("mixed.pdf", &pdf, &limits);
            let rendered = crate::raster::decode_page(&pages[0].blob, &limits).expect("renders");
            let ours = decode_encoded(&p).expect("decodes");
            let small = |g: &GrayImage| image::imageops::resize(g, 620, 877, image::imageops::FilterType::Triangle);
            let (a, b) = (small(&rendered.gray), small(&ours));
            let mean = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() as f64 / a.as_raw().len() as f64;
            assert!(mean < 6.0, "rendered page differs by {mean:.1} levels on average");
            // The print is where it was, and dark.
            let ink = |g: &GrayImage| g.get_pixel(53, 82).0[0];
            assert!(ink(&a) < 120 && ink(&b) < 120, "{} {}", ink(&a), ink(&b));
        }
    }

    #[test]
    fn odd_pages_are_stored_without_a_panic() {
        let params = EncodeParams::default();
        let cases: Vec<(PageRaster, PageContent)> = vec![
            (PageRaster::from_gray(GrayImage::from_pixel(1, 10_000, image::Luma([255])), false), PageContent::Text),
            (PageRaster::from_gray(GrayImage::from_pixel(10_000, 1, image::Luma([0])), false), PageContent::Text),
            (PageRaster::from_gray(GrayImage::from_pixel(800, 1100, image::Luma([0])), false), PageContent::Text),
            (PageRaster::from_rgb(RgbImage::from_pixel(800, 1100, image::Rgb([0, 90, 200]))), PageContent::ColourText),
            (PageRaster::from_rgb(RgbImage::from_pixel(3, 3, image::Rgb([255, 0, 0]))), PageContent::ColourText),
            (PageRaster::from_gray(GrayImage::from_pixel(70_000, 2, image::Luma([128])), false), PageContent::Text),
        ];
        for (r, content) in cases {
            let stats = crate::binarize::tile_stats(&r.gray, r.dpi);
            let bits = crate::binarize::binarize(&r.gray, &stats, crate::binarize::MIN_CONTRAST);
            let p = encode_page(&r, &bits, content, &params);
            let pdf = write_pdf(&[&p], "odd");
            assert_eq!(lopdf::Document::load_mem(&pdf).expect("a valid PDF").get_pages().len(), 1, "{}x{}", r.width(), r.height());
            let back = decode_encoded(&p).expect("decodes");
            assert!(back.width() >= 1 && back.height() >= 1);
        }
    }

    #[test]
    fn images_of_16_bits_with_alpha_or_in_cmyk_are_stored_as_legible_pages() {
        use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
        // A dark bar of "print" on light paper, in each pixel format a scanner or a phone writes.
        let print = |x: u32, y: u32| (300..900).contains(&x) && (400..460).contains(&y);
        let level = |x, y| if print(x, y) { 20u8 } else { 235 };
        let png = |img: DynamicImage| {
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).expect("png");
            out
        };
        let images = [
            ("16-bit grey", DynamicImage::ImageLuma16(ImageBuffer::from_fn(1240, 1754, |x, y| Luma([level(x, y) as u16 * 257])))),
            ("16-bit colour", DynamicImage::ImageRgb16(ImageBuffer::from_fn(1240, 1754, |x, y| Rgb([level(x, y) as u16 * 257; 3])))),
            ("grey with alpha", DynamicImage::ImageLumaA8(ImageBuffer::from_fn(1240, 1754, |x, y| LumaA([level(x, y), 255])))),
            ("colour with alpha", DynamicImage::ImageRgba8(ImageBuffer::from_fn(1240, 1754, |x, y| Rgba([level(x, y), level(x, y), 255, 255])))),
        ];
        // A CMYK JPEG, as prepress and some scanners' PDFs carry them: a little cyan and yellow
        // on the paper, black ink on the print.
        let cmyk = {
            let samples: Vec<u8> =
                (0..1754u32).flat_map(|y| (0..1240u32).flat_map(move |x| if print(x, y) { [0, 0, 0, 235] } else { [20, 0, 10, 0] })).collect();
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, 90).encode(&samples, 1240, 1754, jpeg_encoder::ColorType::Cmyk).expect("cmyk jpeg");
            out
        };
        let files = images.into_iter().map(|(what, img)| (what, png(img), ImageFormat::Png)).chain([("CMYK JPEG", cmyk, ImageFormat::Jpeg)]);
        for (what, data, format) in files {
            let blob = crate::raster::PageBlob::ImageFile { data: std::sync::Arc::new(data), format };
            let r = crate::raster::decode_page(&blob, &crate::raster::Limits::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
            let content = if r.rgb.is_some() { PageContent::ColourText } else { PageContent::Text };
            let p = encode(&r, content);
            let pdf = write_pdf(&[&p], what);
            assert_eq!(lopdf::Document::load_mem(&pdf).expect("a valid PDF").get_pages().len(), 1, "{what}");
            let back = decode_encoded(&p).expect("decodes");
            let back = image::imageops::resize(&back, 1240, 1754, image::imageops::FilterType::Triangle);
            assert!(back.get_pixel(600, 430).0[0] < 100 && back.get_pixel(600, 1000).0[0] > 180, "{what}: {}", p.choice);
        }
    }

    #[test]
    fn jpeg_layers_decode_to_what_was_encoded() {
        for colour in [false, true] {
            let ch = if colour { 3 } else { 1 };
            let samples: Vec<u8> = (0..620 * 877 * ch).map(|i| if (i / ch) % 620 < 300 { 200 } else { 100 }).collect();
            let data = jpeg_samples(&samples, 620, 877, colour, 40);
            let img = image::load_from_memory(&data).expect("decodes").to_rgb8();
            for (x, want) in [(10, 200u8), (400, 100)] {
                let px = img.get_pixel(x, 10).0;
                assert!(px.iter().all(|v| v.abs_diff(want) <= 3), "colour {colour}: {px:?} for {want}");
            }
        }
        assert!(jpeg_samples(&[0; 70_000], 70_000, 1, false, 40).is_empty(), "over the format's limit");
    }

    #[test]
    fn resampling_keeps_flat_flat_and_weighs_neighbours_by_a_tent() {
        // Flat stays flat at any ratio.
        let (flat, w, h) = resample_down(&[201u8; 300 * 7 * 3], 300, 7, 3, 0.667);
        assert_eq!((w, h), (200, 4));
        assert!(flat.iter().all(|&v| v == 201), "{:?}", &flat[..9]);
        let near = |got: Vec<u8>, want: [u8; 2]| got.len() == 2 && got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 1);
        // 3 → 2: each output takes its nearest pixel at 5/8 and the shared middle at 3/8.
        let (two, _, _) = resample_down(&[0, 90, 180], 3, 1, 1, 0.67);
        assert!(near(two.clone(), [34, 146]), "{two:?}");
        // Halving: 3/7, 3/7 and 1/7 across, the two rows alike.
        let (half, _, _) = resample_down(&[10, 20, 30, 40, 50, 60, 70, 80], 4, 2, 1, 0.5);
        assert!(near(half.clone(), [37, 53]), "{half:?}");
    }

    #[test]
    fn grey_pictures_are_stored_at_200_dpi() {
        let raster = PageRaster::from_gray(GrayImage::from_fn(2480, 3508, |x, y| image::Luma([((x / 3 + y / 5) % 200) as u8 + 30])), false);
        let bits = Bitmap { width: 2480, height: 3508, ink: vec![0; 2480 * 3508] };
        let p = encode_page(&raster, &bits, PageContent::Photo, &EncodeParams::default());
        assert_eq!((p.codec, p.width, p.height), (PageCodec::JpegGray, 1653, 2338));
        assert_eq!(first_quantiser(&p.data), Some(14), "quality 55");
        let small = shrink_page(&p, 0.5, 40);
        assert_eq!(small.width, 826);
        assert!(small.data.len() < p.data.len());
    }

    #[test]
    fn a_picture_is_stored_as_its_jpeg_file_when_that_is_lighter_and_its_pixels_unchanged() {
        use crate::raster::{Limits, PageBlob, decode_page};
        // Fine print on a tinted card, sent at a low quality: its pixels encoded again copy the
        // blocks' artefacts and weigh more than the file.
        let photo = RgbImage::from_fn(900, 650, |x, y| {
            let ink = ((x / 3).wrapping_mul(2_654_435_761) ^ (y / 4).wrapping_mul(2_246_822_519)) >> 31 == 1 && (y / 4) % 3 != 0;
            if ink { image::Rgb([30, 40, 90]) } else { image::Rgb([230, 210, 190]) }
        });
        // As a phone writes it: chroma at half resolution.
        let file_at = |quality: u8| {
            let mut out = Vec::new();
            let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
            enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            enc.encode(photo.as_raw(), 900, 650, jpeg_encoder::ColorType::Rgb).expect("jpeg");
            out
        };
        let store_as = |file: &[u8], turn: bool, enlarge: f32| {
            let mut raster =
                decode_page(&PageBlob::ImageFile { data: std::sync::Arc::new(file.to_vec()), format: ImageFormat::Jpeg }, &Limits::default()).expect("decodes");
            if turn {
                raster.rotate180();
            }
            raster = rescale(&raster, enlarge);
            let bits = binarize(&raster.gray, &tile_stats(&raster.gray, raster.dpi), MIN_CONTRAST);
            store_page(&raster, &bits, PageContent::Colour, Taken::default(), &EncodeParams::default())
        };
        let store = |file: &[u8], turn: bool| store_as(file, turn, 1.0);
        let light = file_at(15);
        let p = store(&light, false);
        assert_eq!((p.codec, p.width, p.height), (PageCodec::JpegRgb, 900, 650), "{}", p.choice);
        assert!(p.data == light, "the file itself ({} bytes), not a copy of its pixels ({} bytes): {}", light.len(), p.data.len(), p.choice);
        assert!(p.choice.contains("stored as the JPEG file sent"), "{}", p.choice);
        let drawn = decode_encoded(&p).expect("draws");
        assert_eq!(drawn.dimensions(), (900, 650));
        // Turned upside up, the page is no longer the file's pixels: encoded again.
        let turned = store(&light, true);
        assert!(turned.data != light && !turned.choice.contains("file sent"), "{}", turned.choice);
        // Enlarged to be read, it is stored as sent all the same, and the PDF asks the viewer to
        // smooth it.
        let enlarged = store_as(&light, false, 2.0);
        assert!(enlarged.width == 900 && enlarged.data == light, "{}: {}", enlarged.width, enlarged.choice);
        let pdf = write_pdf(&[&enlarged], "t");
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/Width 900 /Height 650 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Interpolate true"), "{text:.600}");
        // A fine file heavier than the page's own encoding is encoded as any page.
        let heavy = file_at(97);
        let p = store(&heavy, false);
        assert!(p.data.len() < heavy.len() && !p.choice.contains("file sent"), "{} bytes: {}", p.data.len(), p.choice);
    }

    /// The first luminance quantiser of a JPEG: 20 at quality 40, 14 at quality 55.
    fn first_quantiser(jpeg: &[u8]) -> Option<u8> {
        let at = jpeg.windows(2).position(|w| w == [0xFF, 0xDB])?;
        jpeg.get(at + 5).copied()
    }
}
