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

/// Wet ink over at least this share of the page (see [`hand_or_stamp_cells`]): a real livret's
/// violet stamp covers 0.22 %, a generated stamp and signature 0.4 %. At 0.1 %, a real livret
/// whose signature is black was suspected for its printed labels (0.13 %), and two more of the
/// set's other documents showed the sign (7 of 80 instead of 5; originals benchmark). Printed
/// blue, which acts and livrets do carry (labels, rules), mostly does not count; the sign applies
/// to civil-status documents only all the same.
pub const WET_INK_MIN: f32 = 0.002;

/// Measures a page's paper signs as decoded: its size, and its blue and violet ink.
pub fn paper_signs(raster: &crate::raster::PageRaster) -> PaperSigns {
    PaperSigns { px: raster.gray.dimensions(), wet_ink: raster.wet_ink }
}

/// Blue-black, navy, royal blue or violet ink: blue above green, red no higher than blue, and
/// not paper or a pale tint. A real livret's stamp and signature in navy ink, about (20, 40, 80)
/// as scanned, were missed when blue had to be 45 above green and 60 above the lesser of red
/// and green (originals benchmark, real set). Its chroma must be what makes a page colourful
/// (see `raster::colour_of`), which keeps grey-blue slate print out.
pub(crate) fn is_wet_ink(p: [u8; 3]) -> bool {
    let [r, g, b] = p.map(i32::from);
    b >= g + 30 && r <= b + 10 && b - r.min(g) >= 40 && r.min(g).min(b) < 170 && crate::raster::chroma_visible(p)
}

/// Blue or violet marks on a grid of a page's samples (`mask`, `w` × `h` cells, `mm` the side
/// of a cell) that a hand or a rubber stamp made rather than a printer, in cells: a stamp's
/// ring, a signature, a handwritten line. Printed blue is everywhere on real documents (a
/// livret's labels and rules, a letterhead's logo, a tax notice's boxes, a booklet's cover at
/// the edge of a photo): counted as ink, it made 34 of 80 real documents of other kinds look
/// stamped, and two of four real livrets whose stamps are black; counted this way, 5 of 80 and
/// neither livret, while a real livret's violet stamp still counts (originals benchmark, real set).
///
/// The marks are grouped by what lies within about a millimetre of each other. A group counts
/// when its marks span the size of a stamp or a signature (5 to 110 mm: not printed letters far
/// apart, nor a guilloche across the page), drawn in one movement (its longest stroke spans at
/// least 0.4 of it, where print is glyphs side by side) and not straight (no run along a row or
/// a column over 0.6 of it, as a frame's, a rule's or any solid shape's: a logo, a tab, a
/// booklet's cover).
pub(crate) fn hand_or_stamp_cells(mask: &[bool], w: usize, h: usize, mm: f32) -> usize {
    if w == 0 || h == 0 || mask.len() != w * h || mm <= 0.0 {
        return 0;
    }
    let reach = (1.0 / mm).round().max(1.0) as usize;
    let near = dilate(mask, w, h, reach);
    let groups = components(&near, w, h);
    let strokes = components(mask, w, h);
    let n = groups.count;
    // Per group: its box, its marks, its longest stroke, its longest straight runs.
    let boxes = components_boxes(&groups, mask, w);
    let mut marks = vec![0usize; n];
    for (i, &m) in mask.iter().enumerate() {
        if let Some(g) = groups.of(i) {
            marks[g] += usize::from(m);
        }
    }
    let stroke_boxes = components_boxes(&strokes, mask, w);
    let mut longest_stroke = vec![0usize; n];
    for i in 0..mask.len() {
        if let (Some(s), Some(g)) = (strokes.of(i), groups.of(i)) {
            let b = stroke_boxes[s];
            longest_stroke[g] = longest_stroke[g].max((b.2 - b.0 + 1).max(b.3 - b.1 + 1));
        }
    }
    let row_run = longest_runs(mask, &groups, h, w, |line, k| line * w + k);
    let col_run = longest_runs(mask, &groups, w, h, |line, k| k * w + line);
    (0..n)
        .filter(|&g| {
            let (x0, y0, x1, y1) = boxes[g];
            let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
            let (short, long) = (bw.min(bh) as f32 * mm, bw.max(bh) as f32 * mm);
            short >= 5.0
                && long <= 110.0
                && longest_stroke[g] as f32 >= 0.4 * bw.max(bh) as f32
                && (row_run[g] as f32) < 0.6 * bw as f32
                && (col_run[g] as f32) < 0.6 * bh as f32
        })
        .map(|g| marks[g])
        .sum()
}

/// Each region's bounding box (first column, first row, last column, last row) around its
/// marked cells: a group's, not the millimetre it was grown by to be one.
fn components_boxes(c: &Components, mask: &[bool], w: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut boxes = vec![(usize::MAX, usize::MAX, 0, 0); c.count];
    for (i, &marked) in mask.iter().enumerate() {
        if let (true, Some(l)) = (marked, c.of(i)) {
            let (x, y) = (i % w, i / w);
            let b = &mut boxes[l];
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    boxes
}

/// Each group's longest run of marked cells along one of `lines` lines of `along` cells, the
/// cell at `k` on `line` being `at(line, k)`: rows or columns.
fn longest_runs(mask: &[bool], groups: &Components, lines: usize, along: usize, at: impl Fn(usize, usize) -> usize) -> Vec<usize> {
    let mut longest = vec![0usize; groups.count];
    for line in 0..lines {
        let mut run = 0;
        for k in 0..along {
            let i = at(line, k);
            run = if mask[i] { run + 1 } else { 0 };
            if let (true, Some(g)) = (run > 0, groups.of(i)) {
                longest[g] = longest[g].max(run);
            }
        }
    }
    longest
}

/// The cells within `reach` cells (a square) of a marked one: along the rows, then the columns.
fn dilate(mask: &[bool], w: usize, h: usize, reach: usize) -> Vec<bool> {
    let rows = spread(mask, h, w, reach, |line, k| line * w + k);
    spread(&rows, w, h, reach, |line, k| k * w + line)
}

/// The cells within `reach` of a marked one on the same line (see [`longest_runs`] for `at`).
fn spread(mask: &[bool], lines: usize, along: usize, reach: usize, at: impl Fn(usize, usize) -> usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    for line in 0..lines {
        // The nearest mark before, then after.
        let mut last: Option<usize> = None;
        for k in 0..along {
            if mask[at(line, k)] {
                last = Some(k);
            }
            out[at(line, k)] = last.is_some_and(|l| k - l <= reach);
        }
        last = None;
        for k in (0..along).rev() {
            if mask[at(line, k)] {
                last = Some(k);
            }
            out[at(line, k)] |= last.is_some_and(|l| l - k <= reach);
        }
    }
    out
}

/// Connected regions of a mask (8-connected): each cell's region from 1, 0 off the mask (u32:
/// a million cells at most, see `raster::colour_of`).
struct Components {
    label: Vec<u32>,
    count: usize,
}

impl Components {
    /// The region of cell `i`, from 0.
    fn of(&self, i: usize) -> Option<usize> {
        self.label[i].checked_sub(1).map(|l| l as usize)
    }
}

fn components(mask: &[bool], w: usize, h: usize) -> Components {
    let mut label = vec![0u32; w * h];
    let mut count = 0;
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..w * h {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        count += 1;
        label[start] = count as u32;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && label[j] == 0 {
                        label[j] = count as u32;
                        stack.push(j);
                    }
                }
            }
        }
    }
    Components { label, count }
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
    fn wet_ink_is_blue_or_violet_not_black_grey_or_a_pale_tint() {
        // The last: a real livret's navy stamp as scanned.
        for blue in [[30, 50, 150], [40, 60, 200], [90, 40, 160], [20, 30, 110], [20, 40, 80]] {
            assert!(is_wet_ink(blue), "{blue:?}");
        }
        // The last two: slate-blue print, whose chroma does not make a page colourful, and a teal.
        for not in [[20, 20, 20], [128, 128, 128], [200, 215, 245], [180, 30, 30], [30, 120, 60], [250, 250, 250], [70, 80, 110], [40, 110, 130]] {
            assert!(!is_wet_ink(not), "{not:?}");
        }
    }

    /// An A4 page at `dpi` on white paper, with what `draw` puts on it, in millimetres.
    fn a4(dpi: f32, draw: impl Fn(&mut image::RgbImage, &dyn Fn(f32) -> f32)) -> crate::raster::PageRaster {
        let px = move |mm: f32| mm * dpi / 25.4;
        let mut page = image::RgbImage::from_pixel(px(210.0) as u32, px(297.0) as u32, image::Rgb([246, 246, 244]));
        draw(&mut page, &px);
        crate::raster::PageRaster::from_rgb(page)
    }

    fn fill(page: &mut image::RgbImage, inside: impl Fn(f32, f32) -> bool, ink: [u8; 3]) {
        for (x, y, p) in page.enumerate_pixels_mut() {
            if inside(x as f32, y as f32) {
                *p = image::Rgb(ink);
            }
        }
    }

    #[test]
    fn a_stamp_and_a_signature_count_as_wet_ink_and_printed_blue_does_not() {
        const VIOLET: [u8; 3] = [95, 45, 175];
        const BLUE: [u8; 3] = [35, 60, 185];
        let ring = |cx: f32, cy: f32, r: f32, half: f32| move |x: f32, y: f32| ((x - cx).hypot(y - cy) - r).abs() <= half;
        let signature = |page: &mut image::RgbImage, px: &dyn Fn(f32) -> f32| {
            let (x0, y0) = (px(110.0), px(236.0));
            fill(page, |x, y| (x0..x0 + px(45.0)).contains(&x) && (y - y0 - px(3.0) * ((x - x0) / px(7.0)).sin()).abs() <= px(0.3), BLUE);
        };
        let stamp = |page: &mut image::RgbImage, px: &dyn Fn(f32) -> f32| {
            // An officer's round stamp, its two rings, and a signature beside it.
            fill(page, ring(px(56.0), px(240.0), px(16.0), px(0.5)), VIOLET);
            fill(page, ring(px(56.0), px(240.0), px(11.0), px(0.25)), VIOLET);
            signature(page, px);
        };
        let stamped = a4(300.0, stamp);
        assert!(stamped.wet_ink >= WET_INK_MIN, "{}", stamped.wet_ink);
        assert!(suspicion(Some("ACTE_NAISSANCE"), &[paper_signs(&stamped)], 300.0).is_some());
        // The signature counts on its own, some 0.05 % of the page.
        assert!(a4(300.0, signature).wet_ink > WET_INK_MIN / 5.0);
        // At 600 dpi, on coarser cells (see `raster::colour_of`), about the same share.
        let fine = a4(600.0, stamp);
        assert!((fine.wet_ink / stamped.wet_ink - 1.0).abs() < 0.2, "{} {}", fine.wet_ink, stamped.wet_ink);
        // Printed blue, as on real livrets, letters and security paper; each would pass as ink
        // but for one test: labels (thin glyphs side by side, none spanning its block), a frame
        // and a solid logo (straight runs), a guilloche across the page (longer than any stamp or
        // signature), printed letters far apart (rounded strokes, smaller than any).
        let printed = a4(300.0, |page: &mut image::RgbImage, px: &dyn Fn(f32) -> f32| {
            fill(
                page,
                |x, y| (px(20.0)..px(120.0)).contains(&x) && (px(60.0)..px(90.0)).contains(&y) && (y / px(5.0)).fract() < 0.6 && (x / px(1.2)).fract() < 0.34,
                BLUE,
            );
            fill(page, |x, y| (x - px(40.0)).hypot(y - px(30.0)) <= px(9.0), BLUE);
            let (l, t, r, b) = (px(120.0), px(170.0), px(185.0), px(200.0));
            let frame = move |x: f32, y: f32| {
                (l..r).contains(&x) && (t..b).contains(&y) && !((l + px(0.6)..r - px(0.6)).contains(&x) && (t + px(0.6)..b - px(0.6)).contains(&y))
            };
            fill(page, frame, BLUE);
            fill(
                page,
                |x, y| {
                    (px(20.0)..px(190.0)).contains(&x) && (px(210.0)..px(280.0)).contains(&y) && {
                        // An "o" in each 8-mm square.
                        let (dx, dy) = (x % px(8.0) - px(4.0), y % px(8.0) - px(4.0));
                        (dx.hypot(dy) - px(2.0)).abs() <= px(0.15)
                    }
                },
                BLUE,
            );
            for k in 0..4 {
                let y0 = px(120.0 + 3.0 * k as f32);
                fill(page, |x, y| (px(20.0)..px(190.0)).contains(&x) && (y - y0 - px(2.0) * (x / px(1.6)).sin()).abs() <= px(0.2), BLUE);
            }
        });
        let all_blue = printed.rgb.as_ref().map_or(0, |rgb| rgb.pixels().filter(|p| is_wet_ink(p.0)).count()) as f32;
        assert!(all_blue / (printed.width() * printed.height()) as f32 > 2.0 * WET_INK_MIN, "the test's print would pass as ink if it counted");
        assert!(printed.wet_ink < WET_INK_MIN / 4.0, "{}", printed.wet_ink);
        assert_eq!(suspicion(Some("LIVRET_FAMILLE"), &[paper_signs(&printed)], 300.0), None);
        // A stamp too small for the page to be kept in colour, at 150 dpi, is measured all the
        // same; a grey scan shows none.
        let small = a4(150.0, stamp);
        assert!(small.rgb.is_none(), "stored grey");
        assert!(small.wet_ink >= WET_INK_MIN, "{}", small.wet_ink);
        assert_eq!(crate::raster::PageRaster::from_gray(image::GrayImage::new(10, 10), false).wet_ink, 0.0);
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
            vector: None,
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
