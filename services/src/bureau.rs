//! What every role of a running bureau shares: configuration, database pool, object store,
//! broker link, mailer, the site's settings and plan, the metrics, and the shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::watch;

use scanbureau_pipeline::config::{DEFAULT_PLAN, SiteConfig};

use crate::blobs::{Blobs, keys};
use crate::broker::{BrokerLink, Stage};
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::settings::ServiceConfig;
use crate::store::{self, Inserted, NewMailing, StoredFile};

pub struct Bureau {
    pub config: ServiceConfig,
    pub pool: PgPool,
    pub blobs: Blobs,
    pub broker: BrokerLink,
    pub mailer: Mailer,
    pub site: SiteConfig,
    pub metrics: Metrics,
    pub shutdown: watch::Receiver<bool>,
    /// Who this process is, in audit events (`worker:process@host:pid`).
    pub actor: String,
    /// DKIM, SPF and DMARC of incoming e-mail; none when `intake.mail_auth.check` is off.
    pub mail_auth: Option<crate::mail_auth::MailChecker>,
}

impl Bureau {
    /// Connects to every server (waiting for them within the configured timeouts), brings the
    /// schema up to date, makes sure the bucket exists, loads the plan and the registry given
    /// in the configuration.
    pub async fn start(config: ServiceConfig, role: &str, shutdown: watch::Receiver<bool>) -> Result<Arc<Self>> {
        Self::start_with(config, role, shutdown, true).await
    }

    /// `start`, optionally without checking the bucket (a process that must start while the
    /// object store is down, and wait for it).
    pub async fn start_with(config: ServiceConfig, role: &str, shutdown: watch::Receiver<bool>, check_bucket: bool) -> Result<Arc<Self>> {
        let site = match config.job.site.as_str() {
            "" => SiteConfig::embedded_default(),
            path => SiteConfig::from_toml(&std::fs::read_to_string(path).with_context(|| format!("reading site configuration {path}"))?)
                .with_context(|| format!("site configuration {path}"))?,
        };
        let wait = Duration::from_secs(config.broker.connect_timeout_s);
        let pool = store::connect(config.database.url.expose(), config.database.max_connections, wait).await.context("connecting to PostgreSQL")?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let actor = format!("worker:{role}@{host}:{}", std::process::id());
        let plan_text = match config.job.plan.as_str() {
            "" => DEFAULT_PLAN.to_string(),
            path => std::fs::read_to_string(path).with_context(|| format!("reading filing plan {path}"))?,
        };
        store::load_plan(&pool, &plan_text, &actor).await.context("recording the filing plan")?;
        if !config.job.registry.is_empty() {
            let json = std::fs::read_to_string(&config.job.registry).with_context(|| format!("reading registry snapshot {}", config.job.registry))?;
            let (g, d) = store::load_registry_snapshot(&pool, &json, &actor).await.context("loading the registry snapshot")?;
            tracing::info!(guichets = g, demandes = d, "registry snapshot loaded");
        }
        crate::workdir::prepare(&crate::workdir::root(&config))?;
        let metrics = Metrics::default();
        let blobs = Blobs::new(&config.storage).timed_by(metrics.call_timer());
        if check_bucket {
            blobs.ensure_bucket().await.context("opening the S3 bucket")?;
        }
        let broker = BrokerLink::new(config.broker.clone(), &format!("scanbureau {role} {}", std::process::id()));
        broker.get().await.context("connecting to RabbitMQ")?;
        let mailer = Mailer::new(&config.smtp).context("SMTP settings")?;
        // Only where e-mail comes in: a process without a mail channel needs no resolver.
        let reads_mail = !config.intake.maildir.is_empty() || config.intake.imap.enabled();
        let mail_auth = match config.intake.mail_auth.check && reads_mail {
            true => Some(crate::mail_auth::MailChecker::new(&config.intake.mail_auth).context("intake.mail_auth")?),
            false => None,
        };
        Ok(Arc::new(Self { config, pool, blobs, broker, mailer, site, metrics, shutdown, actor, mail_auth }))
    }

    pub fn due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        self.site.calendar().due_at(received_at.fixed_offset()).with_timezone(&Utc)
    }

    /// Stores a received mailing whose files are on local disk: objects first, then the row,
    /// then the queued job. The same content delivered again is recognised and not queued twice.
    /// Returns the mailing id and whether it was new.
    pub async fn receive(&self, intake: Intake<'_>) -> Result<(String, Inserted)> {
        // A portal deposit is one counter's: the same file deposited by two counters is two mailings.
        let scope = match &intake.counter {
            Some(c) => format!("{}:{c}", intake.channel),
            None => intake.channel.to_string(),
        };
        let id = mailing_id(&scope, intake.numero_unique.as_deref(), intake.files)?;
        let mut stored = Vec::new();
        for (i, (name, path)) in intake.files.iter().enumerate() {
            let key = keys::raw(&id, i, name);
            let bytes = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
            self.blobs.put_file(&key, path, content_type(name)).await?;
            stored.push(StoredFile { name: name.clone(), key, bytes });
        }
        let received_at = Utc::now();
        let m = NewMailing {
            id: id.clone(),
            channel: intake.channel,
            source: intake.source.to_string(),
            received_at,
            due_at: self.due_at(received_at),
            numero_unique: intake.numero_unique,
            notify: intake.notify,
            portal_user: intake.portal_user,
            guichet: intake.counter.clone(),
            files: stored,
        };
        let outcome = store::insert_mailing(&self.pool, &m, &self.actor).await?;
        match &outcome {
            Inserted::New => {
                self.metrics.received(intake.channel);
                // If this publish is lost, the sweeper queues the mailing again.
                if let Err(e) = self.broker.publish(Stage::Process, &job_message(&id)).await {
                    tracing::warn!(mailing = %id, error = %e, "stored but not queued yet; the sweeper will queue it");
                }
            }
            Inserted::Duplicate { status } => {
                self.metrics.duplicate(intake.channel);
                tracing::info!(mailing = %id, %status, "the same content was already received; not queued again");
            }
        }
        Ok((id, outcome))
    }
}

/// A mailing as an intake channel hands it over.
pub struct Intake<'a> {
    pub channel: &'static str,
    pub source: &'a str,
    /// (name, path on local disk), in order.
    pub files: &'a [(String, std::path::PathBuf)],
    pub numero_unique: Option<String>,
    pub notify: Option<String>,
    pub portal_user: Option<i64>,
    /// The depositing counter, for portal deposits.
    pub counter: Option<String>,
}

/// `{"mailing": id}`
pub fn job_message(id: &str) -> Vec<u8> {
    serde_json::json!({ "mailing": id }).to_string().into_bytes()
}

/// `{"notice": id}`
pub fn notice_message(id: i64) -> Vec<u8> {
    serde_json::json!({ "notice": id }).to_string().into_bytes()
}

/// A mailing's id: a digest of its scope (the channel, and the counter of a portal deposit),
/// request number and the files' contents, so the same batch dropped twice or the same PDF
/// deposited twice is one mailing.
pub fn mailing_id(channel: &str, numero: Option<&str>, files: &[(String, std::path::PathBuf)]) -> Result<String> {
    use std::io::Read;
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update([0]);
    h.update(numero.unwrap_or("").as_bytes());
    h.update([0]);
    let mut buf = vec![0u8; 1 << 16];
    for (_, path) in files {
        let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut fh = Sha256::new();
        loop {
            let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            fh.update(&buf[..n]);
        }
        h.update(fh.finalize());
    }
    let digest: String = h.finalize().iter().take(10).map(|b| format!("{b:02x}")).collect();
    Ok(format!("m-{digest}"))
}

pub fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("pdf") => "application/pdf",
        Some("tif" | "tiff") => "image/tiff",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("eml") => "message/rfc822",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
