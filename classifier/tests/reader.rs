//! The reader on rendered pages: what it reads first, its budget, pages it cannot read.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use scanbureau_classifier::{Classifier, ReaderConfig};
use scanbureau_fixtures::catalogue::{Cast, PlanDoc, Subject, draw};
use scanbureau_fixtures::page::{Canvas, Scan};
use scanbureau_pipeline::analysis::{AnalysisParams, analyse_and_read};
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::qualify::{PageFeatures, PageView, Qualifier};
use scanbureau_pipeline::raster::PageRaster;

fn classifier(budget_mpx: f32) -> Classifier {
    let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
    Classifier::new(&plan, ReaderConfig { budget_mpx, ..ReaderConfig::default() }).expect("rules")
}

fn read(c: &Classifier, scan: Scan) -> PageFeatures {
    let raster = PageRaster::from_gray(scan.to_gray(), false);
    analyse_and_read(raster, &AnalysisParams::default(), &|v| c.read_page(v)).1
}

/// Reads a page as the first of its input (a file deposited alone).
fn read_opening(c: &Classifier, scan: Scan) -> PageFeatures {
    let raster = PageRaster::from_gray(scan.to_gray(), false);
    analyse_and_read(raster, &AnalysisParams::default(), &|v| c.read_page(&PageView { opens_input: true, ..*v })).1
}

/// An old civil-status extract whose title (a stamp, a handwritten line) is not read: plain
/// French prose with one formula a document's rules know ("est décédé").
fn untitled_extract() -> Scan {
    let mut c = Canvas::new(200.0, 245, false);
    for k in 0..14 {
        let line = if k % 2 == 0 {
            "Le cinq septembre mil neuf cent soixante dix, huit heures, est décédé en son domicile"
        } else {
            "Jean Martin, né à Lyon, fils de Pierre Martin et de Marie Durand, son épouse."
        };
        c.text(20.0, 40.0 + k as f32 * 7.0, 11.0, line, false, [20, 20, 25]);
    }
    c.finish()
}

#[test]
fn an_input_s_first_page_that_names_nothing_is_read_whole_and_a_continuation_is_not() {
    let c = classifier(12.0);
    // Inside a file, plain text with a document's formula is taken for a page that continues
    // the document before it: the cheap passes are enough.
    let inside = read(&c, untitled_extract());
    assert!(inside.text.as_deref().unwrap_or("").to_lowercase().contains("décédé"), "{inside:#?}");
    assert!(!inside.reading.iter().any(|r| r.starts_with("ocr whole page")), "{:?}", inside.reading);
    // The same page opening its file begins a document: nothing names it yet, so it is read whole,
    // and the reading says why.
    let opening = read_opening(&c, untitled_extract());
    assert!(opening.reading.iter().any(|r| r.starts_with("ocr whole page")), "{:?}", opening.reading);
    assert!(opening.reading.iter().any(|r| r == "an input's first page that names no document yet: page read whole"), "{:?}", opening.reading);
    // A titled page opening its file is told by the cheap passes and read no further.
    let mut rng = SmallRng::seed_from_u64(4);
    let p = scanbureau_fixtures::people::person(&mut rng, "069", "G0001");
    let doc = PlanDoc::of_type("BULLETIN_SALAIRE", Subject::Demandeur, &mut rng).expect("type");
    let cast = Cast::new(&doc, &p, &mut rng);
    let titled = read_opening(&c, draw(&doc, 0, &cast, 200.0, 245, &mut rng));
    assert!(!titled.reading.iter().any(|r| r.starts_with("ocr whole page")), "{:?}", titled.reading);
}

/// A page in English: nothing the rules know, so the reader would go on to the body.
fn foreign_page() -> Scan {
    let mut c = Canvas::new(200.0, 245, false);
    c.text(20.0, 30.0, 14.0, "TENANCY AGREEMENT", true, [20, 20, 25]);
    for k in 0..20 {
        c.text(20.0, 50.0 + k as f32 * 6.0, 10.0, "The landlord agrees to let and the tenant agrees to take the premises.", false, [20, 20, 25]);
    }
    c.finish()
}

#[test]
fn a_titled_page_is_told_from_its_title_and_header_alone() {
    let mut rng = SmallRng::seed_from_u64(4);
    let p = scanbureau_fixtures::people::person(&mut rng, "069", "G0001");
    let doc = PlanDoc::of_type("BULLETIN_SALAIRE", Subject::Demandeur, &mut rng).expect("type");
    let cast = Cast::new(&doc, &p, &mut rng);
    let f = read(&classifier(12.0), draw(&doc, 0, &cast, 200.0, 245, &mut rng));
    let title = f.title.clone().unwrap_or_default().to_uppercase();
    assert!(title.contains("BULLETIN") || title.contains("FICHE DE PAIE"), "{f:#?}");
    assert!(!f.reading.iter().any(|r| r.starts_with("ocr body")), "no body pass needed: {:?}", f.reading);
}

#[test]
fn the_body_then_the_whole_page_are_read_only_within_the_budget() {
    let f = read(&classifier(12.0), foreign_page());
    assert!(f.reading.iter().any(|r| r.starts_with("ocr body")), "{:?}", f.reading);
    assert!(f.reading.iter().any(|r| r.starts_with("ocr whole page")), "{:?}", f.reading);
    // The same page read twice is read the same way (a budget of work, not of time).
    assert_eq!(read(&classifier(12.0), foreign_page()).text, f.text);
    let f = read(&classifier(0.2), foreign_page());
    assert!(!f.reading.iter().any(|r| r.starts_with("ocr whole page")), "{:?}", f.reading);
    assert!(f.reading.iter().any(|r| r.contains("budget spent")), "{:?}", f.reading);
}

#[test]
fn a_dark_scan_is_not_read_and_says_why() {
    let c = Canvas::new(200.0, 60, false);
    let f = read(&classifier(12.0), c.finish());
    assert!(f.layout.unreadable, "{f:#?}");
    assert!(f.text.is_none());
}
