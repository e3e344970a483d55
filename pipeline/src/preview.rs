//! Page previews for people: a small PNG of one page of a piece's PDF, for the operators'
//! review queue. Same decoding as the job, so a preview shows what the classifier saw.

use std::io::Cursor;

use crate::input::split_pdf;
use crate::raster::{Limits, decode_page};

/// A PNG of page `page` (from 0) of a PDF, `width` pixels wide; `None` when the page does not
/// exist or cannot be read.
pub fn page_png(pdf: &[u8], page: usize, width: u32) -> Option<Vec<u8>> {
    let pages = split_pdf("piece.pdf", pdf, &Limits::default());
    let raster = decode_page(&pages.get(page)?.blob, &Limits::default()).ok()?;
    let img = raster.gray;
    let height = ((img.height() as u64 * width as u64) / img.width().max(1) as u64).max(1) as u32;
    let small = image::imageops::resize(&img, width, height, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    small.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slip::{Bordereau, Slip};
    use crate::{Departement, NumeroGuichet};

    #[test]
    fn a_page_becomes_a_small_png_and_a_missing_page_nothing() {
        let slip = Slip::Bordereau(Bordereau {
            guichet: NumeroGuichet::parse("G0042").expect("guichet"),
            departement: Departement::parse("974").expect("departement"),
            nb_dossiers: 1,
            nb_pages_total: 3,
            date_transmission: chrono::NaiveDate::from_ymd_opt(2026, 11, 18).expect("date"),
        });
        let pdf = crate::slip_print::slip_pdf(&slip).expect("pdf");
        let png = page_png(&pdf, 0, 200).expect("preview");
        let img = image::load_from_memory(&png).expect("a PNG");
        assert_eq!(img.width(), 200);
        assert!((280..=285).contains(&img.height()), "A4 proportions: {}", img.height());
        assert!(page_png(&pdf, 1, 200).is_none());
        assert!(page_png(b"not a pdf", 0, 200).is_none());
    }
}
