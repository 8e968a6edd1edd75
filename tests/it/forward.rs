//! Forwarded mail through real SMTP (SPEC B6, B7): each client's forward is logged to
//! the original sender with the original CC, unless the channel turns that off.

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const FORWARDER: &str = "jan.devries@klant.example";

/// Sends a fixture; returns the conversation it opened.
async fn forward(d: &Daemon, fixture_name: &str) -> serde_json::Value {
    let raw = wire_format(&fixture(fixture_name));
    let reply = d.send(FORWARDER, &[SUPPORT], &raw).await;
    assert!(reply.starts_with("250"), "{fixture_name}: {reply}");
    let list = d.list(&[]);
    d.show(list[0]["id"].as_i64().expect("id"))
}

fn addresses(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("address").to_string())
        .collect()
}

#[tokio::test]
async fn each_client_forward_is_logged_to_the_original_sender_with_the_original_cc() {
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        (
            "forwarded.eml",
            "orig@customer.example",
            "Original Sender",
            &["lotte.visser@customer.example"],
        ),
        (
            "forward/outlook.eml",
            "olivia@customer.example",
            "Olivia Customer",
            &["lotte.visser@customer.example", "piet@customer.example"],
        ),
        (
            "forward/apple.eml",
            "oscar@customer.example",
            "Oscar Original",
            &["finance@customer.example"],
        ),
        (
            "forward/thunderbird-sv.eml",
            "sven@kund.example",
            "Sven Svensson",
            &["karin@kund.example"],
        ),
        (
            "forward/outlook-nl.eml",
            "eva@klant-bv.example",
            "Eva Klant",
            &["bram@klant-bv.example"],
        ),
        (
            "forward/gmail-de.eml",
            "greta@kunde.example",
            "Greta Gruber",
            &[],
        ),
    ];
    for (fixture_name, address, name, cc) in cases {
        let d = Daemon::start().await;
        let c = forward(&d, fixture_name).await;
        assert_eq!(c["contact"]["email"], address, "{fixture_name}");
        assert_eq!(c["contact"]["name"], name, "{fixture_name}");
        let message = &c["messages"][0];
        // The message is still the forwarder's; the CC is the original one (B7), not
        // the colleague the forwarder added.
        assert_eq!(message["from"], FORWARDER, "{fixture_name}");
        assert_eq!(addresses(&message["cc"]), cc, "{fixture_name}");
        assert!(
            addresses(&c["classification"]["reasons"]).contains(&format!("forwarded:{address}")),
            "{fixture_name}: {}",
            c["classification"]
        );
        d.stop().await;
    }
}

#[tokio::test]
async fn the_original_sender_writing_directly_later_is_the_same_contact() {
    let d = Daemon::start().await;
    let c = forward(&d, "forward/outlook.eml").await;
    let direct = format!(
        "Message-ID: <later@customer.example>\r\nFrom: Olivia Customer <olivia@customer.example>\r\n\
         To: {SUPPORT}\r\nSubject: Damaged chairs\r\n\r\nAny news?\r\n"
    );
    d.send("olivia@customer.example", &[SUPPORT], direct.as_bytes())
        .await;
    let list = d.list(&[]);
    assert_eq!(
        list.len(),
        1,
        "the direct mail joins the forwarded conversation"
    );
    assert_eq!(d.show(c["id"].as_i64().expect("id"))["message_count"], 2);
    d.stop().await;
}

#[tokio::test]
async fn with_the_setting_off_the_forwarder_is_the_contact() {
    let d = Daemon::start_edited(|text, _| {
        text.replacen(
            "from_name = { mode = \"agent_and_company\", company = \"Demo Support\" }",
            "from_name = { mode = \"agent_and_company\", company = \"Demo Support\" }\n  log_forwarded_to_original_sender = false",
            1,
        )
    })
    .await;
    let c = forward(&d, "forward/outlook.eml").await;
    assert_eq!(c["contact"]["email"], FORWARDER);
    assert_eq!(addresses(&c["messages"][0]["cc"]), ["mia@klant.example"]);
    d.stop().await;
}

#[tokio::test]
async fn a_quoted_block_without_a_forward_subject_changes_nothing() {
    let d = Daemon::start().await;
    let raw = format!(
        "Message-ID: <q@klant.example>\r\nFrom: {FORWARDER}\r\nTo: {SUPPORT}\r\nSubject: Question\r\n\r\n\
         See below\r\n\r\nFrom: Olivia <olivia@customer.example>\r\nSent: Monday\r\n\r\nhi\r\n"
    );
    d.send(FORWARDER, &[SUPPORT], raw.as_bytes()).await;
    assert_eq!(d.list(&[])[0]["contact"]["email"], FORWARDER);
    d.stop().await;
}
