//! Split and merge (SPEC G3): the fix for a threading mistake. A split moves one
//! message out of its conversation into a new one (same inbox, same contact); a merge
//! moves every message, comment and timeline entry of one conversation into another
//! and leaves the first as a tombstone. Each is one transaction with its timeline
//! entries ("split" / "merge", naming the other conversation).
//!
//! Threading follows the move: a message's Message-ID in `known_ids` is repointed to
//! its new conversation (and the lookup in `ingest` follows the message row as well),
//! so later replies to a split message join the split conversation, and replies to a
//! merged conversation's messages join the one it was merged into. The search index
//! rows of both conversations are rebuilt, since their rowids carry the conversation.

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::error::StoreError;
use super::writer::Writer;

impl Writer {
    /// Moves message `message` out of conversation `id` into a new conversation;
    /// returns the new conversation's id. Resolves after COMMIT.
    pub async fn split_message(
        &self,
        id: i64,
        message: i64,
        actor: String,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.write_retried(move |conn| split(conn, id, message, &actor, now))
            .await
    }

    /// Moves everything of conversation `from` into `into`; `from` is left deleted.
    pub async fn merge_conversations(
        &self,
        from: i64,
        into: i64,
        actor: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_retried(move |conn| merge(conn, from, into, &actor, now))
            .await
    }
}

impl super::Reader {
    /// The conversation a merged (now deleted) conversation went into, with the inbox
    /// the merged one was in; `None` unless `id` was merged away.
    pub fn merged_into(&self, id: i64) -> Result<Option<(String, i64)>, StoreError> {
        let found: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT c.inbox, t.detail FROM conversations c
                 JOIN timeline t ON t.conversation_id = c.id AND t.action = 'merge'
                 WHERE c.id = ?1 AND c.deleted = 1
                 ORDER BY t.id DESC LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(found.and_then(|(inbox, detail)| {
            let target = detail?.strip_prefix(MERGED_INTO)?.parse().ok()?;
            Some((inbox, target))
        }))
    }
}

/// Timeline details, each naming the other conversation (`#42`).
const SPLIT_TO: &str = "to #";
const SPLIT_FROM: &str = "from #";
const MERGED_FROM: &str = "from #";
const MERGED_INTO: &str = "into #";

/// What a split or merge reads of a conversation before moving anything.
struct Source {
    inbox: String,
    status: String,
    assignee: Option<String>,
    message_count: i64,
    last_message_at: i64,
}

/// A conversation that still takes changes: not deleted, not in trash.
fn live_conversation(conn: &Conn, id: i64) -> Result<Source, StoreError> {
    // As for every change (actions::apply): one node at a time per conversation.
    conn.lock("conversation", &id.to_string())?;
    let row: Option<(Source, Option<i64>)> = conn
        .prepare_cached(
            "SELECT inbox, status, assignee, message_count, last_message_at, trashed_at
             FROM conversations WHERE id = ?1 AND deleted = 0",
        )?
        .query_row([id], |r| {
            Ok((
                Source {
                    inbox: r.get(0)?,
                    status: r.get(1)?,
                    assignee: r.get(2)?,
                    message_count: r.get(3)?,
                    last_message_at: r.get(4)?,
                },
                r.get(5)?,
            ))
        })
        .optional()?;
    match row {
        None => Err(StoreError::Conflict(format!(
            "conversation {id} no longer exists"
        ))),
        Some((_, Some(_))) => Err(StoreError::Conflict(format!(
            "conversation {id} is in trash: restore it first"
        ))),
        Some((source, None)) => Ok(source),
    }
}

fn split(conn: &Conn, id: i64, message: i64, actor: &str, now: i64) -> Result<i64, StoreError> {
    let source = live_conversation(conn, id)?;
    let in_conversation: Option<i64> = conn
        .query_row(
            "SELECT conversation_id FROM messages WHERE id = ?1",
            [message],
            |r| r.get(0),
        )
        .optional()?;
    if in_conversation != Some(id) {
        return Err(StoreError::Conflict(format!(
            "message {message} is not in conversation {id}"
        )));
    }
    if source.message_count < 2 {
        return Err(StoreError::Conflict(format!(
            "conversation {id} has one message: there is nothing to split off"
        )));
    }
    // Index rows carry their conversation: index what is pending before rows move.
    super::search_index::index_all_pending(conn)?;
    let new_id = new_conversation_for(conn, id, message, source.assignee.as_deref())?;
    // "Why here?" (`thread_reason`) now has a new answer.
    conn.execute(
        "UPDATE messages SET conversation_id = ?2, thread_reason = 'split' WHERE id = ?1",
        params![message, new_id],
    )?;
    recount(conn, id)?;
    repoint_known_ids(conn, message, &source.inbox, &source.inbox, new_id)?;
    conn.execute(
        "INSERT OR IGNORE INTO participants (conversation_id, address)
         SELECT CAST(?2 AS BIGINT), from_addr FROM messages WHERE id = ?1
         UNION SELECT CAST(?2 AS BIGINT), j.value FROM messages m, json_each(m.to_json) j WHERE m.id = ?1
         UNION SELECT CAST(?2 AS BIGINT), j.value FROM messages m, json_each(m.cc_json) j WHERE m.id = ?1
         UNION SELECT CAST(?2 AS BIGINT), ct.email FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
               WHERE c.id = ?2",
        params![message, new_id],
    )?;
    super::search_index::reindex_conversation(conn, id)?;
    super::search_index::reindex_conversation(conn, new_id)?;
    let to = format!("{SPLIT_TO}{new_id}");
    super::actions::record(conn, id, actor, "split", Some(&to), now)?;
    let from = format!("{SPLIT_FROM}{id}");
    super::actions::record(conn, new_id, actor, "split", Some(&from), now)?;
    Ok(new_id)
}

/// The conversation a split message starts: the source's inbox, channel, contact,
/// assignee and classification flags; the message's subject and time; open.
fn new_conversation_for(
    conn: &Conn,
    id: i64,
    message: i64,
    assignee: Option<&str>,
) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "INSERT INTO conversations (inbox, channel, subject, subject_norm, contact_id,
             assignee, created_at, last_message_at, message_count, spam, filtered,
             verdict, reasons)
         SELECT c.inbox, c.channel, m.subject, m.subject_norm, c.contact_id, ?3,
                m.received_at, m.received_at, 1, c.spam, c.filtered, c.verdict, c.reasons
         FROM conversations c, messages m WHERE c.id = ?1 AND m.id = ?2
         RETURNING id",
        params![id, message, assignee],
        |r| r.get(0),
    )?)
}

/// Sets a conversation's message count and last activity from its messages.
fn recount(conn: &Conn, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE conversations SET
             message_count = (SELECT COUNT(*) FROM messages WHERE conversation_id = ?1),
             last_message_at = COALESCE(
                 (SELECT MAX(received_at) FROM messages WHERE conversation_id = ?1),
                 last_message_at)
         WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// Points the Message-ID (or content hash) a message was filed under in `from_inbox`
/// at conversation `to`, and makes it known in `to_inbox` too (a merge across
/// inboxes): a reply to the message then lands in `to` at either inbox's address.
/// Where `to_inbox` knows the id already (the same mail delivered to both), that row
/// stays as it is.
fn repoint_known_ids(
    conn: &Conn,
    message: i64,
    from_inbox: &str,
    to_inbox: &str,
    to: i64,
) -> Result<(), StoreError> {
    let message_id: Option<String> = conn.query_row(
        "SELECT message_id FROM messages WHERE id = ?1",
        [message],
        |r| r.get(0),
    )?;
    let row = match message_id {
        // A point lookup on the primary key.
        Some(_) => "inbox = ?1 AND message_id = ?2 AND message_row = ?3",
        // Filed under a content hash (no Message-ID): found by its row.
        None => "inbox = ?1 AND message_row = ?3 AND CAST(?2 AS TEXT) IS NULL",
    };
    conn.prepare_cached(&format!(
        "UPDATE known_ids SET conversation_id = ?4 WHERE {row}"
    ))?
    .execute(params![from_inbox, message_id, message, to])?;
    if to_inbox != from_inbox {
        conn.prepare_cached(&format!(
            "INSERT OR IGNORE INTO known_ids (inbox, message_id, conversation_id, message_row)
             SELECT CAST(?4 AS TEXT), message_id, conversation_id, message_row FROM known_ids WHERE {row}"
        ))?
        .execute(params![from_inbox, message_id, message, to_inbox])?;
    }
    Ok(())
}

fn merge(conn: &Conn, from: i64, into: i64, actor: &str, now: i64) -> Result<(), StoreError> {
    if from == into {
        return Err(StoreError::Conflict(format!(
            "conversation {from} cannot be merged into itself"
        )));
    }
    let source = live_conversation(conn, from)?;
    let target = live_conversation(conn, into)?;
    super::search_index::index_all_pending(conn)?;
    let moved: Vec<i64> = {
        let mut stmt = conn.prepare_cached("SELECT id FROM messages WHERE conversation_id = ?1")?;
        let rows = stmt.query_map([from], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    conn.execute(
        "UPDATE messages SET conversation_id = ?2, thread_reason = 'merged'
         WHERE conversation_id = ?1",
        params![from, into],
    )?;
    for message in moved {
        repoint_known_ids(conn, message, &source.inbox, &target.inbox, into)?;
    }
    move_conversation_rows(conn, from, into)?;
    // The merged conversation is open when either was; it keeps its assignee, or
    // takes the other's.
    let status = if source.status == "open" {
        "open"
    } else {
        target.status.as_str()
    };
    conn.execute(
        "UPDATE conversations SET status = ?2, assignee = COALESCE(assignee, ?3),
             last_message_at = MAX(last_message_at, ?4),
             message_count = (SELECT COUNT(*) FROM messages WHERE conversation_id = ?1)
         WHERE id = ?1",
        params![into, status, source.assignee, source.last_message_at],
    )?;
    conn.execute(
        "UPDATE conversations SET deleted = 1, assignee = NULL, message_count = 0
         WHERE id = ?1",
        [from],
    )?;
    super::search_index::reindex_conversation(conn, from)?;
    super::search_index::reindex_conversation(conn, into)?;
    let merged_from = format!("{MERGED_FROM}{from}");
    super::actions::record(conn, into, actor, "merge", Some(&merged_from), now)?;
    let merged_into = format!("{MERGED_INTO}{into}");
    super::actions::record(conn, from, actor, "merge", Some(&merged_into), now)?;
    Ok(())
}

/// Participants, timeline (comments included) and the ticket follow the messages. A
/// ticket moves when the target has none; otherwise the merged one's ticket goes, as
/// on delete forever.
fn move_conversation_rows(conn: &Conn, from: i64, into: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO participants (conversation_id, address)
         SELECT CAST(?2 AS BIGINT), address FROM participants WHERE conversation_id = ?1",
        params![from, into],
    )?;
    conn.execute(
        "DELETE FROM participants WHERE conversation_id = ?1",
        [from],
    )?;
    conn.execute(
        "UPDATE timeline SET conversation_id = ?2 WHERE conversation_id = ?1",
        params![from, into],
    )?;
    conn.execute(
        "UPDATE tickets SET conversation_id = ?2 WHERE conversation_id = ?1
           AND NOT EXISTS (SELECT 1 FROM tickets WHERE conversation_id = ?2)",
        params![from, into],
    )?;
    conn.execute("DELETE FROM tickets WHERE conversation_id = ?1", [from])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit::{inbound, store};
    use crate::store::{ListFilter, Reader};

    /// A customer's message; `reply_to` becomes its In-Reply-To and References.
    fn mail(id: &str, reply_to: &[&str], subject: &str, text: &str) -> String {
        let mut headers = format!("Message-ID: <{id}>\r\nFrom: jan@klant.example\r\n");
        if let Some(parent) = reply_to.last() {
            let refs: Vec<String> = reply_to.iter().map(|r| format!("<{r}>")).collect();
            headers.push_str(&format!(
                "In-Reply-To: <{parent}>\r\nReferences: {}\r\n",
                refs.join(" ")
            ));
        }
        format!("{headers}To: support@demo.hs-inbox.com\r\nSubject: {subject}\r\n\r\n{text}\r\n")
    }

    async fn file(writer: &Writer, raw: &str, at: i64) -> (i64, i64) {
        let filed = writer
            .file_inbound(inbound(raw, "jan@klant.example", at))
            .await
            .expect("filed");
        (filed[0].conversation_id, filed[0].message_row.expect("row"))
    }

    fn search(reader: &Reader, words: &str) -> Vec<i64> {
        let filter = ListFilter {
            search: Some(words.into()),
            ..ListFilter::default()
        };
        let rows = reader.conversations(&filter).expect("search");
        rows.into_iter().map(|c| c.id).collect()
    }

    fn actions(reader: &Reader, id: i64) -> Vec<(String, Option<String>)> {
        let timeline = reader.timeline(id).expect("timeline");
        timeline.into_iter().map(|t| (t.action, t.detail)).collect()
    }

    #[tokio::test]
    async fn a_reply_to_a_split_message_follows_it_into_the_split_conversation() {
        let (_dir, store, writer) = store();
        let (a, _) = file(&writer, &mail("a@k", &[], "Order 12", "kettle"), 100).await;
        let (joined, b_row) = file(
            &writer,
            &mail("b@k", &["a@k"], "Re: Order 12", "teapot"),
            200,
        )
        .await;
        assert_eq!(joined, a);
        let c = writer
            .split_message(a, b_row, "alice@demo.example".into(), 300)
            .await
            .expect("split");
        let reader = store.reader().expect("reader");
        let (source, split) = (
            reader.conversation(a).unwrap().expect("a"),
            reader.conversation(c).unwrap().expect("c"),
        );
        assert_eq!((source.message_count, source.last_message_at), (1, 100));
        assert_eq!((split.message_count, split.last_message_at), (1, 200));
        assert_eq!(split.subject, "Re: Order 12");
        assert_eq!(split.contact_email, "jan@klant.example");
        let moved = reader.messages(c).unwrap();
        assert_eq!(
            moved[0].thread_reason.as_deref(),
            Some("split"),
            "why here: split"
        );
        assert_eq!(
            actions(&reader, a),
            [("split".into(), Some(format!("to #{c}")))]
        );
        assert_eq!(
            actions(&reader, c),
            [("split".into(), Some(format!("from #{a}")))]
        );
        // The customer answers the split message (the old thread in References too).
        let (followed, _) = file(
            &writer,
            &mail("c@k", &["a@k", "b@k"], "Re: Order 12", "lid"),
            400,
        )
        .await;
        assert_eq!(followed, c, "the reply follows the split message");
        let (old, _) = file(&writer, &mail("d@k", &["a@k"], "Re: Order 12", "x"), 500).await;
        assert_eq!(
            old, a,
            "a reply to the first message stays in the old thread"
        );
        // Search names the conversation each message is in now, and numbering goes on.
        writer.index_search().await.expect("indexed");
        assert_eq!(search(&reader, "teapot"), [c]);
        assert_eq!(search(&reader, "lid"), [c]);
        assert_eq!(search(&reader, "kettle"), [a]);
    }

    #[tokio::test]
    async fn after_a_merge_replies_to_the_merged_conversation_land_in_the_target() {
        let (_dir, store, writer) = store();
        let (a, _) = file(&writer, &mail("a@k", &[], "Order 12", "kettle"), 100).await;
        let (b, _) = file(&writer, &mail("b@k", &[], "Invoice", "teapot"), 200).await;
        assert_ne!(a, b);
        writer
            .change_conversation(
                b,
                crate::store::Change::Comment("vip".into()),
                "bob".into(),
                250,
            )
            .await
            .expect("comment");
        writer
            .merge_conversations(b, a, "alice@demo.example".into(), 300)
            .await
            .expect("merged");
        let reader = store.reader().expect("reader");
        assert!(reader.conversation(b).unwrap().is_none(), "b is gone");
        assert_eq!(reader.merged_into(b).unwrap(), Some(("Support".into(), a)));
        assert_eq!(reader.merged_into(a).unwrap(), None);
        let target = reader.conversation(a).unwrap().expect("a");
        assert_eq!((target.message_count, target.last_message_at), (2, 200));
        let reasons: Vec<_> = reader
            .messages(a)
            .unwrap()
            .into_iter()
            .map(|m| m.thread_reason)
            .collect();
        assert_eq!(reasons, [Some("new".into()), Some("merged".into())]);
        assert_eq!(
            actions(&reader, a),
            [
                ("comment".into(), Some("vip".into())),
                ("merge".into(), Some(format!("from #{b}")))
            ]
        );
        let (reply, _) = file(&writer, &mail("c@k", &["b@k"], "Re: Invoice", "lid"), 400).await;
        assert_eq!(reply, a);
        writer.index_search().await.expect("indexed");
        assert_eq!(search(&reader, "teapot"), [a]);
        assert_eq!(search(&reader, "lid"), [a]);
    }

    #[tokio::test]
    async fn split_and_merge_refuse_what_does_not_apply() {
        let (_dir, _store, writer) = store();
        let (a, a_row) = file(&writer, &mail("a@k", &[], "Order 12", "kettle"), 100).await;
        let (b, b_row) = file(&writer, &mail("b@k", &[], "Invoice", "teapot"), 200).await;
        let split = |id, row| writer.split_message(id, row, "alice".into(), 300);
        let refused = split(a, a_row).await.expect_err("one message");
        assert!(refused.to_string().contains("one message"), "{refused}");
        let refused = split(a, b_row).await.expect_err("not in a");
        assert!(
            refused.to_string().contains("not in conversation"),
            "{refused}"
        );
        let merge = |from, into| writer.merge_conversations(from, into, "alice".into(), 300);
        assert!(merge(a, a).await.is_err(), "into itself");
        writer
            .change_conversation(b, crate::store::Change::Trash, "alice".into(), 300)
            .await
            .expect("trashed");
        let refused = merge(a, b).await.expect_err("target in trash");
        assert!(refused.to_string().contains("in trash"), "{refused}");
    }
}
