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
/// How often a job that lost a deadlock to another node is run in all.
const RACE_ATTEMPTS: u32 = 5;

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

    /// [`Writer::write`] for work that takes locks another node may take in another
    /// order (threads, conversations). On a shared store such a job can lose a
    /// deadlock ([`StoreError::Busy`]): it alone is rolled back and is run again in a
    /// later transaction, once this node's batch has committed and let go of its
    /// locks; [`RACE_ATTEMPTS`] runs in all.
    pub(super) async fn write_retried<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Conn) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        let work = Arc::new(work);
        let mut attempt = 1;
        loop {
            let this = work.clone();
            match self.write(move |conn| this(conn)).await {
                Err(StoreError::Busy(error)) if attempt < RACE_ATTEMPTS => {
                    tracing::info!(attempt, %error, "a write lost a race with another node; trying again");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::store::testkit;

    /// A job that loses `losses` races before it succeeds; counts its runs.
    fn racing(losses: u32, runs: Arc<AtomicU32>) -> impl Fn(&Conn) -> Result<u32, StoreError> {
        move |conn| {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS raced (n INTEGER)")?;
            conn.execute_batch("INSERT INTO raced (n) VALUES (1)")?;
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= losses {
                return Err(StoreError::Busy("deadlock detected".into()));
            }
            Ok(run)
        }
    }

    #[tokio::test]
    async fn a_job_that_lost_a_race_runs_again_alone_and_its_lost_runs_leave_nothing() {
        let (_dir, store, writer) = testkit::store();
        let runs = Arc::new(AtomicU32::new(0));
        let run = writer.write_retried(racing(2, runs.clone())).await;
        assert_eq!(run.unwrap(), 3, "the third run won");
        let rows: i64 = store
            .reader()
            .unwrap()
            .conn
            .query_row("SELECT COUNT(*) FROM raced", (), |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the lost runs were rolled back");

        let always = Arc::new(AtomicU32::new(0));
        let outcome = writer.write_retried(racing(u32::MAX, always.clone())).await;
        assert!(matches!(outcome, Err(StoreError::Busy(_))), "{outcome:?}");
        assert_eq!(always.load(Ordering::SeqCst), RACE_ATTEMPTS);
    }
}
