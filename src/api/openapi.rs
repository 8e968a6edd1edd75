//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. A test checks that its
//! paths and methods are exactly the routes of `api::routes`.

use serde_json::{json, Map, Value};

/// One operation: method, path, summary, parameters, request body schema, response.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str, &'static str)],
    body: Option<Value>,
    response: Value,
}

fn op(method: &'static str, path: &'static str, summary: &'static str, response: Value) -> Op {
    Op {
        method,
        path,
        summary,
        query: &[],
        body: None,
        response,
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": reference(name) })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

const LIST_QUERY: &[(&str, &str, &str)] = &[
    (
        "view",
        "string",
        "unassigned, assigned_to_me, all_open, email, closed, sent, spam, filtered, trash",
    ),
    ("inbox", "string", "inbox name"),
    ("status", "string", "open or closed"),
    ("channel", "string", "channel address"),
    ("contact", "string", "contact email"),
    ("assignee", "string", "agent email, or none"),
    (
        "since",
        "string",
        "last activity at or after (RFC 3339 or YYYY-MM-DD)",
    ),
    (
        "until",
        "string",
        "last activity before (RFC 3339 or YYYY-MM-DD)",
    ),
    (
        "hide_filtered",
        "boolean",
        "leave out Filtered conversations",
    ),
    (
        "hide_trash",
        "boolean",
        "false lists trash too when no view is given",
    ),
    ("sort", "string", "newest (default) or oldest"),
    ("cursor", "string", "next_cursor of the previous page"),
    ("limit", "integer", "page size, 1-500, default 50"),
    (
        "q",
        "string",
        "full-text search over subject, body text and sender",
    ),
];

const SEND_SUMMARY_REPLY: &str = "Reply (queued for delivery; the response's `delivery` shows its state). 409 when the channel is switched off or the From is not allowed. Attachments are not taken over HTTP: use `inboxgate conversations reply --attach`";

fn operations() -> Vec<Op> {
    let conversation = || reference("Conversation");
    let text = |key: &str| object(json!({ key: { "type": "string" } }), &[key]);
    let mut ops = vec![
        op(
            "get",
            "/api/v1/openapi.json",
            "This document",
            json!({ "type": "object" }),
        ),
        op(
            "get",
            "/api/v1/me",
            "The calling agent, availability and inboxes",
            reference("Me"),
        ),
        Op {
            body: Some(object(
                json!({ "available": { "type": "boolean" } }),
                &["available"],
            )),
            ..op(
                "put",
                "/api/v1/me/availability",
                "Set availability (available or away)",
                reference("Me"),
            )
        },
        op(
            "get",
            "/api/v1/inboxes",
            "Inboxes the agent may see, with fallback and forwarding addresses",
            array_of("Inbox"),
        ),
        Op {
            query: LIST_QUERY,
            ..op(
                "get",
                "/api/v1/conversations",
                "List conversations by view, filters and search",
                object(
                    json!({
                        "conversations": array_of("Conversation"),
                        "next_cursor": { "type": ["string", "null"] },
                    }),
                    &["conversations", "next_cursor"],
                ),
            )
        },
        Op {
            body: Some(object(
                json!({
                    "action": { "type": "string", "enum": ["close", "trash", "restore", "reopen", "unassign", "spam", "not_spam", "delete"] },
                    "ids": { "type": "array", "items": { "type": "integer" } },
                    "with_ticket": { "type": "boolean" },
                }),
                &["action", "ids"],
            )),
            ..op(
                "post",
                "/api/v1/conversations/bulk",
                "Bulk close, bulk trash (one outcome per id)",
                object(
                    json!({
                        "results": { "type": "array", "items": { "type": "object" } },
                    }),
                    &["results"],
                ),
            )
        },
        Op {
            query: &[("full", "boolean", "do not truncate text past 100 KB")],
            ..op(
                "get",
                "/api/v1/conversations/{id}",
                "One conversation with messages and timeline",
                reference("ConversationWithMessages"),
            )
        },
        op(
            "delete",
            "/api/v1/conversations/{id}",
            "Delete forever (only from trash); keeps Message-ID tombstones",
            json!({ "type": "object" }),
        ),
        Op {
            body: Some(object(
                json!({
                    "text": { "type": "string", "description": "plain-text body; the channel's signature is appended" },
                    "html": { "type": "string" },
                    "to": { "type": "array", "items": { "type": "string" }, "description": "default: the sender of the message replied to" },
                    "cc": { "type": "array", "items": { "type": "string" } },
                    "bcc": { "type": "array", "items": { "type": "string" } },
                    "from": { "type": "string", "description": "another channel address of the inbox or a verified From address" },
                }),
                &["text"],
            )),
            ..op(
                "post",
                "/api/v1/conversations/{id}/reply",
                SEND_SUMMARY_REPLY,
                reference("Message"),
            )
        },
        Op {
            body: Some(object(
                json!({
                    "to": { "type": "array", "items": { "type": "string" } },
                    "note": { "type": "string", "description": "text above the forwarded messages" },
                }),
                &["to"],
            )),
            ..op(
                "post",
                "/api/v1/conversations/{id}/forward",
                "Forward the conversation's messages to other addresses (logged in it); 409 when its channel is off",
                reference("Message"),
            )
        },
        Op {
            body: Some(object(
                json!({ "message": { "type": "integer", "description": "a message of this conversation" } }),
                &["message"],
            )),
            ..op(
                "post",
                "/api/v1/conversations/{id}/split",
                "Split one message off into a new conversation (same inbox and contact); later replies to it follow it. Returns the new conversation",
                conversation(),
            )
        },
        Op {
            body: Some(object(
                json!({ "into": { "type": "integer", "description": "the conversation to merge into" } }),
                &["into"],
            )),
            ..op(
                "post",
                "/api/v1/conversations/{id}/merge",
                "Merge this conversation into another (messages, comments, timeline); replies to its messages land there. Returns the conversation merged into",
                conversation(),
            )
        },
        Op {
            body: Some(object(
                json!({
                    "to": { "type": "array", "items": { "type": "string" } },
                    "from": { "type": "string", "description": "a channel address or a verified From address" },
                    "subject": { "type": "string" },
                    "text": { "type": "string" },
                    "html": { "type": "string" },
                }),
                &["to", "from", "subject", "text"],
            )),
            ..op(
                "post",
                "/api/v1/compose",
                "Start a conversation with an outbound message (in Sent until answered); 409 when the channel is off or the From is not allowed. Attachments: CLI only (`inboxgate compose --attach`)",
                reference("Message"),
            )
        },
        op(
            "get",
            "/api/v1/messages/{id}",
            "One message, full text",
            reference("Message"),
        ),
        op(
            "get",
            "/api/v1/messages/{id}/raw",
            "The stored message as RFC 5322 (message/rfc822)",
            json!({ "type": "string" }),
        ),
        op(
            "get",
            "/api/v1/messages/{id}/attachments/{index}",
            "One attachment, decoded",
            json!({ "type": "string", "format": "binary" }),
        ),
        op(
            "get",
            "/api/v1/contacts/{key}",
            "A contact (by id or email) with conversations and tickets",
            reference("Contact"),
        ),
        op(
            "get",
            "/api/v1/senders/blocked",
            "Blocked senders",
            json!({ "type": "array", "items": { "type": "object" } }),
        ),
        op(
            "put",
            "/api/v1/senders/blocked/{address}",
            "Block a sender: future threads go to Filtered",
            json!({ "type": "object" }),
        ),
        op(
            "delete",
            "/api/v1/senders/blocked/{address}",
            "Unblock a sender",
            json!({ "type": "object" }),
        ),
        op(
            "get",
            "/api/v1/tokens",
            "API tokens (never their secrets): a super admin sees all, others their own",
            array_of("Token"),
        ),
        op(
            "delete",
            "/api/v1/tokens/{id}",
            "Revoke a token (a super admin any, others their own; 404 otherwise); refused at once",
            object(json!({ "id": { "type": "integer" }, "revoked": { "type": "boolean" } }), &["id", "revoked"]),
        ),
    ];
    for (name, path) in super::ACTION_ROUTES {
        let body = match name {
            "assign" => Some(object(
                json!({ "assignee": { "type": "string" }, "team": { "type": "string" } }),
                &[],
            )),
            "comment" => Some(text("text")),
            "move" => Some(text("inbox")),
            "close" => Some(object(json!({ "with_ticket": { "type": "boolean" } }), &[])),
            _ => None,
        };
        ops.push(Op {
            body,
            ..op("post", path, action_summary(name), conversation())
        });
    }
    ops
}

fn action_summary(name: &str) -> &'static str {
    match name {
        "assign" => "Assign or reassign to an agent who is a member of the inbox (assignee), or to a team (team: its member with the fewest open conversations)",
        "unassign" => "Remove the assignee",
        "comment" => "Add an internal comment (never emailed)",
        "close" => "Close, with or without its ticket",
        "reopen" => "Reopen",
        "move" => "Move to another inbox",
        "trash" => "Move to trash (deleted for good after 30 days)",
        "restore" => "Take out of trash",
        "spam" => "Mark as spam (this thread only)",
        "not_spam" => "Not spam: back to the inbox",
        "block_sender" => "Block the contact: this and future threads go to Filtered",
        _ => "Conversation action",
    }
}

fn operation(o: &Op) -> Value {
    let mut parameters: Vec<Value> = path_parameters(o.path)
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(o.query.iter().map(|(name, kind, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": kind } })
    }));
    let mut value = json!({
        "summary": o.summary,
        "parameters": parameters,
        "responses": {
            "200": { "description": "OK", "content": { "application/json": { "schema": o.response } } },
            "400": error_response("invalid request"),
            "401": error_response("missing or invalid token"),
            "403": error_response("view-only: not a member of the inbox"),
            "404": error_response("not found, or not visible to the caller"),
            "409": error_response("no longer applies"),
            "429": error_response("too many failed authentications"),
        },
    });
    if let Some(body) = &o.body {
        value["requestBody"] = json!({ "content": { "application/json": { "schema": body } } });
    }
    if o.path == "/api/v1/openapi.json" {
        value["security"] = json!([]);
    }
    value
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": reference("Error") } } })
}

fn schemas() -> Value {
    let nullable_string = json!({ "type": ["string", "null"] });
    json!({
        "Error": object(json!({ "code": { "type": "string" }, "message": { "type": "string" } }), &["code", "message"]),
        "Token": object(json!({
            "id": { "type": "integer" }, "user": { "type": "string" },
            "created_at": { "type": "string", "format": "date-time" },
            "last_used_at": { "type": ["string", "null"], "format": "date-time" }
        }), &["id", "user", "created_at", "last_used_at"]),
        "Conversation": object(json!({
            "id": { "type": "integer" }, "inbox": { "type": "string" }, "channel": { "type": "string" },
            "subject": { "type": "string" }, "status": { "type": "string", "enum": ["open", "closed"] },
            "assignee": nullable_string,
            "contact": object(json!({ "id": { "type": "integer" }, "email": { "type": "string" }, "name": nullable_string }), &["email", "name"]),
            "spam": { "type": "boolean" }, "filtered": { "type": "boolean" }, "trashed": { "type": "boolean" },
            "message_count": { "type": "integer" }, "last_message_at": { "type": "string", "format": "date-time" },
            "ticket": { "type": ["object", "null"] },
            "participant_count": { "type": "integer" },
            "indicator": { "type": ["string", "null"], "enum": ["reply", "forward", null] },
            "preview": { "type": "string" }, "comment_preview": nullable_string,
        }), &["id", "inbox", "channel", "subject", "status", "assignee", "contact", "spam", "filtered", "trashed", "message_count", "last_message_at", "ticket"]),
        "ConversationWithMessages": {
            "allOf": [reference("Conversation"), object(json!({
                "messages": array_of("Message"),
                "timeline": { "type": "array", "items": object(json!({
                    "at": { "type": "string" }, "actor": { "type": "string" },
                    "action": { "type": "string" }, "detail": nullable_string,
                }), &["at", "actor", "action"]) },
            }), &["messages"])],
        },
        "Message": object(json!({
            "id": { "type": "integer" }, "direction": { "type": "string", "enum": ["in", "out"] },
            "from": { "type": "string" }, "to": { "type": "array", "items": { "type": "string" } },
            "cc": { "type": "array", "items": { "type": "string" } }, "subject": { "type": "string" },
            "message_id": nullable_string, "date": { "type": "string" }, "text": { "type": "string" },
            "truncated": { "type": "boolean" },
            "conversation_id": { "type": "integer" },
            "delivery": object(json!({
                "status": { "type": "string", "enum": ["queued", "sending", "sent", "deferred", "failed"] },
                "attempts": { "type": "integer" }, "last_reply": nullable_string,
            }), &["status", "attempts"]),
            "attachments": { "type": "array", "items": object(json!({
                "filename": { "type": "string" }, "content_type": { "type": "string" }, "size": { "type": "integer" },
            }), &["filename", "content_type", "size"]) },
        }), &["id", "direction", "from", "to", "cc", "subject", "message_id", "date", "text", "truncated", "attachments"]),
        "Contact": object(json!({
            "id": { "type": "integer" }, "email": { "type": "string" }, "name": nullable_string,
            "conversations": array_of("Conversation"), "tickets": { "type": "array" },
        }), &["id", "email", "conversations", "tickets"]),
        "Inbox": object(json!({
            "name": { "type": "string" }, "access": { "type": "string", "enum": ["member", "view_only"] },
            "channels": { "type": "array", "items": object(json!({
                "address": { "type": "string" }, "kind": { "type": "string" }, "status": { "type": "string" },
                "forwarding_address": nullable_string,
            }), &["address", "kind", "status"]) },
        }), &["name", "access", "channels"]),
        "Me": object(json!({
            "email": { "type": "string" }, "name": { "type": "string" }, "available": { "type": "boolean" },
            "inboxes": { "type": "array", "items": { "type": "object" } },
        }), &["email", "name", "available"]),
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation(&o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "inboxgate API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Conversations of the shared inbox for agents. Authenticate with `Authorization: Bearer TOKEN` (create one with `inboxgate users token create EMAIL`). Errors are JSON {code, message}. Reply, forward and compose queue mail for delivery; attachments are not taken over HTTP (the CLI sends them).",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_document_lists_exactly_the_served_routes() {
        let served: BTreeSet<(String, String)> = super::super::routes()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_string()))
            .collect();
        let doc = super::document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .expect("operations")
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        assert_eq!(served, documented);
        assert!(served.len() > 20);
    }
}
