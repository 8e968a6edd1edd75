//! IMAP sync state: per-folder UID checkpoints and per-channel poller status.
//!
//! [`file_batch`] files a batch of fetched messages and advances the folder's
//! checkpoint in the same transaction, so a crash can repeat a batch (Message-ID dedupe
//! makes that harmless) but can never skip one. The status rows exist so that
//! `inboxgate channels status`, a separate process, can see what the daemon's pollers
//! are doing.

use rusqlite::{params, Connection, OptionalExtension};

use super::ingest::{file, NewInbound};
use super::{Reader, StoreError};

/// Where a folder's sync stands: the mailbox's UIDVALIDITY and the highest UID filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Messages fetched from one folder, ready to file, with the checkpoint they reach.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub channel: String,
    pub folder: String,
    pub checkpoint: Checkpoint,
    pub messages: Vec<NewInbound>,
}

/// How a batch was filed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchFiled {
    pub stored: u64,
    pub duplicates: u64,
}

/// A poller's state as `channels status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Syncing,
    Idle,
    Backoff,
    AuthFailed,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Syncing => "syncing",
            SyncState::Idle => "idle",
            SyncState::Backoff => "backoff",
            SyncState::AuthFailed => "auth_failed",
        }
    }
}

/// One channel's persisted sync status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSync {
    pub channel: String,
    pub state: String,
    pub state_since: i64,
    pub last_sync_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub ingested: i64,
}

/// The folder's checkpoint, if it was ever synced.
pub fn checkpoint(
    conn: &Connection,
    channel: &str,
    folder: &str,
) -> Result<Option<Checkpoint>, StoreError> {
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

/// Files every message of the batch and advances the checkpoint, in one transaction.
pub fn file_batch(conn: &Connection, batch: &FetchedBatch) -> Result<BatchFiled, StoreError> {
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
pub fn save_checkpoint(
    conn: &Connection,
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
pub fn set_state(
    conn: &Connection,
    channel: &str,
    state: SyncState,
    now: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO channel_sync (channel, state, state_since, last_error, last_error_at)
         VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?3 END)
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
pub fn record_sync(conn: &Connection, channel: &str, now: i64) -> Result<(), StoreError> {
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
        let rows = stmt.query_map([], |r| {
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
