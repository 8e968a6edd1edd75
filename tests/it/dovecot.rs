//! A private Dovecot per test (see ../shared/TESTING.md): its own config, state and log
//! in a temp dir, a passwd-file user with the `mail` user's uid/gid, a Maildir, plain
//! and implicit-TLS listeners on free loopback ports, a self-signed certificate, and
//! `Junk` plus `Quarantine` folders flagged `\Junk`. Fixtures go in over IMAP (APPEND
//! with LITERAL+) through a small raw client.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
        std::fs::write(&config_path, config(&root, imap_port, imaps_port)).expect("config");
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
pub fn corpus_messages(count: usize) -> Option<Vec<Vec<u8>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/spam/spamassassin");
    let mut files = Vec::new();
    for folder in ["easy-ham-1", "spam-1"] {
        let entries = std::fs::read_dir(root.join(folder)).ok()?;
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.sort();
    if files.is_empty() {
        return None;
    }
    let originals: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    Some(
        (0..count)
            .map(|i| unique_id(&originals[i % originals.len()], i))
            .collect(),
    )
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
