//! Real client shapes from `fixtures/` over SMTP: a whole Gmail/Outlook/Apple thread
//! with its guards, charsets, attachments (B9), large bodies (B8), HTML-only mail,
//! mail without a Message-ID, and reopen of a closed conversation (B11).

use serde_json::Value;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";

async fn deliver(d: &Daemon, name: &str) {
    let reply = d
        .send("sender@client.example", &[SUPPORT], &fixture(name))
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{name}: {reply}");
}

fn by_subject<'a>(list: &'a [Value], subject: &str) -> &'a Value {
    list.iter()
        .find(|c| c["subject"] == subject)
        .unwrap_or_else(|| panic!("no conversation {subject:?} in {list:#?}"))
}

#[tokio::test]
async fn a_thread_from_three_clients_stays_one_conversation_and_guards_hold() {
    let d = Daemon::start().await;
    deliver(&d, "gmail-new.eml").await;
    for name in ["outlook-reply.eml", "apple-reply.eml", "gmail-reply.eml"] {
        d.clock.advance(3600);
        deliver(&d, name).await;
    }
    d.clock.advance(3 * 24 * 3600);
    deliver(&d, "stripped-reply.eml").await;
    deliver(&d, "stranger-reply.eml").await;
    deliver(&d, "reused-thread.eml").await;
    let list = d.list(&[]);
    assert_eq!(list.len(), 3, "{list:#?}");
    let thread = by_subject(&list, "Bestelling 10482 nog niet ontvangen");
    assert_eq!(thread["message_count"], 5);
    assert_eq!(thread["contact"]["email"], "jan.devries@klant.example");
    assert_eq!(thread["contact"]["name"], "Jan de Vries");
    let stranger = by_subject(&list, "Re: Bestelling 10482 nog niet ontvangen");
    assert_eq!(
        stranger["contact"]["email"],
        "m.jansen@andere-partij.example"
    );
    assert_eq!(
        by_subject(&list, "Adreswijziging facturen per 1 april")["message_count"],
        1
    );
    let shown = d.show(thread["id"].as_i64().unwrap());
    let senders: Vec<&str> = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["from"].as_str().unwrap())
        .collect();
    assert!(
        senders.contains(&"katrin.mueller@klant.example"),
        "{senders:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn charsets_and_encoded_words_are_decoded() {
    let d = Daemon::start().await;
    for name in ["iso-8859-1.eml", "windows-1252.eml", "encoded-words.eml"] {
        deliver(&d, name).await;
    }
    let list = d.list(&[]);
    let german = list
        .iter()
        .find(|c| c["contact"]["email"] == "j.weiss@kunde.example")
        .unwrap();
    assert_eq!(german["subject"], "Rücksendung Bestellung 10533 - Café-Set");
    assert_eq!(german["contact"]["name"], "Jürgen Weiß");
    let text = d.show(german["id"].as_i64().unwrap())["messages"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains('é') || text.contains('ü') || text.contains('ß'),
        "{text}"
    );
    let dutch = list
        .iter()
        .find(|c| c["contact"]["email"] == "renee.bakker@provider.example")
        .unwrap();
    let text = d.show(dutch["id"].as_i64().unwrap())["messages"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains('€') && text.contains('“') && text.contains('”'),
        "{text}"
    );
    let swedish = list
        .iter()
        .find(|c| c["contact"]["email"] == "asa.lindstrom@kund.example")
        .unwrap();
    assert_eq!(swedish["contact"]["name"], "Åsa Lindström");
    assert!(
        swedish["subject"]
            .as_str()
            .unwrap()
            .starts_with("Fråga om återbetalning"),
        "{}",
        swedish["subject"]
    );
    d.stop().await;
}

#[tokio::test]
async fn attachments_are_listed_with_name_type_and_size() {
    let d = Daemon::start().await;
    deliver(&d, "attachment.eml").await;
    let id = d.list(&[])[0]["id"].as_i64().unwrap();
    let message = &d.show(id)["messages"][0];
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    assert_eq!(attachments[0]["filename"], "factuur-mrz-€.pdf");
    assert_eq!(attachments[0]["content_type"], "application/pdf");
    assert_eq!(attachments[0]["size"], 612);
    assert_eq!(attachments[1]["filename"], "foutmelding-portaal.png");
    assert_eq!(attachments[1]["content_type"], "image/png");
    assert_eq!(attachments[1]["size"], 70);
    d.stop().await;
}

#[tokio::test]
async fn large_bodies_are_truncated_in_show_and_whole_on_request() {
    let d = Daemon::start().await;
    deliver(&d, "large-body.eml").await;
    let id = d.list(&[])[0]["id"].as_i64().unwrap();
    let message = &d.show(id)["messages"][0];
    assert_eq!(message["truncated"], true);
    let shown = message["text"].as_str().unwrap().len();
    assert!(shown <= 100 * 1024 && shown > 90 * 1024, "{shown}");
    let full: Value = serde_json::from_str(&d.cli(&[
        "conversations",
        "show",
        &id.to_string(),
        "--json",
        "--full",
    ]))
    .unwrap();
    let full_text = full["messages"][0]["text"].as_str().unwrap();
    assert_eq!(full["messages"][0]["truncated"], false);
    assert!(full_text.len() > 150 * 1024, "{}", full_text.len());
    let raw = d.cli(&["messages", "raw", &message["id"].to_string()]);
    assert!(
        raw.starts_with("Received: from client.test"),
        "{}",
        &raw[..200]
    );
    assert!(raw.len() > 150 * 1024);
    d.stop().await;
}

#[tokio::test]
async fn html_only_and_id_less_mail_is_stored_readably() {
    let d = Daemon::start().await;
    deliver(&d, "html-only.eml").await;
    deliver(&d, "no-message-id.eml").await;
    let list = d.list(&[]);
    assert_eq!(list.len(), 2);
    let html = by_subject(&list, "Retourverzoek bestelling 10482");
    let text = d.show(html["id"].as_i64().unwrap())["messages"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("retourlabel"), "{text}");
    assert!(
        !text.contains("<table") && !text.contains("font-family"),
        "{text}"
    );
    let plain = by_subject(&list, "Vraag over levertijd bureaustoelen");
    assert_eq!(
        d.show(plain["id"].as_i64().unwrap())["messages"][0]["message_id"],
        Value::Null
    );
    d.stop().await;
}

#[tokio::test]
async fn a_reply_reopens_a_closed_conversation() {
    let d = Daemon::start().await;
    deliver(&d, "gmail-new.eml").await;
    let id = d.list(&[])[0]["id"].as_i64().unwrap();
    d.cli(&[
        "conversations",
        "close",
        &id.to_string(),
        "--as",
        "alice@demo.example",
    ]);
    assert_eq!(d.list(&["--view", "closed"]).len(), 1);
    assert_eq!(d.list(&["--view", "all_open"]).len(), 0);
    deliver(&d, "apple-reply.eml").await;
    let list = d.list(&["--view", "all_open"]);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["status"], "open");
    assert_eq!(list[0]["message_count"], 2);
    assert_eq!(d.list(&["--view", "closed"]).len(), 0);
    d.stop().await;
}
