//! Cutting what the bureau receives into pages: image folders, multi-page TIFF, PDF, `.eml`.
//!
//! Each input file becomes an ordered list of [`PageSource`]s whose pixels are decoded later, one
//! page at a time. A file that cannot be read at all still becomes one page source carrying its
//! reason, so that it is accounted for in the report.

use std::sync::Arc;

use image::ImageFormat;
use lopdf::{Document, Object};

use crate::raster::{Limits, PageBlob, PdfImageEncoding, PdfPageImage, tiff_page_count};
use crate::reason::ReasonCode;
use crate::vector_page::VectorPage;

/// One page of the mailing before decoding, with where it came from (for the report's `source`).
#[derive(Debug, Clone)]
pub struct PageSource {
    pub source: String,
    pub blob: PageBlob,
}

/// The sender of an e-mailed mailing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailEnvelope {
    pub from: Option<String>,
    pub subject: Option<String>,
}

/// The kind of a file, by its first bytes (then its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Jpeg,
    Png,
    Tiff,
    WebP,
    /// HEIC, HEIF or AVIF (ISO base media file with an image brand): phones' photos.
    Heif,
    Pdf,
    Eml,
    Unknown,
}

pub fn sniff(name: &str, bytes: &[u8]) -> FileKind {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        FileKind::Jpeg
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        FileKind::Png
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        FileKind::Tiff
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        FileKind::WebP
    } else if is_heif(bytes) {
        FileKind::Heif
    } else if bytes.len() >= 5 && bytes[..bytes.len().min(1024)].windows(5).any(|w| w == b"%PDF-") {
        FileKind::Pdf
    } else if name.to_ascii_lowercase().ends_with(".eml") || looks_like_mail(bytes) {
        FileKind::Eml
    } else {
        FileKind::Unknown
    }
}

/// An ISO base media file whose brands say image: `ftyp` then `heic`, `mif1`, `avif`...
fn is_heif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let brands = &bytes[8..size.clamp(16, bytes.len().min(64))];
    brands.chunks(4).any(|b| matches!(b, b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif" | b"avis"))
}

fn looks_like_mail(bytes: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).to_ascii_lowercase();
    head.contains("mime-version:") && (head.contains("\nfrom:") || head.starts_with("from:"))
}

fn unreadable(source: &str, reason: ReasonCode, detail: impl Into<String>) -> Vec<PageSource> {
    vec![PageSource { source: source.to_string(), blob: PageBlob::Unreadable { reason, detail: detail.into() } }]
}

/// Cuts one input file into page sources, in the file's own page order.
pub fn split_file(name: &str, bytes: Vec<u8>, limits: &Limits) -> Vec<PageSource> {
    split_file_with_envelope(name, bytes, limits).0
}

/// As [`split_file`], also returning the envelope when the file is an e-mail.
pub fn split_file_with_envelope(name: &str, bytes: Vec<u8>, limits: &Limits) -> (Vec<PageSource>, Option<MailEnvelope>) {
    if bytes.len() as u64 > limits.max_file_bytes {
        let detail = format!("file of {} bytes exceeds the limit of {} bytes", bytes.len(), limits.max_file_bytes);
        return (unreadable(name, ReasonCode::FichierTropVolumineux, detail), None);
    }
    if bytes.is_empty() {
        return (unreadable(name, ReasonCode::FichierCorrompu, "empty file"), None);
    }
    match sniff(name, &bytes) {
        FileKind::Jpeg => (vec![image_page(name, bytes, ImageFormat::Jpeg)], None),
        FileKind::Png => (vec![image_page(name, bytes, ImageFormat::Png)], None),
        FileKind::WebP => (vec![image_page(name, bytes, ImageFormat::WebP)], None),
        FileKind::Heif => (vec![PageSource { source: name.to_string(), blob: PageBlob::Heif { data: Arc::new(bytes) } }], None),
        FileKind::Tiff => (split_tiff(name, bytes, limits), None),
        FileKind::Pdf => (split_pdf(name, &bytes, limits), None),
        FileKind::Eml => {
            let (pages, env) = split_eml(name, &bytes, limits);
            (pages, Some(env))
        }
        FileKind::Unknown => (unreadable(name, ReasonCode::FormatNonSupporte, "not an image (JPEG, PNG, TIFF, WebP, HEIC), PDF or e-mail"), None),
    }
}

fn image_page(name: &str, bytes: Vec<u8>, format: ImageFormat) -> PageSource {
    PageSource { source: name.to_string(), blob: PageBlob::ImageFile { data: Arc::new(bytes), format } }
}

fn split_tiff(name: &str, bytes: Vec<u8>, limits: &Limits) -> Vec<PageSource> {
    match tiff_page_count(&bytes, limits) {
        Err(e) => unreadable(name, e.reason, e.detail),
        Ok(1) => vec![PageSource { source: name.to_string(), blob: PageBlob::TiffPage { data: Arc::new(bytes), index: 0 } }],
        Ok(n) => {
            let data = Arc::new(bytes);
            (0..n).map(|i| PageSource { source: format!("{name}#{}", i + 1), blob: PageBlob::TiffPage { data: data.clone(), index: i } }).collect()
        }
    }
}

/// Greatest weight of a PDF page's drawing kept as it was sent: above any page's raster (a
/// heavier drawing is never the lighter one), so it only bounds memory.
const MAX_KEPT_PAGE_BYTES: usize = 512 << 10;
/// Greatest weight of the drawings taken out of one file: each page's takes its own copy of
/// what it shares with the others (fonts), held until the page is stored. Pages past it are
/// stored as their rasters.
const MAX_KEPT_FILE_BYTES: usize = 64 << 20;

/// Takes each page's scanned image out of a PDF without rendering it; pages that are not one
/// readable scanned image are rendered later.
pub fn split_pdf(name: &str, bytes: &[u8], limits: &Limits) -> Vec<PageSource> {
    let options = lopdf::LoadOptions { max_decompressed_size: Some(limits.max_decompressed_bytes), ..Default::default() };
    let doc = match Document::load_mem_with_options(bytes, options) {
        Ok(d) => d,
        Err(lopdf::Error::Decryption(e)) => return unreadable(name, ReasonCode::FormatNonSupporte, format!("encrypted PDF: {e}")),
        Err(e) => {
            // An encrypted file whose password we do not have is a format matter, not damage.
            if bytes.windows(8).any(|w| w == b"/Encrypt") {
                return unreadable(name, ReasonCode::FormatNonSupporte, format!("encrypted PDF ({e})"));
            }
            return unreadable(name, ReasonCode::FichierCorrompu, format!("unreadable PDF: {e}"));
        }
    };
    if doc.is_encrypted() || doc.trailer.get(b"Encrypt").is_ok() {
        return unreadable(name, ReasonCode::FormatNonSupporte, "encrypted PDF");
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return unreadable(name, ReasonCode::FichierCorrompu, "PDF without pages");
    }
    if pages.len() > limits.max_pages_per_file {
        return unreadable(name, ReasonCode::FichierTropVolumineux, format!("PDF of {} pages exceeds the limit of {}", pages.len(), limits.max_pages_per_file));
    }
    let shared = Arc::new(bytes.to_vec());
    let mut kept_bytes = 0;
    pages
        .values()
        .enumerate()
        .map(|(i, &id)| {
            let source = format!("{name}#{}", i + 1);
            let blob = match page_image(&doc, id, limits) {
                Ok(mut img) => {
                    img.source = Some((shared.clone(), i));
                    PageBlob::PdfImage(img)
                }
                // Born-digital page, or an image encoding read only by rendering (JPEG 2000,
                // CCITT G3, JBIG2 with shared symbols...): render the page.
                // Its drawing is taken too, for the piece to show it as it is when lighter.
                Err((ReasonCode::FormatNonSupporte, _)) => {
                    let room = MAX_KEPT_PAGE_BYTES.min(MAX_KEPT_FILE_BYTES.saturating_sub(kept_bytes));
                    let vector = VectorPage::take(&doc, id, room).map(Arc::new);
                    kept_bytes += vector.as_ref().map_or(0, |v| v.bytes);
                    PageBlob::PdfRender { data: shared.clone(), page: i, vector }
                }
                Err((reason, detail)) => PageBlob::Unreadable { reason, detail },
            };
            PageSource { source, blob }
        })
        .collect()
}

fn page_image(doc: &Document, page: lopdf::ObjectId, limits: &Limits) -> Result<PdfPageImage, (ReasonCode, String)> {
    let corrupt = |e: lopdf::Error| (ReasonCode::FichierCorrompu, format!("damaged PDF page: {e}"));
    let images = doc.get_page_images(page).map_err(corrupt)?;
    // A scanned page is one image covering the page; a born-digital page has text and vectors.
    let Some(img) = images.iter().filter(|i| i.width >= 400 && i.height >= 400).max_by_key(|i| i.width * i.height) else {
        return Err((ReasonCode::FormatNonSupporte, "PDF page without a scanned image".into()));
    };
    // A page made of several images (a scan cut in strips, a layer drawn over it, a mask and its
    // background) is more than its largest image: rendered whole, as a viewer shows it. Small
    // images (a logo, a stamp) do not count.
    let largest = img.width * img.height;
    let layered = img.origin_dict.has(b"SMask") || images.iter().any(|i| i.id != img.id && (i.width * i.height * 50 >= largest || i.origin_dict.has(b"SMask")));
    if layered {
        return Err((ReasonCode::FormatNonSupporte, format!("PDF page of {} images: rendered", images.len())));
    }
    let width = u32::try_from(img.width).map_err(|_| (ReasonCode::FichierCorrompu, "negative image width".to_string()))?;
    let height = u32::try_from(img.height).map_err(|_| (ReasonCode::FichierCorrompu, "negative image height".to_string()))?;
    let dict = img.origin_dict;
    let filters = img.filters.clone().unwrap_or_default();
    let decode_inverted = match dict.get(b"Decode").and_then(Object::as_array) {
        Ok(arr) => arr.first().and_then(|o| o.as_float().ok()).is_some_and(|f| f > 0.5),
        Err(_) => false,
    };
    let components = match img.color_space.as_deref() {
        Some("DeviceRGB") | Some("CalRGB") => 3,
        Some("DeviceCMYK") => 4,
        Some("ICCBased") => icc_components(doc, dict).unwrap_or(3),
        _ => 1,
    };
    let bits = img.bits_per_component.unwrap_or(1) as u8;
    let last = filters.last().map(String::as_str);
    let (encoding, data, inverted) = match (filters.len(), last) {
        (1, Some("DCTDecode")) => (PdfImageEncoding::Jpeg, img.content.to_vec(), decode_inverted),
        (1, Some("CCITTFaxDecode")) => {
            let parms = dict.get(b"DecodeParms").ok().and_then(|p| match p {
                Object::Dictionary(d) => Some(d.clone()),
                Object::Array(a) => a.first().and_then(|o| o.as_dict().ok()).cloned(),
                Object::Reference(r) => doc.get_dictionary(*r).ok().cloned(),
                _ => None,
            });
            let k = parms.as_ref().and_then(|p| p.get(b"K").and_then(Object::as_i64).ok()).unwrap_or(0);
            if k >= 0 {
                return Err((ReasonCode::FormatNonSupporte, "CCITT Group 3 image (only Group 4 is read)".into()));
            }
            let black_is_1 = parms.as_ref().and_then(|p| p.get(b"BlackIs1").and_then(Object::as_bool).ok()).unwrap_or(false);
            // An image mask paints where samples are 0 by default: same sense as BlackIs1 = false.
            (PdfImageEncoding::CcittG4, img.content.to_vec(), black_is_1 ^ decode_inverted)
        }
        // One page's segments, as the job stores print, are read as they are when their segments
        // read strictly at the image's size; symbols shared between pages (`/JBIG2Globals` in
        // the parameters) and anything else are left to the renderer, as a viewer would draw
        // them.
        (1, Some("JBIG2Decode")) if !dict.has(b"DecodeParms") && crate::jbig2::reads_at(img.content, width, height) => {
            (PdfImageEncoding::Jbig2, img.content.to_vec(), decode_inverted)
        }
        (1, Some("JBIG2Decode")) => return Err((ReasonCode::FormatNonSupporte, "JBIG2 image read by rendering".into())),
        (1, Some("JPXDecode")) => return Err((ReasonCode::FormatNonSupporte, "JPEG 2000 image".into())),
        (0, _) | (1, Some("FlateDecode")) => {
            let stream = doc.get_object(img.id).and_then(Object::as_stream).map_err(corrupt)?;
            let data = if filters.is_empty() {
                stream.content.clone()
            } else {
                stream.decompressed_content_with_limit(limits.max_decompressed_bytes).map_err(corrupt)?
            };
            // An image mask paints where its samples are 0 (by default), as DeviceGray's 0 is
            // black: the same sense, as for CCITT and JBIG2 above.
            (PdfImageEncoding::Raw { bits, components }, data, decode_inverted)
        }
        _ => return Err((ReasonCode::FormatNonSupporte, format!("PDF image filters {filters:?}"))),
    };
    Ok(PdfPageImage { width, height, encoding, inverted, data, source: None })
}

fn icc_components(doc: &Document, dict: &lopdf::Dictionary) -> Option<u8> {
    let arr = dict.get(b"ColorSpace").ok()?.as_array().ok()?;
    let stream_ref = arr.get(1)?.as_reference().ok()?;
    let n = doc.get_object(stream_ref).ok()?.as_stream().ok()?.dict.get(b"N").ok()?.as_i64().ok()?;
    u8::try_from(n).ok()
}

/// Takes the PDF and image attachments of an e-mail, in order.
pub fn split_eml(name: &str, bytes: &[u8], limits: &Limits) -> (Vec<PageSource>, MailEnvelope) {
    use mail_parser::MimeHeaders;
    let Some(msg) = mail_parser::MessageParser::default().parse(bytes) else {
        return (unreadable(name, ReasonCode::FichierCorrompu, "unreadable e-mail"), MailEnvelope::default());
    };
    let envelope = MailEnvelope {
        from: msg.from().and_then(|a| a.first()).and_then(|a| a.address()).map(|s| s.to_ascii_lowercase()),
        subject: msg.subject().map(str::to_string),
    };
    let mut pages = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let att_name = part.attachment_name().map(str::to_string).unwrap_or_else(|| format!("attachment-{}", i + 1));
        let source = format!("{name}/{att_name}");
        let contents = part.contents().to_vec();
        let (sub, _) = split_file_with_envelope(&source, contents, limits);
        pages.extend(sub);
    }
    if pages.is_empty() {
        pages = unreadable(name, ReasonCode::FormatNonSupporte, "e-mail without PDF or image attachment");
    }
    (pages, envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff("a.bin", b"\xff\xd8\xff\xe0xx"), FileKind::Jpeg);
        assert_eq!(sniff("a", b"%PDF-1.4\n"), FileKind::Pdf);
        assert_eq!(sniff("a.tif", b"II*\0...."), FileKind::Tiff);
        assert_eq!(sniff("m.eml", b"whatever"), FileKind::Eml);
        assert_eq!(sniff("notes.txt", b"hello"), FileKind::Unknown);
        assert_eq!(sniff("p.webp", b"RIFF\x10\0\0\0WEBPVP8 "), FileKind::WebP);
        assert_eq!(sniff("p", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), FileKind::Heif);
        // An MP4 video is an ISO file too, but not an image.
        assert_eq!(sniff("v", b"\0\0\0\x18ftypisom\0\0\0\0isomiso2"), FileKind::Unknown);
    }

    /// A piece the job stored, deposited again (an operator's download, a piece split or joined):
    /// its JBIG2 print is read as stored, pixel for pixel, not drawn again by the renderer.
    #[test]
    fn a_stored_jbig2_page_is_read_back_as_its_pixels() {
        use crate::binarize::Bitmap;
        use crate::lightpdf::{EncodedPage, PageCodec, write_pdf};
        let (width, height) = (1240, 1754);
        let ink: Vec<u8> = (0..width * height).map(|i| u8::from((i % width) / 9 % 3 == 0 && (i / width) / 11 % 4 == 1)).collect();
        let bits = Bitmap { width, height, ink };
        let page = EncodedPage {
            codec: PageCodec::Jbig2,
            width,
            height,
            page_w_pt: 595.276,
            page_h_pt: 841.89,
            data: crate::jbig2::encode(&bits),
            mixed: None,
            choice: String::new(),
            vector: None,
        };
        let pages = split_pdf("piece.pdf", &write_pdf(&[&page], "piece"), &Limits::default());
        let PageBlob::PdfImage(img) = &pages[0].blob else { panic!("read by rendering: {:?}", pages[0].blob) };
        assert_eq!(img.encoding, crate::raster::PdfImageEncoding::Jbig2);
        let raster = crate::raster::decode_page(&pages[0].blob, &Limits::default()).expect("decodes");
        assert_eq!((raster.width(), raster.height()), (width, height));
        assert!(raster.bilevel);
        let black: Vec<u8> = raster.gray.as_raw().iter().map(|&v| u8::from(v == 0)).collect();
        assert!(black == bits.ink, "the pixels read back are not the pixels stored");
        // Cut short, it is not read as a white page: the renderer draws what a viewer would.
        let cut = EncodedPage { data: page.data[..page.data.len() / 2].to_vec(), ..page };
        let pages = split_pdf("cut.pdf", &write_pdf(&[&cut], "piece"), &Limits::default());
        assert!(matches!(pages[0].blob, PageBlob::PdfRender { .. }), "{:?}", pages[0].blob);
    }

    #[test]
    fn broken_files_become_one_accounted_page() {
        let l = Limits::default();
        for (name, bytes, reason) in [
            ("a.pdf", b"%PDF-1.4\n garbage garbage".to_vec(), ReasonCode::FichierCorrompu),
            ("a.txt", b"hello".to_vec(), ReasonCode::FormatNonSupporte),
            ("a.jpg", Vec::new(), ReasonCode::FichierCorrompu),
            ("a.tif", b"II*\0\xff\xff\xff\xff".to_vec(), ReasonCode::FichierCorrompu),
        ] {
            let pages = split_file(name, bytes, &l);
            assert_eq!(pages.len(), 1, "{name}");
            match &pages[0].blob {
                PageBlob::Unreadable { reason: r, .. } => assert_eq!(*r, reason, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let tiny = Limits { max_file_bytes: 3, ..Limits::default() };
        let pages = split_file("big.jpg", vec![0xff, 0xd8, 0xff, 0, 0], &tiny);
        assert!(matches!(pages[0].blob, PageBlob::Unreadable { reason: ReasonCode::FichierTropVolumineux, .. }));
    }

    #[test]
    fn mail_without_attachment_is_accounted() {
        let eml =
            b"From: Guichet <pj@bailleur.fr>\r\nTo: bureau@example.org\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBonjour\r\n";
        let (pages, env) = split_eml("m.eml", eml, &Limits::default());
        assert_eq!(env.from.as_deref(), Some("pj@bailleur.fr"));
        assert_eq!(pages.len(), 1);
        assert!(matches!(pages[0].blob, PageBlob::Unreadable { reason: ReasonCode::FormatNonSupporte, .. }));
    }

    /// A one-page PDF showing `layers` grey images of 500×500 over one another, the second
    /// with a soft mask when `masked`.
    fn pdf_of_images(layers: usize, masked: bool) -> Vec<u8> {
        use lopdf::{Object, Stream, dictionary};
        let mut doc = Document::with_version("1.5");
        let image = |extra: Option<lopdf::ObjectId>| {
            let mut d = dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 500, "Height" => 500, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8 };
            if let Some(m) = extra {
                d.set("SMask", Object::Reference(m));
            }
            Stream::new(d, vec![200u8; 500 * 500])
        };
        let mask = doc.add_object(Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 500, "Height" => 500, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8 },
            vec![128u8; 500 * 500],
        ));
        let mut xobjects = lopdf::Dictionary::new();
        let mut ops = String::new();
        for k in 0..layers {
            let id = doc.add_object(image((masked && k == 1).then_some(mask)));
            xobjects.set(format!("Im{k}"), Object::Reference(id));
            ops.push_str(&format!("q 595 0 0 842 0 0 cm /Im{k} Do Q\n"));
        }
        one_page(doc, ops.into_bytes(), dictionary! { "XObject" => xobjects }, 842)
    }

    /// `doc` saved with one page 595 points wide and `height` tall, drawing `content` with
    /// `resources`.
    fn one_page(mut doc: Document, content: Vec<u8>, resources: lopdf::Dictionary, height: i64) -> Vec<u8> {
        use lopdf::{Stream, dictionary};
        let contents = doc.add_object(Stream::new(lopdf::Dictionary::new(), content));
        let pages_id = doc.new_object_id();
        let page = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), height.into()], "Contents" => contents, "Resources" => resources });
        doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }));
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("saves");
        out
    }

    /// A one-page PDF showing one 1-bit 600×600 image, uncompressed, of a grid of small black
    /// marks on white (about 11 % ink), as an image mask or a DeviceGray image, and with
    /// `/Decode [1 0]` when `decode_inverted` (the samples then stored the other way round).
    fn pdf_of_bitonal_image(image_mask: bool, decode_inverted: bool) -> Vec<u8> {
        use lopdf::{Object, Stream, dictionary};
        let side = 600usize;
        let stride = side / 8;
        let mut data = vec![0u8; stride * side];
        for y in 0..side {
            for x in 0..side {
                let ink = (x / 6) % 3 == 0 && (y / 10) % 3 == 0;
                // DeviceGray and an image mask both paint black where the sample is 0.
                let sample = (!ink) ^ decode_inverted;
                if sample {
                    data[y * stride + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        let mut d = dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => side as i64, "Height" => side as i64 };
        if image_mask {
            d.set("ImageMask", true);
        } else {
            d.set("ColorSpace", "DeviceGray");
            d.set("BitsPerComponent", 1);
        }
        if decode_inverted {
            d.set("Decode", vec![Object::Integer(1), Object::Integer(0)]);
        }
        let mut doc = Document::with_version("1.5");
        let id = doc.add_object(Stream::new(d, data));
        one_page(doc, b"q 0 g 595 0 0 595 0 0 cm /Im0 Do Q\n".to_vec(), dictionary! { "XObject" => dictionary! { "Im0" => Object::Reference(id) } }, 595)
    }

    /// A bitonal image read as it is must read as the renderer (and a viewer) draws it: black
    /// print on white paper, not its negative, whether it is an image mask or a grey image and
    /// whichever way its `/Decode` stores the samples.
    #[test]
    fn a_bitonal_image_is_read_as_a_viewer_draws_it() {
        let l = Limits::default();
        let dark_share = |blob: &PageBlob| {
            let raster = crate::raster::decode_page(blob, &l).expect("decodes");
            let px = raster.gray.as_raw();
            px.iter().filter(|&&v| v < 128).count() as f64 / px.len() as f64
        };
        for (image_mask, decode_inverted) in [(true, false), (true, true), (false, false), (false, true)] {
            let pdf = pdf_of_bitonal_image(image_mask, decode_inverted);
            let pages = split_pdf("scan.pdf", &pdf, &l);
            assert!(matches!(pages[0].blob, PageBlob::PdfImage(_)), "not read as it is: {:?}", pages[0].blob);
            let read = dark_share(&pages[0].blob);
            let drawn = dark_share(&PageBlob::PdfRender { data: Arc::new(pdf), page: 0, vector: None });
            let case = format!("image mask {image_mask}, Decode inverted {decode_inverted}: read {read:.3}, drawn {drawn:.3}");
            assert!((0.08..0.16).contains(&read), "{case}");
            assert!((0.05..0.20).contains(&drawn), "{case}");
        }
    }

    #[test]
    fn a_page_of_one_scan_is_taken_as_it_is_and_a_page_of_layers_is_rendered() {
        let l = Limits::default();
        let blob = |bytes: Vec<u8>| split_pdf("p.pdf", &bytes, &l).remove(0).blob;
        assert!(matches!(blob(pdf_of_images(1, false)), PageBlob::PdfImage(_)));
        // A layer drawn over the scan (a redaction, an annotation) is lost if only one image is taken.
        assert!(matches!(blob(pdf_of_images(2, true)), PageBlob::PdfRender { .. }));
        // A scan cut in strips, too.
        assert!(matches!(blob(pdf_of_images(3, false)), PageBlob::PdfRender { .. }));
    }
}
