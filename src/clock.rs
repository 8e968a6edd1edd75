//! "Now" as a Unix timestamp, injectable: the daemon reads the system clock, tests and
//! `INBOXGATE_NOW` pin or move their own.

use std::sync::Arc;

use time::OffsetDateTime;

/// A source of "now" as a Unix timestamp; tests inject their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's clock (UTC).
#[allow(
    clippy::disallowed_methods,
    reason = "the one place that reads the system clock"
)]
pub fn system_clock() -> Clock {
    Arc::new(|| OffsetDateTime::now_utc().unix_timestamp())
}
