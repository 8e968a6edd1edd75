//! Connected team mailboxes (B3): a poller task per switched-on IMAP channel keeps the
//! channel's inbox in step with the mailbox, exactly once across restarts, outages and
//! UIDVALIDITY resets. `client` speaks IMAP; `poller` decides what to fetch and when,
//! and files through the store's writer. A switched-off channel (A4) gets no poller.

pub mod client;
pub mod poller;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{ChannelKind, ChannelStatus, Config};
use crate::pipeline::ingest::Ingest;
use crate::store::Writer;
use poller::{Poller, PollerConfig};

/// Starts one poller per IMAP channel that is on; each stops when `shutdown` turns true.
pub fn spawn_pollers(
    config: &Config,
    writer: &Writer,
    ingest: &Ingest,
    clock: &Clock,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut pollers = Vec::new();
    for (inbox, channel) in config.channels() {
        let ChannelKind::Imap(imap) = &channel.kind else {
            continue;
        };
        if channel.status == ChannelStatus::Off {
            tracing::info!(channel = %channel.address, "imap channel is off: not polled");
            continue;
        }
        let poller_config = PollerConfig {
            inbox: inbox.name.clone(),
            address: channel.address.clone(),
            imap: imap.clone(),
        };
        let poller = Poller::new(
            poller_config,
            writer.clone(),
            ingest.clone(),
            clock.clone(),
            shutdown.clone(),
        );
        tracing::info!(channel = %channel.address, host = %imap.server.host, "imap poller started");
        pollers.push(tokio::spawn(poller.run()));
    }
    pollers
}
