//! Operational counters, rendered in the Prometheus text exposition format (0.0.4) at
//! `GET /metrics` on the API listener.
//!
//! One [`Metrics`] value is built by `app::start` and handed, as an `Arc`, to the parts
//! that count: the SMTP listener and sessions, the store writer (commit batch sizes and
//! latency) and the outbound worker (delivery outcomes). Everything here is lock-free
//! atomics, so counting costs nothing on the hot paths. State that already lives in the
//! store — IMAP sync state and messages ingested per channel, outbound queue depth by
//! status — is read from it at scrape time ([`StoreGauges`]) instead of being mirrored,
//! so it is right even in a fresh process after a crash.
//!
//! The exposition is written by hand: it is a few lines of text, not worth a crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::store::DeliveryStatus;

/// Why the SMTP server refused a recipient or a message; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RelayDenied,
    UnknownUser,
    ChannelOff,
    BadAddress,
    TooBig,
    TooManyRecipients,
    StorageFull,
    LocalError,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::RelayDenied,
        Refusal::UnknownUser,
        Refusal::ChannelOff,
        Refusal::BadAddress,
        Refusal::TooBig,
        Refusal::TooManyRecipients,
        Refusal::StorageFull,
        Refusal::LocalError,
    ];

    /// The `reason` label and the reply code the session answers with.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Refusal::RelayDenied => ("relay_denied", "550 5.7.1"),
            Refusal::UnknownUser => ("unknown_user", "550 5.1.1"),
            Refusal::ChannelOff => ("channel_off", "550 5.2.1"),
            Refusal::BadAddress => ("bad_address", "501 5.1.3"),
            Refusal::TooBig => ("too_big", "552 5.3.4"),
            Refusal::TooManyRecipients => ("too_many_recipients", "452 4.5.3"),
            Refusal::StorageFull => ("storage_full", "452 4.3.1"),
            Refusal::LocalError => ("local_error", "451 4.3.0"),
        }
    }

    /// The refusal an SMTP reply stands for, by its enhanced status code (RFC 3463).
    pub fn from_enhanced(enhanced: &str) -> Option<Refusal> {
        Some(match enhanced {
            "5.7.1" => Refusal::RelayDenied,
            "5.1.1" => Refusal::UnknownUser,
            "5.2.1" => Refusal::ChannelOff,
            "5.1.3" => Refusal::BadAddress,
            "5.3.4" => Refusal::TooBig,
            "4.5.3" => Refusal::TooManyRecipients,
            "4.3.1" => Refusal::StorageFull,
            "4.3.0" => Refusal::LocalError,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The statuses a delivery attempt can leave a recipient in; the `outcome` label.
const ATTEMPT_OUTCOMES: [DeliveryStatus; 3] = [
    DeliveryStatus::Sent,
    DeliveryStatus::Deferred,
    DeliveryStatus::Failed,
];

/// A Prometheus histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative; the last one is `+Inf`).
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const COMMIT_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every counter of the daemon process.
pub struct Metrics {
    smtp_sessions: AtomicU64,
    smtp_sessions_active: AtomicI64,
    smtp_connections_refused: AtomicU64,
    smtp_accepted: AtomicU64,
    smtp_refused: [AtomicU64; Refusal::ALL.len()],
    commit_batch_size: Histogram,
    commit_seconds: Histogram,
    commit_failures: AtomicU64,
    deliveries: [AtomicU64; ATTEMPT_OUTCOMES.len()],
    outbound_claims: AtomicU64,
    /// The token model generation the classifier scores with; -1 before it loads one.
    model_generation: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            smtp_sessions: AtomicU64::new(0),
            smtp_sessions_active: AtomicI64::new(0),
            smtp_connections_refused: AtomicU64::new(0),
            smtp_accepted: AtomicU64::new(0),
            smtp_refused: Default::default(),
            commit_batch_size: Histogram::new(BATCH_SIZES),
            commit_seconds: Histogram::new(COMMIT_SECONDS),
            commit_failures: AtomicU64::new(0),
            deliveries: Default::default(),
            outbound_claims: AtomicU64::new(0),
            model_generation: AtomicI64::new(-1),
        }
    }
}

/// Held for the life of one SMTP session; dropping it ends the session in the gauge.
pub struct SessionGuard<'a>(&'a Metrics);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.smtp_sessions_active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn smtp_session_started(&self) -> SessionGuard<'_> {
        self.smtp_sessions.fetch_add(1, Ordering::Relaxed);
        self.smtp_sessions_active.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self)
    }

    /// A connection refused with 421 by the connection limits.
    pub fn smtp_connection_refused(&self) {
        self.smtp_connections_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A message answered 250 after DATA.
    pub fn smtp_accepted(&self) {
        self.smtp_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn smtp_refused(&self, refusal: Refusal) {
        self.smtp_refused[refusal.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A committed group transaction of `jobs` jobs.
    pub fn committed(&self, jobs: usize, elapsed: Duration) {
        self.commit_batch_size.observe(jobs as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one attempt for one recipient by the status it left the delivery in.
    pub fn delivery(&self, status: DeliveryStatus) {
        if let Some(slot) = ATTEMPT_OUTCOMES.iter().position(|o| *o == status) {
            self.deliveries[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The outbound worker looked at the queue and claimed what was due (maybe nothing).
    pub fn outbound_claimed(&self) {
        self.outbound_claims.fetch_add(1, Ordering::Relaxed);
    }

    /// The classifier now scores with the token model of `generation`.
    pub fn model_loaded(&self, generation: i64) {
        self.model_generation.store(generation, Ordering::Relaxed);
    }

    /// The whole exposition: process counters, then what the store says.
    pub fn render(&self, store: &StoreGauges) -> String {
        let mut out = String::with_capacity(4096);
        self.render_smtp(&mut out);
        self.commit_batch_size.render(
            &mut out,
            "inboxgate_store_commit_batch_size",
            "Jobs committed together in one group transaction.",
        );
        self.commit_seconds.render(
            &mut out,
            "inboxgate_store_commit_seconds",
            "Time from BEGIN to COMMIT of one group transaction.",
        );
        counter(
            &mut out,
            "inboxgate_store_commit_failures_total",
            "Group transactions whose COMMIT failed (every job of the batch failed).",
            &self.commit_failures,
        );
        self.render_outbound(&mut out, store);
        render_imap(&mut out, store);
        self.render_model(&mut out, store);
        out
    }

    fn render_smtp(&self, out: &mut String) {
        counter(
            out,
            "inboxgate_smtp_sessions_total",
            "SMTP sessions started.",
            &self.smtp_sessions,
        );
        header(
            out,
            "inboxgate_smtp_sessions_active",
            "gauge",
            "SMTP sessions running now.",
        );
        let active = self.smtp_sessions_active.load(Ordering::Relaxed);
        let _ = writeln!(out, "inboxgate_smtp_sessions_active {active}");
        counter(
            out,
            "inboxgate_smtp_connections_refused_total",
            "Connections refused with 421 by the per-IP or total connection limits.",
            &self.smtp_connections_refused,
        );
        counter(
            out,
            "inboxgate_smtp_messages_accepted_total",
            "Messages answered 250 after DATA (durably stored).",
            &self.smtp_accepted,
        );
        let name = "inboxgate_smtp_refusals_total";
        header(
            out,
            name,
            "counter",
            "Recipients (RCPT) and messages (MAIL, DATA) refused, by reason and reply.",
        );
        for refusal in Refusal::ALL {
            let (reason, code) = refusal.labels();
            let value = self.smtp_refused[refusal.index()].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{reason=\"{reason}\",code=\"{code}\"}} {value}");
        }
    }

    /// The token model's generation in the store and the one the classifier uses: they
    /// differ until the classifier's next check (at most once a second, at a message).
    fn render_model(&self, out: &mut String, store: &StoreGauges) {
        let name = "inboxgate_bayes_generation";
        header(
            out,
            name,
            "gauge",
            "Token model generation in the store (moves with every training).",
        );
        let _ = writeln!(out, "{name} {}", store.bayes_generation);
        let name = "inboxgate_classifier_model_generation";
        header(
            out,
            name,
            "gauge",
            "Token model generation the classifier scores with (-1 before the first message).",
        );
        let value = self.model_generation.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {value}");
    }

    fn render_outbound(&self, out: &mut String, store: &StoreGauges) {
        counter(
            out,
            "inboxgate_outbound_claims_total",
            "Passes of the outbound worker over the queue, each claiming what was due.",
            &self.outbound_claims,
        );
        let name = "inboxgate_outbound_deliveries_total";
        header(
            out,
            name,
            "counter",
            "Delivery attempts per recipient, by outcome.",
        );
        for (slot, outcome) in ATTEMPT_OUTCOMES.iter().enumerate() {
            let value = self.deliveries[slot].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{}\"}} {value}", outcome.as_str());
        }
        let name = "inboxgate_outbound_queue";
        header(
            out,
            name,
            "gauge",
            "Outbound recipient deliveries in the queue, by status.",
        );
        for status in ["queued", "sending", "deferred", "sent", "failed"] {
            let value = store
                .outbound_by_status
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "{name}{{status=\"{status}\"}} {value}");
        }
    }
}

/// State read from the store at scrape time.
#[derive(Debug, Default)]
pub struct StoreGauges {
    /// `(channel, state, messages ingested)` per IMAP channel that ever synced.
    pub imap_channels: Vec<(String, String, i64)>,
    /// `(status, recipient deliveries)` of the outbound queue.
    pub outbound_by_status: Vec<(String, i64)>,
    /// The token model's generation.
    pub bayes_generation: i64,
}

const IMAP_STATES: [&str; 4] = ["syncing", "idle", "backoff", "auth_failed"];

fn render_imap(out: &mut String, store: &StoreGauges) {
    let name = "inboxgate_imap_sync_state";
    header(
        out,
        name,
        "gauge",
        "1 for the IMAP channel's current sync state, 0 for the others.",
    );
    for (channel, state, _) in &store.imap_channels {
        let channel = escape(channel);
        for candidate in IMAP_STATES {
            let value = u8::from(candidate == state);
            let _ = writeln!(
                out,
                "{name}{{channel=\"{channel}\",state=\"{candidate}\"}} {value}"
            );
        }
    }
    let name = "inboxgate_imap_messages_ingested_total";
    header(
        out,
        name,
        "counter",
        "Messages stored from the IMAP channel (kept in the store across restarts).",
    );
    for (channel, _, ingested) in &store.imap_channels {
        let channel = escape(channel);
        let _ = writeln!(out, "{name}{{channel=\"{channel}\"}} {ingested}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let metrics = Metrics::default();
        metrics.committed(1, Duration::from_micros(300));
        metrics.committed(3, Duration::from_millis(20));
        metrics.committed(600, Duration::from_secs(3));
        let text = metrics.render(&StoreGauges::default());
        for line in [
            "inboxgate_store_commit_batch_size_bucket{le=\"1\"} 1",
            "inboxgate_store_commit_batch_size_bucket{le=\"4\"} 2",
            "inboxgate_store_commit_batch_size_bucket{le=\"512\"} 2",
            "inboxgate_store_commit_batch_size_bucket{le=\"+Inf\"} 3",
            "inboxgate_store_commit_batch_size_sum 604",
            "inboxgate_store_commit_batch_size_count 3",
            "inboxgate_store_commit_seconds_bucket{le=\"0.0005\"} 1",
            "inboxgate_store_commit_seconds_bucket{le=\"0.025\"} 2",
            "inboxgate_store_commit_seconds_bucket{le=\"+Inf\"} 3",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing in\n{text}"
            );
        }
    }

    #[test]
    fn sessions_gauge_follows_the_guards_and_store_state_is_labelled() {
        let metrics = Metrics::default();
        let first = metrics.smtp_session_started();
        let second = metrics.smtp_session_started();
        drop(first);
        metrics.smtp_refused(Refusal::RelayDenied);
        let store = StoreGauges {
            imap_channels: vec![("a\"b@x".into(), "backoff".into(), 7)],
            outbound_by_status: vec![("deferred".into(), 2)],
            bayes_generation: 3,
        };
        let text = metrics.render(&store);
        drop(second);
        for line in [
            "inboxgate_smtp_sessions_total 2",
            "inboxgate_smtp_sessions_active 1",
            "inboxgate_smtp_refusals_total{reason=\"relay_denied\",code=\"550 5.7.1\"} 1",
            "inboxgate_smtp_refusals_total{reason=\"unknown_user\",code=\"550 5.1.1\"} 0",
            "inboxgate_imap_sync_state{channel=\"a\\\"b@x\",state=\"backoff\"} 1",
            "inboxgate_imap_sync_state{channel=\"a\\\"b@x\",state=\"idle\"} 0",
            "inboxgate_imap_messages_ingested_total{channel=\"a\\\"b@x\"} 7",
            "inboxgate_outbound_queue{status=\"deferred\"} 2",
            "inboxgate_outbound_queue{status=\"queued\"} 0",
            "inboxgate_outbound_claims_total 0",
            "inboxgate_bayes_generation 3",
            "inboxgate_classifier_model_generation -1",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing in\n{text}"
            );
        }
    }

    #[test]
    fn every_refusal_maps_back_from_its_enhanced_code() {
        for refusal in Refusal::ALL {
            let (_, code) = refusal.labels();
            let enhanced = code.split(' ').nth(1).unwrap_or_default();
            assert_eq!(Refusal::from_enhanced(enhanced), Some(refusal));
        }
    }
}
