//! The one error type of the people's pages: every handler returns `Result<Response, WebError>`
//! and says what went wrong once; how it is shown (the French error page with the person's menu,
//! the sign-in page, or `{"error": …}` for the upload script) is decided here.

use std::fmt::Display;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::Account;
use crate::blobs::BlobError;
use crate::decisions::DecisionError;
use crate::store::StoreError;

use super::page::error_page;

#[derive(Debug)]
pub enum WebError {
    /// Nobody is signed in: the sign-in page.
    SignIn,
    /// A refusal shown as a page: its status, a sentence saying what to do, and the menu of
    /// whoever is signed in.
    Page { code: StatusCode, account: Option<Box<Account>>, message: String },
    /// A refusal the page's upload script shows: `{"error": message}` with its status.
    Json { code: StatusCode, message: String },
    /// A server the request needs (database, object store) failed: logged with its cause, shown
    /// as "try again shortly". (The upload script's own failures are `Json`, said in its words.)
    Unavailable { cause: String },
}

impl WebError {
    pub fn page(code: StatusCode, account: Option<&Account>, message: impl Into<String>) -> Self {
        Self::Page { code, account: account.map(|a| Box::new(a.clone())), message: message.into() }
    }

    pub fn json(code: StatusCode, message: impl Into<String>) -> Self {
        Self::Json { code, message: message.into() }
    }

    /// A failed server call, answered as a page.
    pub fn unavailable(cause: impl Display) -> Self {
        Self::Unavailable { cause: format!("{cause:#}") }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        Self::unavailable(e)
    }
}

impl From<DecisionError> for WebError {
    fn from(e: DecisionError) -> Self {
        Self::unavailable(e)
    }
}

impl From<BlobError> for WebError {
    fn from(e: BlobError) -> Self {
        Self::unavailable(e)
    }
}

const UNAVAILABLE: &str = "Le service est momentanément indisponible ; réessayez dans un instant.";

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/login").into_response(),
            Self::Page { code, account, message } => error_page(code, account.as_deref(), &message),
            Self::Json { code, message } => (code, Json(serde_json::json!({"error": message}))).into_response(),
            Self::Unavailable { cause } => {
                tracing::error!(error = %cause, "web: a server the request needs is unavailable");
                error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn each_error_is_shown_the_way_its_reader_expects() {
        let r = WebError::SignIn.into_response();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/login");

        let r = WebError::page(StatusCode::NOT_FOUND, None, "Cette pièce <b>n'existe</b> pas.").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let html = body(r).await;
        assert!(html.contains("Introuvable") && html.contains("Cette pièce &lt;b&gt;n'existe&lt;/b&gt; pas."), "{html}");

        let r = WebError::json(StatusCode::PAYLOAD_TOO_LARGE, "Le lot dépasse la limite.").into_response();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body(r).await, r#"{"error":"Le lot dépasse la limite."}"#);

        // The cause is logged, never shown: it may name a server or a table.
        let r = WebError::unavailable("connection refused (os error 111) to 127.0.0.1:5432").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let html = body(r).await;
        assert!(html.contains("momentanément indisponible") && !html.contains("5432"), "{html}");
    }
}
