//! The single writer: one thread owns the write connection and commits the jobs of many
//! callers in one transaction (group commit), in the spirit of Postfix's one queue
//! manager. A caller's future resolves only after the COMMIT holding its work returns,
//! which with `synchronous=FULL` means the work is on disk.
//!
//! Each job runs inside its own SAVEPOINT, so a job that fails is rolled back alone; a
//! failed COMMIT (disk full, I/O error) fails every job of the batch.

use std::any::Any;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::checkpoint::CheckpointGuard;
use super::db::{Conn, Dialect};
use super::error::StoreError;
use crate::metrics::Metrics;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before callers feel backpressure.
const QUEUE_DEPTH: usize = 4096;

type Output = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce(&Conn) -> Result<Output, StoreError> + Send>;
/// Opens the write connection, again after the database was lost (PostgreSQL).
pub(super) type Opener = Box<dyn FnMut() -> Result<Conn, StoreError> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<Output, StoreError>>,
}

/// Handle to the writer thread; cheap to clone. The thread ends when every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// This node's name, in claims and leases (shared store).
    node: Arc<str>,
    shared: bool,
}

impl Writer {
    /// Starts the thread; it owns `checkpointer` and stops it when it ends itself.
    pub(super) fn start(
        conn: Conn,
        reopen: Opener,
        checkpointer: Option<CheckpointGuard>,
        metrics: Arc<Metrics>,
        node: Arc<str>,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let shared = conn.dialect() == Dialect::Postgres;
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                run(Some(conn), reopen, queue, &metrics);
                drop(checkpointer);
            })
            .expect("spawning the store writer thread");
        (Writer { jobs, node, shared }, thread)
    }

    /// This node's name.
    pub fn node(&self) -> Arc<str> {
        self.node.clone()
    }

    /// Whether other nodes may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// `write` for callers outside the async runtime (the CLI, blocking-pool threads).
    pub(super) fn write_blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move |conn| work(conn).map(|t| Box::new(t) as Output));
        self.jobs
            .blocking_send(Job { work, done })
            .map_err(|_| StoreError::WriterGone)?;
        let output = result
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)??;
        output
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StoreError::Invalid("writer returned an unexpected type".into()))
    }

    /// Runs `work` in the next group transaction; resolves after its COMMIT.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let work: Work = Box::new(move |conn| work(conn).map(|t| Box::new(t) as Output));
        self.jobs
            .send(Job { work, done })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let output = result.await.map_err(|_| StoreError::WriterGone)??;
        output
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| StoreError::Invalid("writer returned an unexpected type".into()))
    }
}

fn run(
    mut conn: Option<Conn>,
    mut reopen: Opener,
    mut queue: mpsc::Receiver<Job>,
    metrics: &Metrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(Conn::is_broken) {
            conn = None;
            match reopen() {
                Ok(fresh) => conn = Some(fresh),
                Err(error) => {
                    tracing::warn!(%error, jobs = batch.len(), "database unavailable; the batch is refused");
                    metrics.commit_failed();
                    fail_all(&mut batch, error);
                    continue;
                }
            }
        }
        if let Some(conn) = &conn {
            commit_batch(conn, &mut batch, metrics);
        }
    }
    tracing::debug!("store writer stopped");
}

/// Runs every job of the batch in one transaction and tells each caller the outcome.
fn commit_batch(conn: &Conn, batch: &mut Vec<Job>, metrics: &Metrics) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let begin = match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    if let Err(e) = conn.execute_batch(begin) {
        metrics.commit_failed();
        fail_all(batch, e.into());
        return;
    }
    let outcomes: Vec<_> = batch
        .iter_mut()
        .map(|job| run_in_savepoint(conn, std::mem::replace(&mut job.work, Box::new(noop))))
        .collect();
    if let Err(e) = conn.execute_batch("COMMIT") {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let full = outcomes.iter().find_map(|o| match o {
            Err(StoreError::Full(m)) => Some(StoreError::Full(m.clone())),
            _ => None,
        });
        let error = full.unwrap_or_else(|| StoreError::from(e));
        tracing::error!(%error, jobs = size, "commit failed; no job of the batch is stored");
        metrics.commit_failed();
        fail_all(batch, error);
        return;
    }
    let elapsed = started.elapsed();
    metrics.committed(size, elapsed);
    tracing::trace!(
        jobs = size,
        elapsed_us = elapsed.as_micros() as u64,
        "committed"
    );
    for (job, outcome) in batch.drain(..).zip(outcomes) {
        let _ = job.done.send(outcome);
    }
}

fn run_in_savepoint(conn: &Conn, work: Work) -> Result<Output, StoreError> {
    if conn.is_autocommit() {
        // An earlier job's error made SQLite roll the whole transaction back.
        return Err(StoreError::Database(
            "transaction aborted by an earlier failure".into(),
        ));
    }
    conn.execute_batch("SAVEPOINT job")?;
    match work(conn) {
        Ok(output) => {
            conn.execute_batch("RELEASE job")?;
            Ok(output)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn noop(_: &Conn) -> Result<Output, StoreError> {
    Ok(Box::new(()))
}

fn fail_all(batch: &mut Vec<Job>, error: StoreError) {
    for job in batch.drain(..) {
        let _ = job.done.send(Err(error.clone()));
    }
}
