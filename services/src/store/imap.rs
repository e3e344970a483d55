//! Messages taken from an IMAP mailbox (see `migrations/0010_imap_messages.sql`): what makes a
//! message taken exactly once when its move out of the mailbox is lost.

use serde_json::json;
use sqlx::PgPool;

use super::{Result, audit};

/// A message of the mailbox, by the identity the server gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapUid {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// The folder a message already taken goes to, if it was taken.
pub async fn imap_taken(pool: &PgPool, mailbox: &str, id: ImapUid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT folder FROM imap_messages WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3",
        mailbox,
        i64::from(id.uidvalidity),
        i64::from(id.uid)
    )
    .fetch_optional(pool)
    .await?)
}

/// Records a message as taken: it became `mailing` (none for a message nobody can be answered)
/// and goes to `folder`. Recording it twice keeps the first record.
pub async fn record_imap_taken(pool: &PgPool, mailbox: &str, id: ImapUid, mailing: Option<&str>, message_id: &str, folder: &str, actor: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO imap_messages (mailbox, uidvalidity, uid, mailing_id, message_id, folder) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        mailbox,
        i64::from(id.uidvalidity),
        i64::from(id.uid),
        mailing,
        message_id,
        folder
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        let subject = mailing.unwrap_or(message_id);
        audit(&mut tx, actor, subject, "imap_message_taken", json!({"mailbox": mailbox, "uidvalidity": id.uidvalidity, "uid": id.uid, "folder": folder}))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The message left the mailbox for its folder.
pub async fn record_imap_moved(pool: &PgPool, mailbox: &str, id: ImapUid) -> Result<()> {
    sqlx::query!(
        "UPDATE imap_messages SET moved_at = now() WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3 AND moved_at IS NULL",
        mailbox,
        i64::from(id.uidvalidity),
        i64::from(id.uid)
    )
    .execute(pool)
    .await?;
    Ok(())
}
