//! The qualifier of the bureau: a request's pages become classified pieces.
//!
//! - [`reader`] reads each page (layout measures, then OCR where it pays) into features;
//! - [`pieces`] cuts the request's pages into documents, classifies each against the rules of
//!   [`lexicon`] and the filing plan, attributes identity documents ([`identity`]) and explains;
//! - [`Classifier`] plugs both into the pipeline's `Qualifier` seam.
//!
//! Everything but [`ocr`] is plain functions over data.

pub mod identity;
pub mod layout;
pub mod lexicon;
pub mod mrz;
pub mod ocr;
pub mod pieces;
pub mod reader;
pub mod twoddoc;

use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::qualify::{PageFeatures, PageView, PieceDraft, Qualifier, QualifyInput};

pub use lexicon::{DEFAULT_LEXICON, Lexicon, LexiconError};
pub use reader::ReaderConfig;

/// Reads pages with Tesseract and qualifies pieces with the lexicon's rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub lexicon: Lexicon,
    pub reader: ReaderConfig,
    /// Certificates 2D-Doc signatures are checked against (empty: read, not verified).
    pub trust: twoddoc::TrustList,
}

impl Classifier {
    /// The bundled rules, checked against `plan`.
    pub fn new(plan: &FilingPlan, reader: ReaderConfig) -> Result<Self, LexiconError> {
        Ok(Self { lexicon: Lexicon::load(DEFAULT_LEXICON, plan)?, reader, trust: twoddoc::TrustList::default() })
    }
}

impl Qualifier for Classifier {
    fn read_page(&self, page: &PageView<'_>) -> PageFeatures {
        reader::read_page(page, &self.lexicon, &self.reader)
    }

    fn qualify(&self, input: &QualifyInput<'_>) -> Vec<PieceDraft> {
        let pages: Vec<(usize, &PageFeatures)> = input.sheets.iter().flatten().map(|&i| (i, &input.features[i])).collect();
        pieces::qualify_pages_with(&self.lexicon, &self.trust, input.household, &pages)
    }
}
