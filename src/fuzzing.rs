//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing` only): the SMTP
//! session (command parser and DATA framing), the ingest pipeline's pure stages, and the
//! config loader, each fed arbitrary bytes. They check invariants with `assert!`, so a
//! broken invariant is a crash the fuzzer reports, like a panic.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{self, Config, LiveConfig};
use crate::pipeline::parse::{self, Inbound};
use crate::pipeline::thread::{self, Candidate, ThreadLookup};
use crate::pipeline::{Envelope, Target};
use crate::smtp::data::{decode, DataReader};
use crate::smtp::{Delivered, MailSink, SinkError, SmtpContext};

const CONFIG: &str = r#"
[account]
subdomain = "demo"
company_name = "Demo"
[[users]]
email = "alice@demo.example"
name = "Alice"
[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = { mode = "company", company = "Demo Support" }
[[inboxes]]
name = "Sales"
  [[inboxes.channels]]
  kind = "fallback"
  user = "sales"
  status = "off"
  from_name = { mode = "company", company = "Demo Sales" }
"#;

/// Accepts everything and checks what the session hands over.
struct CheckingSink;

impl MailSink for CheckingSink {
    async fn deliver(
        &self,
        envelope: Envelope,
        targets: Vec<Target>,
        message: Vec<u8>,
    ) -> Result<Delivered, SinkError> {
        assert!(!targets.is_empty() && !envelope.recipients.is_empty());
        assert!(
            no_bare_line_ends(&message),
            "bare CR or LF reached the sink"
        );
        let _ = parse::parse(&message);
        Ok(Delivered {
            queue_id: "F1".into(),
        })
    }
}

fn test_config() -> Config {
    let mut config = config::parse(CONFIG).expect("the fuzzing config is valid");
    config.smtp.max_message_size = 64 * 1024;
    config.smtp.max_line_length = 1024;
    config
}

/// One SMTP session whose client sends `input` and then closes.
pub fn smtp_session(input: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let context = SmtpContext {
        config: Arc::new(LiveConfig::new(test_config())),
        sink: CheckingSink,
        tls: None,
        metrics: Arc::default(),
    };
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let session = crate::smtp::session::run(&context, server, [127, 0, 0, 1].into(), shutdown);
        let drive = async {
            let _ = client.write_all(input).await;
            let _ = client.shutdown().await;
            let mut replies = Vec::new();
            let _ = client.read_to_end(&mut replies).await;
            replies
        };
        let ((), replies) = tokio::join!(session, drive);
        assert!(
            replies.is_empty() || replies.starts_with(b"220 "),
            "no greeting"
        );
    });
}

/// DATA framing alone: the end is found only at CRLF.CRLF and the content is clean.
pub fn data_framing(input: &[u8]) {
    let mut reader = DataReader::new(16 * 1024);
    let used = reader.feed(input);
    assert!(used <= input.len());
    if reader.is_done() {
        assert!(input[..used].ends_with(b"\r\n.\r\n") || input[..used] == b".\r\n"[..]);
        if let Ok(message) = reader.finish() {
            assert!(no_bare_line_ends(&message));
        }
    }
    assert!(no_bare_line_ends(&decode(input)));
}

/// A lookup that claims every id and thread root, to exercise every guard.
struct EverythingMatches;

impl ThreadLookup for EverythingMatches {
    type Error = ();
    fn by_message_id(&mut self, id: &str, sender: &str) -> Result<Option<Candidate>, ()> {
        Ok(Some(candidate(id, sender)))
    }
    fn by_thread_index(&mut self, root: &str, sender: &str) -> Result<Option<Candidate>, ()> {
        Ok(Some(candidate(root, sender)))
    }
    fn by_subject(&mut self, _: &str, _: &str, _: i64) -> Result<Option<i64>, ()> {
        Ok(Some(1))
    }
}

fn candidate(key: &str, sender: &str) -> Candidate {
    Candidate {
        conversation_id: key.len() as i64,
        subject_norm: key.to_lowercase(),
        sender_is_participant: key.len().is_multiple_of(2),
        contact: sender.to_string(),
        gone: key.len().is_multiple_of(3),
    }
}

/// The pure ingest stages on arbitrary bytes: parse, then thread.
pub fn ingest(input: &[u8]) {
    let inbound: Inbound = parse::parse(input);
    assert!(!inbound.dedupe_key.is_empty());
    let sender = inbound
        .from
        .as_ref()
        .map(|m| m.address.clone())
        .unwrap_or_default();
    let _ = thread::decide(&inbound, &sender, 0, &mut EverythingMatches);
}

/// The config loader on arbitrary text: problems, never a panic.
pub fn config_loader(input: &[u8]) {
    if let Ok(text) = std::str::from_utf8(input) {
        if let Err(problems) = config::parse(text) {
            assert!(!problems.is_empty());
        }
    }
}

fn no_bare_line_ends(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_run_on_samples() {
        smtp_session(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@demo.hs-inbox.com>\r\nDATA\r\nhi\n.\r\n.\r\nQUIT\r\n");
        data_framing(b"a\r\n.\r\n");
        ingest(b"Subject: Re: x\r\nIn-Reply-To: <a@b>\r\n\r\nbody");
        config_loader(b"[smtp]\nlisten = 1\n");
    }
}
