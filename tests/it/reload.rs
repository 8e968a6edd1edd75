//! SIGHUP reloads the configuration of the real `inboxgate serve` process: a valid file
//! takes effect for new sessions; an invalid one is refused and the old one keeps running.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("inboxgate serve did not listen on {port}");
}

/// Waits until the daemon's log holds `event`.
async fn wait_for_log(log: &std::path::Path, event: &str) {
    for _ in 0..200 {
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains(event)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {event:?} in the log within 10 s");
}

async fn rcpt_reply(port: u16, rcpt: &str) -> String {
    let mut client = SmtpClient::connect(([127, 0, 0, 1], port).into()).await;
    client.cmd("EHLO client.test").await;
    client.cmd("MAIL FROM:<jan@klant.example>").await;
    let reply = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    client.quit().await;
    reply
}

async fn wait_until(port: u16, rcpt: &str, prefix: &str) -> String {
    let mut reply = String::new();
    for _ in 0..100 {
        reply = rcpt_reply(port, rcpt).await;
        if reply.starts_with(prefix) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reply
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = dir.path().join("inboxgate.toml");
    let text = config_text(&dir.path().join("data"), "").replace(
        r#"listen = ["127.0.0.1:0"]"#,
        &format!(r#"listen = ["127.0.0.1:{port}"]"#),
    );
    std::fs::write(&config_path, &text).unwrap();
    let log = dir.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let serve = Serve(child);
    wait_for_port(port).await;
    let old_sales = "old-sales@demo.hs-inbox.com";
    let reply = wait_until(port, old_sales, "550").await;
    assert!(
        reply.starts_with("550 5.2.1"),
        "switched off at start: {reply}"
    );

    // Switch the channel on: new sessions accept it.
    std::fs::write(
        &config_path,
        text.replace("status = \"off\"", "status = \"on\""),
    )
    .unwrap();
    signal(&serve.0, "HUP");
    let reply = wait_until(port, old_sales, "250").await;
    assert!(reply.starts_with("250"), "after reload: {reply}");

    // An invalid file is refused; the running configuration stays.
    std::fs::write(&config_path, "[smtp]\nlisten = 42\n").unwrap();
    signal(&serve.0, "HUP");
    wait_for_log(
        &log,
        "config reload refused; the running configuration stays",
    )
    .await;
    let reply = rcpt_reply(port, old_sales).await;
    assert!(
        reply.starts_with("250"),
        "invalid config must not be applied: {reply}"
    );
    let reply = rcpt_reply(port, "nobody@demo.hs-inbox.com").await;
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
}

const ALICE_BLOCK: &str = "[[users]]\nemail = \"alice@demo.example\"\nname = \"Alice Smith\"\n";
const SALES_ACCESS: &str = r#"access = { users = ["bob@demo.example"] }"#;

/// A user removed from the config by a reload: their API token is refused at once
/// (401), not served with the configuration the daemon started with.
#[tokio::test]
async fn removed_user_token_is_refused_after_reload() {
    let d = Daemon::start().await;
    let api = d.api();
    let alice = d.token("alice@demo.example");
    let (status, me) = api.get("/api/v1/me", &alice).await;
    assert_eq!(status, 200, "{me}");
    let (status, _) = api.get("/api/v1/inboxes", &alice).await;
    assert_eq!(status, 200);

    let text = d.config_text();
    assert!(text.contains(ALICE_BLOCK));
    d.reload(&text.replace(ALICE_BLOCK, ""));

    for path in ["/api/v1/me", "/api/v1/inboxes", "/api/v1/conversations"] {
        let (status, error) = api.get(path, &alice).await;
        assert_eq!(status, 401, "{path} after the reload: {error}");
        assert_eq!(error["code"], "unauthorized", "{path}");
    }
}

/// A user taken off an inbox's `access` by a reload no longer sees it or its
/// conversations (404), over the API and the CLI.
#[tokio::test]
async fn user_taken_off_inbox_gets_404_after_reload() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token("bob@demo.example");
    let message = b"Message-ID: <offerte-1@klant.example>\r\nFrom: jan@klant.example\r\n\
        To: sales@demo.hs-inbox.com\r\nSubject: Offerte graag\r\n\
        Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nGraag een offerte.\r\n";
    let reply = d
        .send("jan@klant.example", &["sales@demo.hs-inbox.com"], message)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = conversation_with_subject(&d.list(&[]), "Offerte graag");
    let conversation = format!("/api/v1/conversations/{id}");
    let (status, _) = api.get(&conversation, &bob).await;
    assert_eq!(status, 200, "a member before the reload");

    let text = d.config_text();
    assert!(text.contains(SALES_ACCESS));
    d.reload(&text.replace(
        SALES_ACCESS,
        r#"access = { users = ["alice@demo.example"] }"#,
    ));

    for path in [
        conversation.clone(),
        "/api/v1/conversations?inbox=Sales".to_string(),
    ] {
        let (status, error) = api.get(&path, &bob).await;
        assert_eq!(status, 404, "{path} after the reload: {error}");
        assert_eq!(error["code"], "not_found", "{path}");
    }
    let (status, inboxes) = api.get("/api/v1/inboxes", &bob).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = inboxes
        .as_array()
        .or_else(|| inboxes["inboxes"].as_array())
        .expect("a list of inboxes")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["Support"], "{inboxes}");
    let (status, _) = api
        .post(
            &format!("{conversation}/close"),
            &bob,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 404, "no action either");
}
