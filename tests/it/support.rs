//! Test support: a real daemon on an ephemeral port with its own data directory, a raw
//! SMTP client over TCP, and the real CLI binary to read the results.
//!
//! `INBOXGATE_TEST_BACKEND=postgres` runs every daemon on a database of its own in a
//! private PostgreSQL cluster ([`pg`]) instead of SQLite in its data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use inboxgate::app::{self, Running};
use inboxgate::config::{self, Config};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub(crate) use crate::postgres_cluster as pg;

/// Whether the tests run on PostgreSQL: `INBOXGATE_TEST_BACKEND=postgres` (the
/// default, unset or `sqlite`, is SQLite). Any other value fails the test.
#[track_caller]
pub fn backend_is_postgres() -> bool {
    match std::env::var("INBOXGATE_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => {
            panic!("INBOXGATE_TEST_BACKEND={other:?}: expected \"sqlite\" or \"postgres\"")
        }
    }
}

/// True (after saying so on stderr, with `why`) when the tests run on PostgreSQL: the
/// caller then leaves out a check that only SQLite has, e.g.
/// `if !sqlite_only("the store is one file") { assert!(db.exists()) }`.
pub fn sqlite_only(why: &str) -> bool {
    if !backend_is_postgres() {
        return false;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!("SQLITE-ONLY in {test}, left out on postgres: {why}");
    true
}

/// A test configuration: two inboxes (Support, Sales), users alice/bob/carol, SMTP on
/// an ephemeral port, data in `data_dir`. `extra_smtp` adds keys to `[smtp]`. SPF, DKIM
/// and DMARC checks are off, so tests ask no DNS server unless they mean to. On
/// PostgreSQL each call makes a new database: a new installation.
pub fn config_text(data_dir: &Path, extra_smtp: &str) -> String {
    let store = if backend_is_postgres() {
        pg::cluster().store_section()
    } else {
        String::new()
    };
    config_text_on(data_dir, extra_smtp, &store)
}

/// [`config_text`] with `store` (a `[store]` section, or nothing for SQLite).
pub fn config_text_on(data_dir: &Path, extra_smtp: &str, store: &str) -> String {
    format!(
        r#"
[server]
hostname = "mx.test.example"
data_dir = "{data}"

{store}
[smtp]
listen = ["127.0.0.1:0"]
{extra_smtp}

[api]
listen = "127.0.0.1:0"

[classification]
check_authentication = false

[account]
subdomain = "demo"
fallback_domain = "hs-inbox.com"
company_name = "Demo Inc"

[[users]]
email = "alice@demo.example"
name = "Alice Smith"

[[users]]
email = "bob@demo.example"
name = "Bob Jansen"

[[users]]
email = "root@demo.example"
name = "Root Admin"
super_admin = true

[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = {{ mode = "agent_and_company", company = "Demo Support" }}

  [[inboxes.channels]]
  kind = "fallback"
  user = "helpdesk"
  from_name = {{ mode = "company", company = "Demo Helpdesk" }}

[[inboxes]]
name = "Sales"
access = {{ users = ["bob@demo.example"] }}
  [[inboxes.channels]]
  kind = "fallback"
  user = "sales"
  from_name = {{ mode = "company", company = "Demo Sales" }}

  [[inboxes.channels]]
  kind = "fallback"
  user = "old-sales"
  status = "off"
  from_name = {{ mode = "company", company = "Demo Old Sales" }}
"#,
        data = data_dir.display()
    )
}

/// A clock tests can move.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

/// A running daemon with its own temporary data directory and config file.
pub struct Daemon {
    pub addr: SocketAddr,
    /// The HTTP API's address.
    pub api_addr: SocketAddr,
    pub config_path: PathBuf,
    /// The SQLite file (none on PostgreSQL: see [`Daemon::query_i64`] and friends).
    pub database_path: PathBuf,
    pub clock: TestClock,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub async fn start() -> Daemon {
        Daemon::start_with("").await
    }

    pub async fn start_with(extra_smtp: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Daemon::start_in(dir, &data_dir, extra_smtp).await
    }

    /// Starts with the data directory at `data_dir` (e.g. on a small filesystem).
    pub async fn start_in(dir: tempfile::TempDir, data_dir: &Path, extra_smtp: &str) -> Daemon {
        let text = config_text(data_dir, extra_smtp);
        Daemon::start_from(dir, data_dir, text).await
    }

    /// Starts with `extra` (more inboxes and channels) appended to the test config.
    pub async fn start_with_config(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let text = config_text(&data_dir, "") + extra;
        Daemon::start_from(dir, &data_dir, text).await
    }

    /// Stops the daemon, runs `between`, and starts it again on the same data directory
    /// and config.
    pub async fn restart_after(mut self, between: impl std::future::Future<Output = ()>) -> Daemon {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        between.await;
        let text = std::fs::read_to_string(&self.config_path).expect("config");
        let data_dir = self.database_path.parent().expect("data dir").to_path_buf();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("temp dir"));
        Daemon::start_from(dir, &data_dir, text).await
    }

    async fn start_from(dir: tempfile::TempDir, data_dir: &Path, text: String) -> Daemon {
        Daemon::launch(dir, data_dir, &text).await
    }

    /// Starts on the `[store]` section `store` (e.g. a database of a cluster the test
    /// started for itself).
    pub async fn start_on(store: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let text = config_text_on(&data_dir, "", store);
        Daemon::launch(dir, &data_dir, &text).await
    }

    /// Starts one node of a shared PostgreSQL store: the test configuration on the
    /// `[store]` section `store` (the same for every node of one installation), with
    /// `[server] node = name`, then changed by `edit`.
    pub async fn start_node(
        store: &str,
        name: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let node = format!("[server]\nnode = \"{name}\"\n");
        let text = config_text_on(&data_dir, "", store).replacen("[server]\n", &node, 1);
        Daemon::launch(dir, &data_dir, &edit(text)).await
    }

    /// Starts with `keys` added to `[classification]` (a `check_authentication` among
    /// them replaces the base config's `false`).
    pub async fn start_with_classification(keys: &str) -> Daemon {
        let keys = keys.to_string();
        Daemon::start_edited(move |text, _| {
            let text = if keys.contains("check_authentication") {
                text.replace("check_authentication = false\n", "")
            } else {
                text
            };
            text.replace("[classification]\n", &format!("[classification]\n{keys}\n"))
        })
        .await
    }

    /// Starts with the test configuration changed by `edit` (it gets the text and the
    /// temporary directory, e.g. to write certificates into).
    pub async fn start_edited(edit: impl FnOnce(String, &Path) -> String) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let text = edit(config_text(&data_dir, ""), dir.path());
        Daemon::launch(dir, &data_dir, &text).await
    }

    /// [`Daemon::start_edited`] on the embedded SQLite store whatever the backend switch
    /// says (for tests about SQLite itself, such as copying it into PostgreSQL).
    pub async fn start_sqlite_edited(edit: impl FnOnce(String, &Path) -> String) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let text = edit(config_text_on(&data_dir, "", ""), dir.path());
        Daemon::launch(dir, &data_dir, &text).await
    }

    async fn launch(dir: tempfile::TempDir, data_dir: &Path, text: &str) -> Daemon {
        let config_path = dir.path().join("inboxgate.toml");
        std::fs::write(&config_path, text).expect("write config");
        let clock = TestClock(Arc::new(AtomicI64::new(1_800_000_000)));
        let running = Daemon::run(text, &clock).await;
        Daemon {
            addr: running.smtp_addrs[0],
            api_addr: running.api_addr,
            database_path: data_dir.join("inboxgate.db"),
            config_path,
            clock,
            running: Some(running),
            _dir: dir,
        }
    }

    async fn run(text: &str, clock: &TestClock) -> Running {
        show_daemon_log();
        let config: Config = config::parse(text).expect("test config is valid");
        let now = clock.0.clone();
        app::start(config, Arc::new(move || now.load(Ordering::SeqCst)))
            .await
            .expect("daemon starts")
    }

    /// Stops the daemon and starts it again on the same data and config (same clock).
    pub async fn restart(mut self) -> Daemon {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let text = std::fs::read_to_string(&self.config_path).expect("read config");
        let running = Daemon::run(&text, &self.clock).await;
        self.addr = running.smtp_addrs[0];
        self.api_addr = running.api_addr;
        self.running = Some(running);
        self
    }

    /// Replaces the running configuration with `text` (as SIGHUP does) and rewrites the
    /// config file, so CLI calls see the same configuration.
    pub fn reload(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
        let config: Config = config::parse(text).expect("reloaded config is valid");
        self.running
            .as_ref()
            .expect("daemon running")
            .reload(config);
    }

    /// The configuration file's text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("read config")
    }

    /// The test clock's "now".
    pub fn now(&self) -> i64 {
        self.clock.0.load(Ordering::SeqCst)
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Stops the daemon but keeps its data directory and config, so the CLI still runs
    /// against the store it left.
    pub async fn halt(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Runs the trash retention sweep now (by the test clock); returns how many
    /// conversations it deleted.
    pub async fn sweep_trash(&self) -> usize {
        let running = self.running.as_ref().expect("daemon running");
        running.trash.sweep_now().await.expect("sweeper running")
    }

    /// A new API token for `email`, made with the real CLI.
    pub fn token(&self, email: &str) -> String {
        self.cli(&["users", "token", "create", email])
            .trim()
            .to_string()
    }

    /// An HTTP client for this daemon's API.
    pub fn api(&self) -> Api {
        Api {
            base: format!("http://{}", self.api_addr),
            http: reqwest::Client::new(),
        }
    }

    pub async fn client(&self) -> SmtpClient {
        SmtpClient::connect(self.addr).await
    }

    /// Sends one message in its own session; returns the reply to the final dot.
    pub async fn send(&self, from: &str, to: &[&str], message: &[u8]) -> String {
        let mut client = self.client().await;
        let reply = client.mail(from, to, message).await;
        client.quit().await;
        reply
    }

    /// Runs the real `inboxgate` binary against this daemon's config (and its test
    /// clock, through `INBOXGATE_NOW`), whatever its outcome.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_inboxgate"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env("INBOXGATE_NOW", self.now().to_string())
            .output()
            .expect("run inboxgate")
    }

    /// Runs the real `inboxgate` binary against this daemon's config; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_output(args);
        assert!(
            output.status.success(),
            "inboxgate {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// `conversations list --json` with extra arguments.
    pub fn list(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["conversations", "list", "--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        serde_json::from_str::<Value>(&out)
            .expect("list prints JSON")
            .as_array()
            .expect("list prints an array")
            .clone()
    }

    /// `conversations show ID --json`.
    pub fn show(&self, id: i64) -> Value {
        let out = self.cli(&["conversations", "show", &id.to_string(), "--json"]);
        serde_json::from_str(&out).expect("show prints JSON")
    }
}

/// A line-oriented SMTP client over real TCP.
pub struct SmtpClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub greeting: String,
}

impl SmtpClient {
    pub async fn connect(addr: SocketAddr) -> SmtpClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut client = SmtpClient {
            reader: BufReader::new(read),
            writer,
            greeting: String::new(),
        };
        client.greeting = client.reply().await;
        client
    }

    /// Reads one (possibly multi-line) reply; empty when the server closed.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).await.unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// EHLO, MAIL, RCPT…, DATA, message (CRLF-normalized, dot-stuffed), final dot.
    pub async fn mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let ehlo = self.cmd("EHLO client.test").await;
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        let reply = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(reply.starts_with("250"), "MAIL: {reply}");
        for rcpt in to {
            let reply = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(reply.starts_with("250"), "RCPT {rcpt}: {reply}");
        }
        let reply = self.cmd("DATA").await;
        assert!(reply.starts_with("354"), "DATA: {reply}");
        self.write(&wire_format(message)).await;
        self.write(b".\r\n").await;
        self.reply().await
    }

    pub async fn quit(&mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n").await;
        let _ = self.reply().await;
    }
}

/// CRLF line endings, dot-stuffing, and a final CRLF: what a real client sends.
pub fn wire_format(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// A fixture from `fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

impl Daemon {
    /// Starts a graceful stop but keeps the data directory, so the CLI can still read
    /// the store while the daemon drains and after it has stopped. Nothing happens
    /// until the returned future runs; spawn it to keep talking to the daemon meanwhile.
    pub fn begin_stop(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let running = self.running.take();
        async move {
            if let Some(running) = running {
                running.stop().await;
            }
        }
    }
}

/// The id of the conversation whose subject contains `needle`.
pub fn conversation_with_subject(list: &[Value], needle: &str) -> i64 {
    list.iter()
        .find(|c| c["subject"].as_str().is_some_and(|s| s.contains(needle)))
        .and_then(|c| c["id"].as_i64())
        .unwrap_or_else(|| panic!("no conversation with subject containing {needle:?}"))
}
/// A JSON client for the HTTP API over real TCP.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// Sends `method path` with an optional bearer token and JSON body; returns the
    /// status and the body parsed as JSON (`Null` when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("http body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// GET that must succeed; returns the JSON.
    pub async fn ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Raw bytes of a GET.
    pub async fn bytes(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("http request");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }
}

/// A private dnsmasq answering for `*.test` from the records it is given (a real DNS
/// server for the MX cases); everything else under `test` is NXDOMAIN.
pub struct Dns {
    pub port: u16,
    child: std::process::Child,
}

impl Dns {
    /// `records`: dnsmasq options such as `--mx-host=a.test,mx.a.test,10`.
    pub fn start(records: &[String]) -> Dns {
        require("dnsmasq", "apt-get install dnsmasq-base");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--local=/test/",
            ])
            .args(records)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian dnsmasq-base)");
        // Wait until it answers over TCP (it listens on both).
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Dns { port, child }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Every sample of `GET /metrics`, by its full name with labels.
    pub async fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let url = format!("http://{}/metrics", self.api_addr);
        let text = reqwest::get(url)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// One sample of `GET /metrics` (0 when absent), e.g.
    /// `inboxgate_smtp_refusals_total{reason="bad_address",code="501 5.1.3"}`.
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics().await.get(name).copied().unwrap_or(0.0)
    }
}

/// Requirements already found met, so each is checked once per test binary.
static MET: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Checks `requirement` once with `check`; fails the calling test with `missing` when
/// it is not met. A test whose tool or privilege is missing fails and says what to
/// install: it never passes by skipping its work.
#[track_caller]
fn require_that(requirement: &str, check: impl FnOnce() -> bool, missing: String) {
    let mut met = MET.lock().unwrap_or_else(|e| e.into_inner());
    if met.iter().any(|m| m == requirement) {
        return;
    }
    assert!(check(), "{missing}");
    met.push(requirement.to_string());
}

/// Fails the test unless `command` is on `PATH`, e.g.
/// `require("dnsmasq", "apt-get install dnsmasq-base")`.
#[track_caller]
pub fn require(command: &str, install: &str) {
    let on_path = || {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
    };
    require_that(command, on_path, format!("{command} not found: {install}"));
}

/// Fails the test unless Debian's `/usr/bin/python3` can import `module` (Debian's
/// python3-* packages are importable from it only).
#[track_caller]
pub fn require_python_module(module: &str, install: &str) {
    let importable = || {
        Command::new("/usr/bin/python3")
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing = format!("/usr/bin/python3 cannot import {module}: {install}");
    require_that(&format!("python3:{module}"), importable, missing);
}

/// Fails the test unless it runs as root (`why` names what needs it).
#[track_caller]
pub fn require_root(why: &str) {
    let root = || {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    };
    let missing = format!("not root: {why} needs root; run the tests as root, as CI does");
    require_that("root", root, missing);
}

/// The shared corpus folder `relative` (under `../shared/corpora`); fails the test when
/// it is missing.
#[track_caller]
pub fn require_corpus(relative: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpora")
        .join(relative);
    let missing = format!(
        "corpus {} missing: the tests read ../shared/corpora beside the repository \
         (CI provides it)",
        dir.display()
    );
    let present = dir.is_dir();
    require_that(&format!("corpus:{relative}"), || present, missing);
    dir
}

impl Daemon {
    /// Waits until the outbound worker has made two more passes over the queue than it
    /// had when called, so one whole pass began afterwards: whatever was due by then has
    /// been claimed. Tests assert that nothing went out after this, never after a sleep.
    pub async fn outbound_worker_pass(&self) {
        const CLAIMS: &str = "inboxgate_outbound_claims_total";
        let start = self.metric(CLAIMS).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.metric(CLAIMS).await < start + 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the outbound worker made no pass over the queue in 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The store behind a daemon, on either backend, for the few tests that must look at or
/// change rows no command shows. The SQL is the store's own (its table names).
impl Daemon {
    /// This daemon's PostgreSQL database (from its config file); fails on SQLite.
    pub fn postgres_database(&self) -> String {
        let config = config::parse(&self.config_text()).expect("config");
        match config.store_target() {
            config::StoreTarget::Postgres { url, .. } => {
                let path = url.rsplit('/').next().unwrap_or_default();
                path.split('?').next().unwrap_or_default().to_string()
            }
            config::StoreTarget::Sqlite(path) => {
                panic!("the daemon is on SQLite ({})", path.display())
            }
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(&self.database_path).expect("open the SQLite store");
        db.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        db
    }

    /// The one integer that `sql` selects.
    #[track_caller]
    pub fn query_i64(&self, sql: &str) -> i64 {
        if backend_is_postgres() {
            let out = pg::cluster().psql(&self.postgres_database(), sql);
            out.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{sql}: not an integer: {out:?}"))
        } else {
            self.sqlite()
                .query_row(sql, [], |row| row.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }

    /// Runs `sql` behind the daemon's back (e.g. to make the spam model look old).
    #[track_caller]
    pub fn execute_sql(&self, sql: &str) {
        if backend_is_postgres() {
            pg::cluster().psql(&self.postgres_database(), sql);
        } else {
            self.sqlite()
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Every byte the store keeps: the SQLite file and its write-ahead log, or a
    /// `pg_dump` of the database's rows.
    pub fn store_bytes(&self) -> Vec<u8> {
        if backend_is_postgres() {
            return pg::cluster().dump(&self.postgres_database());
        }
        let mut bytes = std::fs::read(&self.database_path).expect("read the SQLite store");
        let wal = self.database_path.with_extension("db-wal");
        bytes.extend(std::fs::read(wal).unwrap_or_default());
        bytes
    }
}

/// With `INBOXGATE_TEST_LOG` set (a filter such as `warn` or `inboxgate=debug`), the
/// daemons' log goes to the test's output: for finding why a test failed.
fn show_daemon_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("INBOXGATE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}
