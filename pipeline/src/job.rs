//! The one-shot job's pure assembly: analysed pages in; report, piece PDFs and notices out.
//!
//! The caller (the `scanbureau` binary, later the workers) reads files, decodes and analyses
//! pages (in parallel, one at a time each), then hands the [`PageRecord`]s here. Nothing here
//! touches the disk or the clock.

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

use crate::analysis::{Orientation, PageAnalysis};
use crate::config::SiteConfig;
use crate::ids::NumeroUnique;
use crate::input::MailEnvelope;
use crate::lightpdf::{EncodedPage, shrink_page, write_pdf};
use crate::mailing::{Channel, MailingKind, MailingSplit, PageFact, PageFate, PageInfo, RequestSlip, RequestSplit, SplitParams, split_mailing};
use crate::notice::{NoticeContext, NoticePiece, RequestNotice, mailing_notice, request_notice};
use crate::originals::{PaperSigns, SEPARATOR_PAYLOAD, batch_dpi, stamp_copy, suspicion};
use crate::plan::{FilingPlan, apply_maxima};
use crate::qualify::{Household, HouseholdMember, PageFeatures, PieceDraft, Qualifier, QualifyInput};
use crate::reason::{AnomalyCode, ReasonCode};
use crate::registry::{Registry, SneTerritories, check_request};
use crate::report::*;
use crate::slip::{SlipParse, payload as slip_payload};

/// The public portal refuses pieces over 2 MB.
pub const MAX_PIECE_BYTES: usize = 2_000_000;

/// Everything the job needs besides the pages.
#[derive(Debug, Clone)]
pub struct JobContext<'a> {
    pub batch_id: String,
    pub channel: Channel,
    pub received_at: DateTime<FixedOffset>,
    pub now: DateTime<FixedOffset>,
    pub numero_unique: Option<NumeroUnique>,
    pub envelope: Option<MailEnvelope>,
    /// The portal user who uploaded (receives the notices of a portal deposit).
    pub notify: Option<String>,
    pub registry: &'a Registry,
    pub plan: &'a FilingPlan,
    pub site: &'a SiteConfig,
}

/// One input page after the per-page step.
#[derive(Debug, Clone)]
pub struct PageRecord {
    pub source: String,
    /// Index of the input file it came from.
    pub group: usize,
    pub outcome: PageOutcome,
}

impl PageRecord {
    /// What the qualifier read on the page; nothing for a page that could not be read.
    pub fn features(&self) -> PageFeatures {
        match &self.outcome {
            PageOutcome::Read { features, .. } => features.clone(),
            PageOutcome::Unreadable { .. } => PageFeatures::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum PageOutcome {
    Unreadable { reason: ReasonCode, detail: String },
    Read { analysis: Box<PageAnalysis>, features: PageFeatures },
}

/// A file the caller writes under the output directory.
#[derive(Debug, Clone)]
pub struct OutputFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct JobOutput {
    pub report: Report,
    pub pieces: Vec<OutputFile>,
    pub notices: Vec<OutputFile>,
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn fact_of(rec: &PageRecord) -> PageFact {
    match &rec.outcome {
        PageOutcome::Unreadable { reason, detail } => PageFact::Unreadable { reason: *reason, detail: detail.clone() },
        PageOutcome::Read { analysis, .. } if analysis.qr_codes.iter().any(|q| q.payload == SEPARATOR_PAYLOAD.as_bytes()) => PageFact::OriginalSeparator,
        PageOutcome::Read { analysis, features } => match &analysis.slip {
            Some(s) => PageFact::Slip(s.parse.clone()),
            None if analysis.blank => PageFact::Blank,
            // A fiche whose code cannot be read is still a fiche: it ends the request before it
            // (the next applicant's pieces must not join it) and opens one refused as unreadable.
            None => match features.title.as_deref().and_then(crate::slip::kind_from_title).or_else(|| {
                // Or the page's first lines, when the layout did not take the title for one.
                let head: String = features.text.as_deref().unwrap_or("").lines().filter(|l| !l.trim().is_empty()).take(4).collect::<Vec<_>>().join(" ");
                crate::slip::kind_from_title(&head)
            }) {
                Some(kind) => PageFact::Slip(SlipParse::Invalid { kind, error: crate::slip::PayloadError::CodeUnreadable }),
                None => PageFact::Content,
            },
        },
    }
}

/// Builds a piece's PDF, shrinking its pictures until it fits under the limit, with room
/// left for a "COPIE" stamp: any piece may be filed as an original's copy, in the job or later
/// at the review station.
fn piece_pdf(pages: &[&EncodedPage], title: &str) -> Option<Vec<u8>> {
    let budget = MAX_PIECE_BYTES.saturating_sub(crate::originals::stamp_room(pages.len()));
    let pdf = write_pdf(pages, title);
    if pdf.len() <= budget {
        return Some(pdf);
    }
    let mut current: Vec<EncodedPage> = pages.iter().map(|p| (*p).clone()).collect();
    for (scale, quality) in [(0.85, 45), (0.75, 40), (0.6, 35)] {
        current = current.iter().map(|p| shrink_page(p, scale, quality)).collect();
        let refs: Vec<&EncodedPage> = current.iter().collect();
        let pdf = write_pdf(&refs, title);
        if pdf.len() <= budget {
            return Some(pdf);
        }
    }
    None
}

/// The request's household: the registry's record, else the fiche's applicant.
fn household_of(record: Option<&crate::registry::DemandeRecord>, fiche: Option<&crate::slip::Fiche>) -> Household {
    let member = |nom: &str, prenoms: &str, date| HouseholdMember { nom: nom.to_string(), prenoms: prenoms.to_string(), date_naissance: date };
    match (record, fiche) {
        (Some(d), _) => Household {
            demandeur: Some(member(&d.nom, &d.prenoms, Some(d.date_naissance))),
            conjoint: d.conjoint.as_ref().map(|m| member(&m.nom, &m.prenoms, m.date_naissance)),
            personnes_a_charge: d.personnes_a_charge.iter().map(|m| member(&m.nom, &m.prenoms, m.date_naissance)).collect(),
        },
        (None, Some(f)) => Household { demandeur: Some(member(&f.nom, &f.prenoms, Some(f.date_naissance))), ..Household::default() },
        (None, None) => Household::default(),
    }
}

/// Who reads a notice, or why nobody can.
struct Recipient {
    email: Option<String>,
    missing: Option<&'static str>,
}

/// Assembles the job's results, in steps that each take and return values: the mailing is
/// split into requests ([`split_mailing`]), its sender found ([`sender_of`]), each page given
/// its report ([`page_reports`]), each request qualified into pieces, their PDFs and its notice
/// ([`assemble_request`]), the mailing refused as a whole when it must be ([`mailing_refusal`]),
/// then counted ([`count_outcomes`]) and given its status ([`mailing_status`]).
pub fn assemble(ctx: &JobContext<'_>, records: &[PageRecord], qualifier: &dyn Qualifier) -> JobOutput {
    let site = ctx.site;
    let calendar = site.calendar();
    let received_at = calendar.localise(ctx.received_at);
    let due_at = calendar.due_at(ctx.received_at);
    let infos: Vec<PageInfo> = records.iter().map(|r| PageInfo { fact: fact_of(r), group: r.group }).collect();
    let params = SplitParams { channel: ctx.channel, numero_unique: ctx.numero_unique.clone(), duplex: site.scan.duplex };
    let split = split_mailing(&infos, &params);
    let mut anomalies: Vec<AnomalyReport> =
        split.anomalies.iter().map(|a| AnomalyReport { code: a.code, detail: a.detail.clone(), pages: a.pages.clone() }).collect();
    let sender = sender_of(ctx, &split);
    let notice_ctx = NoticeContext {
        bureau_email: &site.site.bureau_email,
        site_name: &site.site.name,
        batch_id: &ctx.batch_id,
        received_at,
        due_at,
        now: calendar.localise(ctx.now),
    };

    let mut pages_out = page_reports(records, &split.fates);
    let features: Vec<PageFeatures> = records.iter().map(PageRecord::features).collect();
    let paper_dpi = (ctx.channel == Channel::Paper).then(|| batch_dpi(&records.iter().filter_map(paper_of).map(|p| p.px).collect::<Vec<_>>())).flatten();
    let mailing = MailingView {
        ctx,
        records,
        features: &features,
        qualifier,
        split: &split,
        sender: &sender,
        notice_ctx: &notice_ctx,
        territories: site.territories(),
        paper_dpi,
    };
    let (mut piece_files, mut notices, mut requests_out) = (Vec::new(), Vec::new(), Vec::new());
    for (index, req) in split.requests.iter().enumerate() {
        // Logs name the request by its place in the mailing, never by its numéro (personal data).
        let _span = tracing::info_span!("request", index, slip_page = req.slip_page).entered();
        let out = assemble_request(&mailing, req);
        for mark in out.marks {
            mark.apply(&mut pages_out[mark.page]);
        }
        anomalies.extend(out.anomalies);
        piece_files.extend(out.pieces);
        notices.extend(out.notice);
        requests_out.push(out.report);
    }

    let mailing_reason = mailing_refusal(&split);
    let mut batch_notice = None;
    if let Some(reason) = mailing_reason {
        let numeros: Vec<String> = split.requests.iter().filter_map(|r| r.numero()).map(|n| n.to_string()).collect();
        let first = split.requests.iter().find_map(|r| r.numero());
        if let Some(to) = recipient_for(ctx, &sender, first).email {
            let eml = mailing_notice(&notice_ctx, &to, reason, records.len(), &numeros);
            let path = format!("outbox/{}-pli.eml", ctx.batch_id);
            notices.push(OutputFile { path: path.clone(), bytes: eml });
            batch_notice = Some(path);
        }
    }

    let counts = count_outcomes(&pages_out, &requests_out);
    let batch = BatchReport {
        id: ctx.batch_id.clone(),
        channel: ctx.channel.as_str().to_string(),
        sender,
        received_at: received_at.to_rfc3339(),
        due_at: due_at.to_rfc3339(),
        pages: records.len(),
        status: mailing_status(split.rejection, &requests_out, &counts),
        reason: mailing_reason,
        anomalies,
        notice: batch_notice,
        plan_version: ctx.plan.version.clone(),
        duplex: split.duplex.clone(),
        counts,
    };
    JobOutput { report: Report { batch, slips: slip_reports(records), requests: requests_out, pages: pages_out }, pieces: piece_files, notices }
}

/// Who sent the mailing: the counter of its bordereau, the counter whose address a mail came
/// from, the applicant of its attestation, or nobody known (then the mail's sender, if any).
fn sender_of(ctx: &JobContext<'_>, split: &MailingSplit) -> Sender {
    let bordereau = split.bordereau.as_ref().and_then(|(_, b)| b.as_ref().ok());
    let mail_guichet = ctx.envelope.as_ref().and_then(|e| e.from.as_deref()).and_then(|f| ctx.registry.guichet_by_email(f));
    let first = split.requests.first().and_then(|r| r.numero());
    match (split.kind, bordereau, mail_guichet) {
        (MailingKind::Guichet, Some(b), _) => Sender {
            kind: SenderKind::Guichet,
            id: Some(b.guichet.to_string()),
            email: ctx.registry.guichet(b.guichet.as_str()).map(|g| g.email_referent.clone()),
        },
        (_, _, Some(g)) => Sender { kind: SenderKind::Guichet, id: Some(g.numero.to_string()), email: Some(g.email_referent.clone()) },
        (MailingKind::Demandeur, _, _) => Sender {
            kind: SenderKind::Demandeur,
            id: first.map(|n| n.to_string()),
            email: first.and_then(|n| ctx.registry.demande(n)).and_then(|d| d.email.clone()),
        },
        _ => Sender { kind: SenderKind::Unknown, id: None, email: ctx.envelope.as_ref().and_then(|e| e.from.clone()) },
    }
}

/// Who reads a request's notice: the portal user who uploaded; else the counter that sent it,
/// the applicant, or for an unknown sender its address or the request's registering counter.
fn recipient_for(ctx: &JobContext<'_>, sender: &Sender, numero: Option<&NumeroUnique>) -> Recipient {
    if let Some(user) = &ctx.notify {
        return Recipient { email: Some(user.clone()), missing: None };
    }
    let registering = numero.and_then(|n| ctx.registry.guichet(n.guichet_enregistreur())).map(|g| g.email_referent.clone());
    let email = match sender.kind {
        SenderKind::Guichet => sender.email.clone(),
        SenderKind::Demandeur => numero.and_then(|n| ctx.registry.demande(n)).and_then(|d| d.email.clone()),
        SenderKind::Unknown => sender.email.clone().or(registering),
    };
    let missing = email.is_none().then_some("no known address for the sender");
    Recipient { email, missing }
}

fn paper_of(record: &PageRecord) -> Option<PaperSigns> {
    match &record.outcome {
        PageOutcome::Read { analysis, .. } => Some(analysis.paper),
        PageOutcome::Unreadable { .. } => None,
    }
}

fn encoded_of(record: &PageRecord) -> Option<&EncodedPage> {
    match &record.outcome {
        PageOutcome::Read { analysis, .. } => analysis.encoded.as_ref(),
        PageOutcome::Unreadable { .. } => None,
    }
}

/// Each page's report from its fate in the split: slip, blank, refused with its reason, or part
/// of a request (with how it was stored). Pieces mark their pages later ([`PageMark`]).
fn page_reports(records: &[PageRecord], fates: &[PageFate]) -> Vec<PageReport> {
    records
        .iter()
        .zip(fates)
        .enumerate()
        .map(|(i, (r, fate))| {
            let mut p = PageReport {
                index: i,
                source: r.source.clone(),
                role: PageRole::Blank,
                piece: None,
                reason: None,
                detail: None,
                rotated: false,
                stored_bytes: None,
                reading: match &r.outcome {
                    PageOutcome::Read { features, .. } => features.reading.clone(),
                    PageOutcome::Unreadable { .. } => Vec::new(),
                },
            };
            match fate {
                PageFate::Slip if fact_of(r) == PageFact::OriginalSeparator => {
                    p.role = PageRole::Slip;
                    p.detail = Some("the bureau's separator sheet: the document after it is an original sent by mistake".into());
                }
                PageFate::Slip => p.role = PageRole::Slip,
                PageFate::Blank => p.role = PageRole::Blank,
                PageFate::Rejected { reason, detail } => {
                    p.role = PageRole::Rejected;
                    p.reason = Some(*reason);
                    p.detail = detail.clone();
                }
                PageFate::InRequest(_) => {
                    p.role = PageRole::Piece;
                    if let Some(e) = encoded_of(r) {
                        p.detail = Some(e.describe());
                        p.stored_bytes = Some(e.bytes());
                    }
                }
            }
            if let PageOutcome::Read { analysis, .. } = &r.outcome {
                p.rotated = (analysis.orientation == Orientation::UpsideDown || analysis.corrections.turned) && analysis.encoded.is_some();
            }
            p
        })
        .collect()
}

/// What a request's outcome changes on one of its pages.
#[derive(Debug, Clone, PartialEq)]
struct PageMark {
    page: usize,
    /// The piece the page went to.
    piece: Option<String>,
    /// Refused with the request or its piece, and why.
    refused: Option<ReasonCode>,
}

impl PageMark {
    fn apply(&self, p: &mut PageReport) {
        if let Some(id) = &self.piece {
            p.piece = Some(id.clone());
        }
        if let Some(reason) = self.refused {
            p.role = PageRole::Rejected;
            p.reason = Some(reason);
        }
    }
}

/// What every request of a mailing is assembled with.
struct MailingView<'a> {
    ctx: &'a JobContext<'a>,
    records: &'a [PageRecord],
    features: &'a [PageFeatures],
    qualifier: &'a dyn Qualifier,
    split: &'a MailingSplit,
    sender: &'a Sender,
    notice_ctx: &'a NoticeContext<'a>,
    territories: SneTerritories,
    /// The resolution a paper mailing was scanned at, measured on its A4 pages: what tells an
    /// original's paper from a copy's. None on other channels (a file has no paper).
    paper_dpi: Option<f32>,
}

impl MailingView<'_> {
    /// Why a piece's pages may be an original sent by mistake, on a paper mailing.
    fn original_suspicion(&self, d: &PieceDraft) -> Option<String> {
        let dpi = self.paper_dpi?;
        let signs: Vec<PaperSigns> = d.pages.iter().filter_map(|&p| paper_of(&self.records[p])).collect();
        suspicion(d.type_code.as_deref(), &signs, dpi)
    }
}

/// What one request adds to the job.
struct RequestOutput {
    report: RequestReport,
    pieces: Vec<OutputFile>,
    notice: Option<OutputFile>,
    anomalies: Vec<AnomalyReport>,
    marks: Vec<PageMark>,
}

/// One request: refused whole (its slip, the registry), or cut into pieces that are qualified,
/// held, refused or filed with their PDFs; then its status and notice.
fn assemble_request(m: &MailingView<'_>, req: &RequestSplit) -> RequestOutput {
    let ctx = m.ctx;
    let numero = req.numero();
    let fiche = match &req.slip {
        RequestSlip::Fiche(f) => Some(f),
        _ => None,
    };
    let rejection = m.split.rejection.or_else(|| req.slip_rejection()).or_else(|| {
        let n = numero?;
        check_request(ctx.registry, &m.territories, n, fiche).err()
    });
    let mut out = RequestOutput { report: empty_request_report(req, rejection), pieces: Vec::new(), notice: None, anomalies: Vec::new(), marks: Vec::new() };
    if let Some(reason) = rejection {
        out.marks = req.sheets.iter().flatten().map(|&page| PageMark { page, piece: None, refused: Some(reason) }).collect();
    } else {
        let household = household_of(numero.and_then(|n| ctx.registry.demande(n)), fiche);
        let drafts = m.qualifier.qualify(&QualifyInput { numero, sheets: &req.sheets, features: m.features, plan: ctx.plan, household: &household });
        if let Some(f) = fiche
            && f.nb_documents as usize != drafts.len()
        {
            out.anomalies.push(AnomalyReport {
                code: AnomalyCode::NbDocumentsIncoherent,
                detail: format!("fiche of {} announces {} documents, {} pieces cut", f.numero, f.nb_documents, drafts.len()),
                pages: req.slip_page.into_iter().collect(),
            });
        }
        let overflow = fiche.and_then(|f| overflow_of(f, req.page_count, drafts.len()));
        let held = numero.and_then(|n| ctx.registry.demande(n)).map(|d| d.pieces.clone()).unwrap_or_default();
        let cats: Vec<Option<&str>> = drafts.iter().map(|d| if d.rejection.is_none() { d.categorie.as_deref() } else { None }).collect();
        let maxima = apply_maxima(ctx.plan, &held, &cats);
        let numero_str = numero.map(|n| n.to_string()).unwrap_or_else(|| "sans-numero".into());
        for (d, full) in drafts.iter().zip(maxima) {
            let page_keys: Vec<String> = d.pages.iter().map(|p| p.to_string()).collect();
            let id = format!("p-{}", short_hash(&[&ctx.batch_id, &numero_str, &page_keys.join(",")]));
            let sensible = d.categorie.as_deref().zip(d.type_code.as_deref()).and_then(|(c, t)| ctx.plan.piece_type(c, t)).is_some_and(|t| t.sensible);
            // An original the operator marked with a separator sheet is known, not suspected:
            // filed as the bureau's stamped copy. One the job suspects waits for an operator.
            let flagged = d.pages.iter().find(|p| req.originals_from.contains(p));
            let original = if flagged.is_some() { None } else { m.original_suspicion(d) };
            let (mut status, mut reason, mut evidence) = piece_decision(d, full, overflow.as_deref(), original.as_deref(), ctx.site.qualify.review_threshold);
            if let Some(page) = flagged {
                evidence.push(format!("original: marked by the operator's separator sheet before page {page}; filed as the bureau's copy stamped COPIE"));
            }
            let (mut file, mut bytes) = (None, None);
            if status != PieceStatus::Rejected {
                let enc: Vec<&EncodedPage> = d.pages.iter().filter_map(|&p| encoded_of(&m.records[p])).collect();
                let stamped = |pdf: Vec<u8>| match flagged {
                    // Our own PDF always reads back; were it not to, the piece is kept unstamped.
                    Some(_) => Some(stamp_copy(&pdf, &ctx.site.site.name, ctx.received_at.date_naive()).unwrap_or(pdf)),
                    None => Some(pdf),
                };
                match piece_pdf(&enc, &format!("{numero_str} {id}")).and_then(stamped) {
                    Some(pdf) => {
                        let path = format!("pieces/{numero_str}/{id}.pdf");
                        bytes = Some(pdf.len() as u64);
                        file = Some(path.clone());
                        out.pieces.push(OutputFile { path, bytes: pdf });
                    }
                    None => {
                        status = PieceStatus::Rejected;
                        reason = Some(ReasonCode::FichierTropVolumineux);
                    }
                }
            }
            // A refused piece always has its reason (the qualifier's, a full category, its size).
            let refused = if status == PieceStatus::Rejected { reason } else { None };
            out.marks.extend(d.pages.iter().map(|&page| PageMark { page, piece: Some(id.clone()), refused }));
            out.report.pieces.push(PieceReport {
                id,
                pages: d.pages.clone(),
                categorie: d.categorie.clone(),
                type_code: d.type_code.clone(),
                confidence: d.confidence,
                sensible,
                status,
                reason,
                file,
                bytes,
                plan_version: ctx.plan.version.clone(),
                evidence,
                original: flagged.is_some(),
            });
        }
    }
    out.report.status = request_status(rejection, &out.report.pieces);
    // A non-conforming mailing gets one notice for the whole (see `assemble`).
    if m.split.rejection.is_none() {
        let rcpt = recipient_for(ctx, m.sender, numero);
        match rcpt.email {
            Some(to) => {
                let file = request_notice_file(ctx, m.notice_ctx, &to, req, &out.report);
                out.report.notice = Some(file.path.clone());
                out.notice = Some(file);
            }
            None => out.report.notice_missing = rcpt.missing.map(str::to_string),
        }
    }
    out
}

fn empty_request_report(req: &RequestSplit, rejection: Option<ReasonCode>) -> RequestReport {
    RequestReport {
        numero_unique: req.numero().map(|n| n.to_string()),
        slip_page: req.slip_page,
        status: Status::Accepted,
        reason: rejection,
        pieces: Vec::new(),
        notice: None,
        notice_missing: None,
    }
}

/// More pages or documents than the fiche announces: the next applicant's fiche may not have
/// been read, and its pieces be here. Nothing is filed on a guess that could put one
/// applicant's papers in another's dossier: an operator looks first.
fn overflow_of(fiche: &crate::slip::Fiche, pages: u32, pieces: usize) -> Option<String> {
    if pages > fiche.nb_pages {
        Some(format!("the fiche announces {} pages and {pages} were scanned", fiche.nb_pages))
    } else if pieces > fiche.nb_documents as usize {
        Some(format!("the fiche announces {} documents and {pieces} were found", fiche.nb_documents))
    } else {
        None
    }
}

/// A piece's status, reason and evidence: refused on the qualifier's reason or a full
/// category; in review without a category, under the confidence threshold, when the request
/// overflows its fiche (then a refusal is held too: its notice could reach the wrong applicant)
/// or when the piece may be an original sent by mistake (held too, refused or not: its paper
/// goes back to its owner either way, and an operator confirms); filed otherwise.
fn piece_decision(
    d: &PieceDraft,
    full: Option<ReasonCode>,
    overflow: Option<&str>,
    original: Option<&str>,
    threshold: f32,
) -> (PieceStatus, Option<ReasonCode>, Vec<String>) {
    let mut reason = d.rejection.or(full);
    let mut evidence = d.evidence.clone();
    let held = overflow.is_some() || original.is_some();
    let status = if reason.is_some() && !held {
        PieceStatus::Rejected
    } else if d.categorie.is_none() || d.confidence < threshold || held {
        PieceStatus::Review
    } else {
        PieceStatus::Uploaded
    };
    if held && let Some(r) = reason.take() {
        evidence.push(format!("would be refused ({}) but held first", r.code()));
    }
    if let Some(why) = overflow {
        evidence.push(format!("held for an operator: {why}; a slip may not have been read"));
    }
    evidence.extend(original.map(str::to_string));
    (status, reason, evidence)
}

/// A request is refused when it is refused whole or all its pieces are; partial when some are;
/// accepted otherwise (pieces waiting for review are not refused, report-contract.md).
fn request_status(rejection: Option<ReasonCode>, pieces: &[PieceReport]) -> Status {
    if rejection.is_some() || (!pieces.is_empty() && pieces.iter().all(|p| p.status == PieceStatus::Rejected)) {
        Status::Rejected
    } else if pieces.iter().any(|p| p.status == PieceStatus::Rejected) {
        Status::Partial
    } else {
        Status::Accepted
    }
}

fn request_notice_file(ctx: &JobContext<'_>, notice_ctx: &NoticeContext<'_>, to: &str, req: &RequestSplit, report: &RequestReport) -> OutputFile {
    let pieces = report
        .pieces
        .iter()
        .map(|p| NoticePiece {
            libelle: p.categorie.as_deref().zip(p.type_code.as_deref()).and_then(|(c, t)| ctx.plan.piece_type(c, t)).map(|t| t.libelle.clone()),
            sensible: p.sensible,
            pages: p.pages.len(),
            status: p.status,
            reason: p.reason,
            original: p.original,
        })
        .collect();
    let eml = request_notice(
        notice_ctx,
        &RequestNotice { to, numero: report.numero_unique.as_deref(), reason: report.reason, pieces, pages: req.page_count as usize },
    );
    let key = report.numero_unique.clone().unwrap_or_else(|| format!("page-{}", req.slip_page.unwrap_or(0)));
    OutputFile { path: format!("outbox/{}-{key}.eml", ctx.batch_id), bytes: eml }
}

/// A mailing refused as a whole (no bordereau), or in which no request could be found at all
/// (pages without fiche): it gets one notice for the whole.
fn mailing_refusal(split: &MailingSplit) -> Option<ReasonCode> {
    let orphan_pages = split.fates.iter().any(|f| matches!(f, PageFate::Rejected { reason: ReasonCode::DemandeSansFiche, .. }));
    split.rejection.or((split.requests.is_empty() && orphan_pages).then_some(ReasonCode::DemandeSansFiche))
}

/// The slips read, valid or not, as the report lists them.
fn slip_reports(records: &[PageRecord]) -> Vec<SlipReport> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.outcome {
            PageOutcome::Read { analysis, .. } => analysis.slip.as_ref().map(|s| (i, s)),
            _ => None,
        })
        .map(|(i, s)| {
            let (kind, valid, error) = match &s.parse {
                SlipParse::Valid(slip) => (slip.kind().as_str(), true, None),
                SlipParse::Invalid { kind, error } => (kind.as_str(), false, Some(error.to_string())),
                SlipParse::NotASlip => ("none", false, None),
            };
            let payload = match &s.parse {
                SlipParse::Valid(slip) => slip_payload(slip),
                _ => String::from_utf8_lossy(&s.payload).into_owned(),
            };
            SlipReport { page: i, kind: kind.to_string(), payload, valid, error }
        })
        .collect()
}

/// Pages by role and pieces by status: every page is counted once.
fn count_outcomes(pages: &[PageReport], requests: &[RequestReport]) -> Counts {
    let mut counts = Counts::default();
    for p in pages {
        match p.role {
            PageRole::Slip => counts.slip += 1,
            PageRole::Piece => counts.piece += 1,
            PageRole::Blank => counts.blank += 1,
            PageRole::Rejected => counts.rejected += 1,
        }
    }
    for pc in requests.iter().flat_map(|r| &r.pieces) {
        match pc.status {
            PieceStatus::Uploaded => counts.pieces_uploaded += 1,
            PieceStatus::Review => counts.pieces_review += 1,
            PieceStatus::Rejected => counts.pieces_rejected += 1,
        }
    }
    counts
}

/// The mailing's status: refused when it is refused whole, has no request or all its requests
/// are refused; accepted when every request is and no page was refused; partial otherwise.
fn mailing_status(rejection: Option<ReasonCode>, requests: &[RequestReport], counts: &Counts) -> Status {
    if rejection.is_some() || requests.is_empty() || requests.iter().all(|r| r.status == Status::Rejected) {
        Status::Rejected
    } else if requests.iter().all(|r| r.status == Status::Accepted) && counts.rejected == 0 {
        Status::Accepted
    } else {
        Status::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightpdf::PageCodec;

    fn page(codec: PageCodec, data: Vec<u8>, w: u32, h: u32) -> EncodedPage {
        EncodedPage { codec, width: w, height: h, page_w_pt: 595.276, page_h_pt: 841.89, data, mixed: None, choice: String::new(), vector: None }
    }

    fn noise_jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        let img = image::GrayImage::from_fn(w, h, |_, _| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            image::Luma([(x & 0xff) as u8])
        });
        let mut out = Vec::new();
        let _ = image::DynamicImage::ImageLuma8(img).write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95));
        out
    }

    #[test]
    fn an_oversized_piece_is_shrunk_under_the_limit() {
        let pages: Vec<EncodedPage> = (0..3).map(|i| page(PageCodec::JpegGray, noise_jpeg(1240, 1754, i + 1), 1240, 1754)).collect();
        let refs: Vec<&EncodedPage> = pages.iter().collect();
        assert!(write_pdf(&refs, "t").len() > MAX_PIECE_BYTES, "the test needs an oversized piece");
        let pdf = piece_pdf(&refs, "t").expect("shrinks");
        assert!(pdf.len() <= MAX_PIECE_BYTES);
        assert_eq!(lopdf::Document::load_mem(&pdf).expect("valid").get_pages().len(), 3);
        // Stamped "COPIE" afterwards (an original's copy), it stays under the limit too.
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).expect("date");
        let stamped = crate::originals::stamp_copy(&pdf, "Bureau de numérisation", date).expect("stamped");
        assert!(stamped.len() <= MAX_PIECE_BYTES, "{} -> {}", pdf.len(), stamped.len());
    }

    const REGISTRY: &str = r#"{
      "plan_version": "2026.1",
      "demandes": [
        {"numero_unique": "0740126000123G0042", "nom": "DUPONT", "prenoms": "MARIE", "date_naissance": "1980-02-14",
         "email": "marie.dupont@example.org", "etat": "active", "pieces": {}},
        {"numero_unique": "0740126000125G0042", "nom": "MARTIN", "prenoms": "LUC", "date_naissance": "1970-01-01", "etat": "active"}
      ],
      "guichets": [{"numero": "G0042", "departement": "074", "email_referent": "pj@bailleur-exemple.fr"},
                   {"numero": "G0043", "departement": "074", "email_referent": "accueil@mairie-exemple.fr"}]
    }"#;

    fn numero(s: &str) -> NumeroUnique {
        NumeroUnique::parse(s).expect("numero")
    }

    fn context<'a>(registry: &'a Registry, plan: &'a FilingPlan, site: &'a SiteConfig) -> JobContext<'a> {
        let at = DateTime::parse_from_rfc3339("2026-11-18T09:12:00+01:00").expect("date");
        JobContext {
            batch_id: "m-test".into(),
            channel: Channel::Paper,
            received_at: at,
            now: at,
            numero_unique: None,
            envelope: None,
            notify: None,
            registry,
            plan,
            site,
        }
    }

    fn split(kind: MailingKind, bordereau_of: Option<&str>, numeros: &[&str], fates: Vec<PageFate>) -> MailingSplit {
        let bordereau = bordereau_of.map(|g| {
            let b = crate::slip::Bordereau {
                guichet: crate::ids::NumeroGuichet::parse(g).expect("guichet"),
                departement: crate::ids::Departement::parse("074").expect("departement"),
                nb_dossiers: numeros.len() as u32,
                nb_pages_total: fates.len() as u32,
                date_transmission: chrono::NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"),
            };
            (0, Ok(b))
        });
        let requests = numeros
            .iter()
            .map(|n| RequestSplit { slip_page: None, slip: RequestSlip::Given(numero(n)), sheets: Vec::new(), page_count: 0, originals_from: Vec::new() })
            .collect();
        MailingSplit { kind, bordereau, requests, fates, anomalies: Vec::new(), rejection: None, duplex: Vec::new() }
    }

    #[test]
    fn the_sender_is_the_bordereau_s_counter_then_the_mail_s_then_the_applicant() {
        let (registry, plan, site) = (
            Registry::from_json(REGISTRY).expect("registry"),
            FilingPlan::from_toml(crate::config::DEFAULT_PLAN).expect("plan"),
            SiteConfig::embedded_default(),
        );
        let mut ctx = context(&registry, &plan, &site);
        let counter = sender_of(&ctx, &split(MailingKind::Guichet, Some("G0043"), &["0740126000123G0042"], Vec::new()));
        assert_eq!((counter.kind, counter.id.as_deref(), counter.email.as_deref()), (SenderKind::Guichet, Some("G0043"), Some("accueil@mairie-exemple.fr")));
        let applicant = sender_of(&ctx, &split(MailingKind::Demandeur, None, &["0740126000123G0042"], Vec::new()));
        assert_eq!((applicant.kind, applicant.email.as_deref()), (SenderKind::Demandeur, Some("marie.dupont@example.org")));
        let unknown = sender_of(&ctx, &split(MailingKind::Unknown, None, &[], Vec::new()));
        assert_eq!((unknown.kind, unknown.email), (SenderKind::Unknown, None));
        // A mail from a counter's declared address is that counter's, whatever its slips say.
        ctx.envelope = Some(MailEnvelope { from: Some("PJ@bailleur-exemple.fr".into()), subject: None });
        let mailed = sender_of(&ctx, &split(MailingKind::Unknown, None, &[], Vec::new()));
        assert_eq!((mailed.kind, mailed.id.as_deref()), (SenderKind::Guichet, Some("G0042")));
    }

    #[test]
    fn notices_go_to_the_uploader_the_sender_or_the_registering_counter() {
        let (registry, plan, site) = (
            Registry::from_json(REGISTRY).expect("registry"),
            FilingPlan::from_toml(crate::config::DEFAULT_PLAN).expect("plan"),
            SiteConfig::embedded_default(),
        );
        let mut ctx = context(&registry, &plan, &site);
        let (known, no_email) = (numero("0740126000123G0042"), numero("0740126000125G0042"));
        let unknown = Sender { kind: SenderKind::Unknown, id: None, email: None };
        assert_eq!(recipient_for(&ctx, &unknown, Some(&known)).email.as_deref(), Some("pj@bailleur-exemple.fr"), "the counter that registered the request");
        let applicant = Sender { kind: SenderKind::Demandeur, id: None, email: None };
        assert_eq!(recipient_for(&ctx, &applicant, Some(&known)).email.as_deref(), Some("marie.dupont@example.org"));
        let nobody = recipient_for(&ctx, &applicant, Some(&no_email));
        assert_eq!((nobody.email, nobody.missing), (None, Some("no known address for the sender")));
        ctx.notify = Some("agent@guichet.example".into());
        assert_eq!(recipient_for(&ctx, &applicant, Some(&no_email)).email.as_deref(), Some("agent@guichet.example"), "the portal user who uploaded");
    }

    fn draft(categorie: Option<&str>, confidence: f32, rejection: Option<ReasonCode>) -> PieceDraft {
        PieceDraft {
            pages: vec![1],
            categorie: categorie.map(String::from),
            type_code: Some("CNI".into()),
            confidence,
            evidence: vec!["read".into()],
            rejection,
        }
    }

    #[test]
    fn a_piece_is_filed_reviewed_refused_or_held() {
        let decide = |d: &PieceDraft, full, overflow| piece_decision(d, full, overflow, None, 0.8);
        assert_eq!(decide(&draft(Some("IDD"), 0.95, None), None, None).0, PieceStatus::Uploaded);
        assert_eq!(decide(&draft(Some("IDD"), 0.5, None), None, None).0, PieceStatus::Review, "under the threshold");
        assert_eq!(decide(&draft(None, 0.95, None), None, None).0, PieceStatus::Review, "no category");
        let illegible = decide(&draft(None, 0.0, Some(ReasonCode::PieceIllisible)), None, None);
        assert_eq!((illegible.0, illegible.1), (PieceStatus::Rejected, Some(ReasonCode::PieceIllisible)));
        let full = decide(&draft(Some("IDD"), 0.95, None), Some(ReasonCode::CategoriePleine), None);
        assert_eq!((full.0, full.1), (PieceStatus::Rejected, Some(ReasonCode::CategoriePleine)));
        // Past what the fiche announces, nothing is refused nor filed: an operator looks first.
        let held = decide(&draft(None, 0.0, Some(ReasonCode::PieceIllisible)), None, Some("the fiche announces 2 pages and 5 were scanned"));
        assert_eq!((held.0, held.1), (PieceStatus::Review, None));
        assert_eq!(
            held.2[1..],
            [
                "would be refused (PIECE_ILLISIBLE) but held first".to_string(),
                "held for an operator: the fiche announces 2 pages and 5 were scanned; a slip may not have been read".to_string()
            ]
        );
        assert_eq!(decide(&draft(Some("IDD"), 0.95, None), None, Some("x")).0, PieceStatus::Review);
    }

    #[test]
    fn a_suspected_original_is_held_for_an_operator_even_when_it_would_be_refused() {
        let why = "original ? the page was scanned at a card's size (86 × 54 mm), not copied on a sheet";
        let filed = piece_decision(&draft(Some("IDD"), 0.95, None), None, None, Some(why), 0.8);
        assert_eq!((filed.0, filed.1), (PieceStatus::Review, None));
        assert_eq!(filed.2.last().map(String::as_str), Some(why));
        let refused = piece_decision(&draft(Some("IDD"), 0.95, Some(ReasonCode::IncoherenceIdentite)), None, None, Some(why), 0.8);
        assert_eq!((refused.0, refused.1), (PieceStatus::Review, None));
        assert_eq!(refused.2[1..], ["would be refused (INCOHERENCE_IDENTITE) but held first".to_string(), why.to_string()]);
    }

    #[test]
    fn a_fiche_overflows_on_pages_or_documents() {
        let fiche = crate::slip::Fiche {
            numero: numero("0740126000123G0042"),
            nom: "DUPONT".into(),
            prenoms: "MARIE".into(),
            date_naissance: chrono::NaiveDate::from_ymd_opt(1980, 2, 14).expect("date"),
            nb_documents: 2,
            nb_pages: 4,
            date_remplissage: chrono::NaiveDate::from_ymd_opt(2026, 11, 16).expect("date"),
        };
        assert_eq!(overflow_of(&fiche, 4, 2), None);
        assert!(overflow_of(&fiche, 5, 2).is_some_and(|w| w.contains("4 pages and 5")));
        assert!(overflow_of(&fiche, 4, 3).is_some_and(|w| w.contains("2 documents and 3")));
    }

    fn piece(status: PieceStatus) -> PieceReport {
        PieceReport {
            id: "p".into(),
            pages: vec![0],
            categorie: None,
            type_code: None,
            confidence: 1.0,
            sensible: false,
            status,
            reason: None,
            file: None,
            bytes: None,
            plan_version: "v".into(),
            evidence: Vec::new(),
            original: false,
        }
    }

    #[test]
    fn requests_and_mailings_take_the_status_of_their_parts() {
        use PieceStatus::*;
        assert_eq!(request_status(None, &[piece(Uploaded), piece(Review)]), Status::Accepted, "review is not a refusal");
        assert_eq!(request_status(None, &[piece(Uploaded), piece(Rejected)]), Status::Partial);
        assert_eq!(request_status(None, &[piece(Rejected)]), Status::Rejected);
        assert_eq!(request_status(Some(ReasonCode::NumeroInconnu), &[]), Status::Rejected);
        assert_eq!(request_status(None, &[]), Status::Accepted);
        let request = |status| RequestReport {
            numero_unique: None,
            slip_page: None,
            status,
            reason: None,
            pieces: vec![piece(Uploaded)],
            notice: None,
            notice_missing: None,
        };
        let clean = Counts::default();
        let one_page_refused = Counts { rejected: 1, ..Counts::default() };
        assert_eq!(mailing_status(None, &[request(Status::Accepted)], &clean), Status::Accepted);
        assert_eq!(mailing_status(None, &[request(Status::Accepted)], &one_page_refused), Status::Partial, "a refused page makes it partial");
        assert_eq!(mailing_status(None, &[request(Status::Accepted), request(Status::Rejected)], &clean), Status::Partial);
        assert_eq!(mailing_status(None, &[request(Status::Rejected)], &clean), Status::Rejected);
        assert_eq!(mailing_status(None, &[], &clean), Status::Rejected, "no request at all");
        assert_eq!(mailing_status(Some(ReasonCode::PliSansBordereau), &[request(Status::Accepted)], &clean), Status::Rejected);
        let counts =
            count_outcomes(&[], &[request(Status::Accepted), RequestReport { pieces: vec![piece(Review), piece(Rejected)], ..request(Status::Partial) }]);
        assert_eq!((counts.pieces_uploaded, counts.pieces_review, counts.pieces_rejected), (1, 1, 1));
    }

    #[test]
    fn every_page_gets_one_role_from_its_fate_then_its_piece() {
        let records: Vec<PageRecord> = (0..4)
            .map(|i| PageRecord {
                source: format!("f.pdf#{i}"),
                group: 0,
                outcome: PageOutcome::Unreadable { reason: ReasonCode::FichierCorrompu, detail: "x".into() },
            })
            .collect();
        let fates = vec![PageFate::Slip, PageFate::Blank, PageFate::Rejected { reason: ReasonCode::DemandeSansFiche, detail: None }, PageFate::InRequest(0)];
        let mut pages = page_reports(&records, &fates);
        let roles: Vec<PageRole> = pages.iter().map(|p| p.role).collect();
        assert_eq!(roles, [PageRole::Slip, PageRole::Blank, PageRole::Rejected, PageRole::Piece]);
        assert_eq!(pages[2].reason, Some(ReasonCode::DemandeSansFiche));
        PageMark { page: 3, piece: Some("p-1".into()), refused: Some(ReasonCode::PieceIllisible) }.apply(&mut pages[3]);
        assert_eq!((pages[3].role, pages[3].piece.as_deref(), pages[3].reason), (PageRole::Rejected, Some("p-1"), Some(ReasonCode::PieceIllisible)));
        let counts = count_outcomes(&pages, &[]);
        assert_eq!((counts.slip, counts.blank, counts.rejected, counts.piece), (1, 1, 2, 0), "every page counted once");
        // Orphan pages with no request at all refuse the mailing as a whole.
        assert_eq!(mailing_refusal(&split(MailingKind::Unknown, None, &[], fates.clone())), Some(ReasonCode::DemandeSansFiche));
        assert_eq!(mailing_refusal(&split(MailingKind::Unknown, None, &["0740126000123G0042"], fates)), None);
    }

    #[test]
    fn a_piece_that_cannot_shrink_is_refused() {
        // Bitonal pages are already lossless and minimal: nothing to degrade.
        let pages: Vec<EncodedPage> = (0..3).map(|_| page(PageCodec::CcittG4, vec![0x55; 900_000], 2480, 3508)).collect();
        let refs: Vec<&EncodedPage> = pages.iter().collect();
        assert!(piece_pdf(&refs, "t").is_none());
    }
}
