//! Originals sent by mistake: the signs that a paper mailing's page is the document itself and
//! not a photocopy of it.
//!
//! A copy is a sheet of A4 paper, printed in black (or in colour by a colour copier). An
//! original is what the applicant holds: a card at its own size, a passport's page, a livret's
//! booklet page, an extract whose stamp and signature are in blue or violet ink. A scanner cuts
//! each sheet to the paper it feeds, so the size of a page's image, against the A4 pages of the
//! same batch (the slips at least), is the paper's size. Nothing here decides: a suspicion sends
//! the piece to an operator, who confirms or dismisses it.

/// What a scanned page shows of its paper, measured before the page is put straight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PaperSigns {
    /// The image's size as scanned, in pixels.
    pub px: (u32, u32),
    /// Share of the page printed in blue or violet ink (wet-ink stamps and signatures); 0 for a
    /// page scanned in grey.
    pub wet_ink: f32,
}

/// The QR code of the bureau's separator sheet, which an operator puts before an original sent
/// by mistake while preparing a batch: the job files the document after it as an original. A
/// bureau's own sheet, outside the SNE's slips (`slips.md`): its code is not theirs.
pub const SEPARATOR_PAYLOAD: &str = "SCANBUREAU|ORIGINAL|1";

/// Blue or violet ink over at least this share of the page: a stamp (a 30-mm ring and its
/// text) with a signature covers 0.3 to 1 % of an A4 page; a blue logo in a letterhead, which
/// acts and livrets do not carry, would be about as much, hence the types it applies to.
pub const WET_INK_MIN: f32 = 0.002;

/// Measures a page's paper signs as decoded: its size, and its blue and violet ink.
pub fn paper_signs(raster: &crate::raster::PageRaster) -> PaperSigns {
    PaperSigns { px: raster.gray.dimensions(), wet_ink: raster.wet_ink }
}

/// Blue-black, navy, royal blue or violet ink: blue above green, red no higher than blue, and
/// not paper or a pale tint. A real livret's stamp and signature in navy ink, about (20, 40, 80)
/// as scanned, were missed when blue had to be 45 above green and 60 above the lesser of red
/// and green (originals benchmark, real set). The page's chroma must be visible as well (see
/// `raster::colour_of`), which keeps grey-blue slate print out.
pub(crate) fn is_wet_ink([r, g, b]: [u8; 3]) -> bool {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    b >= g + 30 && r <= b + 10 && b - r.min(g) >= 40 && r.min(g).min(b) < 170
}

/// The resolution a batch was scanned at: the median of its A4-shaped pages' (slips are A4),
/// None when it has none.
pub fn batch_dpi(pages: &[(u32, u32)]) -> Option<f32> {
    let mut dpis: Vec<f32> = pages
        .iter()
        .filter_map(|&(w, h)| {
            let (long, short) = (w.max(h) as f32, w.min(h).max(1) as f32);
            ((long / short - A4_RATIO).abs() < 0.03).then_some(long / (297.0 / 25.4))
        })
        .collect();
    if dpis.is_empty() {
        return None;
    }
    dpis.sort_by(f32::total_cmp);
    Some(dpis[dpis.len() / 2])
}

const A4_RATIO: f32 = 297.0 / 210.0;

/// Civil-status documents: their originals carry an officer's stamp and signature in ink.
pub fn stamped_by_nature(type_code: &str) -> bool {
    type_code.starts_with("ACTE_") || type_code == "LIVRET_FAMILLE"
}

/// Why a piece may be an original, in words an operator reads beside the page: None when
/// nothing suggests it. `dpi` is the batch's (see [`batch_dpi`]).
pub fn suspicion(type_code: Option<&str>, pages: &[PaperSigns], dpi: f32) -> Option<String> {
    let mm = |px: u32| px as f32 * 25.4 / dpi;
    for p in pages {
        let (long, short) = (mm(p.px.0.max(p.px.1)), mm(p.px.0.min(p.px.1)));
        let size = format!("{long:.0} × {short:.0} mm");
        let within = |(l0, l1): (f32, f32), (s0, s1): (f32, f32)| (l0..=l1).contains(&long) && (s0..=s1).contains(&short);
        // An ID-1 card (85.6 × 54 mm) fed through the scanner alone: whatever was read on it.
        if within((78.0, 95.0), (48.0, 62.0)) {
            return Some(format!("original ? the page was scanned at a card's size ({size}), not copied on a sheet"));
        }
        // A passport's page (125 × 88 mm).
        if within((115.0, 135.0), (80.0, 96.0)) && matches!(type_code, None | Some("PASSEPORT" | "TITRE_SEJOUR" | "CNI")) {
            return Some(format!("original ? the page was scanned at a passport's size ({size}), not copied on a sheet"));
        }
        // A livret de famille's booklet (about 105 × 150 mm), opened or not.
        if type_code == Some("LIVRET_FAMILLE") && within((140.0, 215.0), (95.0, 160.0)) {
            return Some(format!("original ? the page was scanned at the livret's booklet size ({size}), not copied on a sheet"));
        }
    }
    if type_code.is_some_and(stamped_by_nature)
        && let Some(p) = pages.iter().max_by(|a, b| a.wet_ink.total_cmp(&b.wet_ink))
        && p.wet_ink >= WET_INK_MIN
    {
        return Some(format!(
            "original ? a stamp or signature in blue or violet ink ({:.1} % of the page), which a black-and-white copy does not have",
            p.wet_ink * 100.0
        ));
    }
    None
}

/// Why a piece PDF could not be stamped.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    #[error("the piece's PDF cannot be read: {0}")]
    Unreadable(String),
}

/// A dictionary given inline or by reference (empty when there is none).
fn dictionary_of(doc: &lopdf::Document, o: Option<&lopdf::Object>) -> Result<lopdf::Dictionary, StampError> {
    match o {
        Some(lopdf::Object::Dictionary(d)) => Ok(d.clone()),
        Some(lopdf::Object::Reference(r)) => doc.get_dictionary(*r).cloned().map_err(|e| StampError::Unreadable(e.to_string())),
        _ => Ok(lopdf::Dictionary::new()),
    }
}

/// The most a "COPIE" stamp adds to a piece of `pages` pages: its font once, and on each page
/// its drawing and the page's longer dictionary. A piece is encoded this much under the size
/// limit, so that stamping it (in the job, or later at the review station) keeps it under.
pub fn stamp_room(pages: usize) -> usize {
    600 + 500 * pages
}

/// The piece of an original, stamped "COPIE" on every page: what is filed is a copy the bureau
/// made, dated and signed with its name. The stamp is drawn in vector over the page (no pixel of
/// the scan changes, a few hundred bytes a page); the same piece and words give the same bytes.
pub fn stamp_copy(pdf: &[u8], bureau: &str, date: chrono::NaiveDate) -> Result<Vec<u8>, StampError> {
    use crate::slip_print::text_line;
    use lopdf::content::{Content, Operation};
    use lopdf::{Dictionary, Object, Stream, dictionary};
    let unreadable = |e: lopdf::Error| StampError::Unreadable(e.to_string());
    let mut doc = lopdf::Document::load_mem(pdf).map_err(unreadable)?;
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica-Bold", "Encoding" => "WinAnsiEncoding",
    });
    let line = format!("{} - {}", bureau, date.format("%d/%m/%Y"));
    for (_, page_id) in doc.get_pages() {
        let (w, h) = {
            let page = doc.get_dictionary(page_id).map_err(unreadable)?;
            let media = page.get(b"MediaBox").and_then(Object::as_array).map_err(unreadable)?;
            let n = |i: usize| media.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
            (n(2) - n(0), n(3) - n(1))
        };
        // A red frame in the top margin, right of centre, where pages seldom print (letters
        // and forms start 10 mm down; a slip's code sits lower in its corner): what the page
        // says stays readable under it.
        let (bw, bh) = (150.0_f32.min(w * 0.5), 26.0);
        let (x, y) = (w - bw - 100.0_f32.min(w * 0.2), h - bh - 4.0);
        let red = || vec![0.78.into(), 0.08.into(), 0.08.into()];
        let mut ops = vec![
            Operation::new("q", vec![]),
            Operation::new("RG", red()),
            Operation::new("rg", red()),
            Operation::new("w", vec![1.6.into()]),
            Operation::new("re", vec![x.into(), y.into(), bw.into(), bh.into()]),
            Operation::new("S", vec![]),
        ];
        text_line(&mut ops, "FCopie", 13.0, x + 6.0, y + 13.0, "COPIE");
        text_line(&mut ops, "FCopie", 6.0, x + 6.0, y + 4.5, &line);
        ops.push(Operation::new("Q", vec![]));
        let bytes = Content { operations: ops }.encode().map_err(unreadable)?;
        let overlay = doc.add_object(Stream::new(Dictionary::new(), bytes));
        let page = doc.get_object_mut(page_id).and_then(Object::as_dict_mut).map_err(unreadable)?;
        let contents = match page.get(b"Contents") {
            Ok(Object::Array(a)) => a.clone(),
            Ok(c) => vec![c.clone()],
            Err(_) => Vec::new(),
        };
        page.set("Contents", Object::Array(contents.into_iter().chain([Object::Reference(overlay)]).collect()));
        let resources = page.get(b"Resources").ok().cloned();
        // Resources, and their fonts, may be given inline or by reference: kept either way.
        let mut resources = dictionary_of(&doc, resources.as_ref())?;
        let mut fonts = dictionary_of(&doc, resources.get(b"Font").ok())?;
        fonts.set("FCopie", Object::Reference(font));
        let page = doc.get_object_mut(page_id).and_then(Object::as_dict_mut).map_err(unreadable)?;
        resources.set("Font", Object::Dictionary(fonts));
        page.set("Resources", Object::Dictionary(resources));
    }
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| StampError::Unreadable(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A4_300: (u32, u32) = (2480, 3508);

    fn page(px: (u32, u32), wet_ink: f32) -> PaperSigns {
        PaperSigns { px, wet_ink }
    }

    #[test]
    fn the_batch_resolution_comes_from_its_a4_pages() {
        assert_eq!(batch_dpi(&[A4_300, (1011, 638), (3508, 2480)]).map(f32::round), Some(300.0));
        assert_eq!(batch_dpi(&[(1654, 2339), (1654, 2339), (1011, 638)]).map(f32::round), Some(200.0));
        assert_eq!(batch_dpi(&[(1011, 638)]), None, "no A4 page: no scale to measure by");
    }

    #[test]
    fn a_card_scanned_at_its_own_size_is_suspected_and_an_a4_copy_is_not() {
        let card = suspicion(Some("CNI"), &[page((1011, 638), 0.0)], 300.0).expect("card size");
        assert!(card.contains("card's size") && card.contains("86 × 54 mm"), "{card}");
        // Whatever type was read on it: the size is the proof.
        assert!(suspicion(None, &[page((638, 1011), 0.0)], 300.0).is_some());
        assert_eq!(suspicion(Some("CNI"), &[page(A4_300, 0.01)], 300.0), None, "a colour copy on A4");
        // The same pixels at 600 dpi are a 43-mm stamp-sized cut-out, not a card.
        assert_eq!(suspicion(Some("CNI"), &[page((1011, 638), 0.0)], 600.0), None);
    }

    #[test]
    fn a_passports_or_a_livrets_page_size_counts_only_for_those_documents() {
        let passport = (1476, 1039);
        assert!(suspicion(Some("PASSEPORT"), &[page(passport, 0.0)], 300.0).is_some_and(|s| s.contains("passport")));
        assert_eq!(suspicion(Some("QUITTANCE_LOYER"), &[page(passport, 0.0)], 300.0), None, "a small receipt");
        let booklet = (1240, 1772);
        assert!(suspicion(Some("LIVRET_FAMILLE"), &[page(booklet, 0.0)], 300.0).is_some_and(|s| s.contains("livret")));
        assert_eq!(suspicion(Some("BULLETIN_SALAIRE"), &[page(booklet, 0.0)], 300.0), None);
    }

    #[test]
    fn blue_ink_counts_on_civil_status_documents_only() {
        let stamped = [page(A4_300, 0.0), page(A4_300, 0.004)];
        let why = suspicion(Some("ACTE_NAISSANCE"), &stamped, 300.0).expect("stamp");
        assert!(why.contains("0.4 %"), "{why}");
        assert!(suspicion(Some("LIVRET_FAMILLE"), &stamped, 300.0).is_some());
        assert_eq!(suspicion(Some("ATTESTATION_CAF"), &stamped, 300.0), None, "a letter's blue logo");
        assert_eq!(suspicion(Some("ACTE_DECES"), &[page(A4_300, 0.0005)], 300.0), None, "a few blue specks");
    }

    #[test]
    fn wet_ink_is_blue_or_violet_print_not_black_grey_or_a_pale_tint() {
        let ink = |c: [u8; 3]| crate::raster::PageRaster::from_rgb(image::RgbImage::from_pixel(40, 40, image::Rgb(c))).wet_ink;
        // The last: a real livret's navy stamp as scanned.
        for blue in [[30, 50, 150], [40, 60, 200], [90, 40, 160], [20, 30, 110], [20, 40, 80]] {
            assert_eq!(ink(blue), 1.0, "{blue:?}");
        }
        // The last two: slate-blue print, whose chroma the page's colour test does not see, and
        // a teal.
        for not in [[20, 20, 20], [128, 128, 128], [200, 215, 245], [180, 30, 30], [30, 120, 60], [250, 250, 250], [70, 80, 110], [40, 110, 130]] {
            assert_eq!(ink(not), 0.0, "{not:?}");
        }
        // A stamp too small for the page to be kept in colour is measured all the same.
        let mut page = image::RgbImage::from_pixel(400, 400, image::Rgb([245, 245, 245]));
        for (x, y) in (0..40).flat_map(|x| (0..8).map(move |y| (x, y))) {
            page.put_pixel(x, y, image::Rgb([95, 45, 175]));
        }
        let raster = crate::raster::PageRaster::from_rgb(page);
        assert!(raster.rgb.is_none(), "stored grey");
        assert!((paper_signs(&raster).wet_ink - 0.002).abs() < 0.001, "{}", raster.wet_ink);
        assert_eq!(crate::raster::PageRaster::from_gray(image::GrayImage::new(10, 10), false).wet_ink, 0.0, "a grey scan shows no colour");
    }

    #[test]
    fn an_originals_piece_is_stamped_copie_on_every_page_in_vector() {
        use crate::lightpdf::{EncodedPage, PageCodec, write_pdf};
        let blank = |_| EncodedPage {
            codec: PageCodec::CcittG4,
            width: 8,
            height: 8,
            page_w_pt: 595.276,
            page_h_pt: 841.89,
            data: crate::lightpdf::encode_g4(&crate::binarize::Bitmap { width: 8, height: 8, ink: vec![0; 64] }),
            mixed: None,
            choice: String::new(),
        };
        let pages: Vec<EncodedPage> = (0..2).map(blank).collect();
        let pdf = write_pdf(&pages.iter().collect::<Vec<_>>(), "piece");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).expect("date");
        let stamped = stamp_copy(&pdf, "Bureau de numérisation (Lyon)", date).expect("stamped");
        assert_eq!(stamped, stamp_copy(&pdf, "Bureau de numérisation (Lyon)", date).expect("again"), "same bytes");
        assert!(stamped.len() <= pdf.len() + stamp_room(2), "{} -> {}", pdf.len(), stamped.len());
        let doc = lopdf::Document::load_mem(&stamped).expect("valid PDF");
        assert_eq!(doc.get_pages().len(), 2);
        for (_, id) in doc.get_pages() {
            let text = String::from_utf8_lossy(&doc.get_page_content(id)).into_owned();
            assert!(text.contains("(COPIE)Tj") || text.contains("(COPIE) Tj"), "{text}");
        }
        let said = doc.extract_text(&[1, 2]).expect("text");
        assert_eq!(said.matches("COPIE").count(), 2, "{said}");
        assert!(said.contains("Bureau de numérisation (Lyon) - 05/12/2026"), "{said}");
        assert!(matches!(stamp_copy(b"not a pdf", "b", date), Err(StampError::Unreadable(_))));
        // What a stamp adds stays within the room a piece's encoding leaves for it, however
        // many pages and however long the bureau's name.
        for n in [1, 3, 12, 40] {
            let pages: Vec<EncodedPage> = (0..n).map(blank).collect();
            let pdf = write_pdf(&pages.iter().collect::<Vec<_>>(), "piece");
            let stamped = stamp_copy(&pdf, &"Bureau de numérisation des pièces justificatives ".repeat(3), date).expect("stamped");
            assert!(stamped.len() <= pdf.len() + stamp_room(n), "{n} pages: {} -> {} (room {})", pdf.len(), stamped.len(), stamp_room(n));
        }
    }
}
