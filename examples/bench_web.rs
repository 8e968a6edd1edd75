//! Web inbox speed benchmark (issue 13): on a copy of `bench_api`'s store (100,000
//! conversations), starts the release daemon, signs an agent in over HTTP as a browser
//! would, sends a 20-message HTML conversation over SMTP, then reports
//!
//! - server time p50/p99 (sequential requests after warm-up, time to the full body on
//!   loopback) of the list page, a filtered list, search and conversation pages;
//! - the list page's weight: its HTML and every stylesheet and script it references;
//! - SMTP `250` → the new row in an open list: the time until the page's event stream
//!   (`/events`) says `change`, and until the list fetch the page's script then makes
//!   has the row; median and p99.
//!
//! ```sh
//! cargo run --release --example bench_web    # CONVERSATIONS=100000 REQUESTS=200 LIVE=50
//! ```
//!
//! The store is filled once into `target/bench-api/` (shared with `bench_api`) and
//! copied to `target/bench-web/` for every run, so the API benchmark's data stays as
//! filled.

#[path = "common/bench_data.rs"]
#[allow(dead_code)] // its PostgreSQL half serves bench_api only
mod bench_data;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bench_data::{env_number, ms, percentile, MESSAGES_PER_CONVERSATION, SEARCHES, USERS};
use inboxgate::clock::system_clock;
use inboxgate::config::{self, Config, LiveConfig};
use inboxgate::inbox::Service;
use inboxgate::store::Store;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The agent who signs in (a member of both inboxes).
const AGENT: &str = USERS[0];
const PASSWORD: &str = "bench password, not a secret";
const SUPPORT: &str = "support@bench.hs-inbox.com";
/// The customer of the 20-message conversation.
const CUSTOMER: &str = "thread-bench@customer.example";
const THREAD_MESSAGES: usize = 20;
/// The aims of issue 13.
const AIM_P99: Duration = Duration::from_millis(30);
const AIM_WEIGHT: usize = 100 * 1024;
/// Requests of each case that only warm caches and the connection.
const WARM_UP: usize = 10;
/// SMTP reaches no DNS server: SPF, DKIM and DMARC checks are off.
const EXTRA_CONFIG: &str = "[classification]\ncheck_authentication = false\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let conversations = env_number("CONVERSATIONS", 100_000);
    let requests = env_number("REQUESTS", 200);
    let live = env_number("LIVE", 50).max(1);
    bench_data::filled(conversations, "").await?;
    let config = fresh_copy(conversations)?;
    let size = std::fs::metadata(config.database_path())?.len();
    set_password(&config).await?;
    let running = inboxgate::app::start(config.clone(), system_clock()).await?;
    let smtp = *running.smtp_addrs.first().context("no SMTP listener")?;
    let web = Web::sign_in(&format!("http://{}", running.api_addr)).await?;
    let thread = send_thread(smtp, &web).await?;
    println!(
        "store: {conversations} conversations, {} messages, {} MB; {requests} requests each after {WARM_UP} to warm up",
        conversations * MESSAGES_PER_CONVERSATION,
        size / 1_000_000
    );
    let times = measure_pages(&web, conversations, thread, requests).await?;
    let weight = page_weight(&web).await?;
    let rows = live_rows(&web, smtp, live).await?;
    summary(&times, &weight, &rows);
    running.stop().await;
    Ok(())
}

/// A fresh copy of the filled store in `target/bench-web/N/`, with its configuration.
fn fresh_copy(conversations: usize) -> anyhow::Result<Config> {
    let from = bench_data::data_dir(conversations);
    let to = from
        .parent()
        .and_then(Path::parent)
        .context("bench dir")?
        .join(format!("bench-web/{conversations}"));
    let _ = std::fs::remove_dir_all(&to);
    copy_dir(&from, &to)?;
    let text = bench_data::config_text(&to, EXTRA_CONFIG);
    config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                // A WAL or shared-memory file SQLite removed as its store closed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => bail!("copying {}: {e}", entry.path().display()),
            }
        }
    }
    Ok(())
}

/// Sets the agent's web password as `inboxgate users password set` does.
async fn set_password(config: &Config) -> anyhow::Result<()> {
    let store = Store::open(&config.database_path())?;
    let (writer, thread) = store.start_writer()?;
    let live = Arc::new(LiveConfig::new(config.clone()));
    let service = Service::new(live, store, writer, system_clock());
    service.set_password(AGENT, PASSWORD).await?;
    drop(service);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Ok(())
}

/// A signed-in browser: the session cookie on every request, redirects not followed.
struct Web {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

/// A page as fetched: status, body, and the time to its last byte.
struct Fetched {
    status: u16,
    body: String,
    took: Duration,
}

impl Web {
    /// Opens the sign-in page, then posts the form with the browser's `Origin`.
    async fn sign_in(base: &str) -> anyhow::Result<Web> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let form = http.get(format!("{base}/sign-in")).send().await?;
        ensure!(
            form.status().is_success(),
            "sign-in page: {}",
            form.status()
        );
        let body = format!(
            "email={}&password={}",
            form_encode(AGENT),
            form_encode(PASSWORD)
        );
        let answer = http
            .post(format!("{base}/sign-in"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ORIGIN, base)
            .body(body)
            .send()
            .await?;
        let to = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        ensure!(
            answer.status().is_redirection() && to == Some("/"),
            "sign-in: {} to {to:?}",
            answer.status()
        );
        let cookie = answer
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|c| c.starts_with("inboxgate_")))
            .context("sign-in set no session cookie")?
            .to_string();
        Ok(Web {
            base: base.to_string(),
            http,
            cookie,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Fetched> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(Fetched {
            status,
            body,
            took: started.elapsed(),
        })
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> anyhow::Result<Fetched> {
        let page = self.get(path).await?;
        ensure!(page.status == 200, "{path}: status {}", page.status);
        Ok(page)
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal SMTP client over real TCP: one connection per message.
struct Smtp {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Smtp> {
        let (read, writer) = TcpStream::connect(addr).await?.into_split();
        let mut smtp = Smtp {
            reader: BufReader::new(read),
            writer,
        };
        smtp.expect("220").await?;
        Ok(smtp)
    }

    /// Reads a (possibly multi-line) reply; fails unless its code is `code`.
    async fn expect(&mut self, code: &str) -> anyhow::Result<()> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("SMTP: connection closed, expected {code}");
            }
            ensure!(
                line.starts_with(code),
                "SMTP: expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str, code: &str) -> anyhow::Result<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.expect(code).await
    }
}

/// Sends one message (CRLF lines, no line starting with a dot); returns when the
/// server's `250` to its end arrived.
async fn send_mail(
    addr: std::net::SocketAddr,
    from: &str,
    message: &str,
) -> anyhow::Result<Instant> {
    let mut smtp = Smtp::connect(addr).await?;
    smtp.command("EHLO bench.customer.example", "250").await?;
    smtp.command(&format!("MAIL FROM:<{from}>"), "250").await?;
    smtp.command(&format!("RCPT TO:<{SUPPORT}>"), "250").await?;
    smtp.command("DATA", "354").await?;
    smtp.writer.write_all(message.as_bytes()).await?;
    smtp.command(".", "250").await?;
    let accepted = Instant::now();
    smtp.command("QUIT", "221").await?;
    Ok(accepted)
}

/// A message from `from` with a text and an HTML part; `parents`: the Message-IDs it
/// replies to, oldest first (In-Reply-To is the last).
fn mail(from: &str, subject: &str, id: &str, parents: &[String], paragraph: &str) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(system_clock()())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default();
    let mut headers = format!(
        "From: Customer <{from}>\r\nTo: Bench Support <{SUPPORT}>\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\n"
    );
    if let Some(parent) = parents.last() {
        let references: Vec<String> = parents.iter().map(|p| format!("<{p}>")).collect();
        headers.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: {}\r\n",
            references.join(" ")
        ));
    }
    let boundary = "bench-boundary-7f3a";
    format!(
        "{headers}Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{paragraph}\r\n\r\n\
         Regards,\r\nThe customer\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><head><style>p {{ color: #333; }}</style></head><body>\
         <p>{paragraph}</p><p><b>Order</b> <a href=\"https://shop.example/orders/4711\">#4711</a></p>\
         <table><tr><td>Item</td><td>Qty</td></tr><tr><td>Widget</td><td>3</td></tr></table>\
         <img src=\"https://tracker.example/pixel.gif\" width=\"1\" height=\"1\">\
         <p>Regards,<br>The customer</p></body></html>\r\n\
         --{boundary}--\r\n"
    )
}

/// Sends the 20-message conversation over SMTP, each a reply to the one before;
/// returns its id (found on the list page filtered by the customer).
async fn send_thread(smtp: std::net::SocketAddr, web: &Web) -> anyhow::Result<i64> {
    let run = system_clock()();
    let mut ids: Vec<String> = Vec::new();
    for k in 0..THREAD_MESSAGES {
        let id = format!("thread-{run}-{k}@customer.example");
        let subject = if k == 0 {
            "Order 4711 arrived damaged".to_string()
        } else {
            "Re: Order 4711 arrived damaged".to_string()
        };
        let paragraph = format!(
            "Message {k} of the thread: the box was dented and one widget is cracked. \
             Could you send a replacement, or tell me how to return it?"
        );
        send_mail(
            smtp,
            CUSTOMER,
            &mail(CUSTOMER, &subject, &id, &ids, &paragraph),
        )
        .await?;
        ids.push(id);
    }
    let list = web
        .page(&format!("/?contact={}", form_encode(CUSTOMER)))
        .await?;
    let found = conversation_ids(&list.body);
    ensure!(
        found.len() == 1,
        "the {THREAD_MESSAGES} messages are in conversations {found:?}, not one"
    );
    let page = web.page(&format!("/conversations/{}", found[0])).await?;
    let shown = page.body.matches("<details class=\"message ").count();
    ensure!(
        shown == THREAD_MESSAGES,
        "conversation {} shows {shown} messages, not {THREAD_MESSAGES}",
        found[0]
    );
    Ok(found[0])
}

/// The conversation ids a list page links to, in order, once each.
fn conversation_ids(html: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    for part in html.split("href=\"/conversations/").skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(id) = digits.parse::<i64>() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// A case: its name and the path of its i-th request.
type Case = (String, Box<dyn Fn(usize) -> String>);

/// The p50 and p99 server time of each case.
struct Timing {
    name: String,
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

fn cases(conversations: usize, thread: i64) -> Vec<Case> {
    // Half of the filled time range: the filtered list's date bound.
    let half = (conversations * MESSAGES_PER_CONVERSATION) as i64 * 5;
    let since = date(system_clock()() - half);
    vec![
        (
            "list: / (all open, newest)".into(),
            Box::new(|_| "/".into()),
        ),
        (
            "list: Support, nobody, since, oldest".into(),
            Box::new(move |_| {
                format!("/?view=all_open&inbox=Support&assignee=none&since={since}&sort=oldest")
            }),
        ),
        (
            format!("search: /?q=<one of {}>", SEARCHES.len()),
            Box::new(|i| format!("/?q={}", SEARCHES[i % SEARCHES.len()])),
        ),
        (
            format!("conversation: {THREAD_MESSAGES} HTML messages"),
            Box::new(move |_| format!("/conversations/{thread}")),
        ),
        (
            format!("conversation: {MESSAGES_PER_CONVERSATION} messages, varied"),
            Box::new(move |i| format!("/conversations/{}", 1 + (i * 7919) % conversations)),
        ),
    ]
}

/// `YYYY-MM-DD` of a Unix time (the list's date filter).
fn date(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at).map_or_else(
        |_| String::new(),
        |t| format!("{}-{:02}-{:02}", t.year(), t.month() as u8, t.day()),
    )
}

async fn measure_pages(
    web: &Web,
    conversations: usize,
    thread: i64,
    requests: usize,
) -> anyhow::Result<Vec<Timing>> {
    let mut timings = Vec::new();
    println!(
        "\n{:<44} {:>9} {:>9} {:>9}",
        "page (server time)", "p50 ms", "p99 ms", "KB"
    );
    for (name, path) in cases(conversations, thread) {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for i in 0..requests + WARM_UP {
            let page = web.page(&path(i)).await?;
            if i >= WARM_UP {
                times.push(page.took);
                bytes = page.body.len();
            }
        }
        times.sort();
        let timing = Timing {
            name,
            p50: percentile(&times, 0.5),
            p99: percentile(&times, 0.99),
            bytes,
        };
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>9.1}",
            timing.name,
            ms(timing.p50),
            ms(timing.p99),
            timing.bytes as f64 / 1024.0
        );
        timings.push(timing);
    }
    Ok(timings)
}

/// The list page's parts: (what, bytes).
async fn page_weight(web: &Web) -> anyhow::Result<Vec<(String, usize)>> {
    let list = web.page("/").await?;
    let mut parts = vec![("/ (HTML)".to_string(), list.body.len())];
    for asset in assets(&list.body) {
        let fetched = web.page(&asset).await?;
        parts.push((asset, fetched.body.len()));
    }
    Ok(parts)
}

/// The stylesheets (`<link rel="stylesheet" href>`) and scripts (`<script src>`) a
/// page references.
fn assets(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (tag, attribute) in [("<link ", "href=\""), ("<script ", "src=\"")] {
        for part in html.split(tag).skip(1) {
            let element = part.split('>').next().unwrap_or_default();
            if tag == "<link " && !element.contains("stylesheet") {
                continue;
            }
            let Some((_, rest)) = element.split_once(attribute) else {
                continue;
            };
            if let Some((url, _)) = rest.split_once('"') {
                found.push(url.to_string());
            }
        }
    }
    found
}

/// An event of the stream, with when it arrived.
struct Arrived {
    at: Instant,
    name: String,
    data: String,
}

/// Reads `/events` as the page's `EventSource` does, passing each event on.
async fn follow_events(web: &Web) -> anyhow::Result<mpsc::UnboundedReceiver<Arrived>> {
    let mut response = web
        .http
        .get(format!("{}/events", web.base))
        .header(COOKIE, &web.cookie)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "/events: {}",
        response.status()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let at = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block, at) {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// One `event:`/`data:` block; comments (keep-alives) are none.
fn parse_event(block: &str, at: Instant) -> Option<Arrived> {
    let field = |name: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start().to_string())
    };
    Some(Arrived {
        at,
        name: field("event:")?,
        data: field("data:").unwrap_or_default(),
    })
}

/// The newest message id in a marker (`messages.timeline`).
fn marker_messages(data: &str) -> i64 {
    data.split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Per live message: 250 → `change` event, 250 → the list fetched with the row.
struct LiveRows {
    event: Vec<Duration>,
    row: Vec<Duration>,
}

async fn live_rows(
    web: &Web,
    smtp: std::net::SocketAddr,
    count: usize,
) -> anyhow::Result<LiveRows> {
    let mut events = follow_events(web).await?;
    let ready = next_event(&mut events).await?;
    ensure!(ready.name == "ready", "first event {:?}", ready.name);
    let mut newest = marker_messages(&ready.data);
    let run = system_clock()();
    let mut rows = LiveRows {
        event: Vec::new(),
        row: Vec::new(),
    };
    for i in 0..count {
        // Sends spread over the stream's 250 ms poll, not locked to one phase of it.
        tokio::time::sleep(Duration::from_millis((i as u64 * 97) % 250)).await;
        let from = format!("live{i}@customer{run}.example");
        let subject = format!("Live row {run}-{i}");
        let message = mail(
            &from,
            &subject,
            &format!("live-{run}-{i}@customer.example"),
            &[],
            "Is my order on its way?",
        );
        let accepted = send_mail(smtp, &from, &message).await?;
        let (event_at, fetched_at) = until_row(web, &mut events, &mut newest, &subject).await?;
        rows.event
            .push(event_at.saturating_duration_since(accepted));
        rows.row
            .push(fetched_at.saturating_duration_since(accepted));
    }
    rows.event.sort();
    rows.row.sort();
    Ok(rows)
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Arrived>) -> anyhow::Result<Arrived> {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .context("no event within 10 s")?
        .context("the event stream ended")
}

/// Waits for the `change` announcing a newer message, then fetches the list as the
/// page's script does, until the row with `subject` is on it; returns when the event
/// arrived and when that fetch ended.
async fn until_row(
    web: &Web,
    events: &mut mpsc::UnboundedReceiver<Arrived>,
    newest: &mut i64,
    subject: &str,
) -> anyhow::Result<(Instant, Instant)> {
    let mut announced = None;
    loop {
        let event = next_event(events).await?;
        if event.name != "change" {
            continue;
        }
        let messages = marker_messages(&event.data);
        if messages <= *newest && announced.is_none() {
            continue;
        }
        *newest = (*newest).max(messages);
        let at = *announced.get_or_insert(event.at);
        let list = web.page("/").await?;
        if list.body.contains(subject) {
            return Ok((at, Instant::now()));
        }
    }
}

fn summary(times: &[Timing], weight: &[(String, usize)], rows: &LiveRows) {
    println!(
        "\n== web inbox summary (aims: p99 < {} ms, list page < {} KB) ==",
        AIM_P99.as_millis(),
        AIM_WEIGHT / 1024
    );
    for t in times {
        let verdict = if t.p99 < AIM_P99 { "ok" } else { "MISSED" };
        println!(
            "{:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  {verdict}",
            t.name,
            ms(t.p50),
            ms(t.p99)
        );
    }
    let total: usize = weight.iter().map(|(_, b)| b).sum();
    let parts: Vec<String> = weight
        .iter()
        .map(|(what, bytes)| format!("{what} {:.1} KB", *bytes as f64 / 1024.0))
        .collect();
    let verdict = if total < AIM_WEIGHT { "ok" } else { "MISSED" };
    println!(
        "list page weight: {:.1} KB ({}), uncompressed  {verdict}",
        total as f64 / 1024.0,
        parts.join(" + ")
    );
    println!(
        "SMTP 250 -> change event ({} messages): median {:.1} ms, p99 {:.1} ms",
        rows.event.len(),
        ms(percentile(&rows.event, 0.5)),
        ms(percentile(&rows.event, 0.99))
    );
    println!(
        "SMTP 250 -> row in the open list (event + list fetch): median {:.1} ms, p99 {:.1} ms",
        ms(percentile(&rows.row, 0.5)),
        ms(percentile(&rows.row, 0.99))
    );
}
