//! The supervisors' SLA dashboard: backlog by stage and channel, mailings due today, tomorrow
//! and late (per counter and département, with the time left), throughput, rejection reasons,
//! open incidents; the mailings at risk, which can be prioritised; the period's CSV export.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{Duration, NaiveDate, Utc};

use super::access::{CheckedForm, SignedIn, Staff, Supervisors};
use super::charts;
use super::forecast::{self, Queued};
use super::page::{channel_label, esc, status_label, time_left, url, when};
use super::portal::reason_label;
use super::{Answer, Fields, WebError, field};
use crate::accounts::Role;
use crate::broker::Stage;
use crate::bureau::{Bureau, job_message};
use crate::store::desk;

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new().route("/dashboard", get(dashboard)).route("/dashboard/prioritise/{id}", post(prioritise)).route("/dashboard/export.csv", get(export))
}

/// Rows of the long lists (mailings at risk, open mailings); the rest is counted.
const SHOWN: usize = 100;

/// The due-date buckets of the histogram, in hours left (upper bounds).
const DUE_BUCKETS: [(&str, i64); 6] = [("en retard", 0), ("< 4 h", 4), ("4–8 h", 8), ("8–24 h", 24), ("1–2 j", 48), ("> 2 j", i64::MAX)];

async fn dashboard(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (d, open, incidents, waiting) = tokio::try_join!(
        desk::dashboard(&b.pool),
        desk::open_mailings(&b.pool),
        crate::store::people::incidents(&b.pool, &s.account, true),
        crate::store::waiting(&b.pool)
    )?;
    let now = Utc::now();
    let calendar = b.site.calendar();
    let local_today = calendar.localise(now.fixed_offset()).date_naive();
    let day_of = |t: &chrono::DateTime<Utc>| calendar.localise(t.fixed_offset()).date_naive();

    // The forecast, in the queue's order.
    let rate = forecast::throughput(d.processing.0, d.processing.1, b.config.web.nominal_pages_per_hour);
    let measured = rate != b.config.web.nominal_pages_per_hour;
    let queue: Vec<Queued> =
        open.iter().map(|m| Queued { id: m.id.clone(), due_at: m.due_at, pages: forecast::pages_of(m.pages, m.bytes, d.bytes_per_page) }).collect();
    let forecasts = forecast::forecast(&queue, rate, now, Duration::minutes(b.config.web.risk_margin_minutes));

    let mut p = s.page("Tableau de bord des délais");
    let late = open.iter().filter(|m| m.due_at < now).count();
    let due_today = open.iter().filter(|m| m.due_at >= now && day_of(&m.due_at) == local_today).count();
    let due_tomorrow = open.iter().filter(|m| day_of(&m.due_at) == local_today.succ_opt().unwrap_or(local_today)).count();
    let at_risk = forecasts.iter().filter(|f| f.at_risk).count();
    let _ = write!(
        p.body,
        r#"<div class="tiles"><div class="tile{}" id="late"><span>{late}</span>en retard</div><div class="tile"><span>{due_today}</span>dus aujourd'hui</div>
<div class="tile"><span>{due_tomorrow}</span>dus demain</div><div class="tile{}" id="at-risk"><span>{at_risk}</span>à risque</div>
<div class="tile"><span>{}</span>pièces à vérifier</div><div class="tile"><span>{}</span>avis à envoyer</div><div class="tile"><span>{}</span>échecs à traiter</div>
<div class="tile"><span>{}</span>incidents ouverts</div></div>
<p class="muted">Débit retenu pour les prévisions : {:.0} pages/heure ({}). Mis à jour à {}.</p>"#,
        if late > 0 { " alert" } else { "" },
        if at_risk > 0 { " alert" } else { "" },
        d.pieces_in_review,
        d.notices_pending,
        d.dead_letters_open,
        d.incidents_open,
        rate,
        if measured {
            "vitesse de traitement mesurée sur les dernières 24 heures"
        } else {
            "valeur nominale, trop peu de traitement récent pour la mesurer"
        },
        when(&now, &b.site),
    );

    // A server that is down: what waits on it, since when, and what it answered.
    if !waiting.is_empty() {
        p.push(r#"<section class="outage" id="waiting" role="alert"><h2>En attente d'un serveur</h2><p>Ces plis et avis seront repris automatiquement quand le serveur répondra ; rien n'est à refaire.</p><table><thead><tr><th>Serveur</th><th>En attente</th><th>En échec depuis</th><th>Dernière erreur</th></tr></thead><tbody>"#);
        for w in &waiting {
            let what = match (w.kind, w.count) {
                ("notice", 1) => "1 avis".to_string(),
                ("notice", n) => format!("{n} avis"),
                (_, 1) => "1 pli".to_string(),
                (_, n) => format!("{n} plis"),
            };
            let since = w.since.map(|t| format!("{} ({})", when(&t, &b.site), since_label(&t, &now))).unwrap_or_else(|| "—".into());
            let _ = write!(
                p.body,
                r#"<tr data-server="{}" data-kind="{}"><td>{}</td><td>{what}</td><td>{since}</td><td>{}</td></tr>"#,
                w.server,
                w.kind,
                server_label(w.server),
                esc(&w.last_error.chars().take(200).collect::<String>()),
            );
        }
        p.push("</tbody></table></section>");
    }

    // Alerts first: what needs a decision.
    p.push("<h2>Plis à risque</h2>");
    // The most urgent first; a long list is cut (the count says how many more).
    let mut risky: Vec<(&desk::MailingView, &forecast::Forecast)> = open.iter().zip(&forecasts).filter(|(_, f)| f.at_risk).collect();
    risky.sort_by_key(|(m, _)| m.due_at);
    let more_risky = risky.len().saturating_sub(SHOWN);
    risky.truncate(SHOWN);
    if risky.is_empty() {
        p.push(r#"<p class="muted">Aucun pli ne risque de dépasser son échéance au débit actuel.</p>"#);
    } else {
        let csrf = p.csrf_field();
        p.push(r#"<table id="risks"><thead><tr><th>Pli</th><th>Canal</th><th>Guichet</th><th>Échéance</th><th>Temps restant</th><th>Fin prévue</th><th>Priorité</th><th></th></tr></thead><tbody>"#);
        for (m, f) in risky {
            let action = if s.account.role == Role::Supervisor && m.status != "failed" {
                format!(
                    r#"<form method="post" action="/dashboard/prioritise/{}" class="inline">{csrf}<button type="submit">Prioriser</button></form>"#,
                    url(&m.id)
                )
            } else {
                String::new()
            };
            let _ = write!(
                p.body,
                r#"<tr class="{}" data-mailing="{}"><td><a href="/mailings/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>"#,
                if f.late { "late" } else { "risk" },
                esc(&m.id),
                url(&m.id),
                esc(&m.id),
                channel_label(&m.channel),
                esc(m.guichet.as_deref().unwrap_or("—")),
                when(&m.due_at, &b.site),
                esc(&time_left(&m.due_at, &now)),
                when(&f.done_by, &b.site),
                m.priority,
            );
        }
        p.push("</tbody></table>");
        if more_risky > 0 {
            let _ = write!(p.body, r#"<p class="muted">… et {more_risky} autres plis à risque.</p>"#);
        }
    }

    // Backlog by stage and channel.
    p.push(r#"<div class="columns"><section><h2>Stock par étape et canal</h2><table><thead><tr><th>Étape</th><th>Papier</th><th>Portail</th><th>Messagerie</th></tr></thead><tbody>"#);
    for status in ["received", "processing", "failed"] {
        let n = |c: &str| d.backlog.iter().find(|(s, ch, _)| s == status && ch == c).map(|x| x.2).unwrap_or(0);
        let _ = write!(p.body, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", status_label(status), n("paper"), n("portal"), n("mail"));
    }
    let _ = write!(
        p.body,
        "<tr><td>pièces à vérifier</td><td colspan=\"3\">{}</td></tr><tr><td>avis à envoyer</td><td colspan=\"3\">{}</td></tr></tbody></table></section>",
        d.pieces_in_review, d.notices_pending
    );

    // Per counter and département.
    let mut per: BTreeMap<(String, String), (usize, usize, usize, usize)> = BTreeMap::new();
    for m in &open {
        let e = per.entry((m.departement.clone().unwrap_or_else(|| "—".into()), m.guichet.clone().unwrap_or_else(|| "—".into()))).or_default();
        e.0 += 1;
        if m.due_at < now {
            e.1 += 1;
        } else if day_of(&m.due_at) == local_today {
            e.2 += 1;
        } else if day_of(&m.due_at) == local_today.succ_opt().unwrap_or(local_today) {
            e.3 += 1;
        }
    }
    p.push("<section><h2>Par département et guichet</h2><table><thead><tr><th>Département</th><th>Guichet</th><th>Ouverts</th><th>En retard</th><th>Dus aujourd'hui</th><th>Dus demain</th></tr></thead><tbody>");
    for ((dep, g), (n, l, t, tm)) in &per {
        let _ = write!(
            p.body,
            r#"<tr{}><td>{}</td><td>{}</td><td>{n}</td><td>{l}</td><td>{t}</td><td>{tm}</td></tr>"#,
            if *l > 0 { r#" class="late""# } else { "" },
            esc(dep),
            esc(g)
        );
    }
    if per.is_empty() {
        p.push(r#"<tr><td colspan="6" class="muted">Aucun pli ouvert.</td></tr>"#);
    }
    p.push("</tbody></table></section></div>");

    // Charts.
    let history: Vec<(String, f64)> =
        d.backlog_history.iter().map(|(h, n)| (calendar.localise(h.fixed_offset()).format("%Hh").to_string(), *n as f64)).collect();
    let mut buckets: Vec<(String, f64, bool)> = DUE_BUCKETS.iter().map(|(l, _)| (l.to_string(), 0.0, false)).collect();
    for m in &open {
        let hours = (m.due_at - now).num_minutes() as f64 / 60.0;
        let i = if hours < 0.0 { 0 } else { DUE_BUCKETS.iter().position(|(_, up)| hours < *up as f64).unwrap_or(DUE_BUCKETS.len() - 1) };
        buckets[i].1 += 1.0;
    }
    buckets[0].2 = true;
    buckets[1].2 = true;
    let through: Vec<(String, f64, bool)> =
        d.throughput.iter().map(|(h, _, pages)| (calendar.localise(h.fixed_offset()).format("%Hh").to_string(), *pages as f64, false)).collect();
    let _ = write!(
        p.body,
        r#"<div class="columns"><section><h2>Stock sur 48 heures</h2>{}</section><section><h2>Échéances des plis ouverts</h2>{}</section></div>
<div class="columns"><section><h2>Pages traitées par heure</h2>{}</section><section><h2>Motifs de refus (30 jours)</h2>"#,
        charts::line("Plis ouverts, heure par heure", &history),
        charts::bars("Plis ouverts par temps restant avant échéance", &buckets),
        charts::bars("Pages traitées par heure, dernières 24 heures", &through),
    );
    if d.rejections.is_empty() {
        p.push(r#"<p class="muted">Aucune page refusée.</p>"#);
    } else {
        p.push("<table><thead><tr><th>Motif</th><th>Pages</th></tr></thead><tbody>");
        for (reason, n) in &d.rejections {
            let _ = write!(p.body, "<tr><td>{}</td><td>{n}</td></tr>", esc(&reason_label(reason)));
        }
        p.push("</tbody></table>");
    }
    p.push("</section></div>");

    // The open mailings due first, with their time left.
    let mut soonest: Vec<(&desk::MailingView, &forecast::Forecast)> = open.iter().zip(&forecasts).collect();
    soonest.sort_by_key(|(m, _)| m.due_at);
    let _ = write!(
        p.body,
        r#"<h2>Plis ouverts ({}{})</h2><table id="open"><thead><tr><th>Pli</th><th>Canal</th><th>Département</th><th>Guichet</th><th>État</th><th>Échéance</th><th>Temps restant</th><th>Fin prévue</th></tr></thead><tbody>"#,
        open.len(),
        if open.len() > SHOWN { format!(", les {SHOWN} plus proches de leur échéance") } else { String::new() }
    );
    for (m, f) in soonest.into_iter().take(SHOWN) {
        let _ = write!(
            p.body,
            r#"<tr class="{}" data-mailing="{}"><td><a href="/mailings/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            if f.late {
                "late"
            } else if f.at_risk {
                "risk"
            } else {
                ""
            },
            esc(&m.id),
            url(&m.id),
            esc(&m.id),
            channel_label(&m.channel),
            esc(m.departement.as_deref().unwrap_or("—")),
            esc(m.guichet.as_deref().unwrap_or("—")),
            esc(status_label(&m.status)),
            when(&m.due_at, &b.site),
            esc(&time_left(&m.due_at, &now)),
            when(&f.done_by, &b.site),
        );
    }
    p.push("</tbody></table>");
    if !incidents.is_empty() {
        let _ = write!(p.body, r#"<h2>Incidents ouverts</h2><p><a href="/console/incidents">{} fiche(s) incident à traiter</a></p>"#, incidents.len());
    }
    let month_ago = (local_today - Duration::days(30)).format("%Y-%m-%d");
    let _ = write!(
        p.body,
        r#"<h2>Export</h2><form method="get" action="/dashboard/export.csv" class="inline"><label>Du <input type="date" name="from" value="{month_ago}"></label> <label>au <input type="date" name="to" value="{}"></label> <button type="submit">Exporter les chiffres (CSV)</button></form>"#,
        local_today.format("%Y-%m-%d")
    );
    Ok(p.into_response())
}

/// The servers as the bureau's people name them.
fn server_label(server: &str) -> &'static str {
    match server {
        "s3" => "Stockage des fichiers (S3)",
        "smtp" => "Serveur de messagerie (SMTP)",
        "database" => "Base de données",
        "broker" => "File de messages (RabbitMQ)",
        _ => "Autre erreur",
    }
}

/// "il y a 2 h 05 min", "à l'instant".
fn since_label(t: &chrono::DateTime<Utc>, now: &chrono::DateTime<Utc>) -> String {
    if (*now - *t).num_seconds() < 60 { "à l'instant".into() } else { format!("il y a {}", time_left(now, t)) }
}

async fn prioritise(State(b): State<Arc<Bureau>>, Path(id): Path<String>, CheckedForm { signed: s, .. }: CheckedForm<Supervisors>) -> Answer {
    match desk::prioritise(&b.pool, &id, &s.account.actor()).await {
        Ok(true) => {
            // The urgent queue is consumed beside the ordinary one: the mailing is taken as soon
            // as a worker has a free hand. Its place in the ordinary queue is then a no-op.
            if let Err(e) = b.broker.publish(Stage::Urgent, &job_message(&id)).await {
                tracing::warn!(mailing = %id, error = %e, "priority recorded but not queued; it keeps its place in the queue");
            }
            tracing::info!(mailing = %id, by = %s.account.email, "mailing prioritised");
            Ok(Redirect::to("/dashboard").into_response())
        }
        Ok(false) => Err(s.error(StatusCode::CONFLICT, "Ce pli est déjà traité ou n'existe pas.")),
        Err(e) => Err(WebError::unavailable(e)),
    }
}

/// `GET /dashboard/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD`: one line a day.
async fn export(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Query(q): Query<Fields>) -> Answer {
    let today = Utc::now().date_naive();
    let parse = |k: &str, default: NaiveDate| field(&q, k).map(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d")).unwrap_or(Ok(default));
    let (from, to) = match (parse("from", today - Duration::days(30)), parse("to", today)) {
        (Ok(f), Ok(t)) if f <= t && (t - f).num_days() <= 366 => (f, t),
        _ => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Période invalide : dates AAAA-MM-JJ, début avant fin, un an au plus.")),
    };
    let days = desk::figures_by_day(&b.pool, from, to).await?;
    let mut csv = String::from(
        "date,plis_recus,plis_traites,plis_traites_en_retard,pages_traitees,pieces_deposees,pieces_refusees,pieces_en_verification,incidents_ouverts\n",
    );
    for d in days {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            d.day, d.received, d.done, d.done_late, d.pages, d.pieces_filed, d.pieces_rejected, d.pieces_review, d.incidents_opened
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"scanbureau-{from}-{to}.csv\"")),
        ],
        csv,
    )
        .into_response())
}
