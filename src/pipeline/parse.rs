//! Parse stage: raw RFC 5322 bytes → [`Inbound`], everything later stages need.
//!
//! Never fails: a message mail-parser cannot make sense of still becomes an `Inbound`
//! (with the raw text as its body), because accepted mail is never lost. The raw bytes
//! themselves are kept by the store, so anything not extracted here can be re-parsed.

use base64::Engine;
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use super::subject;

/// A mailbox from an address header: lower-cased address and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub address: String,
    pub name: Option<String>,
}

/// An attachment's listing (B9); the bytes stay in the raw message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachmentInfo {
    pub filename: String,
    pub content_type: String,
    pub size: usize,
}

/// What the pipeline knows about one received message.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// `Message-ID` without angle brackets.
    pub message_id: Option<String>,
    /// Identity for dedupe (B4): the Message-ID, or `sha256:<hex>` of the message.
    pub dedupe_key: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Hex of the first 22 bytes of Outlook's `Thread-Index` (the thread's root).
    pub thread_index_root: Option<String>,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub subject: String,
    /// `subject` normalized for threading (no `Re:`/`Fwd:`/tags, lower case).
    pub subject_norm: String,
    /// `Date` header as a Unix timestamp.
    pub date: Option<i64>,
    /// Plain text of the body (the text part, or the HTML part turned into text).
    pub text: String,
    pub attachments: Vec<AttachmentInfo>,
    /// Set when the message is a delivery status notification (see `bounce`).
    pub bounce: Option<super::bounce::Bounce>,
    /// The original sender and CC when the message forwards another (B6, B7).
    pub forwarded: Option<super::forward::Forwarded>,
    /// The top-level header fields in order: lower-case name, unfolded raw value.
    /// Classification reads the fields the other members do not cover.
    pub headers: Vec<(String, String)>,
}

impl Inbound {
    /// The first value of header `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }

    /// Every value of header `name` (lower case), trimmed, in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }
}

impl Inbound {
    /// True when the message carries reply headers (rule 3 applies only without them).
    pub fn has_reply_headers(&self) -> bool {
        !self.in_reply_to.is_empty() || !self.references.is_empty()
    }
}

/// Parses a received message and recognizes bounces; `mail_from` is the envelope
/// sender when known (see `bounce::detect`).
///
/// The bytes are parsed once; bounce recognition reads the same parsed message.
pub fn parse_received(raw: &[u8], mail_from: Option<&str>) -> Inbound {
    parse_then(raw, |message, inbound| {
        super::bounce::recognize(inbound, message, mail_from)
    })
}

/// Parses `raw` (the message as the client sent it, without our trace header).
pub fn parse(raw: &[u8]) -> Inbound {
    parse_then(raw, |_, _| {})
}

/// Parses `raw` into an [`Inbound`], then lets `more` read the parsed message too.
fn parse_then(raw: &[u8], more: impl FnOnce(&Message, &mut Inbound)) -> Inbound {
    let Some(message) = MessageParser::default().parse(raw) else {
        return unparsable(raw, content_hash(raw));
    };
    let mut inbound = inbound_of(&message, raw);
    more(&message, &mut inbound);
    inbound
}

fn inbound_of(message: &Message, raw: &[u8]) -> Inbound {
    let dedupe_hash = content_hash(raw);
    let message_id = message.message_id().and_then(clean_id);
    let subject = message.subject().unwrap_or_default().trim().to_string();
    let mut inbound = Inbound {
        dedupe_key: message_id.clone().unwrap_or(dedupe_hash),
        message_id,
        in_reply_to: id_list(message.in_reply_to()),
        references: id_list(message.references()),
        thread_index_root: message
            .header_raw("Thread-Index")
            .and_then(thread_index_root),
        from: message.from().and_then(|a| mailboxes(a).into_iter().next()),
        to: message.to().map(mailboxes).unwrap_or_default(),
        cc: message.cc().map(mailboxes).unwrap_or_default(),
        subject_norm: subject::normalize(&subject),
        subject,
        date: message.date().map(|d| d.to_timestamp()),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        attachments: message.attachments().map(attachment_info).collect(),
        bounce: None,
        headers: header_fields(message),
        forwarded: None,
    };
    inbound.forwarded = super::forward::detect(&inbound.subject, &inbound.text);
    inbound
}

/// At most this many header fields are kept for classification (a header bomb keeps
/// its first ones).
const MAX_HEADER_FIELDS: usize = 500;

fn header_fields(message: &Message) -> Vec<(String, String)> {
    let Some(part) = message.parts.first() else {
        return Vec::new();
    };
    part.headers
        .iter()
        .take(MAX_HEADER_FIELDS)
        .filter_map(|h| {
            let raw = message
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)?;
            let value = String::from_utf8_lossy(raw);
            let unfolded: String = value.split(['\r', '\n']).collect::<Vec<_>>().join("");
            Some((
                h.name.as_str().to_ascii_lowercase(),
                unfolded.trim().to_string(),
            ))
        })
        .collect()
}

fn unparsable(raw: &[u8], dedupe_hash: String) -> Inbound {
    Inbound {
        dedupe_key: dedupe_hash,
        text: String::from_utf8_lossy(raw).into_owned(),
        ..Inbound::default()
    }
}

/// `sha256:<hex>` of the bytes: the dedupe key of a message without a Message-ID.
pub fn content_hash(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Strips angle brackets and whitespace; an empty id is no id.
pub(super) fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && id.len() <= 998).then(|| id.to_string())
}

pub(super) fn id_list(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => clean_id(id).into_iter().collect(),
        HeaderValue::TextList(ids) => ids.iter().filter_map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    }
}

fn mailboxes(address: &Address) -> Vec<Mailbox> {
    address
        .iter()
        .filter_map(|addr| {
            let email = addr.address()?.trim().to_lowercase();
            (!email.is_empty()).then(|| Mailbox {
                address: email,
                name: addr
                    .name()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
            })
        })
        .collect()
}

/// Outlook's Thread-Index is base64 of a 22-byte header plus 5 bytes per reply; the
/// first 22 bytes identify the thread.
fn thread_index_root(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    let root = bytes.get(..22)?;
    Some(root.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `index`th attachment of a stored message (as listed at ingest) with its
/// decoded bytes, for download (B9).
pub fn attachment(raw: &[u8], index: usize) -> Option<(AttachmentInfo, Vec<u8>)> {
    let message = MessageParser::default().parse(raw)?;
    let part = message.attachments().nth(index)?;
    Some((attachment_info(part), part.contents().to_vec()))
}

fn attachment_info(part: &mail_parser::MessagePart) -> AttachmentInfo {
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".to_string())
        .to_lowercase();
    AttachmentInfo {
        filename: part.attachment_name().unwrap_or("unnamed").to_string(),
        content_type,
        size: part.contents().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_ids_addresses_and_text() {
        let raw = b"Message-ID: <abc@x.example>\r\nIn-Reply-To: <p@x>\r\nReferences: <r1@x> <p@x>\r\nFrom: \"Jan de Vries\" <Jan@Klant.Example>\r\nTo: support@demo.hs-inbox.com, Bob <bob@x.example>\r\nSubject: Re: Order 12\r\n\r\nHello\r\n";
        let m = parse(raw);
        assert_eq!(m.message_id.as_deref(), Some("abc@x.example"));
        assert_eq!(m.dedupe_key, "abc@x.example");
        assert_eq!(m.in_reply_to, vec!["p@x"]);
        assert_eq!(m.references, vec!["r1@x", "p@x"]);
        let from = m.from.expect("from");
        assert_eq!(from.address, "jan@klant.example");
        assert_eq!(from.name.as_deref(), Some("Jan de Vries"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.subject_norm, "order 12");
        assert_eq!(m.text.trim(), "Hello");
    }

    #[test]
    fn without_message_id_the_key_is_a_content_hash() {
        let a = parse(b"Subject: x\r\n\r\nbody one\r\n");
        let b = parse(b"Subject: x\r\n\r\nbody two\r\n");
        assert!(a.dedupe_key.starts_with("sha256:"));
        assert_ne!(a.dedupe_key, b.dedupe_key);
        assert_eq!(
            a.dedupe_key,
            parse(b"Subject: x\r\n\r\nbody one\r\n").dedupe_key
        );
    }

    #[test]
    fn thread_index_root_is_the_first_22_bytes() {
        let mut bytes = vec![7u8; 22];
        bytes.extend([1, 2, 3, 4, 5]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(thread_index_root(&encoded), Some("07".repeat(22)));
        assert_eq!(thread_index_root("AQID"), None);
    }

    #[test]
    fn garbage_is_still_an_inbound() {
        let m = parse(&[0xff, 0xfe, 0x00]);
        assert!(m.dedupe_key.starts_with("sha256:"));
    }
}
