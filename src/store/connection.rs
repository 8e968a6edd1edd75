//! SQLite connections: the settings every connection gets, and the read-only
//! [`Reader`] whose typed queries live with the tables they read.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::StoreError;
use super::schema;

/// A read connection; its typed queries are defined next to the tables they read.
pub struct Reader {
    pub(super) conn: Connection,
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

pub(super) fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals and sorts stay in memory: no temp file per commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}
