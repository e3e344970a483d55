//! Accounts, browser sessions and lock-out; incident reports.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use super::{Result, StoreError, audit, token_digest};
use crate::accounts::{Account, Role};

/// Failed logins in a row before an account is locked, and for how long.
pub const LOCKOUT_AFTER: i32 = 5;
pub const LOCKOUT_MINUTES: i32 = 15;

pub struct NewAccount<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub guichet: Option<&'a str>,
    pub sensitive: bool,
    /// None for an account an administrator creates: its person chooses it through a link.
    pub password_hash: Option<&'a str>,
}

/// Creates a browser account (or gives an existing API user of the same e-mail a password
/// and role). Returns its id.
pub async fn create_account(pool: &PgPool, a: &NewAccount<'_>, actor: &str) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO portal_users (guichet, email, role, display_name, sensitive, password_hash) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (email) DO UPDATE SET guichet = EXCLUDED.guichet, role = EXCLUDED.role, display_name = EXCLUDED.display_name,
             sensitive = EXCLUDED.sensitive, password_hash = EXCLUDED.password_hash, failed_logins = 0, locked_until = NULL
         RETURNING id",
        a.guichet.map(str::to_ascii_uppercase),
        a.email,
        a.role.as_str(),
        a.display_name,
        a.sensitive,
        a.password_hash
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        actor,
        &format!("account:{id}"),
        "account_saved",
        json!({"email": a.email, "role": a.role.as_str(), "guichet": a.guichet, "sensitive": a.sensitive}),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// An account as the database holds it.
struct AccountRow {
    id: i64,
    email: String,
    display_name: String,
    role: String,
    guichet: Option<String>,
    sensitive: bool,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    /// A role no code writes (the column's CHECK forbids it) is an error, never a counter.
    fn try_from(r: AccountRow) -> Result<Account> {
        let role = Role::parse(&r.role).ok_or_else(|| StoreError::Corrupt { what: "account role", detail: format!("{:?} of account {}", r.role, r.id) })?;
        Ok(Account { id: r.id, email: r.email, display_name: r.display_name, role, guichet: r.guichet, sensitive: r.sensitive })
    }
}

/// What a login attempt finds.
pub enum LoginRecord {
    Unknown,
    Found { account: Account, password_hash: String },
}

pub async fn login_record(pool: &PgPool, email: &str) -> Result<LoginRecord> {
    let row = sqlx::query!(
        r#"SELECT id, email, display_name, role, guichet, sensitive, password_hash AS "password_hash!"
         FROM portal_users WHERE lower(email) = lower($1) AND NOT disabled AND password_hash IS NOT NULL"#,
        email
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(LoginRecord::Unknown) };
    let account = AccountRow { id: r.id, email: r.email, display_name: r.display_name, role: r.role, guichet: r.guichet, sensitive: r.sensitive };
    Ok(LoginRecord::Found { account: account.try_into()?, password_hash: r.password_hash })
}

/// Failed sign-ins from one client address, whatever the e-mail address: past this many in
/// [`LOCKOUT_MINUTES`], that client is made to wait.
pub const SOURCE_LIMIT: i64 = 30;
/// Failed sign-ins for one e-mail address from every client together: a ceiling on guessing
/// spread over many machines.
pub const ADDRESS_LIMIT: i64 = 50;

/// Recent failed sign-ins, as the throttle counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPressure {
    /// For this e-mail address from this client.
    pub pair: i64,
    /// For this e-mail address from every client.
    pub address: i64,
    /// From this client, for every address.
    pub source: i64,
}

impl LoginPressure {
    /// This address may not be tried from this client now. The same answer whether an account
    /// has that address or not, so the lock tells nobody who has one; counted per client, so
    /// someone else's failures do not lock an agent out at their own desk.
    pub fn address_locked(&self) -> bool {
        self.pair >= LOCKOUT_AFTER as i64 || self.address >= ADDRESS_LIMIT
    }
    pub fn source_locked(&self) -> bool {
        self.source >= SOURCE_LIMIT
    }
}

fn login_subject(email: &str) -> String {
    format!("login:{}", email.trim().to_lowercase())
}

pub async fn login_pressure(pool: &PgPool, email: &str, from: &str) -> Result<LoginPressure> {
    let r = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE subject = $1 AND detail->>'from' = $2) AS "pair!",
                count(*) FILTER (WHERE subject = $1) AS "address!",
                count(*) FILTER (WHERE detail->>'from' = $2) AS "source!"
         FROM audit_events WHERE action = 'login_failed' AND at > now() - make_interval(mins => $3)"#,
        login_subject(email),
        from,
        LOCKOUT_MINUTES
    )
    .fetch_one(pool)
    .await?;
    Ok(LoginPressure { pair: r.pair, address: r.address, source: r.source })
}

/// Records a failed sign-in for an address, whether an account has it or not.
pub async fn record_login_failure(pool: &PgPool, email: &str, account: Option<i64>, from: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    audit(&mut tx, "web", &login_subject(email), "login_failed", json!({"from": from, "account": account})).await?;
    tx.commit().await?;
    Ok(())
}

/// Opens a session for an account whose password was just verified.
pub async fn open_session(pool: &PgPool, account: &Account, token: &str, csrf: &str, hours: i32, from: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE portal_users SET failed_logins = 0, locked_until = NULL WHERE id = $1", account.id).execute(&mut *tx).await?;
    sqlx::query!(
        "INSERT INTO web_sessions (token_sha256, account, csrf, expires_at) VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
        token_digest(token),
        account.id,
        csrf,
        hours
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM web_sessions WHERE expires_at < now()").execute(&mut *tx).await?;
    audit(&mut tx, &account.actor(), &format!("account:{}", account.id), "login", json!({"from": from})).await?;
    tx.commit().await?;
    Ok(())
}

/// The account and CSRF token of a live session.
pub async fn session(pool: &PgPool, token: &str) -> Result<Option<(Account, String)>> {
    let row = sqlx::query!(
        "SELECT u.id, u.email, u.display_name, u.role, u.guichet, u.sensitive, s.csrf
         FROM web_sessions s JOIN portal_users u ON u.id = s.account
         WHERE s.token_sha256 = $1 AND s.expires_at > now() AND NOT u.disabled
           AND (u.locked_until IS NULL OR u.locked_until < now())",
        token_digest(token)
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let account = AccountRow { id: r.id, email: r.email, display_name: r.display_name, role: r.role, guichet: r.guichet, sensitive: r.sensitive };
    Ok(Some((account.try_into()?, r.csrf)))
}

pub async fn close_session(pool: &PgPool, token: &str, account: &Account) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM web_sessions WHERE token_sha256 = $1", token_digest(token)).execute(&mut *tx).await?;
    audit(&mut tx, &account.actor(), &format!("account:{}", account.id), "logout", json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The stored hash of an account's password.
pub async fn password_hash(pool: &PgPool, account: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar!("SELECT password_hash FROM portal_users WHERE id = $1", account).fetch_optional(pool).await?.flatten())
}

/// Sets a new password and ends the account's other sessions (this one, `keep`, stays open).
pub async fn change_password(pool: &PgPool, account: &Account, new_hash: &str, keep: &str) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE portal_users SET password_hash = $2, failed_logins = 0 WHERE id = $1", account.id, new_hash).execute(&mut *tx).await?;
    let ended = sqlx::query!("DELETE FROM web_sessions WHERE account = $1 AND token_sha256 <> $2", account.id, token_digest(keep))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    audit(&mut tx, &account.actor(), &format!("account:{}", account.id), "password_changed", json!({"sessions_ended": ended})).await?;
    tx.commit().await?;
    Ok(ended)
}

// ---------------------------------------------------------------- accounts, as administrators manage them

/// How long a one-time link lets its person choose a password.
pub const LINK_HOURS: i32 = 72;

/// Why a one-time link was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// A new account: its person chooses a first password.
    Invitation,
    /// An administrator reset the password: the old one no longer opens the account.
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::Reset => "reset",
        }
    }
}

/// An account as the administrators' list shows it.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub account: Account,
    pub disabled: bool,
    /// A password was chosen (else the person has not yet used their link).
    pub has_password: bool,
    /// A counter's software calls the portal API with this account's token.
    pub api_token: bool,
    pub last_login: Option<DateTime<Utc>>,
    /// When an unused link sent to this account stops working.
    pub link_expires: Option<DateTime<Utc>>,
}

/// Every account, the API users of counters' software too (disabling one stops its token), by
/// role then counter and address.
pub async fn account_list(pool: &PgPool) -> Result<Vec<AccountSummary>> {
    let rows = sqlx::query!(
        r#"SELECT u.id, u.email, u.display_name, u.role, u.guichet, u.sensitive, u.disabled, u.password_hash IS NOT NULL AS "has_password!",
                u.token_sha256 IS NOT NULL AS "api_token!",
                (SELECT max(at) FROM audit_events e WHERE e.subject = 'account:' || u.id AND e.action = 'login') AS last_login,
                (SELECT max(expires_at) FROM account_links l WHERE l.account = u.id AND l.used_at IS NULL AND l.expires_at > now()) AS link_expires
         FROM portal_users u
         ORDER BY array_position(ARRAY['admin', 'supervisor', 'operator', 'counter'], u.role), u.guichet NULLS FIRST, lower(u.email)"#
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let account = AccountRow { id: r.id, email: r.email, display_name: r.display_name, role: r.role, guichet: r.guichet, sensitive: r.sensitive };
            Ok(AccountSummary {
                account: account.try_into()?,
                disabled: r.disabled,
                has_password: r.has_password,
                api_token: r.api_token,
                last_login: r.last_login,
                link_expires: r.link_expires,
            })
        })
        .collect()
}

/// One account, whatever its state, and whether a password was ever chosen for it.
pub async fn account_by_id(pool: &PgPool, id: i64) -> Result<Option<(Account, bool)>> {
    let row = sqlx::query!(
        r#"SELECT id, email, display_name, role, guichet, sensitive, password_hash IS NOT NULL AS "has_password!" FROM portal_users WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let account = AccountRow { id: r.id, email: r.email, display_name: r.display_name, role: r.role, guichet: r.guichet, sensitive: r.sensitive };
    Ok(Some((account.try_into()?, r.has_password)))
}

/// What stops an administrator's new account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCreated {
    /// An account (or an API user) already has this address.
    AddressTaken,
    /// The counter is not in the registry.
    UnknownCounter(String),
}

/// Creates an account with no password; its person chooses one through the link sent by
/// [`send_link`]. Never changes an existing account (the command line's `add-account` does).
pub async fn invite_account(pool: &PgPool, a: &NewAccount<'_>, actor: &str) -> Result<std::result::Result<i64, NotCreated>> {
    let guichet = a.guichet.map(str::to_ascii_uppercase);
    if let Some(g) = &guichet {
        let known = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM guichets WHERE numero = $1) AS "known!""#, g).fetch_one(pool).await?;
        if !known {
            return Ok(Err(NotCreated::UnknownCounter(g.clone())));
        }
    }
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO portal_users (guichet, email, role, display_name, sensitive)
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM portal_users WHERE lower(email) = lower($2))
         ON CONFLICT (email) DO NOTHING RETURNING id",
        guichet,
        a.email,
        a.role.as_str(),
        a.display_name,
        a.sensitive
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else { return Ok(Err(NotCreated::AddressTaken)) };
    audit(
        &mut tx,
        actor,
        &format!("account:{id}"),
        "account_created",
        json!({"email": a.email, "role": a.role.as_str(), "guichet": guichet, "sensitive": a.sensitive}),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// Records a new one-time link for an open account (the older unused ones stop working) and
/// returns the account, or `None` when it is unknown or disabled. A reset also forgets the
/// password and ends the account's sessions at once: whoever knew it is out before the mail
/// arrives.
pub async fn send_link(pool: &PgPool, account: i64, token: &str, purpose: LinkPurpose, actor: &str) -> Result<Option<Account>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query_as!(
        AccountRow,
        "SELECT id, email, display_name, role, guichet, sensitive FROM portal_users WHERE id = $1 AND NOT disabled FOR UPDATE",
        account
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let found = Account::try_from(row)?;
    let mut ended = 0;
    if purpose == LinkPurpose::Reset {
        sqlx::query!("UPDATE portal_users SET password_hash = NULL, failed_logins = 0, locked_until = NULL WHERE id = $1", account).execute(&mut *tx).await?;
        ended = sqlx::query!("DELETE FROM web_sessions WHERE account = $1", account).execute(&mut *tx).await?.rows_affected();
    }
    let replaced = sqlx::query!("DELETE FROM account_links WHERE account = $1 AND used_at IS NULL", account).execute(&mut *tx).await?.rows_affected();
    sqlx::query!(
        "INSERT INTO account_links (token_sha256, account, purpose, created_by, expires_at) VALUES ($1, $2, $3, $4, now() + make_interval(hours => $5))",
        token_digest(token),
        account,
        purpose.as_str(),
        actor,
        LINK_HOURS
    )
    .execute(&mut *tx)
    .await?;
    let action = if purpose == LinkPurpose::Reset { "password_reset" } else { "account_link_sent" };
    audit(&mut tx, actor, &format!("account:{account}"), action, json!({"email": found.email, "links_replaced": replaced, "sessions_ended": ended})).await?;
    tx.commit().await?;
    Ok(Some(found))
}

/// The open account a live, unused link was sent to.
pub async fn link_account(pool: &PgPool, token: &str) -> Result<Option<Account>> {
    let row = sqlx::query_as!(
        AccountRow,
        "SELECT u.id, u.email, u.display_name, u.role, u.guichet, u.sensitive
         FROM account_links l JOIN portal_users u ON u.id = l.account
         WHERE l.token_sha256 = $1 AND l.used_at IS NULL AND l.expires_at > now() AND NOT u.disabled",
        token_digest(token)
    )
    .fetch_optional(pool)
    .await?;
    row.map(Account::try_from).transpose()
}

/// Sets the password a person chose through their link, once: the link is spent in the same
/// transaction, so a second use (or a race of two) finds nothing. Returns the account's id.
pub async fn use_link(pool: &PgPool, token: &str, new_hash: &str) -> Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let spent = sqlx::query!(
        r#"UPDATE account_links l SET used_at = now() FROM portal_users u
         WHERE l.token_sha256 = $1 AND l.used_at IS NULL AND l.expires_at > now() AND u.id = l.account AND NOT u.disabled
         RETURNING l.account, l.purpose, u.email, u.role"#,
        token_digest(token)
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(l) = spent else { return Ok(None) };
    sqlx::query!("UPDATE portal_users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id = $1", l.account, new_hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM web_sessions WHERE account = $1", l.account).execute(&mut *tx).await?;
    audit(&mut tx, &format!("{}:{}", l.role, l.email), &format!("account:{}", l.account), "password_set", json!({"through": l.purpose})).await?;
    tx.commit().await?;
    Ok(Some(l.account))
}

/// Disables an account (its sessions end, its links stop working) or opens it again. Returns
/// false when nothing changed (unknown account, or already in that state).
pub async fn set_disabled(pool: &PgPool, account: i64, disabled: bool, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let changed =
        sqlx::query!("UPDATE portal_users SET disabled = $2 WHERE id = $1 AND disabled <> $2", account, disabled).execute(&mut *tx).await?.rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    let (mut ended, mut links) = (0, 0);
    if disabled {
        ended = sqlx::query!("DELETE FROM web_sessions WHERE account = $1", account).execute(&mut *tx).await?.rows_affected();
        links = sqlx::query!("DELETE FROM account_links WHERE account = $1 AND used_at IS NULL", account).execute(&mut *tx).await?.rows_affected();
    }
    let action = if disabled { "account_disabled" } else { "account_enabled" };
    audit(&mut tx, actor, &format!("account:{account}"), action, json!({"sessions_ended": ended, "links_revoked": links})).await?;
    tx.commit().await?;
    Ok(true)
}

/// Replaces the API token of a counter's software (an account that has one and is not
/// disabled): the old one stops at once. The database keeps the new one's SHA-256 only. False
/// when the account has no token or is disabled.
pub async fn renew_api_token(pool: &PgPool, account: i64, token: &str, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let changed =
        sqlx::query!("UPDATE portal_users SET token_sha256 = $2 WHERE id = $1 AND token_sha256 IS NOT NULL AND NOT disabled", account, token_digest(token))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    audit(&mut tx, actor, &format!("account:{account}"), "api_token_renewed", json!({})).await?;
    tx.commit().await?;
    Ok(true)
}

// ---------------------------------------------------------------- incidents

/// The kinds of a fiche incident.
pub const INCIDENT_KINDS: [(&str, &str); 4] = [
    ("piece_not_processed", "Pièce non traitée"),
    ("deadline_missed", "Délai de traitement dépassé"),
    ("misfiled_piece", "Pièce mal classée"),
    ("notice_not_received", "Avis non reçu"),
];
pub const INCIDENT_STATUSES: [(&str, &str); 3] = [("open", "ouvert"), ("in_progress", "en cours"), ("resolved", "résolu")];

pub fn incident_kind_label(kind: &str) -> &str {
    INCIDENT_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, l)| *l).unwrap_or(kind)
}
pub fn incident_status_label(status: &str) -> &str {
    INCIDENT_STATUSES.iter().find(|(k, _)| *k == status).map(|(_, l)| *l).unwrap_or(status)
}

#[derive(Debug, Clone)]
pub struct Incident {
    pub id: i64,
    pub guichet: String,
    pub opened_by: String,
    pub kind: String,
    pub mailing_id: Option<String>,
    pub numero_unique: Option<String>,
    pub description: String,
    pub status: String,
    pub answer: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub struct NewIncident<'a> {
    pub kind: &'a str,
    pub mailing_id: Option<&'a str>,
    pub numero_unique: Option<&'a str>,
    pub description: &'a str,
}

/// Files an incident for the account's counter. A mailing given must be the counter's own.
pub async fn open_incident(pool: &PgPool, account: &Account, i: &NewIncident<'_>) -> Result<Option<i64>> {
    let Some(guichet) = account.guichet.as_deref() else { return Ok(None) };
    if let Some(m) = i.mailing_id {
        let own = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM mailings WHERE id = $1 AND guichet = $2) AS "own!""#, m, guichet).fetch_one(pool).await?;
        if !own {
            return Ok(None);
        }
    }
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO incidents (guichet, opened_by, kind, mailing_id, numero_unique, description) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        guichet,
        account.id,
        i.kind,
        i.mailing_id,
        i.numero_unique,
        i.description
    )
    .fetch_one(&mut *tx)
    .await?;
    audit(&mut tx, &account.actor(), &format!("incident:{id}"), "incident_opened", json!({"kind": i.kind, "mailing": i.mailing_id})).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Incidents a person may see: a counter's own, or all for the bureau's staff.
pub async fn incidents(pool: &PgPool, account: &Account, only_open: bool) -> Result<Vec<Incident>> {
    let visible = if account.role.is_staff() { None } else { account.guichet.as_deref().or(Some("")) };
    Ok(sqlx::query_as!(
        Incident,
        r#"SELECT i.id, i.guichet, u.email AS opened_by, i.kind, i.mailing_id, i.numero_unique, i.description, i.status, i.answer, i.created_at
         FROM incidents i JOIN portal_users u ON u.id = i.opened_by
         WHERE ($1::text IS NULL OR i.guichet = $1) AND (NOT $2 OR i.status <> 'resolved')
         ORDER BY i.created_at DESC LIMIT 200"#,
        visible,
        only_open
    )
    .fetch_all(pool)
    .await?)
}

/// The bureau answers an incident and moves it on.
pub async fn update_incident(pool: &PgPool, id: i64, status: &str, answer: &str, actor: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query!("UPDATE incidents SET status = $2, answer = NULLIF($3, ''), updated_at = now() WHERE id = $1", id, status, answer)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 1 {
        audit(&mut tx, actor, &format!("incident:{id}"), "incident_updated", json!({"status": status})).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_role_no_code_writes_is_an_error_not_a_counter() {
        let row =
            |role: &str| AccountRow { id: 7, email: "a@b.example".into(), display_name: String::new(), role: role.into(), guichet: None, sensitive: false };
        assert_eq!(Account::try_from(row("supervisor")).map(|a| a.role).ok(), Some(Role::Supervisor));
        let e = Account::try_from(row("root")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("account role") && e.contains("\"root\" of account 7"), "{e}");
    }
}
