//! Bounce recognition (SPEC E7): is a received message a delivery status
//! notification, which of our Message-IDs does it return, and which recipients failed
//! with what status? A pure function of the message and its envelope sender; the store
//! applies the answer to the delivery queue inside the ingest transaction.
//!
//! A message counts as a bounce when it is a DSN (`multipart/report;
//! report-type=delivery-status`, or carries a `message/delivery-status` part), or when
//! it comes from the null reverse path or a MAILER-DAEMON/postmaster address and returns
//! the original (`message/rfc822` or `text/rfc822-headers`). Non-standard bounces
//! without a returned message are not guessed at: a wrong guess would fail mail that
//! was delivered.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};

use super::parse::{clean_id, id_list, Inbound};

/// What a bounce says about our outbound mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounce {
    /// Message-IDs it refers to: the returned message's own first, then its
    /// In-Reply-To/References and the bounce's own. Empty when the bounce returned
    /// nothing that names the original: then it changes no delivery.
    pub message_ids: Vec<String>,
    /// Recipients reported `Action: failed`, lower case, with their status text.
    pub failed: Vec<FailedRecipient>,
    /// Status text for all recipients when no failed recipient can be matched.
    pub summary: String,
}

/// One `Action: failed` entry of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    /// Final-Recipient, lower case, without the `rfc822;` type.
    pub address: String,
    /// Original-Recipient, when it differs (aliases, forwarding).
    pub original: Option<String>,
    /// `Status` and `Diagnostic-Code`, e.g. `5.1.1 smtp; 550 5.1.1 no such user`.
    pub status: String,
}

/// Messages that mention none of these cannot be bounces; saves a parse for the rest.
const MARKERS: [&[u8]; 3] = [b"delivery-status", b"rfc822", b"report"];

/// Marks a parsed message as a bounce when it is one, and lets it thread into the
/// conversation of the message it returns (DSNs rarely carry reply headers).
pub fn recognize(parsed: &mut Inbound, raw: &[u8], mail_from: Option<&str>) {
    parsed.bounce = detect(raw, mail_from);
    if let Some(bounce) = &parsed.bounce {
        for id in &bounce.message_ids {
            if !parsed.references.contains(id) && parsed.message_id.as_ref() != Some(id) {
                parsed.references.push(id.clone());
            }
        }
    }
}

/// Recognizes a bounce in `raw`, received with envelope sender `mail_from` (empty for
/// the null reverse path; `None` when unknown, as over IMAP, where the Return-Path
/// header stands in for it).
pub fn detect(raw: &[u8], mail_from: Option<&str>) -> Option<Bounce> {
    if !MARKERS.iter().any(|m| contains_ignore_case(raw, m)) {
        return None;
    }
    let message = MessageParser::default().parse(raw)?;
    from_message(&message, mail_from)
}

fn from_message(message: &Message, mail_from: Option<&str>) -> Option<Bounce> {
    let mut report = None;
    let mut returned = None;
    for part in &message.parts {
        match content_type(part).as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                report.get_or_insert_with(|| String::from_utf8_lossy(part.contents()).into_owned());
            }
            "message/rfc822" | "message/global" | "text/rfc822-headers" => {
                returned.get_or_insert_with(|| returned_ids(message, part));
            }
            _ => {}
        }
    }
    let is_dsn = report.is_some() || is_report(message);
    let null_sender = match mail_from {
        Some(sender) => sender.is_empty(),
        None => message
            .header_raw("Return-Path")
            .is_some_and(|p| p.trim() == "<>"),
    };
    let from_daemon = null_sender || daemon_sender(message);
    let returns_original = from_daemon && returned.is_some();
    if !(is_dsn || returns_original) {
        return None;
    }
    let mut message_ids = returned.unwrap_or_default();
    message_ids.extend(id_list(message.in_reply_to()));
    message_ids.extend(id_list(message.references()));
    message_ids.dedup();
    let failed = report.as_deref().map(failed_recipients).unwrap_or_default();
    let summary = match failed.as_slice() {
        [first, ..] => first.status.clone(),
        [] => format!(
            "bounced: {}",
            message.subject().unwrap_or("delivery failed")
        ),
    };
    Some(Bounce {
        message_ids,
        failed,
        summary: one_line(&summary),
    })
}

fn content_type(part: &MessagePart) -> String {
    part.content_type()
        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn is_report(message: &Message) -> bool {
    message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    })
}

fn daemon_sender(message: &Message) -> bool {
    let Some(address) = message.from().and_then(|a| a.first()?.address()) else {
        return false;
    };
    let local = address.split('@').next().unwrap_or_default();
    local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
}

/// Message-IDs in the returned message or headers: its own, then what it replied to.
fn returned_ids(message: &Message, part: &MessagePart) -> Vec<String> {
    let start = part.offset_body as usize;
    let end = (part.offset_end as usize).min(message.raw_message.len());
    let Some(bytes) = message.raw_message.get(start..end) else {
        return Vec::new();
    };
    // Headers alone (text/rfc822-headers) parse as a message without a body.
    let Some(original) = MessageParser::default().parse_headers(bytes) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = original
        .message_id()
        .and_then(clean_id)
        .into_iter()
        .collect();
    ids.extend(id_list(original.in_reply_to()));
    ids.extend(id_list(original.references()));
    ids
}

/// The per-recipient blocks of a `message/delivery-status` body whose Action is failed.
pub fn failed_recipients(report: &str) -> Vec<FailedRecipient> {
    unfold(report)
        .split(|line: &String| line.trim().is_empty())
        .filter_map(recipient_block)
        .collect()
}

fn recipient_block(lines: &[String]) -> Option<FailedRecipient> {
    let field = |name: &str| {
        lines.iter().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    if !field("Action")?.eq_ignore_ascii_case("failed") {
        return None;
    }
    let address = typed_address(&field("Final-Recipient")?)?;
    let original = field("Original-Recipient")
        .and_then(|v| typed_address(&v))
        .filter(|o| *o != address);
    let status = match (field("Status"), field("Diagnostic-Code")) {
        (Some(s), Some(d)) => format!("{s} {d}"),
        (Some(s), None) => s,
        (None, Some(d)) => d,
        (None, None) => "failed".to_string(),
    };
    Some(FailedRecipient {
        address,
        original,
        status: one_line(&status),
    })
}

/// `rfc822; Jan@Klant.Example` → `jan@klant.example`.
fn typed_address(value: &str) -> Option<String> {
    let address = value.split_once(';').map_or(value, |(_, a)| a).trim();
    let address = address.trim_start_matches('<').trim_end_matches('>');
    (address.contains('@') && !address.is_empty()).then(|| address.to_lowercase())
}

/// Header-style lines with continuation lines joined.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let continues = line.starts_with([' ', '\t']) && !line.trim().is_empty();
        match lines.last_mut() {
            Some(last) if continues && !last.trim().is_empty() => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

/// Status text fit for `last_reply`: one line, bounded.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.chars().take(500).collect()
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX_DSN: &str = "Return-Path: <>\r\n\
From: MAILER-DAEMON@mx.demo.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: support@demo.example\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"B1\"\r\n\
Message-Id: <20260101.ABC@mx.demo.example>\r\n\
\r\n\
--B1\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
<jan@klant.example>: host mx.klant.example said: 550 5.1.1 no such user\r\n\
\r\n\
--B1\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.demo.example\r\n\
X-Postfix-Queue-ID: 4Q1\r\n\
\r\n\
Final-Recipient: rfc822; jan@klant.example\r\n\
Original-Recipient: rfc822;Jan@Klant.Example\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.klant.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <jan@klant.example>:\r\n\
\x20   Recipient address rejected: no such user\r\n\
\r\n\
Final-Recipient: rfc822; piet@klant.example\r\n\
Action: delivered\r\n\
Status: 2.0.0\r\n\
\r\n\
--B1\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: Support <support@demo.example>\r\n\
To: jan@klant.example\r\n\
Subject: Re: Order 12\r\n\
Message-ID: <out-1@demo.example>\r\n\
In-Reply-To: <in-1@klant.example>\r\n\
\r\n\
--B1--\r\n";

    #[test]
    fn postfix_dsn_names_the_returned_id_and_the_failed_recipient() {
        let b = detect(POSTFIX_DSN.as_bytes(), Some("")).expect("a bounce");
        assert_eq!(b.message_ids, ["out-1@demo.example", "in-1@klant.example"]);
        assert_eq!(b.failed.len(), 1, "{:?}", b.failed);
        assert_eq!(b.failed[0].address, "jan@klant.example");
        assert_eq!(b.failed[0].original, None);
        assert_eq!(
            b.failed[0].status,
            "5.1.1 smtp; 550 5.1.1 <jan@klant.example>: Recipient address rejected: no such user"
        );
        assert_eq!(b.summary, b.failed[0].status);
    }

    #[test]
    fn ordinary_mail_and_forwards_are_not_bounces() {
        let plain = b"From: jan@klant.example\r\nSubject: my report\r\nMessage-ID: <a@b>\r\n\r\nSee the report.\r\n";
        assert_eq!(detect(plain, Some("jan@klant.example")), None);
        let forward = "From: jan@klant.example\r\nSubject: Fwd: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=F\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nfyi\r\n\
--F\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <out-1@demo.example>\r\nSubject: x\r\n\r\nhi\r\n--F--\r\n";
        assert_eq!(detect(forward.as_bytes(), Some("jan@klant.example")), None);
        // The same forward from the null sender returns our message: a bounce.
        let b = detect(forward.as_bytes(), Some("")).expect("bounce");
        assert_eq!(b.message_ids, ["out-1@demo.example"]);
        assert!(b.failed.is_empty());
        assert_eq!(b.summary, "bounced: Fwd: x");
    }

    #[test]
    fn garbage_is_no_bounce_and_no_panic() {
        assert_eq!(detect(b"", Some("")), None);
        assert_eq!(
            detect(&[0xff, 0xfe, b'r', b'e', b'p', b'o', b'r', b't'], None),
            None
        );
        assert_eq!(failed_recipients("Action: failed\r\n"), vec![]);
    }

    /// Real bounces from several MTAs (read in place when the corpus is present).
    #[test]
    fn bounces_from_the_corpus_are_recognized() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpora/bounces/sisimai-set-of-emails/maildir/bsd");
        let cases = [
            (
                "lhost-postfix-01.eml",
                "r@p351355.pool.example.ne.jp",
                "5.1.1",
            ),
            ("lhost-postfix-02.eml", "", ""),
            ("lhost-sendmail-01.eml", "", ""),
            ("lhost-exchange2007-01.eml", "", ""),
            ("lhost-office365-01.eml", "", ""),
        ];
        let mut seen = 0;
        for (file, recipient, status) in cases {
            let Ok(raw) = std::fs::read(dir.join(file)) else {
                continue;
            };
            seen += 1;
            let b = detect(&raw, None).unwrap_or_else(|| panic!("{file}: not recognized"));
            if !recipient.is_empty() {
                assert_eq!(b.failed[0].address, recipient, "{file}");
                assert!(b.failed[0].status.starts_with(status), "{file}");
            }
        }
        assert_eq!(
            seen,
            cases.len(),
            "bounce corpus missing at {}: the tests read ../shared/corpora beside the \
             repository (CI provides it)",
            dir.display()
        );
    }
}
