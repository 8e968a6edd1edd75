//! `inboxgate spam train --spam DIR --ham DIR`: teaches the token model (C4) from
//! folders of messages (maildir `cur`/`new`, mbox-less one-file-per-message folders),
//! the way `sa-learn` or `bogofilter -s/-n` are fed from an existing archive.
//! `inboxgate spam stats [--json]`: what the model holds.

use super::output::outln;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::service::run_async;
use crate::config::Config;
use crate::pipeline::classify::bayes::message_tokens;
use crate::pipeline::classify::tokenize::TOKENIZER_VERSION;
use crate::pipeline::parse::parse_received;
use crate::store::bayes::{Class, Retrained};
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
    /// What the model holds: tokens, messages learned per class, last training.
    Stats {
        /// One JSON object: {tokens, spam, ham, marked_spam, marked_ham, trained_at,
        /// tokenizer, current_tokenizer, stale}.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Config, command: SpamCommand) -> anyhow::Result<ExitCode> {
    match command {
        SpamCommand::Train { spam, ham } => train(config, &spam, &ham),
        SpamCommand::Stats { json } => stats(config, json),
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
    let store = Store::open_for(config).context("opening the store")?;
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
        batch.push((message_tokens(&raw, &parse_received(&raw, None)), class));
        match class {
            Class::Spam => counts.0 += 1,
            Class::Ham => counts.1 += 1,
        }
        if batch.len() == BATCH {
            let done = run_async(writer.train_messages(std::mem::take(&mut batch), now()))??;
            report_reset(done)?;
        }
    }
    if !batch.is_empty() {
        report_reset(run_async(writer.train_messages(batch, now()))??)?;
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

fn now() -> i64 {
    super::outbound::cli_clock()()
}

/// A stale model (another tokenizer's counts) is reset by the first batch: say so.
fn report_reset(done: Retrained) -> anyhow::Result<()> {
    if let Some(old) = done.reset_from {
        outln!(
            "the token model was made by tokenizer version {old}, this build uses \
             {TOKENIZER_VERSION}: its counts were reset and {} marked message(s) retrained \
             from the store; train any folders trained before again",
            done.marked
        );
    }
    Ok(())
}

fn stats(config: &Config, as_json: bool) -> anyhow::Result<ExitCode> {
    // Opening the store first brings an older schema up to date.
    let stats = Store::open_for(config)
        .and_then(|store| store.reader())
        .and_then(|r| r.bayes_stats())
        .context("reading the token model")?;
    let trained_at = stats.trained_at.map(crate::inbox::json::rfc3339);
    if as_json {
        let value = serde_json::json!({
            "tokens": stats.tokens,
            "spam": stats.spam,
            "ham": stats.ham,
            "marked_spam": stats.marked_spam,
            "marked_ham": stats.marked_ham,
            "trained_at": trained_at,
            "tokenizer": stats.tokenizer,
            "current_tokenizer": TOKENIZER_VERSION,
            "stale": stats.stale(),
        });
        outln!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    outln!("tokens         {}", stats.tokens);
    outln!(
        "spam learned   {} ({} from marks)",
        stats.spam,
        stats.marked_spam
    );
    outln!(
        "ham learned    {} ({} from marks)",
        stats.ham,
        stats.marked_ham
    );
    outln!(
        "last training  {}",
        trained_at.as_deref().unwrap_or("never")
    );
    if stats.stale() {
        outln!(
            "stale: made by tokenizer {} (this build: {TOKENIZER_VERSION}); ignored until \
             retrained (inboxgate spam train, or the next mark)",
            stats.tokenizer
        );
    }
    Ok(ExitCode::SUCCESS)
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
