//! Route handlers: parse the request, call `inbox::Service` (reads on the blocking
//! pool, since SQLite calls block), render the same JSON shapes the CLI prints.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Agent;
use super::error::ApiError;
use super::extract::{ApiPath, JsonBytes};
use super::ApiState;
use crate::inbox::access::InboxAccess;
use crate::inbox::query::ListParams;
use crate::inbox::service::SendRequest;
use crate::inbox::{json, Action, Caller, InboxError, Service};
use crate::outbound::send::{ComposeRequest, Content, ForwardRequest, ReplyRequest};

type St = State<Arc<ApiState>>;
type ApiResult = Result<Response, ApiError>;

/// Runs a synchronous service call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    call: impl FnOnce(&Service) -> Result<T, InboxError> + Send + 'static,
) -> Result<T, ApiError> {
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || call(&service))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(ApiError::from)
}

fn id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("{text:?} is not an id")))
}

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

/// Optional JSON body of the action routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// assign: the agent's email.
    assignee: Option<String>,
    /// assign: a team instead; its member with the fewest open conversations takes it.
    team: Option<String>,
    /// comment: the note.
    text: Option<String>,
    /// move: the target inbox's name.
    inbox: Option<String>,
    /// close: close the ticket too.
    with_ticket: Option<bool>,
}

fn body<T: Default + for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("request body: {e}")))
}

fn action(name: &str, body: ActionBody) -> Result<Action, ApiError> {
    let required = |value: Option<String>, key: &str| {
        value.ok_or_else(|| ApiError::invalid(format!("{name} needs \"{key}\" in the body")))
    };
    Ok(match name {
        "assign" => match (body.assignee, body.team) {
            (_, Some(team)) => Action::AssignTeam(team),
            (assignee, None) => Action::Assign(required(assignee, "assignee")?),
        },
        "unassign" => Action::Unassign,
        "comment" => Action::Comment(required(body.text, "text")?),
        "close" => Action::Close {
            with_ticket: body.with_ticket.unwrap_or(false),
        },
        "reopen" => Action::Reopen,
        "move" => Action::Move(required(body.inbox, "inbox")?),
        "trash" => Action::Trash,
        "restore" => Action::Restore,
        "delete" => Action::DeleteForever,
        "spam" => Action::Spam,
        "not_spam" => Action::NotSpam,
        "block_sender" => Action::BlockSender,
        other => return Err(ApiError::invalid(format!("unknown action {other:?}"))),
    })
}

fn acted(id: i64, outcome: Option<crate::store::ConversationRow>) -> Value {
    match outcome {
        Some(c) => json::conversation(&c),
        None => json!({ "id": id, "deleted": true }),
    }
}

pub async fn openapi_document() -> Json<Value> {
    Json(super::openapi::document())
}

/// `GET /metrics`: the Prometheus text exposition (no token; see `router`).
pub async fn metrics(State(state): St) -> ApiResult {
    let gauges = blocking(&state, |service| service.store_gauges()).await?;
    let text = state.metrics.render(&gauges);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A served path asked with a method it does not take.
pub async fn wrong_method(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}"),
    )
}

pub async fn me(State(state): St, Agent(caller): Agent) -> ApiResult {
    let me_caller = caller.clone();
    let (user, available) = blocking(&state, move |s| s.me(&me_caller)).await?;
    let inboxes: Vec<Value> = state
        .service
        .inboxes(&caller)
        .iter()
        .map(|i| json!({ "name": i.name, "access": access_name(i.access) }))
        .collect();
    ok(json!({
        "email": user.email,
        "name": user.name,
        "available": available,
        "paid_seat": user.paid_seat,
        "super_admin": user.super_admin,
        "inboxes": inboxes,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    available: bool,
}

pub async fn set_availability(
    State(state): St,
    Agent(caller): Agent,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let Some(Availability { available }) = body::<Option<Availability>>(&bytes)? else {
        return Err(ApiError::invalid("body needs {\"available\": true|false}"));
    };
    state.service.set_availability(&caller, available).await?;
    me(State(state), Agent(caller)).await
}

fn access_name(access: InboxAccess) -> &'static str {
    match access {
        InboxAccess::Member => "member",
        InboxAccess::ViewOnly => "view_only",
        InboxAccess::None => "none",
    }
}

pub async fn inboxes(State(state): St, Agent(caller): Agent) -> ApiResult {
    let list: Vec<Value> = state
        .service
        .inboxes(&caller)
        .iter()
        .map(|i| {
            let channels: Vec<Value> = i
                .channels
                .iter()
                .map(|c| {
                    json!({
                        "address": c.address,
                        "kind": c.kind,
                        "status": if c.on { "on" } else { "off" },
                        "forwarding_address": c.forwarding_address,
                    })
                })
                .collect();
            json!({ "name": i.name, "access": access_name(i.access), "channels": channels })
        })
        .collect();
    ok(Value::Array(list))
}

pub async fn list_conversations(
    State(state): St,
    Agent(caller): Agent,
    query: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult {
    let Query(mut params) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    // HTTP pages are bounded; the CLI (an operator's tool) may ask for any number.
    let page_size = params.limit.unwrap_or(crate::inbox::service::DEFAULT_PAGE);
    params.limit = Some(page_size.clamp(1, crate::inbox::service::MAX_PAGE));
    let filter = params.into_filter()?;
    let page = blocking(&state, move |s| s.list(&caller, filter)).await?;
    let list: Vec<Value> = page.conversations.iter().map(json::conversation).collect();
    ok(json!({ "conversations": list, "next_cursor": page.next_cursor }))
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowParams {
    /// Do not truncate message text past 100 KB.
    full: Option<bool>,
}

pub async fn show_conversation(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    query: Result<Query<ShowParams>, QueryRejection>,
) -> ApiResult {
    let id = id(&key)?;
    let Query(params) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let d = blocking(&state, move |s| s.show(&caller, id)).await?;
    ok(json::conversation_with_messages(
        &d.conversation,
        &d.messages,
        &d.timeline,
        params.full.unwrap_or(false),
    ))
}

pub async fn conversation_action(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    JsonBytes(bytes): JsonBytes,
    name: &'static str,
) -> ApiResult {
    let id = id(&key)?;
    let action = action(name, body(&bytes)?)?;
    let outcome = state.service.act(&caller, id, action).await?;
    ok(acted(id, outcome))
}

pub async fn delete_forever(state: St, agent: Agent, key: ApiPath<String>) -> ApiResult {
    conversation_action(state, agent, key, JsonBytes(Bytes::new()), "delete").await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    /// The message to split off.
    message: i64,
}

/// `POST /conversations/{id}/split` `{"message"}`: the new conversation.
pub async fn split(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let id = id(&key)?;
    let Some(SplitBody { message }) = body::<Option<SplitBody>>(&bytes)? else {
        return Err(ApiError::invalid("split needs {\"message\"} in the body"));
    };
    let split = state.service.split(&caller, id, message).await?;
    ok(json::conversation(&split))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The conversation merged into.
    into: i64,
}

/// `POST /conversations/{id}/merge` `{"into"}`: the conversation merged into.
pub async fn merge(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let id = id(&key)?;
    let Some(MergeBody { into }) = body::<Option<MergeBody>>(&bytes)? else {
        return Err(ApiError::invalid("merge needs {\"into\"} in the body"));
    };
    let merged = state.service.merge(&caller, id, into).await?;
    ok(json::conversation(&merged))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    action: String,
    ids: Vec<i64>,
    with_ticket: Option<bool>,
}

/// Bulk close and bulk trash (any action without arguments works the same way).
pub async fn bulk(
    State(state): St,
    Agent(caller): Agent,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let Some(request) = body::<Option<BulkBody>>(&bytes)? else {
        return Err(ApiError::invalid("body needs {\"action\", \"ids\"}"));
    };
    if request.ids.len() > crate::inbox::service::MAX_PAGE as usize {
        return Err(ApiError::invalid("at most 500 ids per request"));
    }
    let action = action(
        &request.action,
        ActionBody {
            with_ticket: request.with_ticket,
            ..ActionBody::default()
        },
    )?;
    let outcomes = state
        .service
        .act_on_many(&caller, &request.ids, action)
        .await;
    let results: Vec<Value> = outcomes
        .into_iter()
        .map(|(id, outcome)| match outcome {
            Ok(c) => json!({ "id": id, "ok": true, "conversation": acted(id, c) }),
            Err(e) => json!({ "id": id, "ok": false, "code": e.code(), "message": e.to_string() }),
        })
        .collect();
    ok(json!({ "results": results }))
}

pub async fn message(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
) -> ApiResult {
    let id = id(&key)?;
    let m = blocking(&state, move |s| s.message(&caller, id)).await?;
    let mut value = json::message(&m.message, true);
    value["conversation_id"] = json!(m.conversation_id);
    ok(value)
}

pub async fn raw_message(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
) -> ApiResult {
    let id = id(&key)?;
    let raw = blocking(&state, move |s| s.raw_message(&caller, id)).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

pub async fn attachment(
    State(state): St,
    Agent(caller): Agent,
    ApiPath((key, index)): ApiPath<(String, String)>,
) -> ApiResult {
    let id = id(&key)?;
    let index = usize::try_from(self::id(&index)?)
        .map_err(|_| ApiError::invalid("attachment index must not be negative"))?;
    let (info, bytes) = blocking(&state, move |s| s.attachment(&caller, id, index)).await?;
    let disposition = content_disposition(&crate::inbox::display::download_name(&info.filename));
    let content_type = if info.content_type.is_ascii() {
        info.content_type
    } else {
        "application/octet-stream".into()
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266), so
/// any name survives and the header stays valid.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

pub async fn contact(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
) -> ApiResult {
    let (contact, conversations) = blocking(&state, move |s| s.contact(&caller, &key)).await?;
    ok(json::contact(&contact, &conversations))
}

pub async fn blocked_senders(State(state): St, Agent(caller): Agent) -> ApiResult {
    let list = blocking(&state, move |s| s.blocked_senders(&caller)).await?;
    let list: Vec<Value> = list
        .iter()
        .map(|(address, at, by)| {
            json!({ "address": address, "blocked_at": json::rfc3339(*at), "blocked_by": by })
        })
        .collect();
    ok(Value::Array(list))
}

/// `GET /api/v1/tokens`.
pub async fn tokens(State(state): St, Agent(caller): Agent) -> ApiResult {
    let list = blocking(&state, move |s| s.tokens(&caller, None)).await?;
    ok(Value::Array(list.iter().map(json::token).collect()))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
) -> ApiResult {
    let id = id(&key)?;
    state.service.revoke_token(&caller, id).await?;
    ok(json!({ "id": id, "revoked": true }))
}

pub async fn block_sender(state: St, agent: Agent, address: ApiPath<String>) -> ApiResult {
    set_blocked(state, agent.0, address.0, true).await
}

pub async fn unblock_sender(state: St, agent: Agent, address: ApiPath<String>) -> ApiResult {
    set_blocked(state, agent.0, address.0, false).await
}

async fn set_blocked(
    State(state): St,
    caller: Caller,
    address: String,
    blocked: bool,
) -> ApiResult {
    state
        .service
        .set_sender_blocked(&caller, &address, blocked)
        .await?;
    ok(json!({ "address": address.trim().to_lowercase(), "blocked": blocked }))
}

// ---- sending (SPEC E1, E2, E9); the API sends take no attachments (the CLI's do) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    text: String,
    html: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeBody {
    to: Vec<String>,
    from: String,
    subject: String,
    text: String,
    html: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    to: Vec<String>,
    note: Option<String>,
}

/// A required JSON body.
fn required_body<T: for<'de> Deserialize<'de>>(bytes: &Bytes, shape: &str) -> Result<T, ApiError> {
    body::<Option<T>>(bytes)?.ok_or_else(|| ApiError::invalid(format!("body needs {shape}")))
}

/// Only an agent sends; the token always names one.
fn agent_email(caller: Caller) -> Result<String, ApiError> {
    match caller {
        Caller::User(email) => Ok(email),
        Caller::Operator => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "sending needs an agent",
        )),
    }
}

pub async fn reply(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let conversation_id = id(&key)?;
    let b: ReplyBody = required_body(&bytes, "{\"text\"}")?;
    let request = SendRequest::Reply(ReplyRequest {
        conversation_id,
        agent: agent_email(caller)?,
        content: Content {
            text: b.text,
            html: b.html,
            attachments: Vec::new(),
        },
        to: b.to,
        cc: b.cc,
        bcc: b.bcc,
        from: b.from,
    });
    sent(&state, request, &format!("conversation {conversation_id}")).await
}

pub async fn compose(
    State(state): St,
    Agent(caller): Agent,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let b: ComposeBody = required_body(&bytes, "{\"to\", \"from\", \"subject\", \"text\"}")?;
    let hidden = format!("From address {}", b.from.trim());
    let request = SendRequest::Compose(ComposeRequest {
        agent: agent_email(caller)?,
        to: b.to,
        cc: Vec::new(),
        bcc: Vec::new(),
        from: b.from,
        subject: b.subject,
        content: Content {
            text: b.text,
            html: b.html,
            attachments: Vec::new(),
        },
    });
    sent(&state, request, &hidden).await
}

pub async fn forward(
    State(state): St,
    Agent(caller): Agent,
    ApiPath(key): ApiPath<String>,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult {
    let conversation_id = id(&key)?;
    let b: ForwardBody = required_body(&bytes, "{\"to\"}")?;
    let request = SendRequest::Forward(ForwardRequest {
        conversation_id,
        agent: agent_email(caller)?,
        to: b.to,
        note: b.note,
    });
    sent(&state, request, &format!("conversation {conversation_id}")).await
}

/// Queues `request` and answers with the stored message and its delivery. `what` names
/// what a caller without access is told was not found (no existence leak).
async fn sent(state: &ApiState, request: SendRequest, what: &str) -> ApiResult {
    let service = state.service.clone();
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || runtime.block_on(service.send(request)))
        .await
        .map_err(|_| ApiError::internal())?;
    let m = outcome.map_err(|e| ApiError::from_send(e, what))?;
    let mut value = json::message(&m.message, true);
    value["conversation_id"] = json!(m.conversation_id);
    ok(value)
}
