//! The store's one error type, classified the way callers branch on it.

use rusqlite::ErrorCode;

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
