//! Trash retention (SPEC F5): a background task that deletes conversations for good
//! once they have been in trash for 30 days (`service::TRASH_RETENTION_SECS`), by the
//! service's clock. It sweeps at start, every `interval`, and whenever poked (tests
//! move an injected clock and poke it instead of waiting).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::Service;

/// How often the sweep runs on its own.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Asks the task for a sweep now; resolves with how many conversations it deleted.
#[derive(Clone)]
pub struct SweepHandle {
    requests: mpsc::Sender<tokio::sync::oneshot::Sender<usize>>,
}

impl SweepHandle {
    pub async fn sweep_now(&self) -> Option<usize> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.requests.send(done).await.ok()?;
        result.await.ok()
    }
}

/// Starts the task; it ends when `shutdown` turns true.
pub fn start(
    service: Arc<Service>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> (SweepHandle, tokio::task::JoinHandle<()>) {
    let (requests, mut queue) = mpsc::channel::<tokio::sync::oneshot::Sender<usize>>(8);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            let reply = tokio::select! {
                _ = ticker.tick() => None,
                Some(reply) = queue.recv() => Some(reply),
                _ = shutdown.changed() => break,
            };
            let deleted = sweep(&service).await;
            if let Some(reply) = reply {
                let _ = reply.send(deleted);
            }
        }
    });
    (SweepHandle { requests }, task)
}

async fn sweep(service: &Service) -> usize {
    match service.purge_trash().await {
        Ok(0) => 0,
        Ok(deleted) => {
            tracing::info!(deleted, "trash retention: deleted conversations for good");
            deleted
        }
        Err(error) => {
            tracing::error!(%error, "trash retention sweep failed; retrying next time");
            0
        }
    }
}
