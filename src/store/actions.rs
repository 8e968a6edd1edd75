//! Agents' changes to conversations (SPEC F4, F5, C2, C3), each written through the
//! single writer together with its timeline entry, in one transaction: a change is
//! never stored without the record of who made it.
//!
//! Access is decided before, by `inbox`; what must hold at the moment of writing
//! (the conversation still exists, delete-forever only from trash) is checked here,
//! inside the transaction, and refused with [`StoreError::Conflict`].

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::error::StoreError;
use super::writer::Writer;

/// One change to one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Assign to a user, or unassign (`None`).
    Assign(Option<String>),
    /// An internal note; never emailed.
    Comment(String),
    /// Close; `with_ticket` closes its ticket too.
    Close {
        with_ticket: bool,
    },
    Reopen,
    /// Move to another inbox, received on `channel` there.
    Move {
        inbox: String,
        channel: String,
    },
    Trash,
    Restore,
    /// Delete for good (only from trash): messages, raw copies no other inbox uses,
    /// participants and timeline go; the conversation row and its Message-IDs stay as
    /// tombstones so the same mail is never imported again.
    DeleteForever,
    /// Mark spam (`true`) or not spam (`false`): this thread only (C3).
    Spam(bool),
    /// Block the conversation's contact: this thread goes to Filtered, and so will
    /// their future threads (C2).
    BlockSender,
}

impl Change {
    /// The timeline's name for the change.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Assign(Some(_)) => "assign",
            Change::Assign(None) => "unassign",
            Change::Comment(_) => "comment",
            Change::Close { .. } => "close",
            Change::Reopen => "reopen",
            Change::Move { .. } => "move",
            Change::Trash => "trash",
            Change::Restore => "restore",
            Change::DeleteForever => "delete",
            Change::Spam(true) => "spam",
            Change::Spam(false) => "not_spam",
            Change::BlockSender => "block_sender",
        }
    }
}

impl Writer {
    /// Applies `change` to conversation `id` as `actor` at `now`; resolves after COMMIT.
    pub async fn change_conversation(
        &self,
        id: i64,
        change: Change,
        actor: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_retried(move |conn| apply(conn, id, &change, &actor, now))
            .await
    }

    /// Blocks (or unblocks) a sender address for future threads.
    pub async fn set_sender_blocked(
        &self,
        address: String,
        blocked: bool,
        actor: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| set_blocked(conn, &address, blocked, &actor, now))
            .await
    }

    /// Stores the hash of a new API token's secret for `user`; returns the token's id.
    pub async fn add_api_token(
        &self,
        user: String,
        hash: String,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.write(move |conn| {
            Ok(conn.query_row(
                "INSERT INTO api_tokens (user_email, hash, created_at) VALUES (?1, ?2, ?3)
                 RETURNING id",
                params![user, hash, now],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Deletes (revokes) an API token; whether it existed.
    pub async fn delete_api_token(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |conn| Ok(conn.execute("DELETE FROM api_tokens WHERE id = ?1", [id])? > 0))
            .await
    }

    /// Records that token `id` was used at `now`.
    pub async fn touch_api_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Sets a contact's owner (D3), creating the contact if needed.
    pub async fn set_contact_owner(
        &self,
        email: String,
        owner: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO contacts (email, created_at, owner) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email) DO UPDATE SET owner = ?3",
                params![email, now, owner],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a user's availability (F7).
    pub async fn set_availability(
        &self,
        user: String,
        available: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO user_status (email, available, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (email) DO UPDATE SET available = ?2, updated_at = ?3",
                params![user, available, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Unassigns every conversation assigned to someone not in `users` (D5: removed
    /// users' conversations become unassigned). Returns how many.
    pub async fn unassign_removed_users(
        &self,
        users: Vec<String>,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| unassign_removed(conn, &users, now))
            .await
    }
}

pub(super) fn apply(
    conn: &Conn,
    id: i64,
    change: &Change,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    // Changes to one conversation from several nodes take turns, as on one writer:
    // each sees the state the one before it left.
    conn.lock("conversation", &id.to_string())?;
    let trashed_at: Option<i64> = conn
        .query_row(
            "SELECT trashed_at FROM conversations WHERE id = ?1 AND deleted = 0",
            [id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::Conflict(format!("conversation {id} no longer exists")))?;
    let detail = match change {
        Change::Assign(assignee) => {
            update(conn, "assignee = ?2", params![id, assignee])?;
            assignee.clone()
        }
        Change::Comment(text) => Some(text.clone()),
        Change::Close { with_ticket } => {
            update(conn, "status = 'closed'", params![id])?;
            if *with_ticket {
                conn.prepare_cached(
                    "UPDATE tickets SET status = 'closed' WHERE conversation_id = ?1",
                )?
                .execute([id])?;
            }
            with_ticket.then(|| "with ticket".to_string())
        }
        Change::Reopen => {
            update(conn, "status = 'open'", params![id])?;
            None
        }
        Change::Move { inbox, channel } => {
            move_to(conn, id, inbox, channel)?;
            Some(inbox.clone())
        }
        Change::Trash => {
            update(
                conn,
                "trashed_at = COALESCE(trashed_at, ?2)",
                params![id, now],
            )?;
            None
        }
        Change::Restore => {
            update(conn, "trashed_at = NULL", params![id])?;
            None
        }
        Change::DeleteForever => {
            if trashed_at.is_none() {
                return Err(StoreError::Conflict(
                    "only a conversation in trash can be deleted forever".into(),
                ));
            }
            delete_forever(conn, id)?;
            return Ok(());
        }
        Change::Spam(spam) => {
            // The agent's mark becomes the conversation's classification (C3).
            let (verdict, reason) = if *spam {
                ("spam", format!("marked_spam:{actor}"))
            } else {
                ("clean", format!("marked_not_spam:{actor}"))
            };
            update(
                conn,
                "spam = ?2, verdict = ?3, reasons = ?4",
                params![
                    id,
                    spam,
                    verdict,
                    super::conversations::reasons_json(&[reason])
                ],
            )?;
            None
        }
        Change::BlockSender => {
            let address: String = conn.query_row(
                "SELECT ct.email FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
                 WHERE c.id = ?1",
                [id],
                |r| r.get(0),
            )?;
            set_blocked(conn, &address, true, actor, now)?;
            update(conn, "filtered = 1", params![id])?;
            Some(address)
        }
    };
    record(conn, id, actor, change.action(), detail.as_deref(), now)
}

fn update(conn: &Conn, set: &str, params: impl super::db::Params) -> Result<(), StoreError> {
    let sql = format!("UPDATE conversations SET {set} WHERE id = ?1");
    conn.prepare_cached(&sql)?.execute(params)?;
    Ok(())
}

/// Appends a timeline entry.
pub(super) fn record(
    conn: &Conn,
    id: i64,
    actor: &str,
    action: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO timeline (conversation_id, at, actor, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, now, actor, action, detail])?;
    Ok(())
}

/// Moves the conversation and its Message-IDs, so replies arriving in the new inbox
/// still thread and duplicates are still recognized.
fn move_to(conn: &Conn, id: i64, inbox: &str, channel: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE conversations SET inbox = ?2, channel = ?3 WHERE id = ?1",
        params![id, inbox, channel],
    )?;
    conn.execute(
        "UPDATE known_ids SET inbox = ?2 WHERE conversation_id = ?1
           AND NOT EXISTS (SELECT 1 FROM known_ids k
                           WHERE k.inbox = ?2 AND k.message_id = known_ids.message_id)",
        params![id, inbox],
    )?;
    Ok(())
}

fn delete_forever(conn: &Conn, id: i64) -> Result<(), StoreError> {
    let raw_ids: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT raw_id FROM messages WHERE conversation_id = ?1 AND raw_id IS NOT NULL",
        )?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    super::deliveries::forget_conversation(conn, id)?;
    conn.execute("DELETE FROM messages WHERE conversation_id = ?1", [id])?;
    super::search_index::forget_conversation(conn, id)?;
    for raw_id in raw_ids {
        conn.execute(
            "DELETE FROM raw_messages WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM messages WHERE raw_id = ?1)",
            [raw_id],
        )?;
    }
    conn.execute("DELETE FROM participants WHERE conversation_id = ?1", [id])?;
    conn.execute("DELETE FROM timeline WHERE conversation_id = ?1", [id])?;
    conn.execute("DELETE FROM tickets WHERE conversation_id = ?1", [id])?;
    conn.execute(
        "UPDATE conversations SET deleted = 1, assignee = NULL, message_count = 0 WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

fn set_blocked(
    conn: &Conn,
    address: &str,
    blocked: bool,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let address = address.to_lowercase();
    if blocked {
        conn.execute(
            "INSERT OR IGNORE INTO blocked_senders (address, blocked_at, blocked_by)
             VALUES (?1, ?2, ?3)",
            params![address, now, actor],
        )?;
    } else {
        conn.execute("DELETE FROM blocked_senders WHERE address = ?1", [address])?;
    }
    Ok(())
}

/// Why mail from `address` is filtered (C2): the address itself is blocked
/// (`blocked_sender:ADDRESS`), or its domain is (`blocked_domain:DOMAIN`; a domain is
/// blocked as `@domain`).
pub(super) fn blocked_reason(conn: &Conn, address: &str) -> Result<Option<String>, StoreError> {
    let domain = address.rsplit_once('@').map(|(_, d)| format!("@{d}"));
    let mut stmt = conn.prepare_cached("SELECT 1 FROM blocked_senders WHERE address = ?1")?;
    if stmt.exists([address])? {
        return Ok(Some(format!("blocked_sender:{address}")));
    }
    match domain {
        Some(domain) if stmt.exists([&domain])? => {
            Ok(Some(format!("blocked_domain:{}", &domain[1..])))
        }
        _ => Ok(None),
    }
}

/// Contacts owned by a user who left the config lose their owner (D3, D5).
fn clear_removed_owners(conn: &Conn, users: &[String]) -> Result<(), StoreError> {
    let owners: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT DISTINCT owner FROM contacts WHERE owner IS NOT NULL")?;
        let rows = stmt.query_map((), |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for owner in owners {
        if !users.iter().any(|u| u.eq_ignore_ascii_case(&owner)) {
            conn.execute(
                "UPDATE contacts SET owner = NULL WHERE owner = ?1",
                [&owner],
            )?;
        }
    }
    Ok(())
}

fn unassign_removed(conn: &Conn, users: &[String], now: i64) -> Result<usize, StoreError> {
    let assigned: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, assignee FROM conversations WHERE assignee IS NOT NULL AND deleted = 0",
        )?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    clear_removed_owners(conn, users)?;
    let mut count = 0;
    for (id, assignee) in assigned {
        if users.iter().any(|u| u.eq_ignore_ascii_case(&assignee)) {
            continue;
        }
        update(conn, "assignee = NULL", params![id])?;
        record(conn, id, "system", "unassign", Some("user removed"), now)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewInbound;

    fn inbound(id: &str, from: &str) -> NewInbound {
        let raw = format!("Message-ID: <{id}>\r\nFrom: {from}\r\nSubject: Hi\r\n\r\nHello\r\n");
        crate::store::testkit::inbound(&raw, from, 100)
    }

    #[tokio::test]
    async fn conversations_of_removed_users_become_unassigned_with_a_timeline_entry() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::testkit::fresh_store(dir.path());
        let (writer, _thread) = store.start_writer().expect("writer");
        let mut ids = Vec::new();
        for (n, assignee) in ["gone@demo.example", "bob@demo.example"].iter().enumerate() {
            let message = inbound(&format!("m{n}@x"), &format!("c{n}@klant.example"));
            let filed = writer.file_inbound(message).await.expect("filed");
            let id = filed[0].conversation_id;
            writer
                .change_conversation(
                    id,
                    Change::Assign(Some(assignee.to_string())),
                    "a".into(),
                    1,
                )
                .await
                .expect("assigned");
            ids.push(id);
        }
        let count = writer
            .unassign_removed_users(vec!["BOB@demo.example".into()], 2)
            .await
            .expect("swept");
        assert_eq!(count, 1);
        let reader = store.reader().expect("reader");
        assert_eq!(reader.conversation(ids[0]).unwrap().unwrap().assignee, None);
        assert_eq!(
            reader
                .conversation(ids[1])
                .unwrap()
                .unwrap()
                .assignee
                .as_deref(),
            Some("bob@demo.example")
        );
        let last = reader.timeline(ids[0]).unwrap().pop().expect("entry");
        assert_eq!(
            (last.actor.as_str(), last.action.as_str()),
            ("system", "unassign")
        );
    }
}
