//! Full-text indexing in batches, off the acknowledgement path: the daemon runs
//! [`index_pending`] every moment or so, and a search first catches the index up, so
//! results are complete while SMTP commits stay small.

use super::db::{Conn, Dialect};
use crate::params;

use super::error::StoreError;
use super::writer::Writer;

/// Messages indexed per transaction.
const BATCH: i64 = 2000;

/// Indexes up to one batch of messages not yet in `messages_fts`; returns how many.
/// A row's rowid is `conversation_id << 24 | ordinal` (see the FTS migration).
fn index_pending(conn: &Conn) -> Result<usize, StoreError> {
    if conn.dialect() == Dialect::Postgres {
        return index_pending_postgres(conn);
    }
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
    if conn.dialect() == Dialect::Postgres {
        // Rows are per message there; only the conversation they name changes.
        conn.execute(
            "UPDATE messages_search SET conversation_id = m.conversation_id
             FROM messages m WHERE m.id = messages_search.message_row AND m.conversation_id = ?1",
            [id],
        )?;
        return Ok(());
    }
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

/// PostgreSQL's index: one row per message (`messages_search`), its document made by
/// [`search_pg::search_document`](super::search_pg::search_document). New messages are
/// queued in `search_pending` by a trigger in their own transaction; each node takes a
/// batch with `SKIP LOCKED`, so nodes indexing at once never index a message twice and
/// a message committed late is never skipped.
fn index_pending_postgres(conn: &Conn) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM search_pending WHERE message_row IN
             (SELECT message_row FROM search_pending ORDER BY message_row LIMIT ?1
              FOR UPDATE SKIP LOCKED)
         RETURNING message_row",
    )?;
    let taken: Vec<i64> = stmt
        .query_map([BATCH], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if taken.is_empty() {
        return Ok(0);
    }
    let ids = format!(
        "[{}]",
        taken
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut read = conn.prepare_cached(
        "SELECT id, conversation_id, subject, text, from_addr || ' ' || COALESCE(from_name, '')
         FROM messages WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
    )?;
    let documents: Vec<(i64, i64, String)> = read
        .query_map([ids], |r| {
            let document = super::search_pg::search_document(
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
                &r.get::<_, String>(4)?,
            );
            Ok((r.get(0)?, r.get(1)?, document))
        })?
        .collect::<Result<_, _>>()?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages_search (message_row, conversation_id, doc)
         VALUES (?1, ?2, to_tsvector('simple', ?3))
         ON CONFLICT (message_row) DO NOTHING",
    )?;
    for (row, conversation, document) in &documents {
        insert.execute(params![row, conversation, document])?;
    }
    Ok(taken.len())
}

/// Removes a conversation deleted forever from the index.
pub(super) fn forget_conversation(conn: &Conn, id: i64) -> Result<(), StoreError> {
    match conn.dialect() {
        Dialect::Sqlite => {
            let first = id << super::read::FTS_ORDINAL_BITS;
            conn.execute(
                "DELETE FROM messages_fts WHERE rowid >= ?1 AND rowid < ?2",
                [first, first + (1 << super::read::FTS_ORDINAL_BITS)],
            )?;
        }
        Dialect::Postgres => {
            conn.execute(
                "DELETE FROM messages_search WHERE conversation_id = ?1",
                [id],
            )?;
        }
    }
    Ok(())
}
