//! Builds and wires the parts, and runs their lifecycle: open the store, start the
//! writer, bind the SMTP listeners and the HTTP API, start the trash retention job, tell systemd we are ready, wait for SIGTERM/SIGINT,
//! then drain (new sessions get 421 4.3.0, running ones finish within the grace period)
//! and stop the writer once every pending commit is done.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{system_clock, Clock};
use crate::config::{Config, LiveConfig};
use crate::inbox::{retention, Service};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::outbound;
use crate::pipeline::classify::Classifier;
use crate::smtp::{self, SmtpContext};
use crate::store::{ModelCache, Store};

/// A started daemon: its bound addresses and what is needed to stop it.
pub struct Running {
    /// The SMTP listeners' addresses (useful when the config asked for port 0).
    pub smtp_addrs: Vec<SocketAddr>,
    /// The running configuration; `reload` replaces it.
    pub config: Arc<LiveConfig>,
    /// The HTTP API's address.
    pub api_addr: SocketAddr,
    /// For the work a reload does in the store (D5).
    writer: crate::store::Writer,
    clock: Clock,
    /// Runs the trash retention sweep on demand (tests move the clock, then sweep).
    pub trash: retention::SweepHandle,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    /// Follow reloads (`Pollers::apply`).
    pollers: std::sync::Mutex<crate::imap::Pollers>,
    /// Restarted by a reload that changes its settings.
    outbound: std::sync::Mutex<OutboundWorker>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// Opens the store and starts every subsystem; returns once the listeners are bound.
pub async fn start(config: Config, clock: Clock) -> anyhow::Result<Running> {
    let store = Store::open_for(&config).with_context(|| match config.store_target() {
        crate::config::StoreTarget::Sqlite(_) => {
            format!("opening the store in {}", config.server.data_dir.display())
        }
        crate::config::StoreTarget::Postgres { url, .. } => format!("opening the store at {url}"),
    })?;
    let backend = match config.store_target() {
        crate::config::StoreTarget::Sqlite(_) => "sqlite",
        crate::config::StoreTarget::Postgres { .. } => "postgres",
    };
    tracing::info!(node = config.node_name(), store = backend, "store opened");
    let metrics = Arc::new(Metrics::default());
    let (writer, writer_thread) = store.start_counted_writer(metrics.clone())?;
    let live = Arc::new(LiveConfig::new(config.clone()));
    let model = Arc::new(ModelCache::new(crate::store::Location::of(&config)));
    let classifier = Arc::new(Classifier::new(live.clone(), model).counted(metrics.clone()));
    let ingest = Ingest::new(
        writer.clone(),
        classifier,
        &config.server.hostname,
        clock.clone(),
    );
    let tls = match &config.smtp.tls {
        Some(files) => {
            Some(smtp::listener::tls_acceptor(files).context("smtp.tls_cert / smtp.tls_key")?)
        }
        None => None,
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let outbound = OutboundWorker::start(&config, writer.clone(), clock.clone(), metrics.clone())?;
    let context = Arc::new(SmtpContext {
        config: live.clone(),
        sink: ingest.clone(),
        tls,
        metrics: metrics.clone(),
    });
    let mut smtp_addrs = Vec::new();
    let mut listeners = Vec::new();
    for addr in &config.smtp.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("smtp.listen: cannot bind {addr}"))?;
        smtp_addrs.push(listener.local_addr()?);
        let task = smtp::listener::serve(listener, context.clone(), shutdown_rx.clone());
        listeners.push(tokio::spawn(task));
    }
    tracing::info!(addresses = ?smtp_addrs, "smtp listening");
    listeners.push(tokio::spawn(index_search(
        writer.clone(),
        shutdown_rx.clone(),
    )));
    let pollers = crate::imap::Pollers::start(&config, &writer, &ingest, &clock);
    let (writer_for_reload, clock_for_reload) = (writer.clone(), clock.clone());
    let service = Arc::new(Service::new(live.clone(), store, writer, clock));
    let unassigned = service.unassign_removed_users().await?;
    if unassigned > 0 {
        tracing::info!(unassigned, "unassigned conversations of removed users");
    }
    service.end_sessions_of_removed_users().await?;
    let api = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot bind {}", config.api.listen))?;
    let api_addr = api.local_addr()?;
    let api_tls = match &config.api.tls {
        Some(files) => {
            Some(crate::smtp::listener::tls_acceptor(files).context("api.tls_cert / api.tls_key")?)
        }
        None => None,
    };
    listeners.push(tokio::spawn(crate::api::serve(
        api,
        api_tls,
        service.clone(),
        metrics,
        shutdown_rx.clone(),
    )));
    tracing::info!(address = %api_addr, "api listening");
    let (trash, sweeper) = retention::start(service, retention::INTERVAL, shutdown_rx);
    listeners.push(sweeper);
    Ok(Running {
        smtp_addrs,
        config: live,
        api_addr,
        writer: writer_for_reload,
        clock: clock_for_reload,
        trash,
        shutdown,
        listeners,
        pollers: std::sync::Mutex::new(pollers),
        outbound: std::sync::Mutex::new(outbound),
        writer_thread,
    })
}

/// Indexes newly stored messages for full-text search, a batch at a time, so the
/// transactions that SMTP and IMAP acknowledgements wait on stay small.
async fn index_search(writer: crate::store::Writer, mut shutdown: watch::Receiver<bool>) {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = writer.index_search().await {
            tracing::warn!(error = %e, "search indexing failed; retrying");
        }
    }
}

/// The outbound queue worker (it holds a writer handle, so it stops before the writer),
/// with the settings it was built from.
struct OutboundWorker {
    writer: crate::store::Writer,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// `[outbound]` and the HELO name it was built with.
    settings: (crate::config::OutboundConfig, String),
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl OutboundWorker {
    fn start(
        config: &Config,
        writer: crate::store::Writer,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<OutboundWorker> {
        let worker = build_worker(config, &writer, &clock, &metrics)?;
        let (stop, stopped) = watch::channel(false);
        Ok(OutboundWorker {
            settings: outbound_settings(config),
            task: worker.start(stopped),
            writer,
            clock,
            metrics,
            stop,
        })
    }

    /// After a reload: when `[outbound]` changed, a new worker takes over once the old
    /// one has finished its running deliveries (so no delivery is made twice). A relay
    /// password or DKIM key that cannot be read keeps the old worker running.
    fn apply(&mut self, config: &Config) {
        let settings = outbound_settings(config);
        if settings == self.settings {
            return;
        }
        let worker = match build_worker(config, &self.writer, &self.clock, &self.metrics) {
            Ok(worker) => worker,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "outbound settings not applied; the running ones stay");
                return;
            }
        };
        let (stop, stopped) = watch::channel(false);
        let _ = self.stop.send(true);
        let previous = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        self.task = tokio::spawn(async move {
            let _ = previous.await;
            let _ = worker.start(stopped).await;
        });
        self.stop = stop;
        self.settings = settings;
        tracing::info!("outbound worker restarted with the reloaded settings");
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn outbound_settings(config: &Config) -> (crate::config::OutboundConfig, String) {
    (config.outbound.clone(), config.server.hostname.clone())
}

fn build_worker(
    config: &Config,
    writer: &crate::store::Writer,
    clock: &Clock,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<outbound::worker::Worker> {
    let out = &config.outbound;
    Ok(outbound::worker::Worker {
        queue: outbound::queue::Queue::new(writer.clone(), clock.clone(), out.lifetime),
        deliverer: outbound::deliver::Deliverer::from_config(config).context("[outbound]")?,
        signer: outbound::dkim::Signer::from_config(config).context("outbound.dkim")?,
        concurrency: out.concurrency,
        metrics: metrics.clone(),
    })
}

impl Running {
    /// Applies a new, already validated configuration. Everything that reads the live
    /// configuration follows at its next unit of work: API and CLI requests (users,
    /// inbox access), new SMTP sessions (channels, recipients, limits, timeouts), the
    /// classification and routing of each message, SMTP or IMAP; the IMAP pollers are
    /// started, stopped or restarted to match the new channels, and the outbound worker
    /// is rebuilt when `[outbound]` changed. Listen addresses, connection limits, TLS
    /// files, the data directory, the node name and `[store]` need a restart; a change to them is logged and
    /// otherwise ignored.
    pub fn reload(&self, config: Config) {
        let old = self.config.current();
        for (key, changed) in [
            ("smtp.listen", old.smtp.listen != config.smtp.listen),
            (
                "server.data_dir",
                old.server.data_dir != config.server.data_dir,
            ),
            ("server.node", old.server.node != config.server.node),
            ("store", old.store != config.store),
            (
                "smtp.max_connections",
                old.smtp.max_connections != config.smtp.max_connections
                    || old.smtp.max_connections_per_ip != config.smtp.max_connections_per_ip,
            ),
            (
                "smtp.tls_cert",
                old.smtp.tls.as_ref().map(|t| (&t.cert, &t.key))
                    != config.smtp.tls.as_ref().map(|t| (&t.cert, &t.key)),
            ),
        ] {
            if changed {
                tracing::warn!(
                    key,
                    "changed in the config file; takes effect after a restart"
                );
            }
        }
        let users: Vec<String> = config.users.iter().map(|u| u.email.clone()).collect();
        match self.pollers.lock() {
            Ok(mut pollers) => pollers.apply(&config),
            Err(poisoned) => poisoned.into_inner().apply(&config),
        }
        match self.outbound.lock() {
            Ok(mut outbound) => outbound.apply(&config),
            Err(poisoned) => poisoned.into_inner().apply(&config),
        }
        self.config.replace(config);
        tracing::info!("configuration reloaded");
        // D5: conversations of users who left the config become unassigned.
        let (writer, now) = (self.writer.clone(), (self.clock)());
        tokio::spawn(async move {
            let lower = users.iter().map(|u| u.to_lowercase()).collect();
            match writer.unassign_removed_users(users, now).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "unassigned conversations of removed users"),
                Err(e) => {
                    tracing::warn!(error = %e, "unassigning removed users' conversations failed")
                }
            }
            // Their web sessions end too (a user added back signs in again).
            if let Err(e) = writer.end_sessions_of_removed_users(lower).await {
                tracing::warn!(error = %e, "ending removed users' web sessions failed");
            }
        });
    }

    /// Drains: listeners answer 421 to new sessions and wait (up to the grace period)
    /// for running ones; then the writer commits what is pending and stops.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for listener in self.listeners {
            let _ = listener.await;
        }
        let pollers = match self.pollers.into_inner() {
            Ok(pollers) => pollers,
            Err(poisoned) => poisoned.into_inner(),
        };
        pollers.stop().await;
        let outbound = match self.outbound.into_inner() {
            Ok(outbound) => outbound,
            Err(poisoned) => poisoned.into_inner(),
        };
        outbound.stop().await;
        // The writer thread ends when the last handle to it is gone.
        drop(self.writer);
        let writer = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("stopped");
    }
}

/// `inboxgate serve`: runs until SIGTERM or SIGINT; SIGHUP reloads `config_path`.
pub fn serve_until_signal(config: Config, config_path: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Installed before the listeners open: a SIGHUP that arrives while the rest
        // starts is a reload, never the default action that ends the process.
        let signals = StopAndReloadSignals::install()?;
        let running = start(config, system_clock()).await?;
        notify_systemd(sd_notify::NotifyState::Ready);
        let signal = run_until_stop_signal(signals, &running, config_path).await;
        tracing::info!(signal, "shutting down");
        notify_systemd(sd_notify::NotifyState::Stopping);
        running.stop().await;
        Ok(())
    })
}

/// The signal handlers `serve` answers: SIGTERM and SIGINT stop, SIGHUP reloads.
struct StopAndReloadSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopAndReloadSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

/// Serves SIGHUP reloads until SIGTERM or SIGINT arrives; returns the stop signal.
async fn run_until_stop_signal(
    mut signals: StopAndReloadSignals,
    running: &Running,
    config_path: &Path,
) -> &'static str {
    loop {
        tokio::select! {
            _ = signals.term.recv() => return "SIGTERM",
            _ = signals.int.recv() => return "SIGINT",
            _ = signals.hup.recv() => reload_from(running, config_path),
        }
    }
}

/// Validates the file first; an invalid one is refused and the old one keeps running.
fn reload_from(running: &Running, config_path: &Path) {
    notify_systemd(sd_notify::NotifyState::Reloading);
    match Config::load(config_path) {
        Ok(config) => running.reload(config),
        Err(problems) => {
            for problem in &problems {
                tracing::error!(%problem, "config reload refused");
            }
            tracing::error!(
                count = problems.len(),
                "config reload refused; the running configuration stays"
            );
        }
    }
    notify_systemd(sd_notify::NotifyState::Ready);
}

fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::debug!(error = %e, "sd_notify failed (not under systemd?)");
    }
}
