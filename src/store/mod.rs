//! The store: the only place with SQL (DESIGN.md invariant).
//!
//! One SQLite database in WAL mode with `synchronous=FULL`. A single [`Writer`] thread
//! owns the write connection and commits the work of many callers per transaction
//! (group commit); readers (the CLI, later the API) open their own connections, so they
//! work while the daemon runs. Raw messages are kept whole so they can be served and
//! re-parsed.

mod actions;
mod backup;
pub mod bayes;
mod checkpoint;
pub mod imap;
mod ingest;
pub mod outbound;
mod read;
mod route;
mod schema;
pub mod search_index;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use actions::Change;
pub use backup::BackupReport;
pub use ingest::{file as file_inbound, Filed, NewInbound};
pub use read::{
    fts_query, AssigneeFilter, ContactRow, ConversationRow, Cursor, ListFilter,
    MessageInConversation, MessageRow, Sort, TicketRow, TimelineEntry, TokenRow, View,
};
pub use writer::Writer;

/// A storage failure, classified the way callers branch on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk (or quota) is full: callers answer 452 4.3.1 and retry later.
    #[error("storage full: {0}")]
    Full(String),
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
    /// The change no longer applies (the conversation is gone, or not in trash).
    #[error("{0}")]
    Conflict(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

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
        conn.pragma_update(None, "journal_mode", "WAL")?;
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

/// A read connection with the typed queries of `read`.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens an existing database read-only (the CLI must not create one by accident).
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        if !path.exists() {
            return Err(StoreError::Invalid(format!(
                "no database at {} (has the daemon run with this config?)",
                path.display()
            )));
        }
        let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::latest_version() {
            return Err(StoreError::Invalid(format!(
                "database schema {version} is newer than this build ({})",
                schema::latest_version()
            )));
        }
        Ok(Reader { conn })
    }
}

/// Fails early, with the operating system's reason, when the data directory cannot be
/// written (read-only mount, wrong owner) instead of SQLite's vaguer "unable to open".
fn check_writable(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(".inboxgate-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            StoreError::Invalid(format!(
                "data directory {} is not writable: {e}",
                dir.display()
            ))
        })
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals and sorts stay in memory: no temp file per commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}
