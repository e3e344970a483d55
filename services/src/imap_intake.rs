//! Secure e-mail read from an IMAP server (Dovecot, a counter's provider), always over TLS.
//!
//! Each message of the mailbox is fetched by its UID, judged and stored as the Maildir channel
//! does ([`intake::take_message`]), recorded by its UIDVALIDITY and UID, and only then moved to
//! the processed (or failed) folder. So a message is never lost (it leaves the mailbox only once
//! stored) and never taken twice:
//! - a crash or an outage between the record and the move: the next round finds the UID
//!   recorded and only moves the message;
//! - a crash between the store and the record: the message is taken again, and its content makes
//!   it the same mailing (a duplicate, no second notice);
//! - a new UIDVALIDITY (the server rebuilt the mailbox): the same, by content.
//!
//! New mail is waited for with IDLE where the server offers it, else by polling. A server that
//! fails is tried again, 2 s later, then 4, 8... up to `retry_max_s` between tries, for as long
//! as it stays down: the mail waits on the server meanwhile. Every failure is logged (with how
//! long the server has been failing) and counted in `scanbureau_failures_total{stage="intake"}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::bureau::Bureau;
use crate::intake::{self, MailFolder};
use crate::settings::{HoldPoint, ImapSection, ImapSecurity};
use crate::store::imap::{ImapUid, imap_taken, record_imap_moved, record_imap_taken};

/// A logged-in connection to the IMAP server.
pub type Session = async_imap::Session<TlsStream<TcpStream>>;

/// How long one exchange with the server may take before the connection counts as lost.
const EXCHANGE: Duration = Duration::from_secs(60);
const FIRST_RETRY: Duration = Duration::from_secs(2);

/// The mailbox as the database knows it: `account@host:port/mailbox`.
pub fn mailbox_key(cfg: &ImapSection) -> String {
    format!("{}@{}:{}/{}", cfg.username, cfg.host, cfg.port, cfg.mailbox)
}

/// Certificates trusted for the server: the public authorities, and the site's own (`ca_file`).
pub fn tls_connector(cfg: &ImapSection) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !cfg.ca_file.is_empty() {
        let certs = CertificateDer::pem_file_iter(&cfg.ca_file).with_context(|| format!("reading intake.imap.ca_file {}", cfg.ca_file))?;
        let mut added = 0;
        for cert in certs {
            roots.add(cert.with_context(|| format!("intake.imap.ca_file {}", cfg.ca_file))?).context("intake.imap.ca_file: a certificate is not usable")?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "intake.imap.ca_file {} holds no certificate", cfg.ca_file);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connects, secures the connection and logs in.
pub async fn connect(cfg: &ImapSection, tls: &TlsConnector) -> Result<Session> {
    let within = |what: &'static str| move |_| anyhow::anyhow!("the IMAP server did not answer within {} s ({what})", EXCHANGE.as_secs());
    let address = format!("{}:{}", cfg.host, cfg.port);
    let tcp = tokio::time::timeout(EXCHANGE, TcpStream::connect(&address))
        .await
        .map_err(within("connecting"))?
        .with_context(|| format!("connecting to {address}"))?;
    let name = ServerName::try_from(cfg.host.clone()).with_context(|| format!("intake.imap.host {:?} is not a host name", cfg.host))?;
    let secured = match cfg.security {
        ImapSecurity::Tls => tokio::time::timeout(EXCHANGE, tls.connect(name, tcp)).await.map_err(within("TLS"))?.context("TLS with the IMAP server")?,
        ImapSecurity::Starttls => {
            let mut plain = async_imap::Client::new(tcp);
            tokio::time::timeout(EXCHANGE, plain.read_response()).await.map_err(within("greeting"))??.context("the IMAP server closed before its greeting")?;
            tokio::time::timeout(EXCHANGE, plain.run_command_and_check_ok("STARTTLS", None)).await.map_err(within("STARTTLS"))?.context("STARTTLS")?;
            tokio::time::timeout(EXCHANGE, tls.connect(name, plain.into_inner())).await.map_err(within("TLS"))?.context("TLS with the IMAP server")?
        }
    };
    let mut client = async_imap::Client::new(secured);
    if cfg.security == ImapSecurity::Tls {
        tokio::time::timeout(EXCHANGE, client.read_response()).await.map_err(within("greeting"))??.context("the IMAP server closed before its greeting")?;
    }
    let session = tokio::time::timeout(EXCHANGE, client.login(&cfg.username, cfg.password.expose()))
        .await
        .map_err(within("login"))?
        .map_err(|(e, _)| e)
        .with_context(|| format!("logging in to {address} as {}", cfg.username))?;
    Ok(session)
}

/// What the server can do that the intake uses.
struct Abilities {
    r#move: bool,
    uid_expunge: bool,
    idle: bool,
}

/// Reads the mailbox until the service stops, reconnecting to a server that fails.
pub async fn run_imap(bureau: Arc<Bureau>) -> Result<()> {
    let cfg = &bureau.config.intake.imap;
    let tls = tls_connector(cfg)?;
    let key = mailbox_key(cfg);
    tracing::info!(mailbox = %key, "reading secure e-mail over IMAP");
    let mut shutdown = bureau.shutdown.clone();
    let mut retry = FIRST_RETRY;
    let mut failing_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let connected = tokio::select! {
            c = connect(cfg, &tls) => c,
            _ = shutdown.changed() => return Ok(()),
        };
        let failure = match connected {
            Ok(session) => {
                bureau.metrics.call("imap", "connect", true, started.elapsed());
                let mut up = |first_round: bool| {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(mailbox = %key, failed_for_s = since.elapsed().as_secs(), "the IMAP server answers again");
                    }
                    if first_round {
                        retry = FIRST_RETRY;
                    }
                };
                match serve(&bureau, session, &key, &mut shutdown, &mut up).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                }
            }
            Err(e) => {
                bureau.metrics.call("imap", "connect", false, started.elapsed());
                e
            }
        };
        bureau.metrics.failure("intake", "imap");
        let since = *failing_since.get_or_insert_with(Instant::now);
        tracing::warn!(
            mailbox = %key,
            error = %format!("{failure:#}"),
            failing_for_s = since.elapsed().as_secs(),
            retry_in_s = retry.as_secs(),
            "IMAP intake failed; the mail waits on the server and is read once it answers"
        );
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        retry = (retry * 2).min(Duration::from_secs(cfg.retry_max_s));
    }
}

/// One connection's life: rounds over the mailbox, waiting for mail between them. Returns when
/// the service stops; an error ends the connection.
async fn serve(bureau: &Bureau, mut session: Session, key: &str, shutdown: &mut watch::Receiver<bool>, up: &mut impl FnMut(bool)) -> Result<()> {
    let cfg = &bureau.config.intake.imap;
    let caps = timed(session.capabilities()).await?;
    let can = Abilities { r#move: caps.has_str("MOVE"), uid_expunge: caps.has_str("UIDPLUS"), idle: caps.has_str("IDLE") && cfg.idle_s > 0 };
    drop(caps);
    for folder in [&cfg.processed, &cfg.failed] {
        ensure_folder(&mut session, folder).await?;
    }
    let mut first = true;
    loop {
        let mailbox = timed(session.select(&cfg.mailbox)).await.with_context(|| format!("opening the mailbox {}", cfg.mailbox))?;
        let uidvalidity = mailbox.uid_validity.context("the server gives the mailbox no UIDVALIDITY")?;
        // Messages a person marked deleted (junk) are not documents sent to the bureau.
        let mut uids: Vec<u32> = timed(session.uid_search("UNDELETED")).await?.into_iter().collect();
        uids.sort_unstable();
        let (mut moved, mut stayed) = (0, 0);
        for uid in uids {
            if *shutdown.borrow() {
                let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
                return Ok(());
            }
            match take_one(bureau, &mut session, key, ImapUid { uidvalidity, uid }, &can).await? {
                Fate::Moved => moved += 1,
                Fate::Stayed => stayed += 1,
                Fate::Gone => {}
            }
        }
        up(first);
        first = false;
        if moved > 0 && stayed == 0 {
            // Mail that came in during the round: the server told of it in its replies, which
            // nothing reads; a round costs a search.
            continue;
        }
        // A message that could not be taken is tried again after intake.poll_ms, as in the
        // Maildir; otherwise the server says when mail comes.
        let stop = if can.idle && stayed == 0 {
            let (s, stop) = idle(session, Duration::from_secs(cfg.idle_s), shutdown).await?;
            session = s;
            stop
        } else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(bureau.config.intake.poll_ms)) => false,
                _ = shutdown.changed() => true,
            }
        };
        if stop {
            let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
            return Ok(());
        }
    }
}

/// Whether the server told of messages in the mailbox (`EXISTS`) in passing: async-imap keeps
/// what comes outside a command's own answer aside, in the session's `unsolicited_responses`.
fn told_of_mail(aside: &async_channel::Receiver<async_imap::types::UnsolicitedResponse>) -> bool {
    let mut told = false;
    while let Ok(r) = aside.try_recv() {
        told |= matches!(r, async_imap::types::UnsolicitedResponse::Exists(n) if n > 0);
    }
    told
}

/// Waits for the server to tell of new mail (or `most`, or the service stopping: then `true`).
async fn idle(session: Session, most: Duration, shutdown: &mut watch::Receiver<bool>) -> Result<(Session, bool)> {
    let aside = session.unsolicited_responses.clone();
    told_of_mail(&aside);
    let mut handle = session.idle();
    timed(handle.init()).await.context("IDLE")?;
    // Mail that arrived between the last search and the start of IDLE is told of before the
    // server's go-ahead, and set aside with the rest.
    let arrived = told_of_mail(&aside);
    let stop = if arrived {
        false
    } else {
        // The server's keep-alives restart async-imap's own timer: `most` bounds the whole wait.
        let (wait, _interrupt) = handle.wait_with_timeout(most);
        tokio::select! {
            r = tokio::time::timeout(most, wait) => { if let Ok(r) = r { r.context("waiting for new mail")?; } false }
            _ = shutdown.changed() => true,
        }
    };
    let session = timed(handle.done()).await.context("ending IDLE")?;
    Ok((session, stop))
}

/// What became of a message in one round.
enum Fate {
    /// Stored (now or before) and moved to its folder.
    Moved,
    /// Not taken now; still in the mailbox.
    Stayed,
    /// No longer in the mailbox when it was read.
    Gone,
}

/// Takes one message: stores it (unless it was already), then moves it out of the mailbox. An
/// error of the exchange with the server ends the connection; a message that cannot be stored
/// now (storage, database or DNS down) stays in the mailbox, counted and logged, and the round
/// goes on with the next one.
async fn take_one(bureau: &Bureau, session: &mut Session, key: &str, id: ImapUid, can: &Abilities) -> Result<Fate> {
    let taken = match imap_taken(&bureau.pool, key, id).await {
        Ok(Some(folder)) => {
            tracing::info!(mailbox = %key, uid = id.uid, %folder, "message already stored; moving it");
            Ok(folder)
        }
        Ok(None) => {
            let Some(bytes) = fetch(session, id.uid).await? else {
                tracing::info!(mailbox = %key, uid = id.uid, "message gone from the mailbox before it was read");
                return Ok(Fate::Gone);
            };
            store_message(bureau, key, id, &bytes).await
        }
        Err(e) => Err(e.into()),
    };
    let folder = match taken {
        Ok(folder) => folder,
        Err(e) => {
            bureau.metrics.failure("intake", "imap message");
            tracing::warn!(mailbox = %key, uid = id.uid, error = %format!("{e:#}"), "message not taken now; it stays in the mailbox and is tried again");
            return Ok(Fate::Stayed);
        }
    };
    move_message(session, id.uid, &folder, can).await.with_context(|| format!("moving message {} to {folder}", id.uid))?;
    if let Err(e) = record_imap_moved(&bureau.pool, key, id).await {
        tracing::warn!(uid = id.uid, error = %e, "message moved, its move not recorded");
    }
    Ok(Fate::Moved)
}

/// Stores a message as a mailing (or records its refusal) and records it as taken; returns the
/// folder it goes to.
async fn store_message(bureau: &Bureau, key: &str, id: ImapUid, bytes: &[u8]) -> Result<String> {
    let cfg = &bureau.config.intake.imap;
    let work = crate::workdir::folder(&crate::workdir::root(&bureau.config)).context("creating a work folder")?;
    let name = format!("imap-{}-{}.eml", id.uidvalidity, id.uid);
    let path = work.path().join(&name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let taken = intake::take_message(bureau, &path, &name).await?;
    hold(cfg.hold, HoldPoint::Stored, id).await;
    let folder = match taken.folder {
        MailFolder::Processed => cfg.processed.clone(),
        MailFolder::Failed => cfg.failed.clone(),
    };
    record_imap_taken(&bureau.pool, key, id, taken.mailing.as_deref(), &taken.message_id, &folder, &bureau.actor).await?;
    hold(cfg.hold, HoldPoint::Recorded, id).await;
    Ok(folder)
}

/// Fault injection for the tests: waits forever at the configured point (the test kills the
/// process there).
async fn hold(configured: HoldPoint, here: HoldPoint, id: ImapUid) {
    if configured == here {
        tracing::warn!(uid = id.uid, point = ?here, "holding before the move (intake.imap.hold, for tests)");
        std::future::pending::<()>().await;
    }
}

/// The whole message, read without marking it seen; `None` when it is no longer there.
async fn fetch(session: &mut Session, uid: u32) -> Result<Option<Vec<u8>>> {
    let fetches: Vec<_> = timed(async { session.uid_fetch(uid.to_string(), "BODY.PEEK[]").await?.try_collect::<Vec<_>>().await }).await?;
    Ok(fetches.into_iter().filter(|f| f.uid == Some(uid)).find_map(|f| f.body().map(<[u8]>::to_vec)))
}

/// MOVE where the server has it; else copy, flag deleted and expunge (that one UID where the
/// server has UIDPLUS).
async fn move_message(session: &mut Session, uid: u32, folder: &str, can: &Abilities) -> Result<()> {
    let set = uid.to_string();
    if can.r#move {
        return timed(session.uid_mv(&set, folder)).await;
    }
    timed(session.uid_copy(&set, folder)).await?;
    timed(async { session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await }).await?;
    if can.uid_expunge {
        timed(async { session.uid_expunge(&set).await?.try_collect::<Vec<_>>().await }).await?;
    } else {
        timed(async { session.expunge().await?.try_collect::<Vec<_>>().await }).await?;
    }
    Ok(())
}

/// Creates a folder the intake files messages in, unless it exists.
async fn ensure_folder(session: &mut Session, folder: &str) -> Result<()> {
    let found = timed(async { session.list(None, Some(folder)).await?.try_collect::<Vec<_>>().await }).await?;
    if found.iter().any(|n| n.name() == folder) {
        return Ok(());
    }
    timed(session.create(folder)).await.with_context(|| format!("creating the folder {folder}"))?;
    tracing::info!(%folder, "IMAP folder created");
    Ok(())
}

/// One exchange with the server, within [`EXCHANGE`].
async fn timed<T>(exchange: impl Future<Output = async_imap::error::Result<T>>) -> Result<T> {
    Ok(tokio::time::timeout(EXCHANGE, exchange).await.map_err(|_| anyhow::anyhow!("the IMAP server did not answer within {} s", EXCHANGE.as_secs()))??)
}
