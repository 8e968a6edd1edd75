//! The web inbox (issue 13): server-rendered pages (maud) on the daemon's HTTP
//! listener beside `/api/v1`, over the same `inbox::Service` as the CLI and the API,
//! so one set of access rules applies. Sign-in and sessions (`session`), the CSRF
//! check on every form post (`csrf`), the pages (`pages`), the form actions
//! (`actions`), live updates by server-sent events (`live`), the string catalogue
//! (`i18n`). CSS and the small script are compiled in (`assets/`); the basic flows
//! work with scripting off.

mod actions;
mod compose;
mod csrf;
pub mod i18n;
mod live;
mod pages;
pub(crate) mod presence;
mod session;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::inbox::{InboxError, Service};
use i18n::Lang;

pub use session::SignInLimiter;

/// What every web handler reaches.
pub struct WebState {
    pub service: Arc<Service>,
    pub limiter: SignInLimiter,
    /// Whether pages are served over TLS (session cookie gets `Secure`).
    pub secure_cookies: bool,
    /// Turns true when the daemon stops: live-update streams end, so the server's
    /// graceful shutdown does not wait on them.
    pub shutdown: watch::Receiver<bool>,
}

/// The web inbox's routes, with their state.
pub fn router(
    service: Arc<Service>,
    secure_cookies: bool,
    shutdown: watch::Receiver<bool>,
) -> Router {
    let state = Arc::new(WebState {
        service,
        limiter: SignInLimiter::default(),
        secure_cookies,
        shutdown,
    });
    Router::new()
        .route("/", get(pages::list::page))
        .route("/sign-in", get(pages::sign_in::page).post(session::sign_in))
        .route("/sign-out", post(session::sign_out))
        .route("/bulk", post(actions::bulk))
        .route("/availability", post(actions::availability))
        .route("/conversations/{id}", get(pages::conversation::page))
        .route(
            "/messages/{message}",
            get(pages::conversation::message_link),
        )
        .route(
            "/conversations/{id}/messages/{message}/body",
            get(pages::conversation::message_body),
        )
        .route(
            "/conversations/{id}/messages/{message}/attachments/{index}",
            get(pages::conversation::attachment),
        )
        .route("/conversations/{id}/reply", post(actions::reply))
        .route(
            "/conversations/{id}/forward",
            get(compose::forward_page).post(compose::forward),
        )
        .route(
            "/conversations/{id}/presence",
            post(presence::report).layer(axum::extract::DefaultBodyLimit::max(4096)),
        )
        .route(
            "/compose",
            get(compose::compose_page).post(compose::compose),
        )
        .route("/conversations/{id}/act", post(actions::act))
        .route("/conversations/{id}/assign", post(actions::assign))
        .route("/conversations/{id}/comment", post(actions::comment))
        .route("/conversations/{id}/move", post(actions::move_to))
        .route("/conversations/{id}/split", post(actions::split))
        .route("/conversations/{id}/merge", post(actions::merge))
        .route("/events", get(live::events))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(axum::middleware::map_response(page_policy))
        .with_state(state)
}

/// What every web response gets unless its handler set a stricter policy (the frame
/// of a message's body): only our own script, style, frames and form targets; never
/// framed by another site; no referrer leaves the inbox.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self'; frame-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

async fn page_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(PAGE_POLICY),
        );
    }
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(header::HeaderValue::from_static("same-origin"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(header::HeaderValue::from_static("DENY"));
    response
}

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Why a page or form failed, shown as a small page in the user's language.
#[derive(Debug)]
pub enum WebError {
    NotFound,
    Forbidden(String),
    Invalid(String),
    /// A message (with its attachments) larger than the configured limit.
    TooLarge(String),
    /// A form posted without the session's CSRF token.
    Csrf,
    Internal,
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden(_) | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::Invalid(_) => StatusCode::BAD_REQUEST,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page for this error in `lang`.
    pub fn page(&self, lang: Lang) -> Response {
        let (title, detail) = match self {
            WebError::NotFound => (lang.t("error.not_found"), String::new()),
            WebError::Forbidden(m) => (lang.t("error.forbidden"), m.clone()),
            WebError::Invalid(m) => (lang.t("error.invalid"), m.clone()),
            WebError::TooLarge(m) => (lang.t("error.too_large"), m.clone()),
            WebError::Csrf => (lang.t("error.forbidden"), lang.t("error.csrf").to_string()),
            WebError::Internal => (lang.t("error.internal"), String::new()),
        };
        (self.status(), pages::error_page(lang, title, &detail)).into_response()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.page(Lang::En)
    }
}

impl From<InboxError> for WebError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::NotFound(_) => WebError::NotFound,
            InboxError::Forbidden(m) => WebError::Forbidden(m),
            InboxError::Invalid(m) | InboxError::Conflict(m) => WebError::Invalid(m),
            InboxError::Store(error) => {
                tracing::error!(%error, "web: storage error");
                WebError::Internal
            }
        }
    }
}

/// Runs a synchronous service call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &WebState,
    call: impl FnOnce(&Service) -> Result<T, InboxError> + Send + 'static,
) -> Result<T, WebError> {
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || call(&service))
        .await
        .map_err(|_| WebError::Internal)?
        .map_err(WebError::from)
}
