//! Sign-in, sign-out and the signed-in agent of a request. The session cookie holds a
//! random secret (only its SHA-256 is stored): `HttpOnly`, `SameSite=Lax`, `Secure`
//! when served over TLS. Failed sign-ins are counted per client address and per
//! account; past the limit the form answers 429 without checking the password.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

pub const COOKIE: &str = "inboxgate_session";

/// Failed sign-ins allowed per client address, and per account, within [`WINDOW`].
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(300);

/// What failed sign-ins are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Address(IpAddr),
    Account(String),
}

impl FailureKey {
    fn limit(&self) -> u32 {
        match self {
            FailureKey::Address(_) => MAX_FAILURES_PER_ADDRESS,
            FailureKey::Account(_) => MAX_FAILURES_PER_ACCOUNT,
        }
    }
}

/// Password checks (Argon2id, about 19 MiB each) running at once; more wait their turn.
pub const CONCURRENT_CHECKS: usize = 4;

/// Counts failed sign-ins. An attempt is counted before its password is checked and
/// taken back when it succeeds, so a burst of parallel guesses meets the limit as
/// surely as one guess after another.
pub struct SignInLimiter {
    failures: Mutex<HashMap<FailureKey, (u32, Instant)>>,
    checks: tokio::sync::Semaphore,
}

impl Default for SignInLimiter {
    fn default() -> SignInLimiter {
        SignInLimiter {
            failures: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

impl SignInLimiter {
    /// Counts an attempt against every key, unless one of them is at its limit (then
    /// nothing is counted and the attempt is refused).
    fn begin(&self, keys: &[FailureKey], now: Instant) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let held_back = keys.iter().any(|key| {
            map.get(key).is_some_and(|(count, since)| {
                *count >= key.limit() && now.duration_since(*since) < WINDOW
            })
        });
        if held_back {
            return false;
        }
        for key in keys {
            let entry = map.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
        true
    }

    /// Takes back the count of an attempt whose password was right.
    fn succeeded(&self, keys: &[FailureKey]) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        for key in keys {
            if let Some(entry) = map.get_mut(key) {
                entry.0 = entry.0.saturating_sub(1);
            }
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
    let lang = Lang::En;
    if !same_origin(&headers) {
        return WebError::Forbidden("cross-site sign-in refused".into()).page(lang);
    }
    let Form(form) = form.unwrap_or_default();
    let email = form.email.trim().to_lowercase();
    let peer = peer.ip();
    let trusted = state.service.config().api.trusted_proxies.clone();
    let keys = [
        FailureKey::Address(crate::api::client_address(peer, &headers, &trusted)),
        FailureKey::Account(email.clone()),
    ];
    let now = Instant::now();
    if !state.limiter.begin(&keys, now) {
        let page = pages::sign_in::form(lang, &email, Some(lang.t("sign_in.limited")));
        return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
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
            state.limiter.succeeded(&keys);
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

    fn address(last: u8) -> FailureKey {
        FailureKey::Address(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn an_account_is_held_back_after_too_many_failures() {
        let limiter = SignInLimiter::default();
        let start = Instant::now();
        let keys = [address(1), FailureKey::Account("a@x.example".into())];
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(limiter.begin(&keys, start));
        }
        assert!(!limiter.begin(&keys, start), "the account is held back");
        let other_account = [address(1), FailureKey::Account("b@x.example".into())];
        assert!(
            limiter.begin(&other_account, start),
            "its address is not yet"
        );
        assert!(limiter.begin(&keys, start + WINDOW), "the window passes");
    }

    #[test]
    fn an_address_is_held_back_after_too_many_failures_over_many_accounts() {
        let limiter = SignInLimiter::default();
        let start = Instant::now();
        for n in 0..MAX_FAILURES_PER_ADDRESS {
            let keys = [address(2), FailureKey::Account(format!("u{n}@x.example"))];
            assert!(limiter.begin(&keys, start), "attempt {n}");
        }
        let fresh_account = [address(2), FailureKey::Account("new@x.example".into())];
        assert!(
            !limiter.begin(&fresh_account, start),
            "the address is held back"
        );
        let elsewhere = [address(3), FailureKey::Account("new@x.example".into())];
        assert!(limiter.begin(&elsewhere, start), "another address is not");
    }

    #[test]
    fn attempts_in_flight_count_before_their_passwords_are_checked() {
        // A burst: every attempt begins before any password check ends.
        let limiter = SignInLimiter::default();
        let start = Instant::now();
        let keys = [address(4), FailureKey::Account("a@x.example".into())];
        let admitted = (0..50).filter(|_| limiter.begin(&keys, start)).count();
        assert_eq!(admitted, MAX_FAILURES_PER_ACCOUNT as usize);
    }

    #[test]
    fn a_right_password_takes_its_attempt_back() {
        let limiter = SignInLimiter::default();
        let start = Instant::now();
        let keys = [address(5), FailureKey::Account("a@x.example".into())];
        for _ in 0..3 * MAX_FAILURES_PER_ACCOUNT {
            assert!(limiter.begin(&keys, start));
            limiter.succeeded(&keys);
        }
    }

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
