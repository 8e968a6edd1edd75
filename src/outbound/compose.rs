//! Compose stage (SPEC E3–E6): from-name, signature and threading headers, and the
//! finished RFC 5322 message built with mail-builder. Pure apart from the random part
//! of new Message-IDs and Thread-Index roots.
//!
//! Every header value goes through mail-builder, which encodes what is not plain
//! printable ASCII; on top of that, control characters are removed from names and
//! subjects and addresses are checked, so a CR/LF typed into a name, subject or
//! address can never start a header of its own.

use base64::Engine;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use crate::config::{FromName, FromNameMode};

/// Most ids kept in `References` (RFC 5322 §3.6.4 lets a long chain be trimmed; we
/// keep the thread's first id and the most recent ones, as common agents do).
pub const MAX_REFERENCES: usize = 10;

/// Why a draft cannot become a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("{0:?} is not a valid email address")]
    BadAddress(String),
    #[error("a message needs at least one recipient")]
    NoRecipients,
}

/// A file attached to an outbound message.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Threading headers of one outbound message (E6).
#[derive(Debug, Clone, Default)]
pub struct Threading {
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The 22-byte Outlook thread root this message continues (or starts).
    pub thread_root: Vec<u8>,
}

/// Everything the finished message is built from.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from_name: String,
    pub from_address: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub message_id: String,
    pub threading: Threading,
    /// Unix time for `Date`.
    pub date: i64,
}

/// E3: "Alice Smith from Acme Support", or the company text alone.
pub fn from_name(setting: &FromName, agent_name: &str) -> String {
    let name = match setting.mode {
        FromNameMode::AgentAndCompany if !agent_name.trim().is_empty() => {
            format!("{} from {}", agent_name.trim(), setting.company.trim())
        }
        _ => setting.company.trim().to_string(),
    };
    header_text(&name)
}

/// E5: the channel's signature with the sending agent's names filled in.
pub fn signature(template: &str, full_name: &str) -> String {
    let full_name = full_name.trim();
    let (first, last) = match full_name.split_once(char::is_whitespace) {
        Some((first, last)) => (first, last.trim()),
        None => (full_name, ""),
    };
    let mut out = String::with_capacity(template.len() + full_name.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].trim() {
            "full_name" => out.push_str(full_name),
            "first_name" => out.push_str(first),
            "last_name" => out.push_str(last),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The text body with the signature under it.
pub fn with_text_signature(body: &str, signature: Option<&str>) -> String {
    match signature {
        Some(sig) if !sig.is_empty() => format!("{}\n\n{}\n", body.trim_end(), sig.trim_end()),
        _ => body.to_string(),
    }
}

/// The HTML body with the signature (escaped, line breaks kept) under it.
pub fn with_html_signature(body: &str, signature: Option<&str>) -> String {
    let Some(sig) = signature.filter(|s| !s.is_empty()) else {
        return body.to_string();
    };
    let sig = html_escape(sig.trim_end()).replace('\n', "<br>\n");
    let block = format!("<div class=\"signature\">{sig}</div>");
    match body.rfind("</body>") {
        Some(at) => format!("{}{block}\n{}", &body[..at], &body[at..]),
        None => format!("{body}\n{block}\n"),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `Re: ` once: never `Re: Re:`, and not added to a subject that already has a reply
/// prefix (`Re:`, `RE :`, `AW:`, `SV:`, `Antw:`).
pub fn reply_subject(subject: &str) -> String {
    let subject = header_text(subject);
    let trimmed = subject.trim();
    if has_reply_prefix(trimmed) {
        trimmed.to_string()
    } else if trimmed.is_empty() {
        "Re:".to_string()
    } else {
        format!("Re: {trimmed}")
    }
}

/// `Fwd: ` once.
pub fn forward_subject(subject: &str) -> String {
    let subject = header_text(subject);
    let trimmed = subject.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("fwd:") || lower.starts_with("fw:") {
        trimmed.to_string()
    } else {
        format!("Fwd: {trimmed}")
    }
}

fn has_reply_prefix(subject: &str) -> bool {
    let Some((prefix, _)) = subject.split_once(':') else {
        return false;
    };
    let prefix = prefix.trim().to_ascii_lowercase();
    matches!(prefix.as_str(), "re" | "aw" | "sv" | "antw" | "vs" | "ref")
}

/// The parent's `References` (or, without them, its `In-Reply-To`) followed by the
/// parent's Message-ID, trimmed to the first id and the latest ones.
pub fn references(parent_references: &[String], parent_id: Option<&str>) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    for id in parent_references
        .iter()
        .map(String::as_str)
        .chain(parent_id)
    {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        if is_message_id(id) && !chain.iter().any(|c| c == id) {
            chain.push(id.to_string());
        }
    }
    if chain.len() > MAX_REFERENCES {
        let keep_from = chain.len() - (MAX_REFERENCES - 1);
        let first = chain[0].clone();
        chain = std::iter::once(first)
            .chain(chain.drain(keep_from..))
            .collect();
    }
    chain
}

fn is_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '<' && c != '>')
}

/// A fresh Message-ID on our hostname (without angle brackets).
pub fn new_message_id(hostname: &str) -> String {
    format!("{}@{}", hex(&random_bytes::<16>()), hostname)
}

/// A new Outlook thread root: 6 bytes of time, 16 random bytes (a GUID).
pub fn new_thread_root(now: i64) -> Vec<u8> {
    let mut root = filetime(now).to_be_bytes()[..6].to_vec();
    root.extend_from_slice(&random_bytes::<16>());
    root
}

/// `Thread-Index` for a message continuing `root`: the root plus one 5-byte child
/// block, as Outlook writes for a reply.
pub fn thread_index(root: &[u8], now: i64) -> String {
    let mut value = root.to_vec();
    if value.len() >= 22 {
        value.truncate(22);
        let base = u64::from_be_bytes({
            let mut b = [0u8; 8];
            b[..6].copy_from_slice(&value[..6]);
            b
        });
        let delta = filetime(now).saturating_sub(base) >> 18;
        value.extend_from_slice(&(delta as u32 & 0x7fff_ffff).to_be_bytes());
        value.push(random_bytes::<1>()[0]);
    }
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// 100-ns intervals since 1601 (Windows FILETIME), which Thread-Index uses.
fn filetime(unix: i64) -> u64 {
    (unix.max(0) as u64 + 11_644_473_600) * 10_000_000
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut out).is_err() {
        // The OS RNG failed (should not happen); fall back to time, still unique enough
        // for an id, never used for secrets on this path.
        #[allow(
            clippy::disallowed_methods,
            reason = "uniqueness, not a time rule: the clock here only seeds an id"
        )]
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in out.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8;
        }
    }
    out
}

/// Text for a header: control characters (CR, LF, TAB, …) become spaces, runs of
/// spaces collapse.
pub fn header_text(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks and lower-cases one address: `local@domain`, printable ASCII or UTF-8
/// letters, nothing that could end a header or an SMTP command.
pub fn address(text: &str) -> Result<String, ComposeError> {
    let bad = || ComposeError::BadAddress(text.to_string());
    let address = text.trim();
    let (local, domain) = address.rsplit_once('@').ok_or_else(bad)?;
    let forbidden = |c: char| c.is_control() || c.is_whitespace() || "<>()[]\\,;:\"".contains(c);
    if local.is_empty()
        || domain.is_empty()
        || address.len() > 254
        || local.len() > 64
        || address.chars().any(forbidden)
        || local.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(address.to_lowercase())
}

/// Checks every address of a list.
pub fn addresses(list: &[String]) -> Result<Vec<String>, ComposeError> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for text in list {
        let a = address(text)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// Builds the message. Bcc recipients are never written into the headers.
pub fn build(draft: &Draft) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .message_id(draft.message_id.as_str())
        .date(draft.date)
        .from(Address::new_address(
            Some(header_text(&draft.from_name)),
            draft.from_address.as_str(),
        ))
        .subject(header_text(&draft.subject))
        .header("MIME-Version", Raw::new("1.0"));
    if !draft.to.is_empty() {
        builder = builder.to(list(&draft.to));
    }
    if !draft.cc.is_empty() {
        builder = builder.cc(list(&draft.cc));
    }
    let t = &draft.threading;
    if let Some(parent) = &t.in_reply_to {
        builder = builder.in_reply_to(parent.as_str());
    }
    if !t.references.is_empty() {
        builder = builder.references(t.references.clone());
    }
    if !t.thread_root.is_empty() {
        builder = builder.header(
            "Thread-Index",
            Raw::new(thread_index(&t.thread_root, draft.date)),
        );
    }
    builder = builder.text_body(draft.text.as_str());
    if let Some(html) = &draft.html {
        builder = builder.html_body(html.as_str());
    }
    for a in &draft.attachments {
        builder = builder.attachment(
            a.content_type.as_str(),
            header_text(&a.filename),
            a.bytes.as_slice(),
        );
    }
    // Writing into a Vec cannot fail.
    builder.write_to_vec().unwrap_or_default()
}

fn list(addresses: &[String]) -> Address<'_> {
    Address::new_list(
        addresses
            .iter()
            .map(|a| Address::new_address(None::<&str>, a.as_str()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            from_name: "Alice Smith from Demo Support".into(),
            from_address: "support@demo.hs-inbox.com".into(),
            to: vec!["jan@klant.example".into()],
            cc: vec![],
            subject: "Re: Order 12".into(),
            text: "Hello".into(),
            html: None,
            attachments: vec![],
            message_id: "abc@mx.test.example".into(),
            threading: Threading::default(),
            date: 1_800_000_000,
        }
    }

    fn headers(raw: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(raw);
        let head = text
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string();
        head.split("\r\n").map(str::to_string).collect()
    }

    #[test]
    fn from_name_in_both_modes() {
        let both = FromName {
            mode: FromNameMode::AgentAndCompany,
            company: "Acme Support".into(),
        };
        let company = FromName {
            mode: FromNameMode::Company,
            company: "Acme Support".into(),
        };
        assert_eq!(
            from_name(&both, "Alice Smith"),
            "Alice Smith from Acme Support"
        );
        assert_eq!(from_name(&company, "Alice Smith"), "Acme Support");
        assert_eq!(
            from_name(&both, "Eve\r\nBcc: x@evil.example"),
            "Eve Bcc: x@evil.example from Acme Support"
        );
    }

    #[test]
    fn signature_tokens() {
        let sig = signature(
            "-- \n{{full_name}} / {{ first_name }} / {{last_name}} {{other}}",
            "Alice van Smith",
        );
        assert_eq!(sig, "-- \nAlice van Smith / Alice / van Smith {{other}}");
        assert_eq!(signature("{{last_name}}|{{first_name}}", "Cher"), "|Cher");
        assert_eq!(
            signature("unclosed {{full_name", "A"),
            "unclosed {{full_name"
        );
        assert_eq!(
            with_html_signature("<html><body><p>Hi</p></body></html>", Some("A & B\nC")),
            "<html><body><p>Hi</p><div class=\"signature\">A &amp; B<br>\nC</div>\n</body></html>"
        );
    }

    #[test]
    fn re_is_added_once() {
        assert_eq!(reply_subject("Order 12"), "Re: Order 12");
        assert_eq!(reply_subject("Re: Order 12"), "Re: Order 12");
        assert_eq!(reply_subject("RE : Order 12"), "RE : Order 12");
        assert_eq!(reply_subject("AW: Bestellung"), "AW: Bestellung");
        assert_eq!(reply_subject("Order: 12"), "Re: Order: 12");
        assert_eq!(forward_subject("Fwd: x"), "Fwd: x");
        assert_eq!(forward_subject("x"), "Fwd: x");
    }

    #[test]
    fn references_chain_is_trimmed_keeping_the_root() {
        let refs: Vec<String> = (0..15).map(|i| format!("<m{i}@x.example>")).collect();
        let chain = references(&refs, Some("parent@x.example"));
        assert_eq!(chain.len(), MAX_REFERENCES);
        assert_eq!(chain[0], "m0@x.example");
        assert_eq!(chain[MAX_REFERENCES - 1], "parent@x.example");
        assert_eq!(chain[1], "m7@x.example");
        assert_eq!(
            references(&["bad id".into(), "<a@b>".into()], Some("a@b")),
            ["a@b"]
        );
    }

    #[test]
    fn addresses_cannot_carry_headers() {
        assert_eq!(
            address(" Jan@Klant.Example "),
            Ok("jan@klant.example".into())
        );
        for bad in [
            "jan@klant.example\r\nBcc: x@evil.example",
            "jan@klant.example>",
            "a b@klant.example",
            "nobody",
            "x@localhost",
            "@klant.example",
        ] {
            assert!(address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn built_message_has_one_of_each_header_and_no_injection() {
        let mut d = draft();
        d.subject = "Hi\r\nBcc: x@evil.example".into();
        d.from_name = "Eve\nX-Evil: 1".into();
        d.threading = Threading {
            in_reply_to: Some("p@klant.example".into()),
            references: vec!["r@klant.example".into(), "p@klant.example".into()],
            thread_root: new_thread_root(1_800_000_000),
        };
        let raw = build(&d);
        let h = headers(&raw);
        let starts = |name: &str| h.iter().filter(|l| l.starts_with(name)).count();
        assert_eq!(starts("Bcc:"), 0, "{h:?}");
        assert_eq!(starts("X-Evil:"), 0, "{h:?}");
        assert_eq!(starts("Subject:"), 1);
        assert!(
            h.contains(&"Message-ID: <abc@mx.test.example>".to_string()),
            "{h:?}"
        );
        assert!(
            h.contains(&"In-Reply-To: <p@klant.example>".to_string()),
            "{h:?}"
        );
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("Hi Bcc: x@evil.example"));
        let thread_index = parsed.header_raw("Thread-Index").unwrap().trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(thread_index)
            .unwrap();
        assert_eq!(bytes.len(), 27);
        assert_eq!(&bytes[..22], &d.threading.thread_root[..]);
    }
}
