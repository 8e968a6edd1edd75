//! Bounce recognition (SPEC E7): is a received message a delivery status
//! notification, which of our Message-IDs does it return, and which recipients failed
//! with what status? A pure function of the parsed message and its envelope sender
//! (the message is parsed once, by `parse`); the store applies the answer to the
//! delivery queue inside the ingest transaction.
//!
//! A message counts as a bounce when it is a DSN (`multipart/report;
//! report-type=delivery-status`, or carries a `message/delivery-status` part), or when
//! it comes from the mail system (the null reverse path, a MAILER-DAEMON/postmaster
//! address, "Mail Delivery System") and either returns the original (`message/rfc822`
//! or `text/rfc822-headers`) or says in plain text, as qmail, Exim, Sendmail, Domino,
//! Exchange and most "simple" MTAs do, that it could not deliver. A plain-text notice
//! names the returned message by the `Message-ID:` line of its quoted copy and the
//! failed recipients by the addresses standing alone on their lines; a notice whose
//! copy names no Message-ID refers to nothing and changes no delivery.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

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

/// Marks a parsed message as a bounce when it is one, and lets it thread into the
/// conversation of the message it returns (DSNs rarely carry reply headers).
pub fn recognize(parsed: &mut Inbound, message: &Message, mail_from: Option<&str>) {
    parsed.bounce = detect(message, mail_from);
    if let Some(bounce) = &parsed.bounce {
        for id in &bounce.message_ids {
            if !parsed.references.contains(id) && parsed.message_id.as_ref() != Some(id) {
                parsed.references.push(id.clone());
            }
        }
    }
}

/// Recognizes a bounce in a parsed message received with envelope sender `mail_from`
/// (empty for the null reverse path; `None` when unknown, as over IMAP, where the
/// Return-Path header stands in for it).
pub fn detect(message: &Message, mail_from: Option<&str>) -> Option<Bounce> {
    let mut report = None;
    let mut returned = None;
    for part in &message.parts {
        match content_type(part).as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                report.get_or_insert_with(|| String::from_utf8_lossy(part.contents()).into_owned());
            }
            "message/rfc822" | "message/global" | "text/rfc822-headers" => {
                returned.get_or_insert_with(|| returned_ids(part));
            }
            _ => {}
        }
    }
    let from_system = is_null_sender(message, mail_from) || daemon_sender(message);
    let is_dsn = report.is_some() || is_report(message);
    let returns_original = from_system && returned.is_some();
    if !(is_dsn || returns_original) {
        let by_subject =
            bounce_subject(message.subject().unwrap_or("")).is_some() && !has_from_address(message);
        return (from_system || by_subject).then(|| plain_notice(message))?;
    }
    if !is_dsn && still_trying(split_notice(&body_text(message)).0) {
        return None;
    }
    let mut message_ids = returned.unwrap_or_default();
    message_ids.extend(id_list(message.in_reply_to()));
    message_ids.extend(id_list(message.references()));
    unique(&mut message_ids);
    if report.as_deref().is_some_and(reports_no_failure) {
        return None;
    }
    let failed = report.as_deref().map(failed_recipients).unwrap_or_default();
    Some(Bounce {
        summary: summary(message, &failed),
        message_ids,
        failed,
    })
}

/// A bounce that is plain text only: the mail system's notice, then (usually) a copy
/// of the message it could not deliver. Either its words or its subject must say that
/// delivery failed; a warning that the system is still trying fails nothing.
fn plain_notice(message: &Message) -> Option<Bounce> {
    let text = body_text(message);
    let (notice, copy) = split_notice(&text);
    let lower = notice.to_lowercase();
    let says_failed = NOTICE_PHRASES.iter().any(|p| lower.contains(p))
        || bounce_subject(message.subject().unwrap_or("")).is_some();
    if !says_failed || still_trying(notice) {
        return None;
    }
    let failed = notice_recipients(notice);
    let mut message_ids = quoted_ids(copy);
    message_ids.extend(id_list(message.in_reply_to()));
    message_ids.extend(id_list(message.references()));
    unique(&mut message_ids);
    Some(Bounce {
        summary: summary(message, &failed),
        message_ids,
        failed,
    })
}

/// Drops repeated ids, keeping the first of each (the returned message's own first).
fn unique(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

fn summary(message: &Message, failed: &[FailedRecipient]) -> String {
    let text = match failed {
        [first, ..] => first.status.clone(),
        [] => format!(
            "bounced: {}",
            message.subject().unwrap_or("delivery failed")
        ),
    };
    one_line(&text)
}

/// How mail systems say, in plain text, that they could not deliver (lower case).
/// General phrasing of the MTAs' templates, not any one message's words.
const NOTICE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "couldn't deliver",
    "wasn't able to deliver",
    "was not able to deliver",
    "unable to deliver",
    "was not delivered",
    "wasn't delivered",
    "not been delivered",
    "delivery failed",
    "delivery has failed",
    "delivery error",
    "error delivering",
    "error occurred while attempting to deliver",
    "delivery to the following",
    "failed to deliver",
    "permanent error",
    "permanent fatal error",
    "following address(es) failed",
    "following addresses had",
    "following recipients",
    "following recipient",
    "undeliverable",
    "undelivered",
    "did not reach",
    "returned mail",
    "mail delivery software",
    "delivery status notification",
    "qmail-send program",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox not found",
    "recipient address rejected",
    "message rejected",
    "message not delivered",
    "non-delivery",
    "nicht zugestellt",
    "unzustellbar",
    "non recapitabile",
    "no se pudo entregar",
    "n'a pas pu être remis",
];

/// Whether a notice warns that delivery goes on (a delay, not a failure).
fn still_trying(notice: &str) -> bool {
    let lower = notice.to_lowercase();
    DELAY_PHRASES.iter().any(|p| lower.contains(p))
}

/// How warnings about delayed mail say that delivery goes on (lower case).
const DELAY_PHRASES: &[&str] = &[
    "will be retried",
    "will retry",
    "will continue trying",
    "will keep trying",
    "still trying",
    "no action is required",
    "delivery attempts will continue",
    "this is a warning",
    "message has been delayed",
    "delivery has been delayed",
];

/// Subjects of bounces that carry no report (lower case, matched anywhere).
pub const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail returned to sender",
    "delivery status notification",
    "there was an error sending your mail",
    "mail delivery failed",
    "mail delivery failure",
    "delivery failure",
    "undeliverable:",
    "undeliverable mail",
    "undeliverable message",
    "returned mail:",
    "failure notice",
    "delivery notification: delivery has failed",
    "nondeliverable mail",
    "non-delivery",
    "message not delivered",
    "mail system error",
    "could not send message",
    "delivery has failed",
    "unzustellbar",
    "onbestelbaar",
    "non remis",
    "no se puede entregar",
    "kunde inte levereras",
];

/// The bounce phrase a subject carries, unless a person's reply or forward prefix
/// (`Re:`, `Fwd:`, `AW:` …) shows that someone is writing about a bounce.
pub fn bounce_subject(subject: &str) -> Option<&'static str> {
    if super::subject::has_reply_prefix(subject) {
        return None;
    }
    let subject = subject.to_lowercase();
    BOUNCE_SUBJECTS
        .iter()
        .copied()
        .find(|s| subject.contains(s))
}

/// The text of the message's text parts, bounded: the notice and the quoted copy.
fn body_text(message: &Message) -> String {
    const MAX: usize = 64 * 1024;
    let mut text = String::new();
    for part in &message.parts {
        if let PartType::Text(body) = &part.body {
            if text.len() >= MAX {
                break;
            }
            let room = MAX - text.len();
            let end = (0..=room.min(body.len()))
                .rev()
                .find(|&i| body.is_char_boundary(i))
                .unwrap_or(0);
            text.push_str(&body[..end]);
            text.push('\n');
        }
    }
    text
}

/// Splits a plain-text bounce into the notice and the copy of the returned message,
/// which starts at a "copy of the message"/"original message" line or at the first
/// header line of the copy.
fn split_notice(text: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.trim().to_lowercase();
        let marker = COPY_MARKERS.iter().any(|m| lower.contains(m)) && announces(&lower);
        let header = COPY_HEADERS.iter().any(|h| lower.starts_with(h));
        if marker || header {
            return (&text[..offset], &text[offset..]);
        }
        offset += line.len();
    }
    (text, "")
}

/// Whether a line naming the copy announces it (`--- Below this line …`, `Original
/// message follows.`, `… copy of the original message:`) rather than mentioning the
/// original in a sentence ("The original message was received at …").
fn announces(line: &str) -> bool {
    !line.starts_with(char::is_alphanumeric) || line.ends_with(':') || line.contains("follow")
}

/// Lines that announce the returned copy (lower case).
const COPY_MARKERS: &[&str] = &[
    "copy of the message",
    "copy of your message",
    "original message",
    "returned message",
    "undelivered message",
    "message headers follow",
    "headers of your message",
    "message header follows",
    "below this line",
    "unsent message",
];

/// Header fields that open a returned copy (lower case, with the colon).
const COPY_HEADERS: &[&str] = &[
    "return-path:",
    "received:",
    "message-id:",
    "dkim-signature:",
];

/// The Message-IDs of the quoted copy: its `Message-ID:` first, then what it replied to.
fn quoted_ids(copy: &str) -> Vec<String> {
    let fields = header_lines(copy);
    let mut ids: Vec<String> = Vec::new();
    for name in ["message-id", "in-reply-to", "references"] {
        for (_, value) in fields.iter().filter(|(n, _)| n == name) {
            ids.extend(angle_ids(value));
        }
    }
    ids
}

/// `Name: value` lines (continuations joined, `> ` quoting removed), names lower case.
fn header_lines(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for raw in text.lines().take(2000) {
        let line = raw.trim_start_matches(['>', ' ']);
        if raw.starts_with([' ', '\t']) && !raw.trim().is_empty() {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(raw.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    fields
}

/// The `<id>`s in a header value.
fn angle_ids(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|rest| clean_id(rest.split('>').next()?))
        .filter(|id| id.contains('@'))
        .collect()
}

/// Failed recipients in a plain-text notice: an address standing alone on its line
/// (`<a@b>`, `a@b`, `<a@b>:`, `a@b (a@b)`), or opening it before a colon and the
/// reply (`<a@b>: host … said: 550 …`), with the lines after it up to a blank line as
/// its status.
fn notice_recipients(notice: &str) -> Vec<FailedRecipient> {
    let lines: Vec<&str> = notice.lines().collect();
    let mut failed: Vec<FailedRecipient> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((address, rest)) = recipient_line(line) else {
            continue;
        };
        if failed.iter().any(|f| f.address == address) || failed.len() >= 100 {
            continue;
        }
        let mut status = vec![rest];
        status.extend(
            lines[i + 1..]
                .iter()
                .take_while(|l| !l.trim().is_empty() && recipient_line(l).is_none())
                .take(10)
                .map(|l| l.trim()),
        );
        let status = one_line(&status.join(" "));
        failed.push(FailedRecipient {
            address,
            original: None,
            status: if status.is_empty() {
                "failed".to_string()
            } else {
                status
            },
        });
    }
    failed
}

/// The address a notice line names as a recipient, and the text after it.
fn recipient_line(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    let (token, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let colon = token.ends_with(':');
    let address = token
        .trim_end_matches([':', ','])
        .trim_start_matches(['<', '"'])
        .trim_end_matches(['>', '"']);
    let aside = |open, close| rest.starts_with(open) && rest.ends_with(close);
    let alone = rest.is_empty() || aside('(', ')') || aside('[', ']');
    if !(alone || colon) || !looks_like_address(address) {
        return None;
    }
    let status = if rest.is_empty() || aside('(', ')') && !colon {
        ""
    } else {
        rest.trim_matches(['[', ']'])
    };
    Some((address.to_lowercase(), status))
}

fn looks_like_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    const NOT_IN_ADDRESS: &[char] = &['@', '<', '>', '(', ')', ',', ';', '[', ']', '"', ' ', '\t'];
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !local.contains(NOT_IN_ADDRESS)
        && !domain.contains(NOT_IN_ADDRESS)
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

/// The null reverse path: the envelope's, or when it is unknown the Return-Path's.
fn is_null_sender(message: &Message, mail_from: Option<&str>) -> bool {
    match mail_from {
        Some(sender) => sender.is_empty(),
        None => message
            .header_raw("Return-Path")
            .is_some_and(|p| p.trim() == "<>"),
    }
}

fn has_from_address(message: &Message) -> bool {
    message
        .from()
        .and_then(|a| a.first()?.address())
        .is_some_and(|a| !a.trim().is_empty())
}

fn daemon_sender(message: &Message) -> bool {
    let Some(from) = message.from().and_then(|a| a.first()) else {
        return false;
    };
    daemon(from.address().unwrap_or(""), from.name()).is_some()
}

/// The mail system itself as a mailbox: `MAILER-DAEMON@`, `postmaster@`, or a
/// "Mail Delivery System"-like name. Returns the part that matched, for the reason.
pub fn daemon(address: &str, name: Option<&str>) -> Option<String> {
    let local = address.split('@').next().unwrap_or("").to_lowercase();
    if DAEMON_LOCAL_PARTS.contains(&local.as_str()) {
        return Some(local);
    }
    let name = name.unwrap_or("").trim().to_lowercase();
    DAEMON_NAMES
        .contains(&name.as_str())
        .then(|| name.replace(' ', "_"))
}

const DAEMON_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "postmaster",
    "post_master",
    "mdaemon",
    "mail.delivery.system",
    "mail-delivery-system",
];

const DAEMON_NAMES: &[&str] = &[
    "mail delivery system",
    "mail delivery subsystem",
    "mailer daemon",
    "mailer-daemon",
    "mail administrator",
    "postmaster",
    "mail delivery service",
];

/// Message-IDs in the returned message or headers: its own, then what it replied to.
fn returned_ids(part: &MessagePart) -> Vec<String> {
    match &part.body {
        PartType::Message(original) => {
            let mut ids: Vec<String> = original
                .message_id()
                .and_then(clean_id)
                .into_iter()
                .collect();
            ids.extend(id_list(original.in_reply_to()));
            ids.extend(id_list(original.references()));
            ids
        }
        // Headers alone (text/rfc822-headers), or a copy the parser kept as text.
        PartType::Text(text) => quoted_ids(text),
        _ => quoted_ids(&String::from_utf8_lossy(part.contents())),
    }
}

/// A report whose recipients are all `delayed`, `delivered`, `relayed` or `expanded`:
/// a warning or a success notice, which fails no delivery.
fn reports_no_failure(report: &str) -> bool {
    let actions: Vec<String> = unfold(report)
        .iter()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("action")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .collect();
    !actions.is_empty() && actions.iter().all(|a| a != "failed")
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

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    /// Parses `raw` and recognizes a bounce in it, as `parse_received` does.
    fn detect_raw(raw: &[u8], mail_from: Option<&str>) -> Option<Bounce> {
        detect(&MessageParser::default().parse(raw)?, mail_from)
    }

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
        let b = detect_raw(POSTFIX_DSN.as_bytes(), Some("")).expect("a bounce");
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
        assert_eq!(detect_raw(plain, Some("jan@klant.example")), None);
        let forward = "From: jan@klant.example\r\nSubject: Fwd: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=F\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nfyi\r\n\
--F\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <out-1@demo.example>\r\nSubject: x\r\n\r\nhi\r\n--F--\r\n";
        assert_eq!(
            detect_raw(forward.as_bytes(), Some("jan@klant.example")),
            None
        );
        // The same forward from the null sender returns our message: a bounce.
        let b = detect_raw(forward.as_bytes(), Some("")).expect("bounce");
        assert_eq!(b.message_ids, ["out-1@demo.example"]);
        assert!(b.failed.is_empty());
        assert_eq!(b.summary, "bounced: Fwd: x");
    }

    #[test]
    fn garbage_is_no_bounce_and_no_panic() {
        assert_eq!(detect_raw(b"", Some("")), None);
        assert_eq!(
            detect_raw(&[0xff, 0xfe, b'r', b'e', b'p', b'o', b'r', b't'], None),
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
            let b = detect_raw(&raw, None).unwrap_or_else(|| panic!("{file}: not recognized"));
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

    #[test]
    fn notice_lines_name_recipients_the_way_mtas_write_them() {
        for (line, want) in [
            ("<jan@klant.example>:", Some(("jan@klant.example", ""))),
            ("  jan@klant.example", Some(("jan@klant.example", ""))),
            ("<Jan@Klant.Example>", Some(("jan@klant.example", ""))),
            (
                "jan@klant.example (jan@klant.example)",
                Some(("jan@klant.example", "")),
            ),
            (
                "jan@klant.example [User unknown]",
                Some(("jan@klant.example", "User unknown")),
            ),
            (
                "<jan@klant.example>: host mx said: 550 no such user",
                Some(("jan@klant.example", "host mx said: 550 no such user")),
            ),
            (
                "There was an error delivering your mail to <jan@klant.example>.",
                None,
            ),
            ("To: jan@klant.example", None),
            (">>> RCPT To:<jan@klant.example>", None),
            ("jan@localhost", None),
        ] {
            let got = recipient_line(line);
            let got = got.as_ref().map(|(a, s)| (a.as_str(), *s));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn the_copy_starts_at_an_announcement_not_at_a_sentence() {
        let text = "The original message was received at Mon, 23 Nov 2026\n\
                    <jan@klant.example>\n\
                    ----- Original message follows -----\n\
                    Message-ID: <out-1@demo.example>\n";
        let (notice, copy) = split_notice(text);
        assert!(notice.contains("<jan@klant.example>"), "{notice:?}");
        assert_eq!(quoted_ids(copy), ["out-1@demo.example"]);
    }

    #[test]
    fn a_delay_warning_returning_the_original_fails_nothing() {
        let warning = "From: MAILER-DAEMON@mx.klant.example\r\nSubject: Warning: message delayed\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=W\r\n\r\n--W\r\n\
Content-Type: text/plain\r\n\r\nYour message has not been delivered yet. Delivery attempts will continue.\r\n\
--W\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <out-1@demo.example>\r\nSubject: x\r\n\r\nhi\r\n--W--\r\n";
        assert_eq!(detect_raw(warning.as_bytes(), Some("")), None);
    }

    #[test]
    fn a_delay_report_fails_nothing() {
        let delayed = POSTFIX_DSN
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.2.2");
        assert_eq!(detect_raw(delayed.as_bytes(), Some("")), None);
    }
}
