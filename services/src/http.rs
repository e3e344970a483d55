//! The HTTP side of a process: health, readiness and metrics for every role; the portal API for
//! the `portal` role (and `serve`).
//!
//! Portal API (a counter's user, `Authorization: Bearer <token>`):
//! - `POST /api/deposits[?numero_unique=N]` with the PDF as the request body
//!   (`Content-Type: application/pdf`): streamed to disk, never held whole in memory, refused
//!   past `portal.max_upload_bytes`; answers `202` with the deposit id at once.
//! - `GET /api/deposits/{id}`: its status, requests, pieces and notices.
//! - `GET /api/openapi.json`: this API described in OpenAPI 3.1, generated from the handlers'
//!   annotations and the answers' types ([`PortalApi`]); a test checks the routes and statuses
//!   against it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use scanbureau_pipeline::NumeroUnique;

use crate::broker::Stage;
use crate::bureau::{Bureau, Intake};
use crate::store::{self, Inserted, PortalUser};
use crate::web::{Answer, WebError};

/// The routes of a process; `portal` adds the API.
pub fn router(bureau: Arc<Bureau>, portal: bool) -> Router {
    let mut r = Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics));
    if portal {
        r = r
            .route("/api/deposits", post(deposit).layer(DefaultBodyLimit::disable()))
            .route("/api/deposits/{id}", get(deposit_status))
            .route("/api/openapi.json", get(openapi))
            .merge(crate::web::routes());
    }
    r.layer(axum::middleware::from_fn(traced)).with_state(bureau)
}

/// A span per HTTP request (method and path, never the query: it may carry a numéro unique),
/// and its answer's status and time at debug level.
async fn traced(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let answer = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = answer.status().as_u16(), ms = started.elapsed().as_millis() as u64, "answered"));
    answer
}

async fn health() -> &'static str {
    "ok\n"
}

/// May this client read the operations' endpoints? The machine itself and the configured
/// addresses; never a request a proxy forwarded from outside.
fn ops_client(b: &Bureau, peer: std::net::SocketAddr, headers: &HeaderMap) -> bool {
    if headers.contains_key("x-forwarded-for") {
        return false;
    }
    let allow = &b.config.http.ops_allow;
    peer.ip().is_loopback() || allow.split(',').map(str::trim).any(|a| a == "any" || a == peer.ip().to_string())
}

/// Ready when the database, the broker and the object store answer, each within two seconds
/// (asked together: a server that is down must not make the probe itself time out).
async fn ready(State(b): State<Arc<Bureau>>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, headers: HeaderMap) -> Response {
    if !ops_client(&b, peer, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let t = std::time::Duration::from_secs(2);
    let (db, broker, storage) = tokio::join!(
        tokio::time::timeout(t, sqlx::query!("SELECT 1 AS one").fetch_one(&b.pool)),
        tokio::time::timeout(t, b.broker.is_ready()),
        tokio::time::timeout(t, b.blobs.ping())
    );
    let (db, broker, storage) = (matches!(db, Ok(Ok(_))), broker.unwrap_or(false), storage.unwrap_or(false));
    let body = json!({"database": db, "broker": broker, "storage": storage});
    let code = if db && broker && storage { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(b): State<Arc<Bureau>>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, headers: HeaderMap) -> Response {
    if !ops_client(&b, peer, &headers) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let figures = store::figures(&b.pool).await.inspect_err(|e| tracing::warn!(error = %e, "metrics: database figures unavailable")).ok();
    let mut depths = Vec::new();
    let mut broker_up = false;
    match b.broker.get().await {
        Ok(broker) => {
            broker_up = true;
            let t = broker.topology.clone();
            for q in Stage::ALL.iter().map(|s| t.queue(*s)).chain([t.dead_queue()]) {
                match broker.depth(&q).await {
                    Ok(n) => depths.push((q, n)),
                    Err(e) => {
                        tracing::warn!(queue = %q, error = %e, "metrics: queue depth unavailable");
                        broker_up = false;
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: broker unavailable"),
    }
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], b.metrics.render(figures.as_ref(), &depths, broker_up)).into_response()
}

/// An API error: a status and a sentence, in French, the portal can show as it is.
fn problem(code: StatusCode, message: impl Into<String>) -> WebError {
    WebError::json(code, message)
}

/// The counter's software calling the API, known by its bearer token.
struct PortalCaller(PortalUser);

impl FromRequestParts<Arc<Bureau>> for PortalCaller {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, b: &Arc<Bureau>) -> Result<Self, WebError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "en-tête « Authorization: Bearer <jeton> » absent"))?;
        match store::portal_user_by_token(&b.pool, token.trim()).await {
            Ok(Some(u)) => Ok(Self(u)),
            Ok(None) => Err(problem(StatusCode::UNAUTHORIZED, "jeton inconnu ou désactivé")),
            Err(e) => {
                tracing::error!(error = %e, "authentication: database unavailable");
                Err(problem(StatusCode::SERVICE_UNAVAILABLE, "le service est momentanément indisponible ; réessayez dans un instant"))
            }
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DepositQuery {
    /// The request's numéro unique, for the pieces of one request deposited without its fiche.
    numero_unique: Option<String>,
    /// The PDF's file name, its title in the counter's lists.
    name: Option<String>,
}

/// A deposit taken in: processing follows, its status is at `status_url`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DepositAccepted {
    /// The deposit's id.
    pub deposit: String,
    pub status_url: String,
    /// Bytes received.
    pub bytes: u64,
    /// The same PDF was deposited before: this is that deposit, not processed again.
    pub duplicate: bool,
}

/// What went wrong, in French, for the portal to show as it is.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ApiError {
    pub error: String,
}

/// The portal API's description (OpenAPI 3.1), served at `/api/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "scanbureau — API du portail", description = "Dépôt des pièces justificatives par les logiciels des guichets, et suivi des dépôts."),
    paths(deposit, deposit_status),
    modifiers(&BearerToken)
)]
pub struct PortalApi;

/// Every call carries the portal user's token.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme("jeton", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        api.security = Some(vec![SecurityRequirement::new("jeton", Vec::<String>::new())]);
    }
}

async fn openapi() -> Response {
    match <PortalApi as utoipa::OpenApi>::openapi().to_pretty_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("description indisponible : {e}")).into_response(),
    }
}

/// Deposits a PDF: the pieces of one request (`numero_unique`), or several requests each after
/// its fiche récapitulative. The body is streamed to disk; the answer comes at once.
#[utoipa::path(
    post,
    path = "/api/deposits",
    params(DepositQuery),
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "Le PDF à déposer"),
    responses(
        (status = 202, description = "Dépôt reçu (ou déjà reçu : `duplicate`)", body = DepositAccepted),
        (status = 400, description = "Envoi vide ou interrompu", body = ApiError),
        (status = 401, description = "Jeton absent, inconnu ou désactivé", body = ApiError),
        (status = 413, description = "Fichier au-delà de la limite du portail", body = ApiError),
        (status = 415, description = "Ce n'est pas un PDF", body = ApiError),
        (status = 422, description = "Numéro unique invalide", body = ApiError),
        (status = 500, description = "Le serveur n'a pas pu garder l'envoi", body = ApiError),
        (status = 503, description = "Service momentanément indisponible : rien n'a été gardé", body = ApiError),
    )
)]
async fn deposit(State(b): State<Arc<Bureau>>, PortalCaller(user): PortalCaller, headers: HeaderMap, Query(q): Query<DepositQuery>, body: Body) -> Answer {
    let limit = b.config.portal.max_upload_bytes;
    let numero = match q.numero_unique.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(n) => match NumeroUnique::parse(n) {
            Ok(n) => Some(n.to_string()),
            Err(e) => return Err(problem(StatusCode::UNPROCESSABLE_ENTITY, format!("numero_unique : {}", e.en_francais()))),
        },
        None => None,
    };
    let name = crate::web::upload_name(q.name.as_deref());
    let upload = crate::web::take_upload(&crate::workdir::root(&b.config), &headers, body, limit, &name).await?;
    if !upload.head.starts_with(b"%PDF") {
        return Err(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "le portail n'accepte que des fichiers PDF"));
    }
    let (path, size) = (upload.path.clone(), upload.bytes);
    let files = vec![(name, path.clone())];
    let source = format!("portal:{}", user.email);
    let intake = Intake {
        channel: "portal",
        source: &source,
        files: &files,
        numero_unique: numero,
        notify: Some(user.email.clone()),
        portal_user: Some(user.id),
        counter: Some(user.guichet.clone()),
    };
    match b.receive(intake).await {
        Ok((id, outcome)) => {
            let duplicate = matches!(outcome, Inserted::Duplicate { .. });
            let body = DepositAccepted { status_url: format!("/api/deposits/{id}"), deposit: id, bytes: size, duplicate };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(e) => {
            b.metrics.failure("intake", "portal store");
            tracing::error!(error = %format!("{e:#}"), "portal deposit could not be stored");
            Err(problem(StatusCode::SERVICE_UNAVAILABLE, "le dépôt n'a pas pu être enregistré ; rien n'a été gardé, renvoyez-le dans un instant"))
        }
    }
}

/// A deposit's status, requests, pieces and notices; only to the counter that made it.
#[utoipa::path(
    get,
    path = "/api/deposits/{id}",
    params(("id" = String, Path, description = "L'identifiant du dépôt")),
    responses(
        (status = 200, description = "Le dépôt", body = store::DepositStatus),
        (status = 401, description = "Jeton absent, inconnu ou désactivé", body = ApiError),
        (status = 404, description = "Dépôt inconnu (ou d'un autre guichet)", body = ApiError),
        (status = 503, description = "Service momentanément indisponible", body = ApiError),
    )
)]
async fn deposit_status(State(b): State<Arc<Bureau>>, PortalCaller(user): PortalCaller, Path(id): Path<String>) -> Answer {
    match store::deposit_status(&b.pool, &id, &user).await {
        Ok(Some(v)) => Ok(Json(v).into_response()),
        // Another counter's deposit is as invisible as a missing one.
        Ok(None) => Err(problem(StatusCode::NOT_FOUND, "dépôt inconnu")),
        Err(e) => {
            tracing::error!(error = %e, "deposit status: database unavailable");
            Err(problem(StatusCode::SERVICE_UNAVAILABLE, "le service est momentanément indisponible ; réessayez dans un instant"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_description_is_openapi_3_1_with_its_schemas() {
        let spec = serde_json::to_value(<PortalApi as utoipa::OpenApi>::openapi()).expect("a JSON description");
        assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{spec}");
        let deposit = &spec["paths"]["/api/deposits"]["post"];
        assert_eq!(deposit["requestBody"]["content"].as_object().map(|c| c.keys().cloned().collect::<Vec<_>>()), Some(vec!["application/pdf".to_string()]));
        let params: Vec<&str> = deposit["parameters"].as_array().expect("parameters").iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(params, ["numero_unique", "name"]);
        // The piece's type keeps its name in the answer ("type", not the Rust field's).
        let piece = &spec["components"]["schemas"]["DepositPiece"]["properties"];
        assert!(piece["type"].is_object() && piece["type_code"].is_null(), "{piece}");
        for schema in ["DepositAccepted", "ApiError", "DepositStatus", "DepositRequest", "DepositNotice"] {
            assert!(spec["components"]["schemas"][schema].is_object(), "{schema} is described");
        }
    }
}
