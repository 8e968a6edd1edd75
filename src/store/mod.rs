//! The store: the only place with SQL (DESIGN.md invariant).
//!
//! One SQLite database in WAL mode with `synchronous=FULL`. A single [`Writer`] thread
//! owns the write connection and commits the work of many callers per transaction
//! (group commit); readers (the CLI, the API) open their own connections, so they
//! work while the daemon runs. Raw messages are kept whole so they can be served and
//! re-parsed.
//!
//! The rest of the crate sees typed operations only: `Writer` methods (file this
//! message, claim deliveries, apply this change…) and `Reader` methods (views), defined
//! next to the tables they touch; never a connection. The modules form layers, each
//! using only those below it: `error`, `rows` (the shared row types), `schema`,
//! `connection`, `writer`; then one module per group of tables (`conversations`,
//! `deliveries`, `route`, `actions`, `bayes`, `search_index`, `regroup`, `read`); then filing
//! (`ingest`, `outbound`), and what builds on it (`from_addresses`, `imap`,
//! `web_sessions`, `web_seen`).

mod actions;
mod backup;
pub mod bayes;
mod checkpoint;
mod connection;
mod conversations;
mod deliveries;
mod error;
mod from_addresses;
pub mod imap;
mod ingest;
mod model_cache;
mod outbound;
mod read;
mod regroup;
mod route;
mod rows;
mod schema;
pub mod schema_pg;
mod search_index;
pub mod search_pg;
#[cfg(test)]
mod testkit;
mod web_seen;
mod web_sessions;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

pub use actions::Change;
pub use backup::BackupReport;
pub use connection::Reader;
pub use deliveries::{after_attempt, backoff_secs};
pub use error::StoreError;
pub use model_cache::ModelCache;
pub use read::{fts_query, AssigneeFilter, Cursor, ListFilter, Sort, View};
pub use rows::{
    BatchFiled, ChannelSync, Checkpoint, ContactRow, ConversationRow, DeliveryStatus,
    DeliveryUpdate, DueMessage, DueRecipient, FetchedBatch, Filed, FiledOutbound,
    MessageInConversation, MessageRow, NewInbound, NewOutbound, NewSystemMail, OutboundRow,
    Outcome, RecipientDelivery, ReplyParent, SyncState, TicketRow, TimelineEntry, TokenRow,
};
pub use web_sessions::{NewWebSession, WebSessionRow};
pub use writer::Writer;

use connection::open_connection;

/// Where the database lives; hands out the writer and reader connections.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
            check_writable(dir)?;
        }
        let mut conn = open_connection(path, OpenFlags::default())?;
        schema::use_wal(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            path: path.to_path_buf(),
        })
    }

    /// Starts the single writer thread.
    pub fn start_writer(&self) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        self.start_counted_writer(Default::default())
    }

    /// Starts the single writer thread, counting its commits in `metrics`.
    pub fn start_counted_writer(
        &self,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let conn = open_connection(&self.path, OpenFlags::default())?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = checkpoint::start(open_connection(&self.path, OpenFlags::default())?);
        Ok(Writer::start(conn, checkpointer, metrics))
    }

    /// A read-only connection; safe to use while the daemon writes.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open(&self.path)
    }
}

/// Fails early, with the operating system's reason, when the data directory cannot be
/// written (read-only mount, wrong owner) instead of SQLite's vaguer "unable to open".
/// The probe's name is this process's and this call's own, and it is created with
/// `O_EXCL`, so commands run in parallel never remove each other's probe.
fn check_writable(dir: &Path) -> Result<(), StoreError> {
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".inboxgate-write-test.{}.{n}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            StoreError::Invalid(format!(
                "data directory {} is not writable: {e}",
                dir.display()
            ))
        })
}
