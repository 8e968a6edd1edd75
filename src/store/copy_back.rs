//! `backup` on PostgreSQL: a consistent SQLite copy of the shared store, one file any
//! installation can be restored from (`store copy --to postgres`). The tables `store
//! copy` moves (its plan) are read inside one REPEATABLE READ transaction, through a
//! cursor per table, and written into a new SQLite store in one transaction; then both
//! sides are compared inside the same snapshot. The copy's search index is built by the
//! daemon that opens it (its `fts_progress` starts at 0); PostgreSQL's own index and
//! queue are not copied.

use std::path::Path;
use std::time::Instant;

use rusqlite::OpenFlags;

use super::connection::{open_connection, Reader};
use super::copy::{self, CopyReport, TableCopied, TablePlan};
use super::db::{Conn, Dialect, Value};
use super::error::StoreError;
use super::Store;

/// Rows fetched from a cursor at a time (raw messages may be large).
const FETCH_ROWS: usize = 64;

impl Reader {
    /// Writes this (PostgreSQL) store's rows into a new SQLite store at `dest` and
    /// compares the two; the caller removes `dest` when that fails.
    pub(super) fn copy_to_sqlite(&self, dest: &Path) -> Result<CopyReport, StoreError> {
        let started = Instant::now();
        if self.conn.dialect() != Dialect::Postgres {
            return Err(StoreError::Invalid(
                "the SQLite copy is made from a PostgreSQL store".into(),
            ));
        }
        Store::open(dest)?;
        let sqlite = Conn::Sqlite(open_connection(dest, OpenFlags::default())?);
        // One snapshot for every table and every check, while the daemon keeps writing.
        self.conn
            .execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let outcome = copy_snapshot(&self.conn, &sqlite);
        let _ = self.conn.execute_batch("ROLLBACK");
        let (tables, checks) = outcome?;
        // One self-contained file: no write-ahead log beside it.
        sqlite.execute_batch("PRAGMA journal_mode = DELETE")?;
        Ok(CopyReport {
            tables,
            checks,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn copy_snapshot(
    postgres: &Conn,
    sqlite: &Conn,
) -> Result<(Vec<TableCopied>, Vec<copy::CopyCheck>), StoreError> {
    let plan = copy::plan(sqlite, postgres)?;
    sqlite.execute_batch("BEGIN IMMEDIATE")?;
    let tables = match copy_tables(postgres, sqlite, &plan) {
        Ok(tables) => tables,
        Err(e) => {
            let _ = sqlite.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    sqlite
        .execute_batch("COMMIT")
        .map_err(|e| copy::failed("committing the copy", e.into()))?;
    let checks = copy::compare(postgres, sqlite, &plan)?;
    Ok((tables, checks))
}

fn copy_tables(
    postgres: &Conn,
    sqlite: &Conn,
    plan: &[TablePlan],
) -> Result<Vec<TableCopied>, StoreError> {
    plan.iter()
        .enumerate()
        .map(|(n, table)| {
            let rows = copy_table(postgres, sqlite, table, n)
                .map_err(|e| copy::failed(&format!("copying table {}", table.name), e))?;
            Ok(TableCopied {
                table: table.name.clone(),
                rows,
            })
        })
        .collect()
}

/// Copies one table through a cursor of its own (`backup_N`: a prepared FETCH keeps
/// the row shape of the cursor it was prepared for); the rows copied.
fn copy_table(
    postgres: &Conn,
    sqlite: &Conn,
    table: &TablePlan,
    n: usize,
) -> Result<u64, StoreError> {
    copy::clear_seeded(sqlite, table)?;
    let cursor = format!("backup_{n}");
    postgres.execute_batch(&format!(
        "DECLARE {cursor} NO SCROLL CURSOR FOR SELECT {} FROM {}",
        copy::column_list(&table.columns),
        copy::quoted(&table.name)
    ))?;
    let fetch = format!("FETCH {FETCH_ROWS} FROM {cursor}");
    let insert = copy::insert_sql(table, 1);
    let width = table.columns.len();
    let mut total = 0;
    loop {
        let rows: Vec<Vec<Value>> = postgres
            .prepare(&fetch)?
            .query_map((), |r| (0..width).map(|i| r.get(i)).collect())?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        let mut statement = sqlite.prepare_cached(&insert)?;
        for row in rows {
            statement.execute(row)?;
            total += 1;
        }
    }
    postgres.execute_batch(&format!("CLOSE {cursor}"))?;
    Ok(total)
}
