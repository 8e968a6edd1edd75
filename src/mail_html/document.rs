//! The document a sanitized mail body is served as, inside `<iframe sandbox>`.
//!
//! The body route (`/conversations/{id}/messages/{mid}/body`) answers with
//! `body_response`: the sanitized fragment in a complete document with its own small
//! stylesheet, under a Content-Security-Policy that would hold even if the sanitizer
//! let something through: nothing but images from the daemon (and `data:`) loads —
//! remote images too once shown —, no script runs (`sandbox` without `allow-scripts`,
//! and no `script-src`), no form submits, no `<base>` applies, and only the daemon's
//! own pages may frame it. Opened directly in a tab, the CSP `sandbox` still applies.
//!
//! The frame is an opaque origin (no `allow-same-origin`): a `SameSite` session cookie
//! is not sent with its image requests, so a `cid:` image URL must work without one —
//! a short-lived signed URL, or the part inlined as a `data:` URL by the caller's
//! `cid_url`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::sanitize::RemoteImages;

/// The `sandbox` of the frame (and of the CSP): links may open a new tab that is not
/// itself sandboxed; no scripts, forms, same-origin access, top navigation or plugins.
pub const SANDBOX: &str = "allow-popups allow-popups-to-escape-sandbox";

/// CSP of a body whose remote images are blocked: images from the daemon only.
pub const CSP_BLOCKED: &str = "default-src 'none'; img-src 'self' data:; \
     style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox";

/// CSP of a body whose remote images the agent chose to show.
pub const CSP_IMAGES_SHOWN: &str = "default-src 'none'; img-src 'self' data: https: http:; \
     style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox";

/// The CSP for `images`.
pub fn csp(images: RemoteImages) -> &'static str {
    match images {
        RemoteImages::Blocked => CSP_BLOCKED,
        RemoteImages::Shown => CSP_IMAGES_SHOWN,
    }
}

/// The frame's own look: readable defaults, images kept inside the frame, blocked
/// images drawn as a dashed box around their alt text.
const STYLESHEET: &str = "body{margin:0;padding:8px;font:14px/1.45 system-ui,-apple-system,\
\"Segoe UI\",Roboto,sans-serif;color:#1f2328;background:#fff;overflow-wrap:anywhere}\
img{max-width:100%;height:auto}table{max-width:100%}\
img[data-blocked-src]{display:inline-block;min-width:16px;min-height:16px;\
border:1px dashed #8c959f;background:#f6f8fa;color:#57606a;font-size:12px}\
blockquote{margin:0 0 0 .8ex;border-left:2px solid #d0d7de;padding-left:1ex}";

/// A complete document around a body `sanitize` produced (never around raw mail HTML).
pub fn mail_document(sanitized_body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>{STYLESHEET}</style></head><body>{sanitized_body}</body></html>"
    )
}

/// The HTTP response of the body route: `mail_document` with the CSP for `images`,
/// `nosniff`, no referrer and no caching.
pub fn body_response(sanitized_body: &str, images: RemoteImages) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp(images)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        mail_document(sanitized_body),
    )
        .into_response()
}

/// The `<iframe>` a conversation page embeds a body with (`src` the body route,
/// `title` e.g. the subject, both as plain text).
pub fn iframe_tag(src: &str, title: &str) -> String {
    format!(
        "<iframe sandbox=\"{SANDBOX}\" referrerpolicy=\"no-referrer\" src=\"{}\" \
         title=\"{}\"></iframe>",
        escape_attribute(src),
        escape_attribute(title)
    )
}

fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_sandbox_is_the_frames_sandbox() {
        for policy in [CSP_BLOCKED, CSP_IMAGES_SHOWN] {
            assert!(policy.ends_with(&format!("sandbox {SANDBOX}")), "{policy}");
        }
    }

    #[test]
    fn csp_never_allows_scripts_forms_or_same_origin() {
        for policy in [CSP_BLOCKED, CSP_IMAGES_SHOWN] {
            assert!(policy.starts_with("default-src 'none';"), "{policy}");
            for forbidden in [
                "script-src",
                "allow-scripts",
                "allow-forms",
                "allow-same-origin",
                "unsafe-eval",
            ] {
                assert!(!policy.contains(forbidden), "{forbidden} in {policy}");
            }
            for required in [
                "form-action 'none'",
                "base-uri 'none'",
                "frame-ancestors 'self'",
            ] {
                assert!(policy.contains(required), "{required} missing in {policy}");
            }
        }
    }

    #[test]
    fn blocked_csp_allows_no_remote_image_and_shown_does() {
        assert!(!CSP_BLOCKED.contains("http"), "{CSP_BLOCKED}");
        assert!(CSP_IMAGES_SHOWN.contains("img-src 'self' data: https: http:;"));
    }

    #[test]
    fn body_response_sets_the_safety_headers() {
        let response = body_response("<p>hi</p>", RemoteImages::Blocked);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP_BLOCKED);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
        let shown = body_response("", RemoteImages::Shown);
        assert_eq!(
            shown.headers()[header::CONTENT_SECURITY_POLICY],
            CSP_IMAGES_SHOWN
        );
    }

    #[test]
    fn mail_document_wraps_the_body_once() {
        let document = mail_document("<p>hello</p>");
        assert!(document.starts_with("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"));
        assert!(document.ends_with("<body><p>hello</p></body></html>"));
        assert!(document.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
    }

    #[test]
    fn iframe_tag_escapes_its_values_and_has_no_dangerous_permission() {
        let tag = iframe_tag("/conversations/1/messages/2/body?x=1&y=\"", "<Re: \"hi\">");
        assert_eq!(
            tag,
            "<iframe sandbox=\"allow-popups allow-popups-to-escape-sandbox\" \
             referrerpolicy=\"no-referrer\" src=\"/conversations/1/messages/2/body?x=1&amp;y=&quot;\" \
             title=\"&lt;Re: &quot;hi&quot;&gt;\"></iframe>"
        );
    }
}
