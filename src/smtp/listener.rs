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
use tracing::{debug, error, info, warn};

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
    // Connection limits and the host name of refusals are fixed for the listener's life.
    let config = ctx.config.current();
    let limits = ConnectionLimits::new(
        config.smtp.max_connections,
        config.smtp.max_connections_per_ip,
    );
    let hostname = config.server.hostname.clone();
    let mut sessions = JoinSet::new();
    let mut backoff = MIN_BACKOFF;
    loop {
        tokio::select! {
            (socket, addr) = accept(&listener, &mut backoff) => {
                match limits.admit(addr.ip()) {
                    Some(slot) => spawn_session(&mut sessions, &ctx, socket, addr, slot, &shutdown),
                    None => {
                        info!(peer = %addr.ip(), "connection refused: too many connections");
                        ctx.metrics.smtp_connection_refused();
                        refuse(socket, Reply::too_many_connections(&hostname));
                    }
                }
            }
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => log_panic(ended),
            () = shutdown_signalled(&mut shutdown) => break,
        }
    }
    drain(listener, sessions, &hostname, config.smtp.shutdown_grace).await;
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
            Some(ended) = sessions.join_next() => log_panic(ended),
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
        let _counted = ctx.metrics.smtp_session_started();
        session::run(&ctx, socket, addr.ip().to_canonical(), shutdown).await;
        drop(slot);
    });
}

/// A session that panicked has lost only its own connection; say so loudly.
fn log_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        if error.is_panic() {
            error!(%error, "SMTP session panicked");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::testkit::{context, test_config, RecordingSink, TestClient};

    type Client = TestClient<TcpStream>;

    /// Starts `serve` on 127.0.0.1:0 with `config`; returns its address, the shutdown
    /// sender and the task.
    async fn start(
        config: crate::config::Config,
    ) -> (
        SocketAddr,
        Arc<SmtpContext<RecordingSink>>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let ctx = context(config);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::clone(&ctx), shutdown_rx));
        (addr, ctx, shutdown, task)
    }

    async fn connect(addr: SocketAddr) -> Client {
        TestClient::new(TcpStream::connect(addr).await.expect("connect"))
    }

    #[tokio::test]
    async fn third_connection_from_one_ip_is_refused() {
        let (addr, _ctx, _shutdown, _task) = start(test_config()).await;
        let mut first = connect(addr).await;
        first.expect("220 mx.acme.test").await;
        let mut second = connect(addr).await;
        second.expect("220 mx.acme.test").await;
        let mut third = connect(addr).await;
        third
            .expect("421 4.7.0 mx.acme.test Too many connections, try again later")
            .await;
        assert!(third.is_closed().await);
        // The first two are unaffected.
        first.cmd("NOOP", "250 2.0.0").await;
        second.cmd("NOOP", "250 2.0.0").await;
        // When one leaves, its slot is free again.
        first.cmd("QUIT", "221").await;
        assert!(first.is_closed().await);
        let mut again = connect(addr).await;
        again.expect("220 mx.acme.test").await;
    }

    #[tokio::test]
    async fn connections_over_the_total_limit_are_refused() {
        let mut config = test_config();
        config.smtp.max_connections = 1;
        config.smtp.max_connections_per_ip = 10;
        let (addr, _ctx, _shutdown, _task) = start(config).await;
        let mut first = connect(addr).await;
        first.expect("220").await;
        let mut second = connect(addr).await;
        second.expect("421 4.7.0").await;
        first.cmd("NOOP", "250").await;
    }

    #[tokio::test]
    async fn shutdown_drains_sessions_and_refuses_newcomers() {
        let (addr, ctx, shutdown, task) = start(test_config()).await;
        let mut idle = connect(addr).await;
        idle.expect("220").await;
        let mut busy = connect(addr).await;
        busy.expect("220").await;
        busy.cmd("EHLO client.example", "250 ").await;
        busy.cmd("MAIL FROM:<a@b.example>", "250").await;

        shutdown.send(true).expect("listener listens");
        idle.expect("421 4.3.0 mx.acme.test Service shutting down")
            .await;
        let mut late = TestClient::new(TcpStream::connect(addr).await.expect("still accepting"));
        late.expect("421 4.3.0").await;
        assert!(!task.is_finished());

        busy.cmd("RCPT TO:<support@acme.hs-inbox.test>", "250")
            .await;
        busy.cmd("DATA", "354").await;
        busy.send(b"hello\r\n.\r\n").await;
        busy.expect("250 2.0.0").await;
        busy.expect("421 4.3.0").await;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns once sessions are done")
            .expect("no panic");
        assert_eq!(ctx.sink.deliveries().len(), 1);
    }

    #[tokio::test]
    async fn sessions_still_running_after_the_grace_period_are_aborted() {
        let mut config = test_config();
        config.smtp.shutdown_grace = Duration::from_millis(200);
        let (addr, ctx, shutdown, task) = start(config).await;
        let mut stuck = connect(addr).await;
        stuck.expect("220").await;
        stuck.cmd("EHLO client.example", "250 ").await;
        stuck.cmd("MAIL FROM:<a@b.example>", "250").await;
        stuck
            .cmd("RCPT TO:<support@acme.hs-inbox.test>", "250")
            .await;
        stuck.cmd("DATA", "354").await;
        stuck.send(b"half a message").await;
        shutdown.send(true).expect("listener listens");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns after the grace period")
            .expect("no panic");
        // The client got no 250 (so it will retry) and the connection is gone.
        assert!(stuck.read_to_close().await.is_empty());
        assert!(ctx.sink.deliveries().is_empty());
    }

    #[test]
    fn per_ip_slots_are_released_on_drop() {
        let limits = ConnectionLimits::new(10, 1);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let slot = limits.admit(ip).expect("first");
        assert!(
            limits.admit(mapped).is_none(),
            "IPv4-mapped form counts as the same IP"
        );
        assert!(limits.admit("192.0.2.2".parse().expect("ip")).is_some());
        drop(slot);
        assert!(limits.admit(ip).is_some());
    }
}
