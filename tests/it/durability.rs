//! B2 durability at the edges: a full disk answers 452 4.3.1 (never 250), loses nothing
//! that was acknowledged, keeps the daemon up, and recovers when space returns.
//! Uses a real small tmpfs, so it needs root (CI runs as root). All three cases are
//! about the SQLite file in the data directory: on PostgreSQL they say so and stop.

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

/// Unmounts even when the test fails.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn big_message(n: usize) -> Vec<u8> {
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    format!(
        "Message-ID: <full-{n}@klant.example>\r\nFrom: jan@klant.example\r\nTo: {SUPPORT}\r\n\
         Subject: big {n}\r\n\r\n{}",
        line.repeat(900)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_full_disk_answers_452_keeps_every_acknowledged_message_and_recovers() {
    if sqlite_only(
        "fills the SQLite data_dir's filesystem; PostgreSQL's counterpart is the \
         database-down test (4xx while it is down)",
    ) {
        return;
    }
    require_root("mounting a small tmpfs");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert!(mount_tmpfs(&data, "1m"), "mount tmpfs");
    let _mounted = Mounted(&data);
    let d = Daemon::start_in(dir, &data, "").await;
    let mut acknowledged = 0;
    let mut refused = None;
    for n in 0..100 {
        let reply = d
            .send("jan@klant.example", &[SUPPORT], &big_message(n))
            .await;
        if reply.starts_with("250 ") {
            acknowledged += 1;
        } else {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the 1 MB filesystem filled up");
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
    let stored: i64 = d
        .list(&[])
        .iter()
        .map(|c| c["message_count"].as_i64().unwrap())
        .sum();
    assert_eq!(stored, acknowledged);
    // Space returns: the same message is accepted now, without a restart.
    remount(&data, "64m");
    let reply = d
        .send(
            "jan@klant.example",
            &[SUPPORT],
            &big_message(acknowledged as usize),
        )
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let stored: i64 = d
        .list(&[])
        .iter()
        .map(|c| c["message_count"].as_i64().unwrap())
        .sum();
    assert_eq!(stored, acknowledged + 1);
    d.stop().await;
}

#[tokio::test]
async fn backup_copies_the_live_database_while_the_daemon_runs() {
    if sqlite_only("`inboxgate backup` copies the SQLite file; its PostgreSQL form is undecided") {
        return;
    }
    let d = Daemon::start().await;
    for n in 0..20 {
        let reply = d
            .send("jan@klant.example", &[SUPPORT], &big_message(n))
            .await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("backup.db");
    let out = d.cli(&["backup", copy.to_str().unwrap()]);
    assert!(out.contains("integrity ok"), "{out}");
    let db = rusqlite::Connection::open(&copy).unwrap();
    let count: i64 = db
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 20);
    // The daemon still takes mail, and a second backup to the same path is refused.
    let reply = d
        .send("jan@klant.example", &[SUPPORT], &big_message(99))
        .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args(["backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    d.stop().await;
}

#[test]
fn a_read_only_data_dir_stops_serve_with_a_clear_error() {
    if sqlite_only(
        "a read-only data_dir holds the SQLite store; PostgreSQL's counterpart is a \
         read-only database (4xx, recovers)",
    ) {
        return;
    }
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
