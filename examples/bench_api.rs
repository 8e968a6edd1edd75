//! API latency benchmark: fills a store with 100,000 conversations / 300,000 messages
//! of real mail text (the SpamAssassin corpus in ../shared/corpora), starts the daemon,
//! and reports p50/p99 of every view, a filter combination and full-text search over
//! real HTTP.
//!
//! ```sh
//! cargo run --release --example bench_api            # CONVERSATIONS=100000 REQUESTS=200
//! BACKEND=postgres PG_URL=postgres://USER@127.0.0.1:PORT/DB cargo run --release --example bench_api
//! ```
//!
//! `scripts/bench-api-pg.sh` runs both backends with a private PostgreSQL and prints
//! their figures side by side.
//!
//! The filled store is kept in `target/bench-api/` and reused while its size matches,
//! so a second run measures without refilling. Filling goes through the store's own
//! filing function (threading included) in big transactions, not over SMTP.

#[path = "common/bench_data.rs"]
mod bench_data;

use std::time::{Duration, Instant};

use bench_data::{env_number, ms, percentile, Backend, MESSAGES_PER_CONVERSATION, SEARCHES, USERS};
use inboxgate::clock::system_clock;
use inboxgate::store::Store;

/// The request path of the i-th request of a case.
type PathFor = Box<dyn Fn(usize) -> String>;

async fn measure(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    requests: usize,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut times = Vec::with_capacity(requests);
    let mut items = 0;
    for i in 0..requests + 10 {
        let started = Instant::now();
        let response = http
            .get(format!("{base}{}", path(i)))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{}: {}",
            path(i),
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        let elapsed = started.elapsed();
        if i >= 10 {
            // the first ten warm the caches and the connection
            times.push(elapsed);
            items = body["conversations"].as_array().map_or(0, Vec::len);
        }
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99), items))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let conversations = env_number("CONVERSATIONS", 100_000);
    let requests = env_number("REQUESTS", 200);
    let backend = Backend::from_env()?;
    let config = bench_data::filled_on(&backend, conversations, "").await?;
    let size = bench_data::store_size(&backend, &config).await?;
    let running = inboxgate::app::start(config.clone(), system_clock()).await?;
    let store = Store::open_for(&config)?;
    let (writer, _thread) = store.start_writer()?;
    let secret = inboxgate::inbox::token::secret()?;
    let id = writer
        .add_api_token(USERS[0].into(), inboxgate::inbox::token::hash(&secret), 0)
        .await?;
    let token = inboxgate::inbox::token::format(id, &secret);
    let base = format!("http://{}", running.api_addr);
    // Half of the filled time range: the filter combination's date bound.
    let half = (conversations * MESSAGES_PER_CONVERSATION) as i64 * 5;
    let since = inboxgate::inbox::json::rfc3339(system_clock()() - half);
    let http = reqwest::Client::new();

    println!(
        "store ({}): {conversations} conversations, {} messages, {} MB; {requests} requests each, page size 50",
        backend.name(),
        conversations * MESSAGES_PER_CONVERSATION,
        size / 1_000_000
    );
    println!(
        "{:<58} {:>9} {:>9} {:>6}",
        "request", "p50 ms", "p99 ms", "items"
    );
    let mut cases: Vec<(String, PathFor)> = inboxgate::store::View::ALL
        .iter()
        .map(|v| {
            let name = v.name();
            (
                format!("view={name}"),
                Box::new(move |_| format!("/api/v1/conversations?view={name}"))
                    as Box<dyn Fn(usize) -> String>,
            )
        })
        .collect();
    cases.push((
        "view=all_open&inbox=Support&assignee=none&since=…&sort=oldest".into(),
        Box::new(move |_| {
            format!("/api/v1/conversations?view=all_open&inbox=Support&assignee=none&since={since}&sort=oldest")
        }),
    ));
    cases.push((
        "contact=…&hide_filtered=true&sort=oldest".into(),
        Box::new(|i| {
            format!(
                "/api/v1/conversations?contact=customer{}@client{}.example&hide_filtered=true&sort=oldest",
                (i * 31) % 30000,
                ((i * 31) % 30000 * 3) % 97
            )
        }),
    ));
    cases.push((
        format!("q=<one of {}>", SEARCHES.len()),
        Box::new(|i| format!("/api/v1/conversations?q={}", SEARCHES[i % SEARCHES.len()])),
    ));
    cases.push((
        "q=<word>&view=all_open".into(),
        Box::new(|i| {
            format!(
                "/api/v1/conversations?view=all_open&q={}",
                SEARCHES[i % SEARCHES.len()]
            )
        }),
    ));
    cases.push((
        "show conversation".into(),
        Box::new(move |i| format!("/api/v1/conversations/{}", 1 + (i * 7919) % conversations)),
    ));
    let mut worst = Duration::ZERO;
    for (name, path) in &cases {
        let (p50, p99, items) = measure(&http, &base, &token, requests, path).await?;
        worst = worst.max(p99);
        println!("{name:<58} {:>9.2} {:>9.2} {items:>6}", ms(p50), ms(p99));
    }
    println!("worst p99: {:.2} ms", ms(worst));
    drop(writer);
    running.stop().await;
    Ok(())
}
