//! The people's side of the bureau, in the browser: the counters' portal, the operators'
//! console and the supervisors' dashboard. Server-rendered HTML; one small script for upload
//! progress. Served by the `portal` role beside the API.
//!
//! Security, in one place:
//! - Sign-in by e-mail and password (argon2id), lock-out after repeated failures.
//! - The session cookie is `HttpOnly`, `SameSite=Strict` and `Secure` (`__Host-` prefix); it
//!   carries a random token whose SHA-256 the database keeps.
//! - Every request that changes something carries the session's CSRF token (a form field, or
//!   the `X-CSRF-Token` header for uploads); sign-in has its own double-submit token.
//! - A counter sees only its counter's mailings: other ones answer 404, as if they did not
//!   exist. A sensitive piece's content opens only for the sensitive profile (403 otherwise).
//! - Pages forbid framing, inline scripts and content sniffing.

pub mod access;
pub mod admin;
pub mod charts;
pub mod console;
pub mod dashboard;
pub mod error;
pub mod evidence;
pub mod forecast;
pub mod lists;
pub mod page;
pub mod portal;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::accounts::{self, Account, Role};
use crate::bureau::Bureau;
use crate::store::desk;
use crate::store::people::{self, LoginRecord};
use access::{CheckedForm, Everyone, SignedIn};
pub use error::WebError;
use maud::{Markup, html};
use page::alert;

pub type Fields = HashMap<String, String>;

/// The browser routes.
pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/account", get(account_page).post(change_password))
        .route("/static/app.css", get(|| async { asset("text/css; charset=utf-8", include_str!("../../data/web/app.css")) }))
        .route("/static/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../data/web/app.js")) }))
        .route("/pieces/{id}/pdf", get(piece_pdf))
        .route("/pieces/{id}/pages/{n}", get(piece_page))
        .merge(portal::routes())
        .merge(console::routes())
        .merge(dashboard::routes())
        .merge(admin::routes())
        .layer(axum::middleware::map_response(protect))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// Headers every page carries.
async fn protect(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

// ---------------------------------------------------------------- sessions

/// A signed-in request.
pub struct Signed {
    pub account: Account,
    pub csrf: String,
    token: String,
}

impl Signed {
    /// A page with this person's menu.
    pub fn page(&self, title: &str, body: Markup) -> Response {
        self.page_with(StatusCode::OK, title, body)
    }
    pub fn page_with(&self, code: StatusCode, title: &str, body: Markup) -> Response {
        page::page(code, title, Some(&self.account), &self.csrf, body)
    }
    /// The hidden field of this session's CSRF token.
    pub fn csrf_field(&self) -> Markup {
        page::csrf_field(&self.csrf)
    }
    /// A refusal shown with this person's menu.
    pub fn error(&self, code: StatusCode, message: &str) -> WebError {
        WebError::page(code, Some(&self.account), message)
    }
    /// Refuses a change that does not carry this session's CSRF token.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), WebError> {
        match given {
            Some(t) if accounts::same_secret(t, &self.csrf) => Ok(()),
            _ => Err(self.error(StatusCode::FORBIDDEN, "Jeton de sécurité absent ou périmé : rechargez la page puis recommencez.")),
        }
    }
    pub fn check_form(&self, form: &Fields) -> Result<(), WebError> {
        self.check_csrf(form.get("csrf").map(String::as_str))
    }
    pub fn check_header(&self, headers: &HeaderMap) -> Result<(), WebError> {
        self.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
    }
}

fn cookie_name(b: &Bureau, base: &str) -> String {
    if b.config.web.secure_cookies { format!("__Host-{base}") } else { base.to_string() }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(b: &Bureau, name: &str, value: &str, max_age_s: i64) -> String {
    let secure = if b.config.web.secure_cookies { "; Secure" } else { "" };
    format!("{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}", cookie_name(b, name))
}

/// The session of a request, if any.
async fn session(b: &Bureau, headers: &HeaderMap) -> Result<Option<Signed>, WebError> {
    let Some(token) = cookie(headers, &cookie_name(b, "sb_session")) else { return Ok(None) };
    Ok(people::session(&b.pool, token).await?.map(|(account, csrf)| Signed { account, csrf, token: token.to_string() }))
}

/// The session of a request for one of `roles`: the sign-in page for nobody, 403 otherwise.
/// Handlers ask for it through [`access::SignedIn`].
async fn require(b: &Bureau, headers: &HeaderMap, roles: &[Role]) -> Result<Signed, WebError> {
    match session(b, headers).await? {
        Some(s) if roles.contains(&s.account.role) => Ok(s),
        Some(s) => Err(s.error(StatusCode::FORBIDDEN, "Cette page n'est pas ouverte à votre profil.")),
        None => Err(WebError::SignIn),
    }
}

/// What handlers return: the page, or what went wrong (see [`WebError`]).
pub type Answer = Result<Response, WebError>;

async fn home(State(b): State<Arc<Bureau>>, headers: HeaderMap) -> Answer {
    Ok(match session(&b, &headers).await? {
        Some(s) => Redirect::to(home_of(s.account.role)).into_response(),
        None => Redirect::to("/login").into_response(),
    })
}

fn home_of(role: Role) -> &'static str {
    match role {
        Role::Counter => "/portal",
        Role::Operator => "/console",
        Role::Supervisor => "/dashboard",
        Role::Admin => "/admin/comptes",
    }
}

fn login_form(b: &Bureau, message: Option<&str>, email: &str, code: StatusCode) -> Answer {
    let token = accounts::random_token().map_err(WebError::unavailable)?;
    let body = html! {
        @if let Some(m) = message { (alert("error", m)) }
        form.card.narrow method="post" action="/login" {
            (page::csrf_field(&token))
            label { "Adresse électronique " input type="email" name="email" autocomplete="username" required value=(email); }
            label { "Mot de passe " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Se connecter" }
        }
        p.muted {
            "Comptes nominatifs : un compte par agent. Après " (people::LOCKOUT_AFTER) " essais manqués depuis un même poste, l'adresse y est bloquée "
            (people::LOCKOUT_MINUTES) " minutes."
        }
    };
    let mut r = page::page(code, "Connexion", None, &token, body);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(b, "sb_login", &token, 1800)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn login_page(State(b): State<Arc<Bureau>>) -> Answer {
    login_form(&b, None, "", StatusCode::OK)
}

/// The client a sign-in comes from: the connection's address, or behind a proxy the address the
/// proxy appended to `X-Forwarded-For`.
fn client_of(b: &Bureau, headers: &HeaderMap, peer: std::net::SocketAddr) -> String {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next()).map(|v| v.trim().to_string());
    match forwarded {
        Some(f) if b.config.web.behind_proxy => f,
        _ => peer.ip().to_string(),
    }
}

async fn login(State(b): State<Arc<Bureau>>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, headers: HeaderMap, Form(form): Form<Fields>) -> Answer {
    // Double submit: the form's token must be the one this browser was given with the form.
    let given = form.get("csrf").map(String::as_str).unwrap_or_default();
    let expected = cookie(&headers, &cookie_name(&b, "sb_login")).unwrap_or_default();
    if given.is_empty() || !accounts::same_secret(given, expected) {
        return Err(WebError::page(StatusCode::FORBIDDEN, None, "Jeton de sécurité absent ou périmé : rechargez la page de connexion puis recommencez."));
    }
    let email = form.get("email").map(|s| s.trim().to_string()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let from = client_of(&b, &headers, peer);
    let locked = || {
        let msg = format!("Trop d'essais manqués pour cette adresse : réessayez dans {} minutes.", people::LOCKOUT_MINUTES);
        login_form(&b, Some(&msg), &email, StatusCode::FORBIDDEN)
    };
    let pressure = people::login_pressure(&b.pool, &email, &from).await?;
    if pressure.source_locked() {
        let msg = format!("Trop d'essais manqués depuis ce poste : réessayez dans {} minutes.", people::LOCKOUT_MINUTES);
        return login_form(&b, Some(&msg), &email, StatusCode::TOO_MANY_REQUESTS);
    }
    if pressure.address_locked() {
        return locked();
    }
    let (account, hash) = match people::login_record(&b.pool, &email).await? {
        LoginRecord::Found { account, password_hash } => (Some(account), password_hash),
        LoginRecord::Unknown => (None, accounts::decoy_hash().to_string()),
    };
    let known = account.as_ref().map(|a| a.id);
    let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash)).await.unwrap_or(false);
    let Some(account) = account.filter(|_| ok) else {
        people::record_login_failure(&b.pool, &email, known, &from).await?;
        if people::login_pressure(&b.pool, &email, &from).await?.address_locked() {
            tracing::warn!(from = %from, "sign-ins for an address locked after repeated failures");
            return locked();
        }
        return login_form(&b, Some("Adresse ou mot de passe incorrect."), &email, StatusCode::UNAUTHORIZED);
    };
    let token = accounts::random_token().map_err(WebError::unavailable)?;
    let csrf = accounts::random_token().map_err(WebError::unavailable)?;
    people::open_session(&b.pool, &account, &token, &csrf, b.config.web.session_hours, &from).await?;
    tracing::info!(account = account.id, role = account.role.as_str(), "signed in");
    let mut r = Redirect::to(home_of(account.role)).into_response();
    for c in [set_cookie(&b, "sb_session", &token, b.config.web.session_hours as i64 * 3600), set_cookie(&b, "sb_login", "", 0)] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

async fn logout(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, .. }: CheckedForm<Everyone>) -> Answer {
    people::close_session(&b.pool, &s.token, &s.account).await?;
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&b, "sb_session", "", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

fn account_form(s: &Signed, message: Option<(&str, &str)>, code: StatusCode) -> Answer {
    let a = &s.account;
    let profile = admin::role_label(a.role);
    let body = html! {
        @if let Some((class, m)) = message { (alert(class, m)) }
        dl.facts {
            dt { "Adresse" } dd { (a.email) }
            dt { "Profil" } dd { (profile) @if a.sensitive { ", profil sensible" } }
            @if let Some(g) = &a.guichet { dt { "Guichet" } dd { (g) } }
        }
        form.card.narrow method="post" action="/account" {
            h2 { "Changer de mot de passe" }
            (s.csrf_field())
            label { "Mot de passe actuel " input type="password" name="current" autocomplete="current-password" required; }
            label {
                "Nouveau mot de passe (" (accounts::MIN_PASSWORD) " caractères au moins) "
                input type="password" name="new" autocomplete="new-password" minlength=(accounts::MIN_PASSWORD) required;
            }
            label { "Nouveau mot de passe, encore " input type="password" name="confirm" autocomplete="new-password" minlength=(accounts::MIN_PASSWORD) required; }
            button type="submit" { "Changer" }
            p.muted { "Vos autres sessions seront fermées." }
        }
    };
    Ok(s.page_with(code, "Mon compte", body))
}

async fn account_page(s: SignedIn<Everyone>) -> Answer {
    account_form(&s, None, StatusCode::OK)
}

async fn change_password(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Everyone>) -> Answer {
    let (current, new, confirm) =
        (form.get("current").cloned().unwrap_or_default(), form.get("new").cloned().unwrap_or_default(), form.get("confirm").cloned().unwrap_or_default());
    if new != confirm {
        return account_form(&s, Some(("error", "Les deux saisies du nouveau mot de passe diffèrent.")), StatusCode::UNPROCESSABLE_ENTITY);
    }
    if new == current {
        return account_form(&s, Some(("error", "Le nouveau mot de passe doit différer de l'actuel.")), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let stored = people::password_hash(&b.pool, s.account.id).await?.unwrap_or_default();
    let checked = tokio::task::spawn_blocking(move || {
        if !accounts::verify_password(&current, &stored) {
            return Err(None);
        }
        accounts::hash_password(&new).map_err(Some)
    })
    .await;
    let hash = match checked {
        Ok(Ok(h)) => h,
        Ok(Err(None)) => return account_form(&s, Some(("error", "Le mot de passe actuel est incorrect.")), StatusCode::FORBIDDEN),
        Ok(Err(Some(e))) => {
            tracing::info!(account = s.account.id, error = %e, "new password refused");
            return account_form(&s, Some(("error", &e.en_francais())), StatusCode::UNPROCESSABLE_ENTITY);
        }
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let ended = people::change_password(&b.pool, &s.account, &hash, &s.token).await?;
    tracing::info!(account = s.account.id, sessions_ended = ended, "password changed");
    account_form(&s, Some(("ok", "Mot de passe changé ; vos autres sessions sont fermées.")), StatusCode::OK)
}

// ---------------------------------------------------------------- pieces

/// A piece this person may open, with its stored object's key.
async fn openable_piece(b: &Bureau, s: &Signed, id: &str) -> Result<(desk::PieceView, String), WebError> {
    let piece = match desk::piece(&b.pool, id).await? {
        Some(p) if s.account.sees_counter(p.guichet.as_deref()) => p,
        _ => return Err(s.error(StatusCode::NOT_FOUND, "Cette pièce n'existe pas ou n'est pas l'une des vôtres.")),
    };
    if piece.sensible && !s.account.sensitive {
        tracing::info!(piece = %piece.id, account = s.account.id, "sensitive piece refused to a non-sensitive profile");
        return Err(s.error(StatusCode::FORBIDDEN, "Pièce confidentielle : seul le profil « sensible » peut l'ouvrir."));
    }
    match piece.key.clone() {
        Some(k) => Ok((piece, k)),
        None => Err(s.error(StatusCode::NOT_FOUND, "Cette pièce n'a pas de fichier (refusée ou pas encore traitée).")),
    }
}

/// A PDF answered to the browser as `name`: shown in its viewer (`inline`) or saved
/// (`attachment`).
pub(super) fn pdf_answer(disposition: &str, name: &str, bytes: Vec<u8>) -> Answer {
    Ok(([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, format!("{disposition}; filename=\"{name}\""))], bytes)
        .into_response())
}

async fn piece_pdf(State(b): State<Arc<Bureau>>, s: SignedIn<Everyone>, Path(id): Path<String>) -> Answer {
    let (piece, key) = openable_piece(&b, &s, &id).await?;
    match b.blobs.get_bytes(&key).await {
        Ok(bytes) => pdf_answer("inline", &format!("{}.pdf", piece.id), bytes),
        Err(e) => {
            tracing::error!(piece = %piece.id, error = %e, "piece object unavailable");
            Err(s.error(StatusCode::SERVICE_UNAVAILABLE, "Le fichier de la pièce est momentanément indisponible."))
        }
    }
}

/// A page of a piece as an image: 360 pixels wide for the list's thumbnails, `?largeur=N` (up
/// to 2000) for the review station and its zoom.
async fn piece_page(State(b): State<Arc<Bureau>>, s: SignedIn<Everyone>, Path((id, n)): Path<(String, usize)>, Query(q): Query<Fields>) -> Answer {
    let width = field(&q, "largeur").and_then(|w| w.parse::<u32>().ok()).unwrap_or(360).clamp(120, 2000);
    let (_, key) = openable_piece(&b, &s, &id).await?;
    let bytes = b.blobs.get_bytes(&key).await?;
    match tokio::task::spawn_blocking(move || scanbureau_pipeline::preview::page_png(&bytes, n, width)).await {
        Ok(Some(png)) => Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response()),
        _ => Err(s.error(StatusCode::NOT_FOUND, "Cette page n'existe pas.")),
    }
}

// ---------------------------------------------------------------- uploads

/// An upload streamed to a temporary file, counted as it comes, never held whole in memory.
pub struct Upload {
    pub dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub bytes: u64,
    pub head: Vec<u8>,
}

/// Why an upload was refused, with the status to answer.
pub struct Refused(pub StatusCode, pub String);

pub async fn take_upload(work: &std::path::Path, headers: &HeaderMap, body: Body, limit: u64, name: &str) -> Result<Upload, Refused> {
    let too_big = || Refused(StatusCode::PAYLOAD_TOO_LARGE, format!("Le fichier dépasse la limite de {} Mo.", limit / 1_000_000));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let room = |e: std::io::Error| no_room(&e);
    let dir = crate::workdir::folder(work).map_err(room)?;
    let path = dir.path().join(crate::blobs::keys::safe_name(name));
    let mut file = tokio::fs::File::create(&path).await.map_err(room)?;
    let mut stream = body.into_data_stream();
    let (mut bytes, mut head) = (0u64, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| interrupted(&e))?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(too_big());
        }
        if head.len() < 1024 {
            head.extend_from_slice(&chunk[..chunk.len().min(1024 - head.len())]);
        }
        file.write_all(&chunk).await.map_err(room)?;
    }
    file.flush().await.map_err(room)?;
    if bytes == 0 {
        return Err(Refused(StatusCode::BAD_REQUEST, "Le fichier envoyé est vide.".into()));
    }
    Ok(Upload { dir, path, bytes, head })
}

/// The name a deposited PDF keeps (its title in the lists): the sender's file name without its
/// folders or control characters, at most 120 characters, ending in `.pdf`; `depot.pdf` when
/// none was given.
pub fn upload_name(sent: Option<&str>) -> String {
    let base = sent.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(120).collect::<String>().trim().to_string();
    match clean {
        c if c.is_empty() || c.chars().all(|ch| ch == '.') => "depot.pdf".into(),
        c if c.to_lowercase().ends_with(".pdf") => c,
        c => format!("{c}.pdf"),
    }
}

/// The server could not keep an upload (disk full, folder gone): logged with its cause, said
/// plainly to the person.
pub fn no_room(e: &dyn std::fmt::Display) -> Refused {
    tracing::error!(error = %e, "an upload could not be kept on the server's disk");
    Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Le serveur n'a pas pu garder l'envoi ; réessayez dans un instant, et prévenez l'équipe technique si cela dure.".into(),
    )
}

/// The browser or the network cut an upload short.
pub fn interrupted(e: &dyn std::fmt::Display) -> Refused {
    tracing::info!(error = %e, "an upload was interrupted");
    Refused(StatusCode::BAD_REQUEST, "L'envoi a été interrompu avant la fin ; recommencez.".into())
}

impl From<Refused> for WebError {
    /// A refused upload, as the page's script shows it.
    fn from(Refused(code, message): Refused) -> Self {
        WebError::json(code, message)
    }
}

/// Takes an upload in (see [`Bureau::receive`]) and answers the page's script: where to go
/// next, or why nothing was kept.
pub async fn receive_upload(b: &Bureau, intake: crate::bureau::Intake<'_>, bytes: u64, what: &str) -> Answer {
    match b.receive(intake).await {
        Ok((id, outcome)) => {
            let duplicate = matches!(outcome, crate::store::Inserted::Duplicate { .. });
            Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({"deposit": id, "url": format!("/mailings/{id}"), "bytes": bytes, "duplicate": duplicate})))
                .into_response())
        }
        Err(e) => {
            b.metrics.failure("intake", "web store");
            tracing::error!(error = %format!("{e:#}"), "{what} could not be stored");
            Err(WebError::json(StatusCode::SERVICE_UNAVAILABLE, "L'envoi n'a pas pu être enregistré ; rien n'a été gardé, recommencez dans un instant."))
        }
    }
}

/// A form field, trimmed; `None` when absent or empty.
pub fn field<'a>(form: &'a Fields, name: &str) -> Option<&'a str> {
    form.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}
