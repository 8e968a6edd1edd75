//! Several processes on one data directory at once: scripts run CLI commands in
//! parallel, and several nodes start together on an empty data directory. Each case
//! runs the real binary many times at the same moment, over many rounds.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// Processes started together in each round.
const AT_ONCE: usize = 8;
const ROUNDS: usize = 12;

/// Runs `inboxgate --config CONFIG ARGS` `AT_ONCE` times at the same moment; returns
/// every outcome.
fn run_together(config: &Path, args: &[&str]) -> Vec<Output> {
    let barrier = std::sync::Barrier::new(AT_ONCE);
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..AT_ONCE)
            .map(|_| {
                scope.spawn(|| {
                    let mut command = Command::new(env!("CARGO_BIN_EXE_inboxgate"));
                    command.arg("--config").arg(config).args(args);
                    barrier.wait();
                    command.output().expect("run inboxgate")
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("run"))
            .collect()
    })
}

fn assert_all_succeeded(outputs: &[Output], round: usize) {
    for output in outputs {
        assert!(
            output.status.success(),
            "round {round}: inboxgate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn two_cli_commands_at_once_on_one_data_dir() {
    let d = Daemon::start().await;
    let config = d.config_path.clone();
    tokio::task::spawn_blocking(move || {
        for round in 0..ROUNDS {
            let outputs = run_together(&config, &["conversations", "list", "--json"]);
            assert_all_succeeded(&outputs, round);
        }
    })
    .await
    .expect("rounds");
    d.stop().await;
}

#[test]
fn two_processes_starting_together_on_an_empty_data_dir_migrate_once() {
    let ham = tempfile::tempdir().expect("temp dir");
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("inboxgate.toml");
        let data = dir.path().join("data");
        std::fs::write(&config, config_text(&data, "")).expect("write config");
        let ham_dir = ham.path().to_str().expect("utf-8 path");
        let outputs = run_together(&config, &["spam", "train", "--ham", ham_dir]);
        assert_all_succeeded(&outputs, round);
        let list = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
            .arg("--config")
            .arg(&config)
            .args(["conversations", "list", "--json"])
            .output()
            .expect("run inboxgate");
        assert!(
            list.status.success(),
            "round {round}: the store is usable afterwards: {}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
}
