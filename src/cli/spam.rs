//! `inboxgate spam train --spam DIR --ham DIR`: teaches the token model (C4) from
//! folders of messages (maildir `cur`/`new`, mbox-less one-file-per-message folders),
//! the way `sa-learn` or `bogofilter -s/-n` are fed from an existing archive.

use super::output::outln;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::service::run_async;
use crate::config::Config;
use crate::pipeline::classify::bayes::message_tokens;
use crate::pipeline::parse::parse_received;
use crate::store::bayes::Class;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SpamCommand {
    /// Train the token model from folders of messages (one message per file; the
    /// folders are read recursively). Creates the store if it is new.
    Train {
        /// A folder of spam; may be given more than once.
        #[arg(long = "spam", value_name = "DIR")]
        spam: Vec<PathBuf>,
        /// A folder of ham (wanted mail); may be given more than once.
        #[arg(long = "ham", value_name = "DIR")]
        ham: Vec<PathBuf>,
    },
}

pub fn run(config: &Config, command: SpamCommand) -> anyhow::Result<ExitCode> {
    match command {
        SpamCommand::Train { spam, ham } => train(config, &spam, &ham),
    }
}

/// Messages per transaction: big enough to be quick, small enough not to hold the
/// write lock long against a running daemon.
const BATCH: usize = 200;

fn train(config: &Config, spam: &[PathBuf], ham: &[PathBuf]) -> anyhow::Result<ExitCode> {
    if spam.is_empty() && ham.is_empty() {
        anyhow::bail!("spam train: give at least one --spam DIR or --ham DIR");
    }
    let mut files = Vec::new();
    for (dirs, class) in [(spam, Class::Spam), (ham, Class::Ham)] {
        for dir in dirs {
            let found = message_files(dir)?;
            files.extend(found.into_iter().map(|f| (f, class)));
        }
    }
    let store = Store::open(&config.database_path()).context("opening the store")?;
    let (writer, thread) = store.start_writer().context("starting the store writer")?;
    let mut counts = (0usize, 0usize);
    let mut unreadable = 0usize;
    let mut batch: Vec<(HashSet<String>, Class)> = Vec::with_capacity(BATCH);
    for (file, class) in files {
        let raw = match std::fs::read(&file) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("inboxgate: {}: {e}", file.display());
                unreadable += 1;
                continue;
            }
        };
        batch.push((message_tokens(&parse_received(&raw, None)), class));
        match class {
            Class::Spam => counts.0 += 1,
            Class::Ham => counts.1 += 1,
        }
        if batch.len() == BATCH {
            run_async(writer.train_messages(std::mem::take(&mut batch)))??;
        }
    }
    if !batch.is_empty() {
        run_async(writer.train_messages(batch))??;
    }
    drop(writer);
    let _ = thread.join();
    outln!("trained {} spam and {} ham messages", counts.0, counts.1);
    Ok(if unreadable > 0 {
        eprintln!("{unreadable} file(s) could not be read");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every regular file under `dir`, sorted, skipping hidden files (`.` names such as
/// maildir's `.dovecot` indexes or SpamAssassin corpora's `cmds`-style dotfiles).
fn message_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in
            std::fs::read_dir(&current).with_context(|| format!("{}", current.display()))?
        {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Follows symlinks, so a folder of links to a corpus trains too.
            let kind = std::fs::metadata(entry.path())?.file_type();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
