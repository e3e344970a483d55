//! Is an incoming e-mail from whom it says? DKIM, SPF and DMARC of every message the intake
//! reads (Maildir or IMAP), checked against the DNS (`mail-auth`), and what the bureau does
//! with the answer.
//!
//! The bureau reads mail its own server already accepted, so the SMTP facts SPF needs are taken
//! from that server's trace: the client address and HELO name of the topmost `Received:` field
//! (the one the bureau's own server wrote; hops on the machine itself are passed over), and the
//! envelope sender of `Return-Path:`. A message without them (put in the mailbox by other means)
//! has no SPF result, only DKIM, and then nothing can prove it forged.
//!
//! The policy ([`judge`]) is a plain function over the results:
//! - **forged**, refused with no reply (the address is someone else's), only on proof: the
//!   author domain's DMARC fails with both mechanisms evaluated (the sending client known) and
//!   the domain asks for quarantine or reject. A broken signature alone proves nothing (RFC 6376:
//!   it counts as none; lists rewrite subjects), nor does an SPF failure alone (forwarding);
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
use serde::{Deserialize, Serialize};

use crate::settings::MailAuthSection;

/// What a check mechanism concluded, in DMARC's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    None,
    TempError,
    PermError,
}

/// What the author domain asks receivers to do with mail failing DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainPolicy {
    /// No DMARC record, or one without a policy.
    Absent,
    None,
    Quarantine,
    Reject,
}

/// The checks' results for one message: recorded with it (audit `mail_authentication`), and
/// read back for its mailing's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Authenticity {
    /// The verdict as it is recorded with its message (audit `mail_authentication`).
    pub fn label(&self) -> String {
        match self {
            Authenticity::Authentic => "authentic".to_string(),
            Authenticity::Unproven => "unproven".to_string(),
            Authenticity::Forged(proof) => format!("forged: {proof}"),
            Authenticity::Unavailable(why) => format!("unavailable: {why}"),
        }
    }

    /// A recorded verdict read back; None for a label [`Self::label`] does not write.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "authentic" => Some(Authenticity::Authentic),
            "unproven" => Some(Authenticity::Unproven),
            l => l
                .strip_prefix("forged: ")
                .map(|proof| Authenticity::Forged(proof.into()))
                .or_else(|| l.strip_prefix("unavailable: ").map(|why| Authenticity::Unavailable(why.into()))),
        }
    }
}

/// Pure: the policy above.
pub fn judge(f: &AuthFacts) -> Authenticity {
    if f.trusted_relay || f.dmarc == Outcome::Pass {
        return Authenticity::Authentic;
    }
    let dns_down = f.dmarc == Outcome::TempError || f.spf == Outcome::TempError || f.dkim.iter().any(|(_, o)| *o == Outcome::TempError);
    if dns_down {
        return Authenticity::Unavailable(format!("the DNS did not answer for {}", f.from_domain));
    }
    // DMARC fails only once both DKIM and SPF had their say: without the sending client SPF was
    // never asked, and a missing SPF pass proves nothing.
    if f.dmarc == Outcome::Fail && f.client.is_some() && matches!(f.policy, DomainPolicy::Quarantine | DomainPolicy::Reject) {
        let client = f.client.map(|c| c.to_string()).unwrap_or_default();
        return Authenticity::Forged(format!(
            "DMARC fails for {}: no DKIM signature of the domain verifies and SPF does not allow the sending server {client}; the domain asks to {} such mail",
            f.from_domain,
            if f.policy == DomainPolicy::Reject { "reject" } else { "quarantine" }
        ));
    }
    Authenticity::Unproven
}

/// The fields called `name` of the message's header, unfolded, topmost first.
fn fields(message: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("").split("\n\n").next().unwrap_or("");
    let mut found: Vec<String> = Vec::new();
    let mut inside = false;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if inside && let Some(value) = found.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        inside = false;
        if let Some((field, value)) = line.split_once(':')
            && field.trim().eq_ignore_ascii_case(name)
        {
            found.push(value.trim().to_string());
            inside = true;
        }
    }
    found
}

/// The sending client's address and HELO name, as a receiving server records them in a
/// `Received:` field: `from HELO (name [192.0.2.1]) by ...`. The address is read inside the
/// parentheses, which the server writes: the HELO name is the sender's to choose (it may be
/// `[192.0.2.1]` itself).
fn client_of(received: &str) -> Option<(IpAddr, String)> {
    let rest = received.strip_prefix("from ")?;
    let (helo, after) = rest.split_once(' ')?;
    let comment = after.trim_start().strip_prefix('(')?.split(')').next()?;
    let address = comment.rsplit('[').next()?.split(']').next()?;
    let ip = address.trim_start_matches("IPv6:").parse::<IpAddr>().ok()?;
    Some((ip, helo.to_string()))
}

/// The client that handed the message to the bureau's mail system: the topmost `Received:`
/// field's, past hops on the machine itself (a filter re-injecting mail from 127.0.0.1, local
/// delivery).
pub fn first_hop(message: &[u8]) -> Option<(IpAddr, String)> {
    fields(message, "Received").iter().filter_map(|r| client_of(r)).find(|(ip, _)| !ip.is_loopback())
}

/// The envelope sender (`Return-Path: <a@b>`), when the delivering server wrote it.
fn return_path(message: &[u8]) -> Option<String> {
    let raw = fields(message, "Return-Path").into_iter().next()?;
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

    #[test]
    fn a_recorded_verdict_reads_back_as_it_was() {
        let verdicts = [
            Authenticity::Authentic,
            Authenticity::Unproven,
            Authenticity::Forged("DMARC fails for bailleur-974.example: 198.51.100.9".into()),
            Authenticity::Unavailable("DNS timeout".into()),
        ];
        for v in verdicts {
            assert_eq!(Authenticity::from_label(&v.label()), Some(v.clone()), "{}", v.label());
        }
        assert_eq!(Authenticity::from_label("forged"), None, "a label the intake does not write");
    }

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
        assert!(matches!(judge(&facts(O::Fail, Reject, &[], O::Fail)), Authenticity::Forged(p) if p.contains("DMARC") && p.contains("reject")));
        assert!(matches!(judge(&facts(O::Fail, Quarantine, &[], O::None)), Authenticity::Forged(_)));
        // A domain that asks nothing of receivers, or none at all: no proof either way.
        assert_eq!(judge(&facts(O::Fail, None, &[], O::Fail)), Authenticity::Unproven);
        assert_eq!(judge(&facts(O::None, Absent, &[], O::None)), Authenticity::Unproven);
        // A broken signature, or an SPF failure, alone proves nothing.
        assert_eq!(judge(&facts(O::None, Absent, &[("bailleur-974.example", O::Fail)], O::None)), Authenticity::Unproven);
        assert_eq!(judge(&facts(O::None, Absent, &[], O::Fail)), Authenticity::Unproven);
        // Without the sending client, SPF was never asked: a DMARC failure is no proof.
        let mut unknown_client = facts(O::Fail, Reject, &[], O::None);
        unknown_client.client = Option::None;
        assert_eq!(judge(&unknown_client), Authenticity::Unproven);
        // The DNS did not answer: judged later, even when something else failed.
        assert!(matches!(judge(&facts(O::TempError, Absent, &[], O::None)), Authenticity::Unavailable(_)));
        assert!(matches!(judge(&facts(O::Fail, Reject, &[("bailleur-974.example", O::TempError)], O::Fail)), Authenticity::Unavailable(_)));
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
        // The HELO name is the sender's to choose; the address is the one in the parentheses.
        let lying =
            b"Received: from [192.0.2.7] (unknown [198.51.100.9]) by mx.bureau.example; Thu, 3 Dec 2026 10:00:00 +0100\r\nFrom: x@y.example\r\n\r\nb\r\n";
        assert_eq!(first_hop(lying).map(|(ip, _)| ip.to_string()).as_deref(), Some("198.51.100.9"));
        // A filter re-injecting on the machine itself is passed over.
        let filtered = b"Received: from localhost (localhost [127.0.0.1]) by mx.bureau.example; x\r\nReceived: from mail.y.example (mail.y.example [192.0.2.7]) by mx.bureau.example; x\r\nFrom: x@y.example\r\n\r\nb\r\n";
        assert_eq!(first_hop(filtered).map(|(ip, _)| ip.to_string()).as_deref(), Some("192.0.2.7"));
    }
}
