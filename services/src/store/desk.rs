//! What the browser pages read and change: a counter's mailings, their requests, pieces and
//! notices; the operators' review queue and given-up jobs; the supervisors' figures.
//!
//! Who may see what is decided by the caller (`Account::sees_counter`); every query here
//! returns the owning counter with the row so that check cannot be forgotten.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use scanbureau_pipeline::NumeroUnique;

use super::{OutgoingNotice, Result, audit};

/// One mailing as the lists show it.
#[derive(Debug, Clone)]
pub struct MailingView {
    pub id: String,
    pub channel: String,
    pub source: String,
    pub status: String,
    pub outcome: Option<String>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub pages: Option<i32>,
    pub numero_unique: Option<String>,
    pub guichet: Option<String>,
    pub departement: Option<String>,
    pub priority: i32,
    pub last_error: Option<String>,
    /// Bytes of the received files (a forecast of the work before the pages are counted).
    pub bytes: i64,
    /// Who is told about it, when the channel said (portal depositor, e-mail sender).
    pub notify: Option<String>,
    /// The first file's name (a deposit's PDF, a scanner's batch), else where it came from.
    pub title: String,
}

// The mailing page and the dashboard's lists read the same columns; `bytes` sums the received
// files' sizes.

/// What a list of mailings is narrowed to: one counter's, a reception period, and a text that
/// may be a numéro (or its start), the applicant's name (or its start) or part of a file name.
#[derive(Debug, Clone, Default)]
pub struct MailingSearch {
    pub guichet: Option<String>,
    pub text: Option<String>,
    /// Received in `[from, to)`.
    pub received: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub offset: i64,
    pub limit: i64,
}

/// One mailing as the searchable lists show it: titled by what people know of it.
#[derive(Debug, Clone)]
pub struct MailingRow {
    pub id: String,
    pub channel: String,
    pub status: String,
    pub outcome: Option<String>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub pages: Option<i32>,
    pub guichet: Option<String>,
    /// The first file's name (a deposit's PDF, a scanner's batch), else where it came from.
    pub title: String,
    pub files: i32,
    /// The numéros of its requests, in the order of the mailing (or the one the deposit named,
    /// before it is processed).
    pub numeros: Vec<String>,
    pub pieces: i64,
}

/// `text` with LIKE's wildcards taken literally.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The mailings that match `search`, newest first, one page of them.
pub async fn mailing_list(pool: &PgPool, search: &MailingSearch) -> Result<Vec<MailingRow>> {
    let text = search.text.as_deref().map(like_literal);
    let (from, to) = search.received.unzip();
    let rows = sqlx::query!(
        r#"SELECT m.id, m.channel, m.status, m.outcome, m.received_at, m.due_at, m.pages, m.guichet, m.numero_unique,
                  COALESCE(m.files->0->>'name', m.source) AS "title!",
                  jsonb_array_length(m.files) AS "files!",
                  ARRAY(SELECT r.numero_unique FROM requests r WHERE r.mailing_id = m.id AND r.numero_unique IS NOT NULL ORDER BY r.ordinal) AS "numeros!",
                  (SELECT count(*) FROM pieces p WHERE p.mailing_id = m.id) AS "pieces!"
           FROM mailings m
           WHERE ($1::text IS NULL OR m.guichet = $1)
             AND ($2::timestamptz IS NULL OR m.received_at >= $2) AND ($3::timestamptz IS NULL OR m.received_at < $3)
             AND ($4::text IS NULL
                  OR m.id = $4
                  OR m.numero_unique LIKE upper($4) || '%'
                  OR m.id IN (SELECT r.mailing_id FROM requests r WHERE r.numero_unique LIKE upper($4) || '%')
                  OR m.id IN (SELECT r.mailing_id FROM requests r JOIN registry_demandes d ON d.numero_unique = r.numero_unique
                              WHERE upper(d.record->>'nom') LIKE upper($4) || '%')
                  OR EXISTS (SELECT 1 FROM jsonb_array_elements(m.files) f WHERE f->>'name' ILIKE '%' || $4 || '%'))
           ORDER BY m.received_at DESC, m.id
           LIMIT $5 OFFSET $6"#,
        search.guichet,
        from,
        to,
        text,
        search.limit,
        search.offset
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MailingRow {
            numeros: if r.numeros.is_empty() { r.numero_unique.into_iter().collect() } else { r.numeros },
            id: r.id,
            channel: r.channel,
            status: r.status,
            outcome: r.outcome,
            received_at: r.received_at,
            due_at: r.due_at,
            pages: r.pages,
            guichet: r.guichet,
            title: r.title,
            files: r.files,
            pieces: r.pieces,
        })
        .collect())
}

pub async fn mailing<'e>(db: impl sqlx::PgExecutor<'e>, id: &str) -> Result<Option<MailingView>> {
    Ok(sqlx::query_as!(
        MailingView,
        r#"SELECT m.id, m.channel, m.source, m.status, m.outcome, m.received_at, m.due_at, m.done_at, m.pages, m.numero_unique,
                  m.guichet, g.departement AS "departement?", m.priority, m.last_error,
                  (SELECT COALESCE(sum((f->>'bytes')::int8), 0)::int8 FROM jsonb_array_elements(m.files) f) AS "bytes!", m.notify,
                  COALESCE(m.files->0->>'name', m.source) AS "title!"
           FROM mailings m LEFT JOIN guichets g ON g.numero = m.guichet WHERE m.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?)
}

/// How many mailings are not done yet.
pub async fn open_count(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM mailings WHERE status <> 'done'"#).fetch_one(pool).await?)
}

/// Every mailing not done yet, in the order the processing queue takes them.
pub async fn open_mailings(pool: &PgPool) -> Result<Vec<MailingView>> {
    Ok(sqlx::query_as!(
        MailingView,
        r#"SELECT m.id, m.channel, m.source, m.status, m.outcome, m.received_at, m.due_at, m.done_at, m.pages, m.numero_unique,
                  m.guichet, g.departement AS "departement?", m.priority, m.last_error,
                  (SELECT COALESCE(sum((f->>'bytes')::int8), 0)::int8 FROM jsonb_array_elements(m.files) f) AS "bytes!", m.notify,
                  COALESCE(m.files->0->>'name', m.source) AS "title!"
           FROM mailings m LEFT JOIN guichets g ON g.numero = m.guichet
           WHERE m.status <> 'done' ORDER BY m.priority DESC, m.received_at"#
    )
    .fetch_all(pool)
    .await?)
}

/// A counter's département and referent address.
#[derive(Debug, Clone)]
pub struct CounterContact {
    pub departement: String,
    pub email_referent: String,
}

pub async fn counter_contact(pool: &PgPool, guichet: &str) -> Result<Option<CounterContact>> {
    Ok(sqlx::query_as!(CounterContact, "SELECT departement, email_referent FROM guichets WHERE numero = $1", guichet).fetch_optional(pool).await?)
}

/// A request's record in the registry snapshot (the applicant's names and birth date).
pub async fn registry_record(pool: &PgPool, numero: &str) -> Result<Option<Value>> {
    Ok(sqlx::query_scalar!("SELECT record FROM registry_demandes WHERE numero_unique = $1", numero).fetch_optional(pool).await?)
}

/// What a counter's look-up of a request in the registry gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Value),
    NotFound,
    /// The request is of another territory than the counter's.
    OutsideTerritory,
    /// The counter's account looked up too many requests within the hour.
    Throttled,
}

/// Île-de-France requests have one regional territory code.
const ILE_DE_FRANCE: [&str; 8] = ["075", "077", "078", "091", "092", "093", "094", "095"];

/// May a counter of `departement` see a request of territory `territoire` (a request number's
/// first three characters)?
pub fn territory_covers(departement: &str, territoire: &str) -> bool {
    departement == territoire || (territoire == "111" && ILE_DE_FRANCE.contains(&departement))
}

/// A counter looks up a request to fill a slip: only in its own territory, at most
/// `per_hour` look-ups an hour per account, each one audited (who, which number, what came of it).
pub async fn registry_lookup(pool: &PgPool, numero: &NumeroUnique, actor: &str, guichet: &str, per_hour: i64) -> Result<Lookup> {
    let mut tx = pool.begin().await?;
    let recent = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_events WHERE actor = $1 AND action = 'registry_lookup' AND at > now() - interval '1 hour'"#,
        actor
    )
    .fetch_one(&mut *tx)
    .await?;
    let departement = sqlx::query_scalar!("SELECT departement FROM guichets WHERE numero = $1", guichet).fetch_optional(&mut *tx).await?;
    let outcome = if recent >= per_hour {
        Lookup::Throttled
    } else if !departement.as_deref().is_some_and(|d| territory_covers(d, numero.territoire())) {
        Lookup::OutsideTerritory
    } else {
        match sqlx::query_scalar!("SELECT record FROM registry_demandes WHERE numero_unique = $1", numero.as_str()).fetch_optional(&mut *tx).await? {
            Some(r) => Lookup::Found(r),
            None => Lookup::NotFound,
        }
    };
    let said = match &outcome {
        Lookup::Found(_) => "found",
        Lookup::NotFound => "not found",
        Lookup::OutsideTerritory => "outside the counter's territory",
        Lookup::Throttled => "refused: too many look-ups",
    };
    audit(&mut tx, actor, numero.as_str(), "registry_lookup", json!({"guichet": guichet, "outcome": said})).await?;
    tx.commit().await?;
    Ok(outcome)
}

#[derive(Debug, Clone)]
pub struct RequestView {
    pub numero_unique: Option<String>,
    pub status: String,
    pub reason: Option<String>,
}

pub async fn requests(pool: &PgPool, mailing: &str) -> Result<Vec<RequestView>> {
    Ok(sqlx::query_as!(RequestView, "SELECT numero_unique, status, reason FROM requests WHERE mailing_id = $1 ORDER BY ordinal", mailing)
        .fetch_all(pool)
        .await?)
}

#[derive(Debug, Clone)]
pub struct PieceView {
    pub id: String,
    pub mailing_id: String,
    pub guichet: Option<String>,
    pub numero_unique: Option<String>,
    pub categorie: Option<String>,
    pub type_code: Option<String>,
    pub confidence: f32,
    pub sensible: bool,
    pub status: String,
    pub reason: Option<String>,
    pub key: Option<String>,
    pub pages: i32,
    pub evidence: Vec<String>,
    pub decided_by: Option<String>,
    /// An original sent by mistake: what is filed is the bureau's stamped copy of it.
    pub original: bool,
}

/// A piece as the database holds it; its evidence is read by [`stored_evidence`].
struct PieceRow {
    id: String,
    mailing_id: String,
    guichet: Option<String>,
    numero_unique: Option<String>,
    categorie: Option<String>,
    type_code: Option<String>,
    confidence: f32,
    sensible: bool,
    status: String,
    reason: Option<String>,
    key: Option<String>,
    pages: i32,
    evidence: Value,
    decided_by: Option<String>,
    original: bool,
}

/// A piece's stored evidence, one line a clue. Evidence no code writes (edited by hand, or by a
/// bug) is not read as "no clue": the operator is told it could not be read, and the log says why.
fn stored_evidence(piece: &str, value: Value) -> Vec<String> {
    match serde_json::from_value::<Vec<String>>(value) {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(piece, error = %e, "stored evidence unreadable");
            vec![format!("the stored evidence of this piece is unreadable ({e}); classify it from its pages")]
        }
    }
}

impl From<PieceRow> for PieceView {
    fn from(r: PieceRow) -> Self {
        let evidence = stored_evidence(&r.id, r.evidence);
        PieceView {
            id: r.id,
            mailing_id: r.mailing_id,
            guichet: r.guichet,
            numero_unique: r.numero_unique,
            categorie: r.categorie,
            type_code: r.type_code,
            confidence: r.confidence,
            sensible: r.sensible,
            status: r.status,
            reason: r.reason,
            key: r.key,
            pages: r.pages,
            evidence,
            decided_by: r.decided_by,
            original: r.original,
        }
    }
}

// The three reads of pieces take the same columns.

pub async fn pieces<'e>(db: impl sqlx::PgExecutor<'e>, mailing: &str) -> Result<Vec<PieceView>> {
    let rows = sqlx::query_as!(
        PieceRow,
        "SELECT p.id, p.mailing_id, m.guichet, p.numero_unique, p.categorie, p.type_code, p.confidence, p.sensible, p.status, p.reason,
                p.key, p.pages, p.evidence, p.decided_by, p.original
         FROM pieces p JOIN mailings m ON m.id = p.mailing_id WHERE p.mailing_id = $1 ORDER BY p.numero_unique, p.created_at, p.id",
        mailing
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(PieceView::from).collect())
}

pub async fn piece(pool: &PgPool, id: &str) -> Result<Option<PieceView>> {
    let row = sqlx::query_as!(
        PieceRow,
        "SELECT p.id, p.mailing_id, m.guichet, p.numero_unique, p.categorie, p.type_code, p.confidence, p.sensible, p.status, p.reason,
                p.key, p.pages, p.evidence, p.decided_by, p.original
         FROM pieces p JOIN mailings m ON m.id = p.mailing_id WHERE p.id = $1",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(PieceView::from))
}

/// Pieces waiting for an operator, the most urgent mailing first.
pub async fn review_queue(pool: &PgPool, limit: i64) -> Result<Vec<PieceView>> {
    let rows = sqlx::query_as!(
        PieceRow,
        "SELECT p.id, p.mailing_id, m.guichet, p.numero_unique, p.categorie, p.type_code, p.confidence, p.sensible, p.status, p.reason,
                p.key, p.pages, p.evidence, p.decided_by, p.original
         FROM pieces p JOIN mailings m ON m.id = p.mailing_id WHERE p.status = 'review'
         ORDER BY m.priority DESC, m.due_at, p.id LIMIT $1",
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(PieceView::from).collect())
}

#[derive(Debug, Clone)]
pub struct NoticeView {
    pub id: i64,
    pub name: String,
    pub recipients: Vec<String>,
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub message: Vec<u8>,
}

/// How an e-mail mailing's origin was checked, as recorded (`mail_authentication`): the last
/// verdict and its checks, None for other channels or mail read without the check.
pub async fn mail_origin(pool: &PgPool, mailing: &str) -> Result<Option<Value>> {
    Ok(sqlx::query_scalar!("SELECT detail FROM audit_events WHERE subject = $1 AND action = 'mail_authentication' ORDER BY at DESC, id DESC LIMIT 1", mailing)
        .fetch_optional(pool)
        .await?)
}

pub async fn notices(pool: &PgPool, mailing: &str) -> Result<Vec<NoticeView>> {
    Ok(sqlx::query_as!(NoticeView, "SELECT id, name, recipients, status, sent_at, last_error, message FROM notices WHERE mailing_id = $1 ORDER BY id", mailing)
        .fetch_all(pool)
        .await?)
}

/// The owner of a notice: its mailing's id and counter.
pub async fn notice_owner(pool: &PgPool, notice: i64) -> Result<Option<(String, Option<String>)>> {
    let row = sqlx::query!("SELECT m.id, m.guichet FROM notices n JOIN mailings m ON m.id = n.mailing_id WHERE n.id = $1", notice).fetch_optional(pool).await?;
    Ok(row.map(|r| (r.id, r.guichet)))
}

/// Puts a notice back in the outbox to be sent again.
/// What asking to send a notice again gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    Queued,
    /// It is still waiting to be sent: asking again would send it twice.
    AlreadyPending,
    /// Sent again `RESENDS_PER_DAY` times in the last day already.
    TooMany,
    Missing,
}

/// How many times a day one notice can be sent again (a mailbox that lost it, then a second
/// address); more is a button pressed in a loop.
pub const RESENDS_PER_DAY: i64 = 3;

pub async fn resend_notice(pool: &PgPool, notice: i64, actor: &str) -> Result<Resend> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!("SELECT mailing_id, status FROM notices WHERE id = $1 FOR UPDATE", notice).fetch_optional(&mut *tx).await?;
    let Some(row) = row else { return Ok(Resend::Missing) };
    let mailing = row.mailing_id;
    if row.status == "pending" {
        return Ok(Resend::AlreadyPending);
    }
    let asked = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_events
           WHERE subject = $1 AND action = 'notice_resend_asked' AND detail->>'notice' = $2 AND at > now() - interval '1 day'"#,
        mailing,
        notice.to_string()
    )
    .fetch_one(&mut *tx)
    .await?;
    if asked >= RESENDS_PER_DAY {
        return Ok(Resend::TooMany);
    }
    sqlx::query!("UPDATE notices SET status = 'pending', attempts = 0, last_error = NULL WHERE id = $1", notice).execute(&mut *tx).await?;
    audit(&mut tx, actor, &mailing, "notice_resend_asked", json!({"notice": notice})).await?;
    tx.commit().await?;
    Ok(Resend::Queued)
}

// ---------------------------------------------------------------- review decisions

/// An operator's decision on a piece in review.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The proposed category is right.
    Accept,
    /// Another category and type of the plan.
    Reclassify { categorie: String, type_code: String, sensible: bool },
    /// Nothing can be read: refused.
    Illegible,
    /// An original sent by mistake: the bureau's stamped copy of it, already stored under
    /// `copy_key`, is filed under this category and type, and the paper is entered in the
    /// register of originals at `location` (a tray or a box).
    Original { categorie: String, type_code: String, sensible: bool, location: String, copy_key: String },
}

impl Decision {
    fn action(&self) -> &'static str {
        match self {
            Decision::Accept => "review_accepted",
            Decision::Reclassify { .. } => "review_reclassified",
            Decision::Illegible => "review_illegible",
            Decision::Original { .. } => "review_original",
        }
    }
}

/// What a decision changed.
#[derive(Debug, Clone)]
pub struct Decided {
    pub mailing_id: String,
    pub numero_unique: Option<String>,
    /// The piece's object, when the decision refuses it or replaces it (to be deleted).
    pub dropped_key: Option<String>,
    /// The follow-up notice written with the decision (no piece of the request waits for an
    /// operator any more), to queue.
    pub follow_up: Option<i64>,
}

/// What a request looks like once its last piece is decided: what its follow-up is written from.
pub struct Settled<'a> {
    pub mailing: &'a MailingView,
    pub recipients: &'a [String],
    pub pieces: &'a [PieceView],
}

/// Records an operator's decision on a piece in review (`None` if it is not in review any
/// more). When it was the request's last piece in review, `follow_up` writes the notice saying
/// what became of every piece, stored in the same transaction: the decision and its notice are
/// kept together or not at all.
pub async fn decide(
    pool: &PgPool,
    piece: &str,
    decision: &Decision,
    actor: &str,
    follow_up: impl FnOnce(&Settled<'_>) -> Option<OutgoingNotice>,
) -> Result<Option<Decided>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!("SELECT mailing_id, numero_unique, key, categorie, type_code FROM pieces WHERE id = $1 AND status = 'review' FOR UPDATE", piece)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let (mailing_id, numero, key) = (r.mailing_id, r.numero_unique, r.key);
    let before = json!({"categorie": r.categorie, "type": r.type_code});
    let mut dropped_key = None;
    match decision {
        Decision::Accept => {
            sqlx::query!("UPDATE pieces SET status = 'uploaded', decided_by = $2, decided_at = now() WHERE id = $1", piece, actor).execute(&mut *tx).await?;
        }
        Decision::Reclassify { categorie, type_code, sensible } => {
            sqlx::query!(
                "UPDATE pieces SET status = 'uploaded', categorie = $2, type_code = $3, sensible = $4, decided_by = $5, decided_at = now() WHERE id = $1",
                piece,
                categorie,
                type_code,
                sensible,
                actor
            )
            .execute(&mut *tx)
            .await?;
        }
        Decision::Illegible => {
            sqlx::query!(
                "UPDATE pieces SET status = 'rejected', reason = 'PIECE_ILLISIBLE', key = NULL, decided_by = $2, decided_at = now() WHERE id = $1",
                piece,
                actor
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!("UPDATE pages SET role = 'rejected', reason = 'PIECE_ILLISIBLE' WHERE mailing_id = $1 AND piece_id = $2", mailing_id, piece)
                .execute(&mut *tx)
                .await?;
            dropped_key = key;
        }
        Decision::Original { categorie, type_code, sensible, location, copy_key } => {
            sqlx::query!(
                "UPDATE pieces SET status = 'uploaded', categorie = $2, type_code = $3, sensible = $4, original = true, key = $5, decided_by = $6,
                        decided_at = now()
                 WHERE id = $1",
                piece,
                categorie,
                type_code,
                sensible,
                copy_key,
                actor
            )
            .execute(&mut *tx)
            .await?;
            super::originals::enter(&mut tx, piece, &mailing_id, (numero.as_deref(), Some(type_code)), location, actor).await?;
            dropped_key = key;
        }
    }
    let detail = match decision {
        Decision::Reclassify { categorie, type_code, .. } => json!({"piece": piece, "before": before, "categorie": categorie, "type": type_code}),
        Decision::Original { categorie, type_code, location, .. } => {
            json!({"piece": piece, "before": before, "categorie": categorie, "type": type_code, "original": true, "location": location})
        }
        _ => json!({"piece": piece, "before": before}),
    };
    audit(&mut tx, actor, &mailing_id, decision.action(), detail).await?;
    let waiting = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pieces WHERE mailing_id = $1 AND numero_unique IS NOT DISTINCT FROM $2 AND status = 'review') AS "waiting!""#,
        mailing_id,
        numero
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut notice = None;
    if !waiting {
        let m = mailing(&mut *tx, &mailing_id).await?;
        let recipients = request_recipients(&mut tx, &mailing_id, numero.as_deref()).await?;
        let pieces: Vec<PieceView> = pieces(&mut *tx, &mailing_id).await?.into_iter().filter(|p| p.numero_unique == numero).collect();
        if let Some(m) = &m
            && let Some(f) = follow_up(&Settled { mailing: m, recipients: &recipients, pieces: &pieces })
        {
            notice = insert_notice(&mut tx, &mailing_id, &f, actor).await?;
        }
    }
    tx.commit().await?;
    Ok(Some(Decided { mailing_id, numero_unique: numero, dropped_key, follow_up: notice }))
}

/// A piece in review, locked for a change of its cut.
struct Locked {
    mailing_id: String,
    numero: Option<String>,
    type_code: Option<String>,
    sensible: bool,
    plan_version: String,
    evidence: Value,
    key: Option<String>,
}

async fn lock_review_piece(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, id: &str) -> Result<Option<Locked>> {
    Ok(sqlx::query_as!(
        Locked,
        "SELECT mailing_id, numero_unique AS numero, type_code, sensible, plan_version, evidence, key
         FROM pieces WHERE id = $1 AND status = 'review' FOR UPDATE",
        id
    )
    .fetch_optional(&mut **tx)
    .await?)
}

/// One piece a change of cut makes.
pub struct NewPart {
    pub id: String,
    pub key: String,
    pub bytes: i64,
    pub pages: i32,
}

/// A piece made by cutting or joining: its pages are not the ones that were classified, so it
/// carries no proposed type (a cut contract and attestation would otherwise both come back as
/// a contract) and waits for the operator to classify it; it stays sensitive if a source was.
async fn insert_part(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, from: &Locked, sensible: bool, part: &NewPart, note: &str) -> Result<()> {
    let mut evidence: Vec<Value> = stored_evidence(&part.id, from.evidence.clone()).into_iter().map(Value::String).collect();
    evidence.push(Value::String(format!("{note}: to classify (was proposed as {})", from.type_code.as_deref().unwrap_or("nothing"))));
    sqlx::query!(
        "INSERT INTO pieces (id, mailing_id, numero_unique, categorie, type_code, confidence, sensible, status, key, bytes, plan_version, evidence, pages)
         VALUES ($1, $2, $3, NULL, NULL, 0, $4, 'review', $5, $6, $7, $8, $9)",
        part.id,
        from.mailing_id,
        from.numero,
        sensible,
        part.key,
        part.bytes,
        from.plan_version,
        Value::Array(evidence),
        part.pages
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Splits a piece in review in two after its page `after`; the parts wait in review. Returns
/// the old piece's object key (to delete), or `None` if the piece is not in review any more.
pub async fn split_piece(pool: &PgPool, piece: &str, after: usize, parts: [&NewPart; 2], actor: &str) -> Result<Option<Option<String>>> {
    let mut tx = pool.begin().await?;
    let Some(old) = lock_review_piece(&mut tx, piece).await? else { return Ok(None) };
    let pages = sqlx::query_scalar!("SELECT index FROM pages WHERE mailing_id = $1 AND piece_id = $2 ORDER BY index", old.mailing_id, piece)
        .fetch_all(&mut *tx)
        .await?;
    for part in parts {
        insert_part(&mut tx, &old, old.sensible, part, &format!("cut from {piece} by an operator")).await?;
    }
    for (i, index) in pages.iter().enumerate() {
        let to = if i < after { &parts[0].id } else { &parts[1].id };
        sqlx::query!("UPDATE pages SET piece_id = $3 WHERE mailing_id = $1 AND index = $2", old.mailing_id, index, to).execute(&mut *tx).await?;
    }
    sqlx::query!("DELETE FROM pieces WHERE id = $1", piece).execute(&mut *tx).await?;
    audit(&mut tx, actor, &old.mailing_id, "review_split", json!({"piece": piece, "after": after, "into": [&parts[0].id, &parts[1].id]})).await?;
    tx.commit().await?;
    Ok(Some(old.key))
}

/// Joins two pieces in review of the same request into one, still in review. Returns the old
/// pieces' object keys (to delete), or `None` if either is not in review or they differ in
/// request.
pub async fn join_pieces(pool: &PgPool, first: &str, second: &str, joined: &NewPart, actor: &str) -> Result<Option<Vec<String>>> {
    let mut tx = pool.begin().await?;
    let (Some(a), Some(b)) = (lock_review_piece(&mut tx, first).await?, lock_review_piece(&mut tx, second).await?) else { return Ok(None) };
    if a.mailing_id != b.mailing_id || a.numero != b.numero || first == second {
        return Ok(None);
    }
    insert_part(&mut tx, &a, a.sensible || b.sensible, joined, &format!("{first} and {second} joined by an operator")).await?;
    sqlx::query!("UPDATE pages SET piece_id = $2 WHERE mailing_id = $1 AND piece_id IN ($3, $4)", a.mailing_id, joined.id, first, second)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM pieces WHERE id IN ($1, $2)", first, second).execute(&mut *tx).await?;
    audit(&mut tx, actor, &a.mailing_id, "review_joined", json!({"pieces": [first, second], "into": &joined.id})).await?;
    tx.commit().await?;
    Ok(Some(a.key.into_iter().chain(b.key).collect()))
}

/// Where a request's notice went, to send its follow-up to the same people.
pub async fn request_recipients(conn: &mut sqlx::PgConnection, mailing: &str, numero: Option<&str>) -> Result<Vec<String>> {
    let from_notice = sqlx::query_scalar!(
        "SELECT n.recipients FROM requests r JOIN notices n ON n.mailing_id = r.mailing_id AND n.name = regexp_replace(r.notice, '^.*/', '')
         WHERE r.mailing_id = $1 AND r.numero_unique IS NOT DISTINCT FROM $2 LIMIT 1",
        mailing,
        numero
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = from_notice.filter(|r| !r.is_empty()) {
        return Ok(r);
    }
    let notify = sqlx::query_scalar!("SELECT notify FROM mailings WHERE id = $1", mailing).fetch_optional(&mut *conn).await?.flatten();
    Ok(notify.into_iter().collect())
}

/// Puts a notice in the outbox (a notice of that name already there is left as it is).
async fn insert_notice(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, mailing: &str, n: &OutgoingNotice, actor: &str) -> Result<Option<i64>> {
    let id = sqlx::query_scalar!(
        "INSERT INTO notices (mailing_id, name, recipients, sender, message) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mailing_id, name) DO NOTHING RETURNING id",
        mailing,
        n.name,
        &n.recipients,
        n.sender,
        n.message
    )
    .fetch_optional(&mut **tx)
    .await?;
    if id.is_some() {
        audit(tx, actor, mailing, "notice_written", json!({"notice": n.name, "to": n.recipients})).await?;
    }
    Ok(id)
}

// ---------------------------------------------------------------- given-up work

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub stage: String,
    pub subject: Option<String>,
    pub attempts: i32,
    pub reason: String,
    pub payload: Vec<u8>,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
}

pub async fn dead_letters(pool: &PgPool, limit: i64) -> Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as!(
        DeadLetter,
        "SELECT id, at, stage, subject, attempts, reason, payload, resolution, resolved_by FROM dead_letters ORDER BY resolved_at NULLS FIRST, at DESC LIMIT $1",
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// Marks a dead letter handled; `None` if it was already (two operators, one click each).
pub async fn resolve_dead_letter(pool: &PgPool, id: i64, resolution: &str, actor: &str) -> Result<Option<DeadLetter>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query_as!(
        DeadLetter,
        "UPDATE dead_letters SET resolved_at = now(), resolved_by = $3, resolution = $2 WHERE id = $1 AND resolved_at IS NULL
         RETURNING id, at, stage, subject, attempts, reason, payload, resolution, resolved_by",
        id,
        resolution,
        actor
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(d) = row else { return Ok(None) };
    if resolution == "retried"
        && let Some(m) = &d.subject
    {
        match m.strip_prefix("notice:").map(str::parse::<i64>) {
            // A failed notice is to be sent again; its attempts count afresh.
            Some(Ok(notice)) => {
                sqlx::query!("UPDATE notices SET status = 'pending', attempts = 0 WHERE id = $1 AND status = 'failed'", notice).execute(&mut *tx).await?;
            }
            Some(Err(_)) => {}
            // A failed mailing goes back to the start; its attempts count afresh.
            None => {
                sqlx::query!("UPDATE mailings SET status = 'received', attempts = 0, updated_at = now() WHERE id = $1 AND status = 'failed'", m)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    audit(&mut tx, actor, d.subject.as_deref().unwrap_or("(dead letter)"), &format!("dead_letter_{resolution}"), json!({"dead_letter": id, "stage": d.stage}))
        .await?;
    tx.commit().await?;
    Ok(Some(d))
}

/// A failed mailing refused by an operator: done, rejected, its dead letters resolved and its
/// notice (if it has a sender) in the outbox, all in one transaction. `None`: it is not failed;
/// otherwise the notice's id (`None` when there was none, or one of that name was there).
pub async fn reject_failed_mailing(pool: &PgPool, mailing: &str, reason: &str, actor: &str, notice: Option<&OutgoingNotice>) -> Result<Option<Option<i64>>> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query!(
        "UPDATE mailings SET status = 'done', outcome = 'rejected', done_at = now(), updated_at = now(), last_error = $2 WHERE id = $1 AND status = 'failed'",
        mailing,
        format!("refused by an operator: {reason}")
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(None);
    }
    // Its dead letters are dealt with too.
    sqlx::query!(
        "UPDATE dead_letters SET resolved_at = now(), resolved_by = $2, resolution = 'rejected' WHERE subject = $1 AND resolved_at IS NULL",
        mailing,
        actor
    )
    .execute(&mut *tx)
    .await?;
    audit(&mut tx, actor, mailing, "rejected_by_operator", json!({"reason": reason})).await?;
    let id = match notice {
        Some(n) => insert_notice(&mut tx, mailing, n, actor).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(Some(id))
}

/// A supervisor moves a mailing to the front of the processing queue.
pub async fn prioritise(pool: &PgPool, mailing: &str, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query!("UPDATE mailings SET priority = priority + 1, updated_at = now() WHERE id = $1 AND status <> 'done'", mailing)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 1 {
        audit(&mut tx, actor, mailing, "prioritised", json!({})).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

// ---------------------------------------------------------------- supervisors' figures

/// How long before an original must leave the dashboard shows it, in days: a posting is made
/// up weekly.
pub const ORIGINALS_NOTICE_DAYS: i64 = 7;

/// The dashboard's figures, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// (status, channel, mailings)
    pub backlog: Vec<(String, String, i64)>,
    pub notices_pending: i64,
    pub pieces_in_review: i64,
    pub dead_letters_open: i64,
    pub incidents_open: i64,
    /// Alerts to the bureau's people given up on (see `crate::alerts`).
    pub alerts_failed: i64,
    /// Originals sent by mistake still kept that must leave within [`ORIGINALS_NOTICE_DAYS`]
    /// (or should have left).
    pub originals_due: i64,
    /// (hour, mailings done, pages done) over the last 24 hours.
    pub throughput: Vec<(DateTime<Utc>, i64, i64)>,
    /// (reason, pages) over the last 30 days.
    pub rejections: Vec<(String, i64)>,
    /// (hour, open mailings at that hour) over the last 48 hours.
    pub backlog_history: Vec<(DateTime<Utc>, i64)>,
    /// What the forecast takes from the past.
    pub recent: RecentThroughput,
}

pub async fn dashboard(pool: &PgPool) -> Result<Dashboard> {
    let backlog = sqlx::query!(r#"SELECT status, channel, count(*) AS "n!" FROM mailings WHERE status <> 'done' GROUP BY 1, 2 ORDER BY 1, 2"#)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.status, r.channel, r.n))
        .collect();
    let throughput = sqlx::query!(
        r#"SELECT date_trunc('hour', done_at) AS "hour!", count(*) AS "mailings!", COALESCE(sum(pages), 0)::int8 AS "pages!" FROM mailings
         WHERE done_at > now() - interval '24 hours' GROUP BY 1 ORDER BY 1"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.hour, r.mailings, r.pages))
    .collect();
    let rejections = sqlx::query!(
        r#"SELECT p.reason AS "reason!", count(*) AS "pages!" FROM pages p JOIN mailings m ON m.id = p.mailing_id
         WHERE p.reason IS NOT NULL AND m.received_at > now() - interval '30 days' GROUP BY 1 ORDER BY 2 DESC, 1"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.reason, r.pages))
    .collect();
    let backlog_history = sqlx::query!(
        r#"SELECT h AS "hour!", count(m.id) AS "open!"
         FROM generate_series(date_trunc('hour', now()) - interval '47 hours', date_trunc('hour', now()), interval '1 hour') AS h
         LEFT JOIN (SELECT id, received_at, done_at FROM mailings WHERE done_at IS NULL OR done_at > now() - interval '48 hours') m
                ON m.received_at <= h AND (m.done_at IS NULL OR m.done_at > h)
         GROUP BY h ORDER BY h"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.hour, r.open))
    .collect();
    let recent = recent_throughput(pool).await?;
    Ok(Dashboard {
        backlog,
        notices_pending: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM notices WHERE status = 'pending'"#).fetch_one(pool).await?,
        pieces_in_review: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM pieces WHERE status = 'review'"#).fetch_one(pool).await?,
        dead_letters_open: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM dead_letters WHERE resolved_at IS NULL"#).fetch_one(pool).await?,
        incidents_open: sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM incidents WHERE status <> 'resolved'"#).fetch_one(pool).await?,
        alerts_failed: super::alerts::failed_alerts(pool).await?,
        originals_due: super::originals::due_by(pool, Utc::now() + chrono::Duration::days(ORIGINALS_NOTICE_DAYS)).await?,
        throughput,
        rejections,
        backlog_history,
        recent,
    })
}

/// What the forecast of the open mailings takes from the past.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecentThroughput {
    /// Bytes received per page processed, over the last week's done mailings.
    pub bytes_per_page: Option<f64>,
    /// (pages, seconds of processing) of the last day's done mailings.
    pub processing: (i64, f64),
}

pub async fn recent_throughput(pool: &PgPool) -> Result<RecentThroughput> {
    let processing = sqlx::query!(
        r#"SELECT COALESCE(sum(pages), 0)::int8 AS "pages!", COALESCE(sum(EXTRACT(EPOCH FROM done_at - started_at)), 0)::float8 AS "seconds!"
         FROM mailings WHERE status = 'done' AND pages > 0 AND started_at IS NOT NULL AND done_at > now() - interval '24 hours'"#
    )
    .fetch_one(pool)
    .await?;
    let bytes_per_page = sqlx::query_scalar!(
        "SELECT (sum((SELECT COALESCE(sum((f->>'bytes')::int8), 0) FROM jsonb_array_elements(files) f)) / NULLIF(sum(pages), 0))::float8
         FROM mailings WHERE status = 'done' AND pages > 0 AND done_at > now() - interval '7 days'"
    )
    .fetch_one(pool)
    .await?;
    Ok(RecentThroughput { bytes_per_page, processing: (processing.pages, processing.seconds) })
}

/// One day of the period's figures (the CSV export).
#[derive(Debug, Clone)]
pub struct DayFigures {
    pub day: NaiveDate,
    pub received: i64,
    pub done: i64,
    pub done_late: i64,
    pub pages: i64,
    pub pieces_filed: i64,
    pub pieces_rejected: i64,
    pub pieces_review: i64,
    pub incidents_opened: i64,
}

/// Figures per day from `from` to `to` inclusive (days in UTC).
pub async fn figures_by_day(pool: &PgPool, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayFigures>> {
    // One pass per table over the period, grouped by day, rather than a query per day.
    Ok(sqlx::query_as!(
        DayFigures,
        r#"WITH days AS (SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') AS d),
              lo AS (SELECT $1::date::timestamptz AS t), hi AS (SELECT ($2::date + 1)::timestamptz AS t),
              received AS (SELECT received_at::date AS day, count(*) AS n FROM mailings
                           WHERE received_at >= (SELECT t FROM lo) AND received_at < (SELECT t FROM hi) GROUP BY 1),
              done AS (SELECT done_at::date AS day, count(*) AS n, count(*) FILTER (WHERE done_at > due_at) AS late,
                              COALESCE(sum(pages), 0)::int8 AS pages FROM mailings
                       WHERE done_at >= (SELECT t FROM lo) AND done_at < (SELECT t FROM hi) GROUP BY 1),
              filed AS (SELECT created_at::date AS day, count(*) FILTER (WHERE status = 'uploaded') AS up,
                               count(*) FILTER (WHERE status = 'rejected') AS rej, count(*) FILTER (WHERE status = 'review') AS rev
                        FROM pieces WHERE created_at >= (SELECT t FROM lo) AND created_at < (SELECT t FROM hi) GROUP BY 1),
              opened AS (SELECT created_at::date AS day, count(*) AS n FROM incidents
                         WHERE created_at >= (SELECT t FROM lo) AND created_at < (SELECT t FROM hi) GROUP BY 1)
         SELECT days.day AS "day!", COALESCE(received.n, 0) AS "received!", COALESCE(done.n, 0) AS "done!", COALESCE(done.late, 0) AS "done_late!",
                COALESCE(done.pages, 0) AS "pages!", COALESCE(filed.up, 0) AS "pieces_filed!", COALESCE(filed.rej, 0) AS "pieces_rejected!",
                COALESCE(filed.rev, 0) AS "pieces_review!", COALESCE(opened.n, 0) AS "incidents_opened!"
         FROM days LEFT JOIN received USING (day) LEFT JOIN done USING (day) LEFT JOIN filed USING (day) LEFT JOIN opened USING (day)
         ORDER BY days.day"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?)
}

/// One counter's activity over a period (a month, for the activity report).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterActivity {
    pub guichet: String,
    pub mailings: i64,
    pub pages: i64,
    pub pieces_filed: i64,
    pub pieces_refused: i64,
    pub pieces_review: i64,
    /// Median hours from reception to done, over its mailings done so far.
    pub median_hours: Option<f64>,
    /// Pages refused, by reason code, most frequent first.
    pub refused_pages: Vec<(String, i64)>,
}

/// Each counter's mailings received in `[from, to)`: how many, their pages and pieces, what was
/// refused and why, and how long they took; the busiest counter first.
pub async fn activity_by_counter(pool: &PgPool, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<CounterActivity>> {
    let rows = sqlx::query!(
        r#"WITH ms AS (SELECT id, guichet, pages, received_at, done_at FROM mailings
                       WHERE guichet IS NOT NULL AND received_at >= $1 AND received_at < $2),
                ps AS (SELECT ms.guichet, count(*) FILTER (WHERE p.status = 'uploaded') AS up,
                              count(*) FILTER (WHERE p.status = 'rejected') AS rej, count(*) FILTER (WHERE p.status = 'review') AS rev
                       FROM pieces p JOIN ms ON ms.id = p.mailing_id GROUP BY ms.guichet)
           SELECT ms.guichet AS "guichet!", count(*) AS "mailings!", COALESCE(sum(ms.pages), 0)::int8 AS "pages!",
                  COALESCE(max(ps.up), 0)::int8 AS "filed!", COALESCE(max(ps.rej), 0)::int8 AS "refused!", COALESCE(max(ps.rev), 0)::int8 AS "review!",
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY (extract(epoch FROM ms.done_at - ms.received_at) / 3600)::float8) AS median_hours
           FROM ms LEFT JOIN ps USING (guichet) GROUP BY ms.guichet ORDER BY 3 DESC, 1"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?;
    let reasons = sqlx::query!(
        r#"SELECT m.guichet AS "guichet!", pg.reason AS "reason!", count(*) AS "n!"
           FROM pages pg JOIN mailings m ON m.id = pg.mailing_id
           WHERE m.guichet IS NOT NULL AND m.received_at >= $1 AND m.received_at < $2 AND pg.role = 'rejected' AND pg.reason IS NOT NULL
           GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CounterActivity {
            refused_pages: reasons.iter().filter(|x| x.guichet == r.guichet).map(|x| (x.reason.clone(), x.n)).collect(),
            guichet: r.guichet,
            mailings: r.mailings,
            pages: r.pages,
            pieces_filed: r.filed,
            pieces_refused: r.refused,
            pieces_review: r.review,
            median_hours: r.median_hours,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_stored_evidence_says_so_instead_of_reading_as_none() {
        assert_eq!(stored_evidence("p-1", json!(["title read", "score 0.91"])), ["title read", "score 0.91"]);
        assert!(stored_evidence("p-1", json!([])).is_empty());
        for corrupt in [json!({"a": 1}), json!("text"), json!([1, 2]), Value::Null] {
            let e = stored_evidence("p-1", corrupt.clone());
            assert_eq!(e.len(), 1, "{corrupt}");
            assert!(e[0].contains("unreadable"), "{corrupt}: {e:?}");
        }
    }
}
