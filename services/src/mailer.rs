//! Sending notices by SMTP. The job writes each notice as a complete RFC 5322 message; it is
//! sent as it is, and counts as sent only once the server accepted it.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use thiserror::Error;

use crate::settings::{SmtpSection, SmtpSecurity};

#[derive(Debug, Error)]
pub enum MailError {
    #[error("address {0:?} is not a valid e-mail address")]
    Address(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The server refused for good (5xx): retrying will not help.
    #[error("SMTP server refused the message: {0}")]
    Refused(String),
}

impl MailError {
    /// Whether sending again can never succeed (a refusal, an address that is none), as against
    /// a server that is down or busy.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Address(_))
    }
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub fn new(cfg: &SmtpSection) -> Result<Self, MailError> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str()).port(cfg.port).timeout(Some(Duration::from_secs(cfg.timeout_s)));
        if cfg.security != SmtpSecurity::None {
            let params = TlsParameters::new(cfg.host.clone()).map_err(|e| MailError::Smtp(e.to_string()))?;
            b = b.tls(if cfg.security == SmtpSecurity::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
        }
        if !cfg.username.is_empty() {
            b = b.credentials(Credentials::new(cfg.username.clone(), cfg.password.expose().to_string()));
        }
        Ok(Self { transport: b.build() })
    }

    /// Sends a complete message to its envelope recipients.
    pub async fn send(&self, from: &str, to: &[String], message: &[u8]) -> Result<(), MailError> {
        let parse = |s: &str| s.parse::<Address>().map_err(|_| MailError::Address(s.to_string()));
        let to = to.iter().map(|t| parse(t)).collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(parse(from)?), to).map_err(|e| MailError::Smtp(e.to_string()))?;
        match self.transport.send_raw(&envelope, message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Refused(e.to_string())),
            Err(e) => Err(MailError::Smtp(e.to_string())),
        }
    }

    pub async fn ping(&self) -> bool {
        self.transport.test_connection().await.unwrap_or(false)
    }
}
