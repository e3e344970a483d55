//! The bureau's database: mailings, pages, requests, pieces, the notice outbox, dead letters,
//! audit events, counters and portal users, the registry's requests and plan versions.
//!
//! Every write that changes a state also writes an audit event in the same transaction.
//! Inserts that a redelivered message could repeat are idempotent (`ON CONFLICT DO NOTHING`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use thiserror::Error;

use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::registry::Registry;
use scanbureau_pipeline::report::Report;

pub mod alerts;
pub mod desk;
pub mod imap;
pub mod originals;
pub mod people;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database holds no filing plan: load one with --plan or job.plan")]
    NoPlan,
    #[error("registry data in the database is not valid: {0}")]
    Registry(String),
    /// A stored value no code writes (edited by hand, or by a bug): retrying will not mend it.
    #[error("the stored file list of mailing {mailing} is unreadable ({detail}): nothing of it can be processed")]
    CorruptFileList { mailing: String, detail: String },
    /// A stored value outside what the code writes and the schema allows.
    #[error("stored {what} is not valid: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Connects (waiting up to `timeout` for the server) and brings the schema up to date.
pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let pool = loop {
        match PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10)).connect_with(options.clone()).await {
            Ok(p) => break p,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

pub async fn audit(tx: &mut Transaction<'_, Postgres>, actor: &str, subject: &str, action: &str, detail: Value) -> Result<()> {
    sqlx::query!("INSERT INTO audit_events (actor, subject, action, detail) VALUES ($1, $2, $3, $4)", actor, subject, action, detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- registry and plan

/// Loads a registry snapshot (the contract's JSON) into the database: counters and requests
/// are inserted or updated.
pub async fn load_registry_snapshot(pool: &PgPool, json: &str, actor: &str) -> Result<(usize, usize)> {
    let v: Value = serde_json::from_str(json).map_err(|e| StoreError::Registry(e.to_string()))?;
    // Validate with the pipeline's own reader before anything is written.
    Registry::from_json(json).map_err(|e| StoreError::Registry(e.to_string()))?;
    let mut tx = pool.begin().await?;
    // The reader above has checked every field read here: none falls back to a default.
    let guichets = v["guichets"].as_array().cloned().unwrap_or_default();
    for g in &guichets {
        sqlx::query!(
            "INSERT INTO guichets (numero, departement, email_referent) VALUES ($1, $2, $3)
             ON CONFLICT (numero) DO UPDATE SET departement = EXCLUDED.departement, email_referent = EXCLUDED.email_referent",
            g["numero"].as_str().unwrap_or_default().to_ascii_uppercase(),
            g["departement"].as_str().unwrap_or_default(),
            g["email_referent"].as_str().unwrap_or_default()
        )
        .execute(&mut *tx)
        .await?;
    }
    let demandes = v["demandes"].as_array().cloned().unwrap_or_default();
    for d in &demandes {
        sqlx::query!(
            "INSERT INTO registry_demandes (numero_unique, record) VALUES ($1, $2)
             ON CONFLICT (numero_unique) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
            d["numero_unique"].as_str().unwrap_or_default(),
            d
        )
        .execute(&mut *tx)
        .await?;
    }
    audit(&mut tx, actor, "registry", "snapshot_loaded", json!({"guichets": guichets.len(), "demandes": demandes.len()})).await?;
    tx.commit().await?;
    Ok((guichets.len(), demandes.len()))
}

/// The registry as the pipeline reads it, built from the database.
pub async fn registry(pool: &PgPool, plan_version: &str) -> Result<Registry> {
    let demandes = sqlx::query_scalar!("SELECT record FROM registry_demandes").fetch_all(pool).await?;
    let guichets: Vec<Value> = sqlx::query!("SELECT numero, departement, email_referent FROM guichets")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| json!({"numero": r.numero, "departement": r.departement, "email_referent": r.email_referent}))
        .collect();
    let snapshot = json!({"plan_version": plan_version, "demandes": demandes, "guichets": guichets});
    Registry::from_json(&snapshot.to_string()).map_err(|e| StoreError::Registry(e.to_string()))
}

/// Changes whenever the registry's requests or counters change (for caches).
pub async fn registry_version(pool: &PgPool) -> Result<String> {
    let r = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM registry_demandes) AS "demandes!", (SELECT max(updated_at) FROM registry_demandes) AS demandes_at,
                (SELECT count(*) FROM guichets) AS "guichets!", (SELECT md5(string_agg(numero || departement || email_referent, ',' ORDER BY numero)) FROM guichets) AS guichets_md5"#
    )
    .fetch_one(pool)
    .await?;
    Ok(format!("{}|{:?}|{}|{:?}", r.demandes, r.demandes_at, r.guichets, r.guichets_md5))
}

/// Records a plan version and makes it the current one.
pub async fn load_plan(pool: &PgPool, body: &str, actor: &str) -> Result<String, StoreError> {
    let plan = FilingPlan::from_toml(body).map_err(|e| StoreError::Registry(format!("filing plan: {e}")))?;
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE plan_versions SET current = false WHERE current AND version <> $1", plan.version).execute(&mut *tx).await?;
    sqlx::query!(
        "INSERT INTO plan_versions (version, body, current) VALUES ($1, $2, true) ON CONFLICT (version) DO UPDATE SET current = true",
        plan.version,
        body
    )
    .execute(&mut *tx)
    .await?;
    audit(&mut tx, actor, &format!("plan:{}", plan.version), "plan_current", json!({})).await?;
    tx.commit().await?;
    Ok(plan.version)
}

pub async fn current_plan(pool: &PgPool) -> Result<FilingPlan> {
    let body = sqlx::query_scalar!("SELECT body FROM plan_versions WHERE current").fetch_optional(pool).await?;
    let body = body.ok_or(StoreError::NoPlan)?;
    FilingPlan::from_toml(&body).map_err(|e| StoreError::Registry(format!("filing plan: {e}")))
}

// ---------------------------------------------------------------- portal users

pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A portal user authenticated by API token.
#[derive(Debug, Clone)]
pub struct PortalUser {
    pub id: i64,
    pub guichet: String,
    pub email: String,
}

/// Creates a portal user for a known counter; returns the user's id.
pub async fn create_portal_user(pool: &PgPool, guichet: &str, email: &str, token: &str, actor: &str) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO portal_users (guichet, email, token_sha256) VALUES ($1, $2, $3) RETURNING id",
        guichet.to_ascii_uppercase(),
        email,
        token_digest(token)
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(&mut tx, actor, &format!("portal_user:{id}"), "created", json!({"guichet": guichet, "email": email})).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn portal_user_by_token(pool: &PgPool, token: &str) -> Result<Option<PortalUser>> {
    Ok(sqlx::query_as!(
        PortalUser,
        r#"SELECT id, guichet AS "guichet!", email FROM portal_users WHERE token_sha256 = $1 AND NOT disabled AND guichet IS NOT NULL"#,
        token_digest(token)
    )
    .fetch_optional(pool)
    .await?)
}

/// Is this address a known sender of e-mail: a counter's referent, a portal user, or an
/// applicant of the registry?
pub async fn sender_known(pool: &PgPool, email: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM guichets WHERE lower(email_referent) = lower($1))
             OR EXISTS (SELECT 1 FROM portal_users WHERE lower(email) = lower($1) AND NOT disabled)
             OR EXISTS (SELECT 1 FROM registry_demandes WHERE lower(record->>'email') = lower($1)) AS "known!""#,
        email
    )
    .fetch_one(pool)
    .await?)
}

/// Is this address a counter's: its referent's, or one of its agents' accounts? Such mail must
/// prove where it comes from (DKIM or SPF aligned with its domain).
pub async fn counter_address(pool: &PgPool, email: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM guichets WHERE lower(email_referent) = lower($1))
             OR EXISTS (SELECT 1 FROM portal_users WHERE lower(email) = lower($1) AND role = 'counter' AND NOT disabled) AS "counter!""#,
        email
    )
    .fetch_one(pool)
    .await?)
}

/// Records how an e-mail's origin was checked (DKIM, SPF, DMARC) and what was concluded.
pub async fn record_mail_authentication(pool: &PgPool, mailing: &str, facts: Value, verdict: &str, actor: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    audit(&mut tx, actor, mailing, "mail_authentication", json!({"verdict": verdict, "checks": facts})).await?;
    tx.commit().await?;
    Ok(())
}

/// The numéros of the requests whose applicant registered this e-mail address.
pub async fn applicant_requests(pool: &PgPool, email: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!("SELECT numero_unique FROM registry_demandes WHERE lower(record->>'email') = lower($1) ORDER BY numero_unique", email)
        .fetch_all(pool)
        .await?)
}

// ---------------------------------------------------------------- mailings

/// One stored file of a mailing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StoredFile {
    pub name: String,
    pub key: String,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct NewMailing {
    pub id: String,
    pub channel: &'static str,
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub numero_unique: Option<String>,
    pub notify: Option<String>,
    pub portal_user: Option<i64>,
    /// The counter it belongs to, when known at reception (portal deposits).
    pub guichet: Option<String>,
    pub files: Vec<StoredFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The same content was already received; its current status.
    Duplicate {
        status: String,
    },
}

/// Records a received mailing (its files are already stored). A second delivery of the same
/// content records an audit event and nothing else.
pub async fn insert_mailing(pool: &PgPool, m: &NewMailing, actor: &str) -> Result<Inserted> {
    let mut tx = pool.begin().await?;
    let files = serde_json::to_value(&m.files).map_err(|e| StoreError::Corrupt { what: "file list", detail: format!("of mailing {}: {e}", m.id) })?;
    let inserted = sqlx::query!(
        "INSERT INTO mailings (id, channel, source, received_at, due_at, numero_unique, notify, portal_user, files, guichet)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        m.id,
        m.channel,
        m.source,
        m.received_at,
        m.due_at,
        m.numero_unique,
        m.notify,
        m.portal_user,
        files,
        m.guichet
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let outcome = if inserted == 1 {
        audit(&mut tx, actor, &m.id, "received", json!({"channel": m.channel, "source": m.source, "files": m.files.len()})).await?;
        Inserted::New
    } else {
        let status = sqlx::query_scalar!("SELECT status FROM mailings WHERE id = $1", m.id).fetch_one(&mut *tx).await?;
        audit(&mut tx, actor, &m.id, "duplicate_received", json!({"channel": m.channel, "source": m.source})).await?;
        Inserted::Duplicate { status }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// A mailing as the processing stage needs it.
#[derive(Debug, Clone)]
pub struct MailingRow {
    pub id: String,
    pub channel: String,
    pub status: String,
    pub received_at: DateTime<Utc>,
    pub numero_unique: Option<String>,
    pub notify: Option<String>,
    pub files: Vec<StoredFile>,
    pub attempts: i32,
}

/// Marks a mailing as being processed and returns it; `None` if it is unknown, `Some` with
/// status `done` if it was already finished (a redelivery).
pub async fn claim_mailing(pool: &PgPool, id: &str, actor: &str) -> Result<Option<MailingRow>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        "UPDATE mailings SET status = CASE WHEN status = 'done' THEN status ELSE 'processing' END,
                attempts = attempts + CASE WHEN status = 'done' THEN 0 ELSE 1 END, updated_at = now(),
                started_at = CASE WHEN status = 'done' THEN started_at ELSE now() END
         WHERE id = $1
         RETURNING id, channel, status, received_at, numero_unique, notify, files, attempts",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    // A finished mailing's files are not read again (a redelivery only requeues notices).
    let files = if r.status == "done" {
        Vec::new()
    } else {
        serde_json::from_value(r.files).map_err(|e| StoreError::CorruptFileList { mailing: id.to_string(), detail: e.to_string() })?
    };
    let m = MailingRow {
        id: r.id,
        channel: r.channel,
        status: r.status,
        received_at: r.received_at,
        numero_unique: r.numero_unique,
        notify: r.notify,
        files,
        attempts: r.attempts,
    };
    if m.status != "done" {
        audit(&mut tx, actor, id, "processing", json!({"attempt": m.attempts})).await?;
    }
    tx.commit().await?;
    Ok(Some(m))
}

/// What the processing stage stored for one piece.
#[derive(Debug, Clone)]
pub struct FiledPiece {
    pub id: String,
    pub key: Option<String>,
}

/// A notice written by the job, to be sent by the notifier.
#[derive(Debug, Clone)]
pub struct OutgoingNotice {
    pub name: String,
    pub recipients: Vec<String>,
    pub sender: String,
    pub message: Vec<u8>,
}

/// Where the register says an original marked by a separator sheet is: in its scanned batch.
pub const ORIGINAL_IN_BATCH: &str = "dans le lot scanné";

/// Records a finished mailing in one transaction: its pages, requests, pieces and notices,
/// and its status. Returns the ids of the notices now pending (new or left from an earlier try).
/// Originals marked by an operator's separator sheet enter the register (see `store::originals`).
pub async fn record_done(
    pool: &PgPool,
    mailing_id: &str,
    report: &Report,
    filed: &[FiledPiece],
    notices: &[OutgoingNotice],
    retention_days: u32,
    actor: &str,
) -> Result<Vec<i64>> {
    let mut tx = pool.begin().await?;
    for p in &report.pages {
        sqlx::query!(
            "INSERT INTO pages (mailing_id, index, source, role, piece_id, reason, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (mailing_id, index) DO NOTHING",
            mailing_id,
            p.index as i32,
            p.source,
            serde_plain(&p.role),
            p.piece,
            p.reason.map(|r| r.code()),
            p.detail
        )
        .execute(&mut *tx)
        .await?;
    }
    for (ordinal, r) in report.requests.iter().enumerate() {
        sqlx::query!(
            "INSERT INTO requests (mailing_id, ordinal, numero_unique, status, reason, notice) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (mailing_id, ordinal) DO NOTHING",
            mailing_id,
            ordinal as i32,
            r.numero_unique,
            serde_plain(&r.status),
            r.reason.map(|x| x.code()),
            r.notice
        )
        .execute(&mut *tx)
        .await?;
        for p in &r.pieces {
            let key = filed.iter().find(|f| f.id == p.id).and_then(|f| f.key.clone());
            sqlx::query!(
                "INSERT INTO pieces (id, mailing_id, numero_unique, categorie, type_code, confidence, sensible, status, reason, key, bytes, plan_version, evidence, pages,
                                     original)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING",
                p.id,
                mailing_id,
                r.numero_unique,
                p.categorie,
                p.type_code,
                p.confidence,
                p.sensible,
                serde_plain(&p.status),
                p.reason.map(|x| x.code()),
                key,
                p.bytes.map(|b| b as i64),
                p.plan_version,
                json!(p.evidence),
                p.pages.len() as i32,
                p.original
            )
            .execute(&mut *tx)
            .await?;
            // An original an operator marked with the separator sheet enters the register; its
            // paper is in the batch until someone puts it away.
            if p.original {
                let entered =
                    originals::enter(&mut tx, &p.id, mailing_id, (r.numero_unique.as_deref(), p.type_code.as_deref()), ORIGINAL_IN_BATCH, actor).await?;
                if entered {
                    audit(&mut tx, actor, mailing_id, "original_registered", json!({"piece": p.id, "marked_by": "separator sheet"})).await?;
                }
            }
        }
    }
    for n in notices {
        sqlx::query!(
            "INSERT INTO notices (mailing_id, name, recipients, sender, message) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (mailing_id, name) DO NOTHING",
            mailing_id,
            n.name,
            &n.recipients,
            n.sender,
            n.message
        )
        .execute(&mut *tx)
        .await?;
    }
    let b = &report.batch;
    // The job writes this date; one it cannot have written keeps the due date set at reception.
    let due_at = match DateTime::parse_from_rfc3339(&b.due_at) {
        Ok(d) => Some(d.with_timezone(&Utc)),
        Err(e) => {
            tracing::warn!(mailing = %b.id, due_at = %b.due_at, error = %e, "report's due date unreadable; the reception's is kept");
            None
        }
    };
    // A counter's paper mailing is the counter's once its bordereau is read.
    let guichet = match b.sender.kind {
        scanbureau_pipeline::report::SenderKind::Guichet => b.sender.id.clone(),
        _ => None,
    };
    let stored_report = serde_json::to_value(report).map_err(|e| StoreError::Corrupt { what: "report", detail: format!("of mailing {mailing_id}: {e}") })?;
    sqlx::query!(
        "UPDATE mailings SET status = 'done', outcome = $2, pages = $3, report = $4, due_at = COALESCE($5, due_at),
                last_error = NULL, done_at = now(), updated_at = now(),
                raw_expires_at = now() + make_interval(days => $6),
                guichet = COALESCE(guichet, (SELECT g.numero FROM guichets g WHERE g.numero = $7))
         WHERE id = $1",
        mailing_id,
        serde_plain(&b.status),
        b.pages as i32,
        stored_report,
        due_at,
        retention_days as i32,
        guichet
    )
    .execute(&mut *tx)
    .await?;
    audit(&mut tx, actor, mailing_id, "done", json!({"outcome": serde_plain(&b.status), "pages": b.pages, "pieces": filed.len(), "notices": notices.len()}))
        .await?;
    let pending =
        sqlx::query_scalar!("SELECT id FROM notices WHERE mailing_id = $1 AND status = 'pending' ORDER BY id", mailing_id).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(pending)
}

/// Records a failed attempt. The mailing is given up (marked failed) when `exhausted` (its
/// retry window is over). Returns whether it was given up.
pub async fn record_mailing_error(pool: &PgPool, id: &str, error: &str, exhausted: bool, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let gave_up = sqlx::query_scalar!(
        r#"UPDATE mailings SET last_error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END, updated_at = now()
         WHERE id = $1 AND status <> 'done' RETURNING status = 'failed' AS "failed!""#,
        id,
        error,
        exhausted
    )
    .fetch_optional(&mut *tx)
    .await?;
    let gave_up = gave_up.unwrap_or(exhausted);
    audit(&mut tx, actor, id, if gave_up { "failed" } else { "attempt_failed" }, json!({"error": error})).await?;
    tx.commit().await?;
    Ok(gave_up)
}

/// Mailings received but not picked up for a while (their message may have been lost between
/// the database commit and the publish): the sweeper queues them again.
/// They are stamped as they are returned, so the next sweep waits as long again.
pub async fn stale_received(pool: &PgPool, older_than: Duration) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "UPDATE mailings SET updated_at = now() WHERE id IN (
             SELECT id FROM mailings WHERE status = 'received' AND updated_at < now() - make_interval(secs => $1) ORDER BY received_at LIMIT 100)
         RETURNING id",
        older_than.as_secs_f64()
    )
    .fetch_all(pool)
    .await?)
}

/// The notices of a mailing still waiting to be sent.
pub async fn pending_notices_of(pool: &PgPool, mailing: &str) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!("SELECT id FROM notices WHERE mailing_id = $1 AND status = 'pending' ORDER BY id", mailing).fetch_all(pool).await?)
}

/// An e-mail refused at intake, kept as a rejected mailing with its reply in the outbox.
#[derive(Debug, Clone)]
pub struct RefusedMail {
    pub id: String,
    pub message_id: String,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub file: StoredFile,
    pub why: String,
    pub to: String,
    pub sender: String,
    /// None for a forged message: its sender address is someone else's, never answered.
    pub reply: Option<Vec<u8>>,
}

/// Records a refused e-mail; returns the reply's notice id, or `None` if this same message was
/// already recorded.
pub async fn record_refused_mail(pool: &PgPool, m: &RefusedMail, actor: &str) -> Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO mailings (id, channel, source, received_at, due_at, status, outcome, pages, files, done_at, last_error)
         VALUES ($1, 'mail', $2, $3, $4, 'done', 'rejected', 0, $5, now(), $6) ON CONFLICT (id) DO NOTHING",
        m.id,
        m.message_id,
        m.received_at,
        m.due_at,
        json!([m.file]),
        m.why
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let mut notice = None;
    if inserted == 1 {
        if let Some(reply) = &m.reply {
            notice = Some(
                sqlx::query_scalar!(
                    "INSERT INTO notices (mailing_id, name, recipients, sender, message) VALUES ($1, 'refus-courriel.eml', $2, $3, $4) RETURNING id",
                    m.id,
                    &[m.to.clone()],
                    m.sender,
                    reply
                )
                .fetch_one(&mut *tx)
                .await?,
            );
        }
        let action = if m.reply.is_some() { "mail_refused" } else { "mail_forged" };
        audit(&mut tx, actor, &m.id, action, json!({"from": m.to, "why": m.why})).await?;
    }
    tx.commit().await?;
    Ok(notice)
}

/// Notices never tried after a while (same reason). One that was tried has its retry in a
/// delay queue, or was given up.
pub async fn stale_pending_notices(pool: &PgPool, older_than: Duration) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM notices WHERE status = 'pending' AND attempts = 0 AND created_at < now() - make_interval(secs => $1) ORDER BY id LIMIT 100",
        older_than.as_secs_f64()
    )
    .fetch_all(pool)
    .await?)
}

/// Raw mailings whose retention is over: their objects can be deleted.
pub async fn expired_raw(pool: &PgPool) -> Result<Vec<(String, Vec<StoredFile>)>> {
    let rows = sqlx::query!(
        "SELECT id, files FROM mailings WHERE status = 'done' AND raw_deleted_at IS NULL AND raw_expires_at < now() AND jsonb_typeof(files) = 'array'
         ORDER BY raw_expires_at LIMIT 100"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let id = r.id;
            match serde_json::from_value(r.files) {
                Ok(files) => Some((id, files)),
                // Its objects cannot be named: left in storage, and said.
                Err(e) => {
                    tracing::error!(mailing = %id, error = %e, "stored file list unreadable: raw files kept past their retention");
                    None
                }
            }
        })
        .collect())
}

pub async fn mark_raw_deleted(pool: &PgPool, id: &str, actor: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE mailings SET raw_deleted_at = now() WHERE id = $1", id).execute(&mut *tx).await?;
    audit(&mut tx, actor, id, "raw_deleted", json!({})).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- notices

#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub id: i64,
    pub mailing_id: String,
    pub name: String,
    pub recipients: Vec<String>,
    pub sender: String,
    pub message: Vec<u8>,
    pub status: String,
    pub attempts: i32,
}

/// Locks a notice for sending: the row stays locked until the transaction ends, so two
/// notifiers never send the same notice at once.
pub async fn lock_notice(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<Option<NoticeRow>> {
    Ok(sqlx::query_as!(NoticeRow, "SELECT id, mailing_id, name, recipients, sender, message, status, attempts FROM notices WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut **tx)
        .await?)
}

pub async fn notice_sent(tx: &mut Transaction<'_, Postgres>, n: &NoticeRow, actor: &str) -> Result<()> {
    sqlx::query!("UPDATE notices SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1", n.id)
        .execute(&mut **tx)
        .await?;
    audit(tx, actor, &n.mailing_id, "notice_sent", json!({"notice": n.name, "to": n.recipients})).await
}

pub async fn notice_failed(tx: &mut Transaction<'_, Postgres>, n: &NoticeRow, error: &str, give_up: bool, actor: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE notices SET attempts = attempts + 1, last_error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END WHERE id = $1",
        n.id,
        error,
        give_up
    )
    .execute(&mut **tx)
    .await?;
    audit(tx, actor, &n.mailing_id, if give_up { "notice_failed" } else { "notice_attempt_failed" }, json!({"notice": n.name, "error": error})).await
}

// ---------------------------------------------------------------- dead letters

pub async fn record_dead_letter(pool: &PgPool, stage: &str, subject: Option<&str>, attempts: u32, reason: &str, payload: &[u8]) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO dead_letters (stage, subject, attempts, reason, payload) VALUES ($1, $2, $3, $4, $5)",
        stage,
        subject,
        attempts as i32,
        reason,
        payload
    )
    .execute(&mut *tx)
    .await?;
    // Its subject leaves the states that wait for work: a mailing the broker gave up on (the
    // worker died on every delivery) would otherwise stay `processing`, out of every list.
    match subject.map(|s| s.strip_prefix("notice:").map(str::parse::<i64>)) {
        Some(Some(Ok(notice))) => {
            sqlx::query!("UPDATE notices SET status = 'failed', last_error = $2 WHERE id = $1 AND status = 'pending'", notice, reason)
                .execute(&mut *tx)
                .await?;
        }
        Some(None) => {
            sqlx::query!(
                "UPDATE mailings SET status = 'failed', last_error = $2, updated_at = now() WHERE id = $1 AND status IN ('received', 'processing')",
                subject,
                reason
            )
            .execute(&mut *tx)
            .await?;
        }
        _ => {}
    }
    audit(&mut tx, "broker", subject.unwrap_or("(unreadable message)"), "dead_lettered", json!({"stage": stage, "reason": reason, "attempts": attempts}))
        .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- deposits and figures

/// A deposit's status as the portal API shows it, or `None` if it is not this user's.
pub async fn deposit_status(pool: &PgPool, mailing_id: &str, user: &PortalUser) -> Result<Option<DepositStatus>> {
    let row = sqlx::query!(
        "SELECT m.id, m.status, m.received_at, m.due_at, m.outcome, m.pages, m.last_error, m.numero_unique
         FROM mailings m WHERE m.id = $1 AND m.guichet = $2",
        mailing_id,
        user.guichet
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let requests =
        sqlx::query_as!(DepositRequest, "SELECT numero_unique, status, reason, notice FROM requests WHERE mailing_id = $1 ORDER BY ordinal", mailing_id)
            .fetch_all(pool)
            .await?;
    let pieces = sqlx::query_as!(
        DepositPiece,
        r#"SELECT id, numero_unique, categorie, type_code AS "type_code?", status, reason, confidence FROM pieces WHERE mailing_id = $1 ORDER BY id"#,
        mailing_id
    )
    .fetch_all(pool)
    .await?;
    let notices =
        sqlx::query_as!(DepositNotice, r#"SELECT name, recipients AS "to", status, sent_at FROM notices WHERE mailing_id = $1 ORDER BY id"#, mailing_id)
            .fetch_all(pool)
            .await?;
    Ok(Some(DepositStatus {
        deposit: r.id,
        status: r.status,
        received_at: r.received_at,
        due_at: r.due_at,
        outcome: r.outcome,
        pages: r.pages,
        error: r.last_error,
        numero_unique: r.numero_unique,
        requests,
        pieces,
        notices,
    }))
}

/// A deposit as the portal API shows it to the counter that made it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DepositStatus {
    /// The deposit's (mailing's) id.
    pub deposit: String,
    /// `received`, `processing`, `done` or `failed`.
    pub status: String,
    pub received_at: DateTime<Utc>,
    /// When it must be done: the end of the second working day after reception.
    pub due_at: DateTime<Utc>,
    /// Once done: `accepted`, `partial` or `rejected`.
    pub outcome: Option<String>,
    pub pages: Option<i32>,
    /// Why the last try failed, while it waits for the next one.
    pub error: Option<String>,
    /// The numéro unique the deposit was made for, if it named one.
    pub numero_unique: Option<String>,
    pub requests: Vec<DepositRequest>,
    pub pieces: Vec<DepositPiece>,
    pub notices: Vec<DepositNotice>,
}

/// A request of a deposit and what became of it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DepositRequest {
    pub numero_unique: Option<String>,
    /// `accepted`, `partial` or `rejected`.
    pub status: String,
    /// The reason code of a refusal.
    pub reason: Option<String>,
    /// The notice written for it.
    pub notice: Option<String>,
}

/// A piece cut from a deposit.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DepositPiece {
    pub id: String,
    pub numero_unique: Option<String>,
    pub categorie: Option<String>,
    /// The type code of the filing plan.
    #[serde(rename = "type")]
    pub type_code: Option<String>,
    /// `uploaded`, `review` or `rejected`.
    pub status: String,
    pub reason: Option<String>,
    pub confidence: f32,
}

/// A notice about a deposit.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DepositNotice {
    pub name: String,
    pub to: Vec<String>,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The figures the metrics endpoint shows, read from the database.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub mailings_by_status: Vec<(String, i64)>,
    pub notices_by_status: Vec<(String, i64)>,
    pub open_late: i64,
    /// Seconds left before the earliest due date of an open mailing (negative when late).
    pub min_remaining_s: Option<f64>,
    pub rejected_pages_by_reason: Vec<(String, i64)>,
    pub dead_letters: i64,
    pub pages_done: i64,
    /// Mailings and notices whose last try failed and that wait for the next, by what they
    /// wait for.
    pub waiting: Vec<Waiting>,
}

/// Mailings, notices or alerts whose last try failed on the same server, waiting for the next try.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// `"mailing"`, `"notice"` or `"alert"`.
    pub kind: &'static str,
    /// The server the failure names (`server_of`).
    pub server: &'static str,
    pub count: i64,
    /// The first failure of the one that has waited longest.
    pub since: Option<DateTime<Utc>>,
    /// The most recent failure's message, for the operator.
    pub last_error: String,
}

/// What waits on which server, the longest-waiting first.
pub async fn waiting(pool: &PgPool) -> Result<Vec<Waiting>> {
    let rows = sqlx::query!(
        r#"SELECT 'mailing' AS "kind!", m.last_error AS "error!",
                (SELECT min(a.at) FROM audit_events a WHERE a.subject = m.id AND a.action = 'attempt_failed') AS since,
                m.updated_at AS "at!"
           FROM mailings m WHERE m.status IN ('received', 'processing') AND m.last_error IS NOT NULL
         UNION ALL
         SELECT 'notice', n.last_error,
                (SELECT min(a.at) FROM audit_events a WHERE a.subject = n.mailing_id AND a.action = 'notice_attempt_failed' AND a.detail->>'notice' = n.name),
                COALESCE((SELECT max(a.at) FROM audit_events a WHERE a.subject = n.mailing_id AND a.action = 'notice_attempt_failed' AND a.detail->>'notice' = n.name), n.created_at)
           FROM notices n WHERE n.status = 'pending' AND n.last_error IS NOT NULL
         UNION ALL
         SELECT 'alert', a.last_error,
                (SELECT min(e.at) FROM audit_events e WHERE e.subject = 'alert:' || a.id AND e.action = 'alert_attempt_failed'),
                COALESCE((SELECT max(e.at) FROM audit_events e WHERE e.subject = 'alert:' || a.id AND e.action = 'alert_attempt_failed'), a.created_at)
           FROM alerts a WHERE a.status = 'pending' AND a.last_error IS NOT NULL"#
    )
    .fetch_all(pool)
    .await?;
    Ok(group_waiting(rows.iter().map(|r| (r.kind.as_str(), r.error.as_str(), r.since, r.at))))
}

/// Groups (kind, error, first failure, last failure) by kind and server.
fn group_waiting<'a>(rows: impl Iterator<Item = (&'a str, &'a str, Option<DateTime<Utc>>, DateTime<Utc>)>) -> Vec<Waiting> {
    let mut groups: std::collections::BTreeMap<(&'static str, &'static str), (Waiting, DateTime<Utc>)> = Default::default();
    for (kind, error, since, at) in rows {
        let kind = match kind {
            "notice" => "notice",
            "alert" => "alert",
            _ => "mailing",
        };
        let server = server_of(error);
        let (w, latest) = groups.entry((kind, server)).or_insert_with(|| (Waiting { kind, server, count: 0, since, last_error: error.to_string() }, at));
        w.count += 1;
        w.since = match (w.since, since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at > *latest {
            *latest = at;
            w.last_error = error.to_string();
        }
    }
    let mut out: Vec<Waiting> = groups.into_values().map(|(w, _)| w).collect();
    out.sort_by_key(|w| (w.since.is_none(), w.since));
    out
}

/// Which server a recorded failure names.
pub fn server_of(error: &str) -> &'static str {
    let e = error.to_lowercase();
    if e.contains("object storage") {
        "s3"
    } else if e.contains("smtp") || e.contains("mail server") {
        "smtp"
    } else if e.contains("database") || e.contains("postgres") || e.contains("pool timed out") {
        "database"
    } else if e.contains("message broker") {
        "broker"
    } else {
        "other"
    }
}

pub async fn figures(pool: &PgPool) -> Result<Figures> {
    let by_status = sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM mailings GROUP BY status ORDER BY status"#).fetch_all(pool).await?;
    let notices = sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM notices GROUP BY status ORDER BY status"#).fetch_all(pool).await?;
    let rejected = sqlx::query!(r#"SELECT reason AS "reason!", count(*) AS "count!" FROM pages WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason"#)
        .fetch_all(pool)
        .await?;
    Ok(Figures {
        mailings_by_status: by_status.into_iter().map(|r| (r.status, r.count)).collect(),
        notices_by_status: notices.into_iter().map(|r| (r.status, r.count)).collect(),
        open_late: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM sla WHERE late"#).fetch_one(pool).await?,
        min_remaining_s: sqlx::query_scalar!("SELECT EXTRACT(EPOCH FROM min(remaining))::float8 FROM sla").fetch_one(pool).await?,
        rejected_pages_by_reason: rejected.into_iter().map(|r| (r.reason, r.count)).collect(),
        dead_letters: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM dead_letters"#).fetch_one(pool).await?,
        pages_done: sqlx::query_scalar!(r#"SELECT COALESCE(sum(pages), 0)::int8 AS "n!" FROM mailings WHERE status = 'done'"#).fetch_one(pool).await?,
        waiting: waiting(pool).await?,
    })
}

/// The plain string a serde enum serialises to (`"accepted"`, `"piece"`...).
fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod waiting_tests {
    use super::*;

    #[test]
    fn failures_are_grouped_by_kind_and_server_with_the_oldest_and_latest() {
        let t = |m: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + m * 60, 0).expect("time");
        let rows = [
            ("notice", "mail server unavailable: connection refused", Some(t(10)), t(30)),
            ("notice", "mail server unavailable: timed out", Some(t(5)), t(40)),
            ("mailing", "object storage: dispatch failure", Some(t(20)), t(21)),
            ("mailing", "a page panicked", None, t(22)),
        ];
        let w = group_waiting(rows.into_iter());
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].kind, w[0].server, w[0].count, w[0].since), ("notice", "smtp", 2, Some(t(5))));
        assert_eq!(w[0].last_error, "mail server unavailable: timed out");
        assert_eq!((w[1].kind, w[1].server), ("mailing", "s3"));
        assert_eq!((w[2].server, w[2].since), ("other", None));
    }
}
