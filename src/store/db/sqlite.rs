//! The SQLite side of [`Conn`](super::Conn): values in and out of rusqlite, and its
//! errors classified.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ErrorCode;

use super::{DbError, Value};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Column `index` of a SQLite row.
pub(super) fn column(row: &rusqlite::Row, index: usize) -> Result<Value, DbError> {
    Ok(match row.get_ref(index).map_err(error)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| DbError::Conversion(format!("column {index}: {e}")))?
                .to_string(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

/// Classifies a rusqlite error.
pub(super) fn error(e: rusqlite::Error) -> DbError {
    if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
        return DbError::NoRows;
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => DbError::Full(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Busy(e.to_string()),
        Some(ErrorCode::ConstraintViolation) => DbError::Constraint(e.to_string()),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => DbError::Unavailable(e.to_string()),
        _ => DbError::Other(e.to_string()),
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        error(e)
    }
}
