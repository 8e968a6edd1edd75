//! The one way in for received mail. [`Ingest::prepare`] turns the bytes of a message,
//! from an SMTP session or fetched from a team mailbox over IMAP, into the store's job:
//! parse (off the event loop when large), classify, add our trace header (SMTP), and
//! attach the configuration in force. SMTP files the job at once ([`Ingest::file`], the
//! `MailSink`), resolving only after the commit so the session may acknowledge; the IMAP
//! poller files a batch of jobs with its folder checkpoint in one transaction.

use std::sync::Arc;

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::pipeline::classify::{Classifier, Received};
use crate::pipeline::parse::{self, Inbound};
use crate::pipeline::{Envelope, Target};
use crate::smtp::{Delivered, MailSink, SinkError};
use crate::store::{Filed, NewInbound, StoreError, Writer};

/// Messages at least this large are parsed on the blocking pool, not the event loop.
const BLOCKING_PARSE_SIZE: usize = 256 * 1024;

/// Where a received message came from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// An SMTP transaction, with its envelope.
    Smtp(&'a Envelope),
    /// Fetched from the team mailbox of IMAP channel `channel` (no envelope).
    Imap { channel: &'a str },
}

impl<'a> Source<'a> {
    /// The envelope sender; `None` over IMAP, `Some("")` for the null sender.
    fn mail_from(self) -> Option<&'a str> {
        match self {
            Source::Smtp(envelope) => Some(&envelope.mail_from),
            Source::Imap { .. } => None,
        }
    }

    fn recipients(self) -> Vec<String> {
        match self {
            Source::Smtp(envelope) => envelope.recipients.clone(),
            Source::Imap { channel } => vec![channel.to_string()],
        }
    }
}

/// Prepares and files received messages. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    writer: Writer,
    classifier: Arc<Classifier>,
    hostname: Arc<str>,
    clock: Clock,
}

impl Ingest {
    pub fn new(
        writer: Writer,
        classifier: Arc<Classifier>,
        hostname: &str,
        clock: Clock,
    ) -> Ingest {
        Ingest {
            writer,
            classifier,
            hostname: hostname.into(),
            clock,
        }
    }

    /// The store's job for `message`, received from `source` for `targets`: parsed,
    /// classified, with our `Received:` header (SMTP) and a snapshot of the running
    /// configuration (routing, tickets) taken now.
    pub async fn prepare(
        &self,
        source: Source<'_>,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<NewInbound, StoreError> {
        let now = (self.clock)();
        let mail_from = source.mail_from();
        let (parsed, message) = parse_off_loop(message, mail_from.map(str::to_string)).await?;
        let envelope = match source {
            Source::Smtp(envelope) => Some(envelope),
            Source::Imap { .. } => None,
        };
        let classification = self
            .classifier
            .classify(&Received {
                raw: &message,
                parsed: &parsed,
                mail_from,
                peer: envelope.and_then(|e| e.peer),
                helo: envelope.map(|e| e.helo.as_str()),
            })
            .await;
        let raw = match envelope {
            Some(envelope) => {
                let mut raw = received_header(&self.hostname, envelope, now).into_bytes();
                raw.extend_from_slice(&message);
                raw
            }
            None => message,
        };
        Ok(NewInbound {
            classification,
            config: Some(self.classifier.config()),
            targets,
            parsed,
            raw,
            mail_from: mail_from.unwrap_or_default().to_string(),
            rcpt_to: source.recipients(),
            received_at: now,
        })
    }

    /// Prepares and files `message` from an SMTP session into every target inbox;
    /// returns where it went, once committed.
    pub async fn file(
        &self,
        envelope: &Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<Vec<Filed>, StoreError> {
        let job = self
            .prepare(Source::Smtp(envelope), targets, message)
            .await?;
        let message_id = job.parsed.message_id.clone();
        let filed = self.writer.file_inbound(job).await?;
        for f in &filed {
            tracing::info!(
                message_id = message_id.as_deref().unwrap_or("-"),
                inbox = %f.inbox,
                conversation = f.conversation_id,
                thread = f.decision,
                "stored"
            );
        }
        Ok(filed)
    }
}

async fn parse_off_loop(
    message: Vec<u8>,
    mail_from: Option<String>,
) -> Result<(Inbound, Vec<u8>), StoreError> {
    if message.len() < BLOCKING_PARSE_SIZE {
        return Ok((
            parse::parse_received(&message, mail_from.as_deref()),
            message,
        ));
    }
    tokio::task::spawn_blocking(move || {
        (
            parse::parse_received(&message, mail_from.as_deref()),
            message,
        )
    })
    .await
    .map_err(|e| StoreError::Invalid(format!("parser task failed: {e}")))
}

/// Our `Received:` trace header (RFC 5321 §4.4).
fn received_header(hostname: &str, envelope: &Envelope, now: i64) -> String {
    let peer = envelope
        .peer
        .map(|ip| format!(" ([{ip}])"))
        .unwrap_or_default();
    let helo = sanitize(&envelope.helo);
    let date = OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_default();
    let single_rcpt = match envelope.recipients.as_slice() {
        [one] => format!("\r\n\tfor <{}>", sanitize(one)),
        _ => String::new(),
    };
    let protocol = sanitize(&envelope.protocol);
    format!("Received: from {helo}{peer}\r\n\tby {hostname} (inboxgate) with {protocol}{single_rcpt};\r\n\t{date}\r\n")
}

/// Keeps client-supplied text from breaking the header.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(255).collect()
}

impl MailSink for Ingest {
    async fn deliver(
        &self,
        envelope: Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<Delivered, SinkError> {
        match self.file(&envelope, targets, message).await {
            Ok(filed) => Ok(Delivered {
                queue_id: queue_id(&filed),
            }),
            Err(StoreError::Full(e)) => {
                tracing::warn!(error = %e, "refused a message: storage full");
                Err(SinkError::StorageFull)
            }
            Err(e) => {
                tracing::error!(error = %e, "could not store a message");
                Err(SinkError::Unavailable("local error in processing".into()))
            }
        }
    }
}

/// The id quoted in the 250 reply: the stored message rows (or the conversations of
/// duplicates), so an administrator can find the message from the client's log.
fn queue_id(filed: &[Filed]) -> String {
    let ids: Vec<String> = filed
        .iter()
        .map(|f| match f.message_row {
            Some(row) => format!("M{row}"),
            None => format!("C{}", f.conversation_id),
        })
        .collect();
    ids.join(",")
}
