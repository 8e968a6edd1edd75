//! Bearer-token authentication. A token names its user (`inbox::token`); a request
//! without a valid one gets 401. Failed attempts are counted per client address, and
//! an address with too many recent failures gets 429 until its window passes, so
//! tokens cannot be guessed at speed. Tokens never reach the logs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::ApiState;
use crate::inbox::{Caller, TokenOwner};

/// Failed attempts allowed per address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed authentications per client address.
#[derive(Default)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// Whether `ip` may try now.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(map) = self.failures.lock() else {
            return true;
        };
        match map.get(&ip) {
            Some((count, since)) => *count < MAX_FAILURES || now.duration_since(*since) >= WINDOW,
            None => true,
        }
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        // Forget stale windows so the map stays small.
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// The authenticated agent of a request.
pub struct Agent(pub Caller);

impl FromRequestParts<Arc<ApiState>> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Agent, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let now = Instant::now();
        if !state.limiter.allowed(ip, now) {
            return Err(ApiError::rate_limited());
        }
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
        let token = token.to_string();
        let user = tokio::task::spawn_blocking(move || service.authenticate(&token))
            .await
            .map_err(|_| ApiError::internal())??;
        match user {
            TokenOwner::User(email) => Ok(Agent(Caller::User(email))),
            // The secret was right, so this is no guess: not counted as a failure.
            TokenOwner::Removed => Err(ApiError::unauthorized(
                "the token's user is no longer configured",
            )),
            TokenOwner::Unknown => {
                state.limiter.record_failure(ip, now);
                tracing::info!(%ip, "api: rejected a bearer token");
                Err(ApiError::unauthorized("the bearer token is not valid"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_back_after_too_many_failures_until_its_window_passes() {
        let limiter = FailureLimiter::default();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let other = IpAddr::from([192, 0, 2, 2]);
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.allowed(ip, start));
            limiter.record_failure(ip, start);
        }
        assert!(!limiter.allowed(ip, start + Duration::from_secs(1)));
        assert!(limiter.allowed(other, start), "other addresses unaffected");
        assert!(limiter.allowed(ip, start + WINDOW));
    }
}
