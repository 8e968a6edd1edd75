//! Test helpers for the SMTP server: a configuration built in code, a [`MailSink`] that
//! records what it is given (or fails on request), and a raw-protocol client that
//! checks replies the way a sending MTA would read them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{
    Access, AccountConfig, ApiConfig, Channel, ChannelKind, ChannelStatus, Config, FromName,
    FromNameMode, Inbox, OutboundConfig, Routing, ServerConfig, SmtpConfig, Tickets,
};
use crate::pipeline::{Envelope, Target};

use super::{session, Delivered, MailSink, SinkError, SmtpContext};

pub const HOST: &str = "mx.acme.test";
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn channel(address: &str, status: ChannelStatus) -> Channel {
    Channel {
        address: address.to_string(),
        kind: ChannelKind::Fallback,
        status,
        from_name: FromName {
            mode: FromNameMode::Company,
            company: "Acme".into(),
        },
        log_forwarded_to_original_sender: true,
        signature: None,
        routing: Routing::Manual,
        tickets: Tickets::Off,
    }
}

fn inbox(name: &str, channels: Vec<Channel>) -> Inbox {
    Inbox {
        name: name.into(),
        access: Access::Everyone,
        channels,
    }
}

/// Two inboxes: Support (support@acme.hs-inbox.test, help@acme.example) and Sales
/// (sales@acme.hs-inbox.test, old@acme.example switched off); postmaster → Sales.
pub fn test_config() -> Config {
    use ChannelStatus::{Off, On};
    Config {
        server: ServerConfig {
            hostname: HOST.into(),
            data_dir: PathBuf::from("/nonexistent"),
            node: "test".into(),
        },
        smtp: SmtpConfig {
            listen: vec![],
            max_message_size: 10_000,
            max_recipients: 3,
            max_line_length: 512,
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(600),
            max_connections: 10,
            max_connections_per_ip: 2,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
            postmaster_inbox: "Sales".into(),
        },
        account: AccountConfig {
            subdomain: "acme".into(),
            fallback_domain: "hs-inbox.test".into(),
            company_name: "Acme".into(),
        },
        users: vec![],
        teams: vec![],
        inboxes: vec![
            inbox(
                "Support",
                vec![
                    channel("support@acme.hs-inbox.test", On),
                    channel("help@acme.example", On),
                ],
            ),
            inbox(
                "Sales",
                vec![
                    channel("sales@acme.hs-inbox.test", On),
                    channel("old@acme.example", Off),
                ],
            ),
        ],
        api: ApiConfig {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            trusted_proxies: Vec::new(),
            tls: None,
        },
        outbound: OutboundConfig::default(),
        classification: crate::config::ClassificationConfig::default(),
        store: crate::config::StoreConfig::Sqlite,
    }
}

/// One message the sink was given.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope: Envelope,
    pub targets: Vec<Target>,
    pub message: Vec<u8>,
}

/// How the recording sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Store,
    StorageFull,
    Unavailable,
}

/// Records deliveries; fails instead when told to.
pub struct RecordingSink {
    deliveries: Mutex<Vec<Delivery>>,
    mode: Mutex<SinkMode>,
}

impl RecordingSink {
    pub fn new() -> RecordingSink {
        RecordingSink {
            deliveries: Mutex::new(Vec::new()),
            mode: Mutex::new(SinkMode::Store),
        }
    }

    pub fn set_mode(&self, mode: SinkMode) {
        *self.mode.lock().expect("sink lock") = mode;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("sink lock").clone()
    }
}

impl MailSink for RecordingSink {
    async fn deliver(
        &self,
        envelope: Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<Delivered, SinkError> {
        let mode = *self.mode.lock().expect("sink lock");
        match mode {
            SinkMode::StorageFull => return Err(SinkError::StorageFull),
            SinkMode::Unavailable => return Err(SinkError::Unavailable("disk on fire".into())),
            SinkMode::Store => {}
        }
        let mut deliveries = self.deliveries.lock().expect("sink lock");
        deliveries.push(Delivery {
            envelope,
            targets,
            message,
        });
        Ok(Delivered {
            queue_id: format!("Q{}", deliveries.len()),
        })
    }
}

pub fn context(config: Config) -> Arc<SmtpContext<RecordingSink>> {
    Arc::new(SmtpContext {
        config: Arc::new(crate::config::LiveConfig::new(config)),
        sink: RecordingSink::new(),
        tls: None,
        metrics: Arc::default(),
    })
}

/// A session running over an in-memory duplex, with its client end.
pub struct TestSession {
    pub client: TestClient<tokio::io::DuplexStream>,
    pub ctx: Arc<SmtpContext<RecordingSink>>,
    pub shutdown: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

/// Starts a session and reads its greeting.
pub async fn start(ctx: Arc<SmtpContext<RecordingSink>>) -> TestSession {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let session_ctx = Arc::clone(&ctx);
    let task = tokio::spawn(async move {
        session::run(&session_ctx, server_io, PEER, shutdown_rx).await;
    });
    let mut client = TestClient::new(client_io);
    client.expect("220 mx.acme.test ESMTP inboxgate").await;
    TestSession {
        client,
        ctx,
        shutdown,
        task,
    }
}

/// Starts a session with the test configuration and says EHLO.
pub async fn start_ehlo() -> TestSession {
    let mut session = start(context(test_config())).await;
    session.client.cmd("EHLO client.example", "250 ").await;
    session
}

/// A raw SMTP client.
pub struct TestClient<T> {
    io: BufReader<T>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> TestClient<T> {
    pub fn new(io: T) -> TestClient<T> {
        TestClient {
            io: BufReader::new(io),
        }
    }

    pub fn into_inner(self) -> T {
        self.io.into_inner()
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("send to server");
        self.io.flush().await.expect("flush to server");
    }

    /// Reads one (possibly multi-line) reply; empty when the server has closed.
    pub async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            match self.io.read_line(&mut line).await {
                Ok(0) | Err(_) => return reply,
                Ok(_) => {}
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Reads a reply and checks that its last line starts with `expected`.
    pub async fn expect(&mut self, expected: &str) -> String {
        let reply = self.reply().await;
        let last = reply.lines().last().unwrap_or("");
        assert!(
            last.starts_with(expected),
            "expected {expected:?}, got {reply:?}"
        );
        reply
    }

    /// Sends one command line and checks the reply, Stalwart style.
    pub async fn cmd(&mut self, line: &str, expected: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.expect(expected).await
    }

    /// Everything the server sends until it closes the connection.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.io.read_to_end(&mut rest).await;
        rest
    }

    /// True when the server has closed the connection (no more bytes).
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.io.read_line(&mut rest).await, Ok(0) | Err(_))
    }
}
