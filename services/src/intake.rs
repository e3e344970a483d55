//! Two of the intake channels, polled: the scanners' hot folder and the secure-mail Maildir.
//! (The portal API is in `http.rs`; secure mail on an IMAP server in `imap_intake.rs`, which
//! judges and stores each message as the Maildir does, through [`take_message`].)
//!
//! Hot folder: a batch (a folder of page images, or one multi-page TIFF/PDF) is taken once
//! complete: it holds a `.done` marker, or its size has not changed for `intake.stable_s`
//! seconds. It is first renamed into `.taken/` (atomic on one file system, so a scanner never
//! sees it half-moved and it is never read half-written), stored, then moved to `.stored/`.
//! Anything left in `.taken/` by a crash or a storage failure is stored on the next round.
//!
//! Maildir: each message in `new/` or `cur/` is read; a mailing from a known sender with PDF or
//! image attachments is stored; otherwise a reply notice says why. Only then is the message
//! moved to the `.processed` (or `.failed`) Maildir++ folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;

use mail_parser::MimeHeaders;
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::notice::{MailRefusal, NoticeContext, mail_refusal_notice};

use crate::blobs::keys;
use crate::broker::Stage;
use crate::bureau::{Bureau, Intake, notice_message};
use crate::mail_auth::{AuthFacts, Authenticity, judge};
use crate::store::{self, RefusedMail, StoredFile};

const TAKEN: &str = ".taken";
const STORED: &str = ".stored";
const MARKER: &str = ".done";

/// What the hot folder watcher remembers between rounds: each entry's size and since when.
#[derive(Default)]
pub struct HotFolder {
    seen: HashMap<PathBuf, (u64, Instant)>,
}

fn tree_size(path: &Path) -> std::io::Result<(u64, bool)> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok((meta.len(), false));
    }
    let mut total = 0;
    let mut marker = false;
    for e in std::fs::read_dir(path)? {
        let e = e?;
        if e.file_name() == MARKER {
            marker = true;
        }
        total += e.metadata()?.len() + 1;
    }
    Ok((total, marker))
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn is_partial(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".part") || name.ends_with(".tmp") || name.ends_with(".partial")
}

impl HotFolder {
    /// One round: returns the batches that became complete, already moved into `.taken/`.
    pub fn take_complete(&mut self, root: &Path, stable: Duration) -> Result<Vec<PathBuf>> {
        let taken_dir = root.join(TAKEN);
        std::fs::create_dir_all(&taken_dir).with_context(|| format!("creating {}", taken_dir.display()))?;
        let mut complete = Vec::new();
        let mut present = Vec::new();
        for e in std::fs::read_dir(root).with_context(|| format!("listing hot folder {}", root.display()))? {
            let path = e?.path();
            if is_hidden(&path) || is_partial(&path) {
                continue;
            }
            present.push(path.clone());
            let Ok((size, marker)) = tree_size(&path) else { continue };
            let now = Instant::now();
            let entry = self.seen.entry(path.clone()).or_insert((size, now));
            if entry.0 != size {
                *entry = (size, now);
            }
            if marker || now.duration_since(entry.1) >= stable {
                complete.push(path);
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        let mut moved = Vec::new();
        for path in complete {
            let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3f");
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let target = taken_dir.join(format!("{stamp}-{name}"));
            match std::fs::rename(&path, &target) {
                Ok(()) => {
                    self.seen.remove(&path);
                    moved.push(target);
                }
                Err(e) => tracing::warn!(batch = %path.display(), error = %e, "could not take the batch; will try again"),
            }
        }
        Ok(moved)
    }
}

/// The files of a taken batch, in scanner order (sorted by name), without the marker.
fn batch_files(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !path.is_dir() {
        // `<stamp>-<name>`: the original name is after the first '-' of the stamp's end.
        let n = name_of(path);
        let original = n.split_once('-').map(|(_, r)| r.to_string()).unwrap_or(n);
        return Ok(vec![(original, path.to_path_buf())]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && !is_hidden(p)).collect();
    files.sort();
    Ok(files.into_iter().map(|p| (name_of(&p), p)).collect())
}

/// Stores every batch waiting in `.taken/`; a batch whose storing fails stays there.
pub async fn store_taken(bureau: &Bureau, root: &Path) -> Result<usize> {
    let taken_dir = root.join(TAKEN);
    let stored_dir = root.join(STORED);
    std::fs::create_dir_all(&stored_dir)?;
    let mut batches: Vec<PathBuf> = std::fs::read_dir(&taken_dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    batches.sort();
    let mut n = 0;
    for batch in batches {
        let files = batch_files(&batch)?;
        let source = batch.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if files.is_empty() {
            tracing::warn!(batch = %source, "empty batch ignored");
            std::fs::rename(&batch, stored_dir.join(&source))?;
            continue;
        }
        let intake = Intake { channel: "paper", source: &source, files: &files, numero_unique: None, notify: None, portal_user: None, counter: None };
        match bureau.receive(intake).await {
            Ok((id, outcome)) => {
                tracing::info!(batch = %source, mailing = %id, ?outcome, "scanner batch stored");
                std::fs::rename(&batch, stored_dir.join(&source))?;
                n += 1;
            }
            Err(e) => {
                bureau.metrics.failure("intake", "hot folder store");
                tracing::warn!(batch = %source, error = %format!("{e:#}"), "could not store the batch; it stays in .taken and is tried again");
            }
        }
    }
    Ok(n)
}

pub async fn run_hot_folder(bureau: Arc<Bureau>) -> Result<()> {
    let root = PathBuf::from(&bureau.config.intake.hot_folder);
    std::fs::create_dir_all(&root).with_context(|| format!("creating hot folder {}", root.display()))?;
    tracing::info!(folder = %root.display(), "watching the scanners' hot folder");
    let mut watcher = HotFolder::default();
    let stable = Duration::from_secs(bureau.config.intake.stable_s);
    let mut shutdown = bureau.shutdown.clone();
    loop {
        if let Err(e) = watcher.take_complete(&root, stable) {
            tracing::warn!(error = %format!("{e:#}"), "hot folder round failed");
        }
        if let Err(e) = store_taken(&bureau, &root).await {
            tracing::warn!(error = %format!("{e:#}"), "hot folder round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(bureau.config.intake.poll_ms)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------- Maildir

/// What an e-mail is, for intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailVerdict {
    Take,
    Refuse(MailRefusal),
}

/// Pure: decides from the sender's standing and the attachments (name, size).
pub fn judge_mail(sender_known: bool, attachments: &[(String, u64)], limit: u64) -> MailVerdict {
    if !sender_known {
        return MailVerdict::Refuse(MailRefusal::UnknownSender);
    }
    let usable: Vec<&(String, u64)> = attachments.iter().filter(|(n, _)| is_document(n)).collect();
    if usable.is_empty() {
        return MailVerdict::Refuse(MailRefusal::NoAttachment);
    }
    if let Some((name, bytes)) = usable.iter().find(|(_, b)| *b > limit) {
        return MailVerdict::Refuse(MailRefusal::AttachmentTooLarge { name: name.clone(), bytes: *bytes, limit });
    }
    MailVerdict::Take
}

fn is_document(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    [".pdf", ".tif", ".tiff", ".jpg", ".jpeg", ".png"].iter().any(|e| l.ends_with(e))
}

/// Moves a message into a Maildir++ sub-folder (`.processed`, `.failed`), keeping its name.
fn file_message(maildir: &Path, msg: &Path, folder: &str) -> Result<()> {
    let dest = maildir.join(folder);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dest.join(sub))?;
    }
    let name = msg.file_name().context("message without a name")?;
    std::fs::rename(msg, dest.join("cur").join(name)).with_context(|| format!("moving {} to {folder}", msg.display()))?;
    Ok(())
}

/// One round over the Maildir. Returns the number of messages filed.
pub async fn maildir_round(bureau: &Bureau, maildir: &Path) -> Result<usize> {
    let mut messages = Vec::new();
    for sub in ["new", "cur"] {
        let dir = maildir.join(sub);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            messages.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && !is_hidden(p)));
        }
    }
    messages.sort();
    let mut n = 0;
    for msg in messages {
        let name = msg.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match take_message(bureau, &msg, &name).await {
            Ok(taken) => {
                let folder = match taken.folder {
                    MailFolder::Processed => ".processed",
                    MailFolder::Failed => ".failed",
                };
                file_message(maildir, &msg, folder)?;
                n += 1;
            }
            Err(e) => {
                bureau.metrics.failure("intake", "maildir store");
                tracing::warn!(message = %msg.display(), error = %format!("{e:#}"), "could not store the message; it stays and is tried again");
            }
        }
    }
    Ok(n)
}

/// Where a message goes once taken: stored as a mailing, or refused (with a reply when it has
/// a sender to answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFolder {
    Processed,
    Failed,
}

/// What became of a message.
#[derive(Debug, Clone)]
pub struct TakenMail {
    /// Its Message-ID (or `fallback_id` when it has none).
    pub message_id: String,
    /// The mailing it became; none for a message without a sender, which nobody can be told of.
    pub mailing: Option<String>,
    pub folder: MailFolder,
}

/// Stores one message (the file at `path`) as a mailing, or records its refusal and queues the
/// reply. Taking the same message twice gives the same mailing, not a second one: its identity
/// is its content.
pub async fn take_message(bureau: &Bureau, path: &Path, fallback_id: &str) -> Result<TakenMail> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = mail_parser::MessageParser::default().parse(&bytes);
    let from = parsed.as_ref().and_then(|m| m.from()).and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string);
    let subject = parsed.as_ref().and_then(|m| m.subject()).unwrap_or("(sans objet)").to_string();
    let message_id = parsed.as_ref().and_then(|m| m.message_id()).map(str::to_string).unwrap_or_else(|| fallback_id.to_string());
    let attachments: Vec<(String, u64)> = parsed
        .as_ref()
        .map(|m| m.attachments().map(|a| (a.attachment_name().unwrap_or("piece-jointe").to_string(), a.contents().len() as u64)).collect())
        .unwrap_or_default();
    let known = match &from {
        Some(f) => store::sender_known(&bureau.pool, f).await?,
        None => false,
    };
    let files = vec![(format!("{}.eml", sanitize_id(&message_id)), path.to_path_buf())];
    // Where the message comes from, before anything is answered: a forged sender is never told.
    let checked = match &bureau.mail_auth {
        Some(checker) => {
            let facts = checker.check(&bytes).await;
            let verdict = judge(&facts);
            Some((facts, verdict))
        }
        None => None,
    };
    // Only unproven mail asks whose it is: a counter's must be authenticated.
    let unproven_counter = match (&checked, &from) {
        (Some((_, Authenticity::Unproven)), Some(f)) if known => store::counter_address(&bureau.pool, f).await?,
        _ => false,
    };
    let verdict = match &checked {
        Some((facts, Authenticity::Unavailable(why))) => {
            bureau.metrics.failure("intake", "mail authentication");
            anyhow::bail!("{why} (DKIM, SPF, DMARC of {}): the message waits and is checked again", facts.from_domain)
        }
        Some((_, Authenticity::Forged(proof))) => {
            let to = from.clone().unwrap_or_default();
            tracing::warn!(message = %message_id, from = %to, %proof, "forged e-mail refused, not answered");
            let id = refuse_mail(bureau, &files, &message_id, &to, Refusal::Forged(proof)).await?;
            record_checks(bureau, &id, checked.as_ref()).await?;
            return Ok(TakenMail { message_id, mailing: Some(id), folder: MailFolder::Failed });
        }
        Some((facts, Authenticity::Unproven)) if unproven_counter => MailVerdict::Refuse(MailRefusal::Unauthenticated { domain: facts.from_domain.clone() }),
        _ => judge_mail(known, &attachments, bureau.config.intake.max_attachment_bytes),
    };
    match verdict {
        MailVerdict::Take => {
            // An applicant writing about their own request (its numéro in the subject or the
            // text): a deposit for that request, without a fiche, and the notice goes to them.
            let text = format!("{subject}\n{}", parsed.as_ref().and_then(|m| m.body_text(0)).unwrap_or_default());
            let own = match &from {
                Some(f) => applicant_numero(&numeros_in(&text), &store::applicant_requests(&bureau.pool, f).await?),
                None => None,
            };
            let notify = own.as_ref().and(from.clone());
            let intake = Intake { channel: "mail", source: &message_id, files: &files, numero_unique: own.clone(), notify, portal_user: None, counter: None };
            let (id, outcome) = bureau.receive(intake).await?;
            record_checks(bureau, &id, checked.as_ref()).await?;
            tracing::info!(mailing = %id, applicant = own.is_some(), ?outcome, "e-mail stored as a mailing");
            Ok(TakenMail { message_id, mailing: Some(id), folder: MailFolder::Processed })
        }
        MailVerdict::Refuse(why) => {
            let Some(to) = from else {
                tracing::warn!(message = %message_id, "e-mail without a sender address: filed as failed, no reply possible");
                return Ok(TakenMail { message_id, mailing: None, folder: MailFolder::Failed });
            };
            let id = refuse_mail(bureau, &files, &message_id, &to, Refusal::Answered { subject: &subject, why: &why }).await?;
            record_checks(bureau, &id, checked.as_ref()).await?;
            Ok(TakenMail { message_id, mailing: Some(id), folder: MailFolder::Failed })
        }
    }
}

/// The numéros uniques written in a text: words of 18 letters and digits of the right shape.
pub fn numeros_in(text: &str) -> Vec<NumeroUnique> {
    let mut found: Vec<NumeroUnique> = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| w.len() == 18) {
        if let Ok(n) = NumeroUnique::parse(word)
            && !found.contains(&n)
        {
            found.push(n);
        }
    }
    found
}

/// The request an applicant's message is about: the first numéro it names that is one of their
/// own requests (a numéro of someone else's request is never taken).
fn applicant_numero(named: &[NumeroUnique], own: &[String]) -> Option<String> {
    named.iter().map(NumeroUnique::as_str).find(|n| own.iter().any(|o| o == n)).map(str::to_string)
}

fn sanitize_id(s: &str) -> String {
    let t: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c)).take(80).collect();
    if t.is_empty() { "message".into() } else { t }
}

/// Records how the message's origin was checked, with the mailing it became.
async fn record_checks(bureau: &Bureau, mailing: &str, checked: Option<&(AuthFacts, Authenticity)>) -> Result<()> {
    let Some((facts, verdict)) = checked else { return Ok(()) };
    store::record_mail_authentication(&bureau.pool, mailing, serde_json::to_value(facts)?, &verdict.label(), &bureau.actor).await?;
    Ok(())
}

/// Why a message is refused, and whether its sender is told.
enum Refusal<'a> {
    /// A reply explains why to the sender.
    Answered { subject: &'a str, why: &'a MailRefusal },
    /// Proved forged (the proof): the sender address is someone else's, never answered.
    Forged(&'a str),
}

/// A refused e-mail is still a mailing of the record (nothing lost): stored, marked done and
/// rejected, with its reply notice in the outbox when there is one. Returns the mailing's id.
async fn refuse_mail(bureau: &Bureau, files: &[(String, PathBuf)], message_id: &str, to: &str, refusal: Refusal<'_>) -> Result<String> {
    let id = crate::bureau::mailing_id("mail", None, files)?;
    let key = keys::raw(&id, 0, &files[0].0);
    bureau.blobs.put_file(&key, &files[0].1, "message/rfc822").await?;
    let received_at = Utc::now();
    let due_at = bureau.due_at(received_at);
    let ctx = NoticeContext {
        bureau_email: &bureau.site.site.bureau_email,
        site_name: &bureau.site.site.name,
        batch_id: &id,
        received_at: bureau.site.calendar().localise(received_at.fixed_offset()),
        due_at: due_at.fixed_offset(),
        now: received_at.fixed_offset(),
    };
    let refused = RefusedMail {
        id: id.clone(),
        message_id: message_id.to_string(),
        received_at,
        due_at,
        file: StoredFile { name: files[0].0.clone(), key, bytes: std::fs::metadata(&files[0].1)?.len() },
        why: match &refusal {
            Refusal::Answered { why, .. } => format!("{why:?}"),
            Refusal::Forged(proof) => format!("Forged: {proof}"),
        },
        to: to.to_string(),
        sender: bureau.site.site.bureau_email.clone(),
        reply: match &refusal {
            Refusal::Answered { subject, why } => Some(mail_refusal_notice(&ctx, to, subject, why)),
            Refusal::Forged(_) => None,
        },
    };
    let notice_id = store::record_refused_mail(&bureau.pool, &refused, &bureau.actor).await?;
    bureau.metrics.refused("mail");
    if let Some(n) = notice_id
        && let Err(e) = bureau.broker.publish(Stage::Notify, &notice_message(n)).await
    {
        tracing::warn!(notice = n, error = %e, "reply recorded but not queued yet; the sweeper will queue it");
    }
    tracing::info!(mailing = %id, %to, why = %refused.why, answered = refused.reply.is_some(), "e-mail refused");
    Ok(id)
}

pub async fn run_maildir(bureau: Arc<Bureau>) -> Result<()> {
    let root = PathBuf::from(&bureau.config.intake.maildir);
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).with_context(|| format!("creating Maildir {}", root.display()))?;
    }
    tracing::info!(maildir = %root.display(), "reading secure e-mail");
    let mut shutdown = bureau.shutdown.clone();
    loop {
        if let Err(e) = maildir_round(&bureau, &root).await {
            tracing::warn!(error = %format!("{e:#}"), "Maildir round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(bureau.config.intake.poll_ms)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

#[allow(clippy::unwrap_used)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applicant_s_message_is_about_the_numero_it_names_if_it_is_theirs() {
        let text = "Objet : pièces pour ma demande n° 0930325091042g3533\nAncienne demande 0930423903439G3533, dossier 12345, réf. 09303250910420G3533X";
        let named = numeros_in(text);
        assert_eq!(named.iter().map(NumeroUnique::as_str).collect::<Vec<_>>(), ["0930325091042G3533", "0930423903439G3533"]);
        let own = vec!["0930423903439G3533".to_string()];
        assert_eq!(applicant_numero(&named, &own).as_deref(), Some("0930423903439G3533"), "the first of their own");
        assert_eq!(applicant_numero(&named, &["0591025349521GDPUB".to_string()]), None, "someone else's numéro is never taken");
        assert_eq!(applicant_numero(&numeros_in("Bonjour, voici mes pièces."), &own), None);
    }

    #[test]
    fn mail_is_judged_on_sender_and_attachments() {
        let pdf = vec![("pieces.pdf".to_string(), 1000)];
        assert_eq!(judge_mail(true, &pdf, 18_000_000), MailVerdict::Take);
        assert_eq!(judge_mail(false, &pdf, 18_000_000), MailVerdict::Refuse(MailRefusal::UnknownSender));
        assert_eq!(judge_mail(true, &[("notes.docx".into(), 10)], 18_000_000), MailVerdict::Refuse(MailRefusal::NoAttachment));
        assert!(matches!(judge_mail(true, &[("scan.PDF".into(), 20_000_000)], 18_000_000), MailVerdict::Refuse(MailRefusal::AttachmentTooLarge { .. })));
    }

    #[test]
    fn a_batch_is_taken_when_marked_or_stable_and_never_while_growing() {
        let root = tempfile::tempdir().unwrap();
        let mut hf = HotFolder::default();
        // A folder still being written: not taken while it grows.
        let batch = root.path().join("lot-1");
        std::fs::create_dir(&batch).unwrap();
        std::fs::write(batch.join("0001.tif"), b"abc").unwrap();
        assert!(hf.take_complete(root.path(), Duration::from_secs(3600)).unwrap().is_empty());
        std::fs::write(batch.join("0002.tif"), b"def").unwrap();
        assert!(hf.take_complete(root.path(), Duration::from_secs(3600)).unwrap().is_empty());
        // The scanner's marker says it is complete.
        std::fs::write(batch.join(MARKER), b"").unwrap();
        let taken = hf.take_complete(root.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(taken.len(), 1);
        assert!(!batch.exists() && taken[0].starts_with(root.path().join(TAKEN)));
        let files = batch_files(&taken[0]).unwrap();
        assert_eq!(files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["0001.tif", "0002.tif"]);
        // A single file whose size is stable for the window (zero here) is taken; a .part is not.
        std::fs::write(root.path().join("lot-2.pdf"), b"%PDF").unwrap();
        std::fs::write(root.path().join("lot-3.pdf.part"), b"%PDF").unwrap();
        let taken = hf.take_complete(root.path(), Duration::ZERO).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(batch_files(&taken[0]).unwrap()[0].0, "lot-2.pdf");
        assert!(root.path().join("lot-3.pdf.part").exists());
    }
}
