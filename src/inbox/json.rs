//! The contract's JSON shapes (DESIGN.md "Contract") for conversations and messages,
//! plus the F3 list fields, timelines, contacts and inboxes. The CLI prints them and
//! the HTTP API serves them, so both show the same keys.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::RecipientDelivery;

use crate::store::{ContactRow, ConversationRow, MessageRow, TimelineEntry};

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
        "contact": { "id": c.contact_id, "email": c.contact_email, "name": c.contact_name },
        "spam": c.spam,
        "filtered": c.filtered,
        "trashed": c.trashed,
        "trashed_at": c.trashed_at.map(rfc3339),
        "message_count": c.message_count,
        "last_message_at": rfc3339(c.last_message_at),
        "ticket": c.ticket.as_ref().map(|t| json!({
            "id": t.id,
            "pipeline": t.pipeline,
            "stage": t.stage,
            "owner": t.owner,
            "status": t.status,
        })),
        "classification": { "verdict": c.verdict, "reasons": c.reasons },
        "participant_count": c.participant_count,
        "indicator": indicator(c),
        "last_direction": c.last_direction,
        "preview": preview(&c.preview),
        "comment_preview": c.comment_preview.as_deref().map(preview),
    })
}

/// F3's reply/forward indicator: what the newest message is.
fn indicator(c: &ConversationRow) -> Option<&'static str> {
    let subject = c.last_subject.as_deref()?.trim_start().to_lowercase();
    const FORWARD: &[&str] = &["fw:", "fwd:", "wg:", "tr:", "vs:", "doorst:", "rv:", "enc:"];
    const REPLY: &[&str] = &["re:", "aw:", "sv:", "antw:", "re :"];
    if FORWARD.iter().any(|p| subject.starts_with(p)) {
        Some("forward")
    } else if REPLY.iter().any(|p| subject.starts_with(p)) || c.message_count > 1 {
        Some("reply")
    } else {
        None
    }
}

/// One line of at most 120 characters.
fn preview(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(120).collect()
}

pub fn timeline(entries: &[TimelineEntry]) -> Value {
    entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339(e.at),
                "actor": e.actor,
                "action": e.action,
                "detail": e.detail,
            })
        })
        .collect()
}

pub fn contact(c: &ContactRow, conversations: &[ConversationRow]) -> Value {
    json!({
        "id": c.id,
        "email": c.email,
        "name": c.name,
        "created_at": rfc3339(c.created_at),
        "conversations": conversations.iter().map(conversation).collect::<Vec<_>>(),
        "tickets": conversations
            .iter()
            .filter_map(|c| c.ticket.as_ref().map(|t| (c.id, t)))
            .map(|(conversation, t)| json!({
                "id": t.id,
                "conversation": conversation,
                "pipeline": t.pipeline,
                "stage": t.stage,
                "owner": t.owner,
                "status": t.status,
            }))
            .collect::<Vec<_>>(),
        "owner": c.owner,
    })
}

/// A conversation with its messages; `full` turns truncation off.
pub fn conversation_with_messages(
    c: &ConversationRow,
    messages: &[MessageRow],
    entries: &[TimelineEntry],
    full: bool,
) -> Value {
    let mut value = conversation(c);
    value["messages"] = messages.iter().map(|m| message(m, full)).collect();
    value["timeline"] = timeline(entries);
    value
}

pub fn message(m: &MessageRow, full: bool) -> Value {
    let (text, truncated) = if full {
        (m.text.as_str(), false)
    } else {
        truncate(&m.text, TEXT_LIMIT)
    };
    let mut value = json!({
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
    });
    if m.direction == "in" {
        value["classification"] = json!({
            "verdict": m.verdict,
            "reasons": m.reasons,
            "tokens": verdict_tokens(&m.reasons),
            "score": m.spam_score,
            "authentication_results": m.auth_results,
        });
        value["bounce_of"] = json!(m.bounce_of);
        value["threading"] = json!(m.thread_reason);
    }
    if m.direction == "out" {
        let d = delivery_summary(&m.deliveries);
        value["delivery"] = json!({
            "status": d.status,
            "attempts": d.attempts,
            "last_reply": d.last_reply,
        });
        value["recipients"] = m
            .deliveries
            .iter()
            .map(|r| {
                json!({
                    "address": r.recipient,
                    "status": r.status,
                    "attempts": r.attempts,
                    "last_reply": r.last_reply,
                    "next_attempt_at": (r.status == "deferred").then(|| rfc3339(r.next_attempt_at)),
                })
            })
            .collect();
    }
    value
}

/// One status for a whole outbound message, from its recipients' deliveries.
pub struct DeliverySummary {
    /// `failed` if any recipient failed, else `sending`, `deferred`, `queued` in that
    /// order, else `sent` (every recipient accepted the message).
    pub status: &'static str,
    /// The most attempts any recipient took.
    pub attempts: i64,
    /// The latest remote reply (or our reason) for any recipient.
    pub last_reply: Option<String>,
}

pub fn delivery_summary(deliveries: &[RecipientDelivery]) -> DeliverySummary {
    let has = |s: &str| deliveries.iter().any(|d| d.status == s);
    let status = ["failed", "sending", "deferred", "queued"]
        .into_iter()
        .find(|s| has(s))
        .unwrap_or("sent");
    DeliverySummary {
        status,
        attempts: deliveries.iter().map(|d| d.attempts).max().unwrap_or(0),
        last_reply: deliveries
            .iter()
            .filter(|d| d.last_reply.is_some())
            .max_by_key(|d| d.updated_at)
            .and_then(|d| d.last_reply.clone()),
    }
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

/// An API token as listed (never its secret or hash).
pub fn token(t: &crate::store::TokenRow) -> Value {
    json!({
        "id": t.id,
        "user": t.user,
        "created_at": rfc3339(t.created_at),
        "last_used_at": t.last_used_at.map(rfc3339),
    })
}

/// The token model's strongest tokens behind a verdict, from its `token:TOKEN=P`
/// reasons: [{`token`, `spam_probability`}], strongest first.
fn verdict_tokens(reasons: &[String]) -> Value {
    let tokens: Vec<Value> = reasons
        .iter()
        .filter_map(|r| r.strip_prefix("token:")?.rsplit_once('='))
        .filter_map(|(token, p)| {
            let p: f64 = p.parse().ok()?;
            Some(json!({ "token": token, "spam_probability": p }))
        })
        .collect();
    Value::Array(tokens)
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
