//! The HTTP JSON API (axum) on `[api] listen`, under `/api/v1`: a thin shell over
//! `inbox::Service`, like the CLI, so both apply the same access rules.
//!
//! Every route is declared once in [`routes`], which both builds the router and is
//! checked against the OpenAPI document (`openapi.rs`) by a test, so the document
//! cannot drift from what is served. Callers authenticate with a per-user bearer
//! token (`auth.rs`); errors are JSON `{"code", "message"}` with a stable code.

mod auth;
mod error;
mod extract;
mod handlers;
pub mod openapi;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tokio::sync::watch;

use crate::inbox::Service;
use crate::metrics::Metrics;

pub use auth::client_address;
pub(crate) use handlers::content_disposition;

/// What every handler reaches.
pub struct ApiState {
    pub service: Arc<Service>,
    pub token_uses: auth::TokenUses,
    pub metrics: Arc<Metrics>,
}

type State = Arc<ApiState>;

/// One served route: method, path (OpenAPI syntax), handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<State>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<State>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use handlers::*;
    let mut routes = vec![
        route(
            Method::GET,
            "/api/v1/openapi.json",
            on(MethodFilter::GET, openapi_document),
        ),
        route(Method::GET, "/api/v1/me", on(MethodFilter::GET, me)),
        route(
            Method::PUT,
            "/api/v1/me/availability",
            on(MethodFilter::PUT, set_availability),
        ),
        route(
            Method::GET,
            "/api/v1/inboxes",
            on(MethodFilter::GET, inboxes),
        ),
        route(
            Method::GET,
            "/api/v1/conversations",
            on(MethodFilter::GET, list_conversations),
        ),
        route(
            Method::POST,
            "/api/v1/conversations/bulk",
            on(MethodFilter::POST, bulk),
        ),
        route(
            Method::GET,
            "/api/v1/conversations/{id}",
            on(MethodFilter::GET, show_conversation),
        ),
        route(
            Method::DELETE,
            "/api/v1/conversations/{id}",
            on(MethodFilter::DELETE, delete_forever),
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{id}/reply",
            on(MethodFilter::POST, reply),
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{id}/forward",
            on(MethodFilter::POST, forward),
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{id}/split",
            on(MethodFilter::POST, split),
        ),
        route(
            Method::POST,
            "/api/v1/conversations/{id}/merge",
            on(MethodFilter::POST, merge),
        ),
        route(
            Method::POST,
            "/api/v1/compose",
            on(MethodFilter::POST, compose),
        ),
        route(
            Method::GET,
            "/api/v1/messages/{id}",
            on(MethodFilter::GET, message),
        ),
        route(
            Method::GET,
            "/api/v1/messages/{id}/raw",
            on(MethodFilter::GET, raw_message),
        ),
        route(
            Method::GET,
            "/api/v1/messages/{id}/attachments/{index}",
            on(MethodFilter::GET, attachment),
        ),
        route(
            Method::GET,
            "/api/v1/contacts/{key}",
            on(MethodFilter::GET, contact),
        ),
        route(
            Method::GET,
            "/api/v1/senders/blocked",
            on(MethodFilter::GET, blocked_senders),
        ),
        route(
            Method::PUT,
            "/api/v1/senders/blocked/{address}",
            on(MethodFilter::PUT, block_sender),
        ),
        route(
            Method::DELETE,
            "/api/v1/senders/blocked/{address}",
            on(MethodFilter::DELETE, unblock_sender),
        ),
        route(Method::GET, "/api/v1/tokens", on(MethodFilter::GET, tokens)),
        route(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            on(MethodFilter::DELETE, revoke_token),
        ),
    ];
    for (name, path) in ACTION_ROUTES {
        routes.push(route(
            Method::POST,
            path,
            on(MethodFilter::POST, move |state, agent, id, body| {
                conversation_action(state, agent, id, body, name)
            }),
        ));
    }
    routes
}

/// Conversation actions with a route of their own (delete forever is `DELETE` on the
/// conversation).
pub const ACTION_ROUTES: [(&str, &str); 11] = [
    ("assign", "/api/v1/conversations/{id}/assign"),
    ("unassign", "/api/v1/conversations/{id}/unassign"),
    ("comment", "/api/v1/conversations/{id}/comment"),
    ("close", "/api/v1/conversations/{id}/close"),
    ("reopen", "/api/v1/conversations/{id}/reopen"),
    ("move", "/api/v1/conversations/{id}/move"),
    ("trash", "/api/v1/conversations/{id}/trash"),
    ("restore", "/api/v1/conversations/{id}/restore"),
    ("spam", "/api/v1/conversations/{id}/spam"),
    ("not_spam", "/api/v1/conversations/{id}/not_spam"),
    ("block_sender", "/api/v1/conversations/{id}/block_sender"),
];

/// The router over `service`, with the web inbox (`crate::web`) beside `/api/v1`. `/metrics` (Prometheus) is outside `/api/v1` and the
/// OpenAPI document, and unauthenticated like other daemons' metrics endpoints: it
/// carries counts and channel addresses only; bind `[api] listen` to a private address.
pub fn router(
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    https: bool,
    shutdown: watch::Receiver<bool>,
) -> Router {
    let service_for_web = service.clone();
    let state = Arc::new(ApiState {
        service,
        token_uses: auth::TokenUses::default(),
        metrics,
    });
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .method_not_allowed_fallback(handlers::wrong_method)
        .route("/metrics", on(MethodFilter::GET, handlers::metrics))
        .fallback(handlers::no_route)
        .with_state(state)
        .merge(crate::web::router(service_for_web, https, shutdown))
}

/// Serves the API on `listener` until `shutdown` turns true; over HTTPS when `tls` is
/// given (the web inbox's session cookie is then `Secure`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(service, metrics, tls.is_some(), shutdown.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let served = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(acceptor) => match tls::TlsListener::new(listener, acceptor) {
            Ok(listener) => {
                use axum::serve::ListenerExt;
                axum::serve(listener.tap_io(|_| {}), app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Err(error) => Err(error),
        },
    };
    if let Err(error) = served {
        tracing::error!(%error, "api server failed");
    }
}
