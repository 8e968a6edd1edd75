//! Full-text indexing in batches, off the acknowledgement path: the daemon runs
//! [`index_pending`] every moment or so, and a search first catches the index up, so
//! results are complete while SMTP commits stay small.

use super::db::Conn;
use crate::params;

use super::error::StoreError;
use super::writer::Writer;

/// Messages indexed per transaction.
const BATCH: i64 = 2000;

/// Indexes up to one batch of messages not yet in `messages_fts`; returns how many.
/// A row's rowid is `conversation_id << 24 | ordinal` (see the FTS migration).
fn index_pending(conn: &Conn) -> Result<usize, StoreError> {
    let last: i64 = conn.query_row(
        "SELECT last_message FROM fts_progress WHERE id = 1",
        (),
        |r| r.get(0),
    )?;
    let upto: Option<i64> = conn.query_row(
        "SELECT MAX(id) FROM (SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2)",
        params![last, BATCH],
        |r| r.get(0),
    )?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    let indexed = conn
        .prepare_cached(
            "INSERT INTO messages_fts (rowid, subject, text, sender)
         SELECT m.conversation_id * 16777216
                  + (SELECT COUNT(*) FROM messages o
                     WHERE o.conversation_id = m.conversation_id AND o.id <= m.id),
                m.subject, m.text, m.from_addr || ' ' || COALESCE(m.from_name, '')
         FROM messages m WHERE m.id > ?1 AND m.id <= ?2",
        )?
        .execute(params![last, upto])?;
    conn.execute(
        "UPDATE fts_progress SET last_message = ?1 WHERE id = 1",
        [upto],
    )?;
    Ok(indexed)
}

/// Rebuilds the index rows of conversation `id` after messages moved in or out of it
/// (split, merge): its rowid range is emptied and its indexed messages numbered again
/// in id order, as `index_pending` numbers them, so the next message's ordinal follows
/// on. Run after `index_all_pending`, so nothing of it is pending.
pub(super) fn reindex_conversation(conn: &Conn, id: i64) -> Result<(), StoreError> {
    let first = id << super::read::FTS_ORDINAL_BITS;
    conn.prepare_cached("DELETE FROM messages_fts WHERE rowid >= ?1 AND rowid < ?2")?
        .execute([first, first + (1 << super::read::FTS_ORDINAL_BITS)])?;
    conn.prepare_cached(
        "INSERT INTO messages_fts (rowid, subject, text, sender)
         SELECT m.conversation_id * 16777216 + ROW_NUMBER() OVER (ORDER BY m.id),
                m.subject, m.text, m.from_addr || ' ' || COALESCE(m.from_name, '')
         FROM messages m
         WHERE m.conversation_id = ?1
           AND m.id <= (SELECT last_message FROM fts_progress WHERE id = 1)",
    )?
    .execute([id])?;
    Ok(())
}

impl Writer {
    /// Indexes every message stored since the last run; returns how many.
    pub async fn index_search(&self) -> Result<usize, StoreError> {
        self.write(index_all_pending).await
    }

    /// `index_search` for callers outside the async runtime (a search catching up).
    pub fn index_search_blocking(&self) -> Result<usize, StoreError> {
        self.write_blocking(index_all_pending)
    }
}

/// Indexes everything pending, batch by batch (one call per writer job).
pub(super) fn index_all_pending(conn: &Conn) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = index_pending(conn)?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}
