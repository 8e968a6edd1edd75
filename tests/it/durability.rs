//! B2 durability at the edges: a full disk answers 452 4.3.1 (never 250), loses nothing
//! that was acknowledged, keeps the daemon up, and recovers when space returns; a
//! backup is taken while the daemon runs; a read-only data directory is refused at
//! start when it holds the store. Uses real small tmpfs mounts, so it needs root (CI
//! runs as root). On PostgreSQL the full disk is the database cluster's own (a private
//! cluster whose data directory is the small tmpfs).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &Path, size: &str) {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "remount {}", dir.display());
}

/// Kibibytes in use on the filesystem mounted at `dir` (`df`).
fn used_kib(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-k"])
        .arg(dir)
        .output()
        .expect("run df");
    let text = String::from_utf8_lossy(&out.stdout);
    let used = text.lines().nth(1).map(str::trim).unwrap_or_default();
    used.parse()
        .unwrap_or_else(|_| panic!("df {}: {text}", dir.display()))
}

/// Unmounts even when the test fails.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn message_with_body(n: usize, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <full-{n}@klant.example>\r\nFrom: jan@klant.example\r\nTo: {SUPPORT}\r\n\
         Subject: big {n}\r\n\r\n{body}"
    )
    .into_bytes()
}

fn big_message(n: usize) -> Vec<u8> {
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    message_with_body(n, &line.repeat(900))
}

/// [`big_message`] with a body compression cannot shrink (PostgreSQL compresses large
/// values): 900 lines of pseudo-random hex words, the same for the same `n`.
fn incompressible_message(n: usize) -> Vec<u8> {
    let mut state = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut word = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        format!("{state:016x}")
    };
    let body: String = (0..900)
        .map(|_| format!("{} {} {} {}\r\n", word(), word(), word(), word()))
        .collect();
    message_with_body(n, &body)
}

#[tokio::test]
async fn a_full_disk_answers_452_keeps_every_acknowledged_message_and_recovers() {
    require_root("mounting a small tmpfs");
    if backend_is_postgres() {
        a_full_database_disk().await;
    } else {
        a_full_data_dir().await;
    }
}

/// SQLite: the data directory is a 1 MB tmpfs.
async fn a_full_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert!(mount_tmpfs(&data, "1m"), "mount tmpfs");
    let _mounted = Mounted(&data);
    let d = Daemon::start_in(dir, &data, "").await;
    fill_until_full_then_recover(&d, &data, big_message, "64m").await;
    d.stop().await;
}

/// PostgreSQL: a cluster of the test's own whose data directory is a tmpfs left a few
/// megabytes once the daemon's database is made (its write-ahead log is elsewhere, as
/// on a server whose pg_wal has its own volume: a full pg_wal stops the server itself).
async fn a_full_database_disk() {
    let dir = tempfile::tempdir().unwrap();
    // The postgres user must reach the mount point.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let disk = dir.path().join("pgdata");
    std::fs::create_dir(&disk).unwrap();
    assert!(mount_tmpfs(&disk, "256m"), "mount tmpfs");
    let _mounted = Mounted(&disk);
    let cluster = pg::Cluster::start_in(&disk).unwrap_or_else(|why| panic!("{why}"));
    let d = Daemon::start_on(&cluster.store_section()).await;
    remount(&disk, &format!("{}k", used_kib(&disk) + 4096));
    fill_until_full_then_recover(&d, &disk, incompressible_message, "256m").await;
    d.stop().await;
}

/// Sends `message(0)`, `message(1)`, … until one is refused, which must be 452 4.3.1;
/// then the daemon still answers and holds every acknowledged message. `disk` is then
/// remounted with `room`, and the refused message is accepted without a restart.
async fn fill_until_full_then_recover(
    d: &Daemon,
    disk: &Path,
    message: fn(usize) -> Vec<u8>,
    room: &str,
) {
    let mut acknowledged = 0;
    let mut refused = None;
    for n in 0..1000 {
        let reply = d.send("jan@klant.example", &[SUPPORT], &message(n)).await;
        if reply.starts_with("250 ") {
            acknowledged += 1;
        } else {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the small filesystem filled up");
    assert!(refused.starts_with("452 4.3.1"), "{refused}");
    assert!(acknowledged > 0);
    eprintln!(
        "disk full after {acknowledged} acknowledged messages: {}",
        refused.trim()
    );
    // Still up, and nothing acknowledged was lost.
    let mut client = d.client().await;
    assert!(client.greeting.starts_with("220"), "{}", client.greeting);
    assert!(client.cmd("NOOP").await.starts_with("250"));
    client.quit().await;
    assert_eq!(stored_messages(d), acknowledged);
    // Space returns: the same message is accepted now, without a restart.
    remount(disk, room);
    let reply = d
        .send(
            "jan@klant.example",
            &[SUPPORT],
            &message(acknowledged as usize),
        )
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(stored_messages(d), acknowledged + 1);
}

/// Messages in every conversation, as `conversations list` counts them.
fn stored_messages(d: &Daemon) -> i64 {
    d.list(&["--limit", "10000"])
        .iter()
        .map(|c| c["message_count"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn backup_copies_the_live_database_while_the_daemon_runs() {
    let d = Daemon::start().await;
    for n in 0..20 {
        let reply = d
            .send("jan@klant.example", &[SUPPORT], &big_message(n))
            .await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("backup.db");
    // Mail keeps arriving while the copy is made.
    let addr = d.addr;
    let arriving = tokio::spawn(async move {
        for n in 20..30 {
            let mut client = SmtpClient::connect(addr).await;
            let reply = client
                .mail("jan@klant.example", &[SUPPORT], &big_message(n))
                .await;
            client.quit().await;
            assert!(reply.starts_with("250 2.0.0"), "{reply}");
        }
    });
    let (config, to) = (d.config_path.clone(), copy.clone());
    let made = tokio::task::spawn_blocking(move || backup(&config, &to))
        .await
        .unwrap();
    arriving.await.unwrap();
    let out = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success() && out.contains("integrity ok"),
        "{out}"
    );
    if backend_is_postgres() {
        assert!(
            out.contains("SQLite copy of the PostgreSQL store") && out.contains("checks equal"),
            "{out}"
        );
    }
    // One consistent moment: each copied message with its raw copy and conversation.
    let db = rusqlite::Connection::open(&copy).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let copied = count("SELECT COUNT(*) FROM messages");
    assert!((20..=30).contains(&copied), "{copied} messages copied");
    let whole = count(
        "SELECT COUNT(*) FROM messages m JOIN raw_messages r ON r.id = m.raw_id \
         JOIN conversations c ON c.id = m.conversation_id",
    );
    assert_eq!(whole, copied);
    assert_eq!(count("SELECT COUNT(*) FROM raw_messages"), copied);
    drop(db);
    // The daemon still takes mail, and a second backup to the same path is refused.
    let reply = d
        .send("jan@klant.example", &[SUPPORT], &big_message(99))
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let refused = backup(&d.config_path, &copy);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    if backend_is_postgres() {
        restore_into_a_new_database(&copy, copied);
    }
    d.stop().await;
}

/// `inboxgate backup COPY` with the configuration at `config`, whatever its outcome.
fn backup(config: &Path, copy: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(config)
        .arg("backup")
        .arg(copy)
        .output()
        .unwrap()
}

/// `store copy --to postgres` from `backup` (put where an installation keeps its SQLite
/// store) into a new database: verified, and it holds `messages` messages.
fn restore_into_a_new_database(backup: &Path, messages: i64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(backup, data.join("inboxgate.db")).unwrap();
    let config_path = dir.path().join("inboxgate.toml");
    std::fs::write(&config_path, config_text_on(&data, "", "")).unwrap();
    let cluster = pg::cluster();
    let database = cluster.create_database();
    let out = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config_path)
        .args([
            "store",
            "copy",
            "--to",
            "postgres",
            "--url",
            &cluster.url(&database),
        ])
        .arg("--password-file")
        .arg(cluster.password_file())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("verification: ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = cluster.psql(&database, "SELECT COUNT(*) FROM messages");
    assert_eq!(restored, messages.to_string());
}

/// On SQLite the data directory holds the store: a read-only one stops `serve` at once
/// with an error naming it. On PostgreSQL `serve` writes nothing there: it starts,
/// takes mail and stops cleanly on SIGTERM with the data directory read-only.
#[tokio::test]
async fn a_read_only_data_dir_stops_serve_on_sqlite_and_is_not_needed_on_postgres() {
    require_root("mounting a read-only tmpfs");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount read-only tmpfs");
    let _mounted = Mounted(&data);
    let config_path = dir.path().join("inboxgate.toml");
    if backend_is_postgres() {
        serves_with_a_read_only_data_dir(&config_path, &data).await;
        return;
    }
    std::fs::write(&config_path, config_text(&data, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not writable")
            && stderr.contains("Read-only file system")
            && stderr.contains(&data.display().to_string()),
        "{stderr}"
    );
}

/// Ends the `serve` process when the test fails before it does.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// PostgreSQL: the real `serve` on fixed loopback ports with `data` read-only.
async fn serves_with_a_read_only_data_dir(config_path: &Path, data: &Path) {
    let port = |what| pg::free_port().unwrap_or_else(|why| panic!("{what}: {why}"));
    let (smtp, api) = (port("smtp"), port("api"));
    let text = config_text(data, "")
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{smtp}"), 1)
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{api}"), 1);
    std::fs::write(config_path, text).unwrap();
    let log = config_path.with_extension("log");
    let mut serving = Serving(
        Command::new(env!("CARGO_BIN_EXE_inboxgate"))
            .arg("--config")
            .arg(config_path)
            .arg("serve")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], smtp));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        let exited = serving.0.try_wait().unwrap();
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(exited.is_none(), "serve ended ({exited:?}): {}", log_text());
        assert!(
            std::time::Instant::now() < deadline,
            "serve is not listening: {}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut client = SmtpClient::connect(addr).await;
    let reply = client
        .mail("jan@klant.example", &[SUPPORT], &big_message(0))
        .await;
    client.quit().await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let listed = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(config_path)
        .args(["conversations", "list", "--json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("big 0"), "{listed}");
    let stopped = Command::new("kill")
        .args(["-TERM", &serving.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = serving.0.wait().unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "serve ended with {status}: {log_text}");
}
