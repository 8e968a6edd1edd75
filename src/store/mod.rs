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
//! `web_sessions`, `web_seen`, `web_presence`, `auth_failures`).

mod actions;
mod auth_failures;
mod backup;
pub mod bayes;
mod checkpoint;
mod connection;
mod conversations;
mod copy;
mod copy_back;
pub(crate) mod db;
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
mod schema_pg;
mod search_index;
mod search_pg;
#[cfg(test)]
pub(crate) mod testkit;
mod web_presence;
mod web_seen;
mod web_sessions;
mod writer;

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

pub use actions::Change;
pub use auth_failures::FailureKey;
pub use backup::BackupReport;
pub use connection::Reader;
pub use copy::{CopyCheck, CopyReport, TableCopied};
pub use deliveries::{after_attempt, backoff_secs};
pub use error::StoreError;
pub use model_cache::ModelCache;
pub use read::{fts_query, AssigneeFilter, Cursor, ListFilter, Sort, View};
pub use rows::{
    BatchFiled, ChannelSync, Checkpoint, ContactRow, ConversationRow, DeliveryStatus,
    DeliveryUpdate, DueMessage, DueRecipient, FetchedBatch, Filed, FiledOutbound, Lease,
    MessageInConversation, MessageRow, NewInbound, NewOutbound, NewSystemMail, OutboundRow,
    Outcome, RecipientDelivery, ReplyParent, SyncState, TicketRow, TimelineEntry, TokenRow,
};
pub use web_presence::{Doing, PresenceReport, Present};
pub use web_sessions::{NewWebSession, WebSessionRow};
pub use writer::Writer;

use connection::{open_connection, PgPool};
pub use db::PgTarget;

/// Where the store's database is: the embedded SQLite file or a shared PostgreSQL.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

/// Where the database lives; hands out the writer and reader connections.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// This node's name (`[server] node`), in claims and leases.
    node: std::sync::Arc<str>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(PathBuf),
    Postgres(std::sync::Arc<PgPool>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(path) => write!(f, "Store(sqlite {})", path.display()),
            Backend::Postgres(pool) => write!(f, "Store(postgres {})", pool.target.url),
        }
    }
}

impl Location {
    /// Where `config` keeps its store (`[store]`), named for this node.
    pub fn of(config: &crate::config::Config) -> Location {
        match config.store_target() {
            crate::config::StoreTarget::Sqlite(path) => Location::Sqlite(path),
            crate::config::StoreTarget::Postgres {
                url,
                password,
                ca_file,
            } => Location::Postgres(PgTarget {
                url,
                password,
                ca_file,
                application: format!("inboxgate {}", config.node_name()),
            }),
        }
    }
}

impl Store {
    /// Opens the store `config` names (`[store]`), as the node `[server] node`.
    pub fn open_for(config: &crate::config::Config) -> Result<Store, StoreError> {
        Ok(Store::open_at(&Location::of(config))?.for_node(config.node_name()))
    }

    /// Opens (creating if needed) the embedded database and brings its schema up to date.
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
            backend: Backend::Sqlite(path.to_path_buf()),
            node: "local".into(),
        })
    }

    /// Opens the store at `location`, bringing its schema up to date (once, however many
    /// nodes start together on one PostgreSQL database).
    pub fn open_at(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open(path),
            Location::Postgres(target) => {
                let conn = db::Conn::Postgres(db::PgConn::connect(target, false)?);
                schema::migrate_postgres(&conn)?;
                Ok(Store {
                    backend: Backend::Postgres(std::sync::Arc::new(PgPool::new(
                        target.clone(),
                        conn,
                    ))),
                    node: "local".into(),
                })
            }
        }
    }

    /// The same store, as seen by the node named `node`.
    pub fn for_node(mut self, node: &str) -> Store {
        self.node = node.into();
        self
    }

    /// Whether the store is a shared PostgreSQL database (several nodes may use it).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
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
        match &self.backend {
            Backend::Sqlite(path) => {
                let conn = open_connection(path, OpenFlags::default())?;
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                let checkpointer = checkpoint::start(open_connection(path, OpenFlags::default())?);
                let path = path.clone();
                let reopen: writer::Opener = Box::new(move || {
                    Ok(db::Conn::Sqlite(open_connection(
                        &path,
                        OpenFlags::default(),
                    )?))
                });
                Ok(Writer::start(
                    db::Conn::Sqlite(conn),
                    reopen,
                    Some(checkpointer),
                    metrics,
                    self.node.clone(),
                ))
            }
            Backend::Postgres(pool) => {
                let target = pool.target.clone();
                let conn = pool.writer_session()?;
                let reopen: writer::Opener =
                    Box::new(move || Ok(db::Conn::Postgres(db::PgConn::connect(&target, false)?)));
                Ok(Writer::start(
                    conn,
                    reopen,
                    None,
                    metrics,
                    self.node.clone(),
                ))
            }
        }
    }

    /// A read-only connection; safe to use while the daemon writes.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        match &self.backend {
            Backend::Sqlite(path) => Reader::open(path),
            Backend::Postgres(pool) => Reader::from_pool(pool),
        }
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
