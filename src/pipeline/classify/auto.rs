//! C5: mail no person wrote, or wrote to many: automatic replies (RFC 3834 and the
//! vendor headers that came before it), delivery reports (bounces), abuse feedback
//! reports (RFC 5965) and list or bulk mail. Such mail is stored and flagged but never
//! routed and never opens a ticket, so an out-of-office reply cannot start an
//! assignment ping-pong.
//!
//! Headers decide first; subjects only for the kinds whose senders leave no header
//! (many out-of-office tools and old MTAs). Each rule names itself in the reason.

use super::{Finding, Received, Verdict};
use crate::pipeline::parse::Inbound;

pub fn findings(message: &Received<'_>) -> Vec<Finding> {
    let parsed = message.parsed;
    let mut found = Vec::new();
    found.extend(feedback(parsed, message.raw));
    found.extend(bounce(parsed, message.raw, message.mail_from));
    found.extend(auto_reply(parsed));
    found.extend(bulk(parsed));
    found
}

fn feedback(parsed: &Inbound, raw: &[u8]) -> Option<Finding> {
    let content_type = parsed
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("report-type=feedback-report")
        || content_type.contains("report-type=\"feedback-report\"")
        || has_part_type(raw, b"message/feedback-report")
    {
        return Some(Finding::new(Verdict::Feedback, "report:feedback-report"));
    }
    None
}

fn bounce(parsed: &Inbound, raw: &[u8], mail_from: Option<&str>) -> Option<Finding> {
    let content_type = parsed
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if parsed.bounce.is_some()
        || content_type.contains("report-type=delivery-status")
        || content_type.contains("report-type=\"delivery-status\"")
        || has_part_type(raw, b"message/delivery-status")
        || has_part_type(raw, b"message/global-delivery-status")
    {
        return Some(Finding::new(Verdict::Bounce, "report:delivery-status"));
    }
    let from = parsed
        .from
        .as_ref()
        .map(|m| m.address.as_str())
        .unwrap_or("");
    if let Some(daemon) = daemon_sender(parsed) {
        return Some(Finding::new(Verdict::Bounce, format!("sender:{daemon}")));
    }
    let subject = parsed.subject.to_lowercase();
    let bounce_subject = BOUNCE_SUBJECTS.iter().find(|s| subject.contains(*s));
    let s = bounce_subject?;
    let null_sender = mail_from == Some("") || parsed.header("return-path") == Some("<>");
    if null_sender {
        Some(Finding::new(
            Verdict::Bounce,
            format!("null_sender+subject:{s}"),
        ))
    } else if parsed.has_reply_headers() || from.is_empty() {
        Some(Finding::new(Verdict::Bounce, format!("subject:{s}")))
    } else {
        None
    }
}

/// The mail system itself as the sender: `MAILER-DAEMON@`, `postmaster@`, "Mail
/// Delivery System" — in From or in the Return-Path.
fn daemon_sender(parsed: &Inbound) -> Option<String> {
    let from = parsed.from.as_ref();
    let address = from.map(|m| m.address.as_str()).unwrap_or("");
    let local = address.split('@').next().unwrap_or("");
    if DAEMON_LOCAL_PARTS.contains(&local) {
        return Some(local.to_string());
    }
    let name = from
        .and_then(|m| m.name.as_deref())
        .unwrap_or("")
        .to_lowercase();
    if DAEMON_NAMES.contains(&name.as_str()) {
        return Some(name.replace(' ', "_"));
    }
    let return_path = parsed.header("return-path").unwrap_or("").to_lowercase();
    let return_local = return_path
        .trim_matches(['<', '>', ' '])
        .split('@')
        .next()
        .unwrap_or("");
    (return_local == "mailer-daemon").then(|| "return_path:mailer-daemon".to_string())
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
];

/// Subjects of non-standard bounces (lower case, matched anywhere in the subject).
const BOUNCE_SUBJECTS: &[&str] = &[
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

fn auto_reply(parsed: &Inbound) -> Option<Finding> {
    if let Some(value) = parsed.header("auto-submitted") {
        let value = value.to_ascii_lowercase();
        let kind = value.split(';').next().unwrap_or("").trim();
        if !kind.is_empty() && kind != "no" {
            return Some(Finding::new(
                Verdict::AutoReply,
                format!("auto_submitted:{kind}"),
            ));
        }
    }
    for header in ["x-autoreply", "x-autorespond", "x-autorespond-message"] {
        if parsed.header(header).is_some() {
            return Some(Finding::new(Verdict::AutoReply, header.replace('-', "_")));
        }
    }
    if let Some(value) = parsed.header("x-auto-response-suppress") {
        let value = value.to_ascii_lowercase();
        if value.split([',', ' ']).any(|v| v == "oof" || v == "all") {
            return Some(Finding::new(
                Verdict::AutoReply,
                "x_auto_response_suppress:oof",
            ));
        }
    }
    if precedence(parsed).as_deref() == Some("auto_reply") {
        return Some(Finding::new(Verdict::AutoReply, "precedence:auto_reply"));
    }
    let subject = parsed.subject.to_lowercase();
    AUTO_REPLY_SUBJECTS
        .iter()
        .find(|s| subject.contains(*s))
        .map(|s| Finding::new(Verdict::AutoReply, format!("subject:{s}")))
}

/// Out-of-office and automatic-reply subjects in the languages our users' customers
/// write in (lower case, matched anywhere in the subject).
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "away from the office",
    "on vacation",
    "vacation reply",
    "afwezig",
    "automatisch antwoord",
    "afwezigheidsbericht",
    "abwesenheitsnotiz",
    "automatische antwort",
    "abwesend",
    "réponse automatique",
    "reponse automatique",
    "absence du bureau",
    "respuesta automática",
    "respuesta automatica",
    "fuera de la oficina",
    "frånvaro",
    "automatiskt svar",
    "risposta automatica",
    "fuori ufficio",
    "resposta automática",
    "automatisk svar",
    "fravær",
];

fn bulk(parsed: &Inbound) -> Option<Finding> {
    if let Some(p) = precedence(parsed) {
        if matches!(p.as_str(), "bulk" | "list" | "junk") {
            return Some(Finding::new(Verdict::Bulk, format!("precedence:{p}")));
        }
    }
    for (header, reason) in [
        ("list-id", "list_id"),
        ("list-unsubscribe", "list_unsubscribe"),
        ("list-post", "list_post"),
        ("x-mailing-list", "x_mailing_list"),
    ] {
        if parsed.header(header).is_some() {
            return Some(Finding::new(Verdict::Bulk, reason));
        }
    }
    None
}

fn precedence(parsed: &Inbound) -> Option<String> {
    let value = parsed.header("precedence")?;
    Some(value.trim().to_ascii_lowercase())
}

/// Whether some MIME part of `raw` declares `content_type` (a case-insensitive scan of
/// `Content-Type:` lines; cheap, and works where a parser gives up on a broken report).
fn has_part_type(raw: &[u8], content_type: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').any(|line| {
        line.len() >= 13
            && line[..13].eq_ignore_ascii_case(b"content-type:")
            && contains_ignore_case(&line[13..], content_type)
    })
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::parse_received;

    fn classify(raw: &str, mail_from: Option<&str>) -> Vec<Finding> {
        let parsed = parse_received(raw.as_bytes(), mail_from);
        findings(&Received {
            raw: raw.as_bytes(),
            parsed: &parsed,
            mail_from,
            peer: None,
            helo: None,
        })
    }

    fn reasons(raw: &str, mail_from: Option<&str>) -> Vec<(Verdict, String)> {
        classify(raw, mail_from)
            .into_iter()
            .map(|f| (f.verdict, f.reason))
            .collect()
    }

    #[test]
    fn each_rule_names_itself() {
        let cases: &[(&str, Option<&str>, Verdict, &str)] = &[
            ("Auto-Submitted: auto-replied\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "auto_submitted:auto-replied"),
            ("X-Autoreply: yes\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "x_autoreply"),
            ("X-Auto-Response-Suppress: DR, OOF\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "x_auto_response_suppress:oof"),
            ("Precedence: auto_reply\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "precedence:auto_reply"),
            ("From: a@x\r\nSubject: Afwezig: Re: bestelling\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "subject:afwezig"),
            ("From: a@x\r\nSubject: Automatiskt svar: order\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "subject:automatiskt svar"),
            ("From: MAILER-DAEMON@mx.example\r\nSubject: oops\r\n\r\nx", Some(""), Verdict::Bounce, "sender:mailer-daemon"),
            ("From: a@x\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nx", Some(""), Verdict::Bounce, "null_sender+subject:undelivered mail returned to sender"),
            ("From: a@x\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=b\r\nSubject: abuse\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n--b--\r\n", Some("a@x"), Verdict::Feedback, "report:feedback-report"),
            ("List-Id: <dev.lists.example>\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::Bulk, "list_id"),
            ("Precedence: bulk\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::Bulk, "precedence:bulk"),
        ];
        for (raw, mail_from, verdict, reason) in cases {
            let found = reasons(raw, *mail_from);
            assert!(
                found.contains(&(*verdict, reason.to_string())),
                "{raw:?}: {found:?}"
            );
        }
    }

    #[test]
    fn people_and_refusals_to_auto_reply_are_not_flagged() {
        for raw in [
            "From: a@x\r\nSubject: Where is my order?\r\n\r\nHello",
            "Auto-Submitted: no\r\nFrom: a@x\r\nSubject: Question\r\n\r\nHello",
            "From: a@x\r\nSubject: Undeliverable: my parcel never came\r\n\r\nHello",
            "From: a@x\r\nSubject: Re: out of stock?\r\n\r\nHello",
        ] {
            assert_eq!(reasons(raw, Some("a@x")), vec![], "{raw:?}");
        }
    }
}
