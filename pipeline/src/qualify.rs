//! The seam where a request's pages become pieces (segmentation and classification).
//!
//! The job hands a [`Qualifier`] the request's sheets (non-blank pages, recto then verso) and gets
//! [`PieceDraft`]s back. The classifier crate plugs in here; until then [`OneSheetOnePiece`]
//! makes each physical sheet a piece whose category is unknown, so it waits for an operator.

use crate::ids::{NumeroUnique, PageIndex};
use crate::plan::FilingPlan;
use crate::reason::ReasonCode;

/// Features read from a page while it was decoded (before its pixels were let go).
#[derive(Debug, Clone, Default)]
pub struct PageFeatures {
    /// Text read on the page, if a reader ran.
    pub text: Option<String>,
    /// Content of QR codes that were not slips (a tax notice's verification code, say).
    pub other_qr: Vec<String>,
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
    /// Reads what this qualifier needs from a decoded page (runs once per page, in parallel).
    fn read_page(&self, _raster: &crate::raster::PageRaster) -> PageFeatures {
        PageFeatures::default()
    }

    /// Cuts a request's sheets into pieces and classifies them.
    fn qualify(&self, input: &QualifyInput<'_>) -> Vec<PieceDraft>;
}

/// Stand-in until the classifier: one physical sheet is one piece, category unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct OneSheetOnePiece;

impl Qualifier for OneSheetOnePiece {
    fn qualify(&self, input: &QualifyInput<'_>) -> Vec<PieceDraft> {
        input
            .sheets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|sheet| PieceDraft {
                pages: sheet.clone(),
                categorie: None,
                type_code: None,
                confidence: 0.0,
                evidence: vec!["one sheet = one piece (no classifier)".into()],
                rejection: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_makes_one_piece_per_sheet() {
        let plan = FilingPlan::from_toml(crate::config::DEFAULT_PLAN).expect("plan");
        let sheets = vec![vec![2, 3], vec![4], vec![]];
        let features = vec![PageFeatures::default(); 5];
        let pieces = OneSheetOnePiece.qualify(&QualifyInput { numero: None, sheets: &sheets, features: &features, plan: &plan });
        assert_eq!(pieces.iter().map(|p| p.pages.clone()).collect::<Vec<_>>(), vec![vec![2, 3], vec![4]]);
        assert!(pieces.iter().all(|p| p.categorie.is_none() && p.confidence == 0.0));
    }
}
