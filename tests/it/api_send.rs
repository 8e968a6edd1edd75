//! Sending over the HTTP API (SPEC E1, E2, E9, A4, A5): reply, compose and forward
//! with a bearer token, delivered by the daemon's queue worker to a real SMTP receiver
//! (`outbound::Sink`), the customer's answer threading back, and the access and
//! channel checks refusing before anything is queued.

use std::time::Duration;

use serde_json::{json, Value};

use crate::outbound::Sink;
use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";
const OLD_SALES: &str = "old-sales@demo.hs-inbox.com"; // a Sales channel, switched off
const BOB: &str = "bob@demo.example"; // member of Sales and Support
const ALICE: &str = "alice@demo.example"; // member of Support only
const ROOT: &str = "root@demo.example"; // super admin, member of Support only
const JAN: &str = "jan@klant.example";

async fn daemon_relaying_to(sink: &Sink) -> Daemon {
    let relay = sink.relay_config();
    Daemon::start_edited(move |text, _| text + &relay).await
}

fn inbound(id: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: Jan <{JAN}>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello there\r\n"
    )
    .into_bytes()
}

/// Delivers a customer's message over SMTP; returns its conversation's id.
async fn customer_writes(d: &Daemon, id: &str, to: &str, subject: &str, extra: &str) -> i64 {
    let reply = d.send(JAN, &[to], &inbound(id, to, subject, extra)).await;
    assert!(reply.starts_with("250"), "{reply}");
    d.list(&[])
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .max()
        .expect("a conversation")
}

/// Polls the message over the API until its delivery reaches `status`.
async fn wait_delivery(api: &Api, token: &str, row: i64, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = api.ok(&format!("/api/v1/messages/{row}"), token).await;
        if last["delivery"]["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {row} never reached {status}: {last:#}");
}

#[tokio::test]
async fn a_reply_over_http_reaches_the_receiver_threaded_and_the_answer_threads_back() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let api = d.api();
    let bob = d.token(BOB);
    let id = customer_writes(&d, "q1@klant.example", SALES, "Offerte", "").await;

    let (status, sent) = api
        .post(
            &format!("/api/v1/conversations/{id}/reply"),
            &bob,
            json!({ "text": "Thanks, it ships today.", "cc": ["boss@klant.example"] }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["direction"], "out");
    assert_eq!(sent["conversation_id"], id);
    assert_eq!(sent["to"], json!([JAN]));
    assert_eq!(sent["subject"], "Re: Offerte");
    assert!(sent["delivery"]["status"].is_string(), "{sent:#}");
    let our_id = sent["message_id"].as_str().expect("message id").to_string();

    let got = sink.wait_for(1).await;
    let mail = &got[0];
    assert_eq!(mail.meta["mail_from"], SALES);
    assert_eq!(mail.meta["rcpt_tos"], json!([JAN, "boss@klant.example"]));
    assert_eq!(mail.header("Message-ID").unwrap(), format!("<{our_id}>"));
    assert_eq!(mail.header("In-Reply-To").unwrap(), "<q1@klant.example>");
    assert_eq!(mail.header("References").unwrap(), "<q1@klant.example>");
    assert_eq!(mail.header("Subject").unwrap(), "Re: Offerte");
    let text = mail.parsed().body_text(0).unwrap().into_owned();
    assert_eq!(text.trim(), "Thanks, it ships today.");
    let row = sent["id"].as_i64().unwrap();
    let delivered = wait_delivery(&api, &bob, row, "sent").await;
    assert_eq!(delivered["delivery"]["attempts"], 1);

    // Jan answers what we sent: it lands in the same conversation.
    let answer =
        format!("In-Reply-To: <{our_id}>\r\nReferences: <q1@klant.example> <{our_id}>\r\n");
    let again = customer_writes(&d, "a1@klant.example", SALES, "Re: Offerte", &answer).await;
    assert_eq!(again, id);
    let shown = api.ok(&format!("/api/v1/conversations/{id}"), &bob).await;
    assert_eq!(shown["message_count"], 3, "{shown:#}");
    let ids: Vec<&Value> = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["message_id"])
        .collect();
    assert_eq!(
        ids,
        [
            &json!("q1@klant.example"),
            &json!(our_id),
            &json!("a1@klant.example")
        ]
    );
    d.stop().await;
}

#[tokio::test]
async fn compose_over_http_lands_in_sent_and_is_delivered() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let api = d.api();
    let alice = d.token(ALICE);
    let (status, sent) = api
        .post(
            "/api/v1/compose",
            &alice,
            json!({ "to": [JAN], "from": SUPPORT, "subject": "Your quote", "text": "Here it is.", "html": "<p>Here it is.</p>" }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    let conversation = sent["conversation_id"].as_i64().unwrap();
    let in_sent = api.ok("/api/v1/conversations?view=sent", &alice).await;
    let listed: Vec<i64> = in_sent["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(listed, [conversation]);
    let open = api.ok("/api/v1/conversations?view=all_open", &alice).await;
    assert_eq!(open["conversations"], json!([]));

    let got = sink.wait_for(1).await;
    assert_eq!(got[0].meta["rcpt_tos"], json!([JAN]));
    assert_eq!(got[0].header("Subject").unwrap(), "Your quote");
    assert!(got[0].header("In-Reply-To").is_none());
    assert!(got[0].raw.contains("text/html"), "{}", got[0].raw);
    wait_delivery(&api, &alice, sent["id"].as_i64().unwrap(), "sent").await;
    d.stop().await;
}

#[tokio::test]
async fn sending_obeys_inbox_access_and_a_switched_off_channel_queues_nothing() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let api = d.api();
    let (bob, alice, root) = (d.token(BOB), d.token(ALICE), d.token(ROOT));
    let id = customer_writes(&d, "q2@klant.example", SALES, "Prijs", "").await;
    let reply_path = format!("/api/v1/conversations/{id}/reply");
    let forward_path = format!("/api/v1/conversations/{id}/forward");
    let reply = json!({ "text": "Hello" });
    let forward = json!({ "to": ["colleague@partner.example"], "note": "FYI" });
    let compose_from =
        |from: &str| json!({ "to": [JAN], "from": from, "subject": "s", "text": "t" });
    let refused = [
        // (token, path, body, status, code)
        (&alice, &reply_path, reply.clone(), 404, "not_found"),
        (&root, &reply_path, reply.clone(), 403, "forbidden"),
        (&alice, &forward_path, forward.clone(), 404, "not_found"),
        (&root, &forward_path, forward.clone(), 403, "forbidden"),
        (
            &alice,
            &"/api/v1/compose".to_string(),
            compose_from(SALES),
            404,
            "not_found",
        ),
        (
            &root,
            &"/api/v1/compose".to_string(),
            compose_from(SALES),
            403,
            "forbidden",
        ),
        (
            &bob,
            &reply_path,
            json!({ "text": "x", "from": OLD_SALES }),
            409,
            "conflict",
        ),
        (
            &bob,
            &"/api/v1/compose".to_string(),
            compose_from(OLD_SALES),
            409,
            "conflict",
        ),
        (
            &bob,
            &"/api/v1/compose".to_string(),
            compose_from("me@else.example"),
            409,
            "conflict",
        ),
        (
            &bob,
            &reply_path,
            json!({ "html": "<p>no text</p>" }),
            400,
            "invalid",
        ),
        (
            &bob,
            &reply_path,
            json!({ "text": "x", "to": ["not an address"] }),
            400,
            "invalid",
        ),
    ];
    for (token, path, body, status, code) in refused {
        let (got, error) = api.post(path, token, body.clone()).await;
        assert_eq!(
            (got, error["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {error}"
        );
        if status == 404 {
            assert!(
                !error.to_string().contains("Sales"),
                "no existence leak: {error}"
            );
        }
    }
    let (_, off) = api
        .post(&reply_path, &bob, json!({ "text": "x", "from": OLD_SALES }))
        .await;
    assert!(
        off["message"].as_str().unwrap().contains("switched off"),
        "{off}"
    );
    assert_eq!(d.cli(&["outbound", "list", "--json"]).trim(), "[]");
    let shown = api.ok(&format!("/api/v1/conversations/{id}"), &bob).await;
    assert_eq!(shown["message_count"], 1);
    assert!(
        api.ok("/api/v1/conversations?view=sent", &bob).await["conversations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    d.outbound_worker_pass().await;
    assert!(sink.messages().is_empty());

    // The member may: a reply and a forward both go out.
    assert_eq!(api.post(&reply_path, &bob, reply).await.0, 200);
    let (status, forwarded) = api.post(&forward_path, &bob, forward).await;
    assert_eq!(status, 200, "{forwarded}");
    assert_eq!(forwarded["to"], json!(["colleague@partner.example"]));
    let got = sink.wait_for(2).await;
    let forwarded_mail = got
        .iter()
        .find(|m| m.meta["rcpt_tos"] == json!(["colleague@partner.example"]))
        .expect("the forward arrived");
    let text = forwarded_mail.parsed().body_text(0).unwrap().into_owned();
    assert!(
        text.starts_with("FYI") && text.contains("Forwarded message"),
        "{text}"
    );
    d.stop().await;
}
