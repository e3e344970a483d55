//! The test account on the IMAP server `scripts/stack.sh` starts (Dovecot, IMAPS on
//! 127.0.0.1:9993, its certificate from a test authority): each test reads and files mail in
//! folders of its own, deleted when the test ends, passed or failed.

use anyhow::{Context, Result};
use scanbureau::imap_intake::{Session, connect, tls_connector};
use scanbureau::settings::ImapSection;

use crate::stack::TestStack;

/// A test's folders on the stack's IMAP account: the mailbox the intake reads, and the folders
/// it files messages in.
pub struct TestMailbox {
    pub imap: ImapSection,
}

fn stack_var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: run scripts/stack.sh and source .stack/env (scripts/test.sh does)"))
}

impl TestMailbox {
    /// Points `stack`'s intake at folders named after its test on the stack's IMAP account, and
    /// creates the mailbox.
    pub async fn new(stack: &mut TestStack) -> Result<Self> {
        let port = stack_var("SCANBUREAU_IMAP_PORT")?.parse().context("SCANBUREAU_IMAP_PORT")?;
        Self::at(stack, port).await
    }

    /// The same through the stack's IMAP listener that must be secured with STARTTLS.
    pub async fn with_starttls(stack: &mut TestStack) -> Result<Self> {
        let port = stack_var("SCANBUREAU_IMAP_STARTTLS_PORT")?.parse().context("SCANBUREAU_IMAP_STARTTLS_PORT")?;
        stack.set("SCANBUREAU__INTAKE__IMAP__SECURITY", "starttls");
        Self::at(stack, port).await
    }

    /// The same on the server listening on `port` (a test's own Dovecot, with the stack's
    /// account and certificate).
    pub async fn at(stack: &mut TestStack, port: u16) -> Result<Self> {
        let mailbox = stack.name.clone();
        let vars = [
            ("HOST", "127.0.0.1".to_string()),
            ("PORT", port.to_string()),
            ("USERNAME", stack_var("SCANBUREAU_IMAP_USER")?),
            ("PASSWORD", stack_var("SCANBUREAU_IMAP_PASSWORD")?),
            ("CA_FILE", stack_var("SCANBUREAU_IMAP_CA")?),
            ("MAILBOX", mailbox.clone()),
            ("PROCESSED", format!("{mailbox}-traites")),
            ("FAILED", format!("{mailbox}-refuses")),
            // Failures in tests are retried within seconds.
            ("RETRY_MAX_S", "2".to_string()),
        ];
        for (k, v) in vars {
            stack.set(&format!("SCANBUREAU__INTAKE__IMAP__{k}"), &v);
        }
        let me = Self { imap: stack.config()?.intake.imap };
        let mut s = me.session().await?;
        s.create(&me.imap.mailbox).await.context("creating the test's mailbox")?;
        let _ = s.logout().await;
        Ok(me)
    }

    async fn session(&self) -> Result<Session> {
        connect(&self.imap, &tls_connector(&self.imap)?).await
    }

    /// Delivers a message to the mailbox, as the mail server would.
    pub async fn deliver(&self, message: &[u8]) -> Result<()> {
        let mut s = self.session().await?;
        s.append(&self.imap.mailbox, None, None, message).await.context("delivering a message")?;
        let _ = s.logout().await;
        Ok(())
    }

    /// How many messages each of the mailbox, the processed and the failed folder holds (the
    /// intake makes the two folders when it starts).
    pub async fn counts(&self) -> Result<[u32; 3]> {
        let mut s = self.session().await?;
        let mut counts = [0; 3];
        for (n, folder) in counts.iter_mut().zip([&self.imap.mailbox, &self.imap.processed, &self.imap.failed]) {
            *n = s.status(folder, "(MESSAGES)").await.with_context(|| format!("counting the messages of {folder}"))?.exists;
        }
        let _ = s.logout().await;
        Ok(counts)
    }
}

/// The test's folders go with it.
impl Drop for TestMailbox {
    fn drop(&mut self) {
        let imap = self.imap.clone();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let Ok(tls) = tls_connector(&imap) else { return };
                match connect(&imap, &tls).await {
                    Ok(mut s) => {
                        for folder in [&imap.processed, &imap.failed, &imap.mailbox] {
                            let _ = s.delete(folder).await;
                        }
                        let _ = s.logout().await;
                    }
                    Err(e) => eprintln!("test IMAP folders {} not removed: {e:#}", imap.mailbox),
                }
            });
        });
        let _ = done.join();
    }
}
