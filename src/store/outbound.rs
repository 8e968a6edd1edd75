//! Files our outbound messages (SPEC E2, E7, E8): a reply, forward or new message goes
//! into its conversation with the same rows inbound mail gets (`conversations`) and one
//! delivery per recipient (`deliveries`), in one transaction; a system mail (a From
//! verification) is queued outside any conversation. Also the reads that `outbound
//! list` and reply composition need.

use super::db::{Conn, OptionalExtension};

use super::connection::Reader;
use super::conversations::{
    self as rows, Direction, MessageInsert, NewConversation, RawCopy, Reopen,
};
use super::deliveries;
use super::error::StoreError;
use super::rows::{FiledOutbound, NewOutbound, NewSystemMail, OutboundRow, ReplyParent};
use super::writer::Writer;

impl Writer {
    /// Stores the message in its conversation and queues it, in one transaction.
    pub async fn file_outbound(&self, message: NewOutbound) -> Result<FiledOutbound, StoreError> {
        self.write(move |conn| file_outbound(conn, &message)).await
    }

    /// Queues a message that belongs to no conversation; returns its raw id.
    pub async fn file_system_mail(&self, message: NewSystemMail) -> Result<i64, StoreError> {
        self.write(move |conn| file_system_mail(conn, &message))
            .await
    }
}

/// Stores the message, its raw copy, threading ids and participants, and queues one
/// delivery per recipient. Runs inside the writer transaction. A reply to a conversation
/// deleted or trashed meanwhile is refused, as inbound mail would not join it.
fn file_outbound(conn: &Conn, m: &NewOutbound) -> Result<FiledOutbound, StoreError> {
    let conversation_id = match m.conversation_id {
        Some(id) => {
            rows::add_message_to(conn, id, m.now, Reopen::No)?;
            id
        }
        None => {
            let contact_id = rows::upsert_contact(conn, &m.contact, m.now)?;
            rows::new_conversation(
                conn,
                &NewConversation {
                    inbox: &m.inbox,
                    channel: &m.channel,
                    subject: &m.subject,
                    subject_norm: &m.subject_norm,
                    contact_id,
                    at: m.now,
                    classification: None,
                },
            )?
        }
    };
    let recipients = all_recipients(m);
    let raw_id = insert_raw(conn, &m.raw, &m.mail_from, &recipients, m.now)?;
    let message_row = rows::insert_message(
        conn,
        &MessageInsert {
            conversation_id,
            raw_id,
            direction: Direction::Out,
            message_id: Some(&m.message_id),
            from: &m.from,
            to: m.to.iter().map(String::as_str).collect(),
            cc: m.cc.iter().map(String::as_str).collect(),
            subject: &m.subject,
            subject_norm: &m.subject_norm,
            date: Some(m.now),
            received_at: m.now,
            text: &m.text,
            thread_index: m.thread_index_root.as_deref(),
            references: &m.references,
            in_reply_to: m.in_reply_to.as_slice(),
            attachments: &m.attachments,
            classification: None,
            thread_reason: None,
        },
    )?;
    rows::record_id(conn, &m.inbox, &m.message_id, conversation_id, message_row)?;
    let participants = std::iter::once(&m.from.address).chain(&recipients);
    rows::add_participants(conn, conversation_id, participants.map(String::as_str))?;
    deliveries::queue(
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
pub(super) fn file_system_mail(conn: &Conn, m: &NewSystemMail) -> Result<i64, StoreError> {
    let raw_id = insert_raw(conn, &m.raw, &m.mail_from, &m.recipients, m.now)?;
    deliveries::queue(
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

fn insert_raw(
    conn: &Conn,
    body: &[u8],
    mail_from: &str,
    recipients: &[String],
    now: i64,
) -> Result<i64, StoreError> {
    let raw = RawCopy {
        at: now,
        mail_from,
        rcpt_to: recipients,
        body,
    };
    rows::insert_raw(conn, &raw)
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

impl Reader {
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
            .query_map([limit.map_or(i64::MAX, i64::from)], |r| {
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
                        m.subject, m.text, m.reply_refs
                 FROM messages m
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
                        references: r
                            .get::<_, Option<String>>(8)?
                            .map(|refs| serde_json::from_str(&refs).unwrap_or_default()),
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
}

#[cfg(test)]
mod tests {
    use crate::store::conversations::{add_message_to, Reopen};
    use crate::store::testkit::{inbound, reply, store};
    use crate::store::{Change, NewOutbound, StoreError, Writer};

    const QUESTION: &str = "Message-ID: <q@klant.example>\r\nFrom: jan@klant.example\r\n\
                            Subject: x\r\n\r\nWaar blijft mijn pakket?\r\n";

    async fn reply_to(writer: &Writer, conversation_id: i64, id: &str) -> Result<(), StoreError> {
        let message = NewOutbound {
            conversation_id: Some(conversation_id),
            ..reply(id)
        };
        writer.file_outbound(message).await.map(|_| ())
    }

    /// `(deleted, status, message_count)` of the conversation.
    async fn state(writer: &Writer, id: i64) -> (bool, String, i64) {
        writer
            .write(move |conn| {
                Ok(conn.query_row(
                    "SELECT deleted, status, message_count FROM conversations WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?)
            })
            .await
            .expect("conversation row")
    }

    #[tokio::test]
    async fn a_deleted_conversation_is_never_resurrected_and_a_trashed_one_takes_no_reply() {
        let (_dir, _store, writer) = store();
        let filed = writer
            .file_inbound(inbound(QUESTION, "jan@klant.example", 5))
            .await
            .expect("filed");
        let id = filed[0].conversation_id;
        let change = |change| writer.change_conversation(id, change, "alice@x".into(), 6);
        change(Change::Close { with_ticket: false })
            .await
            .expect("closed");
        reply_to(&writer, id, "open@ours")
            .await
            .expect("a reply to a closed conversation");
        change(Change::Trash).await.expect("trashed");
        let refused = reply_to(&writer, id, "trashed@ours").await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        change(Change::DeleteForever).await.expect("deleted");
        let refused = reply_to(&writer, id, "deleted@ours").await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        // Inbound filing goes through the same rule: a reply never reopens it.
        let reopened = writer
            .write(move |conn| add_message_to(conn, id, 7, Reopen::Yes))
            .await;
        assert!(
            matches!(reopened, Err(StoreError::Conflict(_))),
            "{reopened:?}"
        );
        assert_eq!(state(&writer, id).await, (true, "closed".into(), 0));
    }

    #[tokio::test]
    async fn a_reply_parent_carries_its_references_without_its_raw_message() {
        let (_dir, store, writer) = store();
        let answer = "Message-ID: <a@klant.example>\r\nFrom: jan@klant.example\r\n\
                      In-Reply-To: <q@klant.example>\r\nSubject: Re: x\r\n\r\nDank\r\n";
        writer
            .file_inbound(inbound(QUESTION, "jan@klant.example", 5))
            .await
            .expect("filed");
        let filed = writer
            .file_inbound(inbound(answer, "jan@klant.example", 6))
            .await
            .expect("filed");
        let id = filed[0].conversation_id;
        let reader = store.reader().expect("reader");
        let parent = reader.reply_parent(id).expect("read").expect("a parent");
        assert_eq!(parent.message_id.as_deref(), Some("a@klant.example"));
        assert_eq!(parent.references, Some(vec!["q@klant.example".to_string()]));
        // A row filed before the column existed: the caller reads the raw message.
        writer
            .write(|conn| Ok(conn.execute("UPDATE messages SET reply_refs = NULL", ())?))
            .await
            .expect("old row");
        let parent = reader.reply_parent(id).expect("read").expect("a parent");
        assert_eq!(parent.references, None);
    }
}
