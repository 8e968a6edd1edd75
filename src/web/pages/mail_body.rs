//! A message's HTML for the conversation page's sandboxed frame: its HTML parts run
//! through `mail_html` (sanitized; remote images blocked until the agent shows them for
//! that message), its `cid:` images inlined as `data:` URLs. The frame is an opaque
//! origin, so an image request from it carries no session cookie: inlining is what lets
//! a message's own images show without a second, unauthenticated route.

use std::collections::HashMap;

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::mail_html::{sanitize_mail, ImagePolicy, RemoteImages, Sanitized};

/// Largest image part inlined; larger ones keep their alt text (they stay downloadable
/// as attachments).
const MAX_INLINE_IMAGE: usize = 2 * 1024 * 1024;
/// Most bytes of images inlined into one message's document.
const MAX_INLINE_TOTAL: usize = 8 * 1024 * 1024;

/// The message's HTML sanitized for showing with `remote` images, or `None` when it has
/// no HTML part of its own (a text-only message).
pub fn sanitized_html(raw: &[u8], remote: RemoteImages) -> Option<Sanitized> {
    let message = MessageParser::default().parse(raw)?;
    let html: String = message
        .html_body
        .iter()
        .filter_map(|&i| match &message.parts.get(i as usize)?.body {
            PartType::Html(html) => Some(html.as_ref()),
            _ => None,
        })
        .collect();
    if html.is_empty() {
        return None;
    }
    let images = inline_images(&message);
    let policy = ImagePolicy::new(remote, |content_id| images.get(content_id).cloned());
    Some(sanitize_mail(&html, &policy))
}

/// The message's image parts that have a Content-ID, as `data:` URLs by Content-ID
/// (without angle brackets), within the size bounds.
fn inline_images(message: &mail_parser::Message) -> HashMap<String, String> {
    let mut images = HashMap::new();
    let mut total = 0;
    for part in &message.parts {
        let (Some(content_id), Some(content_type)) = (part.content_id(), part.content_type())
        else {
            continue;
        };
        let subtype = content_type.subtype().unwrap_or("");
        let size = part.contents().len();
        if !content_type.ctype().eq_ignore_ascii_case("image")
            || !is_token(subtype)
            || size > MAX_INLINE_IMAGE
            || total + size > MAX_INLINE_TOTAL
        {
            continue;
        }
        total += size;
        let data = base64::engine::general_purpose::STANDARD.encode(part.contents());
        let url = format!("data:image/{};base64,{data}", subtype.to_ascii_lowercase());
        let id = content_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        images.insert(id.to_string(), url);
    }
    images
}

/// Whether a MIME subtype is a plain token (so it cannot break out of the URL).
fn is_token(subtype: &str) -> bool {
    !subtype.is_empty()
        && subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_CID: &str = "From: a@b.example\r\nSubject: logo\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/related; boundary=\"r\"\r\n\r\n--r\r\n\
        Content-Type: text/html\r\n\r\n<p>Hi <img src=\"cid:logo@x\" alt=\"logo\">\
        <img src=\"https://tracker.example/p.gif\" alt=\"t\"><script>x()</script></p>\r\n\
        --r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n\
        Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n";

    #[test]
    fn cid_images_are_inlined_and_remote_ones_blocked_until_shown() {
        let blocked = sanitized_html(WITH_CID.as_bytes(), RemoteImages::Blocked).unwrap();
        assert!(
            blocked
                .html
                .contains("src=\"data:image/png;base64,iVBORw0KGgo=\""),
            "{}",
            blocked.html
        );
        assert!(
            !blocked.html.contains(" src=\"https://tracker")
                && blocked.html.contains("data-blocked-src=\"https://tracker"),
            "{}",
            blocked.html
        );
        assert!(!blocked.html.contains("<script"), "{}", blocked.html);
        assert_eq!(blocked.blocked_remote_images, 1);
        let shown = sanitized_html(WITH_CID.as_bytes(), RemoteImages::Shown).unwrap();
        assert!(
            shown.html.contains("src=\"https://tracker.example/p.gif\""),
            "{}",
            shown.html
        );
    }

    #[test]
    fn a_text_only_message_has_no_html() {
        let text = b"From: a@b.example\r\nSubject: x\r\n\r\nplain <b>text</b>\r\n";
        assert_eq!(sanitized_html(text, RemoteImages::Blocked), None);
    }
}
