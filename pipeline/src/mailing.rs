//! Splitting a mailing's page stream into requests, and checking it is conforming.
//!
//! Counter mailing: `[bordereau] [fiche A] [pieces of A] [fiche B] ...`; applicant mailing:
//! `[attestation] [pieces]`; portal and mail deposits: fiches inside, or one request whose number
//! came with the upload. Duplex scans are paired into sheets (recto, verso) so a piece's two
//! sides stay together.

use crate::config::DuplexMode;
use crate::ids::{NumeroUnique, PageIndex};
use crate::reason::{AnomalyCode, ReasonCode};
use crate::slip::{Attestation, Bordereau, Fiche, PayloadError, Slip, SlipKind, SlipParse};

/// What the page step found on one page, as the split needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum PageFact {
    Unreadable {
        reason: ReasonCode,
        detail: String,
    },
    Blank,
    Slip(SlipParse),
    /// The bureau's own separator sheet, put by an operator before an original sent by mistake
    /// (see [`crate::originals::SEPARATOR_PAYLOAD`]): no page of the mailing, never counted.
    OriginalSeparator,
    Content,
}

#[derive(Debug, Clone)]
pub struct PageInfo {
    pub fact: PageFact,
    /// The input file the page came from (duplex pairing never crosses files).
    pub group: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channel {
    #[default]
    Paper,
    Portal,
    Mail,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Portal => "portal",
            Self::Mail => "mail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailingKind {
    /// From a counter, with its bordereau.
    Guichet,
    /// From an applicant, with the attestation on top.
    Demandeur,
    /// Sender not known from the slips (portal deposit without bordereau, non-conforming mail).
    Unknown,
}

/// How a request was identified.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestSlip {
    Fiche(Fiche),
    Attestation(Attestation),
    /// Number given with a portal upload.
    Given(NumeroUnique),
    /// A fiche or attestation whose payload is off the contract.
    Invalid {
        kind: SlipKind,
        error: PayloadError,
    },
}

#[derive(Debug, Clone)]
pub struct RequestSplit {
    pub slip_page: Option<PageIndex>,
    pub slip: RequestSlip,
    /// Sheets of the request (non-blank readable pages, recto then verso).
    pub sheets: Vec<Vec<PageIndex>>,
    /// Non-blank pages of the request including its slip (what the fiche's `nb_pages` counts).
    pub page_count: u32,
    /// The first page after each of the operators' separator sheets in the request: where an
    /// original sent by mistake begins.
    pub originals_from: Vec<PageIndex>,
}

impl RequestSplit {
    pub fn numero(&self) -> Option<&NumeroUnique> {
        match &self.slip {
            RequestSlip::Fiche(f) => Some(&f.numero),
            RequestSlip::Attestation(a) => Some(&a.numero),
            RequestSlip::Given(n) => Some(n),
            RequestSlip::Invalid { .. } => None,
        }
    }

    /// A reason the slip itself gives to refuse the request.
    pub fn slip_rejection(&self) -> Option<ReasonCode> {
        match &self.slip {
            RequestSlip::Invalid { error, .. } if error.is_numero() => Some(ReasonCode::NumeroInvalide),
            RequestSlip::Invalid { .. } => Some(ReasonCode::FicheIllisible),
            _ => None,
        }
    }
}

/// Where a page stands after the split.
#[derive(Debug, Clone, PartialEq)]
pub enum PageFate {
    Slip,
    Blank,
    Rejected {
        reason: ReasonCode,
        detail: Option<String>,
    },
    /// Part of request number `n` (index into `requests`).
    InRequest(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub code: AnomalyCode,
    pub detail: String,
    pub pages: Vec<PageIndex>,
}

#[derive(Debug, Clone)]
pub struct MailingSplit {
    pub kind: MailingKind,
    pub bordereau: Option<(PageIndex, Result<Bordereau, PayloadError>)>,
    pub requests: Vec<RequestSplit>,
    pub fates: Vec<PageFate>,
    pub anomalies: Vec<Anomaly>,
    /// The whole mailing is non-conforming (`PLI_SANS_BORDEREAU`).
    pub rejection: Option<ReasonCode>,
    /// Per input file: was it read as a duplex scan.
    pub duplex: Vec<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct SplitParams {
    pub channel: Channel,
    /// Portal deposit for one request without fiche.
    pub numero_unique: Option<NumeroUnique>,
    pub duplex: DuplexMode,
}

/// A file is a duplex scan when its blank pages fall on the backs: even page count, a fair share
/// of backs blank and nearly no front blank.
pub fn looks_duplex(facts: &[&PageFact]) -> bool {
    let n = facts.len();
    if n < 2 || !n.is_multiple_of(2) {
        return false;
    }
    let blank_fronts = facts.iter().step_by(2).filter(|f| matches!(f, PageFact::Blank)).count();
    let blank_backs = facts.iter().skip(1).step_by(2).filter(|f| matches!(f, PageFact::Blank)).count();
    let sheets = n / 2;
    blank_backs * 4 >= sheets && blank_backs >= 1 && blank_fronts * 4 <= blank_backs
}

/// Groups pages into sheets, file by file.
fn sheets_of(pages: &[PageInfo], mode: DuplexMode) -> (Vec<Vec<PageIndex>>, Vec<bool>) {
    let mut sheets = Vec::new();
    let mut duplex_by_group = Vec::new();
    let mut start = 0;
    while start < pages.len() {
        let group = pages[start].group;
        let mut end = start;
        while end < pages.len() && pages[end].group == group {
            end += 1;
        }
        let facts: Vec<&PageFact> = pages[start..end].iter().map(|p| &p.fact).collect();
        let duplex = match mode {
            DuplexMode::Duplex => true,
            DuplexMode::Simplex => false,
            DuplexMode::Auto => looks_duplex(&facts),
        };
        duplex_by_group.push(duplex);
        let step = if duplex { 2 } else { 1 };
        let mut i = start;
        while i < end {
            sheets.push((i..(i + step).min(end)).collect());
            i += step;
        }
        start = end;
    }
    (sheets, duplex_by_group)
}

/// Splits a mailing's pages into requests and gives every page a fate.
pub fn split_mailing(pages: &[PageInfo], params: &SplitParams) -> MailingSplit {
    let (sheets, duplex) = sheets_of(pages, params.duplex);
    let mut fates: Vec<PageFate> = vec![PageFate::Blank; pages.len()];
    let mut requests: Vec<RequestSplit> = Vec::new();
    let mut anomalies = Vec::new();
    let mut bordereau: Option<(PageIndex, Result<Bordereau, PayloadError>)> = None;
    let mut first_slip_kind: Option<SlipKind> = None;

    // Set by an operator's separator sheet: the next page read begins an original.
    let mut original_next = false;
    for sheet in &sheets {
        if sheet.iter().any(|&i| pages[i].fact == PageFact::OriginalSeparator) {
            for &i in sheet {
                fates[i] = if pages[i].fact == PageFact::OriginalSeparator { PageFate::Slip } else { PageFate::Blank };
            }
            original_next = true;
            continue;
        }
        let slip = sheet.iter().find_map(|&i| match &pages[i].fact {
            PageFact::Slip(p) => Some((i, p.clone())),
            _ => None,
        });
        if let Some((slip_page, parse)) = slip {
            // The whole sheet is the slip (a verso with print is the slip's back).
            for &i in sheet {
                fates[i] = match &pages[i].fact {
                    PageFact::Blank => PageFate::Blank,
                    PageFact::Unreadable { reason, detail } => PageFate::Rejected { reason: *reason, detail: Some(detail.clone()) },
                    _ => PageFate::Slip,
                };
            }
            let kind = match &parse {
                SlipParse::Valid(s) => s.kind(),
                SlipParse::Invalid { kind, .. } => *kind,
                SlipParse::NotASlip => continue,
            };
            first_slip_kind.get_or_insert(kind);
            if let SlipParse::Invalid { error, .. } = &parse {
                anomalies.push(Anomaly { code: AnomalyCode::SlipInvalide, detail: format!("{}: {error}", kind.as_str()), pages: vec![slip_page] });
            }
            let new_request = |slip: RequestSlip| RequestSplit {
                slip_page: Some(slip_page),
                slip,
                sheets: Vec::new(),
                page_count: sheet.iter().filter(|&&i| pages[i].fact != PageFact::Blank).count() as u32,
                originals_from: Vec::new(),
            };
            match parse {
                SlipParse::Valid(Slip::Bordereau(b)) if bordereau.is_none() && requests.is_empty() => bordereau = Some((slip_page, Ok(b))),
                SlipParse::Invalid { kind: SlipKind::Bordereau, error } if bordereau.is_none() && requests.is_empty() => {
                    bordereau = Some((slip_page, Err(error)))
                }
                SlipParse::Valid(Slip::Bordereau(_)) | SlipParse::Invalid { kind: SlipKind::Bordereau, .. } => anomalies.push(Anomaly {
                    code: AnomalyCode::SlipInvalide,
                    detail: "bordereau inside the mailing, after its first request".into(),
                    pages: vec![slip_page],
                }),
                SlipParse::Valid(Slip::Fiche(f)) => requests.push(new_request(RequestSlip::Fiche(f))),
                SlipParse::Valid(Slip::Attestation(a)) => requests.push(new_request(RequestSlip::Attestation(a))),
                SlipParse::Invalid { kind, error } => requests.push(new_request(RequestSlip::Invalid { kind, error })),
                SlipParse::NotASlip => {}
            }
            continue;
        }
        // A sheet of content: it belongs to the current request, or to the given number.
        if requests.is_empty()
            && let Some(n) = &params.numero_unique
        {
            requests.push(RequestSplit { slip_page: None, slip: RequestSlip::Given(n.clone()), sheets: Vec::new(), page_count: 0, originals_from: Vec::new() });
        }
        let current = requests.len().checked_sub(1);
        let mut readable = Vec::new();
        for &i in sheet {
            match &pages[i].fact {
                PageFact::Blank => fates[i] = PageFate::Blank,
                PageFact::Unreadable { reason, detail } => {
                    fates[i] = PageFate::Rejected { reason: *reason, detail: Some(detail.clone()) };
                    if let Some(r) = current {
                        requests[r].page_count += 1;
                    }
                }
                _ => match current {
                    Some(r) => {
                        fates[i] = PageFate::InRequest(r);
                        requests[r].page_count += 1;
                        readable.push(i);
                    }
                    None => fates[i] = PageFate::Rejected { reason: ReasonCode::DemandeSansFiche, detail: None },
                },
            }
        }
        if let Some(r) = current
            && let Some(&first) = readable.first()
        {
            if std::mem::take(&mut original_next) {
                requests[r].originals_from.push(first);
            }
            requests[r].sheets.push(readable);
        }
    }

    let kind = if bordereau.is_some() {
        MailingKind::Guichet
    } else if first_slip_kind == Some(SlipKind::Attestation) {
        MailingKind::Demandeur
    } else {
        MailingKind::Unknown
    };
    // A paper mailing is a counter's (bordereau required) unless an attestation opens it.
    let rejection = (params.channel == Channel::Paper && kind == MailingKind::Unknown).then_some(ReasonCode::PliSansBordereau);
    if let Some(reason) = rejection {
        for (i, f) in fates.iter_mut().enumerate() {
            if !matches!(f, PageFate::Blank) && !matches!(pages[i].fact, PageFact::Unreadable { .. }) {
                *f = PageFate::Rejected { reason, detail: None };
            }
        }
    }

    let non_blank = pages.iter().filter(|p| !matches!(p.fact, PageFact::Blank | PageFact::OriginalSeparator)).count() as u32;
    if let Some((page, Ok(b))) = &bordereau {
        let fiches = requests.len() as u32;
        if b.nb_dossiers != fiches {
            anomalies.push(Anomaly {
                code: AnomalyCode::NbDossiersIncoherent,
                detail: format!("bordereau announces {} requests, {} found", b.nb_dossiers, fiches),
                pages: vec![*page],
            });
        }
        if b.nb_pages_total != non_blank {
            anomalies.push(Anomaly {
                code: AnomalyCode::NbPagesIncoherent,
                detail: format!("bordereau announces {} pages, {} scanned (blank backs excluded)", b.nb_pages_total, non_blank),
                pages: vec![*page],
            });
        }
    }
    for r in &requests {
        if let (RequestSlip::Fiche(f), Some(page)) = (&r.slip, r.slip_page)
            && f.nb_pages != r.page_count
        {
            anomalies.push(Anomaly {
                code: AnomalyCode::NbPagesIncoherent,
                detail: format!("fiche of {} announces {} pages, {} scanned", f.numero, f.nb_pages, r.page_count),
                pages: vec![page],
            });
        }
    }
    MailingSplit { kind, bordereau, requests, fates, anomalies, rejection, duplex }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slip::parse_payload;

    fn slip(s: &str) -> PageFact {
        PageFact::Slip(parse_payload(s.as_bytes()))
    }
    const BT: &str = "SNE-BT|1|G0042|074|2|6|2026-11-18";
    const FA: &str = "SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-02-14|2|3|2026-11-16";
    const FB: &str = "SNE-FR|1|0740126000124G0042|MARTIN|LUC|1970-01-01|1|2|2026-11-16";

    fn pages(facts: Vec<PageFact>) -> Vec<PageInfo> {
        facts.into_iter().map(|fact| PageInfo { fact, group: 0 }).collect()
    }

    #[test]
    fn counter_mailing_simplex() {
        use PageFact::*;
        let p = pages(vec![slip(BT), slip(FA), Content, Content, slip(FB), Content]);
        let s = split_mailing(&p, &SplitParams::default());
        assert_eq!(s.kind, MailingKind::Guichet);
        assert_eq!(s.requests.len(), 2);
        assert_eq!(s.requests[0].sheets, vec![vec![2], vec![3]]);
        assert_eq!(s.requests[1].sheets, vec![vec![5]]);
        assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
        assert_eq!(s.fates[0], PageFate::Slip);
        assert_eq!(s.fates[3], PageFate::InRequest(0));
    }

    #[test]
    fn duplex_pairs_recto_verso_and_drops_blank_backs() {
        use PageFact::*;
        // bordereau/blank, fiche A/blank, piece recto/verso, piece/blank, fiche B/blank, piece/blank
        let p = pages(vec![slip(BT), Blank, slip(FA), Blank, Content, Content, Content, Blank, slip(FB), Blank, Content, Blank]);
        let s = split_mailing(&p, &SplitParams::default());
        assert_eq!(s.duplex, vec![true]);
        assert_eq!(s.requests[0].sheets, vec![vec![4, 5], vec![6]]);
        assert_eq!(s.requests[0].page_count, 4);
        assert_eq!(s.fates[7], PageFate::Blank);
        // bordereau says 6 pages but there are 7 non-blank → anomaly; fiche A says 3, found 4.
        let codes: Vec<_> = s.anomalies.iter().map(|a| a.code).collect();
        assert_eq!(codes, vec![AnomalyCode::NbPagesIncoherent, AnomalyCode::NbPagesIncoherent]);
    }

    #[test]
    fn paper_without_bordereau_rejects_every_page() {
        use PageFact::*;
        let p = pages(vec![slip(FA), Content, Blank, Content]);
        let s = split_mailing(&p, &SplitParams { duplex: DuplexMode::Simplex, ..Default::default() });
        assert_eq!(s.rejection, Some(ReasonCode::PliSansBordereau));
        assert!(s.fates.iter().enumerate().all(|(i, f)| if i == 2 {
            *f == PageFate::Blank
        } else {
            *f == PageFate::Rejected { reason: ReasonCode::PliSansBordereau, detail: None }
        }));
    }

    #[test]
    fn applicant_mailing_needs_no_bordereau_and_pages_before_a_fiche_are_orphans() {
        use PageFact::*;
        let p = pages(vec![slip("SNE-AT|1|0740126000123G0042|ENR|2026-01-03"), Content]);
        let s = split_mailing(&p, &SplitParams::default());
        assert_eq!((s.kind, s.rejection), (MailingKind::Demandeur, None));
        let p = pages(vec![slip(BT), Content, slip(FA), Content]);
        let s = split_mailing(&p, &SplitParams { duplex: DuplexMode::Simplex, ..Default::default() });
        assert_eq!(s.fates[1], PageFate::Rejected { reason: ReasonCode::DemandeSansFiche, detail: None });
        assert_eq!(s.fates[3], PageFate::InRequest(0));
    }

    #[test]
    fn portal_deposit_with_given_number_and_invalid_fiche() {
        use PageFact::*;
        let n = NumeroUnique::parse("0740126000123G0042").expect("n");
        let p = pages(vec![Content, Content, slip("SNE-FR|1|07401260001X3G0042|A|B|1980-02-14|1|2|2026-11-16"), Content]);
        let s = split_mailing(&p, &SplitParams { channel: Channel::Portal, numero_unique: Some(n.clone()), duplex: DuplexMode::Simplex });
        assert_eq!(s.rejection, None);
        assert_eq!(s.requests.len(), 2);
        assert_eq!(s.requests[0].numero(), Some(&n));
        assert_eq!(s.requests[1].slip_rejection(), Some(ReasonCode::NumeroInvalide));
        assert_eq!(s.anomalies[0].code, AnomalyCode::SlipInvalide);
    }

    #[test]
    fn an_operators_separator_sheet_marks_the_original_after_it_and_counts_for_nothing() {
        use PageFact::*;
        // Duplex: bordereau, fiche A (3 pages), a piece, the separator (blank back), the original
        // (recto, verso), then fiche B.
        let bt = "SNE-BT|1|G0042|074|2|7|2026-11-18";
        let fa = "SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-02-14|2|4|2026-11-16";
        let p = pages(vec![slip(bt), Blank, slip(fa), Blank, Content, Blank, OriginalSeparator, Blank, Content, Content, slip(FB), Blank, Content, Blank]);
        let s = split_mailing(&p, &SplitParams::default());
        assert_eq!(s.requests[0].sheets, vec![vec![4], vec![8, 9]]);
        assert_eq!(s.requests[0].originals_from, vec![8]);
        assert!(s.requests[1].originals_from.is_empty(), "the mark does not run on");
        assert_eq!((s.fates[6].clone(), s.fates[7].clone()), (PageFate::Slip, PageFate::Blank));
        assert!(s.anomalies.is_empty(), "the separator is no page of the mailing: {:?}", s.anomalies);
    }

    #[test]
    fn unreadable_pages_keep_their_reason() {
        use PageFact::*;
        let bad = Unreadable { reason: ReasonCode::FichierCorrompu, detail: "x".into() };
        let p = pages(vec![slip(BT), slip(FA), bad, Content]);
        let s = split_mailing(&p, &SplitParams { duplex: DuplexMode::Simplex, ..Default::default() });
        assert!(matches!(s.fates[2], PageFate::Rejected { reason: ReasonCode::FichierCorrompu, .. }));
        assert_eq!(s.requests[0].page_count, 3);
    }

    #[test]
    fn duplex_detection() {
        use PageFact::*;
        assert!(looks_duplex(&[&Content, &Blank, &Content, &Content]));
        assert!(!looks_duplex(&[&Content, &Blank, &Content]));
        assert!(!looks_duplex(&[&Content, &Content, &Content, &Content]));
        assert!(!looks_duplex(&[&Blank, &Content, &Blank, &Content]));
    }
}
