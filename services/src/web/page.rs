//! Server-rendered HTML: escaping, the page layout with its role's menu, and small formatting
//! helpers. Every value that comes from a person or a file goes through [`esc`].

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::accounts::{Account, Role};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// A page under construction: its title, the signed-in person (for the menu) and its body.
pub struct Page {
    title: String,
    account: Option<Account>,
    csrf: String,
    pub body: String,
}

impl Page {
    pub fn new(title: &str, account: Option<&Account>, csrf: &str) -> Self {
        Self { title: title.to_string(), account: account.cloned(), csrf: csrf.to_string(), body: String::new() }
    }

    pub fn push(&mut self, html: &str) -> &mut Self {
        self.body.push_str(html);
        self
    }

    /// The hidden field every form that changes something carries.
    pub fn csrf_field(&self) -> String {
        format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(&self.csrf))
    }

    pub fn render(&self) -> String {
        let mut nav = String::new();
        if let Some(a) = &self.account {
            let links: &[(&str, &str)] = match a.role {
                Role::Counter => {
                    &[("/portal", "Mes plis et dépôts"), ("/portal/slips", "Imprimer une fiche ou un bordereau"), ("/portal/incidents", "Fiches incident")]
                }
                Role::Operator => &[
                    ("/console", "Lots"),
                    ("/console/review", "À vérifier"),
                    ("/console/failed", "Échecs"),
                    ("/console/incidents", "Incidents"),
                    ("/dashboard", "Tableau de bord"),
                ],
                Role::Supervisor => &[
                    ("/dashboard", "Tableau de bord"),
                    ("/console", "Lots"),
                    ("/console/review", "À vérifier"),
                    ("/console/failed", "Échecs"),
                    ("/console/incidents", "Incidents"),
                ],
            };
            for (href, label) in links {
                let _ = write!(nav, r#"<a href="{href}">{label}</a>"#);
            }
            let who = if a.display_name.is_empty() { &a.email } else { &a.display_name };
            let counter = a.guichet.as_deref().map(|g| format!(" · guichet {}", esc(g))).unwrap_or_default();
            let _ = write!(
                nav,
                r#"<a class="who" href="/account">{}{counter}</a><form method="post" action="/logout" class="inline">{}<button type="submit">Se déconnecter</button></form>"#,
                esc(who),
                self.csrf_field()
            );
        }
        format!(
            r#"<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · scanbureau</title><link rel="stylesheet" href="/static/app.css"><script src="/static/app.js" defer></script></head>
<body><header><strong>scanbureau</strong><nav>{nav}</nav></header><main><h1>{title}</h1>
{body}</main></body></html>"#,
            title = esc(&self.title),
            body = self.body
        )
    }

    pub fn into_response(self) -> Response {
        html(StatusCode::OK, self.render())
    }
}

pub fn html(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// A page that says what went wrong and what to do, with the right status.
pub fn error_page(code: StatusCode, account: Option<&Account>, message: &str) -> Response {
    let mut p = Page::new(
        match code {
            StatusCode::NOT_FOUND => "Introuvable",
            StatusCode::FORBIDDEN => "Accès refusé",
            StatusCode::PAYLOAD_TOO_LARGE => "Fichier trop volumineux",
            c if c.is_server_error() => "Service indisponible",
            _ => "Demande refusée",
        },
        account,
        "",
    );
    p.push(&format!(r#"<p class="error" role="alert">{}</p><p><a href="/">Retour à l'accueil</a></p>"#, esc(message)));
    html(code, p.render())
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

/// French labels of the states people see.
pub fn status_label(status: &str) -> &str {
    match status {
        "received" => "reçu, en attente",
        "processing" => "en traitement",
        "done" => "traité",
        "failed" => "en échec",
        "accepted" => "accepté",
        "partial" => "partiellement accepté",
        "rejected" => "refusé",
        "uploaded" => "déposée",
        "review" => "en vérification",
        "pending" => "à envoyer",
        "sent" => "envoyé",
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
        assert_eq!(esc(r#"<script>alert("x")</script> & 'y'"#), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;");
        assert_eq!(url("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn time_left_reads_naturally() {
        let now = Utc::now();
        assert_eq!(time_left(&(now + chrono::Duration::minutes(250)), &now), "4 h 10 min");
        assert_eq!(time_left(&(now - chrono::Duration::minutes(125)), &now), "en retard de 2 h 05 min");
        assert_eq!(time_left(&(now + chrono::Duration::hours(50)), &now), "2 j 2 h");
    }
}
