//! Classification through real SMTP (SPEC C1, C2, C5): role senders go to Spam, blocked
//! senders and domains to Filtered, automatic mail (out-of-office, bounces, feedback
//! reports, list mail) is stored and flagged, and each verdict's reasons show in
//! `conversations show --json`.

use serde_json::Value;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";

fn message(id: &str, from: &str, subject: &str, headers: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n{headers}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello there\r\n"
    )
    .into_bytes()
}

/// Sends `raw` with envelope sender `mail_from`; returns the conversation it landed in.
async fn file(d: &Daemon, mail_from: &str, raw: &[u8], subject: &str) -> Value {
    let reply = d.send(mail_from, &[SUPPORT], raw).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let id = conversation_with_subject(&d.list(&["--view", "all_open"]), subject);
    d.show(id)
}

fn classification(conversation: &Value) -> (String, Vec<String>) {
    let c = &conversation["classification"];
    let reasons = c["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r.as_str().expect("reason").to_string())
        .collect();
    (c["verdict"].as_str().expect("verdict").to_string(), reasons)
}

#[tokio::test]
async fn role_senders_go_to_spam_with_their_reason_and_people_do_not() {
    let d = Daemon::start().await;
    for (from, subject) in [
        ("Shop <marketing@shop.example>", "Our autumn sale"),
        ("noreply@notify.example", "Your receipt"),
    ] {
        let raw = message(&format!("{subject}@x"), from, subject, "");
        assert!(d
            .send("bounce@shop.example", &[SUPPORT], &raw)
            .await
            .starts_with("250"));
    }
    let spam = d.list(&["--view", "spam"]);
    assert_eq!(spam.len(), 2, "{spam:?}");
    let sale = d.show(conversation_with_subject(&spam, "Our autumn sale"));
    assert_eq!(sale["spam"], true);
    assert_eq!(
        classification(&sale),
        ("spam".into(), vec!["role_sender:marketing".into()])
    );
    assert_eq!(
        sale["messages"][0]["classification"]["reasons"][0],
        "role_sender:marketing"
    );
    // A customer writing from info@ is a customer.
    let info = file(
        &d,
        "info@bakery.example",
        &message(
            "i1@bakery.example",
            "info@bakery.example",
            "Broken oven",
            "",
        ),
        "Broken oven",
    )
    .await;
    assert_eq!(info["spam"], false);
    assert_eq!(classification(&info), ("clean".into(), vec![]));
    assert!(d
        .list(&["--view", "all_open"])
        .iter()
        .all(|c| c["spam"] == false));
    d.stop().await;
}

#[tokio::test]
async fn the_role_list_comes_from_the_config() {
    let d = Daemon::start_with_classification("role_senders = [\"billing\"]").await;
    let billing = message("b1@x", "billing@vendor.example", "Invoice 7", "");
    let marketing = message("m1@x", "marketing@vendor.example", "Sale", "");
    d.send("x@vendor.example", &[SUPPORT], &billing).await;
    d.send("x@vendor.example", &[SUPPORT], &marketing).await;
    let spam = d.list(&["--view", "spam"]);
    assert_eq!(spam.len(), 1);
    assert_eq!(spam[0]["subject"], "Invoice 7");
    d.stop().await;
}

#[tokio::test]
async fn automatic_mail_is_stored_and_flagged_with_its_reason() {
    let d = Daemon::start().await;
    let cases: [(&str, Vec<u8>, &str, &str); 6] = [
        (
            "jan@klant.example",
            message("a1@k", "jan@klant.example", "Re: order 1", "Auto-Submitted: auto-replied\r\n"),
            "Re: order 1",
            "auto_reply",
        ),
        (
            "piet@klant.example",
            message("a2@k", "piet@klant.example", "Afwezig: vraag", ""),
            "Afwezig: vraag",
            "auto_reply",
        ),
        (
            "sven@kund.example",
            message("a3@k", "sven@kund.example", "Automatiskt svar: fråga", ""),
            "Automatiskt svar: fråga",
            "auto_reply",
        ),
        (
            "ann@klant.example",
            message("a4@k", "ann@klant.example", "Weekly digest", "List-Id: <digest.lists.example>\r\n"),
            "Weekly digest",
            "bulk",
        ),
        (
            "",
            message("a5@k", "MAILER-DAEMON@mx.example", "Undelivered Mail Returned to Sender", ""),
            "Undelivered Mail Returned to Sender",
            "bounce",
        ),
        (
            "fbl@isp.example",
            format!(
                "Message-ID: <a6@k>\r\nFrom: fbl@isp.example\r\nTo: {SUPPORT}\r\nSubject: Abuse report\r\n\
                 MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nA complaint\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n\
                 Feedback-Type: abuse\r\nVersion: 1\r\n--b--\r\n"
            )
            .into_bytes(),
            "Abuse report",
            "feedback",
        ),
    ];
    for (mail_from, raw, subject, verdict) in cases {
        let c = file(&d, mail_from, &raw, subject).await;
        let (got, reasons) = classification(&c);
        assert_eq!(got, verdict, "{subject}: {reasons:?}");
        assert!(!reasons.is_empty(), "{subject}: a verdict without a reason");
        assert_eq!(c["messages"][0]["classification"]["verdict"], verdict);
        // Stored and visible, never dropped, and not spam.
        assert_eq!(c["spam"], false);
        assert_eq!(c["message_count"], 1);
    }
    d.stop().await;
}

#[tokio::test]
async fn blocked_addresses_and_domains_are_filtered_with_the_reason() {
    let d = Daemon::start().await;
    d.cli(&[
        "senders",
        "block",
        "spammer@bad.example",
        "--as",
        "alice@demo.example",
    ]);
    d.cli(&[
        "senders",
        "block",
        "@worse.example",
        "--as",
        "alice@demo.example",
    ]);
    let one = message("f1@bad", "spammer@bad.example", "Cheap watches", "");
    let two = message("f2@worse", "anyone@worse.example", "Discount pills", "");
    let three = message("f3@fine", "someone@fine.example", "Question", "");
    for raw in [&one, &two, &three] {
        assert!(d
            .send("x@y.example", &[SUPPORT], raw)
            .await
            .starts_with("250"));
    }
    let filtered = d.list(&["--view", "filtered"]);
    assert_eq!(filtered.len(), 2, "{filtered:?}");
    let cheap = d.show(conversation_with_subject(&filtered, "Cheap watches"));
    assert_eq!(
        classification(&cheap),
        (
            "filtered".into(),
            vec!["blocked_sender:spammer@bad.example".into()]
        )
    );
    let cheaper = d.show(conversation_with_subject(&filtered, "Discount pills"));
    assert_eq!(
        classification(&cheaper).1,
        vec!["blocked_domain:worse.example".to_string()]
    );
    let open = d.list(&["--view", "all_open"]);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["subject"], "Question");
    d.stop().await;
}

#[tokio::test]
async fn marks_set_the_conversation_verdict_and_reason() {
    let d = Daemon::start().await;
    let raw = message("s1@x", "jan@klant.example", "Hello", "");
    let c = file(&d, "jan@klant.example", &raw, "Hello").await;
    let id = c["id"].as_i64().expect("id").to_string();
    d.cli(&["conversations", "spam", &id, "--as", "alice@demo.example"]);
    let c = d.show(id.parse().expect("id"));
    assert_eq!(
        classification(&c),
        ("spam".into(), vec!["marked_spam:alice@demo.example".into()])
    );
    d.cli(&[
        "conversations",
        "not-spam",
        &id,
        "--as",
        "alice@demo.example",
    ]);
    let c = d.show(id.parse().expect("id"));
    assert_eq!(classification(&c).0, "clean");
    assert_eq!(c["spam"], false);
    d.stop().await;
}
