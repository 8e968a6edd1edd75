//! `web_passwords` and `web_sessions`: the web inbox's sign-in (issue 13). Passwords
//! arrive already hashed (Argon2id, `inbox::password`); a session is found by the
//! SHA-256 of its secret and carries its CSRF token.

use super::db::OptionalExtension;
use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::writer::Writer;

/// A signed-in session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRow {
    pub id: i64,
    pub user: String,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A new session to store.
#[derive(Debug, Clone)]
pub struct NewWebSession {
    pub secret_sha256: String,
    pub user: String,
    pub csrf: String,
    pub now: i64,
}

impl Writer {
    /// Sets (or replaces) `email`'s password hash; the user's sessions end with it.
    pub async fn set_web_password(
        &self,
        email: String,
        hash: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO web_passwords (email, hash, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email) DO UPDATE SET hash = excluded.hash,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![email, hash, now])?;
            conn.prepare_cached("DELETE FROM web_sessions WHERE user_email = ?1")?
                .execute([&email])?;
            Ok(())
        })
        .await
    }

    /// Stores a new session; returns its id.
    pub async fn create_web_session(&self, session: NewWebSession) -> Result<i64, StoreError> {
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "INSERT INTO web_sessions
                         (secret_sha256, user_email, csrf, created_at, last_seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
                )?
                .query_row(
                    params![
                        session.secret_sha256,
                        session.user,
                        session.csrf,
                        session.now
                    ],
                    |r| r.get(0),
                )?)
        })
        .await
    }

    /// Ends a session (sign out, or found expired).
    pub async fn delete_web_session(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM web_sessions WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
        .await
    }

    /// Ends every session of a user not in `users` (lower-case emails): a user removed
    /// from the configuration is signed out for good, even if added back later.
    pub async fn end_sessions_of_removed_users(
        &self,
        users: Vec<String>,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| {
            let list = serde_json::to_string(&users)
                .map_err(|e| StoreError::Invalid(format!("user list: {e}")))?;
            Ok(conn
                .prepare_cached(
                    "DELETE FROM web_sessions
                     WHERE user_email NOT IN (SELECT value FROM json_each(?1))",
                )?
                .execute([list])?)
        })
        .await
    }
}

impl Reader {
    /// `email`'s password hash, if one was set.
    pub fn web_password(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT hash FROM web_passwords WHERE email = ?1")?
            .query_row([email], |r| r.get(0))
            .optional()?)
    }

    /// The session whose secret hashes to `secret_sha256`.
    pub fn web_session(&self, secret_sha256: &str) -> Result<Option<WebSessionRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, user_email, csrf, created_at, last_seen_at FROM web_sessions
                 WHERE secret_sha256 = ?1",
            )?
            .query_row([secret_sha256], |r| {
                Ok(WebSessionRow {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    csrf: r.get(2)?,
                    created_at: r.get(3)?,
                    last_seen_at: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// When session `id` began, if it still exists (not signed out or ended).
    pub fn web_session_created_at(&self, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT created_at FROM web_sessions WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// A marker that moves whenever a message is stored or a conversation changes
    /// (newest message row, newest timeline row): the web inbox's live updates poll it.
    pub fn change_marker(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages),
                    (SELECT COALESCE(MAX(id), 0) FROM timeline)",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}
