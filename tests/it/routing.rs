//! Auto-assignment and tickets through real SMTP (SPEC D1–D5, F7): round-robin that
//! survives a restart, least-open, paid seats, availability, teams, contact owners,
//! only the first message routed, automatic mail never routed, tickets with their
//! owner, closing and deleting them, and removed users at reload.

use serde_json::Value;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SUPPORT_FROM_NAME: &str =
    "from_name = { mode = \"agent_and_company\", company = \"Demo Support\" }";
const MORE_USERS: &str = r#"
[[users]]
email = "carol@demo.example"
name = "Carol Berg"

[[users]]
email = "dave@demo.example"
name = "Dave Free"
paid_seat = false

[[teams]]
name = "frontline"
members = ["bob@demo.example", "carol@demo.example"]
"#;

/// The test config with more users and the Support channel's `settings` lines.
fn config_with(text: String, settings: &str) -> String {
    let text = text.replacen(
        SUPPORT_FROM_NAME,
        &format!("{SUPPORT_FROM_NAME}\n  {settings}"),
        1,
    );
    text.replacen("[[inboxes]]", &format!("{MORE_USERS}\n[[inboxes]]"), 1)
}

async fn start(settings: &str) -> Daemon {
    let settings = settings.to_string();
    Daemon::start_edited(move |text, _| config_with(text, &settings)).await
}

fn message(n: usize, from: &str, extra: &str) -> Vec<u8> {
    format!(
        "Message-ID: <r{n}@klant.example>\r\nFrom: {from}\r\nTo: {SUPPORT}\r\n\
         Subject: Question {n}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n{extra}\r\nHello\r\n"
    )
    .into_bytes()
}

/// Sends question `n` from `from`; returns its conversation.
async fn ask(d: &Daemon, n: usize, from: &str) -> Value {
    let reply = d.send(from, &[SUPPORT], &message(n, from, "")).await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = conversation_with_subject(&d.list(&[]), &format!("Question {n}"));
    d.show(id)
}

async fn assignees(d: &Daemon, range: std::ops::Range<usize>) -> Vec<Value> {
    let mut list = Vec::new();
    for n in range {
        list.push(ask(d, n, &format!("c{n}@klant.example")).await["assignee"].clone());
    }
    list
}

const ROUND_ROBIN: &str = "routing = { auto_assign = true, assign_to = { users = [\"alice@demo.example\", \"dave@demo.example\"], teams = [\"frontline\"] } }";

#[tokio::test]
async fn round_robin_skips_unpaid_seats_and_continues_after_a_restart() {
    let d = start(ROUND_ROBIN).await;
    // dave has no paid seat; the team adds bob and carol.
    assert_eq!(
        assignees(&d, 0..4).await,
        [
            "alice@demo.example",
            "bob@demo.example",
            "carol@demo.example",
            "alice@demo.example"
        ]
    );
    let d = d.restart().await;
    assert_eq!(
        assignees(&d, 4..6).await,
        ["bob@demo.example", "carol@demo.example"]
    );
    let c = ask(&d, 6, "c6@klant.example").await;
    let timeline = c["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().any(|e| e["actor"] == "system"
            && e["action"] == "assign"
            && e["detail"] == "alice@demo.example (round_robin)"),
        "{timeline:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn away_users_are_skipped_unless_availability_is_ignored() {
    let d = start(ROUND_ROBIN).await;
    d.cli(&["users", "availability", "bob@demo.example", "away"]);
    let shown = d.cli(&["users", "availability", "bob@demo.example"]);
    assert!(shown.contains("\"available\": false"), "{shown}");
    assert_eq!(
        assignees(&d, 0..3).await,
        [
            "alice@demo.example",
            "carol@demo.example",
            "alice@demo.example"
        ]
    );
    d.cli(&[
        "users",
        "availability",
        "away",
        "--as",
        "alice@demo.example",
    ]);
    d.cli(&["users", "availability", "carol@demo.example", "away"]);
    // Nobody eligible: unassigned.
    assert_eq!(assignees(&d, 3..4).await, [Value::Null]);
    d.stop().await;

    let d = start(&ROUND_ROBIN.replace("] } }", "] }, only_available = false }")).await;
    d.cli(&["users", "availability", "bob@demo.example", "away"]);
    assert_eq!(
        assignees(&d, 0..2).await,
        ["alice@demo.example", "bob@demo.example"]
    );
    d.stop().await;
}

#[tokio::test]
async fn least_open_goes_to_the_one_with_fewest_open_conversations() {
    let d = start("routing = { auto_assign = true, assign_to = { users = [\"alice@demo.example\", \"bob@demo.example\"] }, strategy = \"least_open\" }").await;
    // Both start at zero: config order decides, then the counts do.
    assert_eq!(
        assignees(&d, 0..3).await,
        [
            "alice@demo.example",
            "bob@demo.example",
            "alice@demo.example"
        ]
    );
    // Close two of alice's: she now has the fewest open.
    for c in d.list(&["--view", "assigned_to_me", "--as", "alice@demo.example"]) {
        let id = c["id"].to_string();
        d.cli(&["conversations", "close", &id, "--as", "alice@demo.example"]);
    }
    assert_eq!(
        assignees(&d, 3..5).await,
        ["alice@demo.example", "alice@demo.example"]
    );
    d.stop().await;
}

#[tokio::test]
async fn contact_owner_gets_the_conversation_when_eligible() {
    let d = start("routing = { auto_assign = true, assign_to = \"contact_owner\" }").await;
    d.cli(&["contacts", "owner", "vip@klant.example", "bob@demo.example"]);
    d.cli(&[
        "contacts",
        "owner",
        "free@klant.example",
        "dave@demo.example",
    ]);
    let refused = d.cli_output(&[
        "contacts",
        "owner",
        "x@klant.example",
        "nobody@demo.example",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nobody@demo.example"));
    assert_eq!(
        ask(&d, 1, "vip@klant.example").await["assignee"],
        "bob@demo.example"
    );
    // dave has no paid seat; a contact without owner stays unassigned.
    assert_eq!(
        ask(&d, 2, "free@klant.example").await["assignee"],
        Value::Null
    );
    assert_eq!(
        ask(&d, 3, "new@klant.example").await["assignee"],
        Value::Null
    );
    let contact: Value =
        serde_json::from_str(&d.cli(&["contacts", "show", "vip@klant.example"])).expect("json");
    assert_eq!(contact["owner"], "bob@demo.example");
    d.stop().await;
}

#[tokio::test]
async fn only_the_first_message_is_routed_and_automatic_mail_never() {
    let d = start(ROUND_ROBIN).await;
    let first = ask(&d, 1, "jan@klant.example").await;
    assert_eq!(first["assignee"], "alice@demo.example");
    // The reply joins and keeps its assignee; the next new one goes to bob.
    let reply = format!(
        "Message-ID: <r1b@klant.example>\r\nIn-Reply-To: <r1@klant.example>\r\nFrom: jan@klant.example\r\n\
         To: {SUPPORT}\r\nSubject: Re: Question 1\r\n\r\nMore\r\n"
    );
    d.send("jan@klant.example", &[SUPPORT], reply.as_bytes())
        .await;
    let first = d.show(first["id"].as_i64().expect("id"));
    assert_eq!(first["message_count"], 2);
    assert_eq!(first["assignee"], "alice@demo.example");
    // An out-of-office, a role sender and list mail: stored, not routed.
    for (n, from, extra) in [
        (2, "piet@klant.example", "Auto-Submitted: auto-replied\r\n"),
        (3, "noreply@shop.example", ""),
        (4, "list@lists.example", "List-Id: <l.lists.example>\r\n"),
    ] {
        d.send(from, &[SUPPORT], &message(n, from, extra)).await;
    }
    let all = d.list(&["--view", "all_open"]);
    for n in [2, 4] {
        let c = d.show(conversation_with_subject(&all, &format!("Question {n}")));
        assert_eq!(c["assignee"], Value::Null, "question {n}");
    }
    let spam = d.list(&["--view", "spam"]);
    assert_eq!(spam.len(), 1);
    assert_eq!(spam[0]["assignee"], Value::Null);
    assert_eq!(
        ask(&d, 5, "kees@klant.example").await["assignee"],
        "bob@demo.example"
    );
    d.stop().await;
}

#[tokio::test]
async fn tickets_are_created_closed_and_deleted_with_their_conversation() {
    let d = start(&format!(
        "{ROUND_ROBIN}\n  tickets = {{ auto_create = true, pipeline = \"Support\", stage = \"New\" }}"
    ))
    .await;
    let c = ask(&d, 1, "jan@klant.example").await;
    let ticket = &c["ticket"];
    assert_eq!(ticket["pipeline"], "Support");
    assert_eq!(ticket["stage"], "New");
    assert_eq!(ticket["owner"], "alice@demo.example");
    assert_eq!(ticket["status"], "open");
    // No ticket for automatic mail.
    let ooo = message(2, "piet@klant.example", "Auto-Submitted: auto-replied\r\n");
    d.send("piet@klant.example", &[SUPPORT], &ooo).await;
    let ooo = d.show(conversation_with_subject(&d.list(&[]), "Question 2"));
    assert_eq!(ooo["ticket"], Value::Null);
    // The contact lists it; close --with-ticket closes it.
    let contact: Value =
        serde_json::from_str(&d.cli(&["contacts", "show", "jan@klant.example"])).expect("json");
    assert_eq!(contact["tickets"][0]["id"], ticket["id"]);
    let id = c["id"].to_string();
    d.cli(&[
        "conversations",
        "close",
        &id,
        "--with-ticket",
        "--as",
        "alice@demo.example",
    ]);
    assert_eq!(
        d.show(c["id"].as_i64().expect("id"))["ticket"]["status"],
        "closed"
    );
    // Delete forever takes the ticket with it.
    d.cli(&["conversations", "trash", &id, "--as", "alice@demo.example"]);
    d.cli(&["conversations", "delete", &id, "--as", "alice@demo.example"]);
    let contact: Value =
        serde_json::from_str(&d.cli(&["contacts", "show", "jan@klant.example"])).expect("json");
    assert_eq!(contact["tickets"], serde_json::json!([]));
    d.stop().await;
}

#[tokio::test]
async fn a_configured_ticket_owner_owns_every_ticket() {
    let d = start("tickets = { auto_create = true, pipeline = \"Sales\", stage = \"Lead\", owner = \"carol@demo.example\" }").await;
    let c = ask(&d, 1, "jan@klant.example").await;
    assert_eq!(c["assignee"], Value::Null);
    assert_eq!(c["ticket"]["owner"], "carol@demo.example");
    assert_eq!(c["ticket"]["stage"], "Lead");
    d.stop().await;
}

#[tokio::test]
async fn removed_users_lose_their_conversations_and_contacts_at_reload() {
    let d = start(ROUND_ROBIN).await;
    d.cli(&[
        "contacts",
        "owner",
        "vip@klant.example",
        "carol@demo.example",
    ]);
    assert_eq!(
        assignees(&d, 0..3).await,
        [
            "alice@demo.example",
            "bob@demo.example",
            "carol@demo.example"
        ]
    );
    // carol leaves: the team and the users list no longer name her.
    let text = d
        .config_text()
        .replace(
            "[[users]]\nemail = \"carol@demo.example\"\nname = \"Carol Berg\"\n",
            "",
        )
        .replace(", \"carol@demo.example\"]", "]");
    d.reload(&text);
    let mut unassigned = false;
    for _ in 0..100 {
        let c = d.show(conversation_with_subject(&d.list(&[]), "Question 2"));
        if c["assignee"].is_null() {
            unassigned = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(unassigned, "carol's conversation is still assigned");
    let contact: Value =
        serde_json::from_str(&d.cli(&["contacts", "show", "vip@klant.example"])).expect("json");
    assert_eq!(contact["owner"], Value::Null);
    // Routing now skips her.
    assert_eq!(
        assignees(&d, 3..5).await,
        ["alice@demo.example", "bob@demo.example"]
    );
    d.stop().await;
}

/// Issue 12, finding 5: mail from the null reverse path (`MAIL FROM:<>`) comes from a
/// mail system, never from a person, whatever the classifier makes of its text: it is
/// stored but neither auto-assigned nor given a ticket.
#[tokio::test]
async fn null_sender_is_never_auto_assigned() {
    let d = start(&format!(
        "{ROUND_ROBIN}\n  tickets = {{ auto_create = true, pipeline = \"Support\", stage = \"New\" }}"
    ))
    .await;
    // No bounce subject, no daemon sender, no report part: only the envelope says it.
    let notice = message(1, "notices@mx.klant.example", "");
    let reply = d.send("", &[SUPPORT], &notice).await;
    assert!(reply.starts_with("250"), "{reply}");
    let open = d.list(&["--view", "all_open"]);
    let c = d.show(conversation_with_subject(&open, "Question 1"));
    assert_eq!(c["assignee"], Value::Null, "{c}");
    assert_eq!(c["ticket"], Value::Null, "{c}");
    // The same text from a person is routed and gets its ticket.
    let person = ask(&d, 2, "jan@klant.example").await;
    assert_eq!(person["assignee"], "alice@demo.example");
    assert_eq!(person["ticket"]["stage"], "New");
    d.stop().await;
}
