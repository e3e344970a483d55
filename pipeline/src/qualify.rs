//! The seam where a request's pages become pieces (segmentation and classification).
//!
//! Each page of a piece is read once, while its pixels are at hand ([`Qualifier::read_page`],
//! in parallel); then the job hands the [`Qualifier`] a request's sheets (non-blank pages, recto
//! then verso), the features read on them and the request's household, and gets
//! [`PieceDraft`]s back. The `scanbureau-classifier` crate is the qualifier; this module only
//! says what crosses the seam, so the core needs neither OCR nor its rules.

use crate::ids::{NumeroUnique, PageIndex};
use crate::plan::FilingPlan;
use crate::reason::ReasonCode;

/// Features read from a page while it was decoded (before its pixels were let go).
#[derive(Debug, Clone, Default)]
pub struct PageFeatures {
    /// Text read on the page (the regions read, top to bottom), if a reader ran.
    pub text: Option<String>,
    /// Text of the page's title lines (the largest print in its upper part).
    pub title: Option<String>,
    /// Text of the address block (a letter's window: whom the document is sent to).
    pub addressee: Option<String>,
    /// Content of QR codes on the page (a tax notice's verification code, say).
    pub other_qr: Vec<String>,
    /// Content of DataMatrix codes on the page (a 2D-Doc), separators kept.
    pub datamatrix: Vec<String>,
    /// The lines read in a machine-readable zone (identity documents), as OCR gave them.
    pub mrz: Option<String>,
    /// The text came from the PDF's own text layer (exact), not from OCR.
    pub text_layer: bool,
    /// The page read better turned half a turn: it is stored that way.
    pub half_turn: bool,
    /// The page read better mirrored left to right (a phone's front camera mirrors what it
    /// takes): it is stored that way, after the half turn if there is one.
    pub mirrored: bool,
    pub layout: PageLayout,
    /// How the page was read: passes of OCR, their cost, why the reader stopped.
    pub reading: Vec<String>,
    /// CPU time spent reading the page (OCR and layout), in milliseconds.
    pub read_ms: f32,
    /// Tesseract's mean confidence over what it read (0-100, weighted by characters), 0 when
    /// nothing was read by OCR.
    pub ocr_confidence: f32,
}

/// Cheap image measures of a page, taken without OCR.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PageLayout {
    pub text_lines: u16,
    /// Lines set clearly larger than the body text, in the upper half.
    pub title_lines: u16,
    /// Card-sized tinted rectangles (identity cards, residence permits photocopied).
    pub cards: u8,
    /// Photograph-like blocks (dense, shaded, not text).
    pub photos: u8,
    /// Long horizontal rules (tables, forms).
    pub rules: u16,
    /// Share of inked pixels.
    pub ink_ratio: f32,
    /// Median height of the text lines, in millimetres.
    pub line_mm: f32,
    /// Paper brightness and print contrast are too poor to read (very dark or very light).
    pub unreadable: bool,
}

/// A page that will be part of a piece, upright, as the reader gets it.
pub struct PageView<'a> {
    pub raster: &'a crate::raster::PageRaster,
    /// The page binarised (1 = ink), same size as the raster.
    pub ink: &'a crate::binarize::Bitmap,
    pub content: crate::lightpdf::PageContent,
    /// The print did not say which way up the page is: the reader may try both.
    pub orientation_unsure: bool,
    /// The page's own text (a PDF's text layer), when it has one.
    pub text_layer: Option<&'a crate::pdftext::TextLayer>,
    /// The DataMatrix codes (2D-Doc) found on the page: what they sign, the reader checks in print.
    pub datamatrix: &'a [String],
    /// The first page of an input (a file deposited, or a scanned batch's folder): it begins a
    /// document, so it is never another document's continuation. Only the caller knows.
    pub opens_input: bool,
}

/// A person of the request's household, as the registry records them.
#[derive(Debug, Clone, PartialEq)]
pub struct HouseholdMember {
    pub nom: String,
    pub prenoms: String,
    pub date_naissance: Option<chrono::NaiveDate>,
}

/// Who a request's identity documents may belong to.
#[derive(Debug, Clone, Default)]
pub struct Household {
    pub demandeur: Option<HouseholdMember>,
    pub conjoint: Option<HouseholdMember>,
    pub personnes_a_charge: Vec<HouseholdMember>,
}

/// A request's pages as the qualifier sees them.
#[derive(Debug)]
pub struct QualifyInput<'a> {
    pub numero: Option<&'a NumeroUnique>,
    /// Sheets in scanner order; each lists its non-blank pages (recto, then verso).
    pub sheets: &'a [Vec<PageIndex>],
    /// Features of every page of the mailing, by page index.
    pub features: &'a [PageFeatures],
    pub plan: &'a FilingPlan,
    /// The applicant and family (from the fiche and the registry), to attribute identity pieces.
    pub household: &'a Household,
}

/// One piece as the qualifier proposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PieceDraft {
    /// Page indices in document order.
    pub pages: Vec<PageIndex>,
    pub categorie: Option<String>,
    pub type_code: Option<String>,
    /// Calibrated confidence in the category and type, 0-1.
    pub confidence: f32,
    /// Why: matched keywords, features, scores.
    pub evidence: Vec<String>,
    /// A reason when the qualifier itself refuses the piece (illegible, out of scope).
    pub rejection: Option<ReasonCode>,
}

pub trait Qualifier: Sync {
    /// Reads what this qualifier needs from a page of a piece (runs once per page, in parallel).
    fn read_page(&self, _page: &PageView<'_>) -> PageFeatures {
        PageFeatures::default()
    }

    /// Cuts a request's sheets into pieces and classifies them.
    fn qualify(&self, input: &QualifyInput<'_>) -> Vec<PieceDraft>;
}
