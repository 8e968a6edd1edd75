//! Builds and wires the parts, and runs their lifecycle: open the store, start the
//! writer, bind the SMTP listeners and the HTTP API, start the trash retention job, tell systemd we are ready, wait for SIGTERM/SIGINT,
//! then drain (new sessions get 421 4.3.0, running ones finish within the grace period)
//! and stop the writer once every pending commit is done.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::LogFormat;
use crate::config::Config;
use crate::inbox::{retention, Service};
use crate::pipeline::ingest::{system_clock, Clock, Ingest};
use crate::smtp::{self, SmtpContext};
use crate::store::Store;

/// A started daemon: its bound addresses and what is needed to stop it.
pub struct Running {
    /// The SMTP listeners' addresses (useful when the config asked for port 0).
    pub smtp_addrs: Vec<SocketAddr>,
    /// The HTTP API's address.
    pub api_addr: SocketAddr,
    /// Runs the trash retention sweep on demand (tests move the clock, then sweep).
    pub trash: retention::SweepHandle,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// Opens the store and starts every subsystem; returns once the listeners are bound.
pub async fn start(config: Config, clock: Clock) -> anyhow::Result<Running> {
    let store = Store::open(&config.database_path())
        .with_context(|| format!("opening the store in {}", config.server.data_dir.display()))?;
    let (writer, writer_thread) = store.start_writer()?;
    let ingest = Ingest::new(writer.clone(), &config.server.hostname, clock.clone());
    let tls = match &config.smtp.tls {
        Some(files) => {
            Some(smtp::listener::tls_acceptor(files).context("smtp.tls_cert / smtp.tls_key")?)
        }
        None => None,
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let config = Arc::new(config);
    let context = Arc::new(SmtpContext {
        config: config.clone(),
        sink: ingest,
        tls,
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
    let service = Arc::new(Service::new(config.clone(), store, writer, clock));
    let unassigned = service.unassign_removed_users().await?;
    if unassigned > 0 {
        tracing::info!(unassigned, "unassigned conversations of removed users");
    }
    let api = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("api.listen: cannot bind {}", config.api.listen))?;
    let api_addr = api.local_addr()?;
    listeners.push(tokio::spawn(crate::api::serve(
        api,
        service.clone(),
        shutdown_rx.clone(),
    )));
    tracing::info!(address = %api_addr, "api listening");
    let (trash, sweeper) = retention::start(service, retention::INTERVAL, shutdown_rx);
    listeners.push(sweeper);
    Ok(Running {
        smtp_addrs,
        api_addr,
        trash,
        shutdown,
        listeners,
        writer_thread,
    })
}

impl Running {
    /// Drains: listeners answer 421 to new sessions and wait (up to the grace period)
    /// for running ones; then the writer commits what is pending and stops.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for listener in self.listeners {
            let _ = listener.await;
        }
        let writer = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("stopped");
    }
}

/// `inboxgate serve`: runs until SIGTERM or SIGINT.
pub fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let running = start(config, system_clock()).await?;
        notify_systemd(sd_notify::NotifyState::Ready);
        let signal = wait_for_signal().await?;
        tracing::info!(signal, "shutting down");
        notify_systemd(sd_notify::NotifyState::Stopping);
        running.stop().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::debug!(error = %e, "sd_notify failed (not under systemd?)");
    }
}

/// Logs to stderr, human-readable or JSON; `RUST_LOG` overrides the level.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
