//! C5: mail no person wrote, or wrote to many: automatic replies (RFC 3834 and the
//! vendor headers that came before it), delivery reports (bounces), abuse feedback
//! reports (RFC 5965) and list or bulk mail. Such mail is stored and flagged but never
//! routed and never opens a ticket, so an out-of-office reply cannot start an
//! assignment ping-pong.
//!
//! Headers decide first; subjects only for the kinds whose senders leave no header
//! (many out-of-office tools and old MTAs), and never for a person's reply or forward
//! (`Re:`, `AW:`, `Fwd:` …) unless the null sender shows no person sent it. Bounces
//! are read by `pipeline::bounce` (reports and plain-text notices); the mail system as
//! sender flags the rest. Each rule names itself in the reason.

use super::{Finding, Received, Verdict};
use crate::pipeline::parse::Inbound;
use crate::pipeline::{bounce, subject};

pub fn findings(message: &Received<'_>) -> Vec<Finding> {
    let parsed = message.parsed;
    let mut found = Vec::new();
    found.extend(feedback(parsed, message.raw));
    found.extend(bounce(message));
    found.extend(auto_reply(message));
    found.extend(bulk(parsed));
    found
}

/// Whether the message came from the null reverse path: `MAIL FROM:<>`, or, when the
/// envelope is unknown (IMAP), a `Return-Path: <>` written by the delivering server.
pub fn null_sender(message: &Received<'_>) -> bool {
    match message.mail_from {
        Some(sender) => sender.is_empty(),
        None => message.parsed.header("return-path") == Some("<>"),
    }
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

fn bounce(message: &Received<'_>) -> Option<Finding> {
    let parsed = message.parsed;
    // Reports the parser could not make sense of still declare their type.
    let content_type = parsed
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("report-type=delivery-status")
        || content_type.contains("report-type=\"delivery-status\"")
        || has_part_type(message.raw, b"message/delivery-status")
        || has_part_type(message.raw, b"message/global-delivery-status")
    {
        return Some(Finding::new(Verdict::Bounce, "report:delivery-status"));
    }
    if parsed.bounce.is_some() {
        let returned = has_part_type(message.raw, b"message/rfc822")
            || has_part_type(message.raw, b"text/rfc822-headers");
        let how = if returned {
            "returned_message"
        } else {
            "notice"
        };
        return Some(Finding::new(Verdict::Bounce, format!("bounce:{how}")));
    }
    if let Some(daemon) = daemon_sender(parsed) {
        return Some(Finding::new(Verdict::Bounce, format!("sender:{daemon}")));
    }
    let s = bounce::bounce_subject(&parsed.subject)?;
    let from_address = parsed.from.as_ref().is_some_and(|m| !m.address.is_empty());
    // (From the null sender, such a subject already made it a bounce notice.)
    (parsed.has_reply_headers() || !from_address)
        .then(|| Finding::new(Verdict::Bounce, format!("subject:{s}")))
}

/// The mail system itself as the sender: `MAILER-DAEMON@`, `postmaster@`, "Mail
/// Delivery System" — in From or in the Return-Path.
fn daemon_sender(parsed: &Inbound) -> Option<String> {
    let from = parsed.from.as_ref();
    let address = from.map(|m| m.address.as_str()).unwrap_or("");
    if let Some(daemon) = bounce::daemon(address, from.and_then(|m| m.name.as_deref())) {
        return Some(daemon);
    }
    // `From: MAILER-DAEMON <>` leaves no mailbox: look at the raw field.
    let raw_from = parsed.header("from").unwrap_or("");
    let raw_name = raw_from
        .split('<')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '"']);
    if let Some(daemon) = bounce::daemon("", Some(raw_name)) {
        return Some(daemon);
    }
    let return_path = parsed.header("return-path").unwrap_or("").to_lowercase();
    let return_local = return_path
        .trim_matches(['<', '>', ' '])
        .split('@')
        .next()
        .unwrap_or("");
    (return_local == "mailer-daemon").then(|| "return_path:mailer-daemon".to_string())
}

/// RFC 3834 and the vendor headers before it. `X-Auto-Response-Suppress` is not among
/// them: Outlook sets it on mail people write too; it asks others not to answer.
fn auto_reply(message: &Received<'_>) -> Option<Finding> {
    let parsed = message.parsed;
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
    for header in ["x-autoreply", "x-autorespond", "x-autoresponder"] {
        let value = parsed.header(header).map(str::to_ascii_lowercase);
        if value.is_some_and(|v| !matches!(v.as_str(), "no" | "false" | "0")) {
            return Some(Finding::new(Verdict::AutoReply, header.replace('-', "_")));
        }
    }
    for header in ["precedence", "x-precedence"] {
        let value = parsed.header(header).map(|v| v.trim().to_ascii_lowercase());
        if value.as_deref() == Some("auto_reply") {
            return Some(Finding::new(
                Verdict::AutoReply,
                format!("{}:auto_reply", header.replace('-', "_")),
            ));
        }
    }
    if parsed
        .header("x-autogenerated")
        .is_some_and(|v| v.eq_ignore_ascii_case("reply"))
    {
        return Some(Finding::new(Verdict::AutoReply, "x_autogenerated:reply"));
    }
    if parsed
        .header("x-apple-action")
        .is_some_and(|v| v.eq_ignore_ascii_case("vacation"))
    {
        return Some(Finding::new(Verdict::AutoReply, "x_apple_action:vacation"));
    }
    auto_reply_subject(message)
}

/// Out-of-office tools that set no header still name themselves in the subject
/// ("Automatic reply: …", "Jan is out of the office."). A person's reply or forward
/// about one (`Re: Jan is out of the office`) is not one: a reply prefix stops the
/// rule, unless the null sender shows no person sent it.
fn auto_reply_subject(message: &Received<'_>) -> Option<Finding> {
    let subject = &message.parsed.subject;
    if subject::has_reply_prefix(subject) && !null_sender(message) {
        return None;
    }
    let lower = subject.to_lowercase();
    AUTO_REPLY_SUBJECTS
        .iter()
        .find(|phrase| names_itself(&lower, phrase))
        .map(|s| Finding::new(Verdict::AutoReply, format!("subject:{s}")))
}

/// Whether `phrase` stands in `subject` the way automatic replies put it, not inside a
/// person's sentence ("out of office hours support", "question about being out of
/// office"): as a label (`Automatic reply: …`, `[Ticket #12] AutoReply: …`, `Out of office - back Monday`,
/// `Out of Office AutoReply: …`), set off at the end (`Order 12 [Out of office]`), or
/// stated (`Jan Jansen is out of the office.`).
fn names_itself(subject: &str, phrase: &str) -> bool {
    subject.match_indices(phrase).any(|(at, _)| {
        let before = subject[..at].trim_end();
        let after = subject[at + phrase.len()..].trim_start();
        let opens = before
            .trim_end_matches(['[', '(', '*'])
            .trim_end()
            .is_empty();
        let labelled =
            after.is_empty() || after.starts_with([':', ']', ')', '*', '-', '.', '!', ',']);
        let announced = AFTER_OPENING.iter().any(|w| after.starts_with(w));
        let set_off = before.ends_with(['[', '(', '*', '-', ':', '|']);
        let stated = STATING.iter().any(|w| before.ends_with(w));
        let label = after.starts_with(':');
        label || (opens && (labelled || announced)) || (set_off && labelled) || stated
    })
}

/// Words that follow an opening out-of-office phrase in automatic subjects.
const AFTER_OPENING: &[&str] = &[
    "autoreply",
    "auto reply",
    "auto-reply",
    "reply",
    "re:",
    "until",
    "till",
    "from",
    "notice",
    "notification",
    "message",
    "returning",
];

/// How a subject states someone's absence ("Jan Jansen is out of the office").
const STATING: &[&str] = &[
    " is", " am", " are", "i'm", " ist", " bin", " est", " är", " er", " è",
];

/// Out-of-office and automatic-reply subjects in the languages our users' customers
/// write in (lower case).
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "auto-response",
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
    use crate::pipeline::bounce::Bounce;
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
            ("Precedence: auto_reply\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "precedence:auto_reply"),
            ("X-Precedence: auto_reply\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "x_precedence:auto_reply"),
            ("X-Autogenerated: Reply\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "x_autogenerated:reply"),
            ("X-Apple-Action: VACATION\r\nFrom: a@x\r\nSubject: hi\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "x_apple_action:vacation"),
            ("From: a@x\r\nSubject: Afwezig: Re: bestelling\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "subject:afwezig"),
            ("From: a@x\r\nSubject: Automatiskt svar: order\r\n\r\nx", Some("a@x"), Verdict::AutoReply, "subject:automatiskt svar"),
            ("From: MAILER-DAEMON@mx.example\r\nSubject: oops\r\n\r\nx", Some(""), Verdict::Bounce, "sender:mailer-daemon"),
            ("From: a@x\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nx", Some(""), Verdict::Bounce, "bounce:notice"),
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
            "X-Auto-Response-Suppress: All\r\nFrom: a@x\r\nSubject: Meeting notes\r\n\r\nHello",
            "X-Autoreply: no\r\nFrom: a@x\r\nSubject: Question\r\n\r\nHello",
        ] {
            assert_eq!(reasons(raw, Some("a@x")), vec![], "{raw:?}");
        }
    }

    /// Classifies `fixtures/autoflags/{name}` received from envelope sender `mail_from`:
    /// the verdict of the automatic-mail checks (clean when none fires), its reasons,
    /// and the bounce the parser read.
    fn fixture(name: &str, mail_from: &str) -> (Verdict, Vec<String>, Option<Bounce>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/autoflags")
            .join(name);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let parsed = parse_received(&raw, Some(mail_from));
        let found = findings(&Received {
            raw: &raw,
            parsed: &parsed,
            mail_from: Some(mail_from),
            peer: None,
            helo: None,
        });
        let c = super::super::Classification::from_findings(found);
        (c.verdict, c.reasons, parsed.bounce)
    }

    /// A plain-text bounce of one of our replies: flagged a bounce, naming the reply it
    /// returns and the recipient that failed.
    fn assert_plain_bounce(name: &str, mail_from: &str, returned: Option<&str>, failed: &str) {
        let (verdict, reasons, bounce) = fixture(name, mail_from);
        assert_eq!(verdict, Verdict::Bounce, "{name}: {reasons:?}");
        let bounce = bounce.unwrap_or_else(|| panic!("{name}: not read as a bounce"));
        assert_eq!(
            bounce.message_ids.first().map(String::as_str),
            returned,
            "{name}"
        );
        let addresses: Vec<&str> = bounce.failed.iter().map(|f| f.address.as_str()).collect();
        assert_eq!(addresses, [failed], "{name}");
    }

    #[test]
    fn reply_about_out_of_office_is_not_an_auto_reply() {
        let (verdict, reasons, _) =
            fixture("reply-about-out-of-office.eml", "piet.bakker@klant.example");
        assert_eq!(verdict, Verdict::Clean, "{reasons:?}");
        // The out-of-office it answers is one.
        let (verdict, reasons, _) = fixture("out-of-office-notes.eml", "jan.jansen@klant.example");
        assert_eq!(
            (verdict, reasons),
            (
                Verdict::AutoReply,
                vec!["subject:out of the office".to_string()]
            )
        );
    }

    #[test]
    fn auto_response_suppress_alone_is_not_an_auto_reply() {
        let (verdict, reasons, _) = fixture(
            "outlook-reply-with-auto-response-suppress.eml",
            "katrin.mueller@klant.example",
        );
        assert_eq!(verdict, Verdict::Clean, "{reasons:?}");
    }

    #[test]
    fn out_of_office_subjects_name_themselves_not_a_persons_sentence() {
        for (subject, auto) in [
            ("Automatic reply: Where is my order?", true),
            ("Out of Office AutoReply: order 12", true),
            ("[Auto-Reply] order 12", true),
            ("Jan Jansen is out of the office.", true),
            ("Abwesenheitsnotiz: Bestellung", true),
            ("Order 12 [Out of office]", true),
            ("[support #33575] AutoReply: FYI", true),
            ("Out of office until Monday 30 November", true),
            ("Jan Jansen is out of the office until 27 November", true),
            ("Question about your out of office hours", false),
            ("Out of office hours support request", false),
            ("Question about being out of office", false),
            ("Re: Jan is out of the office", false),
            ("AW: Abwesenheitsnotiz: Bestellung", false),
            ("SV: Automatiskt svar: order", false),
        ] {
            let raw = format!("From: a@x.example\r\nSubject: {subject}\r\n\r\nx");
            let found = reasons(&raw, Some("a@x.example"));
            assert_eq!(
                found.iter().any(|(v, _)| *v == Verdict::AutoReply),
                auto,
                "{subject}: {found:?}"
            );
        }
        // From the null sender no person wrote it, prefix or not.
        let raw = "From: a@x.example\r\nSubject: Re: Jan is out of the office\r\n\r\nx";
        assert!(reasons(raw, Some(""))
            .iter()
            .any(|(v, _)| *v == Verdict::AutoReply));
    }

    #[test]
    fn qmail_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce(
            "bounce-qmail.eml",
            "",
            Some("out-qmail-1@demo.hs-inbox.com"),
            "jan@klant.example",
        );
    }

    #[test]
    fn exim_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce(
            "bounce-exim.eml",
            "",
            Some("out-exim-1@demo.hs-inbox.com"),
            "jan@klant.example",
        );
        let (_, _, bounce) = fixture("bounce-exim.eml", "");
        let status = &bounce.expect("bounce").failed[0].status;
        assert!(status.contains("550 5.1.1"), "{status}");
    }

    #[test]
    fn sendmail_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce(
            "bounce-sendmail.eml",
            "",
            Some("out-sendmail-1@demo.hs-inbox.com"),
            "jan@klant.example",
        );
    }

    #[test]
    fn exchange_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce(
            "bounce-exchange.eml",
            "",
            Some("out-exchange-1@demo.hs-inbox.com"),
            "jan@klant.example",
        );
    }

    #[test]
    fn domino_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce("bounce-domino.eml", "", None, "jan@klant.example");
    }

    #[test]
    fn yahoo_plain_text_bounce_is_a_bounce() {
        assert_plain_bounce(
            "bounce-yahoo.eml",
            "",
            Some("out-yahoo-1@demo.hs-inbox.com"),
            "jan@yahoo.example",
        );
    }

    #[test]
    fn simple_mta_bounce_from_the_null_sender_is_a_bounce() {
        assert_plain_bounce(
            "bounce-simple-null-sender.eml",
            "",
            Some("out-simple-1@demo.hs-inbox.com"),
            "jan@klant.example",
        );
        // The same text from an ordinary envelope sender is no bounce notice.
        let (_, _, bounce) = fixture("bounce-simple-null-sender.eml", "notices@mx3.klant.example");
        assert_eq!(bounce, None);
    }

    #[test]
    fn a_delay_warning_is_flagged_but_fails_no_delivery() {
        let (verdict, reasons, bounce) = fixture("delay-warning-exim.eml", "");
        assert_eq!(verdict, Verdict::Bounce, "{reasons:?}");
        assert_eq!(bounce, None);
    }

    #[test]
    fn a_bounce_forwarded_by_a_person_is_not_a_bounce() {
        let (verdict, reasons, bounce) =
            fixture("forwarded-bounce.eml", "jan.devries@klant.example");
        assert_eq!(verdict, Verdict::Clean, "{reasons:?}");
        assert_eq!(bounce, None);
    }
}
