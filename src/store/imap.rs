//! IMAP sync state: per-folder UID checkpoints and per-channel poller status.
//!
//! [`file_batch`] files a batch of fetched messages and advances the folder's
//! checkpoint in the same transaction, so a crash can repeat a batch (Message-ID dedupe
//! makes that harmless) but can never skip one. The status rows exist so that
//! `inboxgate channels status`, a separate process, can see what the daemon's pollers
//! are doing.

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::ingest::file;
pub use super::rows::{BatchFiled, ChannelSync, Checkpoint, FetchedBatch, Lease, SyncState};
use super::writer::Writer;

impl Writer {
    /// The folder's checkpoint, if it was ever synced.
    pub async fn imap_checkpoint(
        &self,
        channel: String,
        folder: String,
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.write(move |conn| checkpoint(conn, &channel, &folder))
            .await
    }

    /// Files every message of the batch and advances the folder's checkpoint, in one
    /// transaction; refused ([`StoreError::Conflict`]) when the batch's lease has passed
    /// to another node.
    pub async fn file_imap_batch(&self, batch: FetchedBatch) -> Result<BatchFiled, StoreError> {
        let node = self.node();
        self.write_retried(move |conn| {
            if let Some(lease) = batch.lease {
                renew_lease(
                    conn,
                    &batch.channel,
                    &batch.folder,
                    &node,
                    lease,
                    batch.fetched_at,
                )?;
            }
            file_batch(conn, &batch)
        })
        .await
    }

    /// Takes or renews this node's lease on a folder for `seconds`; `None` while another
    /// node holds it. A lease changing hands raises its fencing number.
    pub async fn take_imap_lease(
        &self,
        channel: String,
        folder: String,
        now: i64,
        seconds: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let node = self.node();
        self.write(move |conn| {
            let fencing: Option<i64> = conn
                .query_row(
                    "INSERT INTO imap_leases (channel, folder, holder, expires_at, fencing)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (channel, folder) DO UPDATE SET
                         fencing = CASE WHEN imap_leases.holder = excluded.holder
                                   THEN imap_leases.fencing ELSE imap_leases.fencing + 1 END,
                         holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE imap_leases.holder = excluded.holder OR imap_leases.expires_at < ?5
                     RETURNING fencing",
                    params![channel, folder, &*node, now + seconds, now],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(fencing.map(|fencing| Lease { fencing, seconds }))
        })
        .await
    }

    /// Records a checkpoint on its own (a folder found empty under a new UIDVALIDITY).
    pub async fn save_imap_checkpoint(
        &self,
        channel: String,
        folder: String,
        checkpoint: Checkpoint,
    ) -> Result<(), StoreError> {
        self.write(move |conn| save_checkpoint(conn, &channel, &folder, checkpoint))
            .await
    }

    /// Sets the channel's poller state; `error` (when given) becomes its last error.
    pub async fn set_channel_state(
        &self,
        channel: String,
        state: SyncState,
        now: i64,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| set_state(conn, &channel, state, now, error.as_deref()))
            .await
    }

    /// Records a completed sync of every folder: the channel is idle until the next one.
    pub async fn record_channel_sync(&self, channel: String, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| record_sync(conn, &channel, now))
            .await
    }
}

/// The folder's checkpoint, if it was ever synced.
fn checkpoint(conn: &Conn, channel: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE channel = ?1 AND folder = ?2",
    )?;
    Ok(stmt
        .query_row(params![channel, folder], |r| {
            Ok(Checkpoint {
                uidvalidity: r.get(0)?,
                last_uid: r.get(1)?,
            })
        })
        .optional()?)
}

/// Checks that `lease` is still this node's, with the same fencing number, and extends
/// it; the row stays locked until the batch commits, so a takeover waits for it.
fn renew_lease(
    conn: &Conn,
    channel: &str,
    folder: &str,
    node: &str,
    lease: Lease,
    now: i64,
) -> Result<(), StoreError> {
    let renewed = conn.execute(
        "UPDATE imap_leases SET expires_at = ?5
         WHERE channel = ?1 AND folder = ?2 AND holder = ?3 AND fencing = ?4",
        params![channel, folder, node, lease.fencing, now + lease.seconds],
    )?;
    if renewed == 0 {
        return Err(StoreError::Conflict(format!(
            "the lease on {channel} {folder} passed to another node; the batch is left to it"
        )));
    }
    Ok(())
}

/// Files every message of the batch and advances the checkpoint, in one transaction.
fn file_batch(conn: &Conn, batch: &FetchedBatch) -> Result<BatchFiled, StoreError> {
    let mut filed = BatchFiled::default();
    for message in &batch.messages {
        for f in file(conn, message)? {
            match f.message_row {
                Some(_) => filed.stored += 1,
                None => filed.duplicates += 1,
            }
        }
    }
    save_checkpoint(conn, &batch.channel, &batch.folder, batch.checkpoint)?;
    let mut stmt =
        conn.prepare_cached("UPDATE channel_sync SET ingested = ingested + ?2 WHERE channel = ?1")?;
    stmt.execute(params![batch.channel, filed.stored as i64])?;
    Ok(filed)
}

/// Records a checkpoint on its own (a folder found empty under a new UIDVALIDITY).
fn save_checkpoint(
    conn: &Conn,
    channel: &str,
    folder: &str,
    checkpoint: Checkpoint,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO imap_checkpoints (channel, folder, uidvalidity, last_uid)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (channel, folder) DO UPDATE
             SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
    )?;
    stmt.execute(params![
        channel,
        folder,
        checkpoint.uidvalidity,
        checkpoint.last_uid
    ])?;
    Ok(())
}

/// Sets the channel's state; `error` (when given) becomes its last error.
fn set_state(
    conn: &Conn,
    channel: &str,
    state: SyncState,
    now: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO channel_sync (channel, state, state_since, last_error, last_error_at)
         VALUES (?1, ?2, ?3, CAST(?4 AS TEXT),
                 CASE WHEN CAST(?4 AS TEXT) IS NULL THEN NULL ELSE CAST(?3 AS BIGINT) END)
         ON CONFLICT (channel) DO UPDATE SET
             state = excluded.state,
             state_since = CASE WHEN channel_sync.state = excluded.state
                                THEN channel_sync.state_since ELSE excluded.state_since END,
             last_error = COALESCE(excluded.last_error, channel_sync.last_error),
             last_error_at = COALESCE(excluded.last_error_at, channel_sync.last_error_at)",
    )?;
    stmt.execute(params![channel, state.as_str(), now, error])?;
    Ok(())
}

/// Records a completed sync of every folder: the channel is idle until the next one.
fn record_sync(conn: &Conn, channel: &str, now: i64) -> Result<(), StoreError> {
    set_state(conn, channel, SyncState::Idle, now, None)?;
    let mut stmt =
        conn.prepare_cached("UPDATE channel_sync SET last_sync_at = ?2 WHERE channel = ?1")?;
    stmt.execute(params![channel, now])?;
    Ok(())
}

impl Reader {
    /// Every channel's persisted sync status.
    pub fn channel_sync(&self) -> Result<Vec<ChannelSync>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT channel, state, state_since, last_sync_at, last_error, last_error_at,
                    ingested
             FROM channel_sync ORDER BY channel",
        )?;
        let rows = stmt.query_map((), |r| {
            Ok(ChannelSync {
                channel: r.get(0)?,
                state: r.get(1)?,
                state_since: r.get(2)?,
                last_sync_at: r.get(3)?,
                last_error: r.get(4)?,
                last_error_at: r.get(5)?,
                ingested: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
