//! The form actions: plain HTML form posts that answer with a redirect (303), so they
//! work with scripting off. Each checks the session's CSRF token first and goes
//! through `inbox::Service` (its access rules: a view-only admin is refused, an inbox
//! the agent may not see is 404).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::compose;
use super::csrf::{self, Fields};
use super::pages::conversation::{confirm_page, parse_id, reply_after_new_mail, Confirm, Draft};
use super::session::SignedIn;
use super::{WebError, WebState};
use maud::html;

use crate::inbox::service::SendRequest;
use crate::inbox::{Action, Caller};
use crate::outbound::compose::Attachment;
use crate::outbound::send::{Content, ReplyRequest, SendError};

type PostedForm = Result<Form<Vec<(String, String)>>, FormRejection>;

/// Runs `act` after the CSRF check; a failure is shown in the agent's language.
async fn checked<F>(me: &SignedIn, form: PostedForm, act: impl FnOnce(Fields) -> F) -> Response
where
    F: std::future::Future<Output = Result<Response, WebError>>,
{
    let fields = Fields::from_form(form);
    let outcome = match csrf::check(me, &fields) {
        Ok(()) => act(fields).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|e| e.page(me.lang))
}

/// A form post that is one `Action` on conversation `id` (read from the form by
/// `action_of`), then back to the conversation's page.
async fn act_by_form(
    state: &WebState,
    me: &SignedIn,
    id: &str,
    form: PostedForm,
    action_of: impl FnOnce(&Fields) -> Result<Action, WebError>,
) -> Response {
    let caller = me.caller();
    checked(me, form, |fields| async move {
        let id = parse_id(id)?;
        let action = action_of(&fields)?;
        state.service.act(&caller, id, action).await?;
        Ok(back_to(id))
    })
    .await
}

fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/conversations/{id}")).into_response()
}

/// `POST /conversations/{id}/act`: close (with or without its ticket), reopen, spam,
/// not spam, trash, restore; block sender and delete forever once confirmed (the
/// first post shows what will happen and asks).
pub async fn act(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    let caller = me.caller();
    let agent_page = me.clone();
    checked(&me, form, |fields| async move {
        let id = parse_id(&id)?;
        let name = fields.get("action").unwrap_or_default();
        let action = match name {
            "close" => Action::Close { with_ticket: false },
            "close_with_ticket" => Action::Close { with_ticket: true },
            "reopen" => Action::Reopen,
            "spam" => Action::Spam,
            "not_spam" => Action::NotSpam,
            "trash" => Action::Trash,
            "restore" => Action::Restore,
            "block_sender" => Action::BlockSender,
            "delete" => Action::DeleteForever,
            other => return Err(WebError::Invalid(format!("unknown action {other:?}"))),
        };
        let destructive = matches!(action, Action::BlockSender | Action::DeleteForever);
        if destructive && fields.get("confirmed") != Some("1") {
            return ask_first(&state, &agent_page, id, name).await;
        }
        let after = state.service.act(&caller, id, action).await?;
        Ok(match after {
            Some(_) => back_to(id),
            // Deleted forever: back to the trash it was in.
            None => Redirect::to("/?view=trash").into_response(),
        })
    })
    .await
}

/// The confirmation page of block sender or delete forever (for a conversation the
/// agent may act on: the same refusals as the action itself).
async fn ask_first(
    state: &WebState,
    me: &SignedIn,
    id: i64,
    action: &str,
) -> Result<Response, WebError> {
    let c = acting_on(state, me, id).await?;
    let (question, button, subject) = match action {
        "delete" => ("confirm.delete", "delete_forever", html! {}),
        _ => (
            "confirm.block_sender",
            "block_sender",
            html! { p { (c.contact_name.clone().unwrap_or_default()) " <" (c.contact_email) ">" } },
        ),
    };
    let confirm = Confirm {
        question,
        subject,
        action: format!("/conversations/{id}/act"),
        fields: vec![("action", action.to_string())],
        button,
    };
    Ok(confirm_page(state, me, &c, confirm).await?.into_response())
}

/// The conversation, when `me` may act on it: 404 when they may not see it, 403 when
/// they may only view it (as `Service::act` decides).
async fn acting_on(
    state: &WebState,
    me: &SignedIn,
    id: i64,
) -> Result<crate::store::ConversationRow, WebError> {
    let caller = me.caller();
    super::blocking(state, move |s| s.actionable(&caller, id)).await
}

/// `POST /conversations/{id}/move`: to another inbox the agent is a member of.
pub async fn move_to(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    act_by_form(&state, &me, &id, form, |fields| {
        Ok(Action::Move(
            fields.get("inbox").unwrap_or_default().to_string(),
        ))
    })
    .await
}

/// `POST /conversations/{id}/split`: the message (`message`) into a conversation of
/// its own; on to that conversation.
pub async fn split(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    let caller = me.caller();
    checked(&me, form, |fields| async move {
        let id = parse_id(&id)?;
        let message = number(fields.get("message"), "message")?;
        let split = state.service.split(&caller, id, message).await?;
        Ok(back_to(split.id))
    })
    .await
}

/// `POST /conversations/{id}/merge`: into conversation `into`, once confirmed (the
/// first post shows both conversations and asks); on to the conversation merged into.
pub async fn merge(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    let caller = me.caller();
    let agent_page = me.clone();
    checked(&me, form, |fields| async move {
        let id = parse_id(&id)?;
        let into = number(fields.get("into").map(|n| n.trim_start_matches('#')), "into")?;
        if fields.get("confirmed") == Some("1") {
            let merged = state.service.merge(&caller, id, into).await?;
            return Ok(back_to(merged.id));
        }
        let c = acting_on(&state, &agent_page, id).await?;
        let target = acting_on(&state, &agent_page, into).await?;
        if target.id == c.id {
            return Err(WebError::Invalid(format!(
                "conversation {id} cannot be merged into itself"
            )));
        }
        let confirm = Confirm {
            question: "confirm.merge",
            subject: html! {
                p { a href=(format!("/conversations/{into}")) { "#" (into) " " (target.subject) } " · " (target.contact_email) }
            },
            action: format!("/conversations/{id}/merge"),
            fields: vec![("into", into.to_string())],
            button: "merge",
        };
        Ok(confirm_page(&state, &agent_page, &c, confirm)
            .await?
            .into_response())
    })
    .await
}

/// A form field that must be a number (an id).
fn number(text: Option<&str>, name: &str) -> Result<i64, WebError> {
    text.map(str::trim)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| WebError::Invalid(format!("{name} needs a conversation or message number")))
}

/// An Assignee choice: a user's address, or `team:NAME` for one of the team's members.
fn assignment(choice: &str) -> Action {
    match choice.strip_prefix("team:") {
        Some(team) => Action::AssignTeam(team.to_string()),
        None => Action::Assign(choice.to_string()),
    }
}

/// `POST /conversations/{id}/assign`: the Assignee select (empty: unassign).
pub async fn assign(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    act_by_form(&state, &me, &id, form, |fields| {
        Ok(match fields.get("assignee").map(str::trim) {
            None | Some("") => Action::Unassign,
            Some(choice) => assignment(choice),
        })
    })
    .await
}

/// `POST /conversations/{id}/comment`: an internal note.
pub async fn comment(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: PostedForm,
) -> Response {
    act_by_form(&state, &me, &id, form, |fields| {
        Ok(Action::Comment(
            fields.get("text").unwrap_or_default().to_string(),
        ))
    })
    .await
}

/// `POST /availability`: available or away (SPEC F7); back to where the agent was.
pub async fn availability(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    headers: axum::http::HeaderMap,
    form: PostedForm,
) -> Response {
    let caller = me.caller();
    checked(&me, form, |fields| async move {
        let available = fields.get("available") == Some("true");
        state.service.set_availability(&caller, available).await?;
        Ok(Redirect::to(&same_site_referer(&headers)).into_response())
    })
    .await
}

/// The path of this site's page the form was posted from, else `/`.
fn same_site_referer(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://"))
        .and_then(|(_, rest)| rest.strip_prefix(host))
        .filter(|path| local_path(path))
        .unwrap_or("/")
        .to_string()
}

/// Whether `path` stays on this site when redirected to (not `//host`, nor `/\host`,
/// which browsers read as `//host`).
fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// `POST /conversations/{id}/reply`: queued like the API's reply (from-name and
/// signature added by `outbound::send`), with the files the form carried (multipart)
/// as attachments, within the message size limit.
pub async fn reply(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let outcome = async {
        let posted = compose::read_posted(&state, request).await?;
        csrf::check(&me, &posted.fields)?;
        send_reply(&state, &me, &id, posted).await
    }
    .await;
    outcome.unwrap_or_else(|e| e.page(me.lang))
}

async fn send_reply(
    state: &WebState,
    me: &SignedIn,
    id: &str,
    posted: compose::Posted,
) -> Result<Response, WebError> {
    let id = parse_id(id)?;
    let fields = &posted.fields;
    let text = fields.get("text").unwrap_or_default().replace("\r\n", "\n");
    if text.trim().is_empty() {
        return Err(WebError::Invalid("the reply is empty".into()));
    }
    let mut files = compose::carried(fields)?;
    files.extend(posted.files);
    compose::check_size(state, &text, &files)?;
    if fields.get("confirm") != Some("1") {
        if let Some(page) = newer_mail(state, me, id, fields, &files).await? {
            return Ok(page);
        }
    }
    let Caller::User(agent) = me.caller() else {
        return Err(WebError::Forbidden("sending needs an agent".into()));
    };
    let request = SendRequest::Reply(ReplyRequest {
        conversation_id: id,
        agent,
        content: Content {
            text,
            html: None,
            attachments: files,
        },
        to: compose::addresses(fields.get("to")),
        cc: compose::addresses(fields.get("cc")),
        bcc: compose::addresses(fields.get("bcc")),
        from: None,
    });
    compose::send(state, request).await?;
    Ok(back_to(id))
}

/// When inbound messages arrived after the reply form was shown (its `seen` field),
/// the page that shows them with the draft (its files carried along), instead of
/// sending (409).
async fn newer_mail(
    state: &WebState,
    me: &SignedIn,
    id: i64,
    fields: &Fields,
    files: &[Attachment],
) -> Result<Option<Response>, WebError> {
    let Some(seen) = fields.get("seen").and_then(|s| s.parse::<i64>().ok()) else {
        return Ok(None);
    };
    let caller = me.caller();
    let detail = super::blocking(state, move |s| s.show(&caller, id)).await?;
    let newer: Vec<_> = detail
        .messages
        .into_iter()
        .filter(|m| m.id > seen && m.direction == "in")
        .collect();
    if newer.is_empty() {
        return Ok(None);
    }
    let draft = Draft {
        text: fields.get("text").unwrap_or_default().to_string(),
        to: fields.get("to").unwrap_or_default().to_string(),
        cc: fields.get("cc").unwrap_or_default().to_string(),
        bcc: fields.get("bcc").unwrap_or_default().to_string(),
        carried: compose::carry(files),
        file_names: files.iter().map(|f| f.filename.clone()).collect(),
    };
    let page = reply_after_new_mail(state, me, &detail.conversation, &newer, &draft).await?;
    Ok(Some((StatusCode::CONFLICT, page).into_response()))
}

pub(super) fn send_error(e: SendError) -> WebError {
    match e {
        SendError::NotFound(_) | SendError::NoAccess { .. } | SendError::UnknownAgent(_) => {
            WebError::NotFound
        }
        SendError::Forbidden { .. } => WebError::Forbidden(e.to_string()),
        SendError::Store(error) => {
            tracing::error!(%error, "web: storage error while sending");
            WebError::Internal
        }
        other => WebError::Invalid(other.to_string()),
    }
}

/// `POST /bulk`: close, trash or assign the checked conversations; back to the list
/// with how many changed and how many were refused.
pub async fn bulk(State(state): State<Arc<WebState>>, me: SignedIn, form: PostedForm) -> Response {
    let caller = me.caller();
    checked(&me, form, |fields| async move {
        let action = match fields.get("action").unwrap_or_default() {
            "close" => Action::Close { with_ticket: false },
            "trash" => Action::Trash,
            "assign" => assignment(fields.get("assignee").unwrap_or_default().trim()),
            other => return Err(WebError::Invalid(format!("unknown action {other:?}"))),
        };
        let ids: Vec<i64> = fields
            .all("id")
            .filter_map(|id| id.parse().ok())
            .take(crate::inbox::service::MAX_PAGE as usize)
            .collect();
        let outcomes = state.service.act_on_many(&caller, &ids, action).await;
        let refused = outcomes.iter().filter(|(_, o)| o.is_err()).count();
        let done = outcomes.len() - refused;
        let back = fields.get("back").filter(|b| local_path(b)).unwrap_or("/");
        let sep = if back.contains('?') { '&' } else { '?' };
        Ok(Redirect::to(&format!("{back}{sep}done={done}&refused={refused}")).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert!(local_path("/?view=all_open"));
        assert!(!local_path("//evil.example/"));
        assert!(!local_path("/\\evil.example/"));
        assert!(!local_path("https://evil.example/"));
        assert!(!local_path("/\r\nSet-Cookie: x"));
    }
}
