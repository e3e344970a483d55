//! Is an incoming e-mail from whom it says? DKIM, SPF and DMARC of every message the intake
//! reads (Maildir or IMAP), checked against the DNS (`mail-auth`), and what the bureau does
//! with the answer.
//!
//! The bureau reads mail its own server already accepted, so the SMTP facts SPF needs are taken
//! from that server's trace: the client address and HELO name of the topmost `Received:` field
//! (the one the bureau's own server wrote), and the envelope sender of `Return-Path:`. A message
//! without them (put in the mailbox by other means) has no SPF result, only DKIM.
//!
//! The policy ([`judge`]) is a plain function over the results:
//! - **forged**, refused with no reply (the address is someone else's), only on proof: the
//!   author domain's DMARC fails and the domain asks for quarantine or reject; or, with no
//!   aligned pass, SPF fails outright (`-all`) or a signature of the author domain is broken;
//! - **authentic**: an aligned DKIM or SPF pass (DMARC pass), or a message handed over by a
//!   relay the site trusts;
//! - **unproven** otherwise (no signature, no SPF record): counters' mail must be authentic
//!   (the intake answers their known address, saying what to fix); applicants' is taken (their
//!   notices go to the address the registry holds for them, whoever wrote);
//! - **unavailable** when the DNS could not answer: the message waits and is read again.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult};
use serde::Serialize;

use crate::settings::MailAuthSection;

/// What a check mechanism concluded, in DMARC's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    None,
    TempError,
    PermError,
}

/// What the author domain asks receivers to do with mail failing DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainPolicy {
    /// No DMARC record, or one without a policy.
    Absent,
    None,
    Quarantine,
    Reject,
}

/// The checks' results for one message: recorded with it (audit `mail_authentication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthFacts {
    /// The author domain (the `From:` address's).
    pub from_domain: String,
    /// DMARC: an aligned pass of DKIM or SPF.
    pub dmarc: Outcome,
    pub policy: DomainPolicy,
    /// Each DKIM signature: its domain (`d=`) and result.
    pub dkim: Vec<(String, Outcome)>,
    /// SPF of the envelope sender's domain, for the client that handed the message over.
    pub spf: Outcome,
    pub spf_domain: String,
    /// The client address of the topmost `Received:` field, when there is one.
    pub client: Option<IpAddr>,
    /// The client is a relay the site trusts.
    pub trusted_relay: bool,
}

/// What the bureau makes of a message's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticity {
    Authentic,
    Unproven,
    /// Proof that the sender is not who the message says; the proof, in words.
    Forged(String),
    /// The DNS did not answer: judge again later.
    Unavailable(String),
}

/// Pure: the policy above.
pub fn judge(f: &AuthFacts) -> Authenticity {
    if f.trusted_relay || f.dmarc == Outcome::Pass {
        return Authenticity::Authentic;
    }
    let from_domain_broken = f.dkim.iter().any(|(d, o)| *o == Outcome::Fail && d.eq_ignore_ascii_case(&f.from_domain));
    if f.dmarc == Outcome::Fail && matches!(f.policy, DomainPolicy::Quarantine | DomainPolicy::Reject) {
        return Authenticity::Forged(format!(
            "DMARC fails for {} (no aligned DKIM or SPF pass) and the domain asks to {:?} such mail",
            f.from_domain, f.policy
        ));
    }
    if f.spf == Outcome::Fail {
        return Authenticity::Forged(format!("SPF of {} refuses the sending server {}", f.spf_domain, f.client.map(|c| c.to_string()).unwrap_or_default()));
    }
    if from_domain_broken {
        return Authenticity::Forged(format!("the DKIM signature of {} does not verify: the message was altered or signed by someone else", f.from_domain));
    }
    let dns_down = f.dmarc == Outcome::TempError || f.spf == Outcome::TempError || f.dkim.iter().any(|(_, o)| *o == Outcome::TempError);
    if dns_down {
        return Authenticity::Unavailable(format!("the DNS did not answer for {}", f.from_domain));
    }
    Authenticity::Unproven
}

/// The first (topmost) field called `name` of the message's header, unfolded.
fn first_field(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("").split("\n\n").next().unwrap_or("");
    let mut found: Option<String> = None;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        match &mut found {
            Some(value) if line.starts_with([' ', '\t']) => {
                value.push(' ');
                value.push_str(line.trim());
            }
            Some(_) => break,
            None => {
                if let Some((field, value)) = line.split_once(':')
                    && field.trim().eq_ignore_ascii_case(name)
                {
                    found = Some(value.trim().to_string());
                }
            }
        }
    }
    found
}

/// The client address and HELO name the bureau's own server recorded in the topmost `Received:`
/// field (`from helo (host [192.0.2.1]) by ...`).
pub fn first_hop(message: &[u8]) -> Option<(IpAddr, String)> {
    let received = first_field(message, "Received")?;
    let helo = received.strip_prefix("from ").and_then(|r| r.split([' ', ';']).next()).unwrap_or("").to_string();
    let ip = received.split('[').skip(1).filter_map(|r| r.split(']').next()).find_map(|a| a.trim_start_matches("IPv6:").parse::<IpAddr>().ok())?;
    Some((ip, helo))
}

/// The envelope sender (`Return-Path: <a@b>`), when the delivering server wrote it.
fn return_path(message: &[u8]) -> Option<String> {
    let raw = first_field(message, "Return-Path")?;
    let inner = raw.trim_start_matches('<').trim_end_matches('>').trim();
    (!inner.is_empty()).then(|| inner.to_string())
}

fn dkim_outcome(r: &DkimResult) -> Outcome {
    match r {
        DkimResult::Pass => Outcome::Pass,
        DkimResult::Fail(_) => Outcome::Fail,
        DkimResult::TempError(_) => Outcome::TempError,
        DkimResult::PermError(_) => Outcome::PermError,
        DkimResult::Neutral(_) | DkimResult::None => Outcome::None,
    }
}

fn spf_outcome(r: SpfResult) -> Outcome {
    match r {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::Fail => Outcome::Fail,
        SpfResult::TempError => Outcome::TempError,
        SpfResult::PermError => Outcome::PermError,
        SpfResult::SoftFail | SpfResult::Neutral | SpfResult::None => Outcome::None,
    }
}

fn dmarc_outcome(r: &DmarcResult) -> Outcome {
    match r {
        DmarcResult::Pass => Outcome::Pass,
        DmarcResult::Fail(_) => Outcome::Fail,
        DmarcResult::TempError(_) => Outcome::TempError,
        DmarcResult::PermError(_) => Outcome::PermError,
        DmarcResult::None => Outcome::None,
    }
}

/// The checks, with the resolver and trusted relays the site configured.
pub struct MailChecker {
    authenticator: MessageAuthenticator,
    host_name: String,
    relays: Vec<IpAddr>,
}

impl MailChecker {
    pub fn new(cfg: &MailAuthSection) -> Result<Self> {
        let authenticator = if cfg.resolver.is_empty() {
            MessageAuthenticator::new_system_conf().context("the system's DNS resolver (/etc/resolv.conf)")?
        } else {
            let address: std::net::SocketAddr =
                cfg.resolver.parse().with_context(|| format!("intake.mail_auth.resolver {:?} is not an address:port", cfg.resolver))?;
            let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
            udp.port = address.port();
            tcp.port = address.port();
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(address.ip(), true, vec![udp, tcp])]);
            let mut options = ResolverOpts::default();
            options.timeout = Duration::from_secs(5);
            options.attempts = 2;
            MessageAuthenticator::new(config, options).context("the configured DNS resolver")?
        };
        let relays = cfg
            .trusted_relays
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().with_context(|| format!("intake.mail_auth.trusted_relays: {s:?} is not an IP address")))
            .collect::<Result<_>>()?;
        Ok(Self { authenticator, host_name: cfg.host_name.clone(), relays })
    }

    /// Checks one message (its raw bytes).
    pub async fn check(&self, message: &[u8]) -> AuthFacts {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return AuthFacts {
                from_domain: String::new(),
                dmarc: Outcome::None,
                policy: DomainPolicy::Absent,
                dkim: Vec::new(),
                spf: Outcome::None,
                spf_domain: String::new(),
                client: None,
                trusted_relay: false,
            };
        };
        let from = parsed.from.first().cloned().unwrap_or_default();
        let from_domain = from.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        let hop = first_hop(message);
        let sender = return_path(message).unwrap_or_else(|| from.clone());
        let (spf, spf_domain) = match &hop {
            Some((ip, helo)) => {
                let out = self.authenticator.verify_spf(SpfParameters::verify_mail_from(*ip, helo, &self.host_name, &sender)).await;
                (out, sender.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| helo.clone()))
            }
            None => (SpfOutput::new(String::new()).with_result(SpfResult::None), String::new()),
        };
        let dmarc = self.authenticator.verify_dmarc(mail_auth::dmarc::verify::DmarcParameters::new(&parsed, &dkim, &spf_domain, &spf)).await;
        let policy = match dmarc.policy() {
            _ if dmarc_outcome(&dmarc.result()) == Outcome::None => DomainPolicy::Absent,
            Policy::None => DomainPolicy::None,
            Policy::Quarantine => DomainPolicy::Quarantine,
            Policy::Reject => DomainPolicy::Reject,
            Policy::Unspecified => DomainPolicy::Absent,
        };
        AuthFacts {
            dkim: dkim.iter().map(|o| (o.signature().map(|s| s.d.to_ascii_lowercase()).unwrap_or_default(), dkim_outcome(o.result()))).collect(),
            dmarc: dmarc_outcome(&dmarc.result()),
            policy,
            spf: spf_outcome(spf.result()),
            spf_domain,
            client: hop.as_ref().map(|(ip, _)| *ip),
            trusted_relay: hop.as_ref().is_some_and(|(ip, _)| self.relays.contains(ip)),
            from_domain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dmarc: Outcome, policy: DomainPolicy, dkim: &[(&str, Outcome)], spf: Outcome) -> AuthFacts {
        AuthFacts {
            from_domain: "bailleur-974.example".into(),
            dmarc,
            policy,
            dkim: dkim.iter().map(|(d, o)| (d.to_string(), *o)).collect(),
            spf,
            spf_domain: "bailleur-974.example".into(),
            client: "192.0.2.7".parse().ok(),
            trusted_relay: false,
        }
    }

    #[test]
    fn forgery_is_only_said_on_proof() {
        use DomainPolicy::*;
        use Outcome as O;
        assert_eq!(judge(&facts(O::Pass, Reject, &[("bailleur-974.example", O::Pass)], O::None)), Authenticity::Authentic);
        assert!(matches!(judge(&facts(O::Fail, Reject, &[], O::None)), Authenticity::Forged(p) if p.contains("DMARC")));
        assert!(matches!(judge(&facts(O::Fail, Quarantine, &[], O::None)), Authenticity::Forged(_)));
        // A domain that asks nothing of receivers, with nothing signed: no proof either way.
        assert_eq!(judge(&facts(O::Fail, None, &[], O::None)), Authenticity::Unproven);
        assert_eq!(judge(&facts(O::None, Absent, &[], O::None)), Authenticity::Unproven);
        // A signature of someone else's domain proves nothing about this one.
        assert_eq!(judge(&facts(O::None, Absent, &[("mailer.example", O::Fail)], O::None)), Authenticity::Unproven);
        assert!(matches!(judge(&facts(O::None, Absent, &[("bailleur-974.example", O::Fail)], O::None)), Authenticity::Forged(p) if p.contains("DKIM")));
        assert!(matches!(judge(&facts(O::None, Absent, &[], O::Fail)), Authenticity::Forged(p) if p.contains("SPF")));
        assert!(matches!(judge(&facts(O::TempError, Absent, &[], O::None)), Authenticity::Unavailable(_)));
        let mut relayed = facts(O::Fail, Reject, &[], O::Fail);
        relayed.trusted_relay = true;
        assert_eq!(judge(&relayed), Authenticity::Authentic, "a trusted relay checked it");
    }

    #[test]
    fn the_first_hop_is_the_topmost_received_field() {
        let m = b"Return-Path: <pj@bailleur-974.example>\r\nReceived: from mail.bailleur-974.example (mail.bailleur-974.example [192.0.2.7])\r\n\tby mx.bureau.example (Postfix) with ESMTPS id 1;\r\n\tThu, 3 Dec 2026 10:00:00 +0100\r\nReceived: from [10.0.0.2] (unknown [10.0.0.2]) by mail.bailleur-974.example; Thu, 3 Dec 2026 09:59:59 +0100\r\nFrom: pj@bailleur-974.example\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(first_hop(m), Some(("192.0.2.7".parse().expect("ip"), "mail.bailleur-974.example".to_string())));
        assert_eq!(return_path(m).as_deref(), Some("pj@bailleur-974.example"));
        assert_eq!(first_hop(b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"), None);
    }
}
