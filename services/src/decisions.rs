//! What the bureau's people decide, carried out: an operator's decision on a piece in review, a
//! change of a piece's cut, a failed mailing refused with a notice, a notice sent again, a
//! dead letter retried, a mailing put first. Each function does the whole of one decision
//! (objects first, then the database in one transaction, then the queue) and says what came of
//! it in a typed outcome; the web handlers only check who asks and what the form says, and
//! show the outcome. Nothing here knows HTTP.

use chrono::Utc;

use scanbureau_pipeline::ReasonCode;
use scanbureau_pipeline::notice::{NoticeContext, NoticePiece, RequestNotice, mailing_notice, request_notice};
use scanbureau_pipeline::piece_edit;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::report::PieceStatus;

use crate::blobs::BlobError;
use crate::broker::Stage;
use crate::bureau::{Bureau, job_message, notice_message};
use crate::store::desk::{self, Decided, Decision, PieceView};
use crate::store::{OutgoingNotice, StoreError};

/// A server a decision needed failed; nothing the person did wrong.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("PDF work stopped: {0}")]
    Task(String),
}

/// Queues a notice of the outbox (if the broker is away, the sweeper queues it).
async fn queue_notice(b: &Bureau, id: i64) {
    if let Err(e) = b.broker.publish(Stage::Notify, &notice_message(id)).await {
        tracing::warn!(notice = id, error = %e, "notice recorded but not queued yet; the sweeper will queue it");
    }
}

// ---------------------------------------------------------------- review

/// Records an operator's decision on a piece in review, with the request's follow-up notice in
/// the same transaction when it was the last piece waiting; then drops a refused piece's object
/// and queues the notice. `None`: the piece is not in review any more.
pub async fn decide_piece(b: &Bureau, piece: &str, decision: &Decision, actor: &str, plan: &FilingPlan) -> Result<Option<Decided>, DecisionError> {
    let Some(decided) = desk::decide(&b.pool, piece, decision, actor, |settled| follow_up_notice(b, settled, plan)).await? else {
        return Ok(None);
    };
    if let Some(key) = &decided.dropped_key
        && let Err(e) = b.blobs.delete(key).await
    {
        tracing::warn!(piece = %piece, error = %e, "refused piece's object not deleted; it is no longer referenced");
    }
    tracing::info!(piece = %piece, action = ?decision, "review decision");
    if let Some(id) = decided.follow_up {
        queue_notice(b, id).await;
    }
    Ok(Some(decided))
}

/// What confirming an original gave.
#[derive(Debug)]
pub enum OriginalOutcome {
    /// Filed as the bureau's stamped copy, the paper in the register.
    Filed(Decided),
    /// The piece is not in review any more (decided meanwhile).
    NotInReview,
    /// The piece has no PDF to stamp, or its PDF cannot be read, said to the operator.
    Refused(String),
}

/// An operator confirms that a piece in review is an original sent by mistake: its PDF is
/// stamped "COPIE" (dated, with the bureau's name) and stored under a key of its own first;
/// then the piece is filed as that copy and the paper entered in the register, in one
/// transaction; then the unstamped object goes. A failure in between leaves an unreferenced
/// object, never a piece without its PDF.
pub async fn confirm_original(
    b: &Bureau,
    piece: &PieceView,
    (categorie, type_code, sensible): (&str, &str, bool),
    location: &str,
    actor: &str,
    plan: &FilingPlan,
) -> Result<OriginalOutcome, DecisionError> {
    let Some(key) = piece.key.clone() else {
        return Ok(OriginalOutcome::Refused("Cette pièce n'a pas de PDF à tamponner.".into()));
    };
    let pdf = b.blobs.get_bytes(&key).await?;
    let (bureau, today) = (b.site.site.name.clone(), b.site.calendar().localise(Utc::now().fixed_offset()).date_naive());
    let stamped = match tokio::task::spawn_blocking(move || scanbureau_pipeline::originals::stamp_copy(&pdf, &bureau, today)).await {
        Ok(Ok(stamped)) => stamped,
        Ok(Err(e)) => return Ok(OriginalOutcome::Refused(format!("Le PDF de cette pièce ne peut pas être tamponné : {e}."))),
        Err(e) => return Err(DecisionError::Task(e.to_string())),
    };
    let copy_key = format!("{}-copie.pdf", key.trim_end_matches(".pdf"));
    b.blobs.put_bytes(&copy_key, stamped, "application/pdf").await?;
    let decision = Decision::Original {
        categorie: categorie.to_string(),
        type_code: type_code.to_string(),
        sensible,
        location: location.to_string(),
        copy_key: copy_key.clone(),
    };
    match decide_piece(b, &piece.id, &decision, actor, plan).await {
        Ok(Some(decided)) => Ok(OriginalOutcome::Filed(decided)),
        outcome => {
            // Not filed: the stamped copy is nobody's.
            if let Err(e) = b.blobs.delete(&copy_key).await {
                tracing::warn!(piece = %piece.id, error = %e, "unused stamped copy not deleted");
            }
            outcome.map(|_| OriginalOutcome::NotInReview)
        }
    }
}

/// Once no piece of a request waits for an operator, its people get a new notice saying
/// what became of every piece (written in the decision's transaction).
fn follow_up_notice(b: &Bureau, settled: &desk::Settled<'_>, plan: &FilingPlan) -> Option<OutgoingNotice> {
    let Some(to) = settled.recipients.first() else {
        tracing::info!(mailing = %settled.mailing.id, "no one to tell about the review decisions");
        return None;
    };
    let numero = settled.pieces.first().and_then(|p| p.numero_unique.clone());
    let notice_pieces: Vec<NoticePiece> = settled
        .pieces
        .iter()
        .map(|p| NoticePiece {
            libelle: p.categorie.as_deref().zip(p.type_code.as_deref()).and_then(|(c, t)| plan.piece_type(c, t)).map(|t| t.libelle.clone()),
            sensible: p.sensible,
            pages: p.pages.max(1) as usize,
            status: match p.status.as_str() {
                "uploaded" => PieceStatus::Uploaded,
                "review" => PieceStatus::Review,
                _ => PieceStatus::Rejected,
            },
            reason: p.reason.as_deref().and_then(ReasonCode::from_code),
            original: p.original,
        })
        .collect();
    let ctx = notice_context(b, settled.mailing);
    let total_pages = notice_pieces.iter().map(|p| p.pages).sum();
    let notice = RequestNotice { to, numero: numero.as_deref(), reason: None, pieces: notice_pieces, pages: total_pages };
    Some(OutgoingNotice {
        name: format!("verification-{}.eml", numero.as_deref().unwrap_or("sans-numero")),
        recipients: settled.recipients.to_vec(),
        sender: b.site.site.bureau_email.clone(),
        message: request_notice(&ctx, &notice),
    })
}

/// What every notice about a mailing shares, written now.
fn notice_context<'a>(b: &'a Bureau, m: &'a desk::MailingView) -> NoticeContext<'a> {
    let calendar = b.site.calendar();
    NoticeContext {
        bureau_email: &b.site.site.bureau_email,
        site_name: &b.site.site.name,
        batch_id: &m.id,
        received_at: calendar.localise(m.received_at.fixed_offset()),
        due_at: calendar.localise(m.due_at.fixed_offset()),
        now: calendar.localise(Utc::now().fixed_offset()),
    }
}

// ---------------------------------------------------------------- cuts

/// A change of a piece's cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// In two, after this page.
    Split { after: u32 },
    /// With this other piece put after it.
    Join { with: String },
}

/// What asking for a change of cut gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutOutcome {
    Done,
    /// The pieces changed meanwhile (another operator): nothing was modified.
    Changed,
    /// The pieces do not allow it (no file, not of the same request, not in review), said to
    /// the operator.
    NotPossible(String),
    /// The PDF cannot be cut that way, said to the operator.
    Refused(String),
}

/// Splits or joins pieces in review: the new PDFs are stored first, then the database changes
/// in one transaction, then the old objects go (a failure in between leaves an unreferenced
/// object, never a missing one). `sees_sensitive`: whether the operator may join a sensitive
/// piece.
pub async fn change_cut(b: &Bureau, piece: &PieceView, cut: &Cut, actor: &str, sees_sensitive: bool) -> Result<CutOutcome, DecisionError> {
    let refused = |m: &str| Ok(CutOutcome::Refused(m.to_string()));
    let not_possible = |m: &str| Ok(CutOutcome::NotPossible(m.to_string()));
    let Some(key) = piece.key.clone() else { return not_possible("Cette pièce n'a pas de fichier.") };
    let pdf = b.blobs.get_bytes(&key).await?;
    let part_key = |id: &str| crate::blobs::keys::piece(piece.numero_unique.as_deref(), id);
    let (stored, outcome) = match cut {
        Cut::Split { after } => {
            let after = *after;
            let (head, tail) = match tokio::task::spawn_blocking(move || piece_edit::split_after(&pdf, after)).await {
                Ok(Ok(parts)) => parts,
                Ok(Err(e)) => {
                    tracing::warn!(piece = %piece.id, error = %e, "a change of cut was refused");
                    return refused(&e.en_francais());
                }
                Err(e) => return Err(DecisionError::Task(e.to_string())),
            };
            let part = |n: u32, bytes: usize, pages: i32| {
                let id = format!("{}-{n}", piece.id);
                desk::NewPart { key: part_key(&id), id, bytes: bytes as i64, pages }
            };
            let parts = [part(1, head.len(), after as i32), part(2, tail.len(), piece.pages - after as i32)];
            for (part, bytes) in parts.iter().zip([head, tail]) {
                b.blobs.put_bytes(&part.key, bytes, "application/pdf").await?;
            }
            let keys = parts.iter().map(|p| p.key.clone()).collect::<Vec<_>>();
            let outcome = desk::split_piece(&b.pool, &piece.id, after as usize, [&parts[0], &parts[1]], actor).await?;
            (keys, outcome.map(|old| old.into_iter().collect::<Vec<_>>()))
        }
        Cut::Join { with } => {
            let other = match desk::piece(&b.pool, with).await? {
                Some(o) if o.mailing_id == piece.mailing_id && o.status == "review" && (!o.sensible || sees_sensitive) => o,
                _ => return not_possible("Seules deux pièces de la même demande, toutes deux à vérifier, peuvent être jointes."),
            };
            let Some(other_key) = other.key.clone() else { return not_possible("L'autre pièce n'a pas de fichier.") };
            let second = b.blobs.get_bytes(&other_key).await?;
            let joined = match tokio::task::spawn_blocking(move || piece_edit::join(&[&pdf, &second])).await {
                Ok(Ok(j)) => j,
                Ok(Err(e)) => {
                    tracing::warn!(piece = %piece.id, error = %e, "a change of cut was refused");
                    return refused(&e.en_francais());
                }
                Err(e) => return Err(DecisionError::Task(e.to_string())),
            };
            let id = format!("{}+{}", piece.id, other.id.trim_start_matches("p-"));
            let part = desk::NewPart { key: part_key(&id), id, bytes: joined.len() as i64, pages: piece.pages + other.pages };
            b.blobs.put_bytes(&part.key, joined, "application/pdf").await?;
            (vec![part.key.clone()], desk::join_pieces(&b.pool, &piece.id, &other.id, &part, actor).await?)
        }
    };
    let (unreferenced, what, done) = match outcome {
        Some(old_keys) => (old_keys, "replaced piece object not deleted; it is no longer referenced", CutOutcome::Done),
        None => (stored, "object of a cut that did not happen not deleted; it is not referenced", CutOutcome::Changed),
    };
    for k in unreferenced {
        if let Err(e) = b.blobs.delete(&k).await {
            tracing::warn!(key = %k, error = %e, "{what}");
        }
    }
    Ok(done)
}

// ---------------------------------------------------------------- mailings and notices

/// What refusing a failed mailing gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailingRefusal {
    /// Refused; `notified` says whether a notice went to its sender.
    Refused {
        notified: bool,
    },
    Missing,
    /// It is not failed (any more).
    NotFailed,
}

/// Refuses a mailing the stages gave up on, with `reason`: the refusal and the notice to its
/// sender (the depositor, else the counter's referent) are written in one transaction, so a
/// refused mailing always has its notice; then the notice is queued.
pub async fn refuse_failed_mailing(b: &Bureau, id: &str, reason: ReasonCode, actor: &str) -> Result<MailingRefusal, DecisionError> {
    let Some(m) = desk::mailing(&b.pool, id).await? else { return Ok(MailingRefusal::Missing) };
    let referent = match m.guichet.as_deref() {
        Some(g) => desk::counter_contact(&b.pool, g).await?.map(|c| c.email_referent),
        None => None,
    };
    let notice = m.notify.clone().or(referent).map(|to| OutgoingNotice {
        name: "refus-operateur.eml".into(),
        message: mailing_notice(&notice_context(b, &m), &to, reason, m.pages.unwrap_or(0).max(0) as usize, &[]),
        recipients: vec![to],
        sender: b.site.site.bureau_email.clone(),
    });
    if notice.is_none() {
        tracing::info!(mailing = %id, "refused mailing without a known sender; no notice");
    }
    match desk::reject_failed_mailing(&b.pool, id, reason.code(), actor, notice.as_ref()).await? {
        None => Ok(MailingRefusal::NotFailed),
        Some(notice) => {
            if let Some(n) = notice {
                queue_notice(b, n).await;
            }
            Ok(MailingRefusal::Refused { notified: notice.is_some() })
        }
    }
}

/// Puts a notice back in the outbox and queues it.
pub async fn resend_notice(b: &Bureau, id: i64, actor: &str) -> Result<desk::Resend, DecisionError> {
    let r = desk::resend_notice(&b.pool, id, actor).await?;
    if r == desk::Resend::Queued {
        queue_notice(b, id).await;
    }
    Ok(r)
}

/// Retries what a stage gave up on: the dead letter is marked retried and its message queued
/// again. `false`: it was already dealt with.
pub async fn retry_dead_letter(b: &Bureau, id: i64, actor: &str) -> Result<bool, DecisionError> {
    let Some(d) = desk::resolve_dead_letter(&b.pool, id, "retried", actor).await? else { return Ok(false) };
    let stage = if d.stage == Stage::Notify.as_str() { Stage::Notify } else { Stage::Process };
    if let Err(e) = b.broker.publish(stage, &d.payload).await {
        tracing::warn!(dead_letter = id, error = %e, "retry recorded but not queued; the sweeper queues received mailings again");
    }
    Ok(true)
}

/// Moves a mailing to the front: recorded, then put on the urgent queue, consumed beside the
/// ordinary one (its place there is then a no-op). `false`: done already, or unknown.
pub async fn prioritise(b: &Bureau, id: &str, actor: &str) -> Result<bool, DecisionError> {
    if !desk::prioritise(&b.pool, id, actor).await? {
        return Ok(false);
    }
    if let Err(e) = b.broker.publish(Stage::Urgent, &job_message(id)).await {
        tracing::warn!(mailing = %id, error = %e, "priority recorded but not queued; it keeps its place in the queue");
    }
    tracing::info!(mailing = %id, by = %actor, "mailing prioritised");
    Ok(true)
}
