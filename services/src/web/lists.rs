//! The list of mailings people work from: a counter's own on the portal, all of them on the
//! console. Each mailing is titled by what people know of it (its file or batch name, its
//! requests' numéros, its counter) with its piece and page counts; one search box takes a
//! numéro (or its start), the applicant's name (or its start) or part of a file name, a date
//! field narrows to one day of reception, and the list comes fifty at a time.

use chrono::{Duration, NaiveDate, Utc};
use maud::{Markup, html};

use scanbureau_pipeline::calendar::WorkingCalendar;

use super::page::{channel_label, mailing_status_label, time_left, url, when};
use super::{Fields, field};
use crate::bureau::Bureau;
use crate::store::desk::{MailingRow, MailingSearch};

/// Mailings a page of the list shows.
pub const PAGE: i64 = 50;

/// The longest search text taken (a numéro is 18 characters, a name or file name rarely 60).
const MAX_TEXT: usize = 60;

/// What the list's form asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub text: Option<String>,
    pub day: Option<NaiveDate>,
    /// From 1.
    pub page: i64,
    /// The date field held something that is not a date (said on the page, not searched).
    pub bad_day: Option<String>,
}

impl ListQuery {
    pub fn from_fields(q: &Fields) -> Self {
        let text = field(q, "q").map(|t| t.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect::<String>());
        let raw_day = field(q, "jour");
        let day = raw_day.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(d, "%d/%m/%Y")).ok());
        let bad_day = raw_day.filter(|_| day.is_none()).map(str::to_string);
        let page = field(q, "page").and_then(|p| p.parse::<i64>().ok()).unwrap_or(1).clamp(1, 10_000);
        Self { text, day, page, bad_day }
    }

    /// The search for this page, one more row than shown (to know whether a next page exists).
    pub fn search(&self, guichet: Option<&str>, calendar: &WorkingCalendar) -> MailingSearch {
        let midnight = |d: NaiveDate| calendar.day_start(d).with_timezone(&Utc);
        MailingSearch {
            guichet: guichet.map(str::to_string),
            text: self.text.clone(),
            received: self.day.map(|d| (midnight(d), midnight(d + Duration::days(1)))),
            offset: (self.page - 1) * PAGE,
            limit: PAGE + 1,
        }
    }

    fn filtered(&self) -> bool {
        self.text.is_some() || self.day.is_some()
    }

    /// The list's address for another page of the same search.
    fn link(&self, base: &str, page: i64) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.text {
            parts.push(format!("q={}", url(t)));
        }
        if let Some(d) = self.day {
            parts.push(format!("jour={d}"));
        }
        parts.push(format!("page={page}"));
        format!("{base}?{}", parts.join("&"))
    }
}

/// The search form, the list and its paging. `rows` holds up to `PAGE + 1` rows (the extra one
/// says there is a next page); `staff` adds the counter's column.
pub fn mailing_list(b: &Bureau, base: &str, q: &ListQuery, rows: &[MailingRow], staff: bool) -> Markup {
    let more = rows.len() as i64 > PAGE;
    let shown = &rows[..rows.len().min(PAGE as usize)];
    html! {
        form.search method="get" action=(base) role="search" {
            label { "Chercher " input type="search" name="q" value=(q.text.as_deref().unwrap_or("")) maxlength=(MAX_TEXT)
                placeholder="numéro, nom du demandeur, fichier"; }
            " "
            label { "reçu le " input type="date" name="jour" value=(q.day.map(|d| d.to_string()).unwrap_or_default()); }
            " "
            button type="submit" { "Chercher" }
            @if q.filtered() { " " a href=(base) { "Tout afficher" } }
        }
        @if let Some(d) = &q.bad_day { p.error role="alert" { "« " (d) " » n'est pas une date (JJ/MM/AAAA) : le jour n'a pas été pris en compte." } }
        @if shown.is_empty() {
            p.muted { @if q.filtered() { "Aucun pli ne correspond à cette recherche." } @else { "Aucun pli pour l'instant." } }
        } @else {
            (mailings_table(b, shown, staff))
        }
        @if q.page > 1 || more {
            nav.paging aria-label="pages de la liste" {
                @if q.page > 1 { a rel="prev" href=(q.link(base, q.page - 1)) { "← plus récents" } }
                span { "page " (q.page) }
                @if more { a rel="next" href=(q.link(base, q.page + 1)) { "plus anciens →" } }
            }
        }
    }
}

/// The numéros of a mailing, the first three and how many more.
fn numeros_label(numeros: &[String]) -> String {
    match numeros.len() {
        0 => "—".into(),
        n if n <= 3 => numeros.join(", "),
        n => format!("{} et {} autres", numeros[..3].join(", "), n - 3),
    }
}

fn mailings_table(b: &Bureau, rows: &[MailingRow], staff: bool) -> Markup {
    let now = Utc::now();
    html! {
        table.mailings {
            thead { tr {
                th { "Pli" } th { "Demandes" } th { "Canal" }
                @if staff { th { "Guichet" } }
                th { "Reçu le" } th { "État" } th { "Échéance" } th { "Temps restant" } th { "Pièces" } th { "Pages" }
            } }
            tbody {
                @for m in rows {
                    @let open = m.status != "done";
                    tr.late[open && m.due_at < now] data-mailing=(m.id) {
                        td {
                            a href={ "/mailings/" (url(&m.id)) } { (m.title) }
                            @if m.files > 1 { " (" (m.files) " fichiers)" }
                            br; span.muted.small { (m.id) }
                        }
                        td.numeros { (numeros_label(&m.numeros)) }
                        td { (channel_label(&m.channel)) }
                        @if staff { td { (m.guichet.as_deref().unwrap_or("—")) } }
                        td { (when(&m.received_at, &b.site)) }
                        td class={ "state state-" (m.status) } {
                            @match (m.status.as_str(), &m.outcome) { ("done", Some(o)) => (mailing_status_label(o)), (s, _) => (mailing_status_label(s)) }
                        }
                        td { (when(&m.due_at, &b.site)) }
                        td { @if open { (time_left(&m.due_at, &now)) } @else { "—" } }
                        td { (m.pieces) }
                        td { @match m.pages { Some(p) => (p), None => "—" } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanbureau_pipeline::calendar::Subdivision;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_form_s_fields_become_one_search() {
        let calendar = WorkingCalendar::new(Subdivision::Metropole);
        let q = ListQuery::from_fields(&fields(&[("q", "  dupont "), ("jour", "04/12/2026"), ("page", "3")]));
        assert_eq!((q.text.as_deref(), q.page, q.bad_day.as_deref()), (Some("dupont"), 3, None));
        let s = q.search(Some("G3533"), &calendar);
        assert_eq!((s.offset, s.limit, s.guichet.as_deref()), (100, PAGE + 1, Some("G3533")));
        // The day is the site's: midnight in Paris (UTC+1 in December) to the next midnight.
        let (from, to) = s.received.expect("a day");
        assert_eq!((from.to_rfc3339(), to.to_rfc3339()), ("2026-12-03T23:00:00+00:00".to_string(), "2026-12-04T23:00:00+00:00".to_string()));
        assert_eq!(q.link("/portal", 4), "/portal?q=dupont&jour=2026-12-04&page=4");

        // Nothing asked: the first page of everything; a wrong date is said, not searched.
        let none = ListQuery::from_fields(&Fields::new());
        assert_eq!(none, ListQuery { page: 1, ..Default::default() });
        assert!(none.search(None, &calendar).received.is_none());
        let bad = ListQuery::from_fields(&fields(&[("jour", "hier"), ("page", "-2")]));
        assert_eq!((bad.day, bad.bad_day.as_deref(), bad.page), (None, Some("hier"), 1));
        let long = ListQuery::from_fields(&fields(&[("q", &"x".repeat(500))]));
        assert_eq!(long.text.map(|t| t.len()), Some(MAX_TEXT));
    }

    #[test]
    fn many_numeros_are_summed_up() {
        let n = |k: usize| (0..k).map(|i| format!("N{i}")).collect::<Vec<_>>();
        assert_eq!(numeros_label(&n(0)), "—");
        assert_eq!(numeros_label(&n(2)), "N0, N1");
        assert_eq!(numeros_label(&n(5)), "N0, N1, N2 et 2 autres");
    }
}
