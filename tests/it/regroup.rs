//! Split and merge (SPEC G3) against the real daemon: the CLI and the API act, the
//! customer's next reply arrives over SMTP, and threading must follow the move (a
//! reply to a split message joins the split conversation; a reply to a merged
//! conversation's message joins the one it went into). Plus the access rules.

use serde_json::{json, Value};

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";

/// A mail from Jan to `to`; `reply_to` become its In-Reply-To (the last) and References.
fn mail(id: &str, reply_to: &[&str], to: &str, subject: &str, text: &str) -> Vec<u8> {
    let mut headers = format!("Message-ID: <{id}>\r\nFrom: Jan Klant <jan@klant.example>\r\n");
    if let Some(parent) = reply_to.last() {
        let refs: Vec<String> = reply_to.iter().map(|r| format!("<{r}>")).collect();
        headers.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: {}\r\n",
            refs.join(" ")
        ));
    }
    format!("{headers}To: {to}\r\nSubject: {subject}\r\n\r\n{text}\r\n").into_bytes()
}

async fn jan_writes(d: &Daemon, message: &[u8], to: &str) {
    let reply = d.send("jan@klant.example", &[to], message).await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// The id of the message with this Message-ID in conversation `id`.
fn message_row(d: &Daemon, id: i64, message_id: &str) -> i64 {
    let shown = d.show(id);
    shown["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["message_id"] == message_id)
        .and_then(|m| m["id"].as_i64())
        .unwrap_or_else(|| panic!("no {message_id} in {shown:#}"))
}

fn message_ids(conversation: &Value) -> Vec<&str> {
    conversation["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect()
}

fn timeline(conversation: &Value) -> Vec<(String, String)> {
    conversation["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| {
            (
                t["action"].as_str().unwrap_or_default().to_string(),
                t["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn after_a_split_by_cli_a_reply_to_the_split_message_lands_in_the_split_conversation() {
    let d = Daemon::start().await;
    jan_writes(
        &d,
        &mail("a@klant.example", &[], SUPPORT, "Order 12", "Where is it?"),
        SUPPORT,
    )
    .await;
    let old = conversation_with_subject(&d.list(&[]), "Order 12");
    // A second question, wrongly threaded onto the first (it answers our old reply).
    let second = mail(
        "b@klant.example",
        &["a@klant.example"],
        SUPPORT,
        "Re: Order 12",
        "Also: my invoice is wrong",
    );
    jan_writes(&d, &second, SUPPORT).await;
    assert_eq!(d.show(old)["message_count"], 2);
    let row = message_row(&d, old, "b@klant.example");

    let out = d.cli(&[
        "conversations",
        "split",
        &old.to_string(),
        "--message",
        &row.to_string(),
        "--as",
        "alice@demo.example",
        "--json",
    ]);
    let split: Value = serde_json::from_str(&out).expect("split prints the new conversation");
    let new = split["id"].as_i64().expect("id");
    assert_ne!(new, old);
    assert_eq!(split["message_count"], 1);
    assert_eq!(split["inbox"], "Support");
    assert_eq!(split["contact"]["email"], "jan@klant.example");

    // Jan answers the split message; his References carry the old thread too.
    let answer = mail(
        "c@klant.example",
        &["a@klant.example", "b@klant.example"],
        SUPPORT,
        "Re: Order 12",
        "Invoice number 7",
    );
    jan_writes(&d, &answer, SUPPORT).await;
    let split = d.show(new);
    assert_eq!(message_ids(&split), ["b@klant.example", "c@klant.example"]);
    let source = d.show(old);
    assert_eq!(message_ids(&source), ["a@klant.example"]);
    assert_eq!(timeline(&source), [("split".into(), format!("to #{new}"))]);
    assert_eq!(timeline(&split), [("split".into(), format!("from #{old}"))]);
    // Search names the conversation the message is in now.
    let found = d.list(&["--search", "invoice"]);
    let ids: Vec<i64> = found.iter().filter_map(|c| c["id"].as_i64()).collect();
    assert_eq!(ids, [new]);
}

#[tokio::test]
async fn after_a_merge_by_api_a_reply_to_the_merged_conversation_lands_in_the_target() {
    let d = Daemon::start().await;
    jan_writes(
        &d,
        &mail("a@klant.example", &[], SUPPORT, "Order 12", "Where is it?"),
        SUPPORT,
    )
    .await;
    jan_writes(
        &d,
        &mail(
            "b@klant.example",
            &[],
            SUPPORT,
            "Kettle order",
            "Same order, other words",
        ),
        SUPPORT,
    )
    .await;
    let list = d.list(&[]);
    let (target, merged) = (
        conversation_with_subject(&list, "Order 12"),
        conversation_with_subject(&list, "Kettle order"),
    );
    let api = d.api();
    let alice = d.token("alice@demo.example");
    let (status, _) = api
        .post(
            &format!("/api/v1/conversations/{merged}/comment"),
            &alice,
            json!({ "text": "same customer" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post(
            &format!("/api/v1/conversations/{merged}/merge"),
            &alice,
            json!({ "into": target }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], target);
    assert_eq!(body["message_count"], 2);
    let (status, body) = api
        .get(&format!("/api/v1/conversations/{merged}"), &alice)
        .await;
    assert_eq!(status, 404, "the merged conversation is gone: {body}");

    jan_writes(
        &d,
        &mail(
            "c@klant.example",
            &["b@klant.example"],
            SUPPORT,
            "Re: Kettle order",
            "Any news?",
        ),
        SUPPORT,
    )
    .await;
    let shown = d.show(target);
    assert_eq!(
        message_ids(&shown),
        ["a@klant.example", "b@klant.example", "c@klant.example"]
    );
    let entries = timeline(&shown);
    assert!(
        entries.contains(&("comment".into(), "same customer".into())),
        "{entries:?}"
    );
    assert!(
        entries.contains(&("merge".into(), format!("from #{merged}"))),
        "{entries:?}"
    );
    assert_eq!(d.list(&[]).len(), 1, "one conversation left");
}

#[tokio::test]
async fn a_merge_across_inboxes_takes_replies_at_either_address() {
    let d = Daemon::start().await;
    jan_writes(
        &d,
        &mail(
            "s1@klant.example",
            &[],
            SALES,
            "Price quote",
            "Price for 10?",
        ),
        SALES,
    )
    .await;
    jan_writes(
        &d,
        &mail(
            "h1@klant.example",
            &[],
            SUPPORT,
            "Follow-up",
            "See my mail to sales",
        ),
        SUPPORT,
    )
    .await;
    let list = d.list(&[]);
    let (sales, support) = (
        conversation_with_subject(&list, "Price quote"),
        conversation_with_subject(&list, "Follow-up"),
    );
    // Bob is a member of both inboxes.
    d.cli(&[
        "conversations",
        "merge",
        &sales.to_string(),
        "--into",
        &support.to_string(),
        "--as",
        "bob@demo.example",
    ]);
    jan_writes(
        &d,
        &mail(
            "s2@klant.example",
            &["s1@klant.example"],
            SALES,
            "Re: Price quote",
            "Still there?",
        ),
        SALES,
    )
    .await;
    jan_writes(
        &d,
        &mail(
            "s3@klant.example",
            &["s1@klant.example"],
            SUPPORT,
            "Re: Price quote",
            "Hello?",
        ),
        SUPPORT,
    )
    .await;
    let shown = d.show(support);
    assert_eq!(
        message_ids(&shown),
        [
            "s1@klant.example",
            "h1@klant.example",
            "s2@klant.example",
            "s3@klant.example"
        ]
    );
    assert_eq!(d.list(&[]).len(), 1);
}

#[tokio::test]
async fn split_and_merge_are_404_where_the_agent_may_not_see_and_403_where_they_only_view() {
    let d = Daemon::start().await;
    jan_writes(
        &d,
        &mail("s1@klant.example", &[], SALES, "Quote", "Price?"),
        SALES,
    )
    .await;
    jan_writes(
        &d,
        &mail(
            "s2@klant.example",
            &["s1@klant.example"],
            SALES,
            "Re: Quote",
            "And delivery?",
        ),
        SALES,
    )
    .await;
    jan_writes(
        &d,
        &mail("h1@klant.example", &[], SUPPORT, "Broken", "Help"),
        SUPPORT,
    )
    .await;
    let list = d.list(&[]);
    let (sales, support) = (
        conversation_with_subject(&list, "Quote"),
        conversation_with_subject(&list, "Broken"),
    );
    let row = message_row(&d, sales, "s2@klant.example").to_string();
    let (sales_id, support_id) = (sales.to_string(), support.to_string());
    let refused = |args: &[&str], code: &str| {
        let out = d.cli_output(args);
        assert!(!out.status.success(), "{args:?} was allowed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(code), "{args:?}: {stderr}");
    };
    // Alice is not in Sales: she cannot see it.
    refused(
        &[
            "conversations",
            "split",
            &sales_id,
            "--message",
            &row,
            "--as",
            "alice@demo.example",
        ],
        "(not_found)",
    );
    refused(
        &[
            "conversations",
            "merge",
            &support_id,
            "--into",
            &sales_id,
            "--as",
            "alice@demo.example",
        ],
        "(not_found)",
    );
    // The super admin views Sales but may not act there.
    refused(
        &[
            "conversations",
            "split",
            &sales_id,
            "--message",
            &row,
            "--as",
            "root@demo.example",
        ],
        "(forbidden)",
    );
    let api = d.api();
    let root = d.token("root@demo.example");
    let (status, body) = api
        .post(
            &format!("/api/v1/conversations/{sales}/split"),
            &root,
            json!({ "message": row.parse::<i64>().unwrap() }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let alice = d.token("alice@demo.example");
    let (status, body) = api
        .post(
            &format!("/api/v1/conversations/{support}/merge"),
            &alice,
            json!({ "into": sales }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    // A message of another conversation, and a body without its key, are refused.
    let bob = d.token("bob@demo.example");
    let (status, body) = api
        .post(
            &format!("/api/v1/conversations/{support}/split"),
            &bob,
            json!({ "message": row.parse::<i64>().unwrap() }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (status, body) = api
        .post(
            &format!("/api/v1/conversations/{support}/merge"),
            &bob,
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Nothing moved.
    assert_eq!(d.show(sales)["message_count"], 2);
    assert_eq!(d.show(support)["message_count"], 1);
}
