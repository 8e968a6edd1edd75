//! `GET /metrics` over real HTTP: mail accepted and refused over real SMTP, and a reply
//! delivered to a real receiver, move the Prometheus counters by exactly those amounts.

use std::collections::HashMap;
use std::time::Duration;

use crate::outbound::Sink;
use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";

/// Every sample of the exposition, by its full name with labels.
async fn scrape(d: &Daemon) -> HashMap<String, f64> {
    let response = reqwest::get(format!("http://{}/metrics", d.api_addr))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("sample line");
            (name.to_string(), value.parse().expect("sample value"))
        })
        .collect()
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    let value = |m: &HashMap<String, f64>| m.get(name).copied().unwrap_or(0.0);
    value(after) - value(before)
}

fn message(id: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: jan@klant.example\r\nTo: {SUPPORT}\r\nSubject: metrics {id}\r\n\r\nHello\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn smtp_counters_move_by_exactly_what_was_sent_and_refused() {
    let d = Daemon::start_with("max_message_size = 2000\nmax_recipients = 2").await;
    let before = scrape(&d).await;

    for n in 0..3 {
        let reply = d
            .send(
                "jan@klant.example",
                &[SUPPORT],
                &message(&format!("m{n}@klant.example")),
            )
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
    }
    let mut client = d.client().await;
    client.cmd("EHLO client.test").await;
    client.cmd("MAIL FROM:<jan@klant.example>").await;
    for (rcpt, expected) in [
        ("someone@elsewhere.example", "550 5.7.1"),
        ("nobody@demo.hs-inbox.com", "550 5.1.1"),
        ("old-sales@demo.hs-inbox.com", "550 5.2.1"),
        ("support@demo.hs-inbox.com", "250 "),
        ("sales@demo.hs-inbox.com", "250 "),
        ("helpdesk@demo.hs-inbox.com", "452 4.5.3"),
    ] {
        let reply = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(reply.starts_with(expected), "{rcpt}: {reply}");
    }
    client.cmd("RSET").await;
    let reply = client.cmd("MAIL FROM:<jan@klant.example> SIZE=5000").await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let big = [
        message("big@klant.example"),
        vec![b'x'; 3000],
        b"\r\n".to_vec(),
    ]
    .concat();
    let reply = client.mail("jan@klant.example", &[SUPPORT], &big).await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let during = scrape(&d).await;
    assert_eq!(during["inboxgate_smtp_sessions_active"], 1.0);
    client.quit().await;

    let after = scrape_until_idle(&d).await;
    assert_eq!(moved(&before, &after, "inboxgate_smtp_sessions_total"), 4.0);
    assert_eq!(after["inboxgate_smtp_sessions_active"], 0.0);
    assert_eq!(
        moved(&before, &after, "inboxgate_smtp_messages_accepted_total"),
        3.0
    );
    for (reason, code, n) in [
        ("relay_denied", "550 5.7.1", 1.0),
        ("unknown_user", "550 5.1.1", 1.0),
        ("channel_off", "550 5.2.1", 1.0),
        ("too_many_recipients", "452 4.5.3", 1.0),
        ("too_big", "552 5.3.4", 2.0),
        ("storage_full", "452 4.3.1", 0.0),
    ] {
        let name = format!("inboxgate_smtp_refusals_total{{reason=\"{reason}\",code=\"{code}\"}}");
        assert_eq!(moved(&before, &after, &name), n, "{name}");
    }
    // Each accepted message was committed by the writer, possibly with other jobs.
    let batches = moved(&before, &after, "inboxgate_store_commit_batch_size_count");
    let jobs = moved(&before, &after, "inboxgate_store_commit_batch_size_sum");
    assert!(
        batches >= 1.0 && jobs >= 3.0,
        "{batches} batches, {jobs} jobs"
    );
    assert_eq!(
        after["inboxgate_store_commit_seconds_count"],
        after["inboxgate_store_commit_batch_size_count"]
    );
    assert_eq!(
        after["inboxgate_store_commit_seconds_bucket{le=\"+Inf\"}"],
        after["inboxgate_store_commit_seconds_count"]
    );
}

/// The session gauge drops when the server side of the session has ended.
async fn scrape_until_idle(d: &Daemon) -> HashMap<String, f64> {
    for _ in 0..100 {
        let now = scrape(d).await;
        if now["inboxgate_smtp_sessions_active"] == 0.0 {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scrape(d).await
}

#[tokio::test]
async fn outbound_deliveries_and_queue_depth_are_counted() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let before = scrape(&d).await;
    assert_eq!(before["inboxgate_outbound_queue{status=\"sent\"}"], 0.0);
    let body = d.config_path.with_file_name("body.txt");
    std::fs::write(&body, "Here is the quote.").unwrap();
    for to in ["jan@klant.example", "piet@klant.example"] {
        d.cli(&[
            "compose",
            "--as",
            "alice@demo.example",
            "--from",
            SUPPORT,
            "--to",
            to,
            "--subject",
            "Quote",
            "--body-file",
            body.to_str().unwrap(),
            "--json",
        ]);
    }
    sink.wait_for(2).await;
    let mut after = scrape(&d).await;
    for _ in 0..100 {
        if after["inboxgate_outbound_queue{status=\"sent\"}"] == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&d).await;
    }
    assert_eq!(after["inboxgate_outbound_queue{status=\"sent\"}"], 2.0);
    assert_eq!(after["inboxgate_outbound_queue{status=\"queued\"}"], 0.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "inboxgate_outbound_deliveries_total{outcome=\"sent\"}"
        ),
        2.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "inboxgate_outbound_deliveries_total{outcome=\"failed\"}"
        ),
        0.0
    );
}
