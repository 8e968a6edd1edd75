//! The contract's JSON shapes (DESIGN.md "Contract") for conversations and messages.
//! The CLI prints them; the HTTP API will serve the same shapes.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::{ConversationRow, MessageRow};

/// Message text longer than this is truncated in `show` (SPEC B8).
pub const TEXT_LIMIT: usize = 100 * 1024;

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn conversation(c: &ConversationRow) -> Value {
    json!({
        "id": c.id,
        "inbox": c.inbox,
        "channel": c.channel,
        "subject": c.subject,
        "status": c.status,
        "assignee": c.assignee,
        "contact": { "email": c.contact_email, "name": c.contact_name },
        "spam": c.spam,
        "filtered": c.filtered,
        "trashed": c.trashed,
        "message_count": c.message_count,
        "last_message_at": rfc3339(c.last_message_at),
        "ticket": Value::Null,
    })
}

/// A conversation with its messages; `full` turns truncation off.
pub fn conversation_with_messages(
    c: &ConversationRow,
    messages: &[MessageRow],
    full: bool,
) -> Value {
    let mut value = conversation(c);
    value["messages"] = messages.iter().map(|m| message(m, full)).collect();
    value
}

pub fn message(m: &MessageRow, full: bool) -> Value {
    let (text, truncated) = if full {
        (m.text.as_str(), false)
    } else {
        truncate(&m.text, TEXT_LIMIT)
    };
    json!({
        "id": m.id,
        "direction": m.direction,
        "from": m.from,
        "from_name": m.from_name,
        "to": m.to,
        "cc": m.cc,
        "subject": m.subject,
        "message_id": m.message_id,
        "date": rfc3339(m.date.unwrap_or(m.received_at)),
        "received_at": rfc3339(m.received_at),
        "text": text,
        "truncated": truncated,
        "attachments": m.attachments,
    })
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub fn truncate(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(10);
        let (cut, truncated) = truncate(&text, 5);
        assert!(truncated);
        assert_eq!(cut, "éé");
        assert_eq!(truncate("short", 10), ("short", false));
    }

    #[test]
    fn rfc3339_of_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
