//! The register of originals sent by mistake (see `migrations/0007_originals.sql`): where each
//! one is kept, when it must leave, when it left and how.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use super::{Result, StoreError, audit};

/// Where an original is in its month at the bureau.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalState {
    /// In the bureau, at its location, until its due date.
    Kept,
    /// Posted to the GIP SNE on that day, under that tracking number.
    Returned { on: NaiveDate, tracking: String },
}

/// One original in the bureau's keeping, or sent back.
#[derive(Debug, Clone)]
pub struct KeptOriginal {
    pub piece_id: String,
    pub mailing_id: String,
    pub numero_unique: Option<String>,
    pub type_code: Option<String>,
    pub location: String,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub state: OriginalState,
    pub confirmed_by: String,
}

impl KeptOriginal {
    pub fn kept(&self) -> bool {
        self.state == OriginalState::Kept
    }
}

/// A register's line as the database holds it.
struct OriginalRow {
    piece_id: String,
    mailing_id: String,
    numero_unique: Option<String>,
    type_code: Option<String>,
    location: String,
    received_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    state: String,
    returned_on: Option<NaiveDate>,
    tracking: Option<String>,
    confirmed_by: String,
}

impl TryFrom<OriginalRow> for KeptOriginal {
    type Error = StoreError;
    /// A state no code writes, or a return without its date or tracking number, is an error:
    /// never shown as kept.
    fn try_from(r: OriginalRow) -> Result<Self> {
        let state = match (r.state.as_str(), r.returned_on, r.tracking) {
            ("kept", ..) => OriginalState::Kept,
            ("returned", Some(on), Some(tracking)) => OriginalState::Returned { on, tracking },
            (other, on, tracking) => {
                return Err(StoreError::Corrupt { what: "original's state", detail: format!("{other:?} ({on:?}, {tracking:?}) of piece {}", r.piece_id) });
            }
        };
        Ok(Self {
            piece_id: r.piece_id,
            mailing_id: r.mailing_id,
            numero_unique: r.numero_unique,
            type_code: r.type_code,
            location: r.location,
            received_at: r.received_at,
            due_at: r.due_at,
            state,
            confirmed_by: r.confirmed_by,
        })
    }
}

fn lines(rows: Vec<OriginalRow>) -> Result<Vec<KeptOriginal>> {
    rows.into_iter().map(KeptOriginal::try_from).collect()
}

/// Enters the original of `piece` (of `mailing`) in the register, kept at `location` until a
/// month after the mailing's reception; false when it is there already.
pub async fn enter(
    tx: &mut Transaction<'_, Postgres>,
    piece: &str,
    mailing: &str,
    (numero, type_code): (Option<&str>, Option<&str>),
    location: &str,
    actor: &str,
) -> Result<bool> {
    let n = sqlx::query!(
        "INSERT INTO originals (piece_id, mailing_id, numero_unique, type_code, location, received_at, due_at, confirmed_by)
         SELECT $1, id, $2, $3, $4, received_at, received_at + interval '1 month', $5 FROM mailings WHERE id = $6
         ON CONFLICT (piece_id) DO NOTHING",
        piece,
        numero,
        type_code,
        location,
        actor,
        mailing
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The register: originals still kept first, the one due soonest first; then those returned,
/// the latest first.
pub async fn register(pool: &PgPool, limit: i64) -> Result<Vec<KeptOriginal>> {
    lines(
        sqlx::query_as!(
            OriginalRow,
            "SELECT piece_id, mailing_id, numero_unique, type_code, location, received_at, due_at, state, returned_on, tracking, confirmed_by
         FROM originals ORDER BY state = 'returned', CASE WHEN state = 'kept' THEN due_at END, returned_on DESC, piece_id LIMIT $1",
            limit
        )
        .fetch_all(pool)
        .await?,
    )
}

/// The originals of one posting back, by its tracking number.
pub async fn posting(pool: &PgPool, tracking: &str) -> Result<Vec<KeptOriginal>> {
    lines(
        sqlx::query_as!(
            OriginalRow,
            "SELECT piece_id, mailing_id, numero_unique, type_code, location, received_at, due_at, state, returned_on, tracking, confirmed_by
         FROM originals WHERE tracking = $1 AND state = 'returned' ORDER BY numero_unique, piece_id",
            tracking
        )
        .fetch_all(pool)
        .await?,
    )
}

/// Originals still kept whose date to leave is before `by`.
pub async fn due_by(pool: &PgPool, by: DateTime<Utc>) -> Result<i64> {
    Ok(sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM originals WHERE state = 'kept' AND due_at < $1"#, by).fetch_one(pool).await?)
}

/// Records that the originals `pieces` were posted to the GIP SNE on `posted_on` (`tracking`:
/// the postal tracking number), audited each. Only those still kept change; the ones that
/// did are returned.
pub async fn record_return(pool: &PgPool, pieces: &[String], posted_on: NaiveDate, tracking: &str, actor: &str) -> Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let returned = sqlx::query!(
        "UPDATE originals SET state = 'returned', returned_on = $2, tracking = $3 WHERE piece_id = ANY($1) AND state = 'kept' RETURNING piece_id, mailing_id",
        pieces,
        posted_on,
        tracking
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &returned {
        audit(&mut tx, actor, &r.mailing_id, "original_returned", json!({"piece": r.piece_id, "posted_on": posted_on, "tracking": tracking})).await?;
    }
    tx.commit().await?;
    Ok(returned.into_iter().map(|r| r.piece_id).collect())
}

/// Records where an original still kept is now (a tray or box label), audited. False when it
/// is not kept any more (or was never registered).
pub async fn move_to(pool: &PgPool, piece: &str, location: &str, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query!(
        "UPDATE originals o SET location = $2 FROM originals before
         WHERE o.piece_id = $1 AND before.piece_id = o.piece_id AND o.state = 'kept'
         RETURNING o.mailing_id, before.location AS was",
        piece,
        location
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(m) = moved else { return Ok(false) };
    audit(&mut tx, actor, &m.mailing_id, "original_moved", json!({"piece": piece, "from": m.was, "to": location})).await?;
    tx.commit().await?;
    Ok(true)
}
