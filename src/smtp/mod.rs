//! Inbound SMTP server: the MX / forwarding target (SPEC B1).
//!
//! `listener` accepts connections and enforces connection limits; `session` is the
//! protocol state machine, generic over `AsyncRead + AsyncWrite` so tests can drive it
//! over an in-memory duplex; `connection` buffers its input and replies; `data` frames
//! and decodes message bodies; `recipient` decides which RCPT TO addresses are ours;
//! `reply` renders `code enhanced text`. Accepted messages are handed to a
//! [`MailSink`], which answers only once the message is durably stored: the 250 after
//! DATA depends on it.
//!
//! Wiring in the daemon: build an [`SmtpContext`] (with
//! [`listener::tls_acceptor`] when `smtp.tls` is set), bind each `smtp.listen`
//! address and run [`listener::serve`] with a shutdown `watch` receiver; it returns
//! once sessions have drained or `shutdown_grace` has expired.

mod connection;
pub(crate) mod data;
pub mod listener;
pub mod recipient;
pub mod reply;
pub mod session;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::LiveConfig;
use crate::pipeline::{Envelope, Target};

/// Everything the SMTP server needs, shared by all sessions of a listener.
///
/// Build it once in the daemon: `config` is the validated configuration (limits, host
/// name, channels); `sink` stores accepted messages; `tls` (from
/// [`listener::tls_acceptor`]) enables STARTTLS, which is advertised only when set.
pub struct SmtpContext<S> {
    /// Replaced on SIGHUP; each session works with the snapshot taken when it starts.
    pub config: Arc<LiveConfig>,
    pub sink: S,
    pub tls: Option<TlsAcceptor>,
    /// Sessions, accepted and refused messages are counted here.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Where a received message goes. `deliver` resolves only after the message is durably
/// committed (or has failed); the session turns the result into its reply.
pub trait MailSink: Send + Sync + 'static {
    fn deliver(
        &self,
        envelope: Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Delivered, SinkError>> + Send;
}

/// The message is committed; `queue_id` is quoted in the 250 reply.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub queue_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The disk is full: 452 4.3.1, the client retries later.
    #[error("insufficient storage")]
    StorageFull,
    /// Any other storage or pipeline failure: 451 4.3.0.
    #[error("{0}")]
    Unavailable(String),
}
