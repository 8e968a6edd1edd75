//! `from_addresses`: custom From addresses (SPEC E4) awaiting or holding confirmation.
//! A request stores the hash of a one-time code and queues the code's mail in the same
//! transaction; the code confirms the address.

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::outbound::file_system_mail;
use super::rows::NewSystemMail;
use super::writer::Writer;

impl Writer {
    /// Records a custom From address awaiting its code and queues the code's mail, in
    /// one transaction.
    pub async fn request_from_address(
        &self,
        channel: String,
        address: String,
        code_sha256: String,
        mail: NewSystemMail,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            request_from_address(conn, &channel, &address, &code_sha256, mail.now)?;
            file_system_mail(conn, &mail).map(|_| ())
        })
        .await
    }

    /// Confirms the pending address of `channel` whose code hashes to `code_sha256` and
    /// was requested at or after `since`; returns the address.
    pub async fn confirm_from_address(
        &self,
        channel: String,
        code_sha256: String,
        since: i64,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.write(move |conn| confirm_from_address(conn, &channel, &code_sha256, since, now))
            .await
    }
}

/// Records a requested custom From address with the hash of its one-time code.
fn request_from_address(
    conn: &Conn,
    channel: &str,
    address: &str,
    code_sha256: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO from_addresses (channel, address, code_sha256, requested_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (channel, address) DO UPDATE SET code_sha256 = excluded.code_sha256,
             requested_at = excluded.requested_at, confirmed_at = NULL",
    )?
    .execute(params![channel, address, code_sha256, now])?;
    Ok(())
}

/// Confirms the pending address of `channel` whose code hashes to `code_sha256` and was
/// requested at or after `since`; returns the address.
fn confirm_from_address(
    conn: &Conn,
    channel: &str,
    code_sha256: &str,
    since: i64,
    now: i64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE from_addresses SET confirmed_at = ?4
             WHERE channel = ?1 AND code_sha256 = ?2 AND requested_at >= ?3
               AND confirmed_at IS NULL
             RETURNING address",
        )?
        .query_row(params![channel, code_sha256, since, now], |r| r.get(0))
        .optional()?)
}

impl Reader {
    /// Whether `address` is a confirmed custom From address of `channel`.
    pub fn from_address_confirmed(&self, channel: &str, address: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM from_addresses
                 WHERE channel = ?1 AND address = ?2 AND confirmed_at IS NOT NULL",
                params![channel, address],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}
