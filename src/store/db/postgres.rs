//! The PostgreSQL side of [`Conn`](super::Conn): a session with its own prepared
//! statements, driven by tokio-postgres on one small I/O runtime shared by every
//! session of the process. The store's code is synchronous (a writer thread, readers on
//! blocking threads), so each call waits for its answer on the calling thread; that
//! works the same inside and outside the daemon's runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::{DbError, Value};

/// Where the PostgreSQL database is and how to sign in. The password never appears in
/// `Debug` output or in errors.
#[derive(Clone)]
pub struct PgTarget {
    pub url: String,
    pub password: Option<String>,
    /// Extra trusted roots (PEM) for TLS to the database, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// `application_name` of the sessions: the node's name, seen in `pg_stat_activity`.
    pub application: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How long connecting may take before the database counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One PostgreSQL session.
pub struct PgConn {
    client: Client,
    statements: RefCell<HashMap<String, Statement>>,
    in_transaction: Cell<bool>,
}

impl PgConn {
    /// Connects; `read_only` sessions refuse writes (the CLI's and API's readers).
    pub fn connect(target: &PgTarget, read_only: bool) -> Result<PgConn, DbError> {
        let mut config: tokio_postgres::Config = target
            .url
            .parse()
            .map_err(|e| DbError::Other(format!("store.url: {e}")))?;
        if let Some(password) = &target.password {
            config.password(password);
        }
        // A database host that vanishes without closing its sessions (power, network)
        // is noticed within about a minute, not after the kernel's default of hours.
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(60))
            .application_name(&target.application);
        let tls = tls_connector(target)?;
        let connecting = io_runtime().spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "database session ended");
                }
            });
            Ok::<Client, tokio_postgres::Error>(client)
        });
        let client = block_on(connecting)
            .map_err(|e| DbError::Other(format!("database connection task: {e}")))?
            .map_err(|e| DbError::Unavailable(describe(&e)))?;
        let conn = PgConn {
            client,
            statements: RefCell::default(),
            in_transaction: Cell::new(false),
        };
        let mut setup = String::from(
            "SET synchronous_commit = on; SET client_min_messages = warning; \
             SET lock_timeout = '30s';",
        );
        if read_only {
            setup.push_str("SET default_transaction_read_only = on;");
        }
        conn.execute_batch(&setup)?;
        Ok(conn)
    }

    pub(super) fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        let outcome = block_on(self.client.batch_execute(sql)).map_err(error);
        self.track_transaction(sql, outcome.is_ok());
        outcome
    }

    /// Follows BEGIN/COMMIT/ROLLBACK sent as batches (how the store runs transactions).
    fn track_transaction(&self, sql: &str, succeeded: bool) {
        let head = sql.trim_start().to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("START TRANSACTION") {
            self.in_transaction.set(succeeded);
        } else if head.starts_with("COMMIT")
            || head.starts_with("END")
            || (head.starts_with("ROLLBACK") && !head.starts_with("ROLLBACK TO"))
        {
            self.in_transaction.set(false);
        }
    }

    pub(super) fn in_transaction(&self) -> bool {
        self.in_transaction.get() && !self.client.is_closed()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The statement for `sql` (written with `?` placeholders), prepared once.
    pub(super) fn prepare(&self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement =
            block_on(self.client.prepare(&translate(sql))).map_err(|e| match error(e) {
                DbError::Other(m) => DbError::Other(format!("{m}, preparing: {}", one_line(sql))),
                other => other,
            })?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(
        &self,
        statement: &Statement,
        values: &[Value],
    ) -> Result<usize, DbError> {
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        block_on(self.client.execute(statement, &params))
            .map(|n| n as usize)
            .map_err(error)
    }

    pub(super) fn query(
        &self,
        statement: &Statement,
        values: &[Value],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        block_on(self.client.query(statement, &params)).map_err(error)
    }
}

/// The PostgreSQL form of a statement written for both backends: `$N` placeholders,
/// scalar `MAX(a, b)`/`MIN(a, b)` as `GREATEST`/`LEAST`, `json_each(x)` as
/// `json_array_elements_text(x::json)` (its column is `value` on both), and
/// `INSERT OR IGNORE` as `ON CONFLICT DO NOTHING`.
pub fn translate(sql: &str) -> String {
    let mut sql = rewrite_calls(&placeholders(sql));
    if let Some(start) = find_word(&sql, "INSERT OR IGNORE INTO", 0) {
        sql.replace_range(start..start + "INSERT OR IGNORE INTO".len(), "INSERT INTO");
        let end = sql.trim_end().trim_end_matches(';').len();
        sql.replace_range(end.., " ON CONFLICT DO NOTHING");
    }
    sql
}

/// Rewrites the calls PostgreSQL spells differently (see [`translate`]).
fn rewrite_calls(sql: &str) -> String {
    let mut out = sql.to_string();
    let mut from = 0;
    while let Some((start, name)) = ["MAX(", "MIN(", "json_each("]
        .iter()
        .filter_map(|name| find_word(&out, name, from).map(|at| (at, *name)))
        .min()
    {
        let open = start + name.len() - 1;
        let Some((close, commas)) = matching_paren(&out, open) else {
            break;
        };
        let inner = out[open + 1..close].to_string();
        let replacement = match (name, commas) {
            ("json_each(", _) => format!("json_array_elements_text(({inner})::json)"),
            ("MAX(", 1..) => format!("GREATEST({inner})"),
            ("MIN(", 1..) => format!("LEAST({inner})"),
            _ => {
                from = open + 1;
                continue;
            }
        };
        out.replace_range(start..=close, &replacement);
        from = start + 1;
    }
    out
}

/// Where `word` (ASCII, any case) starts at or after `from`, not inside a longer name.
fn find_word(sql: &str, word: &str, from: usize) -> Option<usize> {
    let upper = sql.to_ascii_uppercase();
    let word = word.to_ascii_uppercase();
    let mut at = from;
    while let Some(found) = upper.get(at..)?.find(&word) {
        let start = at + found;
        let before = upper[..start].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// The `)` closing the `(` at `open`, and how many commas lie between them at the top
/// level (quotes respected).
fn matching_paren(sql: &str, open: usize) -> Option<(usize, usize)> {
    let (mut depth, mut commas, mut quote) = (0usize, 0usize, None);
    for (i, ch) in sql.char_indices().skip_while(|(i, _)| *i < open) {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, commas));
                }
            }
            (None, ',') if depth == 1 => commas += 1,
            _ => {}
        }
    }
    None
}

/// Rewrites `?N` to `$N` and numbers bare `?` in order; quoted text is left alone.
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 0;
    let mut quote: Option<char> = None;
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                out.push(ch);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                }
                out.push('$');
                out.push_str(&digits);
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A statement on one line, for an error message.
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rustls connector: the system's roots plus `ca_file`. tokio-postgres uses it as
/// the URL's `sslmode` says (`prefer` by default, `require` to insist).
fn tls_connector(target: &PgTarget) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &target.ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            DbError::Other(format!("store.ca_file {}: {e}", path.display()))
        };
        let pem = std::fs::read(path).map_err(|e| bad(&e))?;
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls_pki_types::CertificateDer = cert.map_err(|e| bad(&e))?;
            roots.add(cert).map_err(|e| bad(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The runtime that drives every session's socket (one thread; the work is I/O).
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("database-io")
            .enable_all()
            .build()
            .expect("starting the database I/O runtime")
    })
}

/// Waits for `future` on this thread. The futures waited on here only exchange
/// messages with session tasks on the I/O runtime, so any thread may wait, including
/// one of the daemon's runtime threads.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A tokio-postgres error in words: the server's code and message when it sent one.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    // The driver's own text is the kind ("error performing TLS handshake"); the causes
    // say why ("invalid peer certificate: UnknownIssuer").
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Classifies a tokio-postgres error.
fn error(e: tokio_postgres::Error) -> DbError {
    let text = describe(&e);
    let Some(code) = e.code() else {
        // No answer from the server: the session is closed or the socket failed.
        return DbError::Unavailable(text);
    };
    let class = &code.code()[..2];
    if *code == SqlState::DISK_FULL {
        DbError::Full(text)
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
    {
        DbError::Busy(text)
    } else if class == "23" {
        DbError::Constraint(text)
    } else if matches!(class, "08" | "53" | "57") || *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        DbError::Unavailable(text)
    } else {
        DbError::Other(text)
    }
}

/// Column `index` of a PostgreSQL row, in the shared storage classes.
pub(super) fn column(row: &tokio_postgres::Row, index: usize) -> Result<Value, DbError> {
    let Some(column) = row.columns().get(index) else {
        return Err(DbError::Conversion(format!("no column {index}")));
    };
    let ty = column.type_().clone();
    let bad = |e: Box<dyn std::error::Error + Sync + Send>| {
        DbError::Conversion(format!("column {} ({ty}): {e}", column.name()))
    };
    let value = match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map(|v| v.map(Value::Integer)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(|i| Value::Integer(i.into()))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(|i| Value::Integer(i.into()))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map(|v| v.map(|b| Value::Integer(b.into()))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map(|v| v.map(Value::Real)),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map(|v| v.map(|f| Value::Real(f.into()))),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(index)
            .map(|v| v.map(Value::Blob)),
        Type::NUMERIC => row
            .try_get::<_, Option<Numeric>>(index)
            .map(|v| v.map(|n| n.0)),
        _ => row
            .try_get::<_, Option<String>>(index)
            .map(|v| v.map(Value::Text)),
    };
    value
        .map(|v| v.unwrap_or(Value::Null))
        .map_err(|e| bad(Box::new(e)))
}

/// A NUMERIC (what SUM and AVG of integers give) read as an integer when it has no
/// fraction, else as a float.
struct Numeric(Value);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short numeric".into())
        };
        let (digits, weight, sign, scale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
        if sign == 0xC000 {
            return Ok(Numeric(Value::Null));
        }
        let mut value = 0f64;
        for k in 0..digits.max(0) as usize {
            let exponent = i32::from(weight) - k as i32;
            value += f64::from(word(4 + k)?) * 10000f64.powi(exponent);
        }
        if sign == 0x4000 {
            value = -value;
        }
        let exact = scale == 0 && value.abs() < 9.0e15;
        Ok(Numeric(if exact {
            Value::Integer(value as i64)
        } else {
            Value::Real(value)
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => integer_to_sql(*i, ty, out),
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::FLOAT8 => f.to_sql(ty, out),
                _ => f.to_string().to_sql(&Type::TEXT, out),
            },
            // PostgreSQL text cannot hold NUL; mail can. It is kept as U+FFFD.
            Value::Text(s) if s.contains('\0') => s.replace('\0', "\u{FFFD}").to_sql(ty, out),
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                Type::INT8 => parsed::<i64>(s)?.to_sql(ty, out),
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            Value::Blob(b) => b.as_slice().to_sql(&Type::BYTEA, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn integer_to_sql(
    i: i64,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
    match *ty {
        Type::INT8 => i.to_sql(ty, out),
        Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
        Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
        Type::BOOL => (i != 0).to_sql(ty, out),
        Type::FLOAT8 => (i as f64).to_sql(ty, out),
        Type::FLOAT4 => (i as f32).to_sql(ty, out),
        _ => i.to_string().to_sql(&Type::TEXT, out),
    }
}

fn parsed<T: std::str::FromStr>(s: &str) -> Result<T, Box<dyn std::error::Error + Sync + Send>>
where
    T::Err: std::error::Error + Sync + Send + 'static,
{
    Ok(s.parse::<T>()?)
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            placeholders("SELECT ?1, ?2 WHERE a = ?1"),
            "SELECT $1, $2 WHERE a = $1"
        );
        assert_eq!(
            placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(placeholders("x = '?' AND y = ?"), "x = '?' AND y = $1");
    }

    #[test]
    fn scalar_max_min_json_each_and_insert_or_ignore_are_rewritten() {
        use super::translate;
        assert_eq!(
            translate("SET a = MAX(a + ?1, 0), b = MIN(b, ?2) WHERE c = (SELECT MAX(x) FROM t)"),
            "SET a = GREATEST(a + $1, 0), b = LEAST(b, $2) WHERE c = (SELECT MAX(x) FROM t)"
        );
        assert_eq!(
            translate("SELECT j.value FROM m, json_each(m.to_json) j"),
            "SELECT j.value FROM m, json_array_elements_text((m.to_json)::json) j"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO p (a) VALUES (?1)"),
            "INSERT INTO p (a) VALUES ($1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("SELECT mymax(a, b), MAX(a,\n b)"),
            "SELECT mymax(a, b), GREATEST(a,\n b)"
        );
    }
}
