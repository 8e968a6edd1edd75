//! Live updates: `GET /events` is a server-sent event stream that says `ready` once
//! it watches, then `change`
//! whenever a message is stored or a conversation changes (the store's change marker,
//! read every 250 ms), so the open list or conversation refreshes within a second.
//! A stream ends when its page goes or the daemon stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::session::SignedIn;
use super::WebState;

/// How often the marker is read.
const POLL: Duration = Duration::from_millis(250);

/// `GET /events`.
pub async fn events(State(state): State<Arc<WebState>>, _me: SignedIn) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(4);
    tokio::spawn(watch_changes(state, tx));
    let stream = ReceiverStream(rx);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

/// Sends `change` each time the marker moves; ends when the page goes away.
async fn watch_changes(state: Arc<WebState>, tx: mpsc::Sender<Result<Event, Infallible>>) {
    let mut last = None;
    let mut ticker = tokio::time::interval(POLL);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if tx.is_closed() || *shutdown.borrow() {
            return;
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
