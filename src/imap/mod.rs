//! Connected team mailboxes (B3): a poller task per switched-on IMAP channel keeps the
//! channel's inbox in step with the mailbox, exactly once across restarts, outages and
//! UIDVALIDITY resets. `client` speaks IMAP; `poller` decides what to fetch and when,
//! and files through the store's writer. A switched-off channel (A4) gets no poller.
//! [`Pollers`] follows reloads: a channel added or switched on gets a poller, one
//! removed or switched off loses it, and one whose settings changed is restarted.

pub mod client;
pub mod poller;

use std::collections::HashMap;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{ChannelKind, ChannelStatus, Config};
use crate::ingest::Ingest;
use crate::store::Writer;
use poller::{Poller, PollerConfig};

/// One running poller: what it was started with, and how to stop it.
struct PollerTask {
    config: PollerConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running pollers, one per switched-on IMAP channel, by channel address.
pub struct Pollers {
    writer: Writer,
    ingest: Ingest,
    clock: Clock,
    running: HashMap<String, PollerTask>,
    /// Pollers told to stop and not yet awaited.
    stopping: Vec<JoinHandle<()>>,
}

impl Pollers {
    /// Starts one poller per IMAP channel of `config` that is on.
    pub fn start(config: &Config, writer: &Writer, ingest: &Ingest, clock: &Clock) -> Pollers {
        let mut pollers = Pollers {
            writer: writer.clone(),
            ingest: ingest.clone(),
            clock: clock.clone(),
            running: HashMap::new(),
            stopping: Vec::new(),
        };
        pollers.apply(config);
        pollers
    }

    /// Brings the pollers in line with `config` (at start and after a reload). A
    /// restarted channel's new poller begins only once the old one has stopped, so one
    /// folder never has two pollers.
    pub fn apply(&mut self, config: &Config) {
        let wanted = imap_channels(config);
        let addresses: Vec<String> = self.running.keys().cloned().collect();
        for address in addresses {
            if wanted.get(&address) == self.running.get(&address).map(|r| &r.config) {
                continue;
            }
            if let Some(old) = self.running.remove(&address) {
                let _ = old.stop.send(true);
                match wanted.get(&address) {
                    Some(new) => self.spawn(new.clone(), Some(old.task)),
                    None => {
                        tracing::info!(channel = %address, "imap poller stopped by a reload");
                        self.stopping.push(old.task);
                    }
                }
            }
        }
        for (address, poller_config) in wanted {
            if !self.running.contains_key(&address) {
                self.spawn(poller_config, None);
            }
        }
    }

    /// Starts a poller for `config`, after `previous` (the channel's old poller) ends.
    fn spawn(&mut self, config: PollerConfig, previous: Option<JoinHandle<()>>) {
        let (stop, stopped) = watch::channel(false);
        let address = config.address.clone();
        let host = config.imap.server.host.clone();
        let poller = Poller::new(
            config.clone(),
            self.writer.clone(),
            self.ingest.clone(),
            self.clock.clone(),
            stopped,
        );
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            tracing::info!(channel = %address, %host, "imap poller started");
            poller.run().await;
        });
        self.running
            .insert(config.address.clone(), PollerTask { config, stop, task });
    }

    /// Stops every poller and waits for them.
    pub async fn stop(mut self) {
        for (_, running) in self.running.drain() {
            let _ = running.stop.send(true);
            self.stopping.push(running.task);
        }
        for task in self.stopping {
            let _ = task.await;
        }
    }
}

/// What each switched-on IMAP channel's poller should run with, by address.
fn imap_channels(config: &Config) -> HashMap<String, PollerConfig> {
    let mut wanted = HashMap::new();
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
        wanted.insert(channel.address.clone(), poller_config);
    }
    wanted
}
