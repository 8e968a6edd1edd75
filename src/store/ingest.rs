//! Files an inbound message into its inboxes, inside the writer's transaction:
//! dedupe (B4), contact upsert (B5), threading (B10, via `pipeline::thread`), reopen
//! (B11), then the rows themselves. One raw copy serves every inbox it was delivered to.

use super::db::{lock_key, Conn, Dialect, OptionalExtension};
use crate::params;

use super::conversations::{
    self as rows, Direction, MessageInsert, NewConversation, RawCopy, Reopen,
};
use super::error::StoreError;
use super::rows::{Filed, NewInbound};
use super::writer::Writer;
use crate::pipeline::classify::{Classification, Finding, Verdict};
use crate::pipeline::forward::Forwarded;
use crate::pipeline::parse::Mailbox;
use crate::pipeline::thread::{self, Candidate, ThreadLookup, ThreadMatch};
use crate::pipeline::Target;

impl Writer {
    /// Files a received message in its inboxes; resolves after the COMMIT holding it.
    /// On a shared store a filing can lose a deadlock to another node's batch (each
    /// batch holds its thread locks until it commits); it is then tried again.
    pub async fn file_inbound(&self, message: NewInbound) -> Result<Vec<Filed>, StoreError> {
        self.write_retried(move |conn| file(conn, &message)).await
    }
}

/// Files `message` into each of its target inboxes. Runs inside the writer transaction.
pub(super) fn file(conn: &Conn, message: &NewInbound) -> Result<Vec<Filed>, StoreError> {
    let sender = sender_of(message);
    lock_thread(conn, message, &sender)?;
    let mut classification = message.classification.clone();
    if let Some(reason) = super::actions::blocked_reason(conn, &sender.address)? {
        classification.add(Finding::new(Verdict::Filtered, reason));
    }
    let own = own_outbound(conn, message)?;
    let mut raw_id = None;
    let mut filed = Vec::with_capacity(message.targets.len());
    for target in &message.targets {
        if let Some(conversation_id) =
            rows::known_id(conn, &target.inbox, &message.parsed.dedupe_key)?
        {
            filed.push(Filed {
                inbox: target.inbox.clone(),
                conversation_id,
                message_row: None,
                decision: "duplicate",
            });
            continue;
        }
        if let Some(conversation_id) = own {
            // Our own reply come back (a CC to another of our inboxes, a forwarding
            // loop): it is stored already, as sent; never a new inbound conversation.
            filed.push(Filed {
                inbox: target.inbox.clone(),
                conversation_id,
                message_row: None,
                decision: "own_outbound",
            });
            continue;
        }
        let raw_id = match raw_id {
            Some(id) => id,
            None => *raw_id.insert(rows::insert_raw(
                conn,
                &RawCopy {
                    at: message.received_at,
                    mail_from: &message.mail_from,
                    rcpt_to: &message.rcpt_to,
                    body: &message.raw,
                },
            )?),
        };
        let forwarded = forwarded_for(message, target);
        let mut classification = classification.clone();
        if let Some(original) = forwarded {
            classification.add(Finding::new(
                Verdict::Clean,
                format!("forwarded:{}", original.sender.address),
            ));
        }
        let people = People {
            author: &sender,
            contact: forwarded.map_or(&sender, |f| &f.sender),
            cc: forwarded.map_or(&message.parsed.cc, |f| &f.cc),
        };
        filed.push(file_in_inbox(
            conn,
            message,
            &classification,
            target,
            &people,
            raw_id,
        )?);
    }
    if let (Some(bounce), Some(_)) = (&message.parsed.bounce, raw_id) {
        if let Some(applied) = super::deliveries::apply_bounce(conn, bounce, message.received_at)? {
            link_bounce(conn, &filed, applied.outbound_row)?;
            if applied.failed > 0 {
                tracing::info!(
                    deliveries = applied.failed,
                    "bounce: deliveries marked failed"
                );
            }
        }
    }
    Ok(filed)
}

/// Serializes the filing of messages that could meet in one conversation, when several
/// nodes share a PostgreSQL store: a transaction-scoped advisory lock per key the
/// dedupe and threading lookups read (the message's own id, the ids it refers to, its
/// Thread-Index root, its sender and subject). The second of two such messages waits
/// for the first to commit, then finds it, exactly as on one node. Locks are taken in
/// one order, so two messages never wait on each other within a transaction. (SQLite
/// has one writer: nothing to do.)
fn lock_thread(conn: &Conn, message: &NewInbound, sender: &Mailbox) -> Result<(), StoreError> {
    if conn.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let p = &message.parsed;
    let mut keys: Vec<i64> = [&p.dedupe_key]
        .into_iter()
        .chain(&p.in_reply_to)
        .chain(&p.references)
        .chain(&p.thread_index_root)
        .map(|id| lock_key("id", id))
        .collect();
    keys.push(lock_key(
        "subject",
        &format!("{} {}", sender.address, p.subject_norm),
    ));
    if let Some(original) = &p.forwarded {
        let key = format!("{} {}", original.sender.address, p.subject_norm);
        keys.push(lock_key("subject", &key));
    }
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        conn.lock_key(key)?;
    }
    Ok(())
}

/// Links the stored copies of a bounce to the outbound message it returned (C5).
fn link_bounce(conn: &Conn, filed: &[Filed], outbound_row: i64) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached("UPDATE messages SET bounce_of = ?1 WHERE id = ?2")?;
    for row in filed.iter().filter_map(|f| f.message_row) {
        update.execute(crate::params![outbound_row, row])?;
    }
    Ok(())
}

/// The forwarded message's original sender and CC, when the message forwards one and
/// its channel logs forwards to the original sender (B6; `log_forwarded_to_original_sender`,
/// on unless the channel turns it off).
fn forwarded_for<'a>(message: &'a NewInbound, target: &Target) -> Option<&'a Forwarded> {
    let forwarded = message.parsed.forwarded.as_ref()?;
    let log_to_original = message.config.as_ref().is_none_or(|config| {
        config
            .channels()
            .find(|(_, c)| c.address == target.channel)
            .is_none_or(|(_, c)| c.log_forwarded_to_original_sender)
    });
    log_to_original.then_some(forwarded)
}

/// The contact a message is logged to: From, else the envelope sender.
fn sender_of(message: &NewInbound) -> Mailbox {
    message.parsed.from.clone().unwrap_or_else(|| Mailbox {
        address: if message.mail_from.is_empty() {
            "mailer-daemon@invalid".to_string()
        } else {
            message.mail_from.to_lowercase()
        },
        name: None,
    })
}

/// Who a message is from and about: its author (From), the contact the conversation is
/// logged to (the author, or the original sender of a forward), and the CC shown.
struct People<'a> {
    author: &'a Mailbox,
    contact: &'a Mailbox,
    cc: &'a [Mailbox],
}

fn file_in_inbox(
    conn: &Conn,
    message: &NewInbound,
    classification: &Classification,
    target: &Target,
    people: &People,
    raw_id: i64,
) -> Result<Filed, StoreError> {
    let sender = people.contact;
    let contact_id = rows::upsert_contact(conn, sender, message.received_at)?;
    let mut lookup = InboxLookup {
        conn,
        inbox: &target.inbox,
    };
    let decision = thread::decide(
        &message.parsed,
        &sender.address,
        message.received_at,
        &mut lookup,
    )?;
    let conversation_id = match decision {
        ThreadMatch::Join {
            conversation_id, ..
        } => {
            rows::add_message_to(conn, conversation_id, message.received_at, Reopen::Yes)?;
            conversation_id
        }
        ThreadMatch::New(_) => {
            let id = rows::new_conversation(
                conn,
                &NewConversation {
                    inbox: &target.inbox,
                    channel: &target.channel,
                    subject: &message.parsed.subject,
                    subject_norm: &message.parsed.subject_norm,
                    contact_id,
                    at: message.received_at,
                    classification: Some(classification),
                },
            )?;
            if let Some(config) = &message.config {
                let conversation = super::route::NewConversation {
                    id,
                    contact_id,
                    channel: &target.channel,
                    classification,
                    now: message.received_at,
                };
                super::route::new_conversation(conn, config, &conversation)?;
            }
            id
        }
    };
    let filing = Filing {
        conversation_id,
        raw_id,
        thread_reason: decision.label(),
    };
    let message_row = insert_message(conn, message, classification, &filing, people)?;
    rows::record_id(
        conn,
        &target.inbox,
        &message.parsed.dedupe_key,
        conversation_id,
        message_row,
    )?;
    let p = &message.parsed;
    let addresses = [people.author, people.contact]
        .into_iter()
        .chain(&p.to)
        .chain(&p.cc)
        .chain(people.cc)
        .map(|m| m.address.as_str());
    rows::add_participants(conn, conversation_id, addresses)?;
    Ok(Filed {
        inbox: target.inbox.clone(),
        conversation_id,
        message_row: Some(message_row),
        decision: decision.label(),
    })
}

/// The conversation of our outbound message with this message's Message-ID, if any.
fn own_outbound(conn: &Conn, message: &NewInbound) -> Result<Option<i64>, StoreError> {
    let Some(id) = &message.parsed.message_id else {
        return Ok(None);
    };
    Ok(rows::outbound_message(conn, id)?.map(|(_, conversation_id)| conversation_id))
}

/// Where a message is filed: its conversation, its raw copy, and why there.
struct Filing {
    conversation_id: i64,
    raw_id: i64,
    thread_reason: &'static str,
}

fn insert_message(
    conn: &Conn,
    m: &NewInbound,
    classification: &Classification,
    filing: &Filing,
    people: &People,
) -> Result<i64, StoreError> {
    let p = &m.parsed;
    rows::insert_message(
        conn,
        &MessageInsert {
            conversation_id: filing.conversation_id,
            raw_id: filing.raw_id,
            direction: Direction::In,
            message_id: p.message_id.as_deref(),
            from: people.author,
            to: p.to.iter().map(|a| a.address.as_str()).collect(),
            cc: people.cc.iter().map(|a| a.address.as_str()).collect(),
            subject: &p.subject,
            subject_norm: &p.subject_norm,
            date: p.date,
            received_at: m.received_at,
            text: &p.text,
            thread_index: p.thread_index_root.as_deref(),
            references: &p.references,
            in_reply_to: &p.in_reply_to,
            attachments: &p.attachments,
            classification: Some(classification),
            thread_reason: Some(filing.thread_reason),
        },
    )
}

/// The threading rules' view of one inbox, over the write transaction.
struct InboxLookup<'a> {
    conn: &'a Conn,
    inbox: &'a str,
}

const CANDIDATE_COLUMNS: &str = "c.id, COALESCE(m.subject_norm, c.subject_norm), ct.email,
     c.trashed_at IS NOT NULL OR c.deleted != 0,
     EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = c.id AND p.address = ?3)";

fn candidate(row: &super::db::Row) -> super::db::Result<Candidate> {
    Ok(Candidate {
        conversation_id: row.get(0)?,
        subject_norm: row.get(1)?,
        contact: row.get(2)?,
        gone: row.get(3)?,
        sender_is_participant: row.get(4)?,
    })
}

impl ThreadLookup for InboxLookup<'_> {
    type Error = StoreError;

    /// The conversation the message with this id is in now (split and merge move
    /// messages); the one it was filed in when its row is gone (deleted forever: a
    /// tombstone). A row id reused by a later message does not count: the row must
    /// carry the same Message-ID.
    fn by_message_id(&mut self, id: &str, sender: &str) -> Result<Option<Candidate>, StoreError> {
        let sql = format!(
            "SELECT {CANDIDATE_COLUMNS} FROM known_ids k
             LEFT JOIN messages m ON m.id = k.message_row AND m.message_id = k.message_id
             JOIN conversations c ON c.id = COALESCE(m.conversation_id, k.conversation_id)
             JOIN contacts ct ON ct.id = c.contact_id
             WHERE k.inbox = ?1 AND k.message_id = ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt
            .query_row(params![self.inbox, id, sender], candidate)
            .optional()?)
    }

    fn by_thread_index(
        &mut self,
        root: &str,
        sender: &str,
    ) -> Result<Option<Candidate>, StoreError> {
        let sql = format!(
            "SELECT {CANDIDATE_COLUMNS} FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.inbox = ?1 AND m.thread_index = ?2
             ORDER BY m.id DESC LIMIT 1"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt
            .query_row(params![self.inbox, root, sender], candidate)
            .optional()?)
    }

    fn by_subject(
        &mut self,
        subject_norm: &str,
        contact: &str,
        since: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.inbox = ?1 AND ct.email = ?2 AND c.subject_norm = ?3
               AND c.last_message_at >= ?4 AND c.trashed_at IS NULL AND c.deleted = 0
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![self.inbox, contact, subject_norm, since], |r| {
                r.get(0)
            })
            .optional()?)
    }
}
