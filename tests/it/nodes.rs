//! Several nodes on one PostgreSQL database (issue 15): two or three in-process daemons,
//! each with its own ports and `[server] node` name and the same `[store]` section. The
//! same Message-ID at two nodes at once, replies of one thread at different nodes, SMTP
//! load spread over three nodes, one IMAP mailbox configured on every node (with
//! failover), outbound deliveries claimed once each, and one node riding out its
//! database stopping and starting. These always run on PostgreSQL (a database of the
//! shared test cluster, or a cluster of the test's own), whatever
//! `INBOXGATE_TEST_BACKEND` says; counts come from psql on the store's own tables.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::dovecot::{self, Dovecot};
use crate::outbound::Sink;
use crate::postgres_cluster::{self as pg, Cluster};
use crate::support::{wire_format, Daemon, SmtpClient, TestClock};

const SUPPORT: &str = "support@demo.hs-inbox.com";
const ALICE: &str = "alice@demo.example";

/// One installation: a database every node's `[store]` section names.
struct Installation<'c> {
    cluster: &'c Cluster,
    database: String,
    store: String,
}

impl<'c> Installation<'c> {
    /// A new empty database on `cluster`.
    fn on(cluster: &'c Cluster) -> Installation<'c> {
        let database = cluster.create_database();
        let store = format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\n",
            cluster.url(&database),
            cluster.password_file().display()
        );
        Installation {
            cluster,
            database,
            store,
        }
    }

    /// A node named `name` with the test configuration plus `extra`.
    async fn node(&self, name: &str, extra: &str) -> Daemon {
        let extra = extra.to_string();
        Daemon::start_node(&self.store, name, move |text| text + &extra).await
    }

    #[track_caller]
    fn sql(&self, sql: &str) -> String {
        self.cluster.psql(&self.database, sql)
    }

    /// The one integer `sql` selects.
    #[track_caller]
    fn count(&self, sql: &str) -> i64 {
        let out = self.sql(sql);
        out.parse()
            .unwrap_or_else(|_| panic!("{sql}: not an integer: {out:?}"))
    }

    /// Message rows, distinct Message-IDs and conversations of the messages whose
    /// Message-ID is `LIKE pattern`.
    #[track_caller]
    fn stored(&self, pattern: &str) -> Stored {
        let row = self.sql(&format!(
            "SELECT count(*), count(DISTINCT message_id), count(DISTINCT conversation_id)
             FROM messages WHERE message_id LIKE '{pattern}'"
        ));
        let n: Vec<i64> = row
            .split('|')
            .map(|n| n.parse().expect("a count"))
            .collect();
        Stored {
            rows: n[0],
            ids: n[1],
            conversations: n[2],
        }
    }

    /// How many rows each Message-ID `LIKE pattern` has.
    fn rows_per_id(&self, pattern: &str) -> HashMap<String, i64> {
        let out = self.sql(&format!(
            "SELECT message_id, count(*) FROM messages WHERE message_id LIKE '{pattern}'
             GROUP BY message_id"
        ));
        out.lines()
            .filter_map(|line| line.split_once('|'))
            .map(|(id, n)| (id.to_string(), n.parse().expect("a count")))
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Stored {
    rows: i64,
    ids: i64,
    conversations: i64,
}

/// A customer's message to Support; `thread` are the ids it answers, oldest first.
fn mail(id: &str, from: &str, subject: &str, thread: &[&str]) -> Vec<u8> {
    let mut reply_headers = String::new();
    if let Some(parent) = thread.last() {
        let references: Vec<String> = thread.iter().map(|r| format!("<{r}>")).collect();
        reply_headers = format!(
            "In-Reply-To: <{parent}>\r\nReferences: {}\r\n",
            references.join(" ")
        );
    }
    format!(
        "Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n{reply_headers}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nAbout {subject}.\r\n"
    )
    .into_bytes()
}

/// Opens an SMTP session to `addr` and takes it up to the message: EHLO, MAIL from
/// `from`, RCPT to Support, DATA. The first reply that refused a step is the error.
async fn ready_for_data(addr: SocketAddr, from: &str) -> Result<SmtpClient, String> {
    let mut client = SmtpClient::connect(addr).await;
    if !client.greeting.starts_with("220") {
        return Err(client.greeting);
    }
    let steps = [
        "EHLO client.test".to_string(),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{SUPPORT}>"),
    ];
    for step in steps {
        let reply = client.cmd(&step).await;
        if !reply.starts_with("250") {
            return Err(reply);
        }
    }
    let reply = client.cmd("DATA").await;
    if !reply.starts_with("354") {
        return Err(reply);
    }
    Ok(client)
}

/// One SMTP session to `addr` delivering `message` from `from` to Support: the reply to
/// the final dot, or the first reply that refused an earlier step.
async fn try_send(addr: SocketAddr, from: &str, message: &[u8]) -> String {
    let mut client = match ready_for_data(addr, from).await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    client.write(&wire_format(message)).await;
    client.write(b".\r\n").await;
    let reply = client.reply().await;
    client.quit().await;
    reply
}

/// Sends each `(node, from, message)` in a session of its own, all at once: every
/// session is taken up to the end of its message first, then the final dots go out
/// back to back, so the nodes file them at the same moment. Returns the replies.
async fn at_once(sends: &[(SocketAddr, &str, &[u8])]) -> Vec<String> {
    let mut clients = Vec::new();
    for (addr, from, message) in sends {
        let mut client = ready_for_data(*addr, from)
            .await
            .unwrap_or_else(|refused| panic!("{addr} refused before the message: {refused}"));
        client.write(&wire_format(message)).await;
        clients.push(client);
    }
    for client in &mut clients {
        client.write(b".\r\n").await;
    }
    let mut replies = Vec::new();
    for client in &mut clients {
        replies.push(client.reply().await);
        client.quit().await;
    }
    replies
}

/// Waits until `check` holds, polling; fails with `what` after `limit`.
async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn same_message_id_at_two_nodes_at_once_is_one_message() {
    let db = Installation::on(pg::cluster());
    let (a, b) = tokio::join!(db.node("mx1", ""), db.node("mx2", ""));
    const ROUNDS: usize = 30;
    let mut stored_by = HashMap::new();
    for i in 0..ROUNDS {
        let id = format!("same-{i}@klant.example");
        let from = "jan@klant.example";
        let message = mail(&id, from, &format!("Order {i}"), &[]);
        let (at_a, at_b) = tokio::join!(
            try_send(a.addr, from, &message),
            try_send(b.addr, from, &message)
        );
        assert!(
            at_a.starts_with("250") && at_b.starts_with("250"),
            "round {i}: mx1 {at_a:?}, mx2 {at_b:?}"
        );
        // One node stored it (a message row, M…); the other found it stored (C…).
        let stored: Vec<&str> = [("mx1", &at_a), ("mx2", &at_b)]
            .into_iter()
            .filter(|(_, reply)| reply.contains("queued as M"))
            .map(|(node, _)| node)
            .collect();
        assert_eq!(stored.len(), 1, "round {i}: mx1 {at_a:?}, mx2 {at_b:?}");
        *stored_by.entry(stored[0]).or_insert(0) += 1;
    }
    eprintln!("stored by: {stored_by:?}");
    let expected = Stored {
        rows: ROUNDS as i64,
        ids: ROUNDS as i64,
        conversations: ROUNDS as i64,
    };
    assert_eq!(db.stored("same-%"), expected);
    assert_eq!(
        db.count("SELECT count(*) FROM conversations"),
        ROUNDS as i64
    );
    // Either node's CLI shows the same: one conversation of one message per id.
    for node in [&a, &b] {
        let list = node.list(&["--limit", "1000"]);
        assert_eq!(list.len(), ROUNDS);
        assert!(list.iter().all(|c| c["message_count"] == 1), "{list:?}");
    }
    a.stop().await;
    b.stop().await;
}

/// How many conversations the messages of each thread (`<thread>-…@klant.example`)
/// are in, and how many messages it has.
fn threads(db: &Installation, pattern: &str) -> HashMap<String, (i64, i64)> {
    let out = db.sql(&format!(
        "SELECT split_part(message_id, '-', 1), count(DISTINCT conversation_id), count(*)
         FROM messages WHERE message_id LIKE '{pattern}' GROUP BY 1"
    ));
    out.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            let n = |i: usize| parts[i].parse::<i64>().expect("a count");
            (parts[0].to_string(), (n(1), n(2)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_of_one_thread_at_two_nodes_land_in_one_conversation() {
    let db = Installation::on(pg::cluster());
    let (a, b) = tokio::join!(db.node("mx1", ""), db.node("mx2", ""));
    const ROUNDS: usize = 20;
    for r in 0..ROUNDS {
        let from = format!("customer{r}@klant.example");
        let colleague = format!("colleague{r}@klant.example");
        let subject = format!("Broken pump {r}");
        let reply_subject = format!("Re: {subject}");
        let root = format!("t{r}-root@klant.example");
        let first = format!("t{r}-first@klant.example");
        // The root at one node and its reply at the other, at once (either may win).
        let root_mail = mail(&root, &from, &subject, &[]);
        let first_mail = mail(&first, &from, &reply_subject, &[&root]);
        let [root_at, first_at] = <[String; 2]>::try_from(
            at_once(&[(a.addr, &from, &root_mail), (b.addr, &from, &first_mail)]).await,
        )
        .expect("two replies");
        assert!(root_at.starts_with("250"), "round {r} root: {root_at}");
        assert!(first_at.starts_with("250"), "round {r} reply: {first_at}");
        // Two replies of the stored thread at once, one by a colleague of the customer
        // (threaded by References alone, not by sender and subject).
        let second = format!("t{r}-second@klant.example");
        let third = format!("t{r}-third@klant.example");
        let second_mail = mail(&second, &from, &reply_subject, &[&root, &first]);
        let third_mail = mail(&third, &colleague, &reply_subject, &[&root]);
        let [second_at, third_at] = <[String; 2]>::try_from(
            at_once(&[
                (a.addr, &from, &second_mail),
                (b.addr, &colleague, &third_mail),
            ])
            .await,
        )
        .expect("two replies");
        assert!(second_at.starts_with("250"), "round {r}: {second_at}");
        assert!(third_at.starts_with("250"), "round {r}: {third_at}");
    }
    let by_thread = threads(&db, "t%@klant.example");
    assert_eq!(by_thread.len(), ROUNDS);
    let split: Vec<_> = by_thread
        .iter()
        .filter(|(_, counts)| **counts != (1, 4))
        .collect();
    assert!(
        split.is_empty(),
        "threads not one conversation of 4 messages (conversations, messages): {split:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM conversations"),
        ROUNDS as i64
    );
    a.stop().await;
    b.stop().await;
}

/// One sender's share of the load: threads of a root and three replies, the root
/// acknowledged first and its replies sent at once to the three nodes. Returns each
/// message's id with the reply it got.
async fn send_threads(
    nodes: Vec<SocketAddr>,
    sender: usize,
    threads: usize,
) -> Vec<(String, String)> {
    let from = format!("sender{sender}@klant.example");
    let mut replies = Vec::new();
    for t in 0..threads {
        let subject = format!("Load {sender} {t}");
        let root = format!("s{sender}x{t}-root@klant.example");
        let node = |k: usize| nodes[(sender + t + k) % nodes.len()];
        let reply = try_send(node(0), &from, &mail(&root, &from, &subject, &[])).await;
        replies.push((root.clone(), reply));
        let answer = format!("Re: {subject}");
        let ids: Vec<String> = (1..=3)
            .map(|k| format!("s{sender}x{t}-r{k}@klant.example"))
            .collect();
        let messages: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| mail(id, &from, &answer, &[&root]))
            .collect();
        let (r1, r2, r3) = tokio::join!(
            try_send(node(1), &from, &messages[0]),
            try_send(node(2), &from, &messages[1]),
            try_send(node(0), &from, &messages[2]),
        );
        replies.extend(ids.into_iter().zip([r1, r2, r3]));
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_load_spread_over_three_nodes_loses_and_duplicates_nothing() {
    let db = Installation::on(pg::cluster());
    // Three nodes starting at once on an empty database migrate it once.
    let (a, b, c) = tokio::join!(db.node("mx1", ""), db.node("mx2", ""), db.node("mx3", ""));
    const SENDERS: usize = 6;
    const THREADS: usize = 25; // × 4 messages × 6 senders = 600
    let nodes = vec![a.addr, b.addr, c.addr];
    let began = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        load.spawn(send_threads(nodes.clone(), sender, THREADS));
    }
    let mut replies = Vec::new();
    while let Some(done) = load.join_next().await {
        replies.extend(done.expect("a sender task"));
    }
    let elapsed = began.elapsed();
    let total = SENDERS * THREADS * 4;
    assert_eq!(replies.len(), total);
    let acknowledged: HashSet<&str> = replies
        .iter()
        .filter(|(_, reply)| reply.starts_with("250"))
        .map(|(id, _)| id.as_str())
        .collect();
    let refused: Vec<_> = replies
        .iter()
        .filter(|(_, reply)| !reply.starts_with("250"))
        .collect();
    eprintln!(
        "{total} messages over 3 nodes in {elapsed:.2?}: {} acknowledged, {} refused",
        acknowledged.len(),
        refused.len()
    );
    let stored = db.rows_per_id("s%@klant.example");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(**id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    assert!(refused.is_empty(), "refused under load: {refused:?}");
    assert_eq!(db.stored("s%@klant.example").rows, total as i64);
    let by_thread = threads(&db, "s%@klant.example");
    assert_eq!(by_thread.len(), SENDERS * THREADS);
    let split: Vec<_> = by_thread
        .iter()
        .filter(|(_, counts)| **counts != (1, 4))
        .collect();
    assert!(split.is_empty(), "threads split or short: {split:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM conversations"),
        (SENDERS * THREADS) as i64
    );
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// Moves every clock on by a second each second, so leases run out in real time.
fn tick(clocks: Vec<TestClock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for clock in &clocks {
                clock.advance(1);
            }
        }
    })
}

fn imap_messages(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            dovecot::message(
                &format!("imap{i}-m@customer.example"),
                &format!("customer{i}@customer.example"),
                &format!("Mailbox question {i}"),
            )
        })
        .collect()
}

/// The folder leases: (holder, fencing) for each.
fn leases(db: &Installation) -> Vec<(String, i64)> {
    db.sql("SELECT holder, fencing FROM imap_leases ORDER BY channel, folder")
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(holder, fencing)| (holder.to_string(), fencing.parse().expect("fencing")))
        .collect()
}

/// Waits until `n` mailbox messages are stored, then a few more poll rounds of every
/// node, and checks each is stored once, in a conversation of its own.
async fn expect_imap_messages(db: &Installation<'_>, n: i64) {
    // A generous limit: beside the other nodes:: tests two cores are busy.
    wait_until(
        Duration::from_secs(90),
        &format!("{n} mailbox messages"),
        || db.stored("imap%").rows >= n,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expected = Stored {
        rows: n,
        ids: n,
        conversations: n,
    };
    assert_eq!(db.stored("imap%"), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imap_mailbox_configured_on_every_node_is_ingested_once() {
    let dovecot = Dovecot::start();
    let mut mailbox = dovecot.client().await;
    mailbox.append("INBOX", &imap_messages(0..10)).await;
    let db = Installation::on(pg::cluster());
    // Poll interval 1 s: a lease period of 5 s (three intervals, at least 5 s).
    const LEASE: Duration = Duration::from_secs(5);
    let channel = crate::imap::team_inbox(&dovecot.imap_table("none"), &["INBOX"], 1, "on");
    let (a, b) = tokio::join!(db.node("mx1", &channel), db.node("mx2", &channel));
    let ticker = tick(vec![a.clock.clone(), b.clock.clone()]);
    expect_imap_messages(&db, 10).await;

    // More mail over time: each message still once.
    for k in 0..5 {
        mailbox
            .append("INBOX", &imap_messages(10 + 2 * k..12 + 2 * k))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    expect_imap_messages(&db, 20).await;
    let held = leases(&db);
    assert_eq!(held.len(), 1, "one folder, one lease: {held:?}");
    let (holder, fencing) = held[0].clone();
    eprintln!("lease on INBOX: {holder} (fencing {fencing})");

    // The holder stops; the other node takes the lease over and files what comes.
    let (stopping, other) = match holder.as_str() {
        "mx1" => (a, b),
        "mx2" => (b, a),
        other => panic!("the lease holder {other:?} is no node"),
    };
    stopping.stop().await;
    let stopped = Instant::now();
    let successor = if holder == "mx1" { "mx2" } else { "mx1" };
    mailbox.append("INBOX", &imap_messages(20..30)).await;
    wait_until(2 * LEASE, &format!("{successor} to take the lease"), || {
        leases(&db).first().is_some_and(|(h, _)| h == successor)
    })
    .await;
    let took_over = stopped.elapsed();
    let (_, new_fencing) = leases(&db)[0].clone();
    assert!(new_fencing > fencing, "{new_fencing} after {fencing}");
    expect_imap_messages(&db, 30).await;
    eprintln!(
        "{successor} took the lease {took_over:.2?} after {holder} stopped (fencing {new_fencing})"
    );
    ticker.abort();
    other.stop().await;
}

/// The conversation of each customer message `q<i>@klant.example`, by `i`.
fn conversations_by_question(db: &Installation) -> HashMap<usize, i64> {
    db.sql(
        "SELECT message_id, conversation_id FROM messages WHERE message_id LIKE 'q%@klant.example'",
    )
    .lines()
    .filter_map(|line| {
        let (id, conversation) = line.split_once('|')?;
        let i = id.strip_prefix('q')?.strip_suffix("@klant.example")?;
        Some((i.parse().ok()?, conversation.parse().ok()?))
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_under_two_nodes_sends_each_delivery_once() {
    let sink = Sink::plain();
    let db = Installation::on(pg::cluster());
    let relay = sink.relay_config();
    let (a, b) = tokio::join!(db.node("mx1", &relay), db.node("mx2", &relay));
    const REPLIES: usize = 40;
    for i in 0..REPLIES {
        let from = format!("c{i}@klant.example");
        let id = format!("q{i}@klant.example");
        let node = if i % 2 == 0 { &a } else { &b };
        let reply = try_send(
            node.addr,
            &from,
            &mail(&id, &from, &format!("Question {i}"), &[]),
        )
        .await;
        assert!(reply.starts_with("250"), "{id}: {reply}");
    }
    let conversations = conversations_by_question(&db);
    assert_eq!(conversations.len(), REPLIES);
    let token = a.token(ALICE);

    // Every reply at once, half through each node's API; every third with a CC.
    let mut sending = tokio::task::JoinSet::new();
    for i in 0..REPLIES {
        let api = if i % 2 == 0 { a.api() } else { b.api() };
        let (token, conversation) = (token.clone(), conversations[&i]);
        sending.spawn(async move {
            let mut body = json!({ "text": format!("Answer {i}") });
            if i % 3 == 0 {
                body["cc"] = json!([format!("boss{i}@klant.example")]);
            }
            let path = format!("/api/v1/conversations/{conversation}/reply");
            (i, api.post(&path, &token, body).await)
        });
    }
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(done) = sending.join_next().await {
        let (i, (status, sent)) = done.expect("a reply task");
        assert_eq!(status, 200, "reply {i}: {sent}");
        let message_id = sent["message_id"].as_str().expect("message_id").to_string();
        let mut recipients = vec![format!("c{i}@klant.example")];
        if i % 3 == 0 {
            recipients.push(format!("boss{i}@klant.example"));
        }
        expected.insert(message_id, recipients);
    }
    let deliveries: i64 = expected.values().map(|r| r.len() as i64).sum();
    let sent = "SELECT count(*) FROM outbound_deliveries WHERE status = 'sent'";
    wait_until(Duration::from_secs(60), "every delivery sent", || {
        db.count(sent) == deliveries
    })
    .await;
    // Whatever was still due has been claimed by now, on both nodes.
    a.outbound_worker_pass().await;
    b.outbound_worker_pass().await;
    let statuses = db.sql("SELECT status, count(*) FROM outbound_deliveries GROUP BY status");
    assert_eq!(statuses, format!("sent|{deliveries}"));

    // At the sink: each (message, recipient) exactly once.
    let mut arrived: HashMap<(String, String), usize> = HashMap::new();
    let received = sink.messages();
    for mail in &received {
        let id = mail.header("Message-ID").expect("Message-ID");
        let id = id.trim_matches(['<', '>']).to_string();
        for rcpt in mail.meta["rcpt_tos"].as_array().expect("rcpt_tos") {
            let rcpt = rcpt.as_str().expect("an address").to_string();
            *arrived.entry((id.clone(), rcpt)).or_insert(0) += 1;
        }
    }
    let wanted: HashSet<(String, String)> = expected
        .iter()
        .flat_map(|(id, rcpts)| rcpts.iter().map(|r| (id.clone(), r.clone())))
        .collect();
    let doubled: Vec<_> = arrived.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    let got: HashSet<(String, String)> = arrived.into_keys().collect();
    assert_eq!(got, wanted);
    let by_node = db.sql(
        "SELECT COALESCE(claimed_by, '-'), count(*) FROM outbound_deliveries GROUP BY 1 ORDER BY 1",
    );
    eprintln!(
        "{deliveries} deliveries in {} SMTP transactions; claimed by: {}",
        received.len(),
        by_node.replace('\n', ", ")
    );
    a.stop().await;
    b.stop().await;
}

/// A sender that sends `load-<n>` messages one after another until told to stop, and
/// records each id with the reply it got.
struct Sender {
    replies: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sender {
    fn start(addr: SocketAddr) -> Sender {
        let replies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (replies.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let from = "load@klant.example";
            for n in 0.. {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("load{n}-m@klant.example");
                let message = mail(&id, from, &format!("Load {n}"), &[]);
                let reply = try_send(addr, from, &message).await;
                log.lock().expect("replies").push((id, reply));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Sender {
            replies,
            stop,
            task,
        }
    }

    fn replies(&self) -> Vec<(String, String)> {
        self.replies.lock().expect("replies").clone()
    }

    /// Acknowledged replies among the first `from`… onwards.
    fn acknowledged_since(&self, from: usize) -> usize {
        self.replies()
            .iter()
            .skip(from)
            .filter(|(_, r)| r.starts_with("250"))
            .count()
    }

    fn refused_since(&self, from: usize) -> usize {
        self.replies()
            .iter()
            .skip(from)
            .filter(|(_, r)| !r.starts_with("250"))
            .count()
    }

    async fn finish(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        let replies = self.replies.clone();
        self.task.await.expect("the sender task");
        let all = replies.lock().expect("replies").clone();
        all
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_stopped_and_started_under_load() {
    let cluster = Cluster::start_new().unwrap_or_else(|why| panic!("{why}"));
    let db = Installation::on(&cluster);
    let node = db.node("mx1", "").await;
    let token = node.token(ALICE);
    let api = node.api();
    let sender = Sender::start(node.addr);
    wait_until(Duration::from_secs(30), "20 acknowledged", || {
        sender.acknowledged_since(0) >= 20
    })
    .await;

    tokio::task::block_in_place(|| cluster.stop());
    let down = sender.replies().len();
    wait_until(Duration::from_secs(30), "3 refusals while down", || {
        sender.refused_since(down) >= 3
    })
    .await;
    let (status, body) = api.get("/api/v1/conversations", &token).await;
    assert_eq!(status, 503, "the API while the database is down: {body}");

    tokio::task::block_in_place(|| cluster.start());
    let up = sender.replies().len();
    let restarted = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "250 again after the restart",
        || sender.acknowledged_since(up) >= 1,
    )
    .await;
    let recovered = restarted.elapsed();
    wait_until(Duration::from_secs(30), "20 more acknowledged", || {
        sender.acknowledged_since(up) >= 20
    })
    .await;
    let replies = sender.finish().await;
    let (status, body) = api.get("/api/v1/conversations", &token).await;
    assert_eq!(status, 200, "the API after the restart: {body}");

    let refused: Vec<&(String, String)> = replies
        .iter()
        .filter(|(_, r)| !r.starts_with("250"))
        .collect();
    let odd: Vec<_> = refused
        .iter()
        .filter(|(_, r)| !r.starts_with("451 4.3.0"))
        .collect();
    assert!(odd.is_empty(), "refusals other than 451 4.3.0: {odd:?}");
    let stored = db.rows_per_id("load%");
    let acknowledged: Vec<&String> = replies
        .iter()
        .filter(|(_, r)| r.starts_with("250"))
        .map(|(id, _)| id)
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    let refused_but_stored = refused
        .iter()
        .filter(|(id, _)| stored.contains_key(id))
        .count();
    eprintln!(
        "{} sent: {} acknowledged, {} refused (first: {:?}), {refused_but_stored} refused \
         yet stored; 250 again {recovered:.2?} after the restart",
        replies.len(),
        acknowledged.len(),
        refused.len(),
        refused.first().map(|(_, r)| r.trim())
    );
    node.stop().await;
}

/// Makes the database read-only (or writable again) and ends its sessions, so the
/// node's next statements meet the change.
fn set_read_only(db: &Installation, on: bool) {
    let value = if on { "on" } else { "off" };
    db.cluster.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = {value}",
            db.database
        ),
    );
    db.cluster.psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
            db.database
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_database_answers_451_and_the_node_recovers_when_it_is_writable() {
    let cluster = Cluster::start_new().unwrap_or_else(|why| panic!("{why}"));
    let db = Installation::on(&cluster);
    let node = db.node("mx1", "").await;
    let sender = Sender::start(node.addr);
    wait_until(Duration::from_secs(30), "10 acknowledged", || {
        sender.acknowledged_since(0) >= 10
    })
    .await;

    tokio::task::block_in_place(|| set_read_only(&db, true));
    let read_only = sender.replies().len();
    wait_until(
        Duration::from_secs(30),
        "3 refusals while read-only",
        || sender.refused_since(read_only) >= 3,
    )
    .await;

    tokio::task::block_in_place(|| set_read_only(&db, false));
    let writable = sender.replies().len();
    wait_until(Duration::from_secs(30), "10 acknowledged again", || {
        sender.acknowledged_since(writable) >= 10
    })
    .await;
    let replies = sender.finish().await;

    let odd: Vec<_> = replies
        .iter()
        .filter(|(_, r)| !r.starts_with("250") && !r.starts_with("451 4.3.0"))
        .collect();
    assert!(odd.is_empty(), "refusals other than 451 4.3.0: {odd:?}");
    let stored = db.rows_per_id("load%");
    let lost: Vec<_> = replies
        .iter()
        .filter(|(id, r)| r.starts_with("250") && !stored.contains_key(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    node.stop().await;
}

/// The web inbox and API behind a load balancer: an agent's presence reported to one
/// node reaches a viewer served by the other, live and on the page, and failed
/// sign-ins and API tokens at either node count against one limit.
#[tokio::test]
async fn presence_and_failed_sign_ins_and_tokens_are_shared_by_the_nodes() {
    use crate::web::{EventLog, Web, BOB, PASSWORD};
    let db = Installation::on(pg::cluster());
    let a = db.node("node-a", "").await;
    let b = db.node("node-b", "").await;
    let reply = try_send(
        a.addr,
        "jan@klant.example",
        &mail(
            "presence-1@klant.example",
            "jan@klant.example",
            "Who is here",
            &[],
        ),
    )
    .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = crate::support::conversation_with_subject(&b.list(&[]), "Who is here");

    let alice_at_a = Web::signed_in(&a, ALICE).await;
    let bob_at_b = Web::signed_in(&b, BOB).await;
    let mut said = EventLog::new(bob_at_b.events_of(Some(id)).await);
    said.until("event: presence\ndata: []").await;
    let page = format!("/conversations/{id}");
    let report = format!("{page}/presence");
    let replying = alice_at_a
        .submit(&page, &report, &[("doing", "replying")])
        .await;
    assert_eq!(replying.status, 204, "{}", replying.body);
    said.until("data: [{\"doing\":\"replying\",\"name\":\"Alice Smith\"}]")
        .await;
    let shown = bob_at_b.get(&page).await;
    assert!(
        shown.body.contains("Alice Smith is replying"),
        "node-b's page shows what node-a was told: {}",
        shown.body
    );
    let gone = alice_at_a
        .submit(&page, &report, &[("doing", "gone")])
        .await;
    assert_eq!(gone.status, 204);
    said.until("\n\nevent: presence\ndata: []").await;

    // Guesses at Bob's password, half at each node: the limit of 10 is shared.
    let mut at_a = Web::new(&a);
    let mut at_b = Web::new(&b);
    for n in 0..10 {
        let guesser = if n % 2 == 0 { &mut at_a } else { &mut at_b };
        assert_eq!(guesser.sign_in(BOB, "guess").await.status, 401, "guess {n}");
    }
    for (node, guesser) in [("node-a", &mut at_a), ("node-b", &mut at_b)] {
        let held = guesser.sign_in(BOB, PASSWORD).await;
        assert_eq!(
            held.status, 429,
            "{node} holds Bob's account back: {}",
            held.body
        );
    }

    // Guesses at API token 7's secret, half at each node: one limit of 10 as well.
    let http = reqwest::Client::new();
    let guess = async |node: &Daemon| {
        http.get(format!("http://{}/api/v1/conversations", node.api_addr))
            .bearer_auth("igt_7_not-the-secret")
            .send()
            .await
            .expect("api request")
            .status()
            .as_u16()
    };
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(guess(node).await, 401, "guess {n}");
    }
    assert_eq!(guess(&a).await, 429, "node-a holds token 7's guesses back");
    assert_eq!(guess(&b).await, 429, "node-b holds token 7's guesses back");
}
