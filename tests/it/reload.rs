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
