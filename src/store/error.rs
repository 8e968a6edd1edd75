//! The store's one error type, classified the way callers branch on it.

use super::db::DbError;

/// A storage failure, classified the way callers branch on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The disk (or quota) is full: callers answer 452 4.3.1 and retry later.
    #[error("storage full: {0}")]
    Full(String),
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached or written now (PostgreSQL down, read-only):
    /// callers answer 451 4.3.0 and retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Lost a race with another node's transaction (deadlock, serialization failure):
    /// the job was rolled back alone and may be tried again.
    #[error("{0}")]
    Busy(String),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
    /// The change no longer applies (the conversation is gone, or not in trash).
    #[error("{0}")]
    Conflict(String),
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Full(m) => StoreError::Full(m),
            DbError::Unavailable(m) => {
                StoreError::Unavailable(format!("database unavailable: {m}"))
            }
            DbError::Busy(m) => StoreError::Busy(format!("database busy: {m}")),
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::from(e).into()
    }
}
