//! Alerts to the bureau's own people, raised and sent by the sweeper: the supervisors hear of
//! the mailings that become at risk of missing their due date, then of those that become late
//! (once per mailing and state, all those of one sweep in one e-mail); the operators hear of
//! each incident a counter opens. Like a notice, an alert counts as sent once the SMTP server
//! accepted it; it is tried again at every sweep and given up after [`GIVE_UP_AFTER`], which
//! the log, the metrics and the dashboard say.

use chrono::{DateTime, Duration, Utc};
use mail_builder::MessageBuilder;
use scanbureau_pipeline::config::SiteConfig;

use crate::bureau::Bureau;
use crate::store::{self, alerts as outbox, desk};
use crate::web::forecast::{self, Forecast};
use crate::web::page::{channel_label, when};

/// How long an alert is tried before it is given up: past a day, a mailing's state has moved on.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);

/// What an alert tells of a mailing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailingState {
    AtRisk,
    Late,
}

impl MailingState {
    pub fn of(f: &Forecast) -> Option<Self> {
        if f.late {
            Some(Self::Late)
        } else if f.at_risk {
            Some(Self::AtRisk)
        } else {
            None
        }
    }

    /// The key an alert is recorded under: once per mailing and state.
    pub fn subject(self, mailing: &str) -> String {
        format!("mailing:{mailing}:{}", if self == Self::Late { "late" } else { "at_risk" })
    }

    fn label(self) -> &'static str {
        if self == Self::Late { "en retard" } else { "à risque" }
    }
}

/// One mailing an alert tells of.
#[derive(Debug, Clone)]
pub struct MailingAlert<'a> {
    pub mailing: &'a desk::MailingView,
    pub state: MailingState,
    /// When the forecast says it will be done.
    pub done_by: DateTime<Utc>,
}

/// A link to a page, whole when the bureau's address is known.
fn link(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}

fn message(site: &SiteConfig, to: &[String], subject: &str, body: String, key: &str, now: DateTime<Utc>) -> Vec<u8> {
    MessageBuilder::new()
        .from((site.site.name.as_str(), site.site.bureau_email.as_str()))
        .to(to.iter().map(String::as_str).collect::<Vec<_>>())
        .subject(subject)
        .message_id(format!("alert.{key}@scanbureau"))
        .date(now.timestamp())
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default()
}

/// The supervisors' e-mail: the mailings that became late, then those at risk, most urgent first.
pub fn mailings_message(site: &SiteConfig, to: &[String], items: &[MailingAlert<'_>], public_url: &str, now: DateTime<Utc>) -> Vec<u8> {
    let mut items: Vec<&MailingAlert<'_>> = items.iter().collect();
    items.sort_by_key(|a| (a.state != MailingState::Late, a.mailing.due_at));
    let count = |state: MailingState| items.iter().filter(|a| a.state == state).count();
    let plural = |n: usize, one: &str, many: &str| if n > 1 { format!("{n} {many}") } else { format!("{n} {one}") };
    let mut parts = Vec::new();
    if count(MailingState::Late) > 0 {
        parts.push(plural(count(MailingState::Late), "pli en retard", "plis en retard"));
    }
    if count(MailingState::AtRisk) > 0 {
        parts.push(plural(count(MailingState::AtRisk), "pli à risque", "plis à risque"));
    }
    let subject = format!("Échéances : {}", parts.join(", "));
    let mut body = format!("Bonjour,\n\n{} :\n\n", parts.join(" et "));
    for a in &items {
        let m = a.mailing;
        body.push_str(&format!(
            "- {} : « {} » ({}{}), reçu le {}, échéance le {}, fin prévue le {}\n  {}\n",
            a.state.label(),
            m.title,
            channel_label(&m.channel),
            m.guichet.as_deref().map(|g| format!(", guichet {g}")).unwrap_or_default(),
            when(&m.received_at, site),
            when(&m.due_at, site),
            when(&a.done_by, site),
            link(public_url, &format!("/mailings/{}", m.id)),
        ));
    }
    body.push_str(&format!(
        "\nUn pli en retard a dépassé son échéance ; un pli à risque, au débit actuel du bureau, serait traité trop près de la sienne.\nLe tableau de bord montre la file et permet de rendre un pli prioritaire : {}\n\n-- \n{}\n",
        link(public_url, "/dashboard"),
        site.site.name
    ));
    let key = items.first().map(|a| a.state.subject(&a.mailing.id)).unwrap_or_default();
    message(site, to, &subject, body, &key.replace(':', "."), now)
}

/// The operators' e-mail about an incident a counter opened (what it is about, not its text:
/// the page says it to whoever signs in).
pub fn incident_message(site: &SiteConfig, to: &[String], incident: &outbox::NewIncident, public_url: &str, now: DateTime<Utc>) -> Vec<u8> {
    let kind = store::people::incident_kind_label(&incident.kind);
    let subject = format!("Incident ouvert par le guichet {} : {kind}", incident.guichet);
    let about = incident.mailing_id.as_deref().map(|m| format!("\nPli concerné : {}\n", link(public_url, &format!("/mailings/{m}")))).unwrap_or_default();
    let body = format!(
        "Bonjour,\n\nLe guichet {} a ouvert un incident le {} : {kind}.\n{about}\nPour le lire et y répondre : {}\n\n-- \n{}\n",
        incident.guichet,
        when(&incident.created_at, site),
        link(public_url, "/console/incidents"),
        site.site.name
    );
    message(site, to, &subject, body, &format!("incident.{}", incident.id), now)
}

/// Queues the alerts of what became new since the last sweep.
pub async fn raise(b: &Bureau, now: DateTime<Utc>) -> anyhow::Result<()> {
    let public_url = &b.config.web.public_url;
    let from = &b.site.site.bureau_email;
    let open = desk::open_mailings(&b.pool).await?;
    let recent = desk::recent_throughput(&b.pool).await?;
    let (_, forecasts) = forecast::of_open(&open, &recent, b.config.web.nominal_pages_per_hour, Duration::minutes(b.config.web.risk_margin_minutes), now);
    // Each mailing at risk or late, under the key it is alerted once by.
    let candidates: Vec<(String, MailingAlert<'_>)> = open
        .iter()
        .zip(&forecasts)
        .filter_map(|(m, f)| MailingState::of(f).map(|state| (state.subject(&m.id), MailingAlert { mailing: m, state, done_by: f.done_by })))
        .collect();
    if !candidates.is_empty() {
        let keys: Vec<String> = candidates.iter().map(|(k, _)| k.clone()).collect();
        let told = outbox::alerted(&b.pool, &keys).await?;
        let (subjects, new): (Vec<String>, Vec<MailingAlert<'_>>) = candidates.into_iter().filter(|(k, _)| !told.contains(k)).unzip();
        if !new.is_empty() {
            let supervisors = outbox::staff_addresses(&b.pool, "supervisor").await?;
            if supervisors.is_empty() {
                tracing::warn!(mailings = new.len(), "mailings at risk or late, and no supervisor account to alert");
            } else {
                let eml = mailings_message(&b.site, &supervisors, &new, public_url, now);
                if outbox::queue_alert(&b.pool, "mailings", &subjects, &supervisors, from, &eml, &b.actor).await? {
                    tracing::info!(mailings = new.len(), "alert queued for the supervisors");
                }
            }
        }
    }
    let incidents = outbox::incidents_not_alerted(&b.pool).await?;
    if !incidents.is_empty() {
        let operators = outbox::staff_addresses(&b.pool, "operator").await?;
        if operators.is_empty() {
            tracing::warn!(incidents = incidents.len(), "incidents opened, and no operator account to alert");
        } else {
            for i in &incidents {
                let eml = incident_message(&b.site, &operators, i, public_url, now);
                outbox::queue_alert(&b.pool, "incident", &[format!("incident:{}", i.id)], &operators, from, &eml, &b.actor).await?;
            }
        }
    }
    Ok(())
}

/// Sends the alerts waiting: a refusal or an alert older than [`GIVE_UP_AFTER`] is given up.
pub async fn send_pending(b: &Bureau, now: DateTime<Utc>) -> anyhow::Result<()> {
    for id in outbox::pending_alerts(&b.pool).await? {
        let mut tx = b.pool.begin().await?;
        let Some(a) = outbox::lock_pending_alert(&mut tx, id).await? else { continue };
        let sending = std::time::Instant::now();
        let sent = b.mailer.send(&a.sender, &a.recipients, &a.message).await;
        b.metrics.call("smtp", "send", sent.is_ok(), sending.elapsed());
        match sent {
            Ok(()) => {
                outbox::alert_sent(&mut tx, &a, &b.actor).await?;
                tx.commit().await?;
                tracing::info!(alert = id, recipients = a.recipients.len(), "alert sent");
            }
            Err(e) => {
                let give_up = e.is_permanent() || now - a.created_at > GIVE_UP_AFTER;
                outbox::alert_failed(&mut tx, &a, &e.to_string(), give_up, &b.actor).await?;
                tx.commit().await?;
                b.metrics.failure("alert", if give_up { "given up" } else { "smtp unavailable" });
                if give_up {
                    tracing::error!(alert = id, error = %e, "alert given up");
                } else {
                    tracing::warn!(alert = id, error = %e, "alert not sent; tried again at the next sweep");
                    // The server is down: the others would fail the same way.
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, title: &str, due: DateTime<Utc>) -> desk::MailingView {
        desk::MailingView {
            id: id.into(),
            channel: "portal".into(),
            source: "portal:agent@example.fr".into(),
            status: "received".into(),
            outcome: None,
            received_at: due - Duration::hours(48),
            due_at: due,
            done_at: None,
            pages: Some(12),
            numero_unique: None,
            guichet: Some("G093001".into()),
            departement: Some("93".into()),
            priority: 0,
            last_error: None,
            bytes: 0,
            notify: None,
            title: title.into(),
        }
    }

    #[test]
    fn the_supervisors_e_mail_names_each_mailing_late_first_with_its_link() {
        let site = SiteConfig::embedded_default();
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").expect("date").to_utc();
        let (risky, late) = (view("m-risky", "depot-lundi.pdf", now + Duration::hours(1)), view("m-late", "lot-0412", now - Duration::hours(2)));
        let items = [
            MailingAlert { mailing: &risky, state: MailingState::AtRisk, done_by: now + Duration::hours(3) },
            MailingAlert { mailing: &late, state: MailingState::Late, done_by: now + Duration::hours(1) },
        ];
        let eml = String::from_utf8(mailings_message(&site, &["chef@bureau.example".into()], &items, "https://bureau.example/", now)).expect("utf-8");
        let text = mail_parser::MessageParser::default().parse(eml.as_bytes()).expect("parsed");
        assert_eq!(text.subject(), Some("Échéances : 1 pli en retard, 1 pli à risque"));
        let body = text.body_text(0).expect("body");
        let (l, r) = (body.find("« lot-0412 »").expect("late one"), body.find("« depot-lundi.pdf »").expect("risky one"));
        assert!(l < r, "late first: {body}");
        assert!(body.contains("https://bureau.example/mailings/m-late") && body.contains("guichet G093001"), "{body}");
        // Times in the site's time zone (Paris: UTC+1 in December).
        assert!(body.contains("échéance le 03/12/2026 09:00"), "{body}");
    }

    #[test]
    fn a_mailing_is_alerted_under_one_key_per_state() {
        let f = |at_risk, late| Forecast { id: "m-1".into(), done_by: Utc::now(), at_risk, late };
        assert_eq!(MailingState::of(&f(false, false)), None);
        assert_eq!(MailingState::of(&f(true, false)), Some(MailingState::AtRisk));
        assert_eq!(MailingState::of(&f(true, true)), Some(MailingState::Late));
        assert_ne!(MailingState::AtRisk.subject("m-1"), MailingState::Late.subject("m-1"));
    }
}
