//! Outbound rows (SPEC E2, E7, E8): files an outbound message into its conversation
//! with one delivery row per recipient, claims due deliveries for the queue worker,
//! records their outcomes, and answers the reads that `show`, `outbound list` and
//! reply composition need. The write functions are called only by `outbound::queue`
//! (the one module that changes delivery rows), always inside the writer's transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::ingest::{record_id, upsert_contact};
use super::read::MessageRow;
use super::{Reader, StoreError};
use crate::pipeline::bounce::Bounce;
use crate::pipeline::parse::{AttachmentInfo, Mailbox};

/// An outbound message ready to be stored and queued.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub inbox: String,
    pub channel: String,
    /// The conversation a reply or forward belongs to; `None` starts one (compose).
    pub conversation_id: Option<i64>,
    /// The contact a new conversation is logged to (the first recipient).
    pub contact: Mailbox,
    pub message_id: String,
    pub from: Mailbox,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub subject_norm: String,
    pub text: String,
    /// Hex of the Outlook thread root this message carries.
    pub thread_index_root: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    /// The whole message as it will be sent.
    pub raw: Vec<u8>,
    /// Envelope sender.
    pub mail_from: String,
    pub now: i64,
    pub expires_at: i64,
}

/// Where an outbound message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiledOutbound {
    pub conversation_id: i64,
    pub message_row: i64,
}

/// A message outside any conversation (a From-address verification mail).
#[derive(Debug, Clone)]
pub struct NewSystemMail {
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub now: i64,
    pub expires_at: i64,
}

/// One message claimed for delivery, with the recipients still to be served.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub raw_id: i64,
    pub message_row: Option<i64>,
    pub mail_from: String,
    pub raw: Vec<u8>,
    pub recipients: Vec<DueRecipient>,
}

#[derive(Debug, Clone)]
pub struct DueRecipient {
    pub delivery_id: i64,
    pub address: String,
    /// Attempts including the one now starting.
    pub attempts: i64,
    pub expires_at: i64,
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub delivery_id: i64,
    /// `sent`, `deferred` or `failed`.
    pub status: &'static str,
    pub last_reply: String,
    pub next_attempt_at: i64,
}

/// One recipient's delivery as `show` and `outbound list` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientDelivery {
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_reply: Option<String>,
    pub next_attempt_at: i64,
    pub updated_at: i64,
}

/// The message a reply answers, with what its headers need.
#[derive(Debug, Clone)]
pub struct ReplyParent {
    pub message_row: i64,
    pub direction: String,
    pub message_id: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The whole stored message, to read its `References`.
    pub raw: Option<Vec<u8>>,
}

/// An outbound message with its conversation, for `outbound list`.
#[derive(Debug, Clone)]
pub struct OutboundRow {
    pub conversation_id: i64,
    pub message: MessageRow,
}

/// Stores the message, its raw copy, threading ids and participants, and queues one
/// delivery per recipient. Runs inside the writer transaction.
pub fn file_outbound(conn: &Connection, m: &NewOutbound) -> Result<FiledOutbound, StoreError> {
    let conversation_id = match m.conversation_id {
        Some(id) => {
            touch_conversation(conn, id, m.now)?;
            id
        }
        None => new_conversation(conn, m)?,
    };
    let recipients = all_recipients(m);
    let raw_id = insert_raw(conn, &m.raw, &m.mail_from, &recipients, m.now)?;
    let message_row = insert_message(conn, m, conversation_id, raw_id)?;
    record_id(conn, &m.inbox, &m.message_id, conversation_id, message_row)?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO participants (conversation_id, address) VALUES (?1, ?2)",
    )?;
    for address in std::iter::once(&m.from.address).chain(&recipients) {
        stmt.execute(params![conversation_id, address])?;
    }
    queue(
        conn,
        raw_id,
        Some(message_row),
        &m.mail_from,
        &recipients,
        m.now,
        m.expires_at,
    )?;
    Ok(FiledOutbound {
        conversation_id,
        message_row,
    })
}

/// Queues a message that belongs to no conversation; returns its raw id.
pub fn file_system_mail(conn: &Connection, m: &NewSystemMail) -> Result<i64, StoreError> {
    let raw_id = insert_raw(conn, &m.raw, &m.mail_from, &m.recipients, m.now)?;
    queue(
        conn,
        raw_id,
        None,
        &m.mail_from,
        &m.recipients,
        m.now,
        m.expires_at,
    )?;
    Ok(raw_id)
}

fn all_recipients(m: &NewOutbound) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for address in m.to.iter().chain(&m.cc).chain(&m.bcc) {
        if !list.contains(address) {
            list.push(address.clone());
        }
    }
    list
}

fn touch_conversation(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE conversations SET message_count = message_count + 1,
                 last_message_at = MAX(last_message_at, ?2)
             WHERE id = ?1 AND deleted = 0",
        )?
        .execute(params![id, now])?;
    if changed == 0 {
        return Err(StoreError::Invalid(format!("conversation {id} not found")));
    }
    Ok(())
}

fn new_conversation(conn: &Connection, m: &NewOutbound) -> Result<i64, StoreError> {
    let contact_id = upsert_contact(conn, &m.contact, m.now)?;
    conn.prepare_cached(
        "INSERT INTO conversations (inbox, channel, subject, subject_norm, contact_id,
             created_at, last_message_at, message_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)",
    )?
    .execute(params![
        m.inbox,
        m.channel,
        m.subject,
        m.subject_norm,
        contact_id,
        m.now
    ])?;
    Ok(conn.last_insert_rowid())
}

fn insert_raw(
    conn: &Connection,
    raw: &[u8],
    mail_from: &str,
    recipients: &[String],
    now: i64,
) -> Result<i64, StoreError> {
    let rcpt = serde_json::to_string(recipients).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO raw_messages (received_at, mail_from, rcpt_to, size, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![now, mail_from, rcpt, raw.len() as i64, raw])?;
    Ok(conn.last_insert_rowid())
}

fn insert_message(
    conn: &Connection,
    m: &NewOutbound,
    conversation_id: i64,
    raw_id: i64,
) -> Result<i64, StoreError> {
    let json = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO messages (conversation_id, raw_id, direction, message_id, from_addr,
             from_name, to_json, cc_json, subject, subject_norm, date, received_at, text,
             thread_index, attachments_json)
         VALUES (?1, ?2, 'out', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        conversation_id,
        raw_id,
        m.message_id,
        m.from.address,
        m.from.name,
        json(&m.to),
        json(&m.cc),
        m.subject,
        m.subject_norm,
        m.now,
        m.text,
        m.thread_index_root,
        serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into()),
    ])?;
    Ok(conn.last_insert_rowid())
}

fn queue(
    conn: &Connection,
    raw_id: i64,
    message_row: Option<i64>,
    mail_from: &str,
    recipients: &[String],
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO outbound_deliveries (raw_id, message_row, mail_from, recipient,
             next_attempt_at, expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
    )?;
    for recipient in recipients {
        stmt.execute(params![
            raw_id,
            message_row,
            mail_from,
            recipient,
            now,
            expires_at
        ])?;
    }
    Ok(())
}

/// Marks the due deliveries of up to `limit` messages `sending` and returns them.
pub fn claim_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<DueMessage>, StoreError> {
    let raw_ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT raw_id FROM outbound_deliveries
             WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?1
             GROUP BY raw_id ORDER BY MIN(next_attempt_at), raw_id LIMIT ?2",
        )?
        .query_map(params![now, limit as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    raw_ids
        .into_iter()
        .map(|raw_id| claim_message(conn, raw_id, now))
        .collect()
}

fn claim_message(conn: &Connection, raw_id: i64, now: i64) -> Result<DueMessage, StoreError> {
    let mut mail_from = String::new();
    let mut message_row = None;
    let recipients = conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'sending', attempts = attempts + 1,
                 updated_at = ?2
             WHERE raw_id = ?1 AND status IN ('queued', 'deferred') AND next_attempt_at <= ?2
             RETURNING id, recipient, attempts, expires_at, mail_from, message_row",
        )?
        .query_map(params![raw_id, now], |r| {
            Ok((
                DueRecipient {
                    delivery_id: r.get(0)?,
                    address: r.get(1)?,
                    attempts: r.get(2)?,
                    expires_at: r.get(3)?,
                },
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?
        .map(|row| {
            row.map(|(recipient, from, row)| {
                mail_from = from;
                message_row = row;
                recipient
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let raw = conn
        .prepare_cached("SELECT body FROM raw_messages WHERE id = ?1")?
        .query_row([raw_id], |r| r.get(0))?;
    Ok(DueMessage {
        raw_id,
        message_row,
        mail_from,
        raw,
        recipients,
    })
}

/// Records the outcome of an attempt for each recipient.
pub fn record_outcomes(
    conn: &Connection,
    updates: &[DeliveryUpdate],
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbound_deliveries SET status = ?2, last_reply = ?3, next_attempt_at = ?4,
             updated_at = ?5
         WHERE id = ?1",
    )?;
    for u in updates {
        stmt.execute(params![
            u.delivery_id,
            u.status,
            u.last_reply,
            u.next_attempt_at,
            now
        ])?;
    }
    Ok(())
}

/// After a crash or restart: deliveries left `sending` are queued again (at most one
/// extra send, never a lost message). They keep their place at the head of the queue
/// (claiming never moves `next_attempt_at` forward), so their resend goes out first and
/// is not itself left hanging behind the backlog when the next crash comes. Returns how
/// many.
pub fn requeue_interrupted(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'queued',
                 next_attempt_at = MIN(next_attempt_at, ?1),
                 updated_at = ?1
             WHERE status = 'sending'",
        )?
        .execute([now])?)
}

/// Queues the deferred or failed deliveries of an outbound message again, now, with a
/// fresh lifetime. Returns how many.
pub fn retry_message(
    conn: &Connection,
    message_row: i64,
    now: i64,
    expires_at: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'queued', next_attempt_at = ?2,
                 expires_at = MAX(expires_at, ?3), updated_at = ?2
             WHERE message_row = ?1 AND status IN ('deferred', 'failed')",
        )?
        .execute(params![message_row, now, expires_at])?)
}

/// Marks every unfinished delivery of the outbound message with this Message-ID
/// failed (an inbound bounce names it). Returns how many.
pub fn fail_by_message_id(
    conn: &Connection,
    message_id: &str,
    reply: &str,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'failed', last_reply = ?2, updated_at = ?3
             WHERE message_row IN (SELECT id FROM messages
                                   WHERE direction = 'out' AND message_id = ?1)
               AND status != 'failed'",
        )?
        .execute(params![message_id, reply, now])?)
}

/// What a bounce did: the outbound message it returned, and how many of its deliveries
/// it failed.
#[derive(Debug, PartialEq, Eq)]
pub struct BounceApplied {
    pub outbound_row: i64,
    pub failed: usize,
}

/// Applies an inbound bounce to the first of its Message-IDs that is one of our
/// outbound messages: the reported failed recipients fail, with their DSN status; when
/// none of them is a recipient of that message, all its deliveries fail. Unknown ids
/// change nothing (`None`).
pub fn apply_bounce(
    conn: &Connection,
    bounce: &Bounce,
    now: i64,
) -> Result<Option<BounceApplied>, StoreError> {
    for id in &bounce.message_ids {
        let Some(row) = outbound_row(conn, id)? else {
            continue;
        };
        let mut changed = 0;
        let mut matched = false;
        for failed in &bounce.failed {
            let hit = std::iter::once(&failed.address).chain(failed.original.as_ref());
            for address in hit {
                let n = fail_recipient(conn, row, address, &failed.status, now)?;
                if n > 0 {
                    matched = true;
                    changed += n;
                    break;
                }
                matched |= has_recipient(conn, row, address)?;
            }
        }
        if !matched {
            changed += fail_by_message_id(conn, id, &bounce.summary, now)?;
        }
        return Ok(Some(BounceApplied {
            outbound_row: row,
            failed: changed,
        }));
    }
    Ok(None)
}

fn outbound_row(conn: &Connection, message_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM messages WHERE direction = 'out' AND message_id = ?1 LIMIT 1",
        )?
        .query_row([message_id], |r| r.get(0))
        .optional()?)
}

fn fail_recipient(
    conn: &Connection,
    message_row: i64,
    address: &str,
    reply: &str,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'failed', last_reply = ?3, updated_at = ?4
             WHERE message_row = ?1 AND lower(recipient) = ?2 AND status != 'failed'",
        )?
        .execute(params![message_row, address, reply, now])?)
}

fn has_recipient(conn: &Connection, message_row: i64, address: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM outbound_deliveries WHERE message_row = ?1 AND lower(recipient) = ?2",
        )?
        .query_row(params![message_row, address], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records a requested custom From address with the hash of its one-time code.
pub fn request_from_address(
    conn: &Connection,
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
pub fn confirm_from_address(
    conn: &Connection,
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
    /// Per-recipient delivery of one outbound message.
    pub fn deliveries(&self, message_row: i64) -> Result<Vec<RecipientDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT recipient, status, attempts, last_reply, next_attempt_at, updated_at
             FROM outbound_deliveries WHERE message_row = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([message_row], |r| {
            Ok(RecipientDelivery {
                recipient: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                last_reply: r.get(3)?,
                next_attempt_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbound messages, newest first.
    pub fn outbound_messages(&self, limit: Option<u32>) -> Result<Vec<OutboundRow>, StoreError> {
        let ids: Vec<(i64, i64)> = self
            .conn
            .prepare(
                "SELECT m.conversation_id, m.id FROM messages m
                 JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.direction = 'out' AND c.deleted = 0
                 ORDER BY m.id DESC LIMIT ?1",
            )?
            .query_map([limit.map_or(-1, i64::from)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut list = Vec::with_capacity(ids.len());
        for (conversation_id, row) in ids {
            if let Some(message) = self.message(row)?.map(|found| found.message) {
                list.push(OutboundRow {
                    conversation_id,
                    message,
                });
            }
        }
        Ok(list)
    }

    /// The message a reply in this conversation answers: the latest inbound one, else
    /// the latest message.
    pub fn reply_parent(&self, conversation_id: i64) -> Result<Option<ReplyParent>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT m.id, m.direction, m.message_id, m.from_addr, m.to_json, m.cc_json,
                        m.subject, m.text, r.body
                 FROM messages m LEFT JOIN raw_messages r ON r.id = m.raw_id
                 WHERE m.conversation_id = ?1
                 ORDER BY m.direction = 'in' DESC, m.received_at DESC, m.id DESC LIMIT 1",
                [conversation_id],
                |r| {
                    Ok(ReplyParent {
                        message_row: r.get(0)?,
                        direction: r.get(1)?,
                        message_id: r.get(2)?,
                        from: r.get(3)?,
                        to: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                        cc: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                        subject: r.get(6)?,
                        text: r.get(7)?,
                        raw: r.get(8)?,
                    })
                },
            )
            .optional()?)
    }

    /// The Outlook thread root of a conversation, if any of its messages carried one.
    pub fn thread_root(&self, conversation_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT thread_index FROM messages
                 WHERE conversation_id = ?1 AND thread_index IS NOT NULL ORDER BY id LIMIT 1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?)
    }

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

    /// Recipient deliveries per status, for the metrics.
    pub fn deliveries_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM outbound_deliveries GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deliveries that reached the receiver (`sent`); the outbound benchmark counts them.
    pub fn sent_deliveries(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbound_deliveries WHERE status = 'sent'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Deliveries not finished yet (queued, sending or deferred).
    pub fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbound_deliveries
             WHERE status IN ('queued', 'sending', 'deferred')",
            [],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::bounce::FailedRecipient;
    use crate::store::Store;

    fn reply(id: &str) -> NewOutbound {
        let from = Mailbox {
            address: "support@demo.hs-inbox.com".into(),
            name: None,
        };
        NewOutbound {
            inbox: "Support".into(),
            channel: from.address.clone(),
            conversation_id: None,
            contact: Mailbox {
                address: "jan@klant.example".into(),
                name: None,
            },
            message_id: id.into(),
            mail_from: from.address.clone(),
            from,
            to: vec!["jan@klant.example".into()],
            cc: vec!["boss@klant.example".into()],
            bcc: Vec::new(),
            subject: "Re: x".into(),
            subject_norm: "x".into(),
            text: "hi".into(),
            thread_index_root: None,
            attachments: Vec::new(),
            raw: b"Subject: Re: x\r\n\r\nhi\r\n".to_vec(),
            now: 10,
            expires_at: 1000,
        }
    }

    fn bounce(id: &str, failed: &[&str]) -> Bounce {
        Bounce {
            message_ids: vec!["unrelated@x".into(), id.into()],
            failed: failed
                .iter()
                .map(|a| FailedRecipient {
                    address: a.to_string(),
                    original: None,
                    status: format!("5.1.1 {a} unknown"),
                })
                .collect(),
            summary: "5.0.0 bounced".into(),
        }
    }

    #[tokio::test]
    async fn a_bounce_fails_the_named_recipient_or_else_all_and_unknown_ids_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("t.db")).expect("store");
        let (writer, _thread) = store.start_writer().expect("writer");
        let one = writer
            .write(|conn| file_outbound(conn, &reply("one@mx")))
            .await
            .expect("filed");
        let two = writer
            .write(|conn| file_outbound(conn, &reply("two@mx")))
            .await
            .expect("filed");
        let apply = |b: Bounce| {
            writer.write(move |conn| Ok(apply_bounce(conn, &b, 20)?.map_or(0, |a| a.failed)))
        };
        assert_eq!(
            apply(bounce("nobody@mx", &["jan@klant.example"]))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            apply(bounce("one@mx", &["jan@klant.example"]))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            apply(bounce("two@mx", &["alias@klant.example"]))
                .await
                .unwrap(),
            2
        );
        let reader = store.reader().expect("reader");
        let statuses = |row| {
            reader
                .deliveries(row)
                .expect("deliveries")
                .into_iter()
                .map(|d| (d.status, d.last_reply.unwrap_or_default()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            statuses(one.message_row),
            [
                ("failed".into(), "5.1.1 jan@klant.example unknown".into()),
                ("queued".into(), String::new())
            ]
        );
        assert_eq!(
            statuses(two.message_row),
            [
                ("failed".into(), "5.0.0 bounced".into()),
                ("failed".into(), "5.0.0 bounced".into())
            ]
        );
    }
}
