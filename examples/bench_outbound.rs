//! Outbound delivery benchmark: queues N replies (one recipient each) in a fresh store,
//! starts the real daemon (`inboxgate serve`, the release binary) with the relay set to
//! a local SMTP sink, and times until the queue is empty. Prints delivered msg/s and
//! the daemon's peak RSS (VmHWM). `scripts/bench-outbound.sh` runs it beside Postfix.
//!
//! ```sh
//! SINK_PORT=2626 COUNT=10000 cargo run --release --example bench_outbound
//! ```
//!
//! Queueing goes through the store's own filing operation (`Writer::file_outbound`, the
//! one `compose` and `reply` use), many at once so they share group transactions, not
//! one CLI process per message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inboxgate::clock::system_clock;
use inboxgate::config;
use inboxgate::pipeline::parse::Mailbox;
use inboxgate::store::{NewOutbound, Store};

const BATCH: usize = 2000;
const FROM: &str = "support@bench.hs-inbox.com";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_text(data_dir: &Path, sink_port: usize) -> String {
    format!(
        r#"
[server]
hostname = "mx.bench.example"
data_dir = "{}"
[smtp]
listen = ["127.0.0.1:0"]
[account]
subdomain = "bench"
fallback_domain = "hs-inbox.com"
company_name = "Bench Inc"
[[users]]
email = "alice@bench.example"
name = "Alice"
[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = {{ mode = "company", company = "Bench Support" }}
[outbound]
relay = {{ host = "127.0.0.1", port = {sink_port}, tls = "none" }}
"#,
        data_dir.display()
    )
}

/// Reply `i`: about 1.5 kB, the shape `compose` writes.
fn reply(i: usize, now: i64) -> NewOutbound {
    let to = format!("customer{i}@bench.sink.test");
    let message_id = format!("bench.{i}.{now}@mx.bench.example");
    let subject = format!("Re: Order {i}");
    let text = "Thanks for your message. Your order ships today; the tracking number \
                follows in a separate mail.\r\n"
        .repeat(12);
    let raw = format!(
        "From: \"Bench Support\" <{FROM}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Message-ID: <{message_id}>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{text}"
    );
    NewOutbound {
        inbox: "Support".into(),
        channel: FROM.into(),
        conversation_id: None,
        contact: Mailbox {
            address: to.clone(),
            name: None,
        },
        message_id,
        from: Mailbox {
            address: FROM.into(),
            name: Some("Bench Support".into()),
        },
        to: vec![to],
        cc: Vec::new(),
        bcc: Vec::new(),
        subject_norm: inboxgate::pipeline::subject::normalize(&subject),
        subject,
        text,
        thread_index_root: None,
        in_reply_to: None,
        references: Vec::new(),
        attachments: Vec::new(),
        raw: raw.into_bytes(),
        mail_from: FROM.into(),
        now,
        expires_at: now + 5 * 86_400,
    }
}

async fn fill(store: &Store, count: usize) -> anyhow::Result<()> {
    let (writer, thread) = store.start_writer()?;
    let now = system_clock()();
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(BATCH) {
        // All of a chunk at once: the writer commits them in a few group transactions.
        let mut filing = tokio::task::JoinSet::new();
        for &i in chunk {
            let writer = writer.clone();
            filing.spawn(async move { writer.file_outbound(reply(i, now)).await });
        }
        while let Some(filed) = filing.join_next().await {
            filed??;
        }
    }
    drop(writer);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    eprintln!("queued {count} replies in {:.1?}", started.elapsed());
    Ok(())
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = env_number("COUNT", 10_000);
    let sink_port = env_number("SINK_PORT", 2626);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-outbound");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let text = config_text(&root.join("data"), sink_port);
    let config = config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let config_path = root.join("inboxgate.toml");
    std::fs::write(&config_path, &text)?;
    let store = Store::open(&config.database_path())?;
    fill(&store, count).await?;
    let reader = store.reader()?;

    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/inboxgate");
    let started = Instant::now();
    let mut daemon = Command::new(binary)
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("daemon.log"))?)
        .spawn()?;
    let mut peak = 0;
    loop {
        peak = peak.max(peak_rss_kb(daemon.id()).unwrap_or(0));
        if reader.pending_deliveries()? == 0 {
            break;
        }
        if let Some(status) = daemon.try_wait()? {
            anyhow::bail!("daemon exited: {status}; see {}", root.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    peak = peak.max(peak_rss_kb(daemon.id()).unwrap_or(0));
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    let delivered = reader.sent_deliveries()?;
    println!(
        "inboxgate: {delivered}/{count} delivered in {:.2} s = {:.0} msg/s, peak RSS {} MB",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        peak / 1024
    );
    anyhow::ensure!(delivered == count as i64, "not all were delivered");
    Ok(())
}
