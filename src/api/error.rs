//! Errors as JSON: `{"code": "not_found", "message": "conversation 7 not found"}`, with
//! the HTTP status that goes with the code. Internal errors are logged, not shown.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::inbox::InboxError;
use crate::outbound::send::SendError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn rate_limited() -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications from this address; try again in a minute",
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// Why a message was not sent. A caller without access to the inbox learns only
    /// that `hidden` (the conversation, or the From address) was not found.
    pub fn from_send(e: SendError, hidden: &str) -> Self {
        let (status, code) = match &e {
            SendError::NotFound(_) | SendError::UnknownAgent(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            SendError::NoAccess { .. } => {
                return ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{hidden} not found"),
                )
            }
            SendError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            // The request is well formed but the inbox's state refuses it: the channel
            // is switched off, or the From address is not one it may send from.
            SendError::ChannelOff(_) | SendError::UnknownFrom(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            SendError::UnknownChannel(_)
            | SendError::BadCode(_)
            | SendError::Compose(_)
            | SendError::TooManyRecipients { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            SendError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            SendError::Store(error @ StoreError::Unavailable(_)) => {
                tracing::warn!(%error, "api: database unavailable while sending");
                return ApiError::unavailable();
            }
            SendError::Store(error) => {
                tracing::error!(%error, "api: storage error while sending");
                return ApiError::internal();
            }
        };
        ApiError::new(status, code, e.to_string())
    }

    /// The shared database is down or read-only: try again shortly.
    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; try again shortly",
        )
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the daemon's log)",
        )
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        let status = match &e {
            InboxError::NotFound(_) => StatusCode::NOT_FOUND,
            InboxError::Forbidden(_) => StatusCode::FORBIDDEN,
            InboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            InboxError::Conflict(_) => StatusCode::CONFLICT,
            InboxError::Store(error @ StoreError::Unavailable(_)) => {
                tracing::warn!(%error, "api: database unavailable");
                return ApiError::unavailable();
            }
            InboxError::Store(error) => {
                tracing::error!(%error, "api: storage error");
                return ApiError::internal();
            }
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "code": self.code, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        }
        response
    }
}
