//! Request extractors that answer their rejections as the API's JSON errors: axum's own
//! answer `text/plain`. A path segment that is not UTF-8 or not the expected shape is
//! 400 `invalid`; a body over the limit is 413 `too_large`; a body declared as anything
//! but JSON is 415 `unsupported_media_type` (a body without a content type is read as
//! JSON, as curl and scripts often send it).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// [`Path`] with JSON rejections.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "request path: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The raw request body, which the handler parses as JSON.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(request.headers().get(header::CONTENT_TYPE))?;
        Bytes::from_request(request, state)
            .await
            .map(JsonBytes)
            .map_err(body_error)
    }
}

/// Accepts no content type or a JSON one (`application/json`, `…+json`).
fn check_content_type(value: Option<&header::HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the request body must be JSON (Content-Type: application/json)",
    ))
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large();
    }
    ApiError::invalid(format!("request body: {}", rejection.body_text()))
}

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the request body is over the size limit",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_or_no_content_type_is_accepted_and_anything_else_refused() {
        let ok = |v: &str| check_content_type(Some(&v.parse().expect("header"))).is_ok();
        assert!(check_content_type(None).is_ok());
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
    }
}
