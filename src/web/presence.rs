//! Presence: who else has a conversation open ("Bob is viewing") or is typing a reply
//! in it ("Bob is replying"). Pages report it (`POST /conversations/{id}/presence`,
//! CSRF-checked, on open, as a heartbeat and while typing); the store keeps it for
//! every node (`inbox::presence`), forgotten some seconds after the last report. The
//! event stream (`live`) pushes changes to the conversation's other viewers.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;

use super::csrf::{self, Fields};
use super::pages::conversation::parse_id;
use super::session::SignedIn;
use super::{blocking, WebError, WebState};
use crate::store::Doing;

/// The `presence` event's data: `[{"name": …, "doing": "viewing"|"replying"}]`.
pub fn event_data(others: &[(String, Doing)]) -> String {
    serde_json::Value::Array(
        others
            .iter()
            .map(|(name, doing)| serde_json::json!({ "name": name, "doing": doing.name() }))
            .collect(),
    )
    .to_string()
}

/// `POST /conversations/{id}/presence` with `doing` = `viewing`, `replying` or `gone`:
/// 204; 404 when the agent may not see the conversation.
pub async fn report(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let fields = Fields::from_form(form);
    let outcome = async {
        csrf::check(&me, &fields)?;
        let id = parse_id(&id)?;
        let doing = match fields.get("doing").unwrap_or_default() {
            "gone" => None,
            name => Some(
                Doing::from_name(name)
                    .ok_or_else(|| WebError::Invalid(format!("unknown presence {name:?}")))?,
            ),
        };
        let caller = me.caller();
        blocking(&state, move |s| s.conversation(&caller, id)).await?;
        state
            .service
            .report_presence(id, &me.session.email, &me.name, doing)
            .await?;
        Ok::<_, WebError>(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    outcome.unwrap_or_else(|e| e.page(me.lang))
}
