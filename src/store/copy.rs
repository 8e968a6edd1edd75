//! `store copy`: moves an installation's SQLite store into an empty PostgreSQL store.
//! Everything is read inside one SQLite read transaction (a consistent snapshot while
//! the daemon keeps writing) and written inside one PostgreSQL transaction, in batches
//! of multi-row INSERTs, tables in foreign-key order, ids kept. SQLite's FTS tables stay
//! behind: PostgreSQL's trigger queues every copied message for its own search index.
//! After the commit the two sides are compared (rows per table, Message-IDs, raw bytes).
//! `backup` on PostgreSQL (`copy_back`) uses the same table plan and comparison the
//! other way round.

use std::collections::HashSet;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::connection::Reader;
use super::db::{Conn, Dialect, PgConn, PgTarget, Row, Value};
use super::error::StoreError;
use super::{Location, Store};

/// SQLite tables with no counterpart to fill: the FTS5 index and its bookkeeping
/// (PostgreSQL indexes on its own, from `search_pending`).
const NOT_COPIED: &[&str] = &["fts_progress"];
const NOT_COPIED_PREFIXES: &[&str] = &["sqlite_", "messages_fts"];

/// Tables the PostgreSQL schema itself fills with a row (a singleton's defaults): the
/// copy replaces that row, and it does not make the destination count as non-empty.
const SEEDED: &[&str] = &["bayes_totals"];

/// Rows per INSERT at most (a power of two; fewer when a table has many columns).
const MAX_BATCH_ROWS: usize = 512;
/// An INSERT is sent once its values reach this many bytes, whatever its row count.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// PostgreSQL's limit of parameters per statement.
const MAX_PARAMETERS: usize = 65_535;
/// Raw messages compared byte for byte after the copy.
const RAW_SAMPLE: usize = 64;

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Tables in the order copied, with their rows.
    pub tables: Vec<TableCopied>,
    pub checks: Vec<CopyCheck>,
    pub seconds: f64,
}

impl CopyReport {
    /// Whether every check after the copy found both sides equal.
    pub fn verified(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

#[derive(Debug, Clone)]
pub struct TableCopied {
    pub table: String,
    pub rows: u64,
}

/// One comparison of the source with the destination after the commit.
#[derive(Debug, Clone)]
pub struct CopyCheck {
    pub what: String,
    pub source: String,
    pub destination: String,
    pub ok: bool,
}

/// A table to copy and the columns both schemas have.
pub(super) struct TablePlan {
    pub(super) name: String,
    pub(super) columns: Vec<String>,
    has_id: bool,
}

impl Reader {
    /// Copies this (SQLite) store into the PostgreSQL database at `target`, creating
    /// its schema; refuses, writing nothing, when the destination holds data already.
    pub fn copy_to_postgres(&self, target: &PgTarget) -> Result<CopyReport, StoreError> {
        let started = Instant::now();
        let Some(source) = self.conn.sqlite() else {
            return Err(StoreError::Invalid(
                "store copy reads the embedded SQLite store; this store is PostgreSQL".into(),
            ));
        };
        let opening = |e: StoreError| failed("opening the PostgreSQL destination", e);
        Store::open_at(&Location::Postgres(target.clone())).map_err(opening)?;
        let dest = Conn::Postgres(PgConn::connect(target, false).map_err(|e| opening(e.into()))?);
        // One read transaction: every table and every check sees the same snapshot.
        source.execute_batch("BEGIN")?;
        let outcome = copy_snapshot(&self.conn, &dest);
        let _ = source.execute_batch("COMMIT");
        let (tables, checks) = outcome?;
        Ok(CopyReport {
            tables,
            checks,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn copy_snapshot(
    source: &Conn,
    dest: &Conn,
) -> Result<(Vec<TableCopied>, Vec<CopyCheck>), StoreError> {
    let plan = plan(source, dest)?;
    dest.execute_batch("BEGIN")?;
    match copy_tables(source, dest, &plan) {
        Ok(tables) => {
            dest.execute_batch("COMMIT")
                .map_err(|e| failed("committing the copy", e.into()))?;
            let checks = verify(source, dest, &plan)?;
            Ok((tables, checks))
        }
        Err(e) => {
            let _ = dest.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `e` with what was being done when it happened.
pub(super) fn failed(doing: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{doing}: {m}")),
        other => StoreError::Invalid(format!("{doing}: {other}")),
    }
}

/// The tables to copy (SQLite's, less its search index), in an order that satisfies
/// PostgreSQL's foreign keys, whichever way the copy goes.
pub(super) fn plan(sqlite: &Conn, postgres: &Conn) -> Result<Vec<TablePlan>, StoreError> {
    let postgres_tables: HashSet<String> = strings(
        postgres,
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        (),
    )?
    .into_iter()
    .collect();
    let mut tables = Vec::new();
    for name in strings(
        sqlite,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid",
        (),
    )? {
        if is_not_copied(&name) {
            continue;
        }
        if !postgres_tables.contains(&name) {
            return Err(StoreError::Invalid(format!(
                "table {name} has no counterpart in the PostgreSQL schema"
            )));
        }
        tables.push(table_plan(sqlite, postgres, name)?);
    }
    foreign_key_order(postgres, tables)
}

fn is_not_copied(name: &str) -> bool {
    NOT_COPIED.contains(&name) || NOT_COPIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The SQLite table's columns, each of which PostgreSQL's table must have.
fn table_plan(sqlite: &Conn, postgres: &Conn, name: String) -> Result<TablePlan, StoreError> {
    let columns = strings(
        sqlite,
        "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        [name.as_str()],
    )?;
    let postgres_columns: HashSet<String> = strings(
        postgres,
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ?1",
        [name.as_str()],
    )?
    .into_iter()
    .collect();
    if let Some(missing) = columns.iter().find(|c| !postgres_columns.contains(*c)) {
        return Err(StoreError::Invalid(format!(
            "column {name}.{missing} has no counterpart in the PostgreSQL schema"
        )));
    }
    Ok(TablePlan {
        has_id: postgres_columns.contains("id"),
        name,
        columns,
    })
}

/// Orders `tables` so that each comes after the tables its foreign keys refer to.
fn foreign_key_order(
    dest: &Conn,
    mut pending: Vec<TablePlan>,
) -> Result<Vec<TablePlan>, StoreError> {
    let references: Vec<(String, String)> = dest
        .prepare(
            "SELECT src.relname::text, dst.relname::text FROM pg_constraint c
             JOIN pg_class src ON src.oid = c.conrelid
             JOIN pg_class dst ON dst.oid = c.confrelid
             JOIN pg_namespace n ON n.oid = src.relnamespace
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
        )?
        .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut ordered: Vec<TablePlan> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waiting: HashSet<&str> = pending.iter().map(|t| t.name.as_str()).collect();
        let ready = pending.iter().position(|t| {
            !references
                .iter()
                .any(|(from, to)| *from == t.name && *to != t.name && waiting.contains(to.as_str()))
        });
        let Some(ready) = ready else {
            return Err(StoreError::Invalid(format!(
                "the foreign keys of {} form a cycle; no order to copy them in",
                pending
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        ordered.push(pending.remove(ready));
    }
    Ok(ordered)
}

/// Inside the destination's transaction: refuses a destination with data, copies each
/// table, then moves each identity sequence past the copied ids.
fn copy_tables(
    source: &Conn,
    dest: &Conn,
    plan: &[TablePlan],
) -> Result<Vec<TableCopied>, StoreError> {
    // Two copies started at once into one database take turns; the later one is refused.
    dest.lock("store copy", "")?;
    refuse_unless_empty(dest, plan)?;
    let mut copied = Vec::with_capacity(plan.len());
    for table in plan {
        let rows = copy_table(source, dest, table)
            .map_err(|e| failed(&format!("copying table {}", table.name), e))?;
        copied.push(TableCopied {
            table: table.name.clone(),
            rows,
        });
    }
    for table in plan.iter().filter(|t| t.has_id) {
        reset_sequence(dest, &table.name)
            .map_err(|e| failed(&format!("resetting the id sequence of {}", table.name), e))?;
    }
    Ok(copied)
}

fn refuse_unless_empty(dest: &Conn, plan: &[TablePlan]) -> Result<(), StoreError> {
    let mut holding = Vec::new();
    for table in plan.iter().filter(|t| !SEEDED.contains(&t.name.as_str())) {
        let rows = count(dest, &table.name)?;
        if rows > 0 {
            holding.push(format!("{} ({rows} rows)", table.name));
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "the destination is not empty, it holds {}: a copy goes into an empty store \
         (nothing was written)",
        holding.join(", ")
    )))
}

/// Copies one table in batches; the rows copied.
fn copy_table(source: &Conn, dest: &Conn, table: &TablePlan) -> Result<u64, StoreError> {
    let sqlite = source
        .sqlite()
        .ok_or_else(|| StoreError::Invalid("the source is not SQLite".into()))?;
    clear_seeded(dest, table)?;
    let width = table.columns.len();
    let batch_rows = rows_per_batch(width);
    let select = format!(
        "SELECT {} FROM {}",
        column_list(&table.columns),
        quoted(&table.name)
    );
    let mut statement = sqlite.prepare(&select)?;
    let mut rows = statement.query([])?;
    let (mut batch, mut bytes, mut total) = (Vec::new(), 0usize, 0u64);
    while let Some(row) = rows.next()? {
        let row = Row::Sqlite(row);
        for i in 0..width {
            let value: Value = row.get(i)?;
            bytes += value_size(&value);
            batch.push(value);
        }
        total += 1;
        if batch.len() / width >= batch_rows || bytes >= MAX_BATCH_BYTES {
            insert_rows(dest, table, std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    insert_rows(dest, table, batch)?;
    Ok(total)
}

/// Removes the row a new store's schema put in a singleton table, which the copy's row
/// replaces.
pub(super) fn clear_seeded(dest: &Conn, table: &TablePlan) -> Result<(), StoreError> {
    if SEEDED.contains(&table.name.as_str()) {
        dest.execute(&format!("DELETE FROM {}", quoted(&table.name)), ())?;
    }
    Ok(())
}

/// Rows per INSERT for a table of `width` columns: a power of two, so a short batch
/// splits into few distinct statements (each prepared once).
fn rows_per_batch(width: usize) -> usize {
    let most = (MAX_PARAMETERS / width.max(1)).clamp(1, MAX_BATCH_ROWS);
    1 << most.ilog2()
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
        _ => 8,
    }
}

/// Inserts `values` (whole rows) with as few statements as the batch sizes allow:
/// chunks of a power of two rows each.
fn insert_rows(dest: &Conn, table: &TablePlan, mut values: Vec<Value>) -> Result<(), StoreError> {
    let width = table.columns.len();
    while !values.is_empty() {
        let rows = values.len() / width;
        let chunk = 1usize << rows.ilog2();
        let rest = values.split_off(chunk * width);
        let sql = insert_sql(table, chunk);
        dest.prepare_cached(&sql)?.execute(values)?;
        values = rest;
    }
    Ok(())
}

/// `INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4), …` for `rows` rows.
pub(super) fn insert_sql(table: &TablePlan, rows: usize) -> String {
    let width = table.columns.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let slots: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
            format!("({})", slots.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        quoted(&table.name),
        column_list(&table.columns),
        tuples.join(", ")
    )
}

/// Moves the table's identity sequence (if it has one) past its highest id, so the next
/// row inserted gets a new one.
fn reset_sequence(dest: &Conn, table: &str) -> Result<(), StoreError> {
    dest.execute_batch(&format!(
        "SELECT setval(pg_get_serial_sequence('{}', 'id'), COALESCE(MAX(id), 1), \
         MAX(id) IS NOT NULL) FROM {}",
        quoted(table).replace('\'', "''"),
        quoted(table)
    ))?;
    Ok(())
}

/// After the commit: both sides compared, and every copied message queued for
/// PostgreSQL's search index.
fn verify(source: &Conn, dest: &Conn, plan: &[TablePlan]) -> Result<Vec<CopyCheck>, StoreError> {
    let mut checks = compare(source, dest, plan)?;
    checks.push(check(
        "messages queued for search",
        count(source, "messages")?,
        count(dest, "search_pending")?,
    ));
    Ok(checks)
}

/// The two stores compared: rows per table, Message-IDs, raw messages (totals and a
/// sample byte for byte). Either may be the SQLite one.
pub(super) fn compare(
    source: &Conn,
    dest: &Conn,
    plan: &[TablePlan],
) -> Result<Vec<CopyCheck>, StoreError> {
    let mut checks = Vec::new();
    for table in plan {
        checks.push(check(
            &format!("rows in {}", table.name),
            count(source, &table.name)?,
            count(dest, &table.name)?,
        ));
    }
    checks.push(check(
        "Message-IDs (SHA-256 of the sorted list)",
        message_ids_digest(source)?,
        message_ids_digest(dest)?,
    ));
    checks.push(check(
        "raw messages (count, sizes, body bytes)",
        raw_totals(source)?,
        raw_totals(dest)?,
    ));
    checks.push(raw_sample_check(source, dest)?);
    Ok(checks)
}

fn check<T: PartialEq + std::fmt::Display>(what: &str, source: T, destination: T) -> CopyCheck {
    CopyCheck {
        what: what.to_string(),
        ok: source == destination,
        source: source.to_string(),
        destination: destination.to_string(),
    }
}

/// A SHA-256 over the sorted (inbox, message_id) pairs of known_ids, then the sorted
/// Message-IDs of messages, each field prefixed by its length. PostgreSQL text holds no
/// NUL; the store keeps it as U+FFFD there, and so does this digest on both sides.
fn message_ids_digest(conn: &Conn) -> Result<String, StoreError> {
    let field = |r: &Row, i: usize| -> super::db::Result<String> {
        Ok(r.get::<_, String>(i)?.replace('\0', "\u{FFFD}"))
    };
    let mut known: Vec<(String, String)> = conn
        .prepare("SELECT inbox, message_id FROM known_ids")?
        .query_map((), |r| Ok((field(r, 0)?, field(r, 1)?)))?
        .collect::<Result<_, _>>()?;
    known.sort_unstable();
    let mut ids: Vec<String> = conn
        .prepare("SELECT message_id FROM messages WHERE message_id IS NOT NULL")?
        .query_map((), |r| field(r, 0))?
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    let mut hash = Sha256::new();
    let mut add = |text: &str| {
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text.as_bytes());
    };
    for (inbox, id) in &known {
        add(inbox);
        add(id);
    }
    add("--- messages ---");
    for id in &ids {
        add(id);
    }
    Ok(hex(&hash.finalize()))
}

fn raw_totals(conn: &Conn) -> Result<String, StoreError> {
    let length = match conn.dialect() {
        Dialect::Sqlite => "length(CAST(body AS BLOB))",
        Dialect::Postgres => "octet_length(body)",
    };
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM({length}), 0) FROM raw_messages"
    );
    Ok(conn.query_row(&sql, (), |r| {
        let (n, size, body): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(format!(
            "{n} messages, {size} bytes by size, {body} body bytes"
        ))
    })?)
}

/// Up to [`RAW_SAMPLE`] raw messages, spread over the ids, compared by SHA-256.
fn raw_sample_check(source: &Conn, dest: &Conn) -> Result<CopyCheck, StoreError> {
    let ids: Vec<i64> = source
        .prepare("SELECT id FROM raw_messages ORDER BY id")?
        .query_map((), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let step = ids.len().div_ceil(RAW_SAMPLE).max(1);
    let mut sample: Vec<i64> = ids.iter().step_by(step).copied().collect();
    if let Some(last) = ids.last().filter(|l| sample.last() != Some(*l)) {
        sample.push(*last);
    }
    let mut equal = 0;
    for id in &sample {
        if body_digest(source, *id)? == body_digest(dest, *id)? {
            equal += 1;
        }
    }
    Ok(CopyCheck {
        what: "raw messages compared byte for byte (a sample)".into(),
        source: format!("{} sampled", sample.len()),
        destination: format!("{equal} identical"),
        ok: equal == sample.len(),
    })
}

fn body_digest(conn: &Conn, id: i64) -> Result<Option<String>, StoreError> {
    use super::db::OptionalExtension;
    let body: Option<Vec<u8>> = conn
        .query_row("SELECT body FROM raw_messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(body.map(|b| hex(&Sha256::digest(&b))))
}

pub(super) fn count(conn: &Conn, table: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        &format!("SELECT COUNT(*) FROM {}", quoted(table)),
        (),
        |r| r.get(0),
    )?)
}

fn strings<P: super::db::Params>(
    conn: &Conn,
    sql: &str,
    params: P,
) -> Result<Vec<String>, StoreError> {
    Ok(conn
        .prepare(sql)?
        .query_map(params, |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// An identifier in double quotes (names come from the schemas, not from outside).
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(width: usize) -> TablePlan {
        TablePlan {
            name: "t".into(),
            columns: (0..width).map(|c| format!("c{c}")).collect(),
            has_id: false,
        }
    }

    #[test]
    fn batches_are_powers_of_two_within_the_parameter_limit() {
        assert_eq!(rows_per_batch(1), MAX_BATCH_ROWS);
        assert_eq!(rows_per_batch(23), 512);
        assert_eq!(rows_per_batch(200), 256);
        assert_eq!(rows_per_batch(70_000), 1);
        for width in 1..300 {
            let rows = rows_per_batch(width);
            assert!(rows.is_power_of_two() && rows * width <= MAX_PARAMETERS);
        }
    }

    #[test]
    fn insert_statements_number_every_value() {
        assert_eq!(
            insert_sql(&plan_of(2), 2),
            r#"INSERT INTO "t" ("c0", "c1") VALUES (?1, ?2), (?3, ?4)"#
        );
    }

    #[test]
    fn fts_tables_stay_behind() {
        for name in [
            "messages_fts",
            "messages_fts_data",
            "fts_progress",
            "sqlite_stat1",
        ] {
            assert!(is_not_copied(name), "{name}");
        }
        assert!(!is_not_copied("messages"));
    }
}
