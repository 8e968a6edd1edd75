//! `conversations list|show` and `messages raw`: read-only views over the store,
//! as JSON (the contract) or as a table for people.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::json;
use crate::config::Config;
use crate::store::{ListFilter, Reader, View};

#[derive(Subcommand, Debug)]
pub enum ConversationsCommand {
    /// List conversations, newest activity first.
    List {
        /// Print the contract's JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this inbox (by name).
        #[arg(long)]
        inbox: Option<String>,
        /// unassigned, assigned_to_me, all_open, email, closed, sent, spam, filtered, trash.
        #[arg(long)]
        view: Option<String>,
        /// The agent asking (an email of `[[users]]`).
        #[arg(long = "as")]
        as_user: Option<String>,
        /// At most this many conversations.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one conversation with its messages.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Do not truncate message text past 100 KB.
        #[arg(long)]
        full: bool,
    },
    /// Reply in a conversation (queued for delivery).
    Reply(super::outbound::ReplyArgs),
    /// Forward a conversation's messages to another address.
    Forward(super::outbound::ForwardArgs),
}

#[derive(Subcommand, Debug)]
pub enum MessagesCommand {
    /// Write the whole stored message (RFC 5322) to standard output.
    Raw { id: i64 },
}

pub fn run(config: &Config, command: ConversationsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConversationsCommand::List {
            json,
            inbox,
            view,
            as_user,
            limit,
        } => {
            let filter = list_filter(config, inbox, view, as_user, limit)?;
            list(config, &filter, json)
        }
        ConversationsCommand::Show { id, json, full } => show(config, id, json, full),
        ConversationsCommand::Reply(args) => super::outbound::reply(config, args),
        ConversationsCommand::Forward(args) => super::outbound::forward(config, args),
    }
}

pub fn run_messages(config: &Config, command: MessagesCommand) -> anyhow::Result<ExitCode> {
    match command {
        MessagesCommand::Raw { id } => {
            let raw = reader(config)?.raw_message(id)?;
            let Some(raw) = raw else {
                bail!("message {id} not found")
            };
            std::io::stdout().write_all(&raw)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn reader(config: &Config) -> anyhow::Result<Reader> {
    Reader::open(&config.database_path()).context("opening the store")
}

fn list_filter(
    config: &Config,
    inbox: Option<String>,
    view: Option<String>,
    as_user: Option<String>,
    limit: Option<u32>,
) -> anyhow::Result<ListFilter> {
    if let Some(name) = &inbox {
        if config.inbox(name).is_none() {
            let known: Vec<&str> = config.inboxes.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "--inbox: no inbox named {name:?} (inboxes: {})",
                known.join(", ")
            );
        }
    }
    let user = match as_user {
        Some(email) => match config.user(&email) {
            Some(user) => Some(user.email.clone()),
            None => bail!("--as: {email:?} is not a configured user"),
        },
        None => None,
    };
    let view = view.map(|name| parse_view(&name)).transpose()?;
    if view == Some(View::AssignedToMe) && user.is_none() {
        bail!("--view assigned_to_me needs --as EMAIL");
    }
    Ok(ListFilter {
        inbox,
        view,
        user,
        limit,
    })
}

fn parse_view(name: &str) -> anyhow::Result<View> {
    View::parse(name).with_context(|| {
        let names: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
        format!(
            "--view: unknown view {name:?} (views: {})",
            names.join(", ")
        )
    })
}

fn list(config: &Config, filter: &ListFilter, as_json: bool) -> anyhow::Result<ExitCode> {
    let rows = reader(config)?.conversations(filter)?;
    if as_json {
        let list: Vec<_> = rows.iter().map(json::conversation).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<6}  {:<10}  {:<28}  {:>4}  {:<20}  SUBJECT",
        "ID", "STATUS", "INBOX", "CONTACT", "MSGS", "LAST MESSAGE"
    );
    for c in &rows {
        println!(
            "{:>6}  {:<6}  {:<10}  {:<28}  {:>4}  {:<20}  {}",
            c.id,
            c.status,
            clip(&c.inbox, 10),
            clip(c.contact_name.as_deref().unwrap_or(&c.contact_email), 28),
            c.message_count,
            json::rfc3339(c.last_message_at),
            clip(&c.subject, 60)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(config: &Config, id: i64, as_json: bool, full: bool) -> anyhow::Result<ExitCode> {
    let reader = reader(config)?;
    let Some(conversation) = reader.conversation(id)? else {
        bail!("conversation {id} not found");
    };
    let messages = reader.messages(id)?;
    if as_json {
        let value = json::conversation_with_messages(&conversation, &messages, full);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "#{} {}  [{}] in {} via {}",
        conversation.id,
        conversation.subject,
        conversation.status,
        conversation.inbox,
        conversation.channel
    );
    for m in &messages {
        let (text, truncated) = if full {
            (m.text.as_str(), false)
        } else {
            json::truncate(&m.text, json::TEXT_LIMIT)
        };
        println!(
            "\n--- message {} ({}) from {} at {}",
            m.id,
            m.direction,
            m.from,
            json::rfc3339(m.date.unwrap_or(m.received_at))
        );
        println!("Subject: {}\n", m.subject);
        println!("{}", text.trim_end());
        if truncated {
            println!("[truncated at 100 KB: `inboxgate conversations show {id} --full` or `inboxgate messages raw {}`]", m.id);
        }
        for a in &m.attachments {
            println!(
                "[attachment] {} ({}, {} bytes)",
                a.filename, a.content_type, a.size
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}
