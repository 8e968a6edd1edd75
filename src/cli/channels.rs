//! `channels status`: what each connected team mailbox's poller is doing (state, last
//! successful sync, last error, messages ingested), read from the store the daemon
//! updates. Switched-off channels report `off`; no secret is ever printed.

use super::output::{self, outln};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::{ChannelKind, ChannelStatus, Config};
use crate::inbox::json::rfc3339;
use crate::store::imap::ChannelSync;
use crate::store::Reader;

#[derive(Subcommand, Debug)]
pub enum ChannelsCommand {
    /// Sync state of every IMAP channel (team mailbox).
    Status {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mail a one-time code to ADDRESS so it can be used as From for CHANNEL (E4).
    VerifyFrom { channel: String, address: String },
    /// Confirm the custom From address with the code from that mail.
    ConfirmFrom { channel: String, code: String },
}

pub fn run(config: &Config, command: ChannelsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ChannelsCommand::Status { json } => status(config, json),
        ChannelsCommand::VerifyFrom { channel, address } => {
            super::outbound::verify_from(config, channel, address)
        }
        ChannelsCommand::ConfirmFrom { channel, code } => {
            super::outbound::confirm_from(config, channel, code)
        }
    }
}

fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let reader = Reader::open_for(config).context("opening the store")?;
    let synced = reader.channel_sync()?;
    let rows = status_rows(config, &synced);
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per IMAP channel in config order; state `syncing` until the first report.
fn status_rows(config: &Config, synced: &[ChannelSync]) -> Vec<Value> {
    config
        .channels()
        .filter_map(|(inbox, channel)| {
            let ChannelKind::Imap(imap) = &channel.kind else {
                return None;
            };
            let row = synced.iter().find(|s| s.channel == channel.address);
            let state = match (channel.status, row) {
                (ChannelStatus::Off, _) => "off",
                (ChannelStatus::On, Some(row)) => row.state.as_str(),
                (ChannelStatus::On, None) => "syncing",
            };
            Some(json!({
                "channel": channel.address,
                "inbox": inbox.name,
                "kind": "imap",
                "host": imap.server.host,
                "folders": imap.folders,
                "state": state,
                "last_sync_at": row.and_then(|r| r.last_sync_at).map(rfc3339),
                "last_error": row.and_then(|r| r.last_error.clone()),
                "last_error_at": row.and_then(|r| r.last_error_at).map(rfc3339),
                "messages_ingested": row.map_or(0, |r| r.ingested),
            }))
        })
        .collect()
}

fn print_table(rows: &[Value]) -> anyhow::Result<()> {
    outln!(
        "{:<32} {:<12} {:<26} {:>9}  LAST ERROR",
        "CHANNEL",
        "STATE",
        "LAST SYNC",
        "INGESTED"
    );
    for row in rows {
        let text = |key: &str| output::line(row[key].as_str().unwrap_or("-")).into_owned();
        outln!(
            "{:<32} {:<12} {:<26} {:>9}  {}",
            text("channel"),
            text("state"),
            text("last_sync_at"),
            row["messages_ingested"],
            text("last_error")
        );
    }
    Ok(())
}
