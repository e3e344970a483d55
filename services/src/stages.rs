//! The queue-driven stages: processing a stored mailing, sending a notice; and the sweeper that
//! re-queues work whose message was lost between a commit and a publish.
//!
//! Each handler is idempotent: a message delivered again (after a worker died, or twice by the
//! sweeper) finds its work done and only acknowledges, or redoes it under the same keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use serde::Deserialize;
use tracing::Instrument;

use scanbureau_classifier::Classifier;
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::job::JobOutput;
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::registry::Registry;

use crate::blobs::keys;
use crate::broker::{Attempt, DeadLetterHook, Handled, Stage, run_stage};
use crate::bureau::{Bureau, notice_message};
use crate::process::{MailingJob, classifier_for, execute};
use crate::store::{self, FiledPiece, OutgoingNotice};

#[derive(Deserialize)]
struct MailingMessage {
    mailing: String,
}

#[derive(Deserialize)]
struct NoticeMessage {
    notice: i64,
}

/// Records what the broker dead-letters, so operators see it with its reason.
pub fn dead_letter_hook(bureau: Arc<Bureau>) -> DeadLetterHook {
    Arc::new(move |stage: Stage, payload: Vec<u8>, attempts: u32, reason: String| {
        let bureau = bureau.clone();
        Box::pin(async move {
            let subject = serde_json::from_slice::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v.get("mailing").and_then(|m| m.as_str().map(str::to_string)).or_else(|| v.get("notice").map(|n| format!("notice:{n}"))));
            bureau.metrics.failure(stage.as_str(), "dead-lettered");
            if let Err(e) = store::record_dead_letter(&bureau.pool, stage.as_str(), subject.as_deref(), attempts, &reason, &payload).await {
                tracing::error!(error = %e, "could not record a dead letter in the database (it is in the dead-letter queue)");
            }
        })
    })
}

/// Consumes the processing queue until shutdown; one mailing at a time, using every core.
pub async fn run_process_stage(bureau: Arc<Bureau>) -> Result<()> {
    // The plan is read once: the classifier's rules and the job's maxima come from the same
    // version (a new plan needs the workers restarted).
    let plan = Arc::new(store::current_plan(&bureau.pool).await?);
    let classifier = Arc::new(classifier_for(&bureau.site, &plan).map_err(|e| anyhow::anyhow!("{e}"))?);
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(bureau.config.job.threads).build().context("starting page threads")?);
    let registry = Arc::new(RegistryCache::default());
    let job = Arc::new(Job { classifier, pool, registry, plan });
    let consume = |stage: Stage| {
        let (b, job) = (bureau.clone(), job.clone());
        run_stage(&bureau.broker, stage, 1, bureau.shutdown.clone(), dead_letter_hook(bureau.clone()), move |payload, attempt| {
            let (b, job) = (b.clone(), job.clone());
            async move { process_message(&b, &job, &payload, attempt).await }
        })
    };
    // The ordinary queue and the prioritised one, side by side: a prioritised mailing starts
    // as soon as it is queued, beside the one in hand.
    tokio::join!(consume(Stage::Process), consume(Stage::Urgent));
    Ok(())
}

/// What the process stage holds for every mailing.
struct Job {
    classifier: Arc<Classifier>,
    pool: Arc<rayon::ThreadPool>,
    registry: Arc<RegistryCache>,
    plan: Arc<FilingPlan>,
}

async fn process_message(b: &Arc<Bureau>, job: &Job, payload: &[u8], attempt: Attempt) -> Handled {
    let Ok(msg) = serde_json::from_slice::<MailingMessage>(payload) else {
        return Handled::Reject(format!("unreadable message: {:?}", String::from_utf8_lossy(&payload[..payload.len().min(200)])));
    };
    let id = msg.mailing;
    process_attempt(b, job, &id, attempt).instrument(tracing::info_span!("mailing", mailing = %id)).await
}

/// One attempt at a mailing: its outcome, or its failure recorded (retried or given up).
async fn process_attempt(b: &Arc<Bureau>, job: &Job, id: &str, attempt: Attempt) -> Handled {
    match process_mailing(b, job, id).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let text = format!("{e:#}");
            tracing::warn!(mailing = %id, attempt = attempt.number, error = %text, "processing attempt failed");
            b.metrics.failure("process", first_words(&text));
            let last = match store::record_mailing_error(&b.pool, id, &text, attempt.last, &b.actor).await {
                Ok(gave_up) => gave_up,
                Err(db) => {
                    tracing::error!(mailing = %id, error = %db, "could not record the failure");
                    attempt.last
                }
            };
            if last { Handled::Reject(text) } else { Handled::Retry(text) }
        }
    }
}

/// The leading part of an error, as a metric label (no ids or paths).
fn first_words(s: &str) -> &str {
    let end = s.find([':', '(']).unwrap_or(s.len()).min(60);
    s[..end].trim()
}

/// Processes a mailing while holding its lease: a PostgreSQL advisory lock on a connection of
/// its own. A second message for a mailing another worker holds is only acknowledged (the
/// holder finishes it, or, if it dies, its connection closes, the lock goes and its own
/// unacknowledged message comes back).
async fn process_mailing(b: &Arc<Bureau>, job: &Job, id: &str) -> Result<Handled> {
    let mut lease = b.pool.acquire().await?;
    let held = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock(hashtext($1)) AS "held!""#, id).fetch_one(&mut *lease).await?;
    if !held {
        tracing::info!(mailing = %id, "another worker is processing this mailing; message acknowledged");
        return Ok(Handled::Done);
    }
    let result = process_leased(b, job, id).await;
    if let Err(e) = sqlx::query!("SELECT pg_advisory_unlock(hashtext($1))", id).fetch_one(&mut *lease).await {
        // Never hand a connection holding a lock back to the pool.
        tracing::warn!(mailing = %id, error = %e, "could not release the lease; closing its connection");
        let _ = lease.close().await;
    }
    result
}

async fn process_leased(b: &Arc<Bureau>, job: &Job, id: &str) -> Result<Handled> {
    let m = match store::claim_mailing(&b.pool, id, &b.actor).await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(Handled::Reject(format!("unknown mailing {id}"))),
        // Dead-lettered at once: the mailing shows as failed, with the reason, to an operator.
        Err(e @ store::StoreError::CorruptFileList { .. }) => return Ok(Handled::Reject(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if m.status == "done" {
        // A redelivery: the work is recorded; make sure its notices are on their way. If the
        // database or broker fails here, the sweep of stale pending notices queues them later:
        // the mailing itself is done and must not be retried or failed for it.
        if let Err(e) = requeue_pending_notices(b, id).await {
            tracing::warn!(mailing = %id, error = format!("{e:#}"), "pending notices not queued again now; the stale-notice sweep will");
        }
        return Ok(Handled::Done);
    }
    let started = Instant::now();
    let dir = crate::workdir::folder(&crate::workdir::root(&b.config)).context("creating a work folder")?;
    // Each file under its own name (the report's page sources name them), in the stored order.
    // A mailing is one input, like a folder given to the one-shot job: duplex pairing runs
    // across a scanner batch's files.
    let mut files = Vec::new();
    for (i, f) in m.files.iter().enumerate() {
        let sub = dir.path().join(format!("{i:03}"));
        std::fs::create_dir_all(&sub).context("creating a work folder")?;
        let path = sub.join(keys::safe_name(&f.name));
        match b.blobs.get_to_file(&f.key, &path).await {
            Ok(_) => {}
            // A raw file that is not in storage will not be there on the next try either.
            Err(e) if e.missing => return Ok(Handled::Reject(format!("a file of the mailing is missing from storage: {e}"))),
            Err(e) => return Err(e.into()),
        }
        files.push((0, path));
    }
    if !b.config.job.crash_on_mailing.is_empty() && b.config.job.crash_on_mailing == id {
        // Fault injection for the tests: a mailing that kills its worker on every delivery.
        tracing::error!(mailing = %id, "job.crash_on_mailing: aborting");
        std::process::abort();
    }
    let registry = job.registry.get(&b.pool, &job.plan.version).await?;
    let channel = match m.channel.as_str() {
        "portal" => Channel::Portal,
        "mail" => Channel::Mail,
        _ => Channel::Paper,
    };
    let numero = m.numero_unique.as_deref().map(NumeroUnique::parse).transpose().map_err(|e| anyhow::anyhow!("stored request number: {e}"))?;
    let site = b.site.clone();
    let received_at = m.received_at.fixed_offset();
    let notify = m.notify.clone();
    let (classifier, pool, plan) = (job.classifier.clone(), job.pool.clone(), job.plan.clone());
    // The page threads log inside this mailing's span.
    let span = tracing::Span::current();
    let output: JobOutput = tokio::task::spawn_blocking(move || {
        let _in = span.enter();
        let job = MailingJob { files: &files, channel, received_at, numero, notify, site: &site, registry: &registry, plan: &plan };
        execute(&job, &classifier, &pool, &|_| {}, &|| {})
    })
    .await
    .context("the job's thread failed")??;
    drop(dir);
    let report = &output.report;
    // Pieces first, under keys that do not change if this is done again.
    let mut filed = Vec::new();
    for r in &report.requests {
        for p in &r.pieces {
            let key = match p.file.as_deref().and_then(|f| output.pieces.iter().find(|o| o.path == f)) {
                Some(file) => {
                    let key = keys::piece(r.numero_unique.as_deref(), &p.id);
                    b.blobs.put_bytes(&key, file.bytes.clone(), "application/pdf").await?;
                    Some(key)
                }
                None => None,
            };
            filed.push(FiledPiece { id: p.id.clone(), key });
        }
    }
    b.blobs.put_bytes(&keys::report(id), serde_json::to_vec_pretty(report)?, "application/json").await?;
    let notices: Vec<OutgoingNotice> = output.notices.iter().filter_map(|n| outgoing(n.path.as_str(), &n.bytes, &b.site.site.bureau_email)).collect();
    let pending = store::record_done(&b.pool, id, report, &filed, &notices, b.config.storage.raw_retention_days, &b.actor).await?;
    b.metrics.processed(report.batch.pages as u64, started.elapsed());
    b.metrics.done_after((Utc::now() - m.received_at).to_std().unwrap_or_default());
    tracing::info!(mailing = %id, pages = report.batch.pages, pieces = filed.len(), notices = pending.len(), ms = started.elapsed().as_millis() as u64, "mailing done");
    for n in pending {
        if let Err(e) = b.broker.publish(Stage::Notify, &notice_message(n)).await {
            tracing::warn!(notice = n, error = %e, "notice recorded but not queued yet; the sweeper will queue it");
        }
    }
    Ok(Handled::Done)
}

/// The registry as last read from the database, read again only when it changed (its
/// version: the latest update and the row counts), so a mailing costs one small query.
#[derive(Default)]
pub struct RegistryCache {
    current: tokio::sync::Mutex<Option<(String, Arc<Registry>)>>,
}

impl RegistryCache {
    pub async fn get(&self, pool: &sqlx::PgPool, plan_version: &str) -> Result<Arc<Registry>> {
        let version = format!("{}|{plan_version}", store::registry_version(pool).await?);
        let mut guard = self.current.lock().await;
        if let Some((v, r)) = guard.as_ref()
            && *v == version
        {
            return Ok(r.clone());
        }
        let fresh = Arc::new(store::registry(pool, plan_version).await?);
        tracing::info!(demandes = fresh.len(), "registry read from the database");
        *guard = Some((version, fresh.clone()));
        Ok(fresh)
    }
}

async fn requeue_pending_notices(b: &Bureau, mailing: &str) -> Result<()> {
    for n in store::pending_notices_of(&b.pool, mailing).await.context("reading the mailing's pending notices")? {
        b.broker.publish(Stage::Notify, &notice_message(n)).await.context("queueing a pending notice again")?;
    }
    Ok(())
}

/// A notice written by the job, with its envelope read from its own headers.
fn outgoing(path: &str, bytes: &[u8], fallback_from: &str) -> Option<OutgoingNotice> {
    let msg = mail_parser::MessageParser::default().parse(bytes)?;
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| a.iter().filter_map(|x| x.address().map(str::to_string)).collect()).unwrap_or_default()
    };
    let to = addresses(msg.to());
    if to.is_empty() {
        tracing::warn!(notice = path, "notice without recipient; not queued");
        return None;
    }
    let from = addresses(msg.from()).into_iter().next().unwrap_or_else(|| fallback_from.to_string());
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    Some(OutgoingNotice { name, recipients: to, sender: from, message: bytes.to_vec() })
}

/// Consumes the notice queue until shutdown.
pub async fn run_notify_stage(bureau: Arc<Bureau>) -> Result<()> {
    let hook = dead_letter_hook(bureau.clone());
    let b = bureau.clone();
    run_stage(&bureau.broker, Stage::Notify, bureau.config.broker.prefetch_notify, bureau.shutdown.clone(), hook, move |payload, attempt| {
        let b = b.clone();
        async move { notify_message(&b, &payload, attempt).await }
    })
    .await;
    Ok(())
}

async fn notify_message(b: &Bureau, payload: &[u8], attempt: Attempt) -> Handled {
    let Ok(msg) = serde_json::from_slice::<NoticeMessage>(payload) else {
        return Handled::Reject(format!("unreadable message: {:?}", String::from_utf8_lossy(&payload[..payload.len().min(200)])));
    };
    match send_notice(b, msg.notice, attempt).instrument(tracing::info_span!("notice", notice = msg.notice)).await {
        Ok(h) => h,
        Err(e) => {
            b.metrics.failure("notify", "database");
            Handled::Retry(format!("{e:#}"))
        }
    }
}

async fn send_notice(b: &Bureau, id: i64, attempt: Attempt) -> Result<Handled> {
    let mut tx = b.pool.begin().await?;
    let Some(n) = store::lock_notice(&mut tx, id).await? else {
        return Ok(Handled::Reject(format!("unknown notice {id}")));
    };
    if n.status != "pending" {
        return Ok(Handled::Done);
    }
    let last = attempt.last;
    let sending = Instant::now();
    let sent = b.mailer.send(&n.sender, &n.recipients, &n.message).await;
    b.metrics.call("smtp", "send", sent.is_ok(), sending.elapsed());
    match sent {
        Ok(()) => {
            if b.config.job.crash_after_smtp_accept {
                tracing::error!(notice = id, "job.crash_after_smtp_accept: aborting");
                std::process::abort();
            }
            store::notice_sent(&mut tx, &n, &b.actor).await?;
            tx.commit().await?;
            b.metrics.notice_sent();
            tracing::info!(notice = id, mailing = %n.mailing_id, recipients = n.recipients.len(), "notice sent");
            Ok(Handled::Done)
        }
        Err(e) if e.is_permanent() => {
            let e = e.to_string();
            store::notice_failed(&mut tx, &n, &e, true, &b.actor).await?;
            tx.commit().await?;
            b.metrics.failure("notify", "refused");
            Ok(Handled::Reject(e))
        }
        Err(e) => {
            let e = e.to_string();
            store::notice_failed(&mut tx, &n, &e, last, &b.actor).await?;
            tx.commit().await?;
            b.metrics.failure("notify", "smtp unavailable");
            Ok(if last { Handled::Reject(e) } else { Handled::Retry(e) })
        }
    }
}

/// Every `job.sweep_s`: queues again mailings and notices whose message was lost, and deletes
/// raw mailings past their retention.
pub async fn run_sweeper(bureau: Arc<Bureau>) -> Result<()> {
    let every = Duration::from_secs(bureau.config.job.sweep_s.max(1));
    let mut shutdown = bureau.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        if let Err(e) = sweep(&bureau, every * 2).await {
            tracing::warn!(error = %e, "sweep failed; will try again");
        }
    }
}

pub async fn sweep(b: &Bureau, older_than: Duration) -> Result<()> {
    // A mailing can wait its turn in the queue for long under a backlog: only one unclaimed for
    // much longer than a sweep is taken for lost.
    for id in store::stale_received(&b.pool, older_than * 5).await? {
        tracing::info!(mailing = %id, "queuing again a mailing that was not picked up");
        b.broker.publish(Stage::Process, &crate::bureau::job_message(&id)).await?;
    }
    for n in store::stale_pending_notices(&b.pool, older_than).await? {
        b.broker.publish(Stage::Notify, &notice_message(n)).await?;
    }
    // An alert that cannot be raised or sent holds up nothing else the sweep does.
    let now = Utc::now();
    if let Err(e) = crate::alerts::raise(b, now).await.and(crate::alerts::send_pending(b, now).await) {
        b.metrics.failure("alert", "sweep");
        tracing::warn!(error = %e, "alerts not raised or sent; tried again at the next sweep");
    }
    for (id, files) in store::expired_raw(&b.pool).await? {
        for f in &files {
            b.blobs.delete(&f.key).await?;
        }
        store::mark_raw_deleted(&b.pool, &id, &b.actor).await?;
        tracing::info!(mailing = %id, at = %Utc::now(), "raw mailing deleted after its retention");
    }
    Ok(())
}
