//! A private Dovecot per test (see ../shared/TESTING.md): its own config, state and log
//! in a temp dir, a passwd-file user with the `mail` user's uid/gid, a Maildir, plain
//! and implicit-TLS listeners on free loopback ports, a self-signed certificate, and
//! `Junk` plus `Quarantine` folders flagged `\Junk`. Fixtures go in over IMAP (APPEND
//! with LITERAL+) through a small raw client. For XOAUTH2 a Dovecot can also check
//! tokens against a small introspection endpoint the test runs.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const USER: &str = "help@demo.example";
pub const PASSWORD: &str = "s3cret pass";

/// A running private Dovecot; stopped when dropped.
pub struct Dovecot {
    pub imap_port: u16,
    pub imaps_port: u16,
    /// The self-signed certificate (for 127.0.0.1), to trust as `ca_file`.
    pub cert_path: PathBuf,
    pub password_file: PathBuf,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Dovecot::start_with(None)
    }

    /// A Dovecot that also accepts XOAUTH2 / OAUTHBEARER, checking each token with the
    /// RFC 7662 introspection endpoint at `introspection_url` (its `oauth2` passdb).
    pub fn start_with_oauth2(introspection_url: &str) -> Dovecot {
        Dovecot::start_with(Some(introspection_url))
    }

    fn start_with(introspection_url: Option<&str>) -> Dovecot {
        crate::support::require("dovecot", "apt-get install dovecot-imapd");
        crate::support::require_root("a private Dovecot (its mail user has the mail uid)");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        // Dovecot's processes run as other users: they must reach into the temp dir.
        chmod(&root, 0o755);
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
        let cert_path = root.join("cert.pem");
        std::fs::write(&cert_path, certified.cert.pem()).expect("cert");
        std::fs::write(root.join("key.pem"), certified.signing_key.serialize_pem()).expect("key");
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("home");
        chown_mail(&home);
        let users = root.join("users");
        std::fs::write(
            &users,
            format!("{USER}:{{PLAIN}}{PASSWORD}:8:8::{}::\n", home.display()),
        )
        .expect("users");
        chmod(&users, 0o644);
        let password_file = root.join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password");
        let (imap_port, imaps_port) = (free_port(), free_port());
        let config_path = root.join("dovecot.conf");
        let mut text = config(&root, imap_port, imaps_port);
        if let Some(url) = introspection_url {
            text = oauth2_config(&root, &text, url);
        }
        std::fs::write(&config_path, text).expect("config");
        let dovecot = Dovecot {
            imap_port,
            imaps_port,
            cert_path,
            password_file,
            config_path,
            dir,
        };
        dovecot.run();
        dovecot
    }

    /// Starts the master process and waits until the plain listener accepts.
    pub fn run(&self) {
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run dovecot (apt-get install dovecot-imapd)");
        assert!(status.success(), "dovecot failed to start: {}", self.log());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.imap_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits until it is gone. Its running `imap` processes would
    /// outlive the master and keep serving their connections, so they are kicked first.
    pub fn stop(&self) {
        self.doveadm(&["kick", USER]);
        self.doveadm(&["stop"]);
        let pid_file = self.dir.path().join("run/master.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_file.exists()
            || std::net::TcpStream::connect(("127.0.0.1", self.imap_port)).is_ok()
        {
            assert!(Instant::now() < deadline, "dovecot did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn doveadm(&self, args: &[&str]) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// An IMAP channel's `imap = { .. }` table for this server.
    pub fn imap_table(&self, tls: &str) -> String {
        let port = if tls == "implicit" {
            self.imaps_port
        } else {
            self.imap_port
        };
        format!(
            r#"{{ host = "127.0.0.1", port = {port}, tls = "{tls}", username = "{USER}", password_file = "{}", ca_file = "{}" }}"#,
            self.password_file.display(),
            self.cert_path.display()
        )
    }

    /// A logged-in raw IMAP client over plain TCP.
    pub async fn client(&self) -> RawImap {
        RawImap::login(SocketAddr::from(([127, 0, 0, 1], self.imap_port))).await
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if self.dir.path().join("run/master.pid").exists() {
            self.stop();
        }
    }
}

fn config(root: &Path, imap_port: u16, imaps_port: u16) -> String {
    let d = root.display();
    format!(
        r#"protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \Junk
    auto = create
  }}
  mailbox Quarantine {{
    special_use = \Junk
    auto = create
  }}
}}
"#
    )
}

/// Adds the `oauth2` passdb in front of the passwd-file one: token logins are checked
/// by POSTing the token to the introspection endpoint, which must call it active and
/// name the user; passwords still go to the passwd-file.
fn oauth2_config(root: &Path, config: &str, introspection_url: &str) -> String {
    let ext = root.join("dovecot-oauth2.conf.ext");
    std::fs::write(
        &ext,
        format!(
            "introspection_mode = post\nintrospection_url = {introspection_url}\n\
             username_attribute = username\nactive_attribute = active\nactive_value = true\n\
             force_introspection = yes\n"
        ),
    )
    .expect("oauth2 config");
    chmod(&ext, 0o644);
    let oauth_passdb = format!(
        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\npassdb {{",
        ext.display()
    );
    config
        .replace(
            "auth_mechanisms = plain login",
            "auth_mechanisms = plain login xoauth2 oauthbearer",
        )
        .replacen("passdb {", &oauth_passdb, 1)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_mail(path: &Path) {
    std::os::unix::fs::chown(path, Some(8), Some(8)).expect("chown to mail (8:8); run as root");
}

/// A minimal IMAP client for fixtures: LOGIN, APPEND (LITERAL+), CREATE, DELETE.
pub struct RawImap {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    tag: u32,
}

impl RawImap {
    pub async fn login(addr: SocketAddr) -> RawImap {
        let stream = TcpStream::connect(addr).await.expect("connect to dovecot");
        let (read, writer) = stream.into_split();
        let mut client = RawImap {
            reader: BufReader::new(read),
            writer,
            tag: 0,
        };
        let greeting = client.line().await;
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        client.ok(&format!("LOGIN \"{USER}\" \"{PASSWORD}\"")).await;
        client
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("read");
        line
    }

    /// Sends a command and waits for its tagged OK.
    pub async fn ok(&mut self, command: &str) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .expect("write");
        self.wait(&tag).await;
    }

    async fn wait(&mut self, tag: &str) {
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "dovecot closed the connection");
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                assert!(status.starts_with("OK"), "{tag}: {line}");
                return;
            }
        }
    }

    /// APPENDs each message to `folder`, pipelined with non-synchronizing literals.
    pub async fn append(&mut self, folder: &str, messages: &[Vec<u8>]) {
        let mut tags = Vec::new();
        for chunk in messages.chunks(200) {
            let mut out = Vec::new();
            for message in chunk {
                self.tag += 1;
                let tag = format!("t{}", self.tag);
                let message = crlf(message);
                out.extend_from_slice(
                    format!("{tag} APPEND \"{folder}\" {{{}+}}\r\n", message.len()).as_bytes(),
                );
                out.extend_from_slice(&message);
                out.extend_from_slice(b"\r\n");
                tags.push(tag);
            }
            self.writer.write_all(&out).await.expect("write");
            for tag in tags.drain(..) {
                self.wait(&tag).await;
            }
        }
    }

    /// `SEARCH criteria` in the selected folder; asserts how many messages match.
    pub async fn expect_search(&mut self, criteria: &str, expected: usize) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} SEARCH {criteria}\r\n").as_bytes())
            .await
            .expect("write");
        let mut found = None;
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "dovecot closed the connection");
            if let Some(rest) = line.strip_prefix("* SEARCH") {
                found = Some(rest.split_whitespace().count());
            } else if line.starts_with(&format!("{tag} ")) {
                break;
            }
        }
        assert_eq!(found, Some(expected), "SEARCH {criteria}");
    }

    pub async fn logout(mut self) {
        let _ = self.writer.write_all(b"z LOGOUT\r\n").await;
    }
}

/// CRLF line endings throughout, as IMAP wants.
fn crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in message.split(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// A small message with its own Message-ID.
pub fn message(id: &str, from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: {USER}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Tue, 14 Jan 2025 10:00:00 +0000\r\n\r\nHello about {subject}.\r\n"
    )
    .into_bytes()
}

/// `count` messages cycled from ../shared/corpora/spam, each given a unique Message-ID
/// (the originals' ids move to `X-Original-Message-ID`), so none is a duplicate.
pub fn corpus_messages(count: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for folder in ["easy-ham-1", "spam-1"] {
        let dir = crate::support::require_corpus(&format!("spam/spamassassin/{folder}"));
        let entries = std::fs::read_dir(&dir).expect("corpus folder");
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.sort();
    let originals: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(
        !originals.is_empty(),
        "the spamassassin corpus folders are empty"
    );
    (0..count)
        .map(|i| unique_id(&originals[i % originals.len()], i))
        .collect()
}

fn unique_id(original: &[u8], n: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(original);
    let body_start = text.find("\n\n").map_or(text.len(), |i| i + 1);
    let (headers, body) = text.split_at(body_start);
    let mut out = format!("Message-ID: <corpus-{n}@imap.test>\n");
    for (i, line) in headers.lines().enumerate() {
        if i == 0 && line.starts_with("From ") {
            continue; // the mbox separator line
        }
        if line.to_ascii_lowercase().starts_with("message-id:") {
            out.push_str("X-Original-");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(body);
    out.into_bytes()
}

/// A token introspection endpoint (RFC 7662) over real HTTP/1.1, as Dovecot's `oauth2`
/// passdb calls it with `introspection_mode = post`: one token is active and belongs
/// to [`USER`], every other token is inactive. It remembers each token it was asked.
pub struct Introspection {
    pub url: String,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Introspection {
    pub async fn start(active_token: &str) -> Introspection {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/introspect",
            listener.local_addr().expect("addr").port()
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (active, log) = (active_token.to_string(), asked.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_introspection(stream, active.clone(), log.clone()));
            }
        });
        Introspection { url, asked, task }
    }

    /// The tokens Dovecot asked about, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

impl Drop for Introspection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers POSTs (`token=..`, form-encoded) on one keep-alive connection.
async fn answer_introspection(stream: TcpStream, active: String, asked: Arc<Mutex<Vec<String>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let token = body
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .unwrap_or_default()
            .to_string();
        let json = if token == active {
            format!(r#"{{"active":true,"username":"{USER}"}}"#)
        } else {
            r#"{"active":false}"#.to_string()
        };
        asked.lock().expect("lock").push(token);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
