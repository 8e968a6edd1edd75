//! One way to run SQL on either backend: [`Conn`] is an embedded SQLite connection or a
//! PostgreSQL session, with the small API the store's modules use (`execute`,
//! `query_row`, `prepare_cached` → `query_map`…, in the manner of rusqlite). Statements
//! are written once with `?N`/`?` placeholders; on PostgreSQL they become `$N`. Where
//! the dialects differ, the store's modules ask [`Conn::dialect`] and say each form.

mod postgres;
mod sqlite;
mod value;

pub use postgres::{PgConn, PgTarget};
pub use value::{params_from_iter, FromValue, Params, ToValue, Value};

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database failure, classified the way the store branches on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("query returned no rows")]
    NoRows,
    /// The disk (or quota) is full.
    #[error("storage full: {0}")]
    Full(String),
    /// Lost a race with another transaction (deadlock, serialization, lock timeout):
    /// the work may be tried again.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database cannot be reached or written (down, restarting, read-only).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error("column conversion: {0}")]
    Conversion(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// `.optional()` on a single-row result: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A connection to the store's database.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

impl Conn {
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(sqlite::error),
            Conn::Postgres(c) => c.execute_batch(sql),
        }
    }

    /// The first row of the result, mapped; [`DbError::NoRows`] when there is none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// A statement, prepared once per connection and kept.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        match self {
            Conn::Sqlite(c) => c
                .prepare_cached(sql)
                .map(Stmt::Sqlite)
                .map_err(sqlite::error),
            Conn::Postgres(c) => c.prepare(sql).map(|s| Stmt::Postgres(c, s)),
        }
    }

    /// Same as [`Conn::prepare_cached`] (statements run seldom are cached too).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        self.prepare_cached(sql)
    }

    /// Holds the lock named `value` in `space` until the transaction ends, waiting for
    /// another node's transaction that holds it (PostgreSQL advisory lock). With SQLite
    /// the single writer already serializes everything: nothing to do.
    pub fn lock(&self, space: &str, value: &str) -> Result<()> {
        self.lock_key(lock_key(space, value))
    }

    /// [`Conn::lock`] by a key made with [`lock_key`].
    pub fn lock_key(&self, key: i64) -> Result<()> {
        match self {
            Conn::Sqlite(_) => Ok(()),
            Conn::Postgres(_) => {
                self.query_row("SELECT pg_advisory_xact_lock(?1)", [key], |_| Ok(()))
            }
        }
    }

    /// Whether no transaction is open (SQLite also ends one on some errors).
    pub fn is_autocommit(&self) -> bool {
        match self {
            Conn::Sqlite(c) => c.is_autocommit(),
            Conn::Postgres(c) => !c.in_transaction(),
        }
    }

    /// Whether the connection is gone for good (the server closed it).
    pub fn is_broken(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.is_closed(),
        }
    }

    /// The SQLite connection, for the few SQLite-only tasks (WAL, backup).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }
}

/// A 64-bit advisory lock key for `value` in `space` (the first bytes of a SHA-256).
pub fn lock_key(space: &str, value: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(space)
        .chain_update([0])
        .chain_update(value)
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// A prepared statement.
pub enum Stmt<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c PgConn, tokio_postgres::Statement),
}

impl Stmt<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        let values = params.into_values();
        match self {
            Stmt::Sqlite(s) => s
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(sqlite::error),
            Stmt::Postgres(c, s) => c.execute(s, &values),
        }
    }

    /// Every row, mapped by `f`, in order.
    pub fn query_map<T, P, F>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>>
    where
        P: Params,
        F: FnMut(&Row) -> Result<T>,
    {
        let values = params.into_values();
        let mapped: Vec<Result<T>> = match self {
            Stmt::Sqlite(s) => {
                let mut rows = s
                    .query(rusqlite::params_from_iter(values.iter()))
                    .map_err(sqlite::error)?;
                let mut mapped = Vec::new();
                loop {
                    match rows.next() {
                        Ok(Some(row)) => mapped.push(f(&Row::Sqlite(row))),
                        Ok(None) => break,
                        Err(e) => {
                            mapped.push(Err(sqlite::error(e)));
                            break;
                        }
                    }
                }
                mapped
            }
            Stmt::Postgres(c, s) => c
                .query(s, &values)?
                .iter()
                .map(|row| f(&Row::Postgres(row)))
                .collect(),
        };
        Ok(mapped.into_iter())
    }

    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row) -> Result<T>,
    {
        let values = params.into_values();
        match self {
            Stmt::Sqlite(s) => {
                let mut rows = s
                    .query(rusqlite::params_from_iter(values.iter()))
                    .map_err(sqlite::error)?;
                match rows.next().map_err(sqlite::error)? {
                    Some(row) => f(&Row::Sqlite(row)),
                    None => Err(DbError::NoRows),
                }
            }
            Stmt::Postgres(c, s) => match c.query(s, &values)?.first() {
                Some(row) => f(&Row::Postgres(row)),
                None => Err(DbError::NoRows),
            },
        }
    }

    /// Whether the query returns at least one row.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        self.query_row(params, |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
    }
}

/// One result row; columns are read by position.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `index` as a `T` (`r.get::<_, String>(0)`).
    pub fn get<I: ColumnIndex, T: FromValue>(&self, index: I) -> Result<T> {
        let index = index.position();
        let value = match self {
            Row::Sqlite(r) => sqlite::column(r, index)?,
            Row::Postgres(r) => postgres::column(r, index)?,
        };
        T::from_value(value)
    }
}

/// A column's position (only `usize`, so a literal `0` needs no suffix).
pub trait ColumnIndex {
    fn position(self) -> usize;
}

impl ColumnIndex for usize {
    fn position(self) -> usize {
        self
    }
}
