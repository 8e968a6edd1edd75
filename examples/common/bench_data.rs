//! The benchmarks' shared store: 100,000 conversations / 300,000 messages of real mail
//! text (the SpamAssassin corpus in ../shared/corpora), filed through the store's own
//! filing function (threading included) in big transactions, not over SMTP, then
//! agents' work on it (assignments, closed, spam, trash, comments). Filled once into
//! `target/bench-api/N/` and reused while N matches. `bench_api` and `bench_web`
//! include this file with `#[path]`. With `BACKEND=postgres PG_URL=…` (`bench_api`
//! only) the same filling goes into that PostgreSQL database instead, through the same
//! store API, when the database is empty; a database holding N conversations is reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inboxgate::config::{self, Config};
use inboxgate::pipeline::parse::{parse, Inbound};
use inboxgate::pipeline::Target;
use inboxgate::store::{Change, NewInbound, Store};

pub const MESSAGES_PER_CONVERSATION: usize = 3;
const BATCH: usize = 3000;
pub const USERS: [&str; 4] = [
    "alice@bench.example",
    "bob@bench.example",
    "carol@bench.example",
    "dave@bench.example",
];
pub const SEARCHES: [&str; 6] = [
    "linux",
    "money",
    "python",
    "razor",
    "spamassassin",
    "guaranteed",
];

pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The filled store's directory for `conversations`.
pub fn data_dir(conversations: usize) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-api/{conversations}"))
}

/// The benchmark daemon's configuration over `data_dir`, with `extra` (more TOML
/// tables) appended.
pub fn config_text(data_dir: &Path, extra: &str) -> String {
    let users: String = USERS
        .iter()
        .map(|u| format!("[[users]]\nemail = \"{u}\"\nname = \"{u}\"\n"))
        .collect();
    format!(
        r#"
[server]
hostname = "mx.bench.example"
data_dir = "{}"
[smtp]
listen = ["127.0.0.1:0"]
[api]
listen = "127.0.0.1:0"
[account]
subdomain = "bench"
fallback_domain = "hs-inbox.com"
company_name = "Bench Inc"
{users}
[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = {{ mode = "company", company = "Bench Support" }}
[[inboxes]]
name = "Sales"
  [[inboxes.channels]]
  kind = "fallback"
  user = "sales"
  from_name = {{ mode = "company", company = "Bench Sales" }}
{extra}"#,
        data_dir.display()
    )
}

/// Which store a benchmark fills and measures.
pub enum Backend {
    /// The embedded store under `target/bench-api/N/` (the default).
    Sqlite,
    /// A PostgreSQL database, by its URL (`BACKEND=postgres PG_URL=postgres://…`).
    Postgres(String),
}

impl Backend {
    /// The backend named by `BACKEND` (`sqlite`, the default, or `postgres`, which
    /// needs `PG_URL`).
    pub fn from_env() -> anyhow::Result<Backend> {
        match std::env::var("BACKEND").as_deref() {
            Err(_) | Ok("sqlite") => Ok(Backend::Sqlite),
            Ok("postgres") => {
                let url = std::env::var("PG_URL")
                    .map_err(|_| anyhow::anyhow!("BACKEND=postgres needs PG_URL"))?;
                Ok(Backend::Postgres(url))
            }
            Ok(other) => anyhow::bail!("BACKEND={other}: expected sqlite or postgres"),
        }
    }

    /// The name printed with the figures.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The configuration over the filled store of `conversations` on `backend` (filled
/// first when it is empty), with `extra` appended to its text.
pub async fn filled_on(
    backend: &Backend,
    conversations: usize,
    extra: &str,
) -> anyhow::Result<Config> {
    let Backend::Postgres(url) = backend else {
        return filled(conversations, extra).await;
    };
    let dir = data_dir(conversations).with_file_name(format!("{conversations}-pg"));
    let store_table = format!("{extra}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
    let config =
        config::parse(&config_text(&dir, &store_table)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let client = pg_client(url).await?;
    let stored = pg_messages(&client).await?;
    let expected = conversations * MESSAGES_PER_CONVERSATION;
    if stored == 0 {
        let store = Store::open_for(&config)?;
        fill(&store, conversations).await?;
    } else if stored == expected {
        eprintln!("reusing the PostgreSQL database ({stored} messages)");
    } else {
        anyhow::bail!("the database holds {stored} messages, not {expected}: give an empty one");
    }
    Ok(config)
}

/// The store's size on disk in bytes: the SQLite file, or the PostgreSQL database.
pub async fn store_size(backend: &Backend, config: &Config) -> anyhow::Result<u64> {
    match backend {
        Backend::Sqlite => Ok(std::fs::metadata(config.database_path())?.len()),
        Backend::Postgres(url) => {
            let row = pg_client(url)
                .await?
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0))?)
        }
    }
}

/// A plain session to the benchmark's database (loopback, no TLS), for counting.
async fn pg_client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Messages in the database; 0 before the schema exists.
async fn pg_messages(client: &tokio_postgres::Client) -> anyhow::Result<usize> {
    let exists: bool = client
        .query_one("SELECT to_regclass('messages') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM messages", &[])
        .await?
        .get(0);
    Ok(usize::try_from(count)?)
}

/// The configuration over the filled store of `conversations` (filled first when it
/// is not there yet), with `extra` appended to its text.
pub async fn filled(conversations: usize, extra: &str) -> anyhow::Result<Config> {
    let dir = data_dir(conversations);
    let text = config_text(&dir, extra);
    let config = config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    if !config.database_path().exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&config.database_path())?;
        fill(&store, conversations).await?;
    } else {
        eprintln!("reusing {}", config.database_path().display());
    }
    Ok(config)
}

/// Real mail from the corpus, parsed once: the text the filler reuses.
fn corpus() -> anyhow::Result<Vec<Inbound>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/spam/spamassassin");
    let mut mails = Vec::new();
    for folder in ["easy-ham-1", "spam-1"] {
        for entry in std::fs::read_dir(root.join(folder))? {
            let raw = std::fs::read(entry?.path())?;
            let mut parsed = parse(&raw);
            if parsed.text.trim().is_empty() {
                continue;
            }
            parsed.text = parsed.text.chars().take(4000).collect();
            mails.push(parsed);
        }
    }
    anyhow::ensure!(
        !mails.is_empty(),
        "no corpus found under {}",
        root.display()
    );
    Ok(mails)
}

/// Message `m` of conversation `c`: corpus text, a contact of its own per ~3
/// conversations, a reply chain by In-Reply-To.
fn message(corpus: &[Inbound], c: usize, m: usize, start: i64) -> NewInbound {
    let source = &corpus[(c * 7 + m * 13) % corpus.len()];
    let subject_source = &corpus[(c * 7) % corpus.len()];
    let mut parsed = source.clone();
    let contact = format!("customer{}@client{}.example", c / 3, c % 97);
    let id = |k: usize| format!("bench-{c}-{k}@client.example");
    parsed.message_id = Some(id(m));
    parsed.dedupe_key = id(m);
    parsed.in_reply_to = if m > 0 { vec![id(m - 1)] } else { Vec::new() };
    parsed.references = parsed.in_reply_to.clone();
    parsed.thread_index_root = None;
    parsed.from = Some(inboxgate::pipeline::parse::Mailbox {
        address: contact.clone(),
        name: Some(format!("Customer {}", c / 3)),
    });
    let base = if subject_source.subject.is_empty() {
        format!("Question {c}")
    } else {
        subject_source.subject.clone()
    };
    parsed.subject = if m == 0 { base } else { format!("Re: {base}") };
    parsed.subject_norm = inboxgate::pipeline::subject::normalize(&parsed.subject);
    let inbox = if c.is_multiple_of(4) {
        "Sales"
    } else {
        "Support"
    };
    let received_at = start + (c * MESSAGES_PER_CONVERSATION + m) as i64 * 10;
    NewInbound {
        targets: vec![Target {
            inbox: inbox.into(),
            channel: format!("{}@bench.hs-inbox.com", inbox.to_lowercase()),
        }],
        raw: parsed.text.as_bytes().to_vec(),
        parsed,
        mail_from: contact,
        rcpt_to: vec![format!("{}@bench.hs-inbox.com", inbox.to_lowercase())],
        received_at,
        classification: Default::default(),
        config: None,
    }
}

async fn fill(store: &Store, conversations: usize) -> anyhow::Result<()> {
    let corpus = Arc::new(corpus()?);
    let (writer, thread) = store.start_writer()?;
    // PostgreSQL takes several writers at once (as several nodes): FILL_WRITERS of
    // them file each wave, which the round trips per statement otherwise make slow.
    let parallel = if store.is_shared() {
        env_number("FILL_WRITERS", 4).max(1)
    } else {
        1
    };
    let mut writers = vec![writer.clone()];
    let mut threads = Vec::new();
    for _ in 1..parallel {
        let (extra, extra_thread) = store.start_writer()?;
        writers.push(extra);
        threads.push(extra_thread);
    }
    let started = Instant::now();
    // Recent mail, so the retention job at start leaves the trash alone.
    let now = inboxgate::clock::system_clock()();
    let start = now - (conversations * MESSAGES_PER_CONVERSATION) as i64 * 10 - 3600;
    let total = conversations * MESSAGES_PER_CONVERSATION;
    // Message-major order within a batch of conversations, so replies find their parent.
    let mut jobs: Vec<(usize, usize)> = Vec::with_capacity(total);
    for chunk in (0..conversations)
        .collect::<Vec<_>>()
        .chunks(BATCH / MESSAGES_PER_CONVERSATION)
    {
        for m in 0..MESSAGES_PER_CONVERSATION {
            jobs.extend(chunk.iter().map(|&c| (c, m)));
        }
    }
    // A wave is one message of each conversation of a chunk, filed at once so the
    // writer commits them together; the next wave (their replies) waits for it.
    for wave in jobs.chunk_by(|a, b| a.1 == b.1) {
        let mut filing = tokio::task::JoinSet::new();
        for (i, &(c, m)) in wave.iter().enumerate() {
            let writer = writers[i % writers.len()].clone();
            let message = message(&corpus, c, m, start);
            filing.spawn(async move { writer.file_inbound(message).await });
        }
        while let Some(filed) = filing.join_next().await {
            filed??;
        }
    }
    eprintln!(
        "filed {total} messages in {:.1?} ({parallel} writer(s))",
        started.elapsed()
    );
    drop(writers);
    for extra_thread in threads {
        let _ = tokio::task::spawn_blocking(move || extra_thread.join()).await;
    }
    // Agents' work: assignments, closed, spam, trash (concurrent jobs share commits).
    let mut tasks = tokio::task::JoinSet::new();
    for c in 1..=conversations as i64 {
        let change = match c % 100 {
            0..=19 => Change::Assign(Some(USERS[(c as usize / 100) % USERS.len()].into())),
            20..=49 => Change::Close { with_ticket: false },
            50..=51 => Change::Spam(true),
            52 => Change::Trash,
            53..=55 => Change::Comment(format!("Called the customer back ({c})")),
            _ => continue,
        };
        let writer = writer.clone();
        tasks.spawn(async move {
            writer
                .change_conversation(c, change, "bench".into(), now)
                .await
        });
        if tasks.len() >= 2048 {
            while let Some(done) = tasks.join_next().await {
                done??;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // Searches would catch the index up on their first call; do it here, untimed.
    writer.index_search().await?;
    drop(writer);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    eprintln!("filled in {:.1?}", started.elapsed());
    Ok(())
}

/// The value at fraction `p` of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
