//! The service's configuration: embedded defaults (`data/service.toml`), then an optional file,
//! then `SCANBUREAU__SECTION__KEY` environment variables, checked once at start-up.
//!
//! An environment value takes the type of the key it overrides, so a numeric password stays a
//! string and a typo in a key name is an error rather than a silently ignored setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

pub const DEFAULT_SERVICE: &str = include_str!("../data/service.toml");
const ENV_PREFIX: &str = "SCANBUREAU__";

/// A password or key: deserialised like a string, never printed.
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub database: DatabaseSection,
    pub broker: BrokerSection,
    pub storage: StorageSection,
    pub smtp: SmtpSection,
    pub intake: IntakeSection,
    pub portal: PortalSection,
    pub http: HttpSection,
    pub web: WebSection,
    pub job: JobSection,
    pub log: LogSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    pub url: Secret,
    pub prefix: String,
    pub prefetch_notify: u16,
    pub retry_for_s: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub delivery_limit: u32,
    pub connect_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: Secret,
    pub raw_retention_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: Secret,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSection {
    pub hot_folder: String,
    pub stable_s: u64,
    pub maildir: String,
    pub poll_ms: u64,
    pub max_attachment_bytes: u64,
    pub imap: ImapSection,
    pub mail_auth: MailAuthSection,
}

/// How incoming e-mail is authenticated (DKIM, SPF, DMARC): see `mail_auth.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailAuthSection {
    pub check: bool,
    /// The DNS server asked (`address:port`); empty = the system's resolver.
    pub resolver: String,
    /// The bureau's own mail server's name (the receiving host SPF speaks of).
    pub host_name: String,
    /// Relays the site trusts to have checked mail they hand over (comma-separated addresses).
    pub trusted_relays: String,
}

/// How the IMAP server is spoken to: TLS from the start, or upgraded by STARTTLS. There is no
/// clear-text mode: the mailbox holds applicants' documents.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ImapSecurity {
    Tls,
    Starttls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSection {
    pub host: String,
    pub port: u16,
    pub security: ImapSecurity,
    pub username: String,
    pub password: Secret,
    pub ca_file: String,
    pub mailbox: String,
    pub processed: String,
    pub failed: String,
    pub idle_s: u64,
    pub retry_max_s: u64,
    /// Fault injection for the tests only: where the intake waits forever between a message's
    /// store and its move, so that a test can kill it there.
    pub hold: HoldPoint,
}

/// Where, between a message's store and its move, the IMAP intake stops for a crash test.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HoldPoint {
    None,
    /// Stored as a mailing, not yet recorded as taken.
    Stored,
    /// Recorded as taken, not yet moved.
    Recorded,
}

impl ImapSection {
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSection {
    pub max_upload_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub bind: String,
    pub ops_allow: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    pub session_hours: i32,
    pub secure_cookies: bool,
    pub behind_proxy: bool,
    pub nominal_pages_per_hour: f64,
    pub risk_margin_minutes: i64,
    /// Where people open the pages, for links in alerts and account e-mails; empty = paths alone.
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSection {
    pub site: String,
    pub plan: String,
    pub registry: String,
    pub threads: usize,
    pub sweep_s: u64,
    pub work_dir: String,
    /// Fault injection for the tests only: the processing worker aborts on this mailing.
    pub crash_on_mailing: String,
    /// Fault injection for the tests only: the notify worker aborts between the SMTP server's
    /// acceptance and the commit (the at-least-once case).
    pub crash_after_smtp_accept: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: crate::logging::LogFormat,
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("configuration file {0}: {1}")]
    File(PathBuf, String),
    #[error("environment variable {0}: {1}")]
    Env(String, String),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl ServiceConfig {
    /// Defaults, then `file`, then the variables of `env` that start with `SCANBUREAU__`.
    pub fn load(file: Option<(&std::path::Path, &str)>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let mut table: toml::Table = toml::from_str(DEFAULT_SERVICE).map_err(|e| SettingsError::Invalid(format!("embedded defaults: {e}")))?;
        if let Some((path, text)) = file {
            let overlay: toml::Table = toml::from_str(text).map_err(|e| SettingsError::File(path.to_path_buf(), e.to_string()))?;
            merge(&mut table, overlay, "").map_err(|e| SettingsError::File(path.to_path_buf(), e))?;
        }
        let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        vars.sort();
        for (key, value) in vars {
            apply_env(&mut table, &key, &value).map_err(|e| SettingsError::Env(key.clone(), e))?;
        }
        let config: ServiceConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| SettingsError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// From the process's own environment and an optional file.
    pub fn from_env(file: Option<&std::path::Path>) -> Result<Self, SettingsError> {
        let text = match file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| SettingsError::File(p.to_path_buf(), e.to_string()))?),
            None => None,
        };
        Self::load(file.zip(text.as_deref()), std::env::vars())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError::Invalid(m));
        if !self.database.url.expose().starts_with("postgres://") && !self.database.url.expose().starts_with("postgresql://") {
            return bad("database.url must be a postgres:// URL".into());
        }
        if !self.broker.url.expose().starts_with("amqp://") {
            return bad("broker.url must be an amqp:// URL (amqps is not built in)".into());
        }
        if self.broker.prefix.is_empty() || !self.broker.prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return bad(format!("broker.prefix {:?}: letters, digits, '-', '_', '.' only", self.broker.prefix));
        }
        if self.broker.delivery_limit == 0 || self.broker.prefetch_notify == 0 || self.broker.retry_base_ms == 0 {
            return bad("broker.delivery_limit, broker.prefetch_notify and broker.retry_base_ms must be at least 1".into());
        }
        if !(self.storage.endpoint.starts_with("http://") || self.storage.endpoint.starts_with("https://")) {
            return bad("storage.endpoint must be an http(s):// URL".into());
        }
        if self.storage.bucket.len() < 3 || !self.storage.bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
            return bad(format!("storage.bucket {:?} is not a valid bucket name", self.storage.bucket));
        }
        if self.storage.access_key.is_empty() || self.storage.secret_key.expose().is_empty() {
            return bad("storage.access_key and storage.secret_key must be set (SCANBUREAU__STORAGE__ACCESS_KEY, SCANBUREAU__STORAGE__SECRET_KEY; scripts/stack.sh writes them to .stack/env)".into());
        }
        if self.http.bind.parse::<SocketAddr>().is_err() {
            return bad(format!("http.bind {:?} is not an address:port", self.http.bind));
        }
        if self.web.session_hours <= 0 || self.web.nominal_pages_per_hour <= 0.0 || self.web.risk_margin_minutes < 0 {
            return bad("web.session_hours and web.nominal_pages_per_hour must be positive, web.risk_margin_minutes not negative".into());
        }
        let imap = &self.intake.imap;
        if imap.enabled() {
            if imap.username.is_empty() || imap.password.expose().is_empty() {
                return bad("intake.imap.username and intake.imap.password must be set when intake.imap.host is (SCANBUREAU__INTAKE__IMAP__PASSWORD)".into());
            }
            let folders = [&imap.mailbox, &imap.processed, &imap.failed];
            if folders.iter().any(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')) {
                return bad("intake.imap.mailbox, processed and failed: folder names in printable ASCII, without quotes or backslashes".into());
            }
            if imap.mailbox == imap.processed || imap.mailbox == imap.failed {
                return bad("intake.imap.processed and intake.imap.failed must differ from intake.imap.mailbox".into());
            }
            if imap.port == 0 || imap.retry_max_s == 0 {
                return bad("intake.imap.port and intake.imap.retry_max_s must be positive".into());
            }
        }
        if self.portal.max_upload_bytes == 0 || self.intake.poll_ms == 0 {
            return bad("portal.max_upload_bytes and intake.poll_ms must be positive".into());
        }
        Ok(())
    }

    pub fn http_addr(&self) -> SocketAddr {
        // Checked by `validate`.
        self.http.bind.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

/// Deep-merges `overlay` into `base`; keys unknown to the defaults are refused.
fn merge(base: &mut toml::Table, overlay: toml::Table, path: &str) -> Result<(), String> {
    for (k, v) in overlay {
        let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &here)?,
            (Some(slot), v) if std::mem::discriminant(slot) == std::mem::discriminant(&v) => *slot = v,
            (Some(slot), v) => return Err(format!("{here}: expected {}, found {}", slot.type_str(), v.type_str())),
            (None, _) => return Err(format!("unknown key {here}")),
        }
    }
    Ok(())
}

/// `SCANBUREAU__SMTP__PORT=2526` sets `smtp.port`, parsed as the type the default has.
fn apply_env(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let path: Vec<String> = key[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
    let (last, sections) = path.split_last().ok_or("empty key")?;
    let mut t = table;
    for s in sections {
        t = match t.get_mut(s) {
            Some(toml::Value::Table(inner)) => inner,
            _ => return Err(format!("unknown section {s}")),
        };
    }
    let slot = t.get_mut(last).ok_or_else(|| format!("unknown key {last}"))?;
    *slot = match slot {
        toml::Value::Integer(_) => toml::Value::Integer(value.trim().parse().map_err(|_| format!("{value:?} is not a whole number"))?),
        toml::Value::Float(_) => toml::Value::Float(value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(value.trim().parse().map_err(|_| format!("{value:?} is not true or false"))?),
        toml::Value::String(_) => toml::Value::String(value.to_string()),
        _ => return Err("this key cannot be set from the environment".into()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The given variables, plus storage credentials (which have no default).
    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let creds = [("SCANBUREAU__STORAGE__ACCESS_KEY", "k"), ("SCANBUREAU__STORAGE__SECRET_KEY", "s3-secret")];
        creds.iter().chain(pairs).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let file = "[smtp]\nport = 2600\nhost = \"mail.local\"\n";
        let c = ServiceConfig::load(
            Some((std::path::Path::new("site.toml"), file)),
            env(&[("SCANBUREAU__SMTP__PORT", "2700"), ("SCANBUREAU__SMTP__PASSWORD", "1234"), ("OTHER", "x")]),
        )
        .expect("valid");
        assert_eq!(c.smtp.port, 2700, "environment wins over the file");
        assert_eq!(c.smtp.host, "mail.local", "the file wins over the defaults");
        assert_eq!(c.smtp.password.expose(), "1234", "a numeric password stays text");
        assert_eq!(c.broker.prefix, "scanbureau");
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(matches!(ServiceConfig::load(None, env(&[("SCANBUREAU__SMTP__PROT", "1")])), Err(SettingsError::Env(..))));
        assert!(matches!(ServiceConfig::load(None, env(&[("SCANBUREAU__SMTP__PORT", "many")])), Err(SettingsError::Env(..))));
        assert!(matches!(ServiceConfig::load(Some((std::path::Path::new("f"), "[smtp]\nport = \"x\"\n")), env(&[])), Err(SettingsError::File(..))));
        assert!(matches!(ServiceConfig::load(None, env(&[("SCANBUREAU__HTTP__BIND", "nowhere")])), Err(SettingsError::Invalid(_))));
        assert!(matches!(ServiceConfig::load(None, env(&[("SCANBUREAU__STORAGE__BUCKET", "Bad_Bucket")])), Err(SettingsError::Invalid(_))));
        assert!(matches!(ServiceConfig::load(None, Vec::new()), Err(SettingsError::Invalid(m)) if m.contains("SECRET_KEY")));
    }

    #[test]
    fn imap_intake_needs_its_account_and_distinct_folders() {
        let c = ServiceConfig::load(None, env(&[])).expect("valid");
        assert!(!c.intake.imap.enabled(), "off by default");
        let on = [("SCANBUREAU__INTAKE__IMAP__HOST", "imap.bureau.example"), ("SCANBUREAU__INTAKE__IMAP__USERNAME", "courrier")];
        let refused = |extra: &[(&str, &str)]| {
            let vars: Vec<(&str, &str)> = on.iter().chain(extra).copied().collect();
            matches!(ServiceConfig::load(None, env(&vars)), Err(SettingsError::Invalid(_)))
        };
        assert!(refused(&[]), "no password");
        assert!(!refused(&[("SCANBUREAU__INTAKE__IMAP__PASSWORD", "pw")]));
        assert!(refused(&[("SCANBUREAU__INTAKE__IMAP__PASSWORD", "pw"), ("SCANBUREAU__INTAKE__IMAP__PROCESSED", "INBOX")]), "processed = mailbox");
        assert!(refused(&[("SCANBUREAU__INTAKE__IMAP__PASSWORD", "pw"), ("SCANBUREAU__INTAKE__IMAP__FAILED", "Refusés")]), "not ASCII");
        assert!(matches!(ServiceConfig::load(None, env(&[("SCANBUREAU__INTAKE__IMAP__SECURITY", "none")])), Err(SettingsError::Invalid(_))), "no clear text");
        let c = ServiceConfig::load(None, env(&[on[0], on[1], ("SCANBUREAU__INTAKE__IMAP__PASSWORD", "imap-secret")])).expect("valid");
        assert!(!format!("{c:?}").contains("imap-secret"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = ServiceConfig::load(None, env(&[("SCANBUREAU__STORAGE__SECRET_KEY", "hunter2-very-secret")])).expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("guest:guest"), "broker URL with its password is hidden");
    }
}
