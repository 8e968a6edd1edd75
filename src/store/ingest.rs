//! Files an inbound message into its inboxes, inside the writer's transaction:
//! dedupe (B4), contact upsert (B5), threading (B10, via `pipeline::thread`), reopen
//! (B11), then the rows themselves. One raw copy serves every inbox it was delivered to.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;
use crate::config::Config;
use crate::pipeline::classify::{Classification, Finding, Verdict};
use crate::pipeline::forward::Forwarded;
use crate::pipeline::parse::{Inbound, Mailbox};
use crate::pipeline::thread::{self, Candidate, ThreadLookup, ThreadMatch};
use crate::pipeline::Target;

/// A received message ready to be filed.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub targets: Vec<Target>,
    pub parsed: Inbound,
    /// The whole message as stored (our Received header first).
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub received_at: i64,
    /// What the checks before the store found (C1, C4, C5); the writer adds blocked
    /// senders (C2).
    pub classification: Classification,
    /// The configuration in force when the message arrived: routing, tickets and the
    /// forwarded-mail setting of its channels. `None` files without routing or tickets.
    pub config: Option<Arc<Config>>,
}

/// Where a message went in one inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub inbox: String,
    pub conversation_id: i64,
    /// Row id of the stored message; `None` when it was a duplicate.
    pub message_row: Option<i64>,
    /// Threading decision (`in_reply_to`, `new:stranger_reply`, `duplicate`, …).
    pub decision: &'static str,
}

/// Files `message` into each of its target inboxes. Runs inside the writer transaction.
pub fn file(conn: &Connection, message: &NewInbound) -> Result<Vec<Filed>, StoreError> {
    let sender = sender_of(message);
    let mut classification = message.classification.clone();
    if let Some(reason) = super::actions::blocked_reason(conn, &sender.address)? {
        classification.add(Finding::new(Verdict::Filtered, reason));
    }
    let own = own_outbound(conn, message)?;
    let mut raw_id = None;
    let mut filed = Vec::with_capacity(message.targets.len());
    for target in &message.targets {
        if let Some(conversation_id) = known_id(conn, &target.inbox, &message.parsed.dedupe_key)? {
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
            None => *raw_id.insert(insert_raw(conn, message)?),
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
        if let Some(applied) = super::outbound::apply_bounce(conn, bounce, message.received_at)? {
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

/// Links the stored copies of a bounce to the outbound message it returned (C5).
fn link_bounce(conn: &Connection, filed: &[Filed], outbound_row: i64) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached("UPDATE messages SET bounce_of = ?1 WHERE id = ?2")?;
    for row in filed.iter().filter_map(|f| f.message_row) {
        update.execute(rusqlite::params![outbound_row, row])?;
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
    conn: &Connection,
    message: &NewInbound,
    classification: &Classification,
    target: &Target,
    people: &People,
    raw_id: i64,
) -> Result<Filed, StoreError> {
    let sender = people.contact;
    let contact_id = upsert_contact(conn, sender, message.received_at)?;
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
            touch_conversation(conn, conversation_id, message.received_at)?;
            conversation_id
        }
        ThreadMatch::New(_) => {
            let id = new_conversation(conn, message, classification, target, contact_id)?;
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
    let message_row = insert_message(
        conn,
        message,
        classification,
        conversation_id,
        raw_id,
        people,
    )?;
    record_id(
        conn,
        &target.inbox,
        &message.parsed.dedupe_key,
        conversation_id,
        message_row,
    )?;
    add_participants(conn, conversation_id, &message.parsed, people)?;
    Ok(Filed {
        inbox: target.inbox.clone(),
        conversation_id,
        message_row: Some(message_row),
        decision: decision.label(),
    })
}

/// The conversation of our outbound message with this message's Message-ID, if any.
fn own_outbound(conn: &Connection, message: &NewInbound) -> Result<Option<i64>, StoreError> {
    let Some(id) = &message.parsed.message_id else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id FROM messages WHERE direction = 'out' AND message_id = ?1 LIMIT 1",
    )?;
    Ok(stmt.query_row([id], |r| r.get(0)).optional()?)
}

fn known_id(conn: &Connection, inbox: &str, key: &str) -> Result<Option<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id FROM known_ids WHERE inbox = ?1 AND message_id = ?2",
    )?;
    Ok(stmt
        .query_row(params![inbox, key], |r| r.get(0))
        .optional()?)
}

fn insert_raw(conn: &Connection, m: &NewInbound) -> Result<i64, StoreError> {
    let rcpt = serde_json::to_string(&m.rcpt_to).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare_cached(
        "INSERT INTO raw_messages (received_at, mail_from, rcpt_to, size, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    stmt.execute(params![
        m.received_at,
        m.mail_from,
        rcpt,
        m.raw.len() as i64,
        m.raw
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Creates the contact, or fills in a display name it did not have yet.
pub(super) fn upsert_contact(
    conn: &Connection,
    sender: &Mailbox,
    now: i64,
) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO contacts (email, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (email) DO UPDATE SET name = COALESCE(contacts.name, excluded.name)
         RETURNING id",
    )?;
    Ok(stmt.query_row(params![sender.address, sender.name, now], |r| r.get(0))?)
}

fn touch_conversation(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE conversations SET status = 'open', message_count = message_count + 1,
             last_message_at = MAX(last_message_at, ?2)
         WHERE id = ?1",
    )?;
    stmt.execute(params![id, now])?;
    Ok(())
}

/// A new conversation takes its message's verdict: spam goes to Spam (C1, C4), a blocked
/// sender's to Filtered (C2).
fn new_conversation(
    conn: &Connection,
    m: &NewInbound,
    classification: &Classification,
    target: &Target,
    contact_id: i64,
) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO conversations (inbox, channel, subject, subject_norm, contact_id,
             created_at, last_message_at, message_count, spam, filtered, verdict, reasons)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8, ?9, ?10)",
    )?;
    stmt.execute(params![
        target.inbox,
        target.channel,
        m.parsed.subject,
        m.parsed.subject_norm,
        contact_id,
        m.received_at,
        classification.verdict == Verdict::Spam,
        classification.verdict == Verdict::Filtered,
        classification.verdict.as_str(),
        reasons_json(&classification.reasons),
    ])?;
    Ok(conn.last_insert_rowid())
}

fn insert_message(
    conn: &Connection,
    m: &NewInbound,
    classification: &Classification,
    conversation_id: i64,
    raw_id: i64,
    people: &People,
) -> Result<i64, StoreError> {
    let p = &m.parsed;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO messages (conversation_id, raw_id, direction, message_id, from_addr,
             from_name, to_json, cc_json, subject, subject_norm, date, received_at, text,
             thread_index, attachments_json, verdict, reasons, auth_results, spam_score)
         VALUES (?1, ?2, 'in', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18)",
    )?;
    stmt.execute(params![
        conversation_id,
        raw_id,
        p.message_id,
        people.author.address,
        people.author.name,
        addresses_json(&p.to),
        addresses_json(people.cc),
        p.subject,
        p.subject_norm,
        p.date,
        m.received_at,
        p.text,
        p.thread_index_root,
        serde_json::to_string(&p.attachments).unwrap_or_else(|_| "[]".into()),
        classification.verdict.as_str(),
        reasons_json(&classification.reasons),
        classification.auth_results,
        classification.score,
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn reasons_json(reasons: &[String]) -> String {
    serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into())
}

fn addresses_json(list: &[Mailbox]) -> String {
    let addresses: Vec<&str> = list.iter().map(|m| m.address.as_str()).collect();
    serde_json::to_string(&addresses).unwrap_or_else(|_| "[]".into())
}

pub(super) fn record_id(
    conn: &Connection,
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

fn add_participants(
    conn: &Connection,
    conversation_id: i64,
    p: &Inbound,
    people: &People,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO participants (conversation_id, address) VALUES (?1, ?2)",
    )?;
    let authors = [people.author, people.contact];
    for address in authors
        .into_iter()
        .chain(&p.to)
        .chain(&p.cc)
        .chain(people.cc)
    {
        stmt.execute(params![conversation_id, address.address])?;
    }
    Ok(())
}

/// The threading rules' view of one inbox, over the write transaction.
struct InboxLookup<'a> {
    conn: &'a Connection,
    inbox: &'a str,
}

const CANDIDATE_COLUMNS: &str = "c.id, COALESCE(m.subject_norm, c.subject_norm), ct.email,
     c.trashed_at IS NOT NULL OR c.deleted != 0,
     EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = c.id AND p.address = ?3)";

fn candidate(row: &rusqlite::Row) -> rusqlite::Result<Candidate> {
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

    fn by_message_id(&mut self, id: &str, sender: &str) -> Result<Option<Candidate>, StoreError> {
        let sql = format!(
            "SELECT {CANDIDATE_COLUMNS} FROM known_ids k
             JOIN conversations c ON c.id = k.conversation_id
             JOIN contacts ct ON ct.id = c.contact_id
             LEFT JOIN messages m ON m.id = k.message_row
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
             ORDER BY c.last_message_at DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![self.inbox, contact, subject_norm, since], |r| {
                r.get(0)
            })
            .optional()?)
    }
}
