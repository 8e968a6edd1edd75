//! Hostile input through the agents' surfaces (issue 16): mail-derived text that tries
//! to drive the agent's terminal, a closed pipe, attachment names that are paths,
//! blocked-sender values that are not addresses, and an outbound message with more
//! recipients than allowed. Each test is named after the defect it pins.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const ALICE: &str = "alice@demo.example";

/// Bytes a terminal acts on: every control character but the line feed.
fn terminal_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| *c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(c)))
        .collect()
}

#[tokio::test]
async fn terminal_escape_injection_is_escaped_in_every_text_output() {
    let d = Daemon::start().await;
    // Raw ESC and BEL in the display name, CR/LF and an OSC title hidden in RFC 2047.
    let message = "Message-ID: <esc-1@evil.example>\r\n\
        From: \"Mallory\x1b[2J\x1b]0;pwned\x07\" <mallory@evil.example>\r\n\
        To: support@demo.hs-inbox.com\r\n\
        Subject: =?utf-8?q?Invoice=0D=0A____7__open____fake_row=1B]0;owned=07=E2=80=AEfdp?=\r\n\
        Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n\
        Body with \x1b[31mred\x1b[0m text\r\n";
    let reply = d
        .send("mallory@evil.example", &[SUPPORT], message.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = d.list(&[])[0]["id"].as_i64().expect("conversation id");

    let list = d.cli(&["conversations", "list"]);
    assert_eq!(terminal_controls(&list), Vec::<char>::new(), "{list:?}");
    assert_eq!(list.lines().count(), 2, "a header and one row: {list:?}");
    assert!(list.contains("\\r\\n"), "the line break is shown: {list:?}");

    let show = d.cli(&["conversations", "show", &id.to_string()]);
    assert_eq!(terminal_controls(&show), Vec::<char>::new(), "{show:?}");
    assert!(show.contains("\\x1b[31mred"), "{show:?}");

    let outbound = d.cli(&["outbound", "list"]);
    assert_eq!(terminal_controls(&outbound), Vec::<char>::new());

    // JSON keeps the text itself, escaped by the serializer.
    let shown = d.show(id);
    assert!(shown["subject"].as_str().unwrap().contains('\u{1b}'));
    d.stop().await;
}

#[tokio::test]
async fn broken_pipe_exits_quietly() {
    let d = Daemon::start().await;
    let reply = d
        .send("jan@klant.example", &[SUPPORT], &fixture("attachment.eml"))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    for args in [
        vec!["conversations", "list"],
        vec!["conversations", "list", "--json"],
        vec!["conversations", "show", "1"],
        vec!["messages", "raw", "1"],
    ] {
        // A pipe whose reader is gone before the command writes: like `| head -0`.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
            .arg("--config")
            .arg(&d.config_path)
            .args(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .expect("run inboxgate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?}: {:?} {stderr}",
            output.status
        );
        assert_eq!(stderr, "", "{args:?}: nothing on stderr");
    }
    d.stop().await;
}

#[tokio::test]
async fn attachment_names_are_served_as_their_last_component_only() {
    let d = Daemon::start().await;
    let message = "Message-ID: <names-1@klant.example>\r\n\
        From: Jan <jan@klant.example>\r\nTo: support@demo.hs-inbox.com\r\n\
        Subject: Two files\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
        --b\r\nContent-Type: application/octet-stream\r\n\
        Content-Disposition: attachment; filename=\"../../../tmp/evil\"\r\n\r\nfirst\r\n\
        --b\r\nContent-Type: application/pdf\r\n\
        Content-Disposition: attachment;\r\n filename*0*=utf-8''a%0D%0AX-Evil%3A%201;\r\n \
        filename*1*=%1B%5B2J.pdf\r\n\r\nsecond\r\n--b--\r\n";
    let reply = d
        .send("jan@klant.example", &[SUPPORT], message.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let shown = d.show(d.list(&[])[0]["id"].as_i64().unwrap());
    let m = &shown["messages"][0];
    let names: Vec<&str> = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["../../../tmp/evil", "a\r\nX-Evil: 1\x1b[2J.pdf"],
        "JSON keeps the original"
    );

    let api = d.api();
    let token = d.token(ALICE);
    let expected = [
        "attachment; filename=\"evil\"; filename*=UTF-8''evil",
        "attachment; filename=\"a__X-Evil: 1_[2J.pdf\"; filename*=UTF-8''a__X-Evil%3A%201_%5B2J.pdf",
    ];
    for (index, want) in expected.iter().enumerate() {
        let response = api
            .http
            .get(format!(
                "{}/api/v1/messages/{}/attachments/{index}",
                api.base, m["id"]
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("http request");
        assert_eq!(response.status().as_u16(), 200);
        let disposition = response.headers()["content-disposition"].to_str().unwrap();
        assert_eq!(&disposition, want);
    }
    let text = d.cli(&["conversations", "show", &shown["id"].to_string()]);
    assert_eq!(terminal_controls(&text), Vec::<char>::new(), "{text:?}");
    d.stop().await;
}

#[tokio::test]
async fn blocked_sender_values_must_be_an_address_or_a_domain() {
    let d = Daemon::start().await;
    let api = d.api();
    let token = d.token(ALICE);
    for bad in [
        "a@b%0D%0AX",
        "@",
        "a@b%0D%0AX-Evil:%201",
        "no-at-sign",
        "@nodot",
        "x@@y.example",
    ] {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/api/v1/senders/blocked/{bad}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid")),
            "{bad}: {body}"
        );
    }
    let (status, _) = api
        .call(
            "PUT",
            "/api/v1/senders/blocked/@spam.example",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            "PUT",
            "/api/v1/senders/blocked/Mallory@Evil.example",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let listed = api.ok("/api/v1/senders/blocked", &token).await;
    let addresses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses.len(), 2, "{listed}");
    assert!(addresses.contains(&"@spam.example") && addresses.contains(&"mallory@evil.example"));

    let refused = d.cli_output(&["senders", "block", "a@b\r\nX", "--as", ALICE]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("\"a@b\\r\\nX\" is neither an email address nor @domain"),
        "{stderr}"
    );
    d.stop().await;
}

#[tokio::test]
async fn outbound_recipients_are_capped_per_message() {
    let d = Daemon::start_edited(|text, _| text + "\n[outbound]\nmax_recipients = 3\n").await;
    let api = d.api();
    let token = d.token(ALICE);
    let too_many: Vec<String> = (0..4).map(|i| format!("r{i}@klant.example")).collect();
    let (status, body) = api
        .post(
            "/api/v1/compose",
            &token,
            json!({ "to": too_many, "from": SUPPORT, "subject": "s", "text": "t" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("4 recipients") && message.contains("at most 3"),
        "{message}"
    );
    let (status, body) = api
        .post(
            "/api/v1/compose",
            &token,
            json!({ "to": &too_many[..3], "from": SUPPORT, "subject": "s", "text": "t" }),
        )
        .await;
    assert_eq!(status, 200, "three is allowed: {body}");
    let queued = d.cli(&["outbound", "list", "--json"]);
    let queued: serde_json::Value = serde_json::from_str(&queued).unwrap();
    assert_eq!(
        queued.as_array().unwrap().len(),
        1,
        "the refused message queued nothing"
    );
    d.stop().await;
}

#[test]
fn outbound_max_recipients_is_validated_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "") + "\n[outbound]\nmax_recipients = 0\n";
    let path = dir.path().join("inboxgate.toml");
    std::fs::write(&path, text).unwrap();
    let problems = inboxgate::config::Config::load(&path).expect_err("0 is refused");
    assert!(
        problems.iter().any(|p| {
            let text = p.to_string();
            text.contains("outbound.max_recipients") && !text.contains("unknown key")
        }),
        "{problems:?}"
    );
}
