//! Connected team mailboxes (B3, B4, A4) against a real, private Dovecot: first sync,
//! restart, IDLE, Junk, UIDVALIDITY reset, auth failure, server outage, TLS, dedupe
//! with SMTP forwarding, a large mailbox, XOAUTH2 through Dovecot's oauth2 passdb, and
//! broken servers (garbage greeting, silence) that must not stall other mailboxes. Results are read with the real CLI.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::dovecot::{self, message, Dovecot, Introspection};
use crate::support::Daemon;

const TEAM: &str = "help@demo.example";

/// A "Team" inbox with a fallback channel (`team@demo.hs-inbox.com`) and the IMAP
/// channel for the Dovecot user.
pub(crate) fn team_inbox(imap: &str, folders: &[&str], poll_interval: u64, status: &str) -> String {
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
    status_of(daemon, TEAM)
}

fn status_of(daemon: &Daemon, channel: &str) -> Value {
    let out = daemon.cli(&["channels", "status", "--json"]);
    let all: Value = serde_json::from_str(&out).expect("status prints JSON");
    all.as_array()
        .and_then(|a| a.iter().find(|c| c["channel"] == channel).cloned())
        .expect("the channel is listed")
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `n` messages and then a completed sync; checks that sync filed each once.
async fn expect_exactly(daemon: &Daemon, n: i64, limit: Duration) {
    wait_until(limit, &format!("{n} messages"), || {
        team_messages(daemon) >= n
    })
    .await;
    wait_until(limit, "a completed sync", || {
        channel_status(daemon)["state"] == "idle"
    })
    .await;
    // The poller records a sync as complete (idle) after filing all its batches, so
    // the count is final for the sync that brought the n-th message.
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

    expect_exactly(&daemon, 3, Duration::from_secs(30)).await;
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
    expect_exactly(&daemon, 3, Duration::from_secs(30)).await;

    // Mail that arrives while the daemon is down is picked up after the restart; what
    // was filed before is not filed again.
    let more = numbered("restart", 3..5);
    let daemon = daemon.restart_after(client.append("INBOX", &more)).await;
    expect_exactly(&daemon, 5, Duration::from_secs(30)).await;
    assert_eq!(channel_status(&daemon)["messages_ingested"], 5);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_delivers_a_new_message_within_two_seconds() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("idle", 0..1)).await;
    // A poll interval of 5 minutes: only IDLE can bring the new message in time.
    let extra = team_inbox(&dovecot.imap_table("none"), &["INBOX"], 300, "on");
    let daemon = Daemon::start_with_config(&extra).await;
    expect_exactly(&daemon, 1, Duration::from_secs(30)).await;

    let appended = Instant::now();
    client.append("INBOX", &numbered("idle", 1..2)).await;
    wait_until(Duration::from_secs(2), "the new message via IDLE", || {
        team_messages(&daemon) == 2
    })
    .await;
    assert!(appended.elapsed() < Duration::from_secs(2));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn junk_folders_are_never_ingested() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.ok("CREATE Spam").await;
    client.append("INBOX", &numbered("ham", 0..1)).await;
    client.append("Junk", &numbered("junk", 0..2)).await;
    client
        .append("Quarantine", &numbered("quarantine", 0..2))
        .await;
    client.append("Spam", &numbered("spam", 0..2)).await;
    // Junk and Quarantine carry \Junk; Spam is junk by its name.
    let daemon = start_daemon(&dovecot, &["INBOX", "Junk", "Quarantine", "Spam"]).await;

    expect_exactly(&daemon, 1, Duration::from_secs(30)).await;
    let subjects: Vec<Value> = daemon
        .list(&["--inbox", "Team"])
        .iter()
        .map(|c| c["subject"].clone())
        .collect();
    assert_eq!(subjects, ["ham question 0"]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uidvalidity_reset_rescans_the_folder_without_duplicates() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.ok("CREATE Shared").await;
    client.append("Shared", &numbered("reset", 0..3)).await;
    let daemon = start_daemon(&dovecot, &["Shared"]).await;
    expect_exactly(&daemon, 3, Duration::from_secs(30)).await;

    // Recreated while the daemon is down: new UIDVALIDITY, UIDs start at 1 again, so
    // the two new messages get UIDs at or below the old checkpoint (3).
    let recreate = async {
        // UIDVALIDITY is time-based: let the clock tick.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        client.ok("DELETE Shared").await;
        client.ok("CREATE Shared").await;
        let mut again = numbered("reset", 0..1);
        again.extend(numbered("reset", 3..5));
        client.append("Shared", &again).await;
    };
    let daemon = daemon.restart_after(recreate).await;
    expect_exactly(&daemon, 5, Duration::from_secs(30)).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_reported_as_auth_failed() {
    let dovecot = Dovecot::start();
    std::fs::write(&dovecot.password_file, "not-the-password\n").expect("write");
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;

    wait_until(Duration::from_secs(30), "auth_failed", || {
        channel_status(&daemon)["state"] == "auth_failed"
    })
    .await;
    let status = channel_status(&daemon);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("authentication failed"), "{status}");
    assert!(status["last_sync_at"].is_null());
    let all = daemon.cli(&["channels", "status", "--json"]);
    assert!(
        !all.contains("not-the-password"),
        "a secret was printed: {all}"
    );

    // Fixing the password file is enough: the channel was never disabled.
    std::fs::write(&dovecot.password_file, format!("{}\n", dovecot::PASSWORD)).expect("write");
    wait_until(Duration::from_secs(15), "recovery", || {
        channel_status(&daemon)["state"] == "idle"
    })
    .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_stopped_mid_sync_and_restarted_files_every_message_once() {
    let corpus = dovecot::corpus_messages(2000);
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &corpus).await;
    client.logout().await;
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;

    wait_until(Duration::from_secs(60), "the first batches", || {
        team_messages(&daemon) > 0
    })
    .await;
    dovecot.stop();
    let at_outage = team_messages(&daemon);
    assert!(at_outage < 2000, "the sync finished before the outage");
    wait_until(Duration::from_secs(30), "backoff", || {
        channel_status(&daemon)["state"] == "backoff"
    })
    .await;
    assert!(channel_status(&daemon)["last_error"].is_string());

    dovecot.run();
    expect_exactly(&daemon, 2000, Duration::from_secs(120)).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_and_starttls_both_sync() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("tls", 0..2)).await;
    for tls in ["implicit", "starttls"] {
        let extra = team_inbox(&dovecot.imap_table(tls), &["INBOX"], 1, "on");
        let daemon = Daemon::start_with_config(&extra).await;
        expect_exactly(&daemon, 2, Duration::from_secs(30)).await;
        daemon.stop().await;
    }
    assert!(
        dovecot.log().contains("TLS"),
        "dovecot logged no TLS session: {}",
        dovecot.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_an_untrusted_certificate_is_refused() {
    let dovecot = Dovecot::start();
    let table = dovecot
        .imap_table("implicit")
        .replace(&dovecot.cert_path.display().to_string(), "/dev/null");
    let daemon = Daemon::start_with_config(&team_inbox(&table, &["INBOX"], 1, "on")).await;
    wait_until(Duration::from_secs(30), "backoff", || {
        channel_status(&daemon)["state"] == "backoff"
    })
    .await;
    let error = channel_status(&daemon)["last_error"].to_string();
    assert!(error.contains("TLS"), "{error}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_copy_and_an_imap_copy_are_one_message() {
    let dovecot = Dovecot::start();
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;
    let original = message("same@customer.example", "jan@customer.example", "Order 12");
    let reply = daemon
        .send(
            "jan@customer.example",
            &["team@demo.hs-inbox.com"],
            &original,
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    // The IMAP copy, then a marker: once the marker is in, the copy was seen.
    let mut client = dovecot.client().await;
    let marker = message("marker@customer.example", "piet@customer.example", "Marker");
    client.append("INBOX", &[original, marker]).await;
    expect_exactly(&daemon, 2, Duration::from_secs(30)).await;
    assert_eq!(daemon.list(&["--inbox", "Team"]).len(), 2);
    assert_eq!(channel_status(&daemon)["messages_ingested"], 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_mailbox_is_synced_completely() {
    let corpus = dovecot::corpus_messages(2500);
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &corpus).await;
    let daemon = start_daemon(&dovecot, &["INBOX"]).await;
    expect_exactly(&daemon, 2500, Duration::from_secs(120)).await;
    assert_eq!(channel_status(&daemon)["messages_ingested"], 2500);
    daemon.stop().await;
}

const WATCH: &str = "watch@demo.example";

#[tokio::test(flavor = "multi_thread")]
async fn a_switched_off_channel_is_not_polled() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("off", 0..2)).await;
    let imap = dovecot.imap_table("none");
    // A switched-on channel on the same mailbox, started with it: once it has synced
    // both messages, the switched-off one would have too, had it been polled.
    let watch = format!(
        r#"
[[inboxes]]
name = "Watch"
  [[inboxes.channels]]
  kind = "imap"
  address = "{WATCH}"
  from_name = {{ mode = "company", company = "Demo Watch" }}
  folders = ["INBOX"]
  imap = {imap}
"#
    );
    let extra = team_inbox(&imap, &["INBOX"], 1, "off") + &watch;
    let daemon = Daemon::start_with_config(&extra).await;
    wait_until(
        Duration::from_secs(30),
        "the switched-on channel's sync",
        || {
            let watched = status_of(&daemon, WATCH);
            watched["state"] == "idle" && watched["messages_ingested"] == 2
        },
    )
    .await;
    assert_eq!(team_messages(&daemon), 0);
    assert_eq!(channel_status(&daemon)["state"], "off");
    daemon.stop().await;
}

const ACTIVE_TOKEN: &str = "ya29-active-7f3a9c51";
const REVOKED_TOKEN: &str = "ya29-revoked-0d41e2b7";

/// An `imap = { .. }` table logging in with XOAUTH2, the token from a command.
fn oauth2_table(dovecot: &Dovecot, token: &str) -> String {
    format!(
        r#"{{ host = "127.0.0.1", port = {}, tls = "none", username = "{}", oauth2_token_command = "echo {token}" }}"#,
        dovecot.imap_port,
        dovecot::USER
    )
}

/// Everything the daemon logs at info and above, from this test binary's first call
/// on (shared by tests running at the same time, which is fine for "never logged").
fn captured_logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        logs
    });
    String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_with_an_active_token_syncs() {
    let introspection = Introspection::start(ACTIVE_TOKEN).await;
    let dovecot = Dovecot::start_with_oauth2(&introspection.url);
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("oauth", 0..2)).await;
    let config = team_inbox(&oauth2_table(&dovecot, ACTIVE_TOKEN), &["INBOX"], 1, "on");
    let daemon = Daemon::start_with_config(&config).await;

    expect_exactly(&daemon, 2, Duration::from_secs(30)).await;
    // Dovecot really checked the token with the endpoint: XOAUTH2, not a password.
    assert!(
        introspection.asked().iter().any(|t| t == ACTIVE_TOKEN),
        "asked: {:?}; dovecot log: {}",
        introspection.asked(),
        dovecot.log()
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xoauth2_with_a_revoked_token_is_auth_failed_and_the_token_never_shown() {
    captured_logs();
    let introspection = Introspection::start(ACTIVE_TOKEN).await;
    let dovecot = Dovecot::start_with_oauth2(&introspection.url);
    let config = team_inbox(&oauth2_table(&dovecot, REVOKED_TOKEN), &["INBOX"], 1, "on");
    let daemon = Daemon::start_with_config(&config).await;

    wait_until(Duration::from_secs(30), "auth_failed", || {
        channel_status(&daemon)["state"] == "auth_failed"
    })
    .await;
    assert!(
        introspection.asked().iter().any(|t| t == REVOKED_TOKEN),
        "dovecot never asked about the token: {}",
        dovecot.log()
    );
    let status = channel_status(&daemon);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("authentication failed"), "{status}");
    assert_eq!(team_messages(&daemon), 0);
    let all = daemon.cli(&["channels", "status", "--json"]);
    assert!(!all.contains(REVOKED_TOKEN), "a token was printed: {all}");
    let logs = captured_logs();
    assert!(
        logs.contains("imap sync failed") && logs.contains("authentication failed"),
        "the failure was not logged (is the log captured?): {logs}"
    );
    assert!(!logs.contains(REVOKED_TOKEN), "a token was logged: {logs}");
    daemon.stop().await;
}

/// A TCP server that is not a working IMAP server: it accepts every connection, writes
/// `greeting` (nothing at all when empty) and then keeps the connection open, silent.
struct BrokenServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl BrokenServer {
    async fn start(greeting: &'static [u8]) -> BrokenServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(greeting).await;
                open.push(stream);
            }
        });
        BrokenServer {
            port,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for BrokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An IMAP table for a server on `port` with a password file that exists.
fn plain_table(port: u16, password_file: &std::path::Path) -> String {
    format!(
        r#"{{ host = "127.0.0.1", port = {port}, tls = "none", username = "{TEAM}", password_file = "{}" }}"#,
        password_file.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_greeting_is_a_clear_error_and_the_channel_retries() {
    let server = BrokenServer::start(b"220 mail.demo.example ESMTP Postfix\r\n").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "whatever\n").expect("write");
    let table = plain_table(server.port, &password_file);
    let daemon = Daemon::start_with_config(&team_inbox(&table, &["INBOX"], 1, "on")).await;

    wait_until(Duration::from_secs(15), "backoff", || {
        channel_status(&daemon)["state"] == "backoff"
    })
    .await;
    let status = channel_status(&daemon);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("bad greeting"), "{status}");
    // Backed off, then tried again: the poller is alive and the channel not disabled.
    wait_until(Duration::from_secs(15), "a reconnect after backoff", || {
        server.connections() >= 2
    })
    .await;
    assert_eq!(channel_status(&daemon)["state"], "backoff");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out_and_stalls_no_other_mailbox() {
    let silent = BrokenServer::start(b"").await;
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("healthy", 0..2)).await;
    // The silent mailbox comes first in the config, with a 1 s deadline.
    let config = format!(
        r#"
[[inboxes]]
name = "Dead"
  [[inboxes.channels]]
  kind = "fallback"
  user = "dead"
  from_name = {{ mode = "company", company = "Dead" }}

  [[inboxes.channels]]
  kind = "imap"
  address = "dead@demo.example"
  from_name = {{ mode = "company", company = "Dead" }}
  imap_timeout = 1
  imap = {}
{}"#,
        plain_table(silent.port, &dovecot.password_file),
        team_inbox(&dovecot.imap_table("none"), &["INBOX"], 1, "on")
    );
    let daemon = Daemon::start_with_config(&config).await;

    expect_exactly(&daemon, 2, Duration::from_secs(30)).await;
    wait_until(
        Duration::from_secs(15),
        "the silent server's deadline",
        || status_of(&daemon, "dead@demo.example")["state"] == "backoff",
    )
    .await;
    let dead = status_of(&daemon, "dead@demo.example");
    let error = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no reply from the server within 1s"),
        "{dead}"
    );
    assert!(silent.connections() >= 1);
    // Retried after the backoff, and timed out again: still no crash, still no stall.
    wait_until(Duration::from_secs(15), "a second attempt", || {
        silent.connections() >= 2
    })
    .await;
    assert_eq!(channel_status(&daemon)["state"], "idle");
    daemon.stop().await;
}

/// An IMAP channel switched on by a reload is polled at once (the pollers used to keep
/// the channels they started with until a restart).
#[tokio::test]
async fn an_imap_channel_switched_on_by_reload_is_polled() {
    let dovecot = Dovecot::start();
    let mut client = dovecot.client().await;
    client.append("INBOX", &numbered("reload", 0..2)).await;
    let imap = dovecot.imap_table("none");
    let daemon = Daemon::start_with_config(&team_inbox(&imap, &["INBOX"], 1, "off")).await;
    assert_eq!(channel_status(&daemon)["state"], "off");

    let help = "from_name = { mode = \"company\", company = \"Demo Help\" }";
    let text = daemon.config_text().replace(
        &format!("status = \"off\"\n  {help}"),
        &format!("status = \"on\"\n  {help}"),
    );
    daemon.reload(&text);
    wait_until(
        Duration::from_secs(20),
        "the reloaded channel's first sync",
        || team_messages(&daemon) == 2,
    )
    .await;
    wait_until(Duration::from_secs(10), "the channel's poller idle", || {
        channel_status(&daemon)["state"] == "idle"
    })
    .await;
    daemon.stop().await;
}
