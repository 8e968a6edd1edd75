//! Writing mail from the web inbox beyond the plain reply: form posts that carry files
//! (`multipart/form-data`, read up to the message size limit, `smtp.max_message_size`),
//! forwarding a conversation (its messages quoted inline below the agent's note, as
//! `conversations forward` does) and a new email from one of the agent's inboxes. All
//! go through `inbox::Service::send`, so the CLI's and API's access rules apply.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use maud::html;

use super::csrf::{self, Fields};
use super::pages::conversation::parse_id;
use super::pages::{frame, Place};
use super::session::SignedIn;
use super::{WebError, WebState};
use crate::inbox::access::InboxAccess;
use crate::inbox::service::SendRequest;
use crate::inbox::Caller;
use crate::outbound::compose::Attachment;
use crate::outbound::send::{ComposeRequest, Content, ForwardRequest};

/// Room for the form's own fields and part headers beyond the message limit.
const FORM_OVERHEAD: u64 = 256 * 1024;

/// A form as posted: its text fields and the files it carried.
#[derive(Debug, Default)]
pub struct Posted {
    pub fields: Fields,
    pub files: Vec<Attachment>,
}

/// Reads a form post, urlencoded or multipart. The body may not exceed the message
/// limit (plus the form's overhead); a larger one is refused before any field is used.
pub async fn read_posted(state: &WebState, request: Request) -> Result<Posted, WebError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Ok(boundary) = multer::parse_boundary(&content_type) else {
        let form = Form::<Vec<(String, String)>>::from_request(request, &()).await;
        return Ok(Posted {
            fields: Fields::from_form(form),
            files: Vec::new(),
        });
    };
    let limit = message_limit(state);
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit + FORM_OVERHEAD));
    let stream = request.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut fields = Vec::new();
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(read_error(e, limit)),
        };
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field
            .content_type()
            .map_or("application/octet-stream".to_string(), |m| m.to_string());
        let bytes = field.bytes().await.map_err(|e| read_error(e, limit))?;
        match filename {
            // A file input left empty still sends a part, without a name or bytes.
            Some(f) if f.is_empty() && bytes.is_empty() => {}
            Some(filename) => files.push(Attachment {
                filename,
                content_type,
                bytes: bytes.to_vec(),
            }),
            None => fields.push((name, String::from_utf8_lossy(&bytes).into_owned())),
        }
    }
    Ok(Posted {
        fields: Fields::from(fields),
        files,
    })
}

fn read_error(e: multer::Error, limit: u64) -> WebError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(None, limit)
        }
        other => WebError::Invalid(format!("the form could not be read: {other}")),
    }
}

/// The configured limit of one message (`smtp.max_message_size`), which an outgoing
/// message with its attachments must fit too.
fn message_limit(state: &WebState) -> u64 {
    state.service.config().smtp.max_message_size
}

fn too_large(size: Option<u64>, limit: u64) -> WebError {
    let limit_text = megabytes(limit);
    WebError::TooLarge(match size {
        Some(size) => format!(
            "the message with its attachments would be {}; at most {limit_text} per message (smtp.max_message_size)",
            megabytes(size)
        ),
        None => format!("the form is larger than a message may be: at most {limit_text} (smtp.max_message_size)"),
    })
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1u64 << 20) as f64)
}

/// Refuses attachments that would make the message larger than the limit (their
/// base64 encoding counted, as the message is sent).
pub fn check_size(state: &WebState, text: &str, files: &[Attachment]) -> Result<(), WebError> {
    let limit = message_limit(state);
    let encoded: u64 = files
        .iter()
        .map(|f| (f.bytes.len() as u64).div_ceil(3) * 4 + 1024)
        .sum();
    let size = encoded + text.len() as u64;
    if size > limit {
        return Err(too_large(Some(size), limit));
    }
    Ok(())
}

/// Files carried through the "new messages arrived" confirmation as hidden fields
/// (`carried`): content type, name and bytes, each base64, joined by dots.
pub fn carry(files: &[Attachment]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    files
        .iter()
        .map(|f| {
            format!(
                "{}.{}.{}",
                b64.encode(&f.content_type),
                b64.encode(&f.filename),
                b64.encode(&f.bytes)
            )
        })
        .collect()
}

/// The files `carry` put into the form, back; a mangled field is an error.
pub fn carried(fields: &Fields) -> Result<Vec<Attachment>, WebError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = || WebError::Invalid("a carried attachment is damaged; attach it again".into());
    fields
        .all("carried")
        .map(|value| {
            let mut parts = value.split('.').map(|p| b64.decode(p.trim()));
            let (Some(Ok(content_type)), Some(Ok(filename)), Some(Ok(bytes)), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            Ok(Attachment {
                content_type: String::from_utf8(content_type).map_err(|_| bad())?,
                filename: String::from_utf8(filename).map_err(|_| bad())?,
                bytes,
            })
        })
        .collect()
}

/// Addresses typed into a To/Cc/Bcc box: separated by commas, semicolons or
/// whitespace.
pub fn addresses(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split([',', ';', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// Queues `request` (its future holds a read connection, not `Send`: run off the
/// runtime); returns the conversation the message went into.
pub async fn send(state: &WebState, request: SendRequest) -> Result<i64, WebError> {
    let service = state.service.clone();
    let runtime = tokio::runtime::Handle::current();
    let sent = tokio::task::spawn_blocking(move || runtime.block_on(service.send(request)))
        .await
        .map_err(|_| WebError::Internal)?;
    Ok(sent.map_err(super::actions::send_error)?.conversation_id)
}

fn agent(me: &SignedIn) -> Result<String, WebError> {
    match me.caller() {
        Caller::User(email) => Ok(email),
        Caller::Operator => Err(WebError::Forbidden("sending needs an agent".into())),
    }
}

/// Reads the post and checks its CSRF token, then runs `act`; failures become the
/// error page in the agent's language.
async fn checked_post<F>(
    state: &WebState,
    me: &SignedIn,
    request: Request,
    act: impl FnOnce(Posted) -> F,
) -> Response
where
    F: std::future::Future<Output = Result<Response, WebError>>,
{
    let outcome = async {
        let posted = read_posted(state, request).await?;
        csrf::check(me, &posted.fields)?;
        act(posted).await
    }
    .await;
    outcome.unwrap_or_else(|e| e.page(me.lang))
}

/// `GET /conversations/{id}/forward`: To and a note; the conversation's messages go
/// quoted inline below the note.
pub async fn forward_page(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let page = async {
        let id = parse_id(&id)?;
        let caller = me.caller();
        let c = super::blocking(&state, move |s| s.conversation(&caller, id)).await?;
        let lang = me.lang;
        let place = Place {
            inbox: Some(c.inbox.clone()),
            view: None,
        };
        let main = html! {
            article.thread.compose {
                p { a href=(format!("/conversations/{id}")) { "← " (lang.t("back")) } }
                h1 { (lang.t("forward")) ": " (c.subject) }
                form.reply method="post" action=(format!("/conversations/{id}/forward")) {
                    (csrf::field(&me))
                    label for="forward-to" { (lang.t("to")) }
                    input #forward-to name="to" type="text" required;
                    label for="forward-note" { (lang.t("forward.note")) }
                    textarea #forward-note name="note" rows="5" {}
                    p.hint { (lang.t("forward.quoted")) }
                    button.primary type="submit" { (lang.t("forward")) }
                }
            }
        };
        frame(&state, &me, &place, &c.subject, main).await
    }
    .await;
    page.map_or_else(|e| e.page(me.lang), IntoResponse::into_response)
}

/// `POST /conversations/{id}/forward`.
pub async fn forward(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (state_ref, me_ref) = (&state, &me);
    checked_post(&state, &me, request, |posted| async move {
        let (state, me) = (state_ref, me_ref);
        let id = parse_id(&id)?;
        let note = posted
            .fields
            .get("note")
            .unwrap_or_default()
            .replace("\r\n", "\n");
        let request = SendRequest::Forward(ForwardRequest {
            conversation_id: id,
            agent: agent(me)?,
            to: addresses(posted.fields.get("to")),
            note: (!note.trim().is_empty()).then_some(note),
        });
        send(state, request).await?;
        Ok(Redirect::to(&format!("/conversations/{id}")).into_response())
    })
    .await
}

/// The From addresses the agent may start a conversation from: the switched-on
/// channels of the inboxes they are a member of.
async fn from_choices(state: &WebState, me: &SignedIn) -> Result<Vec<String>, WebError> {
    let caller = me.caller();
    super::blocking(state, move |s| {
        Ok(s.inboxes(&caller)
            .into_iter()
            .filter(|i| i.access == InboxAccess::Member)
            .flat_map(|i| i.channels)
            .filter(|c| c.on)
            .map(|c| c.address)
            .collect())
    })
    .await
}

/// `GET /compose`: a new email (From, To, Cc, Bcc, subject, text, files).
pub async fn compose_page(State(state): State<Arc<WebState>>, me: SignedIn) -> Response {
    let page = async {
        let froms = from_choices(&state, &me).await?;
        if froms.is_empty() {
            return Err(WebError::Forbidden(
                "you are a member of no inbox with a channel switched on".into(),
            ));
        }
        let lang = me.lang;
        let main = html! {
            article.thread.compose {
                h1 { (lang.t("new_email")) }
                form.reply method="post" action="/compose" enctype="multipart/form-data" {
                    (csrf::field(&me))
                    label for="compose-from" { (lang.t("from")) }
                    select #compose-from name="from" {
                        @for f in &froms { option value=(f) { (f) } }
                    }
                    label for="compose-to" { (lang.t("to")) }
                    input #compose-to name="to" type="text" required;
                    label for="compose-cc" { (lang.t("cc")) }
                    input #compose-cc name="cc" type="text";
                    label for="compose-bcc" { (lang.t("bcc")) }
                    input #compose-bcc name="bcc" type="text";
                    label for="compose-subject" { (lang.t("subject")) }
                    input #compose-subject name="subject" type="text" required;
                    label for="compose-text" { (lang.t("message")) }
                    textarea #compose-text name="text" rows="10" required {}
                    label for="compose-files" { (lang.t("attach")) }
                    input #compose-files name="files" type="file" multiple;
                    button.primary type="submit" { (lang.t("send")) }
                }
            }
        };
        frame(&state, &me, &Place::default(), lang.t("new_email"), main).await
    }
    .await;
    page.map_or_else(|e| e.page(me.lang), IntoResponse::into_response)
}

/// `POST /compose`: a new outbound conversation; on to its page.
pub async fn compose(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    request: Request,
) -> Response {
    let (state_ref, me_ref) = (&state, &me);
    checked_post(&state, &me, request, |posted| async move {
        let (state, me) = (state_ref, me_ref);
        let f = &posted.fields;
        let text = f.get("text").unwrap_or_default().replace("\r\n", "\n");
        if text.trim().is_empty() {
            return Err(WebError::Invalid("the message is empty".into()));
        }
        check_size(state, &text, &posted.files)?;
        let request = SendRequest::Compose(ComposeRequest {
            agent: agent(me)?,
            to: addresses(f.get("to")),
            cc: addresses(f.get("cc")),
            bcc: addresses(f.get("bcc")),
            from: f.get("from").unwrap_or_default().to_string(),
            subject: f.get("subject").unwrap_or_default().to_string(),
            content: Content {
                text,
                html: None,
                attachments: posted.files,
            },
        });
        let id = send(state, request).await?;
        Ok(Redirect::to(&format!("/conversations/{id}")).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_files_come_back_whole_and_a_mangled_one_is_refused() {
        let files = vec![Attachment {
            filename: "räkning.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: vec![0, 1, 2, 255],
        }];
        let fields = Fields::from(
            carry(&files)
                .into_iter()
                .map(|v| ("carried".to_string(), v))
                .collect::<Vec<_>>(),
        );
        let back = carried(&fields).expect("carried");
        assert_eq!(back[0].filename, "räkning.pdf");
        assert_eq!(back[0].content_type, "application/pdf");
        assert_eq!(back[0].bytes, vec![0, 1, 2, 255]);
        let mangled = Fields::from(vec![("carried".to_string(), "x.y".to_string())]);
        assert!(carried(&mangled).is_err());
    }

    #[test]
    fn typed_addresses_split_on_commas_and_spaces() {
        assert_eq!(
            addresses(Some(" a@x.example, b@y.example;c@z.example ")),
            vec!["a@x.example", "b@y.example", "c@z.example"]
        );
        assert!(addresses(None).is_empty());
    }
}
