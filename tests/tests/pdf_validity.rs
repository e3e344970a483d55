//! The light PDFs must open in the readers the registry and the counters use: poppler (pdfinfo,
//! pdftoppm) and pdfium (through pypdfium2). Both are installed by scripts/setup.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use scanbureau::process::ChannelArg;
use scanbureau_tests::{args, process};

fn tool_missing(what: &str) -> bool {
    // On CI the set-up script installs the readers: a missing one is a failure there.
    assert!(std::env::var("CI").is_err(), "{what} is missing on CI: scripts/setup.sh should have installed it");
    eprintln!("skipping: {what} not installed (run scripts/setup.sh)");
    true
}

fn pieces_of_all_samples(out: &Path) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scans-samples");
    let mut files = Vec::new();
    for (input, channel) in [
        ("counter-mailing", ChannelArg::Paper),
        ("applicant-mailing.tif", ChannelArg::Paper),
        ("portal-deposit.pdf", ChannelArg::Portal),
        ("mail-deposit.eml", ChannelArg::Mail),
    ] {
        let dir = out.join(input);
        let report = process(&args(vec![root.join(input)], &dir, Some(root.join("registry.json")), channel));
        files.extend(report.requests.iter().flat_map(|r| &r.pieces).filter_map(|p| p.file.as_ref()).map(|f| dir.join(f)));
    }
    assert!(files.len() >= 10, "the samples give at least ten pieces, got {}", files.len());
    files
}

#[test]
fn pieces_open_in_poppler_and_pdfium_at_a4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pieces = pieces_of_all_samples(tmp.path());
    if Command::new("pdfinfo").arg("-v").output().is_err() {
        tool_missing("poppler-utils");
    } else {
        for p in &pieces {
            let info = Command::new("pdfinfo").arg(p).output().expect("pdfinfo runs");
            let stderr = String::from_utf8_lossy(&info.stderr);
            assert!(info.status.success() && stderr.trim().is_empty(), "poppler: {}: {stderr}", p.display());
            let text = String::from_utf8_lossy(&info.stdout);
            assert!(text.contains("595.28 x 841.89 pts (A4)"), "{} is not A4: {text}", p.display());
            let render = Command::new("pdftoppm").args(["-r", "20", "-gray"]).arg(p).arg(tmp.path().join("r")).output().expect("pdftoppm runs");
            assert!(render.status.success() && render.stderr.is_empty(), "pdftoppm: {}: {}", p.display(), String::from_utf8_lossy(&render.stderr));
        }
    }
    let check = r#"
import sys, pypdfium2 as pdfium
for path in sys.argv[1:]:
    pdf = pdfium.PdfDocument(path)
    for i in range(len(pdf)):
        page = pdf[i]
        w, h = page.get_size()
        assert abs(w - 595.28) < 1 and abs(h - 841.89) < 1, (path, w, h)
        bitmap = page.render(scale=0.25, grayscale=True)
        assert bitmap.width > 100 and bitmap.height > 100, path
        assert min(bytes(bitmap.buffer)) < 200, ("page renders empty", path, i)
print("ok", len(sys.argv) - 1)
"#;
    match Command::new("python3").arg("-c").arg("import pypdfium2").output() {
        Ok(o) if o.status.success() => {
            let out = Command::new("python3").arg("-c").arg(check).args(&pieces).output().expect("python runs");
            assert!(out.status.success(), "pdfium: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ok {}", pieces.len()));
        }
        _ => {
            tool_missing("pypdfium2");
        }
    }
}

/// The viewers to draw with, poppler and pdfium when it is installed, and a folder for their
/// drawings; None without poppler (a failure on CI, where the set-up script installs both).
fn viewers() -> Option<(Vec<&'static str>, tempfile::TempDir)> {
    if Command::new("pdftoppm").arg("-v").output().is_err() {
        tool_missing("poppler-utils");
        return None;
    }
    let pdfium = Command::new("python3").arg("-c").arg("import pypdfium2").output().is_ok_and(|o| o.status.success()) || !tool_missing("pypdfium2");
    Some((if pdfium { vec!["poppler", "pdfium"] } else { vec!["poppler"] }, tempfile::tempdir().expect("tmp")))
}

/// A PDF's first page drawn by `viewer` ("poppler" or "pdfium") at 50 dpi, in grey: its crop
/// box, as a viewer shows it.
fn draw_first_page(viewer: &str, pdf: &Path, tmp: &Path) -> image::GrayImage {
    if viewer == "pdfium" {
        // The bitmap's rows as they are (no imaging library needed), after "width height".
        let script = "import sys, pypdfium2 as p\nb = p.PdfDocument(sys.argv[1])[0].render(scale=50/72, grayscale=True)\nraw = bytes(b.buffer)\nrows = b''.join(raw[y * b.stride:y * b.stride + b.width] for y in range(b.height))\nopen(sys.argv[2], 'wb').write(b'%d %d\\n' % (b.width, b.height) + rows)";
        let raw = tmp.join("pdfium.raw");
        let out = Command::new("python3").arg("-c").arg(script).arg(pdf).arg(&raw).output().expect("python runs");
        assert!(out.status.success(), "pdfium: {}", String::from_utf8_lossy(&out.stderr));
        return grey_raw(&raw);
    }
    let out = Command::new("pdftoppm")
        .args(["-r", "50", "-cropbox", "-gray", "-png", "-singlefile"])
        .arg(pdf)
        .arg(tmp.join("poppler"))
        .output()
        .expect("pdftoppm runs");
    assert!(out.status.success() && out.stderr.is_empty(), "pdftoppm: {}", String::from_utf8_lossy(&out.stderr));
    image::open(tmp.join("poppler.png")).expect("a PNG").into_luma8()
}

/// A born-digital page kept as it was sent is drawn by poppler and pdfium as they draw the
/// page sent: turned as it was shown, its crop box at the corner, its text in its font.
#[test]
fn a_born_digital_page_kept_as_sent_draws_the_same_in_poppler_and_pdfium() {
    use lopdf::{Dictionary, Document, Object, Stream, dictionary};
    use scanbureau_pipeline::input::split_pdf;
    use scanbureau_pipeline::lightpdf::{EncodedPage, PageCodec, write_pdf};
    use scanbureau_pipeline::raster::{Limits, PageBlob};
    let Some((viewers, tmp)) = viewers() else { return };
    for rotate in [0, 90] {
        let mut doc = Document::with_version("1.5");
        let font = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding" });
        let lines: String = (0..30).map(|k| format!("BT /F1 11 Tf 60 {} Td (Ligne {k} du justificatif, montant 1 234,56 EUR) Tj ET ", 740 - 20 * k)).collect();
        let content =
            format!("0.9 g 40 760 480 40 re f 0 g BT /F1 20 Tf 60 770 Td (ATTESTATION DE PAIEMENT) Tj ET {lines} 0.2 0.3 0.8 RG 3 w 420 90 m 500 130 l S");
        let content = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
        let pages_id = doc.new_object_id();
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "CropBox" => vec![20.into(), 30.into(), 560.into(), 820.into()], "Rotate" => rotate,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } }, "Contents" => content,
        });
        doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 }));
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut sent = Vec::new();
        doc.save_to(&mut sent).expect("saves");
        let PageBlob::PdfRender { vector: Some(v), .. } = split_pdf("sent.pdf", &sent, &Limits::default()).remove(0).blob else { panic!("not kept as sent") };
        let (page_w_pt, page_h_pt) = v.size_pt();
        let enc = EncodedPage {
            codec: PageCodec::JpegGray,
            width: 1,
            height: 1,
            page_w_pt,
            page_h_pt,
            data: Vec::new(),
            mixed: None,
            choice: String::new(),
            vector: Some(v),
        };
        let (sent_pdf, piece_pdf) = (tmp.path().join("sent.pdf"), tmp.path().join("piece.pdf"));
        std::fs::write(&sent_pdf, &sent).expect("write");
        std::fs::write(&piece_pdf, write_pdf(&[&enc], "piece")).expect("write");
        for &viewer in &viewers {
            let (a, b) = (draw_first_page(viewer, &sent_pdf, tmp.path()), draw_first_page(viewer, &piece_pdf, tmp.path()));
            assert_eq!(a.dimensions(), b.dimensions(), "{viewer}, turned {rotate}");
            let mean = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() as f64 / a.as_raw().len() as f64;
            let darkest = b.as_raw().iter().min().copied().unwrap_or(255);
            assert!(mean < 1.0 && darkest < 100, "{viewer}, turned {rotate}: {mean:.2} levels apart, darkest {darkest}");
        }
    }
}

/// A grey bitmap written as "width height\n" and its rows.
fn grey_raw(path: &Path) -> image::GrayImage {
    let bytes = std::fs::read(path).expect("read");
    let at = bytes.iter().position(|&b| b == b'\n').expect("header");
    let head = String::from_utf8_lossy(&bytes[..at]).into_owned();
    let mut dims = head.split(' ').map(|v| v.parse::<u32>().expect("a size"));
    let (w, h) = (dims.next().expect("width"), dims.next().expect("height"));
    image::GrayImage::from_raw(w, h, bytes[at + 1..].to_vec()).expect("as many rows as said")
}

/// A form page at 300 dpi: lines of print, a tinted band across the top (unless `plain`), a red
/// stamp when in colour.
fn form_page(colour: bool, plain: bool) -> scanbureau_pipeline::raster::PageRaster {
    let rgb = image::RgbImage::from_fn(2480, 3508, |x, y| {
        let print = (300..3200).contains(&y) && (y / 10) % 4 == 0 && (x / 6) % 4 != 0 && (200..2280).contains(&x);
        let stamp = colour && (2600..2900).contains(&y) && (1600..2100).contains(&x);
        match print {
            true if stamp => image::Rgb([190, 30, 40]),
            true => image::Rgb([25, 25, 30]),
            false if y < 900 && !plain => {
                if colour {
                    image::Rgb([205, 225, 250])
                } else {
                    image::Rgb([195, 195, 195])
                }
            }
            false => image::Rgb([245, 245, 243]),
        }
    });
    let mut r = scanbureau_pipeline::raster::PageRaster::from_rgb(rgb.clone());
    if colour {
        // Colour the page carries, whatever the colour test makes of a pale tint.
        r.rgb = Some(rgb);
    }
    r.dpi = 300.0;
    r
}

/// Where the card of [`card_copy`] is, in 300-dpi pixels.
const CARD: (u32, u32, u32, u32) = (600, 1200, 1011, 638);

/// The grey form page with an identity card copied on it: a grainy photograph and guilloches
/// that only a picture keeps.
fn card_copy() -> scanbureau_pipeline::raster::PageRaster {
    let mut r = form_page(false, false);
    let (x0, y0, w, h) = CARD;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let grain = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(2_246_822_519)).wrapping_mul(3_266_489_917) >> 26) as f32;
            let v = (((x as f32 / 9.0).sin() * (y as f32 / 7.0).cos() * 40.0 + 150.0 + grain) as u8).min(250);
            r.gray.put_pixel(x, y, image::Luma([v]));
        }
    }
    r.rgb = None;
    r
}

/// Mixed pages (a JBIG2 stencil over a JPEG background, painted in one colour or through a colour
/// picture, with a card kept as a JPEG inset) and bitonal pages (JBIG2 alone) are drawn by
/// poppler and pdfium as the job cut them.
#[test]
fn mixed_and_bitonal_pages_draw_the_same_in_poppler_and_pdfium() {
    use scanbureau_pipeline::binarize::{MIN_CONTRAST, binarize, tile_stats};
    use scanbureau_pipeline::lightpdf::{EncodeParams, PageCodec, PageContent, decode_encoded, encode_page, write_pdf};
    let Some((viewers, tmp)) = viewers() else { return };
    for (colour, card, plain) in [(false, false, false), (true, false, false), (false, true, false), (false, false, true)] {
        let page = if card { card_copy() } else { form_page(colour, plain) };
        let bits = binarize(&page.gray, &tile_stats(&page.gray, page.dpi), MIN_CONTRAST);
        let content = match (card, page.rgb.is_some()) {
            (true, _) => PageContent::PrintAndPictures,
            (false, true) => PageContent::ColourText,
            (false, false) => PageContent::Text,
        };
        let enc = encode_page(&page, &bits, content, &EncodeParams::default());
        assert_eq!(enc.codec, if plain { PageCodec::Jbig2 } else { PageCodec::Mixed }, "{}", enc.choice);
        assert_eq!(enc.mixed.as_ref().is_some_and(|m| !m.insets.is_empty()), card, "{}", enc.choice);
        let pdf = tmp.path().join(format!("mixed-{colour}-{card}.pdf"));
        std::fs::write(&pdf, write_pdf(&[&enc], "mixed")).expect("write");
        // Compared at 50 dpi, grey: what the layers show, not how each viewer smooths.
        let ours = image::imageops::resize(&decode_encoded(&enc).expect("decodes"), 413, 585, image::imageops::FilterType::Triangle);
        for &viewer in &viewers {
            let img = image::imageops::resize(&draw_first_page(viewer, &pdf, tmp.path()), 413, 585, image::imageops::FilterType::Triangle);
            let mean = img.as_raw().iter().zip(ours.as_raw()).map(|(a, b)| a.abs_diff(*b) as u64).sum::<u64>() as f64 / ours.as_raw().len() as f64;
            assert!(
                mean < 8.0,
                "{viewer} draws the {} page {mean:.1} levels away from its layers",
                if card {
                    "card copy"
                } else if plain {
                    "bitonal"
                } else if colour {
                    "colour"
                } else {
                    "grey"
                }
            );
            // The tinted band is there (or white paper), and so is the print.
            let band = img.get_pixel(30, 20).0[0];
            assert!(if plain { band > 235 } else { (150..235).contains(&band) }, "{viewer}: band at level {band}");
            let darkest = img.as_raw().iter().min().copied().unwrap_or(255);
            assert!(darkest < 100, "{viewer}: no print darker than {darkest}");
            if card {
                // The inset is where the card is: drawn there as the layers have it (a picture
                // misplaced by a few millimetres would be tens of levels off).
                let (x0, y0, w, h) = CARD;
                let at = |v: u32| v * 413 / 2480;
                let (mut diff, mut n) = (0u64, 0u64);
                for y in at(y0)..at(y0 + h) {
                    for x in at(x0)..at(x0 + w) {
                        diff += img.get_pixel(x, y).0[0].abs_diff(ours.get_pixel(x, y).0[0]) as u64;
                        n += 1;
                    }
                }
                let mean = diff as f64 / n.max(1) as f64;
                assert!(mean < 10.0, "{viewer} draws the card {mean:.1} levels away from its inset");
            }
        }
    }
}
