//! The alerts' outbox (see `migrations/0006_alerts.sql`) and what the alerts are raised from.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use super::{Result, audit};

/// The active accounts of a role, by their e-mail address.
pub async fn staff_addresses(pool: &PgPool, role: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!("SELECT email FROM portal_users WHERE role = $1 AND NOT disabled ORDER BY email", role).fetch_all(pool).await?)
}

/// Those of `subjects` an alert already told of.
pub async fn alerted(pool: &PgPool, subjects: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!("SELECT subject FROM alert_subjects WHERE subject = ANY($1)", subjects).fetch_all(pool).await?)
}

/// Queues an alert telling of `subjects`. When another process told of one of them meanwhile,
/// nothing is queued (`false`): the next sweep raises what is still new.
pub async fn queue_alert(pool: &PgPool, kind: &str, subjects: &[String], recipients: &[String], sender: &str, message: &[u8], actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let id =
        sqlx::query_scalar!("INSERT INTO alerts (kind, recipients, sender, message) VALUES ($1, $2, $3, $4) RETURNING id", kind, recipients, sender, message)
            .fetch_one(&mut *tx)
            .await?;
    let taken = sqlx::query_scalar!(
        "INSERT INTO alert_subjects (subject, alert_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING subject",
        subjects,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    if taken.len() != subjects.len() {
        tx.rollback().await?;
        return Ok(false);
    }
    audit(&mut tx, actor, &format!("alert:{id}"), "alert_queued", json!({"kind": kind, "subjects": subjects, "to": recipients})).await?;
    tx.commit().await?;
    Ok(true)
}

/// An open incident no alert told of yet.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: i64,
    pub guichet: String,
    pub kind: String,
    pub mailing_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn incidents_not_alerted(pool: &PgPool) -> Result<Vec<NewIncident>> {
    Ok(sqlx::query_as!(
        NewIncident,
        "SELECT i.id, i.guichet, i.kind, i.mailing_id, i.created_at FROM incidents i
         WHERE i.status = 'open' AND NOT EXISTS (SELECT 1 FROM alert_subjects s WHERE s.subject = 'incident:' || i.id)
         ORDER BY i.id LIMIT 100"
    )
    .fetch_all(pool)
    .await?)
}

/// An alert waiting to be sent.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: i64,
    pub recipients: Vec<String>,
    pub sender: String,
    pub message: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub async fn pending_alerts(pool: &PgPool) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!("SELECT id FROM alerts WHERE status = 'pending' ORDER BY id LIMIT 50").fetch_all(pool).await?)
}

/// Locks a pending alert for sending; `None` when it was sent meanwhile or another process holds it.
pub async fn lock_pending_alert(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<Option<AlertRow>> {
    Ok(sqlx::query_as!(
        AlertRow,
        "SELECT id, recipients, sender, message, created_at FROM alerts WHERE id = $1 AND status = 'pending' FOR UPDATE SKIP LOCKED",
        id
    )
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn alert_sent(tx: &mut Transaction<'_, Postgres>, a: &AlertRow, actor: &str) -> Result<()> {
    sqlx::query!("UPDATE alerts SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1", a.id)
        .execute(&mut **tx)
        .await?;
    audit(tx, actor, &format!("alert:{}", a.id), "alert_sent", json!({"to": a.recipients})).await
}

pub async fn alert_failed(tx: &mut Transaction<'_, Postgres>, a: &AlertRow, error: &str, give_up: bool, actor: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE alerts SET attempts = attempts + 1, last_error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END WHERE id = $1",
        a.id,
        error,
        give_up
    )
    .execute(&mut **tx)
    .await?;
    audit(tx, actor, &format!("alert:{}", a.id), if give_up { "alert_failed" } else { "alert_attempt_failed" }, json!({"error": error})).await
}

/// Alerts given up on, for the dashboard.
pub async fn failed_alerts(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM alerts WHERE status = 'failed'"#).fetch_one(pool).await?)
}
