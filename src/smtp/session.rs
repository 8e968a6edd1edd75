//! The SMTP protocol state machine for one connection (RFC 5321 with PIPELINING, SIZE,
//! 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and STARTTLS).
//!
//! [`run`] drives a `Session` over any `AsyncRead + AsyncWrite` stream, so tests use an
//! in-memory duplex and the listener a TCP socket. The session is a loop of "read the
//! next command line, answer it"; the only states are the client's greeting (`helo`)
//! and the mail transaction in progress (`transaction`). The 250 after DATA is sent
//! only when the [`MailSink`] reports the message durably stored.
//!
//! Every wait on the client is bounded by the idle timeout and the session deadline
//! (421 4.4.2). Between transactions a wait also ends on shutdown (421 4.3.0); a
//! transaction already started (MAIL given) may finish first.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::metrics::{Metrics, Refusal};
use crate::pipeline::{Envelope, Target};

use super::connection::{Connection, Line};
use super::data::{DataReader, TooBig};
use super::recipient::{self, MailFrom, RcptVerdict};
use super::reply::Reply;
use super::{MailSink, SinkError, SmtpContext};

/// Serves one SMTP connection from greeting to close. `shutdown` turning `true` asks the
/// session to end at the next point between transactions.
pub async fn run<S, IO>(ctx: &SmtpContext<S>, io: IO, peer: IpAddr, shutdown: watch::Receiver<bool>)
where
    S: MailSink,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = info_span!("smtp", peer = %peer);
    async move {
        debug!("connected");
        let mut session = Session::new(ctx, io, peer, shutdown);
        let end = session.serve().await;
        session.finish(end).await;
    }
    .instrument(span)
    .await
}

/// Why a session ends.
#[derive(Debug)]
enum End {
    Quit,
    /// The client closed the connection or it failed.
    Closed,
    Timeout,
    Shutdown,
}

/// What the client said in EHLO/HELO.
#[derive(Debug, Clone)]
struct Helo {
    name: String,
    esmtp: bool,
}

/// The mail transaction between MAIL and the end of DATA.
#[derive(Debug)]
struct Transaction {
    mail: MailFrom,
    /// Accepted RCPT TO addresses, as given.
    recipients: Vec<String>,
    /// One per distinct inbox, in the order first reached.
    targets: Vec<Target>,
    rejected: usize,
}

struct Session<'a, S, IO> {
    ctx: &'a SmtpContext<S>,
    conn: Connection<IO>,
    peer: IpAddr,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
    /// The configuration as it was when the session began.
    config: Arc<Config>,
    helo: Option<Helo>,
    transaction: Option<Transaction>,
}

impl<'a, S, IO> Session<'a, S, IO>
where
    S: MailSink,
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(ctx: &'a SmtpContext<S>, io: IO, peer: IpAddr, shutdown: watch::Receiver<bool>) -> Self {
        let config = ctx.config.current();
        Session {
            ctx,
            deadline: Instant::now() + config.smtp.session_timeout,
            config,
            conn: Connection::new(io),
            peer,
            shutdown,
            helo: None,
            transaction: None,
        }
    }

    fn hostname(&self) -> &str {
        &self.config.server.hostname
    }

    async fn serve(&mut self) -> End {
        let greeting = Reply::plain(220, vec![format!("{} ESMTP inboxgate", self.hostname())]);
        self.conn.queue(&greeting);
        loop {
            if self.transaction.is_none() && *self.shutdown.borrow() {
                return End::Shutdown;
            }
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(end) => return end,
            };
            let result = match line {
                Line::Command(command) => self.command(&command).await,
                Line::TooLong => self.reject(Reply::line_too_long()),
                Line::BareLineEnding => self.reject(Reply::bare_line_ending()),
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Sends the last reply (if the reason for ending has one) and closes.
    async fn finish(&mut self, end: End) {
        let last = match end {
            End::Quit => Some(Reply::new(221, "2.0.0", "Bye")),
            End::Timeout => Some(Reply::timeout(self.hostname())),
            End::Shutdown => Some(Reply::shutting_down(self.hostname())),
            End::Closed => None,
        };
        debug!(reason = ?end, "session ends");
        if let Some(reply) = last {
            self.conn.queue(&reply);
            let limit = Instant::now() + self.config.smtp.idle_timeout;
            let _ = timeout_at(limit, self.conn.flush()).await;
        }
        let _ = timeout_at(
            Instant::now() + self.config.smtp.idle_timeout,
            self.conn.close(),
        )
        .await;
    }

    async fn next_line(&mut self) -> Result<Line, End> {
        let max = self.config.smtp.max_line_length;
        loop {
            if let Some(line) = self.conn.take_line(max) {
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Flushes replies and reads more input, within the idle timeout and the session
    /// deadline; between transactions, shutdown interrupts the wait.
    async fn fill(&mut self) -> Result<(), End> {
        let limit = self
            .deadline
            .min(Instant::now() + self.config.smtp.idle_timeout);
        match timeout_at(limit, self.conn.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                debug!(%error, "write failed");
                return Err(End::Closed);
            }
            Err(_) => return Err(End::Timeout),
        }
        let interruptible = self.transaction.is_none();
        tokio::select! {
            read = timeout_at(limit, self.conn.read_more()) => match read {
                Ok(Ok(0)) => Err(End::Closed),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => {
                    debug!(%error, "read failed");
                    Err(End::Closed)
                }
                Err(_) => {
                    info!("timeout");
                    Err(End::Timeout)
                }
            },
            () = shutdown_signalled(&mut self.shutdown), if interruptible => Err(End::Shutdown),
        }
    }

    fn reject(&mut self, reply: Reply) -> Result<(), End> {
        debug!(
            code = reply.code(),
            enhanced = reply.enhanced(),
            "command rejected"
        );
        self.conn.queue(&reply);
        Ok(())
    }

    async fn command(&mut self, line: &[u8]) -> Result<(), End> {
        let (verb, args) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &b""[..]),
        };
        let reply = match verb.to_ascii_uppercase().as_slice() {
            b"EHLO" => self.helo(args, true),
            b"HELO" => self.helo(args, false),
            b"MAIL" => self.mail(args),
            b"RCPT" => self.rcpt(args),
            b"DATA" => return self.data(args).await,
            b"RSET" => self.rset(args),
            b"NOOP" => Reply::ok(),
            b"QUIT" => return Err(End::Quit),
            b"VRFY" if args.is_empty() => Reply::syntax("VRFY address"),
            b"VRFY" => Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            b"HELP" => Reply::new(214, "2.0.0", "See RFC 5321"),
            b"STARTTLS" => return self.starttls(args).await,
            _ => Reply::new(500, "5.5.1", "Error: command not recognized"),
        };
        if reply.is_error() {
            return self.reject(reply);
        }
        self.conn.queue(&reply);
        Ok(())
    }

    fn helo(&mut self, args: &[u8], esmtp: bool) -> Reply {
        let name = String::from_utf8_lossy(args).trim().to_string();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Reply::syntax(if esmtp {
                "EHLO hostname"
            } else {
                "HELO hostname"
            });
        }
        self.transaction = None;
        self.helo = Some(Helo { name, esmtp });
        let hostname = self.hostname().to_string();
        if !esmtp {
            return Reply::plain(250, vec![hostname]);
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.smtp.max_message_size),
        ];
        if self.ctx.tls.is_some() && !self.conn.is_tls() {
            lines.push("STARTTLS".to_string());
        }
        lines.extend(["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"].map(String::from));
        Reply::plain(250, lines)
    }

    fn mail(&mut self, args: &[u8]) -> Reply {
        if self.helo.is_none() {
            return Reply::bad_sequence("send HELO/EHLO first");
        }
        if self.transaction.is_some() {
            return Reply::bad_sequence("nested MAIL command");
        }
        let mail = match recipient::parse_mail_from(args) {
            Ok(mail) => mail,
            Err(reply) => return self.refused(reply),
        };
        if mail
            .size
            .is_some_and(|size| size > self.config.smtp.max_message_size)
        {
            return self.refused(Reply::message_too_big());
        }
        self.transaction = Some(Transaction {
            mail,
            recipients: Vec::new(),
            targets: Vec::new(),
            rejected: 0,
        });
        Reply::new(250, "2.1.0", "Ok")
    }

    fn rcpt(&mut self, args: &[u8]) -> Reply {
        let max = self.config.smtp.max_recipients;
        let metrics = &self.ctx.metrics;
        let config = &self.config;
        let Some(transaction) = self.transaction.as_mut() else {
            return Reply::bad_sequence("need MAIL command");
        };
        let rcpt = match recipient::parse_rcpt_to(args) {
            Ok(rcpt) => rcpt,
            Err(reply) => return counted(metrics, reply),
        };
        if transaction.recipients.len() >= max {
            metrics.smtp_refused(Refusal::TooManyRecipients);
            return Reply::new(452, "4.5.3", "Error: too many recipients");
        }
        match recipient::resolve(config, &rcpt.address) {
            RcptVerdict::Accept(target) => {
                if !transaction.targets.iter().any(|t| t.inbox == target.inbox) {
                    transaction.targets.push(target);
                }
                transaction.recipients.push(rcpt.address);
                Reply::new(250, "2.1.5", "Ok")
            }
            RcptVerdict::Reject(reply) => {
                info!(rcpt = %rcpt.address, code = reply.code(), enhanced = reply.enhanced(), "recipient rejected");
                transaction.rejected += 1;
                counted(metrics, reply)
            }
        }
    }

    fn rset(&mut self, args: &[u8]) -> Reply {
        if !args.is_empty() {
            return Reply::syntax("RSET");
        }
        self.transaction = None;
        Reply::ok()
    }

    async fn data(&mut self, args: &[u8]) -> Result<(), End> {
        if let Some(reply) = self.data_refusal(args) {
            return self.reject(reply);
        }
        self.conn.queue(&Reply::plain(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".into()],
        ));
        let received = self.read_message().await?;
        let Some(transaction) = self.transaction.take() else {
            return Ok(());
        };
        let reply = match received {
            Ok(message) => self.deliver(transaction, message).await,
            Err(TooBig) => {
                info!("message over size limit refused");
                self.refused(Reply::message_too_big())
            }
        };
        self.conn.queue(&reply);
        Ok(())
    }

    /// Why DATA cannot start now, if it cannot.
    fn data_refusal(&self, args: &[u8]) -> Option<Reply> {
        if !args.is_empty() {
            return Some(Reply::syntax("DATA"));
        }
        let Some(transaction) = &self.transaction else {
            return Some(Reply::bad_sequence("need MAIL command"));
        };
        if !transaction.recipients.is_empty() {
            return None;
        }
        Some(match transaction.rejected {
            0 => Reply::bad_sequence("need RCPT command"),
            _ => Reply::new(554, "5.5.1", "Error: no valid recipients"),
        })
    }

    /// Reads the message up to `CRLF . CRLF`; an oversize one is drained, then refused.
    async fn read_message(&mut self) -> Result<Result<Vec<u8>, TooBig>, End> {
        let mut reader = DataReader::new(self.config.smtp.max_message_size);
        loop {
            let used = reader.feed(self.conn.buffered());
            self.conn.consume(used);
            if reader.is_done() {
                return Ok(reader.finish());
            }
            self.fill().await?;
        }
    }

    async fn deliver(&mut self, transaction: Transaction, message: Vec<u8>) -> Reply {
        let size = message.len();
        let recipients = transaction.recipients.len();
        let envelope = Envelope {
            mail_from: transaction.mail.address,
            recipients: transaction.recipients,
            helo: self
                .helo
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_default(),
            peer: Some(self.peer),
            protocol: self.protocol().to_string(),
        };
        match self
            .ctx
            .sink
            .deliver(envelope, transaction.targets, message)
            .await
        {
            Ok(delivered) => {
                info!(queue_id = %delivered.queue_id, size, recipients, "message accepted");
                self.ctx.metrics.smtp_accepted();
                Reply::new(
                    250,
                    "2.0.0",
                    format!("Ok: queued as {}", delivered.queue_id),
                )
            }
            Err(SinkError::StorageFull) => {
                warn!(size, "message refused: storage full");
                self.refused(Reply::new(452, "4.3.1", "Insufficient system storage"))
            }
            Err(SinkError::Unavailable(error)) => {
                warn!(size, %error, "message refused: storage unavailable");
                self.refused(Reply::new(
                    451,
                    "4.3.0",
                    "Error: local error in processing, try again later",
                ))
            }
        }
    }

    /// Counts a refused message by the reason its reply carries, and passes it on.
    fn refused(&self, reply: Reply) -> Reply {
        counted(&self.ctx.metrics, reply)
    }

    /// The `with` protocol of the Received header (RFC 3848).
    fn protocol(&self) -> &'static str {
        match (
            self.helo.as_ref().is_some_and(|h| h.esmtp),
            self.conn.is_tls(),
        ) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        }
    }

    async fn starttls(&mut self, args: &[u8]) -> Result<(), End> {
        let refusal = if !args.is_empty() {
            Some(Reply::syntax("STARTTLS"))
        } else if self.conn.is_tls() {
            Some(Reply::bad_sequence("TLS already active"))
        } else if self.ctx.tls.is_none() {
            Some(Reply::new(502, "5.5.1", "Error: command not implemented"))
        } else if self.transaction.is_some() {
            Some(Reply::bad_sequence("MAIL transaction in progress"))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.reject(reply);
        }
        self.conn
            .queue(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.handshake().await?;
        // RFC 3207: the client starts over, with EHLO.
        self.helo = None;
        self.transaction = None;
        Ok(())
    }

    /// Flushes the 220, drops any input sent before the handshake (CVE-2011-0411
    /// plaintext command injection), then runs the handshake within the timeouts.
    async fn handshake(&mut self) -> Result<(), End> {
        let limit = self
            .deadline
            .min(Instant::now() + self.config.smtp.idle_timeout);
        let Some(acceptor) = self.ctx.tls.as_ref() else {
            return Err(End::Closed);
        };
        let conn = &mut self.conn;
        let result = timeout_at(limit, async {
            conn.flush().await?;
            if !conn.buffered().is_empty() {
                info!("discarding input pipelined after STARTTLS");
            }
            conn.discard_input();
            conn.start_tls(acceptor).await
        })
        .await;
        match result {
            Ok(Ok(())) => {
                debug!("TLS established");
                Ok(())
            }
            Ok(Err(error)) => {
                info!(%error, "TLS handshake failed");
                Err(End::Closed)
            }
            Err(_) => Err(End::Timeout),
        }
    }
}

/// Counts a refusal by the reason its reply carries (`from_enhanced`), and passes it on.
fn counted(metrics: &Metrics, reply: Reply) -> Reply {
    if let Some(refusal) = Refusal::from_enhanced(reply.enhanced()) {
        metrics.smtp_refused(refusal);
    }
    reply
}

/// Resolves once shutdown is signalled; never, if the sender is gone without one.
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|&down| down).await.is_err() {
        std::future::pending::<()>().await;
    }
}
