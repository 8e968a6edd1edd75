//! Commands that send mail or change its delivery: `conversations reply|forward`,
//! `compose`, `outbound list|retry`, `channels verify-from|confirm-from`.
//!
//! The daemon may be running: these commands open the store and start a short-lived
//! writer of their own; SQLite's busy timeout serializes it with the daemon's writer,
//! and the daemon's queue worker picks newly queued rows up within a second.

use super::output::{block, line, outln};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::clock::{system_clock, Clock};
use crate::config::Config;
use crate::inbox::json;
use crate::outbound::compose::Attachment;
use crate::outbound::queue::Queue;
use crate::outbound::send::{self, Content, SendError};
use crate::store::{Reader, Store};

/// Tests run the CLI against a daemon on a test clock: this variable pins "now".
const NOW_VARIABLE: &str = "INBOXGATE_NOW";

#[derive(Args, Debug)]
pub struct ReplyArgs {
    pub id: i64,
    /// The agent sending (an email of `[[users]]`, member of the inbox).
    #[arg(long = "as")]
    pub as_user: String,
    /// Plain-text body.
    #[arg(long)]
    pub body_file: PathBuf,
    /// Optional HTML body.
    #[arg(long)]
    pub html_file: Option<PathBuf>,
    /// Recipients (default: the sender of the message replied to).
    #[arg(long)]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    /// Another channel address of the inbox, or a verified custom From address.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ForwardArgs {
    pub id: i64,
    #[arg(long, required = true)]
    pub to: Vec<String>,
    #[arg(long = "as")]
    pub as_user: String,
    /// A note above the forwarded messages.
    #[arg(long)]
    pub note_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ComposeArgs {
    #[arg(long = "as")]
    pub as_user: String,
    #[arg(long, required = true)]
    pub to: Vec<String>,
    /// A channel address (or a verified custom From address).
    #[arg(long)]
    pub from: String,
    #[arg(long)]
    pub subject: String,
    #[arg(long)]
    pub body_file: PathBuf,
    #[arg(long)]
    pub html_file: Option<PathBuf>,
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum OutboundCommand {
    /// Outbound messages with their delivery status, newest first.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send a deferred or failed message again now.
    Retry { id: i64 },
}

pub fn reply(config: &Config, args: ReplyArgs) -> anyhow::Result<ExitCode> {
    let request = send::ReplyRequest {
        conversation_id: args.id,
        agent: args.as_user,
        content: content(&args.body_file, args.html_file.as_deref(), &args.attach)?,
        to: args.to,
        cc: args.cc,
        bcc: args.bcc,
        from: args.from,
    };
    let filed = with_queue(config, |reader, queue| async move {
        send::reply(config, &reader, &queue, request).await
    })?;
    print_message(config, filed.message_row, args.json)
}

pub fn forward(config: &Config, args: ForwardArgs) -> anyhow::Result<ExitCode> {
    let note = match &args.note_file {
        Some(path) => Some(read_text(path, "--note-file")?),
        None => None,
    };
    let request = send::ForwardRequest {
        conversation_id: args.id,
        agent: args.as_user,
        to: args.to,
        note,
    };
    let filed = with_queue(config, |reader, queue| async move {
        send::forward(config, &reader, &queue, request).await
    })?;
    print_message(config, filed.message_row, args.json)
}

pub fn compose(config: &Config, args: ComposeArgs) -> anyhow::Result<ExitCode> {
    let request = send::ComposeRequest {
        agent: args.as_user,
        to: args.to,
        cc: Vec::new(),
        bcc: Vec::new(),
        from: args.from,
        subject: args.subject,
        content: content(&args.body_file, args.html_file.as_deref(), &args.attach)?,
    };
    let filed = with_queue(config, |reader, queue| async move {
        send::compose(config, &reader, &queue, request).await
    })?;
    print_message(config, filed.message_row, args.json)
}

pub fn run_outbound(config: &Config, command: OutboundCommand) -> anyhow::Result<ExitCode> {
    match command {
        OutboundCommand::List { json, limit } => list(config, json, limit),
        OutboundCommand::Retry { id } => {
            let reader = Reader::open_for(config).context("opening the store")?;
            match reader.message(id)? {
                Some(found) if found.message.direction == "out" => {}
                _ => bail!("outbound message {id} not found"),
            }
            let count = with_queue(config, |_, queue| async move {
                queue.retry(id).await.map_err(SendError::from)
            })?;
            outln!("message {id}: {count} delivery(ies) queued again");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `channels verify-from`: mails a one-time code to ADDRESS (E4).
pub fn verify_from(config: &Config, channel: String, address: String) -> anyhow::Result<ExitCode> {
    with_queue(config, |_, queue| async move {
        send::request_from_address(config, &queue, &channel, &address).await
    })?;
    outln!("a confirmation code was queued for delivery; confirm with `inboxgate channels confirm-from CHANNEL CODE`");
    Ok(ExitCode::SUCCESS)
}

/// `channels confirm-from`: confirms a custom From address with its code.
pub fn confirm_from(config: &Config, channel: String, code: String) -> anyhow::Result<ExitCode> {
    let address = with_queue(config, |_, queue| async move {
        send::confirm_from_address(config, &queue, &channel, &code).await
    })?;
    outln!("{address} confirmed as a From address");
    Ok(ExitCode::SUCCESS)
}

fn list(config: &Config, as_json: bool, limit: Option<u32>) -> anyhow::Result<ExitCode> {
    let reader = Reader::open_for(config).context("opening the store")?;
    let rows = reader.outbound_messages(limit)?;
    if as_json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut value = json::message(&r.message, false);
                value["conversation_id"] = r.conversation_id.into();
                value
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:>6}  {:>6}  {:<9}  {:>8}  {:<28}  SUBJECT",
        "ID",
        "CONV",
        "STATUS",
        "ATTEMPTS",
        "TO"
    );
    for r in &rows {
        let d = json::delivery_summary(&r.message.deliveries);
        outln!(
            "{:>6}  {:>6}  {:<9}  {:>8}  {:<28}  {}",
            r.message.id,
            r.conversation_id,
            d.status,
            d.attempts,
            line(&r.message.to.join(",")),
            line(&r.message.subject)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store, starts a short-lived writer and runs `action` with a queue on it.
fn with_queue<'c, T, F, Fut>(config: &'c Config, action: F) -> anyhow::Result<T>
where
    F: FnOnce(Reader, Queue) -> Fut,
    Fut: Future<Output = Result<T, SendError>> + 'c,
{
    let store = Store::open_for(config).context("opening the store")?;
    let (writer, writer_thread) = store.start_writer()?;
    let reader = store.reader()?;
    let queue = Queue::new(writer, cli_clock(), config.outbound.lifetime);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(action(reader, queue));
    let _ = writer_thread.join();
    Ok(result?)
}

pub(super) fn cli_clock() -> Clock {
    match std::env::var(NOW_VARIABLE)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(now) => std::sync::Arc::new(move || now),
        None => system_clock(),
    }
}

fn print_message(config: &Config, message_row: i64, as_json: bool) -> anyhow::Result<ExitCode> {
    let reader = Reader::open_for(config).context("opening the store")?;
    let Some(m) = reader.message(message_row)?.map(|found| found.message) else {
        bail!("message {message_row} not found after queueing");
    };
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json::message(&m, false))?
        );
    } else {
        outln!(
            "queued message {} ({}) from {} to {}\nSubject: {}\n\n{}",
            m.id,
            m.message_id.as_deref().unwrap_or("-"),
            line(&m.from),
            line(&m.to.join(", ")),
            line(&m.subject),
            block(m.text.trim_end())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn content(body: &Path, html: Option<&Path>, attach: &[PathBuf]) -> anyhow::Result<Content> {
    Ok(Content {
        text: read_text(body, "--body-file")?,
        html: html.map(|p| read_text(p, "--html-file")).transpose()?,
        attachments: attach
            .iter()
            .map(|p| attachment(p))
            .collect::<Result<_, _>>()?,
    })
}

fn read_text(path: &Path, flag: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))
}

fn attachment(path: &Path) -> anyhow::Result<Attachment> {
    let bytes = std::fs::read(path).with_context(|| format!("--attach {}", path.display()))?;
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    Ok(Attachment {
        content_type: content_type(&filename).to_string(),
        filename,
        bytes,
    })
}

fn content_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt") => "text/plain",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("zip") => "application/zip",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
