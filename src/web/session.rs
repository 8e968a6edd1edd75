//! Sign-in, sign-out and the signed-in agent of a request. The session cookie holds a
//! random secret (only its SHA-256 is stored): `HttpOnly`, `SameSite=Lax`, `Secure`
//! when served over TLS. Failed sign-ins are counted per client address and per
//! account; past the limit the form answers 429 without checking the password.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::csrf::{self, Fields};
use super::i18n::Lang;
use super::pages;
use super::{WebError, WebState};
use crate::inbox::sign_in::{WebSession, SESSION_LIFETIME_SECS};
use crate::inbox::Caller;
use crate::store::FailureKey;

pub const COOKIE: &str = "inboxgate_session";

/// Failed sign-ins allowed per client address, and per account, within
/// [`WINDOW_SECS`]; counted in the store, so every node counts against one limit.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
pub const WINDOW_SECS: i64 = 300;

/// What a sign-in attempt from `address` to `account` is counted against.
fn failure_keys(address: IpAddr, account: &str) -> Vec<FailureKey> {
    vec![
        FailureKey {
            key: format!("sign-in address:{address}"),
            limit: MAX_FAILURES_PER_ADDRESS,
        },
        FailureKey {
            key: format!("sign-in account:{account}"),
            limit: MAX_FAILURES_PER_ACCOUNT,
        },
    ]
}

/// Password checks (Argon2id, about 19 MiB each) running at once; more wait their turn.
pub const CONCURRENT_CHECKS: usize = 4;

/// Holds back password checks past [`CONCURRENT_CHECKS`] on this node.
pub struct SignInLimiter {
    checks: tokio::sync::Semaphore,
}

impl Default for SignInLimiter {
    fn default() -> SignInLimiter {
        SignInLimiter {
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

/// The signed-in agent of a request; without a valid session a page redirects to
/// the sign-in form.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: WebSession,
    pub name: String,
    pub lang: Lang,
}

impl SignedIn {
    pub fn caller(&self) -> Caller {
        Caller::User(self.session.email.clone())
    }
}

/// The value of cookie `name` in the request.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<Arc<WebState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<SignedIn, Response> {
        let to_sign_in = || Redirect::to("/sign-in").into_response();
        let Some(secret) = cookie(&parts.headers, COOKIE).map(str::to_string) else {
            return Err(to_sign_in());
        };
        let service = state.service.clone();
        let found = tokio::task::spawn_blocking(move || service.web_session(&secret))
            .await
            .map_err(|_| WebError::Internal.into_response())?
            .map_err(|e| WebError::from(e).into_response())?;
        let Some(session) = found else {
            return Err(to_sign_in());
        };
        let config = state.service.config();
        let Some(user) = config.user(&session.email) else {
            return Err(to_sign_in());
        };
        Ok(SignedIn {
            name: user.name.clone(),
            lang: Lang::from_code(user.language),
            session,
        })
    }
}

/// The posted sign-in form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /sign-in`.
pub async fn sign_in(
    State(state): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let lang = Lang::of_browser(&headers);
    if !same_origin(&headers) {
        return WebError::Forbidden("cross-site sign-in refused".into()).page(lang);
    }
    let Form(form) = form.unwrap_or_default();
    let email = form.email.trim().to_lowercase();
    let peer = peer.ip();
    let trusted = state.service.config().api.trusted_proxies.clone();
    let keys = failure_keys(crate::api::client_address(peer, &headers, &trusted), &email);
    match state
        .service
        .count_auth_attempt(keys.clone(), WINDOW_SECS)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            let page = pages::sign_in::form(lang, &email, Some(lang.t("sign_in.limited")));
            return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
        }
        Err(e) => return WebError::from(e).page(lang),
    }
    let Ok(_turn) = state.limiter.checks.acquire().await else {
        return WebError::Internal.page(lang);
    };
    let service = state.service.clone();
    let (asked, password) = (email.clone(), form.password);
    let checked = tokio::task::spawn_blocking(move || service.check_password(&asked, &password))
        .await
        .map_err(|_| WebError::Internal)
        .and_then(|r| r.map_err(WebError::from));
    let user = match checked {
        Ok(Some(user)) => {
            if let Err(e) = state.service.take_back_auth_attempt(keys).await {
                tracing::warn!(error = %e, "web: could not take back a right sign-in's count");
            }
            user
        }
        Ok(None) => {
            tracing::info!(user = %email, "web: failed sign-in");
            let page = pages::sign_in::form(lang, &email, Some(lang.t("sign_in.wrong")));
            return (StatusCode::UNAUTHORIZED, page).into_response();
        }
        Err(e) => return e.page(lang),
    };
    match state.service.open_session(&user).await {
        Ok(opened) => {
            tracing::info!(user = %user, "web: signed in");
            let cookie =
                session_cookie(&opened.secret, SESSION_LIFETIME_SECS, state.secure_cookies);
            with_cookie(Redirect::to("/").into_response(), &cookie)
        }
        Err(e) => WebError::from(e).page(lang),
    }
}

/// Whether a browser's `Origin` (when it sends one) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

/// `POST /sign-out`.
pub async fn sign_out(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let fields = Fields::from_form(form);
    if let Err(e) = csrf::check(&me, &fields) {
        return e.page(me.lang);
    }
    if let Err(e) = state.service.end_session(me.session.id).await {
        return WebError::from(e).page(me.lang);
    }
    let cookie = session_cookie("", 0, state.secure_cookies);
    with_cookie(Redirect::to("/sign-in").into_response(), &cookie)
}

fn session_cookie(secret: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_and_same_site_and_secure_over_tls() {
        let plain = session_cookie("s3cret", 60, false);
        assert!(
            plain.contains("HttpOnly") && plain.contains("SameSite=Lax"),
            "{plain}"
        );
        assert!(!plain.contains("Secure"));
        assert!(session_cookie("s3cret", 60, true).ends_with("; Secure"));
    }
}
