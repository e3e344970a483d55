//! `report.json`, as `report-contract.md` names it. External tools read it: keep names and
//! meanings stable, add fields freely.

use serde::{Deserialize, Serialize};

use crate::reason::{AnomalyCode, ReasonCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Partial,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PieceStatus {
    /// Filed: its light PDF is written and it goes to the registry.
    Uploaded,
    Rejected,
    /// The qualifier was not confident enough: an operator decides.
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageRole {
    Slip,
    Piece,
    Blank,
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderKind {
    Guichet,
    Demandeur,
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub batch: BatchReport,
    pub slips: Vec<SlipReport>,
    pub requests: Vec<RequestReport>,
    pub pages: Vec<PageReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sender {
    pub kind: SenderKind,
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchReport {
    pub id: String,
    pub channel: String,
    pub sender: Sender,
    pub received_at: String,
    pub due_at: String,
    pub pages: usize,
    pub status: Status,
    #[serde(default)]
    pub reason: Option<ReasonCode>,
    pub anomalies: Vec<AnomalyReport>,
    /// Notice about the mailing as a whole (non-conforming mailing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub plan_version: String,
    /// Per input file, whether it was read as a duplex scan.
    pub duplex: Vec<bool>,
    pub counts: Counts,
}

/// Totals an operator reads first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub slip: usize,
    pub piece: usize,
    pub blank: usize,
    pub rejected: usize,
    pub pieces_uploaded: usize,
    pub pieces_review: usize,
    pub pieces_rejected: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyReport {
    pub code: AnomalyCode,
    pub detail: String,
    pub pages: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlipReport {
    pub page: usize,
    pub kind: String,
    pub payload: String,
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestReport {
    pub numero_unique: Option<String>,
    pub slip_page: Option<usize>,
    pub status: Status,
    pub reason: Option<ReasonCode>,
    pub pieces: Vec<PieceReport>,
    pub notice: Option<String>,
    /// Why no notice was written (no known recipient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_missing: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PieceReport {
    pub id: String,
    pub pages: Vec<usize>,
    pub categorie: Option<String>,
    #[serde(rename = "type")]
    pub type_code: Option<String>,
    pub confidence: f32,
    pub sensible: bool,
    pub status: PieceStatus,
    pub reason: Option<ReasonCode>,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub plan_version: String,
    pub evidence: Vec<String>,
    /// An original sent by mistake, marked by an operator's separator sheet: the file is the
    /// bureau's copy of it, stamped "COPIE"; the paper goes back to the GIP SNE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageReport {
    pub index: usize,
    pub source: String,
    pub role: PageRole,
    pub piece: Option<String>,
    pub reason: Option<ReasonCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The page was turned right way up before filing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotated: bool,
    /// Bytes of the page's images in its piece's PDF (`detail` says how it is stored and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<usize>,
    /// How the page was put straight and read: corrections, reading passes, their cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reading: Vec<String>,
}

impl Report {
    /// Checks the report's own invariant: every input page appears once, in order, with one
    /// role; piece pages name a piece that lists them. Returns what is wrong.
    pub fn check_accounting(&self) -> Result<(), String> {
        if self.pages.len() != self.batch.pages {
            return Err(format!("{} page entries for {} pages", self.pages.len(), self.batch.pages));
        }
        for (i, p) in self.pages.iter().enumerate() {
            if p.index != i {
                return Err(format!("page entry {i} has index {}", p.index));
            }
            match p.role {
                PageRole::Rejected if p.reason.is_none() => return Err(format!("page {i} rejected without reason")),
                PageRole::Piece => {
                    let Some(id) = &p.piece else { return Err(format!("page {i} is a piece page without piece")) };
                    let listed = self.requests.iter().flat_map(|r| &r.pieces).any(|pc| &pc.id == id && pc.pages.contains(&i));
                    if !listed {
                        return Err(format!("page {i} names piece {id} which does not list it"));
                    }
                }
                _ => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        for pc in self.requests.iter().flat_map(|r| &r.pieces) {
            for &pg in &pc.pages {
                if !seen.insert(pg) {
                    return Err(format!("page {pg} is in two pieces"));
                }
            }
        }
        Ok(())
    }
}
