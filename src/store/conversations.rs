//! The rows a message is filed as, for inbound and outbound mail alike: its raw copy
//! (`raw_messages`), its contact, its conversation, its `messages` row, its Message-ID
//! in `known_ids` (dedupe, threading, tombstones) and the conversation's participants.
//! Every insert into these tables is here, once; `ingest` and `outbound` decide what
//! to file, this module how.

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::error::StoreError;
use crate::pipeline::classify::{Classification, Verdict};
use crate::pipeline::parse::{AttachmentInfo, Mailbox};

/// A message's whole bytes with its envelope.
pub(super) struct RawCopy<'a> {
    pub at: i64,
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    pub body: &'a [u8],
}

/// Stores the whole message once; every inbox it is filed in points at this row.
pub(super) fn insert_raw(conn: &Conn, raw: &RawCopy) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO raw_messages (received_at, mail_from, rcpt_to, size, body)
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    )?;
    Ok(stmt.query_row(
        params![
            raw.at,
            raw.mail_from,
            json_list(raw.rcpt_to.iter().map(String::as_str)),
            raw.body.len() as i64,
            raw.body
        ],
        |r| r.get(0),
    )?)
}

/// Creates the contact, or fills in a display name it did not have yet.
pub(super) fn upsert_contact(conn: &Conn, contact: &Mailbox, now: i64) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO contacts (email, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (email) DO UPDATE SET name = COALESCE(contacts.name, excluded.name)
         RETURNING id",
    )?;
    Ok(stmt.query_row(params![contact.address, contact.name, now], |r| r.get(0))?)
}

/// A conversation started by its first message.
pub(super) struct NewConversation<'a> {
    pub inbox: &'a str,
    pub channel: &'a str,
    pub subject: &'a str,
    pub subject_norm: &'a str,
    pub contact_id: i64,
    pub at: i64,
    /// The first message's verdict: spam goes to Spam (C1, C4), a blocked sender's to
    /// Filtered (C2). `None` (our own outbound message): clean.
    pub classification: Option<&'a Classification>,
}

pub(super) fn new_conversation(conn: &Conn, c: &NewConversation) -> Result<i64, StoreError> {
    let verdict = c.classification.map_or(Verdict::Clean, |k| k.verdict);
    let reasons = c.classification.map_or(&[][..], |k| &k.reasons[..]);
    let mut stmt = conn.prepare_cached(
        "INSERT INTO conversations (inbox, channel, subject, subject_norm, contact_id,
             created_at, last_message_at, message_count, spam, filtered, verdict, reasons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8, ?9, ?10) RETURNING id",
    )?;
    Ok(stmt.query_row(
        params![
            c.inbox,
            c.channel,
            c.subject,
            c.subject_norm,
            c.contact_id,
            c.at,
            verdict == Verdict::Spam,
            verdict == Verdict::Filtered,
            verdict.as_str(),
            reasons_json(reasons),
        ],
        |r| r.get(0),
    )?)
}

/// Whether a message added to a conversation reopens it: a customer's reply does (B11),
/// our own does not change its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reopen {
    Yes,
    No,
}

/// Counts one more message in conversation `id`. A deleted conversation is never
/// resurrected and a trashed one takes no new message (threading treats both as gone,
/// DESIGN B10): both are refused with [`StoreError::Conflict`].
pub(super) fn add_message_to(
    conn: &Conn,
    id: i64,
    at: i64,
    reopen: Reopen,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE conversations SET message_count = message_count + 1,
                 last_message_at = MAX(last_message_at, ?2),
                 status = CASE WHEN ?3 THEN 'open' ELSE status END
             WHERE id = ?1 AND deleted = 0 AND trashed_at IS NULL",
        )?
        .execute(params![id, at, reopen == Reopen::Yes])?;
    if changed == 0 {
        return Err(StoreError::Conflict(format!(
            "conversation {id} is deleted or in trash: it takes no new message"
        )));
    }
    Ok(())
}

/// Inbound (`in`) or outbound (`out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    In,
    Out,
}

/// One `messages` row.
pub(super) struct MessageInsert<'a> {
    pub conversation_id: i64,
    pub raw_id: i64,
    pub direction: Direction,
    pub message_id: Option<&'a str>,
    pub from: &'a Mailbox,
    pub to: Vec<&'a str>,
    pub cc: Vec<&'a str>,
    pub subject: &'a str,
    pub subject_norm: &'a str,
    /// The Date header; `None` when missing or unreadable.
    pub date: Option<i64>,
    pub received_at: i64,
    pub text: &'a str,
    /// Hex of the Outlook thread root the message carries.
    pub thread_index: Option<&'a str>,
    /// Its `References` and `In-Reply-To` ids: what a reply to it builds on.
    pub references: &'a [String],
    pub in_reply_to: &'a [String],
    pub attachments: &'a [AttachmentInfo],
    /// `None` (our own outbound message): clean, no reasons.
    pub classification: Option<&'a Classification>,
    /// Inbound: the threading decision's label.
    pub thread_reason: Option<&'a str>,
}

pub(super) fn insert_message(conn: &Conn, m: &MessageInsert) -> Result<i64, StoreError> {
    let verdict = m.classification.map_or(Verdict::Clean, |k| k.verdict);
    let reasons = m.classification.map_or(&[][..], |k| &k.reasons[..]);
    let mut stmt = conn.prepare_cached(
        "INSERT INTO messages (conversation_id, raw_id, direction, message_id, from_addr,
             from_name, to_json, cc_json, subject, subject_norm, date, received_at, text,
             thread_index, attachments_json, verdict, reasons, auth_results, spam_score,
             reply_refs, thread_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21) RETURNING id",
    )?;
    Ok(stmt.query_row(
        params![
            m.conversation_id,
            m.raw_id,
            match m.direction {
                Direction::In => "in",
                Direction::Out => "out",
            },
            m.message_id,
            m.from.address,
            m.from.name,
            json_list(m.to.iter().copied()),
            json_list(m.cc.iter().copied()),
            m.subject,
            m.subject_norm,
            m.date,
            m.received_at,
            m.text,
            m.thread_index,
            serde_json::to_string(m.attachments).unwrap_or_else(|_| "[]".into()),
            verdict.as_str(),
            reasons_json(reasons),
            m.classification.and_then(|k| k.auth_results.as_deref()),
            m.classification.and_then(|k| k.score),
            json_list(reply_refs(m).iter().map(String::as_str)),
            m.thread_reason,
        ],
        |r| r.get(0),
    )?)
}

/// Remembers a Message-ID (or content hash) seen in `inbox`: dedupe and threading read
/// it, and it outlives a deleted conversation.
pub(super) fn record_id(
    conn: &Conn,
    inbox: &str,
    key: &str,
    conversation_id: i64,
    message_row: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO known_ids (inbox, message_id, conversation_id, message_row)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    stmt.execute(params![inbox, key, conversation_id, message_row])?;
    Ok(())
}

/// The conversation that already holds this Message-ID (or content hash) in `inbox`.
pub(super) fn known_id(conn: &Conn, inbox: &str, key: &str) -> Result<Option<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id FROM known_ids WHERE inbox = ?1 AND message_id = ?2",
    )?;
    Ok(stmt
        .query_row(params![inbox, key], |r| r.get(0))
        .optional()?)
}

/// Adds each address to the conversation's participants (once).
pub(super) fn add_participants<'a>(
    conn: &Conn,
    conversation_id: i64,
    addresses: impl IntoIterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO participants (conversation_id, address) VALUES (?1, ?2)",
    )?;
    for address in addresses {
        stmt.execute(params![conversation_id, address])?;
    }
    Ok(())
}

/// Our outbound message with this Message-ID: its row and its conversation.
pub(super) fn outbound_message(
    conn: &Conn,
    message_id: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, conversation_id FROM messages
         WHERE direction = 'out' AND message_id = ?1 LIMIT 1",
    )?;
    Ok(stmt
        .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// What a reply's `References` continue: the message's `References`, else its
/// `In-Reply-To` (RFC 5322 3.6.4).
fn reply_refs<'a>(m: &MessageInsert<'a>) -> &'a [String] {
    if m.references.is_empty() {
        m.in_reply_to
    } else {
        m.references
    }
}

/// A verdict's reasons as the `reasons` column holds them.
pub(super) fn reasons_json(reasons: &[String]) -> String {
    serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into())
}

fn json_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}
