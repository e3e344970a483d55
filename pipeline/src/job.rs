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
use crate::mailing::{Channel, MailingKind, PageFact, PageFate, PageInfo, RequestSlip, SplitParams, split_mailing};
use crate::notice::{NoticeContext, NoticePiece, RequestNotice, mailing_notice, request_notice};
use crate::plan::{FilingPlan, apply_maxima};
use crate::qualify::{Household, HouseholdMember, PageFeatures, Qualifier, QualifyInput};
use crate::reason::{AnomalyCode, ReasonCode};
use crate::registry::{Registry, check_request};
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

/// Builds a piece's PDF, shrinking its pictures until it fits under the limit.
fn piece_pdf(pages: &[&EncodedPage], title: &str) -> Option<Vec<u8>> {
    let pdf = write_pdf(pages, title);
    if pdf.len() <= MAX_PIECE_BYTES {
        return Some(pdf);
    }
    let mut current: Vec<EncodedPage> = pages.iter().map(|p| (*p).clone()).collect();
    for (scale, quality) in [(0.85, 45), (0.75, 40), (0.6, 35)] {
        current = current.iter().map(|p| shrink_page(p, scale, quality)).collect();
        let refs: Vec<&EncodedPage> = current.iter().collect();
        let pdf = write_pdf(&refs, title);
        if pdf.len() <= MAX_PIECE_BYTES {
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

struct Recipient {
    email: Option<String>,
    missing: Option<&'static str>,
}

/// Assembles the job's results.
pub fn assemble(ctx: &JobContext<'_>, records: &[PageRecord], qualifier: &dyn Qualifier) -> JobOutput {
    let site = ctx.site;
    let calendar = site.calendar();
    let received_at = calendar.localise(ctx.received_at);
    let due_at = calendar.due_at(ctx.received_at);
    let infos: Vec<PageInfo> = records.iter().map(|r| PageInfo { fact: fact_of(r), group: r.group }).collect();
    let params = SplitParams { channel: ctx.channel, numero_unique: ctx.numero_unique.clone(), duplex: site.scan.duplex };
    let split = split_mailing(&infos, &params);
    let features: Vec<PageFeatures> = records
        .iter()
        .map(|r| match &r.outcome {
            PageOutcome::Read { features, .. } => features.clone(),
            PageOutcome::Unreadable { .. } => PageFeatures::default(),
        })
        .collect();
    let encoded = |i: usize| match &records[i].outcome {
        PageOutcome::Read { analysis, .. } => analysis.encoded.as_ref(),
        PageOutcome::Unreadable { .. } => None,
    };
    let mut anomalies: Vec<AnomalyReport> =
        split.anomalies.iter().map(|a| AnomalyReport { code: a.code, detail: a.detail.clone(), pages: a.pages.clone() }).collect();

    // Who sent the mailing, and who reads its notices.
    let bordereau = split.bordereau.as_ref().and_then(|(_, b)| b.as_ref().ok());
    let mail_guichet = ctx.envelope.as_ref().and_then(|e| e.from.as_deref()).and_then(|f| ctx.registry.guichet_by_email(f));
    let sender = match (split.kind, bordereau, mail_guichet) {
        (MailingKind::Guichet, Some(b), _) => Sender {
            kind: SenderKind::Guichet,
            id: Some(b.guichet.to_string()),
            email: ctx.registry.guichet(b.guichet.as_str()).map(|g| g.email_referent.clone()),
        },
        (_, _, Some(g)) => Sender { kind: SenderKind::Guichet, id: Some(g.numero.to_string()), email: Some(g.email_referent.clone()) },
        (MailingKind::Demandeur, _, _) => Sender {
            kind: SenderKind::Demandeur,
            id: split.requests.first().and_then(|r| r.numero()).map(|n| n.to_string()),
            email: split.requests.first().and_then(|r| r.numero()).and_then(|n| ctx.registry.demande(n)).and_then(|d| d.email.clone()),
        },
        _ => Sender { kind: SenderKind::Unknown, id: None, email: ctx.envelope.as_ref().and_then(|e| e.from.clone()) },
    };
    let recipient_for = |numero: Option<&NumeroUnique>| -> Recipient {
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
    };

    let notice_ctx = NoticeContext {
        bureau_email: &site.site.bureau_email,
        site_name: &site.site.name,
        batch_id: &ctx.batch_id,
        received_at,
        due_at,
        now: calendar.localise(ctx.now),
    };

    let mut pages_out: Vec<PageReport> = records
        .iter()
        .enumerate()
        .map(|(i, r)| PageReport {
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
        })
        .collect();
    for (i, fate) in split.fates.iter().enumerate() {
        let p = &mut pages_out[i];
        match fate {
            PageFate::Slip => p.role = PageRole::Slip,
            PageFate::Blank => p.role = PageRole::Blank,
            PageFate::Rejected { reason, detail } => {
                p.role = PageRole::Rejected;
                p.reason = Some(*reason);
                p.detail = detail.clone();
            }
            PageFate::InRequest(_) => {
                p.role = PageRole::Piece;
                if let Some(e) = encoded(i) {
                    p.detail = Some(format!("stored as {}: {}; {:.1} KB", e.codec_name(), e.choice, e.bytes() as f64 / 1024.0));
                    p.stored_bytes = Some(e.bytes());
                }
            }
        }
        if let PageOutcome::Read { analysis, .. } = &records[i].outcome {
            p.rotated = (analysis.orientation == Orientation::UpsideDown || analysis.corrections.turned) && analysis.encoded.is_some();
        }
    }

    let mut piece_files = Vec::new();
    let mut notices = Vec::new();
    let mut requests_out = Vec::new();
    let threshold = site.qualify.review_threshold;
    let territories = site.territories();
    for req in &split.requests {
        let numero = req.numero();
        let fiche = match &req.slip {
            RequestSlip::Fiche(f) => Some(f),
            _ => None,
        };
        let all_pages: Vec<usize> = req.sheets.iter().flatten().copied().collect();
        let rejection = split.rejection.or_else(|| req.slip_rejection()).or_else(|| {
            let n = numero?;
            check_request(ctx.registry, &territories, n, fiche).err()
        });
        let held = numero.and_then(|n| ctx.registry.demande(n)).map(|d| d.pieces.clone()).unwrap_or_default();
        let mut pieces_out = Vec::new();
        if let Some(reason) = rejection {
            for &pg in &all_pages {
                pages_out[pg].role = PageRole::Rejected;
                pages_out[pg].reason = Some(reason);
            }
        } else {
            let household = household_of(numero.and_then(|n| ctx.registry.demande(n)), fiche);
            let drafts = qualifier.qualify(&QualifyInput { numero, sheets: &req.sheets, features: &features, plan: ctx.plan, household: &household });
            if let Some(f) = fiche
                && f.nb_documents as usize != drafts.len()
            {
                anomalies.push(AnomalyReport {
                    code: AnomalyCode::NbDocumentsIncoherent,
                    detail: format!("fiche of {} announces {} documents, {} pieces cut", f.numero, f.nb_documents, drafts.len()),
                    pages: req.slip_page.into_iter().collect(),
                });
            }
            // More pages or documents than the fiche announces: the next applicant's fiche may
            // not have been read, and its pieces be here. Nothing is filed on a guess that
            // could put one applicant's papers in another's dossier: an operator looks first.
            let overflow = fiche.and_then(|f| {
                if req.page_count > f.nb_pages {
                    Some(format!("the fiche announces {} pages and {} were scanned", f.nb_pages, req.page_count))
                } else if drafts.len() > f.nb_documents as usize {
                    Some(format!("the fiche announces {} documents and {} were found", f.nb_documents, drafts.len()))
                } else {
                    None
                }
            });
            let cats: Vec<Option<&str>> = drafts.iter().map(|d| if d.rejection.is_none() { d.categorie.as_deref() } else { None }).collect();
            let maxima = apply_maxima(ctx.plan, &held, &cats);
            let numero_str = numero.map(|n| n.to_string()).unwrap_or_else(|| "sans-numero".into());
            for (d, full) in drafts.iter().zip(maxima) {
                let page_keys: Vec<String> = d.pages.iter().map(|p| p.to_string()).collect();
                let id = format!("p-{}", short_hash(&[&ctx.batch_id, &numero_str, &page_keys.join(",")]));
                let ptype = d.categorie.as_deref().zip(d.type_code.as_deref()).and_then(|(c, t)| ctx.plan.piece_type(c, t));
                let sensible = ptype.is_some_and(|t| t.sensible);
                let mut reason = d.rejection.or(full);
                let mut evidence = d.evidence.clone();
                let mut status = if reason.is_some() && overflow.is_none() {
                    PieceStatus::Rejected
                } else if d.categorie.is_none() || d.confidence < threshold || overflow.is_some() {
                    PieceStatus::Review
                } else {
                    PieceStatus::Uploaded
                };
                if let Some(why) = &overflow {
                    // A refusal would send this applicant a notice about what may be someone
                    // else's piece: held too.
                    if let Some(r) = reason.take() {
                        evidence.push(format!("would be refused ({}) but held first", r.code()));
                    }
                    evidence.push(format!("held for an operator: {why}; a slip may not have been read"));
                }
                let (mut file, mut bytes) = (None, None);
                if status != PieceStatus::Rejected {
                    let enc: Vec<&EncodedPage> = d.pages.iter().filter_map(|&p| encoded(p)).collect();
                    match piece_pdf(&enc, &format!("{numero_str} {id}")) {
                        Some(pdf) => {
                            let path = format!("pieces/{numero_str}/{id}.pdf");
                            bytes = Some(pdf.len() as u64);
                            file = Some(path.clone());
                            piece_files.push(OutputFile { path, bytes: pdf });
                        }
                        None => {
                            status = PieceStatus::Rejected;
                            reason = Some(ReasonCode::FichierTropVolumineux);
                        }
                    }
                }
                for &pg in &d.pages {
                    pages_out[pg].piece = Some(id.clone());
                    if status == PieceStatus::Rejected {
                        pages_out[pg].role = PageRole::Rejected;
                        pages_out[pg].reason = reason;
                    }
                }
                pieces_out.push(PieceReport {
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
                });
            }
        }
        let status = if rejection.is_some() || (!pieces_out.is_empty() && pieces_out.iter().all(|p| p.status == PieceStatus::Rejected)) {
            Status::Rejected
        } else if pieces_out.iter().any(|p| p.status == PieceStatus::Rejected) {
            Status::Partial
        } else {
            // Pieces waiting for review are not refused (report-contract.md).
            Status::Accepted
        };
        let mut report = RequestReport {
            numero_unique: numero.map(|n| n.to_string()),
            slip_page: req.slip_page,
            status,
            reason: rejection,
            pieces: pieces_out,
            notice: None,
            notice_missing: None,
        };
        // A non-conforming mailing gets one notice for the whole, below.
        if split.rejection.is_none() {
            let rcpt = recipient_for(numero);
            match rcpt.email {
                Some(to) => {
                    let pieces = report
                        .pieces
                        .iter()
                        .map(|p| NoticePiece {
                            libelle: p.categorie.as_deref().zip(p.type_code.as_deref()).and_then(|(c, t)| ctx.plan.piece_type(c, t)).map(|t| t.libelle.clone()),
                            sensible: p.sensible,
                            pages: p.pages.len(),
                            status: p.status,
                            reason: p.reason,
                        })
                        .collect();
                    let eml = request_notice(
                        &notice_ctx,
                        &RequestNotice { to: &to, numero: report.numero_unique.as_deref(), reason: rejection, pieces, pages: req.page_count as usize },
                    );
                    let key = report.numero_unique.clone().unwrap_or_else(|| format!("page-{}", req.slip_page.unwrap_or(0)));
                    let path = format!("outbox/{}-{key}.eml", ctx.batch_id);
                    notices.push(OutputFile { path: path.clone(), bytes: eml });
                    report.notice = Some(path);
                }
                None => report.notice_missing = rcpt.missing.map(str::to_string),
            }
        }
        requests_out.push(report);
    }

    // A mailing refused as a whole (no bordereau), or in which no request could be found at all
    // (pages without fiche), gets one notice for the whole.
    let orphan_pages = split.fates.iter().any(|f| matches!(f, PageFate::Rejected { reason: ReasonCode::DemandeSansFiche, .. }));
    let mailing_reason = split.rejection.or((split.requests.is_empty() && orphan_pages).then_some(ReasonCode::DemandeSansFiche));
    let mut batch_notice = None;
    if let Some(reason) = mailing_reason {
        let numeros: Vec<String> = split.requests.iter().filter_map(|r| r.numero()).map(|n| n.to_string()).collect();
        let first = split.requests.iter().find_map(|r| r.numero());
        if let Some(to) = recipient_for(first).email {
            let eml = mailing_notice(&notice_ctx, &to, reason, records.len(), &numeros);
            let path = format!("outbox/{}-pli.eml", ctx.batch_id);
            notices.push(OutputFile { path: path.clone(), bytes: eml });
            batch_notice = Some(path);
        }
    }

    let slips = records
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
        .collect();

    let mut counts = Counts::default();
    for p in &pages_out {
        match p.role {
            PageRole::Slip => counts.slip += 1,
            PageRole::Piece => counts.piece += 1,
            PageRole::Blank => counts.blank += 1,
            PageRole::Rejected => counts.rejected += 1,
        }
    }
    for pc in requests_out.iter().flat_map(|r| &r.pieces) {
        match pc.status {
            PieceStatus::Uploaded => counts.pieces_uploaded += 1,
            PieceStatus::Review => counts.pieces_review += 1,
            PieceStatus::Rejected => counts.pieces_rejected += 1,
        }
    }
    let status = if split.rejection.is_some()
        || requests_out.is_empty()
        || requests_out.iter().all(|r| r.status == Status::Rejected)
    {
        Status::Rejected
    } else if requests_out.iter().all(|r| r.status == Status::Accepted) && counts.rejected == 0 {
        Status::Accepted
    } else {
        Status::Partial
    };
    let batch = BatchReport {
        id: ctx.batch_id.clone(),
        channel: ctx.channel.as_str().to_string(),
        sender,
        received_at: received_at.to_rfc3339(),
        due_at: due_at.to_rfc3339(),
        pages: records.len(),
        status,
        reason: mailing_reason,
        anomalies,
        notice: batch_notice,
        plan_version: ctx.plan.version.clone(),
        duplex: split.duplex.clone(),
        counts,
    };
    JobOutput { report: Report { batch, slips, requests: requests_out, pages: pages_out }, pieces: piece_files, notices }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightpdf::PageCodec;

    fn page(codec: PageCodec, data: Vec<u8>, w: u32, h: u32) -> EncodedPage {
        EncodedPage { codec, width: w, height: h, page_w_pt: 595.276, page_h_pt: 841.89, data, mixed: None, choice: String::new() }
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
    }

    #[test]
    fn a_piece_that_cannot_shrink_is_refused() {
        // Bitonal pages are already lossless and minimal: nothing to degrade.
        let pages: Vec<EncodedPage> = (0..3).map(|_| page(PageCodec::CcittG4, vec![0x55; 900_000], 2480, 3508)).collect();
        let refs: Vec<&EncodedPage> = pages.iter().collect();
        assert!(piece_pdf(&refs, "t").is_none());
    }
}
