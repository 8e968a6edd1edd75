//! The queue worker: runs in the daemon, claims due messages (every second, and
//! whenever a delivery finishes and frees a slot), delivers up to `concurrency` at once
//! and records each recipient's outcome. It polls the store rather than waiting for a
//! signal because CLI processes queue mail through their own short-lived writer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::deliver::Deliverer;
use super::dkim::Signer;
use super::queue::Queue;
use crate::metrics::Metrics;
use crate::store::DueMessage;

/// How often the queue is looked at when nothing else wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// How long running deliveries may go on after shutdown; the rest are requeued at the
/// next start (at most one duplicate).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the worker needs; built once by `app::start`.
pub struct Worker {
    pub queue: Queue,
    pub deliverer: Arc<Deliverer>,
    pub signer: Option<Arc<Signer>>,
    pub concurrency: usize,
    /// Delivery outcomes are counted here.
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Starts the worker; it ends when `shutdown` turns true.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        match self.queue.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(deliveries = n, "re-queued deliveries interrupted by a stop"),
            Err(e) => tracing::error!(error = %e, "could not re-queue interrupted deliveries"),
        }
        let slots = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut running = JoinSet::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            self.fill_slots(&slots, &mut running).await;
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "deliveries still running at shutdown; they are re-sent at the next start"
            );
            running.abort_all();
        }
        tracing::debug!("outbound worker stopped");
    }

    /// Claims as many due messages as there are free slots and starts their delivery.
    async fn fill_slots(&self, slots: &Arc<Semaphore>, running: &mut JoinSet<()>) {
        loop {
            let free = slots.available_permits();
            if free == 0 {
                return;
            }
            let due = match self.queue.claim(free).await {
                Ok(due) => {
                    self.metrics.outbound_claimed();
                    due
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not claim due deliveries");
                    return;
                }
            };
            let claimed = due.len();
            for message in due {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    return;
                };
                let queue = self.queue.clone();
                let deliverer = self.deliverer.clone();
                let signer = self.signer.clone();
                let metrics = self.metrics.clone();
                running.spawn(async move {
                    deliver_one(&queue, &deliverer, signer.as_deref(), &metrics, message).await;
                    drop(permit);
                });
            }
            if claimed < free {
                return;
            }
        }
    }
}

async fn deliver_one(
    queue: &Queue,
    deliverer: &Deliverer,
    signer: Option<&Signer>,
    metrics: &Metrics,
    m: DueMessage,
) {
    let recipients: Vec<String> = m.recipients.iter().map(|r| r.address.clone()).collect();
    let raw = match signer {
        Some(signer) => signer.sign(&m.raw),
        None => m.raw.clone(),
    };
    let outcomes = deliverer.deliver(&m.mail_from, &recipients, &raw).await;
    // One mapping of outcome to status, for the row, the log and the metrics alike.
    let updates = queue.after_attempt(&m.recipients, &outcomes);
    for (rcpt, update) in recipients.iter().zip(&updates) {
        metrics.delivery(update.status);
        tracing::info!(
            message = m.message_row.unwrap_or_default(),
            raw = m.raw_id,
            recipient = %rcpt,
            status = update.status.as_str(),
            reply = %update.last_reply,
            "delivery"
        );
    }
    if let Err(e) = queue.record(updates).await {
        // The rows stay `sending` and are re-queued at the next start.
        tracing::error!(error = %e, raw = m.raw_id, "could not record a delivery outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RemoteServer, TlsMode};
    use crate::metrics::StoreGauges;
    use crate::store::NewSystemMail;

    const NOW: i64 = 1_000_000;

    /// A relay address nothing listens on: every attempt fails temporarily.
    fn refusing_relay() -> RemoteServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        RemoteServer {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            username: None,
            password_file: None,
            oauth2_token_command: None,
            ca_file: None,
        }
    }

    #[tokio::test]
    async fn an_expired_temporary_failure_is_failed_in_the_row_and_the_metrics() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::testkit::fresh_store(dir.path());
        let (writer, _thread) = store.start_writer().expect("writer");
        let queue = Queue::new(writer, Arc::new(|| NOW), Duration::from_secs(10));
        let mail = NewSystemMail {
            raw: b"Subject: code\r\n\r\n1234\r\n".to_vec(),
            mail_from: "support@acme.hs-inbox.test".into(),
            recipients: vec!["jan@klant.example".into()],
            now: NOW,
            // The next try (after 5 minutes) would come after the message expired.
            expires_at: queue.expiry(NOW),
        };
        queue.submit_system(mail).await.expect("queued");
        let mut config = crate::smtp::testkit::test_config();
        config.outbound.relay = Some(refusing_relay());
        let deliverer = Deliverer::from_config(&config).expect("deliverer");
        let metrics = Metrics::default();
        let due = queue.claim(1).await.expect("claimed");
        assert_eq!(due.len(), 1);
        for message in due {
            deliver_one(&queue, &deliverer, None, &metrics, message).await;
        }
        let reader = store.reader().expect("reader");
        assert_eq!(
            reader.deliveries_by_status().expect("statuses"),
            [("failed".to_string(), 1)]
        );
        let text = metrics.render(&StoreGauges::default());
        assert!(
            text.contains("inboxgate_outbound_deliveries_total{outcome=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("inboxgate_outbound_deliveries_total{outcome=\"deferred\"} 0"),
            "{text}"
        );
    }
}
