//! Connected team mailboxes (B3, B4, A4) against a real, private Dovecot: first sync,
//! restart, IDLE, Junk, UIDVALIDITY reset, auth failure, server outage, TLS, dedupe
//! with SMTP forwarding, and a large mailbox. Results are read with the real CLI.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dovecot::{self, message, Dovecot};
use crate::support::Daemon;

const TEAM: &str = "help@demo.example";

/// A "Team" inbox with a fallback channel (`team@demo.hs-inbox.com`) and the IMAP
/// channel for the Dovecot user.
fn team_inbox(imap: &str, folders: &[&str], poll_interval: u64, status: &str) -> String {
    let folders: Vec<String> = folders.iter().map(|f| format!("{f:?}")).collect();
    format!(
        r#"
[[inboxes]]
name = "Team"
  [[inboxes.channels]]
  kind = "fallback"
  user = "team"
  from_name = {{ mode = "company", company = "Demo Team" }}

  [[inboxes.channels]]
  kind = "imap"
  address = "{TEAM}"
  status = "{status}"
  from_name = {{ mode = "company", company = "Demo Help" }}
  folders = [{}]
  poll_interval = {poll_interval}
  imap = {imap}
"#,
        folders.join(", ")
    )
}

async fn start_daemon(dovecot: &Dovecot, folders: &[&str]) -> Daemon {
    Daemon::start_with_config(&team_inbox(&dovecot.imap_table("none"), folders, 1, "on")).await
}

/// Messages stored in the Team inbox (duplicates would count twice).
fn team_messages(daemon: &Daemon) -> i64 {
    daemon
        .list(&["--inbox", "Team", "--limit", "100000"])
        .iter()
        .map(|c| c["message_count"].as_i64().unwrap_or(0))
        .sum()
}

fn channel_status(daemon: &Daemon) -> Value {
    let out = daemon.cli(&["channels", "status", "--json"]);
    let all: Value = serde_json::from_str(&out).expect("status prints JSON");
    all.as_array()
        .and_then(|a| a.iter().find(|c| c["channel"] == TEAM).cloned())
        .expect("the team channel is listed")
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for exactly `n` messages and a completed sync, then checks nothing more comes.
async fn expect_exactly(daemon: &Daemon, n: i64, limit: Duration) {
    wait_until(limit, &format!("{n} messages"), || team_messages(daemon) >= n).await;
    wait_until(limit, "a completed sync", || {
        channel_status(daemon)["state"] == "idle"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(team_messages(daemon), n, "each message exactly once");
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            message(
                &format!("{prefix}-{i}@customer.example"),
                &format!("customer{i}@customer.example"),
                &format!("{prefix} question {i}"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sync_files_every_message_and_reports_idle() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("first", 0..3)).await;
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;

    expect_exactly(&daemon, 3, Duration::from_secs(10)).await;
    let conversations = daemon.list(&["--inbox", "Team"]);
    assert_eq!(conversations.len(), 3);
    assert!(conversations.iter().all(|c| c["channel"] == TEAM));
    assert!(conversations
        .iter()
        .any(|c| c["contact"]["email"] == "customer1@customer.example"));
    let status = channel_status(&daemon);
    assert_eq!(status["messages_ingested"], 3);
    assert!(status["last_sync_at"].is_string(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    // BODY.PEEK[]: the messages are still unread in the mailbox.
    client.ok("EXAMINE INBOX").await;
    client.expect_search("UNSEEN", 3).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_from_the_checkpoint_without_duplicates() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("restart", 0..3)).await;
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;
    expect_exactly(&daemon, 3, Duration::from_secs(10)).await;

    // Mail that arrives while the daemon is down is picked up after the restart; what
    // was filed before is not filed again.
    let more = numbered("restart", 3..5);
    let daemon = daemon
        .restart_after(client.append("INBOX", &more))
        .await;
    expect_exactly(&daemon, 5, Duration::from_secs(10)).await;
    assert_eq!(channel_status(&daemon)["messages_ingested"], 5);
    daemon.stop().await;
}
