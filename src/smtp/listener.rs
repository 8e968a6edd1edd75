//! The SMTP listener: accepts connections, enforces connection limits, runs one session
//! task per connection and drains them on shutdown (the mini-redis shape).
//!
//! Limits: a semaphore holds `max_connections` permits and a per-IP counter caps
//! `max_connections_per_ip`; a connection over either limit is answered
//! `421 4.7.0` and closed at once rather than queued. Accept errors (such as running out
//! of file descriptors) back off instead of spinning. After the shutdown signal the
//! listener keeps accepting for the grace period only to answer `421 4.3.0`, sessions
//! end at their next point between transactions, and whatever still runs when
//! `shutdown_grace` expires is aborted: a message without its 250 is retried by the
//! client, so nothing acknowledged is lost.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::TlsFiles;

use super::reply::Reply;
use super::{session, MailSink, SmtpContext};

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a refused client gets to read its 421.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves SMTP on `listener` until `shutdown` turns `true` and the sessions have
/// drained (or `shutdown_grace` has expired, then the rest are aborted).
pub async fn serve<S: MailSink>(
    listener: TcpListener,
    ctx: Arc<SmtpContext<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = ConnectionLimits::new(
        ctx.config.smtp.max_connections,
        ctx.config.smtp.max_connections_per_ip,
    );
    let hostname = ctx.config.server.hostname.clone();
    let mut sessions = JoinSet::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        tokio::select! {
            (socket, addr) = accept(&listener, &mut backoff) => {
                match limits.admit(addr.ip()) {
                    Some(slot) => spawn_session(&mut sessions, &ctx, socket, addr, slot, &shutdown),
                    None => {
                        info!(peer = %addr.ip(), "connection refused: too many connections");
                        refuse(socket, Reply::too_many_connections(&hostname));
                    }
                }
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            () = shutdown_signalled(&mut shutdown) => break,
        }
    }
    drain(
        listener,
        sessions,
        &hostname,
        ctx.config.smtp.shutdown_grace,
    )
    .await;
}

/// Waits for running sessions while answering new connections with 421 4.3.0.
async fn drain(listener: TcpListener, mut sessions: JoinSet<()>, hostname: &str, grace: Duration) {
    info!(sessions = sessions.len(), "SMTP shutting down");
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let mut backoff = MIN_BACKOFF;
    while !sessions.is_empty() {
        tokio::select! {
            (socket, _) = accept(&listener, &mut backoff) => refuse(socket, Reply::shutting_down(hostname)),
            _ = sessions.join_next() => {}
            () = &mut deadline => {
                warn!(sessions = sessions.len(), "shutdown grace expired; aborting sessions");
                sessions.abort_all();
                while sessions.join_next().await.is_some() {}
            }
        }
    }
    info!("SMTP stopped");
}

fn spawn_session<S: MailSink>(
    sessions: &mut JoinSet<()>,
    ctx: &Arc<SmtpContext<S>>,
    socket: TcpStream,
    addr: SocketAddr,
    slot: ConnectionSlot,
    shutdown: &watch::Receiver<bool>,
) {
    let ctx = Arc::clone(ctx);
    let shutdown = shutdown.clone();
    let _ = socket.set_nodelay(true);
    sessions.spawn(async move {
        session::run(&ctx, socket, addr.ip().to_canonical(), shutdown).await;
        drop(slot);
    });
}

/// Accepts the next connection, backing off (and retrying) on accept errors.
async fn accept(listener: &TcpListener, backoff: &mut Duration) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                *backoff = MIN_BACKOFF;
                return accepted;
            }
            Err(error) => {
                warn!(%error, backoff_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Answers `reply` and closes, without holding up the listener.
fn refuse(mut socket: TcpStream, reply: Reply) {
    tokio::spawn(async move {
        let write = async {
            socket.write_all(&reply.to_bytes()).await?;
            socket.shutdown().await
        };
        if let Err(error) = tokio::time::timeout(REFUSAL_TIMEOUT, write).await {
            debug!(%error, "refused client did not take its reply");
        }
    });
}

async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|&down| down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The global and per-IP connection caps.
struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
}

/// Held by a session for its lifetime; frees both limits when dropped.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _ip: IpSlot,
}

struct IpSlot {
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimits {
    fn new(max_total: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            total: Arc::new(Semaphore::new(max_total)),
            per_ip: Arc::default(),
            max_per_ip,
        }
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    fn admit(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let ip = ip.to_canonical();
        let ip_slot = {
            let mut counts = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(ip).or_insert(0);
            if *count >= self.max_per_ip {
                return None;
            }
            *count += 1;
            IpSlot {
                ip,
                per_ip: Arc::clone(&self.per_ip),
            }
        };
        let permit = Arc::clone(&self.total).try_acquire_owned().ok()?;
        Some(ConnectionSlot {
            _permit: permit,
            _ip: ip_slot,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Builds the STARTTLS acceptor from a PEM certificate chain and private key, with
/// rustls' `ring` provider and its safe default protocol versions.
pub fn tls_acceptor(files: &TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("reading TLS certificate {}", files.cert.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {}",
        files.cert.display()
    );
    let key_pem = std::fs::read(&files.key)
        .with_context(|| format!("reading TLS key {}", files.key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("parsing TLS key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
