//! Presence: who else has a conversation open ("Bob is viewing") or is typing a reply
//! in it ("Bob is replying"). Pages report it (`POST /conversations/{id}/presence`,
//! CSRF-checked, on open, as a heartbeat and while typing); it is kept in memory on
//! this node only and forgotten `TTL` seconds after the last report. The event
//! stream (`live`) pushes changes to the conversation's other viewers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;

use super::csrf::{self, Fields};
use super::pages::conversation::parse_id;
use super::session::SignedIn;
use super::{blocking, WebState};

/// Seconds a report counts without a heartbeat.
pub const TTL: i64 = 30;

/// What an agent is doing in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    Viewing,
    Replying,
}

impl Doing {
    pub fn name(self) -> &'static str {
        match self {
            Doing::Viewing => "viewing",
            Doing::Replying => "replying",
        }
    }
}

/// One agent in one conversation.
#[derive(Debug, Clone)]
struct Seen {
    email: String,
    name: String,
    doing: Doing,
    until: i64,
}

/// Everyone present, by conversation.
#[derive(Debug, Default)]
pub struct Presence(Mutex<HashMap<i64, Vec<Seen>>>);

impl Presence {
    /// Notes that `email` is `doing` in `conversation` now (`None`: left).
    pub fn report(
        &self,
        conversation: i64,
        email: &str,
        name: &str,
        doing: Option<Doing>,
        now: i64,
    ) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget every report past its time, here and in conversations nobody opens again.
        all.retain(|_, present| {
            present.retain(|s| s.until > now);
            !present.is_empty()
        });
        let present = all.entry(conversation).or_default();
        present.retain(|s| s.email != email);
        if let Some(doing) = doing {
            present.push(Seen {
                email: email.to_string(),
                name: name.to_string(),
                doing,
                until: now + TTL,
            });
        }
        if present.is_empty() {
            all.remove(&conversation);
        }
    }

    /// Everyone but `me` present in `conversation` now: (name, doing), by name.
    pub fn others(&self, conversation: i64, me: &str, now: i64) -> Vec<(String, Doing)> {
        let all = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut others: Vec<_> = all
            .get(&conversation)
            .into_iter()
            .flatten()
            .filter(|s| s.email != me && s.until > now)
            .map(|s| (s.name.clone(), s.doing))
            .collect();
        others.sort_by(|a, b| a.0.cmp(&b.0));
        others
    }
}

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
            "viewing" => Some(Doing::Viewing),
            "replying" => Some(Doing::Replying),
            "gone" => None,
            other => {
                return Err(super::WebError::Invalid(format!(
                    "unknown presence {other:?}"
                )))
            }
        };
        let caller = me.caller();
        blocking(&state, move |s| s.conversation(&caller, id)).await?;
        let now = state.service.now();
        state
            .presence
            .report(id, &me.session.email, &me.name, doing, now);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    outcome.unwrap_or_else(|e| e.page(me.lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_see_the_latest_report_until_it_expires_and_never_themselves() {
        let p = Presence::default();
        p.report(7, "bob@x.example", "Bob", Some(Doing::Viewing), 100);
        p.report(7, "alice@x.example", "Alice", Some(Doing::Viewing), 100);
        assert_eq!(
            p.others(7, "alice@x.example", 101),
            vec![("Bob".to_string(), Doing::Viewing)]
        );
        p.report(7, "bob@x.example", "Bob", Some(Doing::Replying), 110);
        assert_eq!(
            p.others(7, "alice@x.example", 111),
            vec![("Bob".to_string(), Doing::Replying)]
        );
        assert!(p.others(8, "alice@x.example", 111).is_empty());
        assert!(
            p.others(7, "alice@x.example", 110 + TTL).is_empty(),
            "no heartbeat for TTL seconds: gone"
        );
        p.report(7, "bob@x.example", "Bob", Some(Doing::Viewing), 200);
        p.report(7, "bob@x.example", "Bob", None, 201);
        assert!(p.others(7, "alice@x.example", 201).is_empty(), "left");
        p.report(9, "bob@x.example", "Bob", Some(Doing::Viewing), 300);
        p.report(
            10,
            "alice@x.example",
            "Alice",
            Some(Doing::Viewing),
            300 + TTL,
        );
        let kept = p.0.lock().expect("lock");
        assert!(
            !kept.contains_key(&9),
            "expired reports are dropped, not kept forever"
        );
    }
}
