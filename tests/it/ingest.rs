//! Ingest over real SMTP: durability of the 250, dedupe (B4), contacts (B5), threading
//! and its guards (B10), reopen (B11), two-inbox delivery, and the CLI's view of it.

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";

fn message(id: &str, from: &str, subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn accepted(reply: &str) {
    assert!(
        reply.starts_with("250 2.0.0"),
        "expected 250 2.0.0, got {reply:?}"
    );
}

#[tokio::test]
async fn a_message_becomes_a_conversation_with_its_contact() {
    let d = Daemon::start().await;
    let m = message(
        "q1@klant.example",
        "\"Jan de Vries\" <Jan@Klant.example>",
        "Order 12 late",
        "",
        "Where is it?",
    );
    accepted(&d.send("jan@klant.example", &[SUPPORT], &m).await);
    let list = d.list(&[]);
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!(c["inbox"], "Support");
    assert_eq!(c["channel"], SUPPORT);
    assert_eq!(c["subject"], "Order 12 late");
    assert_eq!(c["status"], "open");
    assert_eq!(c["assignee"], serde_json::Value::Null);
    assert_eq!(c["contact"]["email"], "jan@klant.example");
    assert_eq!(c["contact"]["name"], "Jan de Vries");
    assert_eq!(c["message_count"], 1);
    assert_eq!(c["spam"], false);
    let shown = d.show(c["id"].as_i64().unwrap());
    let msg = &shown["messages"][0];
    assert_eq!(msg["direction"], "in");
    assert_eq!(msg["message_id"], "q1@klant.example");
    assert_eq!(msg["from"], "jan@klant.example");
    assert_eq!(msg["to"][0], SUPPORT);
    assert_eq!(msg["text"].as_str().unwrap().trim(), "Where is it?");
    assert_eq!(msg["truncated"], false);
    assert_eq!(msg["date"], "2026-11-21T10:00:00Z");
    d.stop().await;
}

#[tokio::test]
async fn a_retried_message_is_stored_once() {
    let d = Daemon::start().await;
    let m = message("dup@klant.example", "jan@klant.example", "Hello", "", "hi");
    accepted(&d.send("jan@klant.example", &[SUPPORT], &m).await);
    accepted(&d.send("jan@klant.example", &[SUPPORT], &m).await);
    let no_id = b"From: jan@klant.example\r\nTo: support@demo.hs-inbox.com\r\nSubject: no id\r\n\r\nsame bytes\r\n";
    accepted(&d.send("jan@klant.example", &[SUPPORT], no_id).await);
    accepted(&d.send("jan@klant.example", &[SUPPORT], no_id).await);
    let list = d.list(&[]);
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|c| c["message_count"] == 1), "{list:?}");
    d.stop().await;
}

#[tokio::test]
async fn two_inboxes_each_get_the_message_and_one_inbox_gets_it_once() {
    let d = Daemon::start().await;
    let m = message(
        "both@klant.example",
        "jan@klant.example",
        "Quote and help",
        "",
        "hi",
    );
    let helpdesk = "HelpDesk+urgent@Demo.HS-Inbox.com";
    accepted(
        &d.send("jan@klant.example", &[SUPPORT, SALES, helpdesk], &m)
            .await,
    );
    let list = d.list(&[]);
    assert_eq!(list.len(), 2, "{list:?}");
    let mut inboxes: Vec<&str> = list.iter().map(|c| c["inbox"].as_str().unwrap()).collect();
    inboxes.sort();
    assert_eq!(inboxes, ["Sales", "Support"]);
    assert_eq!(d.list(&["--inbox", "Sales"]).len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn replies_join_by_in_reply_to_and_references() {
    let d = Daemon::start().await;
    let jan = "jan@klant.example";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("a1@k", jan, "Order 12", "", "first"),
        )
        .await,
    );
    let irt = "In-Reply-To: <a1@k>\r\nReferences: <a1@k>\r\n";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("a2@k", jan, "Re: Order 12", irt, "second"),
        )
        .await,
    );
    // References only, newest first: an unknown newest id falls back to a known older one.
    let refs = "References: <a1@k> <a2@k> <unknown@k>\r\n";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("a3@k", jan, "AW: Order 12", refs, "third"),
        )
        .await,
    );
    let list = d.list(&[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["message_count"], 3);
    d.stop().await;
}

#[tokio::test]
async fn strangers_and_changed_subjects_start_new_conversations() {
    let d = Daemon::start().await;
    let jan = "jan@klant.example";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("n1@k", jan, "Newsletter question", "", "q"),
        )
        .await,
    );
    let irt = "In-Reply-To: <n1@k>\r\n";
    let stranger = "someone@elsewhere.example";
    accepted(
        &d.send(
            stranger,
            &[SUPPORT],
            &message("n2@e", stranger, "Re: Newsletter question", irt, "me too"),
        )
        .await,
    );
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("n3@k", jan, "Password reset", irt, "new question"),
        )
        .await,
    );
    // A colleague at the contact's domain is not a stranger.
    let piet = "piet@klant.example";
    accepted(
        &d.send(
            piet,
            &[SUPPORT],
            &message("n4@k", piet, "RE: Newsletter question", irt, "+1"),
        )
        .await,
    );
    let list = d.list(&[]);
    assert_eq!(list.len(), 3, "{list:?}");
    let joined = list
        .iter()
        .find(|c| c["subject"] == "Newsletter question")
        .unwrap();
    assert_eq!(joined["contact"]["email"], jan);
    assert_eq!(
        joined["message_count"], 2,
        "the colleague's reply joins: {list:?}"
    );
    let stranger_conv = list
        .iter()
        .find(|c| c["contact"]["email"] == stranger)
        .unwrap();
    assert_eq!(stranger_conv["message_count"], 1);
    d.stop().await;
}

#[tokio::test]
async fn stripped_headers_fall_back_to_subject_contact_and_window() {
    let d = Daemon::start().await;
    let jan = "jan@klant.example";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("s1@k", jan, "Broken login", "", "q"),
        )
        .await,
    );
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("s2@k", jan, "RE: [Ticket] Broken  LOGIN", "", "still"),
        )
        .await,
    );
    // Another contact with the same subject never merges by subject.
    let eva = "eva@other.example";
    accepted(
        &d.send(
            eva,
            &[SUPPORT],
            &message("s3@o", eva, "Re: Broken login", "", "me"),
        )
        .await,
    );
    assert_eq!(d.list(&[]).len(), 2);
    // After 14 days of silence the subject rule no longer applies.
    d.clock.advance(15 * 24 * 3600);
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("s4@k", jan, "Re: Broken login", "", "again"),
        )
        .await,
    );
    let list = d.list(&[]);
    assert_eq!(list.len(), 3, "{list:?}");
    d.stop().await;
}

#[tokio::test]
async fn outlook_thread_index_joins_when_ids_are_unknown() {
    let d = Daemon::start().await;
    let jan = "jan@klant.example";
    let root = "Thread-Index: AdlDAAECAwQFBgcICQoLDA0ODxAREg==\r\n";
    accepted(
        &d.send(jan, &[SUPPORT], &message("t1@k", jan, "Invoice", root, "q"))
            .await,
    );
    let reply = "In-Reply-To: <lost@k>\r\nThread-Index: AdlDAAECAwQFBgcICQoLDA0ODxAREgAAABAg\r\n";
    accepted(
        &d.send(
            jan,
            &[SUPPORT],
            &message("t2@k", jan, "AW: Invoice", reply, "a"),
        )
        .await,
    );
    let list = d.list(&[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["message_count"], 2);
    d.stop().await;
}

#[tokio::test]
async fn the_cli_rejects_unknown_views_and_inboxes_by_name() {
    let d = Daemon::start().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args(["conversations", "list", "--view", "everything"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--view"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args(["conversations", "list", "--inbox", "Nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--inbox"));
    d.stop().await;
}
