//! Background WAL checkpoints. The writer runs with `wal_autocheckpoint=0`, so copying
//! WAL pages back into the database (and its fsync) never stalls a commit that a client
//! is waiting on; this thread does it on its own connection, in PASSIVE mode, which
//! never blocks the writer.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer runs while the daemon is busy or idle.
const INTERVAL: Duration = Duration::from_millis(500);

/// Keeps the checkpointer alive; dropping it stops the thread after a last checkpoint.
pub struct CheckpointGuard {
    _stop: mpsc::Sender<()>,
}

pub fn start(conn: Connection) -> CheckpointGuard {
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || run(conn, stopped));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no checkpoint thread; the WAL will grow until restart");
    }
    CheckpointGuard { _stop: stop }
}

fn run(conn: Connection, stopped: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        checkpoint(&conn, "PASSIVE");
    }
    checkpoint(&conn, "TRUNCATE");
}

fn checkpoint(conn: &Connection, mode: &str) {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    if let Err(e) = conn.query_row(&sql, (), |_| Ok(())) {
        tracing::warn!(error = %e, mode, "WAL checkpoint failed");
    }
}
