//! Connections: the settings every SQLite connection gets, the pool of PostgreSQL
//! sessions, and the read-only [`Reader`] whose typed queries live with the tables they
//! read.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::db::{Conn, PgConn, PgTarget};
use super::error::StoreError;
use super::schema;

/// A read connection; its typed queries are defined next to the tables they read.
pub struct Reader {
    pub(super) conn: Pooled,
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
        let version: usize = conn.query_row("PRAGMA user_version", (), |r| r.get(0))?;
        schema::check_not_newer(version)?;
        Ok(Reader {
            conn: Pooled::alone(Conn::Sqlite(conn)),
        })
    }

    /// A reader of the store at `location`, which must exist (SQLite) or be reachable
    /// (PostgreSQL); nothing is created.
    pub fn open_at(location: &super::Location) -> Result<Reader, StoreError> {
        match location {
            super::Location::Sqlite(path) => Reader::open(path),
            super::Location::Postgres(target) => Ok(Reader {
                conn: Pooled::alone(Conn::Postgres(PgConn::connect(target, true)?)),
            }),
        }
    }

    /// A reader of the store `config` names (`[store]`).
    pub fn open_for(config: &crate::config::Config) -> Result<Reader, StoreError> {
        Reader::open_at(&super::Location::of(config))
    }

    /// Whether its session is gone for good (the database closed it): a reader kept
    /// for reuse is dropped then, not used again.
    pub fn is_broken(&self) -> bool {
        self.conn.is_broken()
    }

    /// A read-only session from `pool`.
    pub(super) fn from_pool(pool: &Arc<PgPool>) -> Result<Reader, StoreError> {
        Ok(Reader { conn: pool.take()? })
    }
}

pub(super) fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals and sorts stay in memory: no temp file per commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Idle read-only PostgreSQL sessions, reused by readers (a reader per request would
/// otherwise cost a connection each).
pub struct PgPool {
    pub(super) target: PgTarget,
    idle: Mutex<Vec<Conn>>,
    /// The session that opened (and migrated) the store, kept for the writer: a CLI
    /// command then connects once less.
    opener: Mutex<Option<Conn>>,
}

/// Sessions kept idle at most; more are closed when returned.
const MAX_IDLE: usize = 16;

impl PgPool {
    pub fn new(target: PgTarget, opener: Conn) -> PgPool {
        PgPool {
            target,
            idle: Mutex::new(Vec::new()),
            opener: Mutex::new(Some(opener)),
        }
    }

    /// A read-write session for the writer: the opener's if still unused and alive.
    pub(super) fn writer_session(&self) -> Result<Conn, StoreError> {
        let kept = self.opener.lock().unwrap_or_else(|p| p.into_inner()).take();
        match kept {
            Some(conn) if !conn.is_broken() => Ok(conn),
            _ => Ok(Conn::Postgres(PgConn::connect(&self.target, false)?)),
        }
    }

    fn take(self: &Arc<Self>) -> Result<Pooled, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) if !conn.is_broken() => conn,
            _ => Conn::Postgres(PgConn::connect(&self.target, true)?),
        };
        Ok(Pooled {
            conn: Some(conn),
            home: Some(self.clone()),
        })
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if !conn.is_broken() && conn.is_autocommit() && idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A connection that goes back to its pool when dropped.
pub struct Pooled {
    conn: Option<Conn>,
    home: Option<Arc<PgPool>>,
}

impl Pooled {
    fn alone(conn: Conn) -> Pooled {
        Pooled {
            conn: Some(conn),
            home: None,
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(conn), Some(home)) = (self.conn.take(), &self.home) {
            home.give_back(conn);
        }
    }
}
