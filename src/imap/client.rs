//! An IMAP client session for the poller: imap-next's `Client` state machine (encoding,
//! literals, AUTHENTICATE and IDLE flows) over TCP or tokio-rustls, with the few commands
//! a sync needs: CAPABILITY, LOGIN / AUTHENTICATE PLAIN / XOAUTH2, LIST, EXAMINE,
//! UID SEARCH, UID FETCH BODY.PEEK[] and IDLE. It only reads: it never stores flags,
//! deletes or expunges (folders are opened with EXAMINE, read-only).
//!
//! Every wait on the server has a deadline, so a silent server becomes an error the
//! poller can back off from instead of a stuck task. STARTTLS is done by hand before the
//! state machine starts, because imap-next leaves that step to its caller.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::{MessageDataItem, MessageDataItemName};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, GreetingKind, Status, StatusKind};
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::stream::{Error as StreamError, Stream};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{RemoteServer, TlsMode};

/// How long connecting (TCP and TLS) may take, at most: a channel's shorter
/// `imap_timeout` lowers it too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest greeting or STARTTLS reply line read by hand.
const MAX_LINE: usize = 8 * 1024;

/// Why a session failed; the poller backs off from every kind, and reports
/// [`ImapError::Auth`] as `auth_failed`.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("TLS with {0}")]
    Tls(String),
    #[error("bad greeting: {0}")]
    Greeting(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no reply from the server within {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("{command} refused: {text}")]
    Refused { command: &'static str, text: String },
    #[error("{0}")]
    Protocol(String),
}

/// How the poller logs in.
pub enum Credentials {
    Password { username: String, password: String },
    OAuth2 { username: String, token: String },
}

/// An opened (EXAMINEd) folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folder {
    pub uidvalidity: u32,
    pub uidnext: Option<u32>,
    pub exists: u32,
}

/// What an IDLE ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEnd {
    /// The server announced new messages (EXISTS).
    NewMail,
    /// The wait ran out; time to re-IDLE or poll the other folders.
    TimedOut,
}

/// The replies to one command: its untagged data and response codes.
struct Reply {
    data: Vec<Data<'static>>,
    codes: Vec<Code<'static>>,
}

/// A connected, greeted IMAP session.
pub struct Session {
    stream: Stream,
    client: Client,
    next_tag: u32,
    capabilities: Vec<String>,
    /// How long any single reply may take before the connection is given up.
    reply_timeout: Duration,
}

impl Session {
    /// Connects (with TLS as configured), checks the greeting and reads capabilities.
    /// Every later wait for the server is bounded by `reply_timeout`.
    pub async fn connect(
        server: &RemoteServer,
        reply_timeout: Duration,
    ) -> Result<Session, ImapError> {
        let peer = format!("{}:{}", server.host, server.port);
        let connect_timeout = CONNECT_TIMEOUT.min(reply_timeout);
        let tcp = within(connect_timeout, TcpStream::connect(&peer))
            .await?
            .map_err(|e| ImapError::Connect(format!("{peer}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (stream, greeted) = match server.tls {
            TlsMode::None => (Stream::insecure(tcp), false),
            TlsMode::Implicit => {
                let tls = tls_handshake(server, tcp, connect_timeout).await?;
                (Stream::tls(tls.into()), false)
            }
            TlsMode::StartTls => {
                let tcp = starttls(tcp, reply_timeout).await?;
                let tls = tls_handshake(server, tcp, connect_timeout).await?;
                (Stream::tls(tls.into()), true)
            }
        };
        let mut options = Options::default();
        options.crlf_relaxed = true;
        options.discard_greeting = greeted;
        let mut session = Session {
            stream,
            client: Client::new(options),
            next_tag: 0,
            capabilities: Vec::new(),
            reply_timeout,
        };
        if !greeted {
            session.greeting().await?;
        }
        session.refresh_capabilities().await?;
        Ok(session)
    }

    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Waits for the greeting; anything unreadable instead of one (another protocol on
    /// the port, garbage) is reported as a bad greeting.
    async fn greeting(&mut self) -> Result<(), ImapError> {
        loop {
            let event = self.next_event().await.map_err(|e| match e {
                ImapError::Protocol(text) => ImapError::Greeting(text),
                other => other,
            })?;
            if let Event::GreetingReceived { greeting } = event {
                return match greeting.kind {
                    GreetingKind::Ok | GreetingKind::PreAuth => Ok(()),
                    GreetingKind::Bye => Err(ImapError::Greeting(greeting.text.to_string())),
                };
            }
        }
    }

    async fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
        let reply = self.run("CAPABILITY", CommandBody::Capability).await?;
        self.capabilities = reply
            .data
            .iter()
            .filter_map(|d| match d {
                Data::Capability(list) => Some(list.as_ref().iter().map(|c| c.to_string())),
                _ => None,
            })
            .flatten()
            .collect();
        Ok(())
    }

    /// Logs in: XOAUTH2 with a token, else AUTHENTICATE PLAIN when offered, else LOGIN.
    pub async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), ImapError> {
        match credentials {
            Credentials::OAuth2 { username, token } => {
                let ir = format!("user={username}\x01auth=Bearer {token}\x01\x01");
                self.sasl(AuthMechanism::XOAuth2, ir.into_bytes()).await?;
            }
            Credentials::Password { username, password } if self.has_capability("AUTH=PLAIN") => {
                let ir = format!("\0{username}\0{password}");
                self.sasl(AuthMechanism::Plain, ir.into_bytes()).await?;
            }
            Credentials::Password { username, password } => {
                if self.has_capability("LOGINDISABLED") {
                    return Err(ImapError::Auth(
                        "the server disables LOGIN and offers no AUTH=PLAIN (TLS needed?)".into(),
                    ));
                }
                let body = CommandBody::login(username.clone(), password.clone())
                    .map_err(|_| ImapError::Auth("username or password cannot be sent".into()))?;
                self.run("LOGIN", body).await.map_err(auth_error)?;
            }
        }
        // Capabilities change after login (IDLE, for one, may appear only now).
        self.refresh_capabilities().await
    }

    /// AUTHENTICATE with an initial response (SASL-IR when offered, else after `+`).
    async fn sasl(
        &mut self,
        mechanism: AuthMechanism<'static>,
        ir: Vec<u8>,
    ) -> Result<(), ImapError> {
        let mut pending = Some(ir);
        let body = if self.has_capability("SASL-IR") {
            CommandBody::authenticate_with_ir(mechanism, pending.take().unwrap_or_default())
        } else {
            CommandBody::authenticate(mechanism)
        };
        self.enqueue(body)?;
        loop {
            match self.next_event().await? {
                Event::AuthenticateContinuationRequestReceived { .. } => {
                    // A second challenge (XOAUTH2's error JSON) is answered empty.
                    let data = AuthenticateData::r#continue(pending.take().unwrap_or_default());
                    let _ = self.client.set_authenticate_data(data);
                }
                Event::AuthenticateStatusReceived { status, .. } => {
                    return match status_outcome(&status) {
                        Ok(()) => Ok(()),
                        Err(text) => Err(ImapError::Auth(text)),
                    };
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } => return Err(ImapError::Lost(format!("server said BYE: {}", bye.text))),
                _ => {}
            }
        }
    }

    /// `LIST "" folder`: whether the folder exists and whether it is a Junk folder
    /// (the `\Junk` special-use attribute).
    pub async fn folder_attributes(&mut self, folder: &str) -> Result<Option<bool>, ImapError> {
        let body = CommandBody::list("", folder.to_string())
            .map_err(|_| ImapError::Protocol(format!("folder name {folder:?} cannot be sent")))?;
        let reply = self.run("LIST", body).await?;
        let mut found = None;
        for data in &reply.data {
            if let Data::List { items, .. } = data {
                let junk = items
                    .iter()
                    .any(|a| a.to_string().eq_ignore_ascii_case("\\Junk"));
                found = Some(found.unwrap_or(false) || junk);
            }
        }
        Ok(found)
    }

    /// Opens `folder` read-only (EXAMINE never changes flags).
    pub async fn examine(&mut self, folder: &str) -> Result<Folder, ImapError> {
        let mailbox = mailbox(folder)?;
        let reply = self
            .run("EXAMINE", CommandBody::Examine { mailbox })
            .await?;
        let mut opened = Folder {
            uidvalidity: 0,
            uidnext: None,
            exists: 0,
        };
        for code in &reply.codes {
            match code {
                Code::UidValidity(v) => opened.uidvalidity = v.get(),
                Code::UidNext(n) => opened.uidnext = Some(n.get()),
                _ => {}
            }
        }
        for data in &reply.data {
            if let Data::Exists(n) = data {
                opened.exists = *n;
            }
        }
        if opened.uidvalidity == 0 {
            return Err(ImapError::Protocol(format!(
                "EXAMINE {folder:?} gave no UIDVALIDITY"
            )));
        }
        Ok(opened)
    }

    /// UIDs above `after` in the open folder, ascending.
    pub async fn uids_after(&mut self, after: u32) -> Result<Vec<u32>, ImapError> {
        let range = SequenceSet::try_from(format!("{}:*", after.saturating_add(1)).as_str())
            .map_err(|_| ImapError::Protocol("bad UID range".into()))?;
        let criteria = Vec1::from(SearchKey::Uid(range));
        let reply = self
            .run("UID SEARCH", CommandBody::search(None, criteria, true))
            .await?;
        let mut uids: Vec<u32> = reply
            .data
            .iter()
            .filter_map(|d| match d {
                Data::Search(list, ..) => Some(list.iter().map(|u| u.get())),
                _ => None,
            })
            .flatten()
            // `n:*` always matches the highest UID, even when it is below n.
            .filter(|&uid| uid > after)
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// `UID FETCH uids (UID BODY.PEEK[])`: whole messages, without setting \Seen.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        let set: Vec<NonZeroU32> = uids.iter().filter_map(|&u| NonZeroU32::new(u)).collect();
        let set =
            SequenceSet::try_from(set).map_err(|_| ImapError::Protocol("empty UID set".into()))?;
        let items = vec![
            MessageDataItemName::Uid,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                peek: true,
            },
        ];
        let body = CommandBody::fetch(set, items, true)
            .map_err(|_| ImapError::Protocol("bad FETCH".into()))?;
        let reply = self.run("UID FETCH", body).await?;
        let mut messages: Vec<(u32, Vec<u8>)> = reply
            .data
            .into_iter()
            .filter_map(|d| match d {
                Data::Fetch { items, .. } => fetched_message(items),
                _ => None,
            })
            .collect();
        messages.sort_by_key(|(uid, _)| *uid);
        Ok(messages)
    }

    /// IDLE on the open folder until new mail is announced or `wait` runs out.
    pub async fn idle(&mut self, wait: Duration) -> Result<IdleEnd, ImapError> {
        self.enqueue(CommandBody::Idle)?;
        loop {
            match self.next_event().await? {
                Event::IdleAccepted { .. } => break,
                Event::IdleRejected { status, .. } => {
                    return Err(ImapError::Refused {
                        command: "IDLE",
                        text: status_text(&status),
                    })
                }
                event => check_bye(&event)?,
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        let end = loop {
            match tokio::time::timeout_at(deadline, self.stream.next(&mut self.client)).await {
                Err(_) => break IdleEnd::TimedOut,
                Ok(event) => {
                    let event = event.map_err(stream_error)?;
                    check_bye(&event)?;
                    if let Event::DataReceived {
                        data: Data::Exists(_),
                    } = event
                    {
                        break IdleEnd::NewMail;
                    }
                }
            }
        };
        let _ = self.client.set_idle_done();
        loop {
            match self.next_event().await? {
                Event::StatusReceived {
                    status: Status::Tagged(_),
                } => return Ok(end),
                event => check_bye(&event)?,
            }
        }
    }

    /// Says goodbye politely; errors do not matter any more.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.run("LOGOUT", CommandBody::Logout),
        )
        .await;
    }

    fn enqueue(&mut self, body: CommandBody<'static>) -> Result<(), ImapError> {
        self.next_tag += 1;
        let command = Command::new(format!("G{}", self.next_tag), body)
            .map_err(|_| ImapError::Protocol("bad tag".into()))?;
        self.client.enqueue_command(command);
        Ok(())
    }

    /// Sends one command and collects its replies until the tagged status.
    async fn run(
        &mut self,
        name: &'static str,
        body: CommandBody<'static>,
    ) -> Result<Reply, ImapError> {
        self.enqueue(body)?;
        let mut reply = Reply {
            data: Vec::new(),
            codes: Vec::new(),
        };
        loop {
            match self.next_event().await? {
                Event::DataReceived { data } => reply.data.push(data),
                Event::StatusReceived { status } => match status {
                    Status::Untagged(body) => reply.codes.extend(body.code),
                    Status::Tagged(tagged) => {
                        return match tagged.body.kind {
                            StatusKind::Ok => {
                                reply.codes.extend(tagged.body.code);
                                Ok(reply)
                            }
                            _ => Err(ImapError::Refused {
                                command: name,
                                text: tagged.body.text.to_string(),
                            }),
                        };
                    }
                    Status::Bye(bye) => {
                        return Err(ImapError::Lost(format!("server said BYE: {}", bye.text)))
                    }
                },
                Event::CommandRejected { status, .. } => {
                    return Err(ImapError::Refused {
                        command: name,
                        text: status_text(&status),
                    })
                }
                _ => {}
            }
        }
    }

    async fn next_event(&mut self) -> Result<Event, ImapError> {
        within(self.reply_timeout, self.stream.next(&mut self.client))
            .await?
            .map_err(stream_error)
    }
}

async fn within<F: std::future::Future>(limit: Duration, f: F) -> Result<F::Output, ImapError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| ImapError::Timeout(limit))
}

fn stream_error<E: std::fmt::Display>(e: StreamError<E>) -> ImapError {
    match e {
        StreamError::Closed => ImapError::Lost("the server closed the connection".into()),
        StreamError::Io(e) => ImapError::Lost(e.to_string()),
        StreamError::Tls(e) => ImapError::Tls(e.to_string()),
        StreamError::State(e) => ImapError::Protocol(format!("unreadable reply: {e}")),
    }
}

fn check_bye(event: &Event) -> Result<(), ImapError> {
    match event {
        Event::StatusReceived {
            status: Status::Bye(bye),
        } => Err(ImapError::Lost(format!("server said BYE: {}", bye.text))),
        _ => Ok(()),
    }
}

fn auth_error(e: ImapError) -> ImapError {
    match e {
        ImapError::Refused { text, .. } => ImapError::Auth(text),
        other => other,
    }
}

fn status_outcome(status: &Status) -> Result<(), String> {
    match status {
        Status::Tagged(t) if t.body.kind == StatusKind::Ok => Ok(()),
        other => Err(status_text(other)),
    }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Tagged(t) => t.body.text.to_string(),
        Status::Untagged(b) => b.text.to_string(),
        Status::Bye(b) => b.text.to_string(),
    }
}

fn mailbox(folder: &str) -> Result<Mailbox<'static>, ImapError> {
    Mailbox::try_from(folder.to_string())
        .map_err(|_| ImapError::Protocol(format!("folder name {folder:?} cannot be sent")))
}

/// The UID and whole message of one FETCH response, if it carries both.
fn fetched_message(items: Vec1<MessageDataItem<'static>>) -> Option<(u32, Vec<u8>)> {
    let mut uid = None;
    let mut body = None;
    for item in items.into_iter() {
        match item {
            MessageDataItem::Uid(u) => uid = Some(u.get()),
            MessageDataItem::BodyExt {
                section: None,
                data,
                ..
            } => body = data.0.map(|s| s.as_ref().to_vec()),
            _ => {}
        }
    }
    Some((uid?, body?))
}

/// Reads the greeting and negotiates STARTTLS on the plain connection.
async fn starttls(mut tcp: TcpStream, limit: Duration) -> Result<TcpStream, ImapError> {
    let greeting = read_line(&mut tcp, limit).await?;
    if !greeting.to_ascii_uppercase().starts_with("* OK") {
        return Err(ImapError::Greeting(greeting));
    }
    tcp.write_all(b"S0 STARTTLS\r\n")
        .await
        .map_err(|e| ImapError::Lost(e.to_string()))?;
    loop {
        let line = read_line(&mut tcp, limit).await?;
        if let Some(status) = line.strip_prefix("S0 ") {
            if status.to_ascii_uppercase().starts_with("OK") {
                return Ok(tcp);
            }
            return Err(ImapError::Tls(format!("STARTTLS refused: {status}")));
        }
    }
}

/// One CRLF line, read a byte at a time so nothing after it is consumed.
async fn read_line(tcp: &mut TcpStream, limit: Duration) -> Result<String, ImapError> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        if line.len() > MAX_LINE {
            return Err(ImapError::Protocol("line too long before TLS".into()));
        }
        let byte = within(limit, tcp.read_u8())
            .await?
            .map_err(|e| ImapError::Lost(e.to_string()))?;
        line.push(byte);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn tls_handshake(
    server: &RemoteServer,
    tcp: TcpStream,
    limit: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    let config = tls_config(server)?;
    let name = ServerName::try_from(server.host.clone())
        .map_err(|e| ImapError::Tls(format!("{}: {e}", server.host)))?;
    within(limit, TlsConnector::from(config).connect(name, tcp))
        .await?
        .map_err(|e| ImapError::Tls(format!("{}: {e}", server.host)))
}

/// The system's trusted roots plus the channel's own `ca_file`.
fn tls_config(server: &RemoteServer) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &server.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls_pki_types::CertificateDer =
                cert.map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ImapError::Tls(format!("ca_file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
