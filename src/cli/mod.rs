//! The command line (clap): `serve`, `check-config`, and the agents' nouns and verbs
//! (`conversations list|show|assign|close|…`, `messages`, `users`, `senders`,
//! `contacts`, `classify`, `spam train`), each a thin shell over `inbox::Service`. The
//! CLI opens the store itself (reads on their own connections, writes through a
//! short-lived writer), so it works while the daemon runs.
//!
//! Errors name the argument or key at fault and exit non-zero; `anyhow` is used only
//! here, at the top.

mod channels;
mod classify;
mod conversations;
mod outbound;
mod output;
mod people;
mod service;
mod spam;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::logging::LogFormat;
use output::outln;

#[derive(Parser, Debug)]
#[command(
    name = "inboxgate",
    version,
    about = "Email channel of a shared conversations inbox"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "INBOXGATE_CONFIG",
        default_value = "config/inboxgate.toml"
    )]
    pub config: PathBuf,
    /// Log format for `serve`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground.
    Serve,
    /// Validate the configuration; print every problem with its key path.
    CheckConfig,
    /// List and show conversations.
    #[command(subcommand)]
    Conversations(conversations::ConversationsCommand),
    /// Fetch stored messages.
    #[command(subcommand)]
    Messages(conversations::MessagesCommand),
    /// Copy the store to PATH, one SQLite file, while the daemon runs (SQLite's online
    /// backup; on PostgreSQL one snapshot copied table by table and compared).
    Backup {
        /// Where to write the copy (a SQLite database); must not exist yet.
        path: PathBuf,
    },
    /// The store itself: copy it into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Channels: team mailbox sync status, custom From addresses.
    #[command(subcommand)]
    Channels(channels::ChannelsCommand),
    /// Write a new email; it starts a conversation in the Sent view.
    Compose(outbound::ComposeArgs),
    /// Outbound delivery: list and retry.
    #[command(subcommand)]
    Outbound(outbound::OutboundCommand),
    /// API tokens and availability.
    #[command(subcommand)]
    Users(people::UsersCommand),
    /// Block and unblock senders.
    #[command(subcommand)]
    Senders(people::SendersCommand),
    /// Contact records.
    #[command(subcommand)]
    Contacts(people::ContactsCommand),
    /// Classify message files offline and print each verdict with its reasons.
    Classify(classify::ClassifyArgs),
    /// The spam token model: train it from folders of messages.
    #[command(subcommand)]
    Spam(spam::SpamCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inboxgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig => check_config(&cli.config),
        Command::Serve => {
            let config = load_config(&cli.config)?;
            crate::logging::init(cli.log_format);
            crate::app::serve_until_signal(config, &cli.config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Conversations(cmd) => conversations::run(&load_config(&cli.config)?, cmd),
        Command::Messages(cmd) => conversations::run_messages(&load_config(&cli.config)?, cmd),
        Command::Backup { path } => backup(&load_config(&cli.config)?, &path),
        Command::Store(cmd) => store::run(&load_config(&cli.config)?, cmd),
        Command::Channels(cmd) => channels::run(&load_config(&cli.config)?, cmd),
        Command::Compose(args) => outbound::compose(&load_config(&cli.config)?, args),
        Command::Outbound(cmd) => outbound::run_outbound(&load_config(&cli.config)?, cmd),
        Command::Users(cmd) => people::run_users(&load_config(&cli.config)?, cmd),
        Command::Senders(cmd) => people::run_senders(&load_config(&cli.config)?, cmd),
        Command::Contacts(cmd) => people::run_contacts(&load_config(&cli.config)?, cmd),
        Command::Classify(args) => classify::run(&load_config(&cli.config)?, args),
        Command::Spam(cmd) => spam::run(&load_config(&cli.config)?, cmd),
    }
}

fn backup(config: &Config, dest: &Path) -> anyhow::Result<ExitCode> {
    let reader = crate::store::Reader::open_for(config)?;
    let report = reader
        .backup_to(dest)
        .map_err(|e| anyhow::anyhow!("backup to {}: {e}", dest.display()))?;
    if let Some(copied) = &report.copied {
        outln!(
            "{}: SQLite copy of the PostgreSQL store, {} rows in {} tables from one \
             snapshot, {} checks equal",
            dest.display(),
            copied.rows(),
            copied.tables.len(),
            copied.checks.len()
        );
    }
    outln!(
        "{}: {} pages, {} bytes, integrity ok",
        dest.display(),
        report.pages,
        report.bytes
    );
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    Ok(match Config::load(path) {
        Ok(_) => {
            outln!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}: {problem}", path.display());
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::from(2)
        }
    })
}

/// Loads the configuration or fails with every problem listed.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "invalid configuration {}:\n{}",
            path.display(),
            list.join("\n")
        )
    })
}
