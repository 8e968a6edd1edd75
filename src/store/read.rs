//! Typed read queries for the CLI (and later the HTTP API): conversation lists by view,
//! one conversation with its messages, raw messages.

use rusqlite::{params, OptionalExtension, Row};

use super::outbound::RecipientDelivery;
use super::{Reader, StoreError};
use crate::pipeline::parse::AttachmentInfo;

/// The agent views of SPEC F1, as the contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Unassigned,
    AssignedToMe,
    AllOpen,
    Email,
    Closed,
    Sent,
    Spam,
    Filtered,
    Trash,
}

impl View {
    pub const ALL: [View; 9] = [
        View::Unassigned,
        View::AssignedToMe,
        View::AllOpen,
        View::Email,
        View::Closed,
        View::Sent,
        View::Spam,
        View::Filtered,
        View::Trash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Unassigned => "unassigned",
            View::AssignedToMe => "assigned_to_me",
            View::AllOpen => "all_open",
            View::Email => "email",
            View::Closed => "closed",
            View::Sent => "sent",
            View::Spam => "spam",
            View::Filtered => "filtered",
            View::Trash => "trash",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The SQL condition selecting the view; `?1` is the calling user's email.
    fn condition(self) -> &'static str {
        const INBOX: &str = "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL";
        match self {
            View::Unassigned => concat!(
                "c.status = 'open' AND c.assignee IS NULL AND ",
                "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL AND ",
                "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::AssignedToMe => concat!(
                "c.status = 'open' AND c.assignee = ?1 AND ",
                "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL"
            ),
            View::AllOpen => concat!(
                "c.status = 'open' AND c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL AND ",
                "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::Email => INBOX,
            View::Closed => "c.status = 'closed' AND c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL",
            View::Sent => concat!(
                "c.trashed_at IS NULL AND NOT EXISTS ",
                "(SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::Spam => "c.spam = 1 AND c.trashed_at IS NULL",
            View::Filtered => "c.filtered = 1 AND c.trashed_at IS NULL",
            View::Trash => "c.trashed_at IS NOT NULL",
        }
    }
}

/// What to list. Without a view, every conversation not in trash.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub inbox: Option<String>,
    pub view: Option<View>,
    /// The calling user (for `assigned_to_me`).
    pub user: Option<String>,
    pub limit: Option<u32>,
}

/// One conversation as lists show it.
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: i64,
    pub inbox: String,
    pub channel: String,
    pub subject: String,
    pub status: String,
    pub assignee: Option<String>,
    pub contact_email: String,
    pub contact_name: Option<String>,
    pub spam: bool,
    pub filtered: bool,
    pub trashed: bool,
    pub message_count: i64,
    pub last_message_at: i64,
}

/// One message of a conversation.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub direction: String,
    pub from: String,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub date: Option<i64>,
    pub received_at: i64,
    pub text: String,
    pub attachments: Vec<AttachmentInfo>,
    /// Outbound messages: each recipient's delivery (empty for inbound ones).
    pub deliveries: Vec<RecipientDelivery>,
}

const CONVERSATION_COLUMNS: &str = "c.id, c.inbox, c.channel, c.subject, c.status, c.assignee,
     ct.email, ct.name, c.spam, c.filtered, c.trashed_at IS NOT NULL, c.message_count,
     c.last_message_at";

fn conversation_row(r: &Row) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        id: r.get(0)?,
        inbox: r.get(1)?,
        channel: r.get(2)?,
        subject: r.get(3)?,
        status: r.get(4)?,
        assignee: r.get(5)?,
        contact_email: r.get(6)?,
        contact_name: r.get(7)?,
        spam: r.get(8)?,
        filtered: r.get(9)?,
        trashed: r.get(10)?,
        message_count: r.get(11)?,
        last_message_at: r.get(12)?,
    })
}

impl Reader {
    /// Conversations matching `filter`, newest activity first.
    pub fn conversations(&self, filter: &ListFilter) -> Result<Vec<ConversationRow>, StoreError> {
        let view = filter.view.map_or("c.trashed_at IS NULL", View::condition);
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c
             JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.deleted = 0 AND ({view}) AND (?2 IS NULL OR c.inbox = ?2 COLLATE NOCASE)
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT ?3"
        );
        let limit = filter.limit.map_or(-1, i64::from);
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![filter.user, filter.inbox, limit], conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One conversation (not deleted).
    pub fn conversation(&self, id: i64) -> Result<Option<ConversationRow>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c
             JOIN contacts ct ON ct.id = c.contact_id WHERE c.id = ?1 AND c.deleted = 0"
        );
        Ok(self
            .conn
            .query_row(&sql, [id], conversation_row)
            .optional()?)
    }

    /// The messages of a conversation, oldest first.
    pub fn messages(&self, conversation_id: i64) -> Result<Vec<MessageRow>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ?1 ORDER BY received_at, id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([conversation_id], message_row)?;
        let mut messages: Vec<MessageRow> = rows.collect::<Result<_, _>>()?;
        for m in &mut messages {
            if m.direction == "out" {
                m.deliveries = self.deliveries(m.id)?;
            }
        }
        Ok(messages)
    }

    /// One message by row id, with its deliveries when outbound.
    pub fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
        let Some(mut m) = self.conn.query_row(&sql, [id], message_row).optional()? else {
            return Ok(None);
        };
        if m.direction == "out" {
            m.deliveries = self.deliveries(m.id)?;
        }
        Ok(Some(m))
    }

    /// The whole stored message (RFC 5322, our Received header first).
    pub fn raw_message(&self, message_row: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.body FROM messages m JOIN raw_messages r ON r.id = m.raw_id
                 WHERE m.id = ?1",
                [message_row],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Number of stored messages (for checks and benchmarks).
    pub fn message_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?)
    }
}

const MESSAGE_COLUMNS: &str = "id, direction, from_addr, from_name, to_json, cc_json, subject,
     message_id, date, received_at, text, attachments_json";

fn message_row(r: &Row) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        direction: r.get(1)?,
        from: r.get(2)?,
        from_name: r.get(3)?,
        to: json_list(&r.get::<_, String>(4)?),
        cc: json_list(&r.get::<_, String>(5)?),
        subject: r.get(6)?,
        message_id: r.get(7)?,
        date: r.get(8)?,
        received_at: r.get(9)?,
        text: r.get(10)?,
        attachments: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        deliveries: Vec::new(),
    })
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
