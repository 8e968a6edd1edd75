//! `store copy --to postgres` (issue 15, "Moving up"): a store filled over SMTP and the
//! CLI is copied into a private PostgreSQL 15 cluster the test starts; psql then finds
//! the same rows, Message-IDs and raw bytes, identity sequences past the copied ids, and
//! a second copy into the now full database refused.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::outbound::Sink;
use crate::support::*;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";
const ALICE: &str = "alice@demo.example";
/// The copy's database role's password: what must never be printed.
const PASSWORD: &str = "pw-Zq8!xv 42";

/// A private PostgreSQL cluster on a free loopback port, in a temporary directory owned
/// by the `postgres` user; stopped when dropped, whatever the test's outcome.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Local (socket) connections are trusted; TCP ones need a password (SCRAM).
    fn start() -> Cluster {
        require_root("a private PostgreSQL cluster (initdb as the postgres user)");
        assert!(
            Path::new(PG_BIN).join("initdb").is_file(),
            "{PG_BIN}/initdb not found: apt-get install postgresql-15"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        run(Command::new("chown").arg("postgres:").arg(dir.path()));
        let data = dir.path().join("data");
        run(as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]));
        let port = free_port();
        let cluster = Cluster { dir, port };
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            cluster.dir.path().display()
        );
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.path().join("log"))
            .args(["-w", "-o", &options, "start"]));
        cluster
    }

    /// A role `owner` with `password`, owning a new database `name`.
    fn create_database(&self, name: &str, owner: &str, password: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE {owner} LOGIN PASSWORD '{password}'"),
        );
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
    }

    /// The URL the copy signs in with (over TCP, so the password is checked).
    fn url(&self, database: &str, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` as the superuser over the socket; the output, one row per line.
    fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(format!("{PG_BIN}/psql"))
            .args(["-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim_end()
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/{program}"));
    command
}

fn run(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn mail(id: &str, to: &str, subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: Jan <jan@klant.example>\r\nTo: {to}\r\n\
         Subject: {subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n{extra}\
         MIME-Version: 1.0\r\n{body}"
    )
    .into_bytes()
}

fn plain(text: &str) -> String {
    format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
}

/// A multipart body with a small PDF attachment.
fn with_attachment() -> String {
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
     Content-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is attached.\r\n--b1\r\n\
     Content-Type: application/pdf; name=\"invoice.pdf\"\r\n\
     Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
     Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n"
        .into()
}

async fn deliver(d: &Daemon, id: &str, to: &str, subject: &str, extra: &str, body: &str) {
    let reply = d
        .send(
            "jan@klant.example",
            &[to],
            &mail(id, to, subject, extra, body),
        )
        .await;
    assert!(reply.starts_with("250"), "{id}: {reply}");
}

/// Fills a store: three conversations (one with an attachment), a customer's reply
/// threaded into the first, and an agent's reply delivered to the sink.
async fn filled_daemon(sink: &Sink) -> Daemon {
    let relay = sink.relay_config();
    let d = Daemon::start_sqlite_edited(move |text, _| text + &relay).await;
    deliver(
        &d,
        "q1@klant.example",
        SUPPORT,
        "Broken lid",
        "",
        &plain("Help"),
    )
    .await;
    let thread = "In-Reply-To: <q1@klant.example>\r\nReferences: <q1@klant.example>\r\n";
    deliver(
        &d,
        "q1b@klant.example",
        SUPPORT,
        "Re: Broken lid",
        thread,
        &plain("Still"),
    )
    .await;
    deliver(
        &d,
        "q2@klant.example",
        SALES,
        "Invoice",
        "",
        &with_attachment(),
    )
    .await;
    deliver(
        &d,
        "q3@klant.example",
        SUPPORT,
        "Ünïcode ✓",
        "",
        &plain("Grüße"),
    )
    .await;
    let first = conversation_with_subject(&d.list(&[]), "Broken lid");
    assert_eq!(d.show(first)["message_count"], 2, "the reply threads");
    let body = d.config_path.with_file_name("reply.txt");
    std::fs::write(&body, "A new lid is on its way.").expect("write reply");
    d.cli(&[
        "conversations",
        "reply",
        &first.to_string(),
        "--as",
        ALICE,
        "--body-file",
        body.to_str().unwrap(),
        "--json",
    ]);
    sink.wait_for(1).await;
    d
}

/// Every row of `sql` on the SQLite store, columns joined by `|` (as `psql -At` does).
fn sqlite_rows(database: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(database).expect("open store");
    let mut statement = conn.prepare(sql).expect("prepare");
    let width = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            let mut fields = Vec::new();
            for i in 0..width {
                fields.push(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(f) => f.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    rusqlite::types::ValueRef::Blob(b) => hex(&Sha256::digest(b)),
                });
            }
            Ok(fields.join("|"))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn copy_args<'a>(url: &'a str, password_file: &'a str) -> Vec<&'a str> {
    vec![
        "store",
        "copy",
        "--to",
        "postgres",
        "--url",
        url,
        "--password-file",
        password_file,
        "--json",
    ]
}

fn password_file(d: &Daemon, name: &str, password: &str) -> PathBuf {
    let path = d.config_path.with_file_name(name);
    std::fs::write(&path, format!("{password}\n")).expect("write password file");
    path
}

/// Runs the copy CLI; its output must never show the password.
fn copy_output(d: &Daemon, url: &str, password_file: &Path) -> std::process::Output {
    let output = d.cli_output(&copy_args(url, password_file.to_str().unwrap()));
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    }
    output
}

#[tokio::test]
async fn store_copy_moves_the_sqlite_store_into_postgres_and_refuses_a_full_destination() {
    let pg = Cluster::start();
    pg.create_database("inboxgate", "inboxgate", PASSWORD);
    let url = pg.url("inboxgate", "inboxgate");
    let sink = Sink::plain();
    let mut d = filled_daemon(&sink).await;
    d.halt().await;

    // A wrong password: refused at sign-in, nothing created, the password not shown.
    let wrong = copy_output(&d, &url, &password_file(&d, "wrong.pw", "not-it"));
    assert!(!wrong.status.success());
    let why = String::from_utf8_lossy(&wrong.stderr);
    assert!(why.contains("password authentication failed"), "{why}");
    assert_eq!(
        pg.psql("inboxgate", "SELECT to_regclass('messages') IS NULL"),
        "t"
    );

    let right = password_file(&d, "right.pw", PASSWORD);
    let output = copy_output(&d, &url, &right);
    assert!(
        output.status.success(),
        "store copy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["verified"], true, "{report:#}");
    assert!(report["next"]
        .as_str()
        .unwrap()
        .contains("backend = \"postgres\""));
    let copied: BTreeMap<String, i64> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    for table in ["messages_fts", "fts_progress"] {
        assert!(!copied.contains_key(table), "{table} copied");
    }
    let order: Vec<&str> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    let at = |name: &str| order.iter().position(|t| *t == name).expect(name);
    assert!(at("raw_messages") < at("messages") && at("contacts") < at("conversations"));
    assert!(at("conversations") < at("messages") && at("messages") < at("outbound_deliveries"));

    let db = &d.database_path;
    for (table, rows) in &copied {
        let in_sqlite = sqlite_rows(db, &format!("SELECT COUNT(*) FROM {table}"));
        assert_eq!(in_sqlite, vec![rows.to_string()], "{table} in SQLite");
        let in_pg = pg.psql("inboxgate", &format!("SELECT COUNT(*) FROM {table}"));
        assert_eq!(in_pg, rows.to_string(), "{table} in PostgreSQL");
    }
    assert_eq!(copied["messages"], 5, "four inbound, one outbound");
    assert_eq!(copied["conversations"], 3);
    assert_eq!(copied["outbound_deliveries"], 1);
    assert_eq!(
        pg.psql("inboxgate", "SELECT COUNT(*) FROM search_pending"),
        "5",
        "every copied message waits for the search index"
    );

    // The same rows, ids, Message-IDs, attachments and raw bytes on both sides.
    let same = |sqlite_sql: &str, pg_sql: &str| {
        assert_eq!(
            sqlite_rows(db, sqlite_sql),
            lines(&pg.psql("inboxgate", pg_sql))
        );
    };
    let messages = "SELECT id, conversation_id, raw_id, direction, message_id, subject, \
                    attachments_json, thread_reason FROM messages ORDER BY id";
    same(messages, messages);
    let known = "SELECT inbox, message_id, conversation_id FROM known_ids \
                 ORDER BY inbox, message_id";
    same(known, &format!("{known} COLLATE \"C\""));
    same(
        "SELECT id, size, body FROM raw_messages ORDER BY id",
        "SELECT id, size, encode(sha256(body), 'hex') FROM raw_messages ORDER BY id",
    );
    same(
        "SELECT id, status, recipient FROM outbound_deliveries ORDER BY id",
        "SELECT id, status, recipient FROM outbound_deliveries ORDER BY id",
    );
    assert_eq!(
        pg.psql("inboxgate", "SELECT version FROM schema_version"),
        "2",
        "PostgreSQL's own schema version"
    );

    // The identity sequences continue after the copied ids: new rows do not collide.
    let next_conversation = pg.psql(
        "inboxgate",
        "INSERT INTO conversations (inbox, channel, subject, subject_norm, contact_id, \
         created_at, last_message_at) VALUES ('Support', 'x', 's', 's', 1, 1, 1) RETURNING id",
    );
    let max: i64 = sqlite_rows(db, "SELECT MAX(id) FROM conversations")[0]
        .parse()
        .unwrap();
    assert_eq!(next_conversation, (max + 1).to_string());
    let next_raw = pg.psql(
        "inboxgate",
        "INSERT INTO raw_messages (received_at, mail_from, rcpt_to, size, body) \
         VALUES (1, 'a', '[]', 1, 'x') RETURNING id",
    );
    assert_eq!(next_raw, (copied["raw_messages"] + 1).to_string());

    // A second copy goes nowhere: the destination holds data now.
    let again = copy_output(&d, &url, &right);
    assert!(!again.status.success(), "a second copy was accepted");
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(
        why.contains("not empty") && why.contains("conversations"),
        "{why}"
    );
    assert!(again.stdout.is_empty());
    assert_eq!(pg.psql("inboxgate", "SELECT COUNT(*) FROM messages"), "5");

    // Into a second, empty database, in words: per table, the checks, the next step.
    pg.psql("postgres", "CREATE DATABASE second OWNER inboxgate");
    let second = pg.url("second", "inboxgate");
    let mut args = copy_args(&second, right.to_str().unwrap());
    args.pop();
    let text = d.cli(&args);
    assert!(text.contains("postgres://inboxgate@127.0.0.1"), "{text}");
    let messages_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("messages "));
    assert!(
        messages_line.is_some_and(|l| l.ends_with(" 5 rows")),
        "{text}"
    );
    assert!(text.contains("verification: ok"), "{text}");
    assert!(
        text.contains("next: set [store] backend = \"postgres\""),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));

    // And back: `backup` of that PostgreSQL store writes the same rows into SQLite.
    backup_matches_the_original(&d, &second, &right, copied.keys());
}

/// `inboxgate backup` on the PostgreSQL store at `url`: the SQLite file it writes holds
/// each of `tables` row for row as `d`'s own SQLite store does.
fn backup_matches_the_original<'a>(
    d: &Daemon,
    url: &str,
    password_file: &Path,
    tables: impl Iterator<Item = &'a String>,
) {
    let store = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n",
        password_file.display()
    );
    let data = d.database_path.parent().unwrap();
    let config = d.config_path.with_file_name("on-postgres.toml");
    std::fs::write(&config, config_text_on(data, "", &store)).unwrap();
    let backup = d.config_path.with_file_name("backup.db");
    let output = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config)
        .arg("backup")
        .arg(&backup)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("integrity ok"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for table in tables {
        let rows = |database: &Path| {
            let mut rows = sqlite_rows(database, &format!("SELECT * FROM {table}"));
            rows.sort();
            rows
        };
        assert_eq!(rows(&backup), rows(&d.database_path), "{table}");
    }
}

/// Speed: `INBOXGATE_COPY_BENCH_MESSAGES` messages (default 5,000) over SMTP, 20
/// sessions at once, then copied. Run by hand (`--ignored --nocapture`); prints figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn store_copy_speed() {
    let total: usize = std::env::var("INBOXGATE_COPY_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let pg = Cluster::start();
    pg.create_database("inboxgate", "inboxgate", PASSWORD);
    let mut d = Daemon::start_sqlite_edited(|text, _| text).await;
    let filling = Instant::now();
    let sessions: Vec<_> = (0..20)
        .map(|s| {
            let addr = d.addr;
            tokio::spawn(async move {
                let mut client = SmtpClient::connect(addr).await;
                for n in (s..total).step_by(20) {
                    let text = plain(&format!("Message {n}: {}", "lorem ipsum ".repeat(40)));
                    let id = format!("bench-{n}@klant.example");
                    let message = mail(&id, SUPPORT, &format!("Question {n}"), "", &text);
                    let reply = client.mail("jan@klant.example", &[SUPPORT], &message).await;
                    assert!(reply.starts_with("250"), "{reply}");
                }
                client.quit().await;
            })
        })
        .collect();
    for session in sessions {
        session.await.expect("session");
    }
    let filled = filling.elapsed();
    d.halt().await;
    let copies: i64 = std::env::var("INBOXGATE_COPY_BENCH_COPIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    replicate(&d.database_path, copies);
    let started = Instant::now();
    let output = copy_output(
        &d,
        &pg.url("inboxgate", "inboxgate"),
        &password_file(&d, "p", PASSWORD),
    );
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["verified"], true, "{report:#}");
    let bytes = std::fs::metadata(&d.database_path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "store copy: {total} messages x {copies} ({} rows, SQLite file {bytes} bytes; filled over SMTP \
         in {:.1} s) copied and verified in {:.2} s (the command's own figure: {} s)",
        report["rows"],
        filled.as_secs_f64(),
        took.as_secs_f64(),
        report["seconds"]
    );
}

/// Makes the stopped daemon's store `copies` times as big: each copy of the mail
/// (raw messages, conversations, messages, known ids, participants) under new ids and
/// Message-IDs, so a copy's speed can be measured at hundreds of thousands of messages.
fn replicate(database: &Path, copies: i64) {
    let conn = rusqlite::Connection::open(database).expect("open store");
    let max = |table: &str| -> i64 {
        conn.query_row(
            &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )
        .expect("max id")
    };
    let (raw, conversations, messages) =
        (max("raw_messages"), max("conversations"), max("messages"));
    conn.execute_batch("BEGIN").expect("begin");
    for k in 1..copies {
        let sql = format!(
            "INSERT INTO raw_messages SELECT id + {r}, received_at, mail_from, rcpt_to, size, body
               FROM raw_messages WHERE id <= {raw};
             INSERT INTO conversations (id, inbox, channel, subject, subject_norm, status,
               assignee, contact_id, spam, filtered, trashed_at, deleted, created_at,
               last_message_at, message_count, verdict, reasons)
             SELECT id + {c}, inbox, channel, subject, subject_norm, status, assignee,
               contact_id, spam, filtered, trashed_at, deleted, created_at, last_message_at,
               message_count, verdict, reasons FROM conversations WHERE id <= {conversations};
             INSERT INTO messages (id, conversation_id, raw_id, direction, message_id,
               from_addr, from_name, to_json, cc_json, subject, subject_norm, date,
               received_at, text, thread_index, attachments_json, verdict, reasons)
             SELECT id + {m}, conversation_id + {c}, raw_id + {r}, direction,
               message_id || '-{k}', from_addr, from_name, to_json, cc_json, subject,
               subject_norm, date, received_at, text, thread_index, attachments_json,
               verdict, reasons FROM messages WHERE id <= {messages};
             INSERT INTO known_ids SELECT inbox, message_id || '-{k}', conversation_id + {c},
               message_row + {m} FROM known_ids WHERE conversation_id <= {conversations};
             INSERT INTO participants SELECT conversation_id + {c}, address
               FROM participants WHERE conversation_id <= {conversations};",
            r = raw * k,
            c = conversations * k,
            m = messages * k,
        );
        conn.execute_batch(&sql).expect("replicate");
    }
    conn.execute_batch("COMMIT").expect("commit");
}
