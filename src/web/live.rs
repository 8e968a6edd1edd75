//! Live updates: `GET /events` is a server-sent event stream that says `ready` once
//! it watches, then `change`
//! whenever a message is stored or a conversation changes (the store's change marker,
//! read every 250 ms), so the open list or conversation refreshes within a second.
//! With `?conversation=ID` (a conversation the agent may see) it also says `presence`
//! with who else is viewing or replying there (`presence`), whenever that changes.
//! A stream ends when its page goes or the daemon stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::session::SignedIn;
use super::WebState;

/// How often the marker is read.
const POLL: Duration = Duration::from_millis(250);

/// The stream's query: the conversation whose presence to follow.
#[derive(serde::Deserialize)]
pub struct EventsQuery {
    conversation: Option<String>,
}

/// `GET /events`.
pub async fn events(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Query(query): Query<EventsQuery>,
) -> Response {
    let watched = match query
        .conversation
        .as_deref()
        .map(super::pages::conversation::parse_id)
    {
        None => None,
        Some(Err(e)) => return e.page(me.lang),
        Some(Ok(id)) => {
            let caller = me.caller();
            if let Err(e) = super::blocking(&state, move |s| s.conversation(&caller, id)).await {
                return e.page(me.lang);
            }
            Some(id)
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(4);
    tokio::spawn(watch_changes(state, tx, me, watched));
    let stream = ReceiverStream(rx);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

/// Sends `change` each time the marker moves, and `presence` each time the others in
/// the watched conversation (besides the watcher) change; ends when the page
/// goes away, and when its agent may no longer follow it (see [`still_allowed`]).
async fn watch_changes(
    state: Arc<WebState>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    me: SignedIn,
    watched: Option<i64>,
) {
    let mut last = None;
    let mut last_presence = None;
    let mut ticker = tokio::time::interval(POLL);
    let mut ticks: u64 = 0;
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if tx.is_closed() || *shutdown.borrow() {
            return;
        }
        ticks += 1;
        if !still_allowed(&state, &me, watched, ticks).await {
            return;
        }
        if let Some(id) = watched {
            let service = state.service.clone();
            let me = me.session.email.clone();
            let others = tokio::task::spawn_blocking(move || service.others_present(id, &me)).await;
            if let Ok(Ok(others)) = others {
                if last_presence.as_ref() != Some(&others) {
                    let event = Event::default()
                        .event("presence")
                        .data(super::presence::event_data(&others));
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    last_presence = Some(others);
                }
            }
        }
        let service = state.service.clone();
        let marker = tokio::task::spawn_blocking(move || service.change_marker()).await;
        let Ok(Ok(marker)) = marker else { continue };
        let name = match last {
            None => Some("ready"),
            Some(l) if l != marker => Some("change"),
            Some(_) => None,
        };
        if let Some(name) = name {
            let event = Event::default()
                .event(name)
                .data(format!("{}.{}", marker.0, marker.1));
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        last = Some(marker);
    }
}

/// Ticks between checks of the session and of the watched conversation's access.
const RECHECK_TICKS: u64 = 8;

/// Whether the stream may go on: its agent is still configured (checked every tick,
/// from the live config: a reload removing them ends it at once), and every
/// [`RECHECK_TICKS`] their session still exists (signed out elsewhere, expired, or
/// ended at reload) and they may still see the watched conversation.
async fn still_allowed(
    state: &Arc<WebState>,
    me: &SignedIn,
    watched: Option<i64>,
    ticks: u64,
) -> bool {
    if state.service.config().user(&me.session.email).is_none() {
        return false;
    }
    if !ticks.is_multiple_of(RECHECK_TICKS) {
        return true;
    }
    let service = state.service.clone();
    let (session, caller) = (me.session.id, me.caller());
    tokio::task::spawn_blocking(move || {
        let session_lives = service.web_session_exists(session).unwrap_or(true);
        let may_see = watched.is_none_or(|id| service.conversation(&caller, id).is_ok());
        session_lives && may_see
    })
    .await
    .unwrap_or(true)
}

/// An mpsc receiver as a stream of events.
struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
