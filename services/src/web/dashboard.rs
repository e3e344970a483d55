//! The supervisors' SLA dashboard: backlog by stage and channel, mailings due today, tomorrow
//! and late (per counter and département, with the time left), throughput, rejection reasons,
//! open incidents; the mailings at risk, which can be prioritised; the period's CSV export; each
//! counter's activity over a month, as a chart, a table and CSV.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use maud::{Markup, html};
use scanbureau_pipeline::calendar::WorkingCalendar;

use super::access::{CheckedForm, SignedIn, Staff, Supervisors};
use super::charts;
use super::forecast;
use super::page::{channel_label, mailing_status_label, time_left, url, when};
use super::portal::reason_label;
use super::{Answer, Fields, field};
use crate::accounts::Role;
use crate::bureau::Bureau;
use crate::decisions;
use crate::store::desk;

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/dashboard", get(dashboard))
        .route("/dashboard/prioritise/{id}", post(prioritise))
        .route("/dashboard/export.csv", get(export))
        .route("/dashboard/activite", get(activity))
        .route("/dashboard/activite.csv", get(activity_csv))
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
    let (rate, forecasts) = forecast::of_open(&open, &d.recent, b.config.web.nominal_pages_per_hour, Duration::minutes(b.config.web.risk_margin_minutes), now);
    let measured = rate != b.config.web.nominal_pages_per_hour;

    let late = open.iter().filter(|m| m.due_at < now).count();
    let due_today = open.iter().filter(|m| m.due_at >= now && day_of(&m.due_at) == local_today).count();
    let due_tomorrow = open.iter().filter(|m| day_of(&m.due_at) == local_today.succ_opt().unwrap_or(local_today)).count();
    let at_risk = forecasts.iter().filter(|f| f.at_risk).count();

    // The most urgent first; a long list is cut (the count says how many more).
    let mut risky: Vec<(&desk::MailingView, &forecast::Forecast)> = open.iter().zip(&forecasts).filter(|(_, f)| f.at_risk).collect();
    risky.sort_by_key(|(m, _)| m.due_at);
    let more_risky = risky.len().saturating_sub(SHOWN);
    risky.truncate(SHOWN);

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

    // The open mailings due first, with their time left.
    let mut soonest: Vec<(&desk::MailingView, &forecast::Forecast)> = open.iter().zip(&forecasts).collect();
    soonest.sort_by_key(|(m, _)| m.due_at);
    soonest.truncate(SHOWN);
    let may_prioritise = s.account.role == Role::Supervisor;

    let body = html! {
        div.tiles {
            div.tile.alert[late > 0] #late { span { (late) } "en retard" }
            div.tile { span { (due_today) } "dus aujourd'hui" }
            div.tile { span { (due_tomorrow) } "dus demain" }
            div.tile.alert[at_risk > 0] #at-risk { span { (at_risk) } "à risque" }
            div.tile { span { (d.pieces_in_review) } "pièces à vérifier" }
            div.tile { span { (d.notices_pending) } "avis à envoyer" }
            div.tile { span { (d.dead_letters_open) } "échecs à traiter" }
            div.tile { span { (d.incidents_open) } "incidents ouverts" }
            @if d.originals_due > 0 {
                div.tile.alert #originals-due title="Originaux reçus par erreur à renvoyer au GIP SNE, au plus un mois après leur réception" {
                    span { (d.originals_due) } a href="/console/originaux" { "originaux à renvoyer sous " (desk::ORIGINALS_NOTICE_DAYS) " jours" }
                }
            }
            @if d.alerts_failed > 0 {
                div.tile.alert #alerts-failed title="Alertes aux superviseurs et opérateurs que le serveur de messagerie n'a pas acceptées en 24 heures (voir le journal)" {
                    span { (d.alerts_failed) } "alertes non envoyées"
                }
            }
        }
        p.muted {
            "Débit retenu pour les prévisions : " (format!("{rate:.0}")) " pages/heure ("
            @if measured { "vitesse de traitement mesurée sur les dernières 24 heures" } @else { "valeur nominale, trop peu de traitement récent pour la mesurer" }
            "). Mis à jour à " (when(&now, &b.site)) "."
        }
        @if !waiting.is_empty() { (waiting_section(&b, &waiting, &now)) }

        // Alerts first: what needs a decision.
        h2 { "Plis à risque" }
        @if risky.is_empty() {
            p.muted { "Aucun pli ne risque de dépasser son échéance au débit actuel." }
        } @else {
            table #risks {
                thead { tr {
                    th { "Pli" } th { "Canal" } th { "Guichet" } th { "Échéance" } th { "Temps restant" } th { "Fin prévue" } th { "Priorité" } th {}
                } }
                tbody {
                    @for (m, f) in risky {
                        tr class=(if f.late { "late" } else { "risk" }) data-mailing=(m.id) {
                            td { a href={ "/mailings/" (url(&m.id)) } { (m.id) } }
                            td { (channel_label(&m.channel)) }
                            td { (m.guichet.as_deref().unwrap_or("—")) }
                            td { (when(&m.due_at, &b.site)) }
                            td { (time_left(&m.due_at, &now)) }
                            td { (when(&f.done_by, &b.site)) }
                            td { (m.priority) }
                            td {
                                @if may_prioritise && m.status != "failed" {
                                    form.inline method="post" action={ "/dashboard/prioritise/" (url(&m.id)) } {
                                        (s.csrf_field()) button type="submit" { "Prioriser" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if more_risky > 0 { p.muted { "… et " (more_risky) " autres plis à risque." } }
        }

        div.columns {
            section {
                h2 { "Stock par étape et canal" }
                table {
                    thead { tr { th { "Étape" } th { "Papier" } th { "Portail" } th { "Messagerie" } } }
                    tbody {
                        @for status in ["received", "processing", "failed"] {
                            @let n = |c: &str| d.backlog.iter().find(|(s, ch, _)| s == status && ch == c).map(|x| x.2).unwrap_or(0);
                            tr { td { (mailing_status_label(status)) } td { (n("paper")) } td { (n("portal")) } td { (n("mail")) } }
                        }
                        tr { td { "pièces à vérifier" } td colspan="3" { (d.pieces_in_review) } }
                        tr { td { "avis à envoyer" } td colspan="3" { (d.notices_pending) } }
                    }
                }
            }
            section {
                h2 { "Par département et guichet" }
                table {
                    thead { tr {
                        th { "Département" } th { "Guichet" } th { "Ouverts" } th { "En retard" } th { "Dus aujourd'hui" } th { "Dus demain" }
                    } }
                    tbody {
                        @for ((dep, g), (n, l, t, tm)) in &per {
                            tr.late[*l > 0] { td { (dep) } td { (g) } td { (n) } td { (l) } td { (t) } td { (tm) } }
                        }
                        @if per.is_empty() { tr { td.muted colspan="6" { "Aucun pli ouvert." } } }
                    }
                }
            }
        }

        div.columns {
            section { h2 { "Stock sur 48 heures" } (charts::line("Plis ouverts, heure par heure", &history)) }
            section { h2 { "Échéances des plis ouverts" } (charts::bars("Plis ouverts par temps restant avant échéance", &buckets)) }
        }
        div.columns {
            section { h2 { "Pages traitées par heure" } (charts::bars("Pages traitées par heure, dernières 24 heures", &through)) }
            section {
                h2 { "Motifs de refus (30 jours)" }
                @if d.rejections.is_empty() {
                    p.muted { "Aucune page refusée." }
                } @else {
                    table {
                        thead { tr { th { "Motif" } th { "Pages" } } }
                        tbody { @for (reason, n) in &d.rejections { tr { td { (reason_label(reason)) } td { (n) } } } }
                    }
                }
            }
        }

        h2 { "Plis ouverts (" (open.len()) @if open.len() > SHOWN { ", les " (SHOWN) " plus proches de leur échéance" } ")" }
        table #open {
            thead { tr {
                th { "Pli" } th { "Canal" } th { "Département" } th { "Guichet" } th { "État" } th { "Échéance" } th { "Temps restant" } th { "Fin prévue" }
            } }
            tbody {
                @for (m, f) in soonest {
                    tr class=(if f.late { "late" } else if f.at_risk { "risk" } else { "" }) data-mailing=(m.id) {
                        td { a href={ "/mailings/" (url(&m.id)) } { (m.id) } }
                        td { (channel_label(&m.channel)) }
                        td { (m.departement.as_deref().unwrap_or("—")) }
                        td { (m.guichet.as_deref().unwrap_or("—")) }
                        td { (mailing_status_label(&m.status)) }
                        td { (when(&m.due_at, &b.site)) }
                        td { (time_left(&m.due_at, &now)) }
                        td { (when(&f.done_by, &b.site)) }
                    }
                }
            }
        }
        @if !incidents.is_empty() {
            h2 { "Incidents ouverts" }
            p { a href="/console/incidents" { (incidents.len()) " fiche(s) incident à traiter" } }
        }
        h2 { "Activité des guichets" }
        p { a href="/dashboard/activite" { "Plis, pages, pièces déposées et refusées, délai de traitement : par guichet et par mois" } }
        h2 { "Export" }
        form.inline method="get" action="/dashboard/export.csv" {
            label { "Du " input type="date" name="from" value=((local_today - Duration::days(30)).format("%Y-%m-%d")); }
            " "
            label { "au " input type="date" name="to" value=(local_today.format("%Y-%m-%d")); }
            " "
            button type="submit" { "Exporter les chiffres (CSV)" }
        }
    };
    Ok(s.page("Tableau de bord des délais", body))
}

/// A server that is down: what waits on it, since when, and what it answered.
fn waiting_section(b: &Bureau, waiting: &[crate::store::Waiting], now: &chrono::DateTime<Utc>) -> Markup {
    html! {
        section.outage #waiting role="alert" {
            h2 { "En attente d'un serveur" }
            p { "Ces plis, avis et alertes seront repris automatiquement quand le serveur répondra ; rien n'est à refaire." }
            table {
                thead { tr { th { "Serveur" } th { "En attente" } th { "En échec depuis" } th { "Dernière erreur" } } }
                tbody {
                    @for w in waiting {
                        tr data-server=(w.server) data-kind=(w.kind) {
                            td { (server_label(w.server)) }
                            td {
                                @match (w.kind, w.count) {
                                    ("notice", 1) => "1 avis",
                                    ("notice", n) => { (n) " avis" },
                                    ("alert", 1) => "1 alerte",
                                    ("alert", n) => { (n) " alertes" },
                                    (_, 1) => "1 pli",
                                    (_, n) => { (n) " plis" },
                                }
                            }
                            td { @match w.since { Some(t) => { (when(&t, &b.site)) " (" (since_label(&t, now)) ")" }, None => "—" } }
                            td { (w.last_error.chars().take(200).collect::<String>()) }
                        }
                    }
                }
            }
        }
    }
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
    if !decisions::prioritise(&b, &id, &s.account.actor()).await? {
        return Err(s.error(StatusCode::CONFLICT, "Ce pli est déjà traité ou n'existe pas."));
    }
    Ok(Redirect::to("/dashboard").into_response())
}

/// The month an activity report covers (`mois=AAAA-MM`, the current one by default): its first
/// day and its bounds as instants of the site's time zone.
fn report_month(q: &Fields, calendar: &WorkingCalendar) -> Result<(NaiveDate, DateTime<Utc>, DateTime<Utc>), String> {
    let today = calendar.localise(Utc::now().fixed_offset()).date_naive();
    let first = match field(q, "mois") {
        Some(m) => NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").map_err(|_| format!("« {m} » n'est pas un mois (AAAA-MM)."))?,
        None => today.with_day(1).unwrap_or(today),
    };
    let next = first.checked_add_months(Months::new(1)).ok_or_else(|| "Mois hors de portée.".to_string())?;
    Ok((first, calendar.day_start(first).with_timezone(&Utc), calendar.day_start(next).with_timezone(&Utc)))
}

/// `GET /dashboard/activite?mois=AAAA-MM`: each counter's month, as a chart and a table.
async fn activity(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Query(q): Query<Fields>) -> Answer {
    let (first, from, to) = report_month(&q, &b.site.calendar()).map_err(|e| s.error(StatusCode::UNPROCESSABLE_ENTITY, &e))?;
    let rows = desk::activity_by_counter(&b.pool, from, to).await?;
    let month = first.format("%Y-%m").to_string();
    let busiest: Vec<(String, f64, bool)> = rows.iter().take(15).map(|r| (r.guichet.clone(), r.pages as f64, false)).collect();
    let body = html! {
        form.inline method="get" action="/dashboard/activite" {
            label { "Mois " input type="month" name="mois" value=(month); }
            " " button type="submit" { "Afficher" }
            " " a href={ "/dashboard/activite.csv?mois=" (month) } { "Exporter ce mois (CSV)" }
        }
        @if rows.is_empty() {
            p.muted { "Aucun pli d'un guichet reçu ce mois-là." }
        } @else {
            section {
                h2 { "Pages reçues par guichet" @if rows.len() > 15 { " (les 15 premiers)" } }
                (charts::bars(&format!("Pages reçues par guichet, {month}"), &busiest))
            }
            table #activity {
                thead { tr {
                    th { "Guichet" } th { "Plis" } th { "Pages" } th { "Pièces déposées" } th { "Pièces refusées" } th { "En vérification" }
                    th { "Délai médian" } th { "Pages refusées, par motif" }
                } }
                tbody {
                    @for r in &rows {
                        tr data-guichet=(r.guichet) {
                            td { (r.guichet) } td { (r.mailings) } td { (r.pages) } td { (r.pieces_filed) } td { (r.pieces_refused) } td { (r.pieces_review) }
                            td { @match r.median_hours { Some(h) => (duration_label(h)), None => "—" } }
                            td { @for (reason, n) in &r.refused_pages { (reason_label(reason)) " : " (n) br; } }
                        }
                    }
                }
            }
        }
    };
    Ok(s.page(&format!("Activité des guichets · {month}"), body))
}

/// Hours as people read a delay: "25 min", "3,5 h".
fn duration_label(hours: f64) -> String {
    if hours < 1.0 { format!("{:.0} min", hours * 60.0) } else { format!("{hours:.1} h").replace('.', ",") }
}

/// `GET /dashboard/activite.csv?mois=AAAA-MM`: one line a counter.
async fn activity_csv(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Query(q): Query<Fields>) -> Answer {
    let (first, from, to) = report_month(&q, &b.site.calendar()).map_err(|e| s.error(StatusCode::UNPROCESSABLE_ENTITY, &e))?;
    let rows = desk::activity_by_counter(&b.pool, from, to).await?;
    let month = first.format("%Y-%m");
    let mut csv = String::from("mois,guichet,plis,pages,pieces_deposees,pieces_refusees,pieces_en_verification,delai_median_heures,pages_refusees_par_motif\n");
    for r in &rows {
        let reasons: Vec<String> = r.refused_pages.iter().map(|(code, n)| format!("{code}:{n}")).collect();
        let _ = writeln!(
            csv,
            "{month},{},{},{},{},{},{},{},{}",
            r.guichet,
            r.mailings,
            r.pages,
            r.pieces_filed,
            r.pieces_refused,
            r.pieces_review,
            r.median_hours.map(|h| format!("{h:.2}")).unwrap_or_default(),
            reasons.join(" ")
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"scanbureau-activite-{month}.csv\"")),
        ],
        csv,
    )
        .into_response())
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

#[cfg(test)]
mod tests {
    use super::*;
    use scanbureau_pipeline::calendar::Subdivision;

    #[test]
    fn a_report_month_runs_from_local_midnight_to_local_midnight() {
        let calendar = WorkingCalendar::new(Subdivision::Metropole);
        let q: Fields = [("mois".to_string(), "2026-03".to_string())].into_iter().collect();
        let (first, from, to) = report_month(&q, &calendar).expect("a month");
        assert_eq!(first, NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"));
        // Paris: winter time on 1 March, summer time on 1 April.
        assert_eq!((from.to_rfc3339(), to.to_rfc3339()), ("2026-02-28T23:00:00+00:00".to_string(), "2026-03-31T22:00:00+00:00".to_string()));
        let q: Fields = [("mois".to_string(), "mars".to_string())].into_iter().collect();
        assert_eq!(report_month(&q, &calendar).expect_err("not a month"), "« mars » n'est pas un mois (AAAA-MM).");
        let (first, ..) = report_month(&Fields::new(), &calendar).expect("this month");
        assert_eq!(first.day(), 1);
        assert_eq!((duration_label(0.05), duration_label(3.5)), ("3 min".to_string(), "3,5 h".to_string()));
    }
}
