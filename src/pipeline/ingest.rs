//! The ingest entry point: what the SMTP server (and later the IMAP poller) hands
//! received messages to. Parses the message, adds our trace header, and files it through
//! the store's writer; resolves only after the commit, so the caller may acknowledge.

use std::sync::Arc;

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use super::classify::{Classifier, Received};
use super::parse::{self, Inbound};
use super::{Envelope, Target};
use crate::smtp::{Delivered, MailSink, SinkError};
use crate::store::{Filed, NewInbound, StoreError, Writer};

/// Messages at least this large are parsed on the blocking pool, not the event loop.
const BLOCKING_PARSE_SIZE: usize = 256 * 1024;

/// A source of "now" as a Unix timestamp; tests inject their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| OffsetDateTime::now_utc().unix_timestamp())
}

/// Files received messages. Cheap to clone.
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

    /// Parses and files `message` into every target inbox; returns where it went.
    pub async fn file(
        &self,
        envelope: &Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<Vec<Filed>, StoreError> {
        let now = (self.clock)();
        let (parsed, message) = parse_off_loop(message, envelope.mail_from.clone()).await?;
        let classification = self
            .classifier
            .classify(&Received {
                raw: &message,
                parsed: &parsed,
                mail_from: Some(&envelope.mail_from),
                peer: envelope.peer,
                helo: Some(&envelope.helo),
            })
            .await;
        let mut raw = received_header(&self.hostname, envelope, now).into_bytes();
        raw.extend_from_slice(&message);
        let job = NewInbound {
            classification,
            config: Some(self.classifier.config()),
            targets,
            parsed,
            raw,
            mail_from: envelope.mail_from.clone(),
            rcpt_to: envelope.recipients.clone(),
            received_at: now,
        };
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
    mail_from: String,
) -> Result<(Inbound, Vec<u8>), StoreError> {
    if message.len() < BLOCKING_PARSE_SIZE {
        return Ok((parse::parse_received(&message, Some(&mail_from)), message));
    }
    tokio::task::spawn_blocking(move || {
        (parse::parse_received(&message, Some(&mail_from)), message)
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
