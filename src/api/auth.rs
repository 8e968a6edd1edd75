//! Bearer-token authentication. A token names its user (`inbox::token`); a request
//! without a valid one gets 401. A valid token always passes. Failed attempts are
//! counted by what the failing caller controls: the token id it names (`igt_<id>_…`),
//! or, for a token that names none, the client address — the TCP peer, or the
//! right-most untrusted `X-Forwarded-For` address when the peer is one of
//! `[api] trusted_proxies`. A key with too many recent failures gets 429 instead of
//! 401 until its window passes, so one stranger cannot lock out a whole office behind
//! a proxy. Failures are counted in the store, so every node counts against one limit.
//! Tokens never reach the logs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::ApiState;
use crate::inbox::{Caller, TokenOwner};

/// Failed attempts allowed per key within [`WINDOW_SECS`].
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW_SECS: i64 = 60;

/// What failed attempts are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// The token id a presented token names.
    TokenId(i64),
    /// The client address of a token that names no id.
    Client(IpAddr),
}

impl FailureKey {
    /// The key as the store counts it.
    fn counted(self) -> crate::store::FailureKey {
        let key = match self {
            FailureKey::TokenId(id) => format!("api token:{id}"),
            FailureKey::Client(address) => format!("api client:{address}"),
        };
        crate::store::FailureKey {
            key,
            limit: MAX_FAILURES,
        }
    }
}

/// Seconds between two writes of one token's `last_used_at`.
pub const LAST_USE_PRECISION: i64 = 60;

/// When each token's last use was last written (service clock), so a busy token is
/// written at most once a minute.
#[derive(Default)]
pub struct TokenUses(Mutex<HashMap<i64, i64>>);

impl TokenUses {
    /// Whether a use of token `id` at `now` should be written; remembers it if so.
    fn due(&self, id: i64, now: i64) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        match map.get(&id) {
            Some(last) if now - last < LAST_USE_PRECISION => false,
            _ => {
                map.insert(id, now);
                true
            }
        }
    }
}

/// Records a use of token `id` off the request's path, when due.
fn note_use(state: &Arc<ApiState>, id: i64) {
    let now = state.service.now();
    if !state.token_uses.due(id, now) {
        return;
    }
    let service = state.service.clone();
    tokio::spawn(async move {
        if let Err(error) = service.token_used(id, now).await {
            tracing::warn!(%error, id, "api: could not record a token's use");
        }
    });
}

/// The client's address: the peer, unless the peer is a trusted proxy, then the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // A hop we cannot read: nothing left of it can be believed.
            Err(_) => break,
        }
    }
    peer
}

/// The authenticated agent of a request.
pub struct Agent(pub Caller);

impl FromRequestParts<Arc<ApiState>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Agent, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Err(ApiError::unauthorized(
                "an Authorization: Bearer token is required",
            ));
        };
        let service = state.service.clone();
        let presented = token.to_string();
        let user = tokio::task::spawn_blocking(move || service.authenticate(&presented))
            .await
            .map_err(|_| ApiError::internal())??;
        match user {
            TokenOwner::User { token_id, email } => {
                note_use(state, token_id);
                return Ok(Agent(Caller::User(email)));
            }
            // The secret was right, so this is no guess: not counted as a failure.
            TokenOwner::Removed => {
                return Err(ApiError::unauthorized(
                    "the token's user is no longer configured",
                ))
            }
            TokenOwner::Unknown => {}
        }
        let key = failure_key(parts, state, token);
        let counted = state
            .service
            .count_auth_attempt(vec![key.counted()], WINDOW_SECS)
            .await?;
        if !counted {
            return Err(ApiError::rate_limited());
        }
        tracing::info!(?key, "api: rejected a bearer token");
        Err(ApiError::unauthorized("the bearer token is not valid"))
    }
}

/// What a failed `token` is counted against.
fn failure_key(parts: &Parts, state: &ApiState, token: &str) -> FailureKey {
    if let Some((id, _)) = crate::inbox::token::split(token) {
        return FailureKey::TokenId(id);
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let trusted = &state.service.config().api.trusted_proxies;
    FailureKey::Client(client_address(peer, &parts.headers, trusted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_use_is_written_at_most_once_a_minute() {
        let uses = TokenUses::default();
        assert!(uses.due(1, 1000));
        assert!(!uses.due(1, 1000 + LAST_USE_PRECISION - 1));
        assert!(uses.due(2, 1001), "another token is due on its own");
        assert!(uses.due(1, 1000 + LAST_USE_PRECISION));
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().expect("header value"));
        headers
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address_of_a_trusted_peer() {
        let proxy = IpAddr::from([127, 0, 0, 1]);
        let inner = IpAddr::from([10, 0, 0, 2]);
        let trusted = [proxy, inner];
        let headers = forwarded("198.51.100.9, 203.0.113.5, 10.0.0.2");
        let client = IpAddr::from([203, 0, 113, 5]);
        assert_eq!(client_address(proxy, &headers, &trusted), client);
        let stranger = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_address(proxy, &forwarded("junk"), &trusted), proxy);
    }
}
