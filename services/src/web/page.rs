//! Server-rendered HTML with maud: the page layout with its role's menu, the error page, and
//! small formatting helpers. Every value written into a page is escaped by maud; markup from
//! elsewhere can only get in through `PreEscaped`, which the web code does not use.

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use crate::accounts::{Account, Role};

/// A value as a page's source shows it (escaped): what tests look for in a page.
pub fn esc(s: &str) -> String {
    html! { (s) }.into_string()
}

/// Escapes a value for a URL path segment or query value.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The hidden field every form that changes something carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// The menu of a role, in the order its people use it.
fn menu(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Counter => {
            &[("/portal", "Mes plis et dépôts"), ("/portal/slips", "Imprimer une fiche ou un bordereau"), ("/portal/incidents", "Fiches incident")]
        }
        Role::Operator => &[
            ("/console", "Lots"),
            ("/console/review", "À vérifier"),
            ("/console/failed", "Échecs"),
            ("/console/incidents", "Incidents"),
            ("/console/originaux", "Originaux"),
            ("/dashboard", "Tableau de bord"),
        ],
        Role::Supervisor => &[
            ("/dashboard", "Tableau de bord"),
            ("/console", "Lots"),
            ("/console/review", "À vérifier"),
            ("/console/failed", "Échecs"),
            ("/console/incidents", "Incidents"),
            ("/console/originaux", "Originaux"),
        ],
        Role::Admin => &[("/admin/comptes", "Comptes")],
    }
}

/// A whole page: the layout with the signed-in person's menu (none on the sign-in page) around
/// `body`, under the title `title`.
pub fn layout(title: &str, account: Option<&Account>, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · scanbureau" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    strong { "scanbureau" }
                    nav {
                        @if let Some(a) = account {
                            @for (href, label) in menu(a.role) { a href=(href) { (label) } }
                            a.who href="/account" {
                                (if a.display_name.is_empty() { &a.email } else { &a.display_name })
                                @if let Some(g) = &a.guichet { " · guichet " (g) }
                            }
                            form.inline method="post" action="/logout" { (csrf_field(csrf)) button type="submit" { "Se déconnecter" } }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page answered with its status.
pub fn page(code: StatusCode, title: &str, account: Option<&Account>, csrf: &str, body: Markup) -> Response {
    (code, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], layout(title, account, csrf, body).into_string()).into_response()
}

/// A sentence that says what went wrong (or went well) at the top of a page.
pub fn alert(class: &str, message: &str) -> Markup {
    html! { p class=(class) role="alert" { (message) } }
}

/// A page that says what went wrong and what to do, with the right status.
pub fn error_page(code: StatusCode, account: Option<&Account>, message: &str) -> Response {
    let title = match code {
        StatusCode::NOT_FOUND => "Introuvable",
        StatusCode::FORBIDDEN => "Accès refusé",
        StatusCode::PAYLOAD_TOO_LARGE => "Fichier trop volumineux",
        StatusCode::GONE => "Lien périmé",
        c if c.is_server_error() => "Service indisponible",
        _ => "Demande refusée",
    };
    page(code, title, account, "", html! { (alert("error", message)) p { a href="/" { "Retour à l'accueil" } } })
}

/// A date and time as the bureau's people read it (the site's local time).
pub fn when(d: &DateTime<Utc>, site: &scanbureau_pipeline::config::SiteConfig) -> String {
    site.calendar().localise(d.fixed_offset()).format("%d/%m/%Y %H:%M").to_string()
}

/// Time left before a due date, or how late: "4 h 10 min", "en retard de 2 h 05 min".
pub fn time_left(due: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*due - *now).num_seconds();
    let abs = secs.unsigned_abs();
    let (d, h, m) = (abs / 86_400, abs % 86_400 / 3600, abs % 3600 / 60);
    let span = if d > 0 { format!("{d} j {h} h") } else { format!("{h} h {m:02} min") };
    if secs < 0 { format!("en retard de {span}") } else { span }
}

/// A mailing's state or outcome as people read it (« pli » is masculine).
pub fn mailing_status_label(status: &str) -> &str {
    match status {
        "received" => "reçu, en attente",
        "processing" => "en traitement",
        "done" => "traité",
        "failed" => "en échec",
        "accepted" => "accepté",
        "partial" => "partiellement accepté",
        "rejected" => "refusé",
        other => other,
    }
}

/// A request's outcome as people read it (« demande » is feminine).
pub fn request_status_label(status: &str) -> &str {
    match status {
        "accepted" => "acceptée",
        "partial" => "partiellement acceptée",
        "rejected" => "refusée",
        other => other,
    }
}

/// A piece's state as people read it (« pièce » is feminine).
pub fn piece_status_label(status: &str) -> &str {
    match status {
        "uploaded" => "déposée",
        "review" => "en vérification",
        "rejected" => "refusée",
        other => other,
    }
}

pub fn channel_label(channel: &str) -> &str {
    match channel {
        "paper" => "papier",
        "portal" => "portail",
        "mail" => "messagerie",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(esc(r#"<script>alert("x")</script> & 'y'"#), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'");
        // In attributes too: a value cannot close its quotes.
        let field = csrf_field(r#"x"><script>"#).into_string();
        assert_eq!(field, r#"<input type="hidden" name="csrf" value="x&quot;&gt;&lt;script&gt;">"#);
        assert_eq!(url("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn the_layout_shows_the_role_s_menu_and_escapes_the_person() {
        let counter = Account {
            id: 1,
            email: "agent@bailleur.example".into(),
            display_name: "<img src=x onerror=alert(1)>".into(),
            role: Role::Counter,
            guichet: Some("G\"093".into()),
            sensitive: false,
        };
        let page = layout("Pli <m-1>", Some(&counter), "tok\"en", html! { p { "corps" } }).into_string();
        assert!(page.starts_with("<!DOCTYPE html><html lang=\"fr\">"), "{page}");
        assert!(page.contains("<title>Pli &lt;m-1&gt; · scanbureau</title>") && page.contains("<h1>Pli &lt;m-1&gt;</h1>"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt; · guichet G&quot;093") && !page.contains("<img"), "{page}");
        assert!(page.contains(r#"value="tok&quot;en""#), "{page}");
        assert!(page.contains(r#"href="/portal/slips""#) && !page.contains("/console"), "a counter's menu: {page}");
        assert!(page.contains("<main><h1>Pli &lt;m-1&gt;</h1><p>corps</p></main>"), "{page}");
        // Nobody signed in: no menu, no sign-out form.
        let login = layout("Connexion", None, "t", html! {}).into_string();
        assert!(!login.contains("/logout") && login.contains("<nav></nav>"), "{login}");
    }

    #[test]
    fn states_agree_with_what_they_describe() {
        // A refused request or piece next to a filed one reads « refusée », as « déposée ».
        assert_eq!((piece_status_label("uploaded"), piece_status_label("rejected")), ("déposée", "refusée"));
        assert_eq!((request_status_label("partial"), request_status_label("rejected")), ("partiellement acceptée", "refusée"));
        assert_eq!((mailing_status_label("rejected"), mailing_status_label("received")), ("refusé", "reçu, en attente"));
    }

    #[test]
    fn time_left_reads_naturally() {
        let now = Utc::now();
        assert_eq!(time_left(&(now + chrono::Duration::minutes(250)), &now), "4 h 10 min");
        assert_eq!(time_left(&(now - chrono::Duration::minutes(125)), &now), "en retard de 2 h 05 min");
        assert_eq!(time_left(&(now + chrono::Duration::hours(50)), &now), "2 j 2 h");
    }
}
