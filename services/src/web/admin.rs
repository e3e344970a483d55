//! Accounts in the browser, for the bureau's administrators: create an account, disable it or
//! open it again, reset its password. Nobody but the account's person ever knows its password:
//! a new account, and a reset, get a one-time link by e-mail through which the person chooses
//! it (`/compte/mot-de-passe?jeton=…`; the token rides in the query, which the request log
//! never records). A counter's software gets a new API token here, shown once to the
//! administrator who asked (as `admin add-user` prints the first). Every step is audited. An
//! administrator manages accounts only: the console, the dashboard and the pieces stay closed to
//! that role.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use maud::{Markup, html};
use scanbureau_pipeline::config::SiteConfig;

use super::access::{Admins, CheckedForm, SignedIn};
use super::page::{self, alert, when};
use super::{Answer, Fields, WebError, field};
use crate::accounts::{self, Account, Role};
use crate::bureau::Bureau;
use crate::store::people::{self, AccountSummary, LinkPurpose, NewAccount, NotCreated};

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/admin/comptes", get(account_list).post(create_account))
        .route("/admin/comptes/{id}/lien", post(reset_account))
        .route("/admin/comptes/{id}/desactiver", post(disable_account))
        .route("/admin/comptes/{id}/reactiver", post(enable_account))
        .route("/admin/comptes/{id}/jeton", post(renew_token))
        .route("/compte/mot-de-passe", get(choose_password_page).post(choose_password))
}

/// The roles an administrator gives, as the forms name them.
const ROLES: [(Role, &str); 4] =
    [(Role::Counter, "agent de guichet"), (Role::Operator, "opérateur"), (Role::Supervisor, "superviseur"), (Role::Admin, "administrateur")];

pub fn role_label(role: Role) -> &'static str {
    ROLES.iter().find(|(r, _)| *r == role).map(|(_, l)| *l).unwrap_or("")
}

/// What the list says after a change (the change redirects here, so a reload repeats nothing).
fn done_message(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "cree" => ("ok", "Compte créé : un lien pour choisir son mot de passe a été envoyé à son adresse."),
        "lien" => ("ok", "Mot de passe réinitialisé : l'ancien ne sert plus, ses sessions sont fermées, un lien a été envoyé à son adresse."),
        "invitation" => ("ok", "Un nouveau lien pour choisir son mot de passe a été envoyé à son adresse ; le précédent ne sert plus."),
        "desactive" => ("ok", "Compte désactivé : ses sessions sont fermées, ses liens et son jeton d'API ne servent plus."),
        "reactive" => ("ok", "Compte réactivé. S'il n'a pas de mot de passe, envoyez-lui un lien."),
        "courriel" => {
            ("error", "Le changement est enregistré, mais le courriel n'a pas pu partir (serveur de messagerie injoignable) : renvoyez le lien dans un moment.")
        }
        _ => return None,
    })
}

fn state_of(a: &AccountSummary, b: &Bureau) -> Markup {
    html! {
        @if a.disabled { span.error data-state="disabled" { "désactivé" } }
        @else if a.has_password { span data-state="active" { "actif" } }
        @else if let Some(t) = a.link_expires { span data-state="invited" { "lien envoyé, valable jusqu'au " (when(&t, &b.site)) } }
        @else if a.api_token { span data-state="api" { "jeton d'API du logiciel du guichet (sans accès aux pages)" } }
        @else { span.error data-state="no-password" { "sans mot de passe : envoyez un lien" } }
        @if a.api_token && (a.has_password || a.link_expires.is_some()) { br; span.muted.small { "et jeton d'API" } }
        @if let Some(l) = a.last_login { br; span.muted.small { "dernière connexion " (when(&l, &b.site)) } }
    }
}

async fn account_list(State(b): State<Arc<Bureau>>, s: SignedIn<Admins>, Query(q): Query<Fields>) -> Answer {
    let rows = people::account_list(&b.pool).await?;
    let message = field(&q, "fait").and_then(done_message);
    Ok(s.page("Comptes", accounts_page(&b, &s, &rows, message, &Fields::new())))
}

fn accounts_page(b: &Bureau, s: &SignedIn<Admins>, rows: &[AccountSummary], message: Option<(&str, &str)>, typed: &Fields) -> Markup {
    let value = |name: &str| typed.get(name).cloned().unwrap_or_default();
    let chosen_role = value("role");
    html! {
        @if let Some((class, m)) = message { (alert(class, m)) }
        @if b.config.web.public_url.is_empty() {
            p.suspicion {
                "L'adresse publique du bureau n'est pas configurée (" code { "web.public_url" } ") : les liens envoyés ne donnent que le chemin "
                "de la page, que la personne doit ouvrir sur le site du bureau."
            }
        }
        table #comptes {
            thead { tr { th { "Nom" } th { "Adresse" } th { "Profil" } th { "Guichet" } th { "État" } th { "Actions" } } }
            tbody {
                @for a in rows {
                    @let acc = &a.account;
                    tr data-account=(acc.email) {
                        td { (acc.display_name) }
                        td { (acc.email) }
                        td { (role_label(acc.role)) @if acc.sensitive { ", profil sensible" } }
                        td { (acc.guichet.as_deref().unwrap_or("—")) }
                        td { (state_of(a, b)) }
                        td {
                            @if acc.id == s.account.id { span.muted.small { "votre compte" } } @else {
                                @if !a.disabled {
                                    form.inline method="post" action={ "/admin/comptes/" (acc.id) "/lien" } {
                                        (s.csrf_field())
                                        button type="submit" title=(if a.has_password {
                                            "L'ancien mot de passe cesse de servir ; un lien pour en choisir un nouveau est envoyé."
                                        } else if a.api_token {
                                            "Un lien pour choisir un mot de passe est envoyé à cette adresse ; le jeton d'API continue de servir."
                                        } else {
                                            "Un lien pour choisir son mot de passe est envoyé ; le précédent cesse de servir."
                                        }) {
                                            @if a.has_password { "Réinitialiser le mot de passe" }
                                            @else if a.link_expires.is_some() { "Renvoyer le lien" }
                                            // A counter's software signs in with its token: a link
                                            // only opens the pages to whoever reads its mailbox.
                                            @else if a.api_token { "Ouvrir l'accès aux pages" }
                                            @else { "Envoyer un lien" }
                                        }
                                    }
                                    @if a.api_token {
                                        form.inline method="post" action={ "/admin/comptes/" (acc.id) "/jeton" } {
                                            (s.csrf_field())
                                            button type="submit" title="Un nouveau jeton est affiché une seule fois ; l'ancien cesse de servir aussitôt." {
                                                "Nouveau jeton d'API"
                                            }
                                        }
                                    }
                                    form.inline method="post" action={ "/admin/comptes/" (acc.id) "/desactiver" } {
                                        (s.csrf_field()) button.secondary type="submit" { "Désactiver" }
                                    }
                                } @else {
                                    form.inline method="post" action={ "/admin/comptes/" (acc.id) "/reactiver" } {
                                        (s.csrf_field()) button type="submit" { "Réactiver" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card.narrow method="post" action="/admin/comptes" {
            h2 { "Créer un compte" }
            (s.csrf_field())
            label { "Adresse électronique " input type="email" name="email" required maxlength="200" value=(value("email")); }
            label { "Nom affiché " input type="text" name="nom" maxlength="100" value=(value("nom")); }
            label {
                "Profil "
                select name="role" required {
                    @for (r, l) in ROLES { option value=(r.as_str()) selected[chosen_role == r.as_str()] { (l) } }
                }
            }
            label { "Guichet (pour un agent de guichet) " input type="text" name="guichet" maxlength="20" value=(value("guichet")); }
            label.check { input type="checkbox" name="sensible" value="1" checked[typed.contains_key("sensible")]; " profil sensible (ouvre les pièces confidentielles)" }
            button type="submit" { "Créer et envoyer le lien" }
            p.muted.small {
                "La personne reçoit un lien, valable " (people::LINK_HOURS) " heures et une seule fois, pour choisir son mot de passe ; "
                "personne d'autre ne le connaît."
            }
        }
    }
}

/// The e-mail that carries a one-time link (`public_url`: where the bureau's pages are).
pub fn link_message(site: &SiteConfig, public_url: &str, to: &Account, token: &str, purpose: LinkPurpose, now: DateTime<Utc>) -> Vec<u8> {
    let link = format!("{}/compte/mot-de-passe?jeton={token}", public_url.trim_end_matches('/'));
    let hello = if to.display_name.is_empty() { "Bonjour,".to_string() } else { format!("Bonjour {},", to.display_name) };
    let why = match purpose {
        LinkPurpose::Invitation => format!("Un compte scanbureau « {} » a été ouvert pour vous ({}).", role_label(to.role), to.email),
        LinkPurpose::Reset => {
            format!("Le mot de passe de votre compte scanbureau ({}) a été réinitialisé par un administrateur ; l'ancien ne sert plus.", to.email)
        }
    };
    let body = format!(
        "{hello}\n\n{why}\n\nChoisissez votre mot de passe ici (lien valable {} heures, une seule fois) :\n{link}\n\n\
         Si vous n'attendiez pas ce message, ne suivez pas le lien et prévenez le bureau ({}).\n\n{}\n",
        people::LINK_HOURS,
        site.site.bureau_email,
        site.site.name
    );
    MessageBuilder::new()
        .from((site.site.name.as_str(), site.site.bureau_email.as_str()))
        .to(to.email.as_str())
        .subject("scanbureau : choisissez votre mot de passe")
        .date(now.timestamp())
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default()
}

/// Records a new link for an account and e-mails it. `Ok(false)`: recorded, but the e-mail
/// did not leave (the administrator is told to send it again); `None`: no open account.
async fn send_link(b: &Bureau, account: i64, purpose: LinkPurpose, actor: &str) -> Result<Option<bool>, WebError> {
    let token = accounts::random_token().map_err(WebError::unavailable)?;
    let Some(to) = people::send_link(&b.pool, account, &token, purpose, actor).await? else { return Ok(None) };
    let message = link_message(&b.site, &b.config.web.public_url, &to, &token, purpose, Utc::now());
    match b.mailer.send(&b.site.site.bureau_email, std::slice::from_ref(&to.email), &message).await {
        Ok(()) => {
            tracing::info!(account, purpose = purpose.as_str(), "account link sent");
            Ok(Some(true))
        }
        Err(e) => {
            tracing::error!(account, purpose = purpose.as_str(), error = %e, "account link not sent");
            b.metrics.failure("web", "account link mail");
            Ok(Some(false))
        }
    }
}

fn back_to_list(done: &str) -> Answer {
    Ok(Redirect::to(&format!("/admin/comptes?fait={done}")).into_response())
}

/// An address as people type it: one `@`, something on each side, no space.
fn plausible_address(email: &str) -> bool {
    matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

async fn create_account(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Admins>) -> Answer {
    let refuse = async |code: StatusCode, message: &str| -> Answer {
        let rows = people::account_list(&b.pool).await?;
        Ok(s.page_with(code, "Comptes", accounts_page(&b, &s, &rows, Some(("error", message)), &form)))
    };
    let email = field(&form, "email").unwrap_or_default().to_string();
    if !plausible_address(&email) || email.len() > 200 {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez une adresse électronique valable (nom@domaine.fr).").await;
    }
    let Some(role) = field(&form, "role").and_then(Role::parse) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Choisissez un profil.").await;
    };
    let guichet = field(&form, "guichet").filter(|_| role == Role::Counter);
    if role == Role::Counter && guichet.is_none() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Un agent de guichet a besoin de son guichet.").await;
    }
    let name: String = field(&form, "nom").unwrap_or_default().chars().take(100).collect();
    let sensitive = form.contains_key("sensible");
    let new = NewAccount { email: &email, display_name: &name, role, guichet, sensitive, password_hash: None };
    let id = match people::invite_account(&b.pool, &new, &s.account.actor()).await? {
        Ok(id) => id,
        Err(NotCreated::AddressTaken) => return refuse(StatusCode::CONFLICT, "Un compte existe déjà pour cette adresse.").await,
        Err(NotCreated::UnknownCounter(g)) => {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, &format!("Le guichet {g} n'est pas au registre.")).await;
        }
    };
    match send_link(&b, id, LinkPurpose::Invitation, &s.account.actor()).await? {
        Some(true) => back_to_list("cree"),
        _ => back_to_list("courriel"),
    }
}

/// An account an administrator may change: another one than their own (an administrator
/// cannot lock themself out). Says whether it has a password.
async fn other_account(b: &Bureau, s: &SignedIn<Admins>, id: i64) -> Result<(Account, bool), WebError> {
    match people::account_by_id(&b.pool, id).await? {
        Some(_) if id == s.account.id => Err(s.error(StatusCode::CONFLICT, "Vous ne pouvez pas changer votre propre compte ici : passez par « Mon compte ».")),
        Some(found) => Ok(found),
        None => Err(s.error(StatusCode::NOT_FOUND, "Ce compte n'existe pas.")),
    }
}

/// Resets the password of an account that has one; for one whose person has not chosen it
/// yet, sends the invitation again (its e-mail then says nothing of a reset).
async fn reset_account(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Admins>) -> Answer {
    let purpose = if other_account(&b, &s, id).await?.1 { LinkPurpose::Reset } else { LinkPurpose::Invitation };
    match send_link(&b, id, purpose, &s.account.actor()).await? {
        Some(true) if purpose == LinkPurpose::Reset => back_to_list("lien"),
        Some(true) => back_to_list("invitation"),
        Some(false) => back_to_list("courriel"),
        None => Err(s.error(StatusCode::CONFLICT, "Ce compte est désactivé : réactivez-le d'abord.")),
    }
}

async fn disable_account(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Admins>) -> Answer {
    other_account(&b, &s, id).await?;
    people::set_disabled(&b.pool, id, true, &s.account.actor()).await?;
    back_to_list("desactive")
}

async fn enable_account(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Admins>) -> Answer {
    other_account(&b, &s, id).await?;
    people::set_disabled(&b.pool, id, false, &s.account.actor()).await?;
    back_to_list("reactive")
}

/// A new API token for a counter's software, shown once on the page that answers (the
/// software's operator copies it there; the database keeps its digest only, and nothing else
/// shows it again): the old token stops at once. The page is not kept by the browser.
async fn renew_token(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Admins>) -> Answer {
    let (software, _) = other_account(&b, &s, id).await?;
    let token = accounts::random_token().map_err(WebError::unavailable)?;
    if !people::renew_api_token(&b.pool, id, &token, &s.account.actor()).await? {
        return Err(s.error(StatusCode::CONFLICT, "Ce compte n'a pas de jeton d'API, ou il est désactivé : réactivez-le d'abord."));
    }
    let body = html! {
        (alert("ok", "Nouveau jeton d'API créé : l'ancien ne sert plus."))
        section.card.narrow {
            p { "Le jeton du logiciel du guichet " strong { (software.email) } " est désormais :" }
            p { code.secret data-token { (token) } }
            p {
                "Copiez-le maintenant dans le logiciel (en-tête " code { "Authorization: Bearer …" } ") : "
                "il ne sera plus jamais affiché, le bureau n'en garde qu'une empreinte."
            }
            p { a href="/admin/comptes" { "Retour aux comptes" } }
        }
    };
    let mut answer = s.page("Nouveau jeton d'API", body);
    answer.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(answer)
}

// ---------------------------------------------------------------- the one-time link

/// The page of a link that no longer serves.
fn spent_link() -> WebError {
    WebError::page(
        StatusCode::GONE,
        None,
        "Ce lien ne sert plus : il a déjà été utilisé, il a expiré ou un autre l'a remplacé. Demandez un nouveau lien à l'administrateur du bureau.",
    )
}

fn password_form(token: &str, account: &Account, message: Option<&str>, code: StatusCode) -> Answer {
    let body = html! {
        @if let Some(m) = message { (alert("error", m)) }
        p { "Compte " strong { (account.email) } " (" (role_label(account.role)) ")." }
        // The link's token is the form's secret: a page elsewhere cannot know it.
        form.card.narrow method="post" action={ "/compte/mot-de-passe?jeton=" (page::url(token)) } {
            label {
                "Mot de passe (" (accounts::MIN_PASSWORD) " caractères au moins) "
                input type="password" name="new" autocomplete="new-password" minlength=(accounts::MIN_PASSWORD) required;
            }
            label { "Mot de passe, encore " input type="password" name="confirm" autocomplete="new-password" minlength=(accounts::MIN_PASSWORD) required; }
            button type="submit" { "Enregistrer" }
            p.muted.small { "Ce lien sert une seule fois." }
        }
    };
    Ok(page::page(code, "Choisir votre mot de passe", None, "", body))
}

async fn choose_password_page(State(b): State<Arc<Bureau>>, Query(q): Query<Fields>) -> Answer {
    let token = field(&q, "jeton").unwrap_or_default();
    match people::link_account(&b.pool, token).await? {
        Some(a) => password_form(token, &a, None, StatusCode::OK),
        None => Err(spent_link()),
    }
}

async fn choose_password(State(b): State<Arc<Bureau>>, Query(q): Query<Fields>, axum::extract::Form(form): axum::extract::Form<Fields>) -> Answer {
    let token = field(&q, "jeton").unwrap_or_default().to_string();
    let Some(account) = people::link_account(&b.pool, &token).await? else { return Err(spent_link()) };
    let (new, confirm) = (form.get("new").cloned().unwrap_or_default(), form.get("confirm").cloned().unwrap_or_default());
    if new != confirm {
        return password_form(&token, &account, Some("Les deux saisies diffèrent."), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let hash = match tokio::task::spawn_blocking(move || accounts::hash_password(&new)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return password_form(&token, &account, Some(&e.en_francais()), StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    if people::use_link(&b.pool, &token, &hash).await?.is_none() {
        return Err(spent_link());
    }
    tracing::info!(account = account.id, "password chosen through a one-time link");
    let body = html! {
        (alert("ok", "Mot de passe enregistré."))
        p { a href="/login" { "Se connecter" } " avec " strong { (account.email) } "." }
    };
    Ok(page::page(StatusCode::OK, "Mot de passe enregistré", None, "", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_must_look_like_one() {
        for good in ["agent@bailleur-093.example", "a.b+c@x.fr"] {
            assert!(plausible_address(good), "{good}");
        }
        for bad in ["", "agent", "@x.fr", "agent@", "agent@localhost", "a b@x.fr", "a@b@x.fr", "a@x.fr\n"] {
            assert!(!plausible_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_role_has_its_french_name() {
        for role in [Role::Counter, Role::Operator, Role::Supervisor, Role::Admin] {
            assert!(!role_label(role).is_empty(), "{role:?}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn the_link_e_mail_carries_the_whole_link_and_says_why() {
        let site = SiteConfig::embedded_default();
        let to = Account {
            id: 3,
            email: "nouvelle@bureau.example".into(),
            display_name: "Nouvelle Opératrice".into(),
            role: Role::Operator,
            guichet: None,
            sensitive: false,
        };
        let token = "ab".repeat(32);
        let now = Utc::now();
        let read = |purpose| {
            let eml = link_message(&site, "https://bureau.example.fr/", &to, &token, purpose, now);
            let parsed = mail_parser::MessageParser::default().parse(&eml).expect("an e-mail");
            let to = parsed.to().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string);
            (to, parsed.body_text(0).map(|t| t.to_string()).unwrap_or_default())
        };
        let (addressee, invitation) = read(LinkPurpose::Invitation);
        assert_eq!(addressee.as_deref(), Some("nouvelle@bureau.example"));
        let link = format!("https://bureau.example.fr/compte/mot-de-passe?jeton={token}");
        assert!(invitation.lines().any(|l| l.trim_end() == link), "the link alone on its line: {invitation}");
        assert!(invitation.contains("Bonjour Nouvelle Opératrice,") && invitation.contains("« opérateur » a été ouvert"), "{invitation}");
        assert!(invitation.contains(&format!("valable {} heures, une seule fois", people::LINK_HOURS)), "{invitation}");
        let (_, reset) = read(LinkPurpose::Reset);
        assert!(reset.contains("réinitialisé par un administrateur ; l'ancien ne sert plus"), "{reset}");
    }
}
