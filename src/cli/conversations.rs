//! `conversations …` and `messages …`: lists, show, and every agent action, as thin
//! calls into `inbox::Service` (which checks access), printed as the contract's JSON
//! or as text for people.

use super::output::{self, block, line, outln};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::service::{caller, open, print_json, run_async};
use crate::config::Config;
use crate::inbox::query::ListParams;
use crate::inbox::{json, Action, Caller};

#[derive(Subcommand, Debug)]
pub enum ConversationsCommand {
    /// List conversations, newest activity first.
    List(Box<ListArgs>),
    /// Show one conversation with its messages and timeline.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Do not truncate message text past 100 KB.
        #[arg(long)]
        full: bool,
        /// The agent asking; without it, the operator's view of everything.
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Reply in a conversation (queued for delivery).
    Reply(super::outbound::ReplyArgs),
    /// Forward a conversation's messages to another address.
    Forward(super::outbound::ForwardArgs),
    /// Assign to an agent (a member of the inbox).
    Assign {
        id: i64,
        user: String,
        #[command(flatten)]
        agent: Agent,
    },
    /// Remove the assignee.
    Unassign(Target),
    /// Add an internal comment (never emailed).
    Comment {
        id: i64,
        text: String,
        #[command(flatten)]
        agent: Agent,
    },
    /// Close one or more conversations.
    Close {
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Close the conversation's ticket too.
        #[arg(long)]
        with_ticket: bool,
        #[command(flatten)]
        agent: Agent,
    },
    Reopen(Target),
    /// Move to another inbox.
    Move {
        id: i64,
        inbox: String,
        #[command(flatten)]
        agent: Agent,
    },
    /// Move one or more conversations to trash.
    Trash {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[command(flatten)]
        agent: Agent,
    },
    /// Take out of trash.
    Restore(Target),
    /// Delete for good (only from trash).
    Delete(Target),
    /// Mark as spam (this thread only).
    Spam(Target),
    /// Not spam: back to the inbox.
    NotSpam(Target),
    /// Block the contact: this and their future threads go to Filtered.
    BlockSender(Target),
    /// Split one message off into a new conversation (same inbox and contact); later
    /// replies to it follow it there. Prints the new conversation.
    Split {
        id: i64,
        /// The message to split off (a message id from `show`).
        #[arg(long)]
        message: i64,
        #[command(flatten)]
        agent: Agent,
    },
    /// Merge this conversation into another: its messages, comments and timeline move
    /// there and replies to them land there. Prints the conversation merged into.
    Merge {
        id: i64,
        /// The conversation it goes into.
        #[arg(long)]
        into: i64,
        #[command(flatten)]
        agent: Agent,
    },
}

#[derive(Args, Debug)]
pub struct Agent {
    /// The agent acting (an email of `[[users]]`).
    #[arg(long = "as", required = true)]
    pub as_user: String,
    /// Print the conversation as JSON afterwards.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct Target {
    id: i64,
    #[command(flatten)]
    agent: Agent,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print the contract's JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this inbox (by name).
    #[arg(long)]
    inbox: Option<String>,
    /// unassigned, assigned_to_me, all_open, email, closed, sent, spam, filtered, trash.
    #[arg(long)]
    view: Option<String>,
    /// The agent asking (an email of `[[users]]`); lists only inboxes they may see.
    #[arg(long = "as")]
    as_user: Option<String>,
    /// At most this many conversations.
    #[arg(long)]
    limit: Option<u32>,
    /// open or closed.
    #[arg(long)]
    status: Option<String>,
    /// Channel address.
    #[arg(long)]
    channel: Option<String>,
    /// Contact email.
    #[arg(long)]
    contact: Option<String>,
    /// Agent email, or `none`.
    #[arg(long)]
    assignee: Option<String>,
    /// Last activity at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Last activity before (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    hide_filtered: bool,
    /// Without a view, list conversations in trash too.
    #[arg(long)]
    include_trash: bool,
    /// newest (default) or oldest.
    #[arg(long)]
    sort: Option<String>,
    /// Continue after this cursor (printed on stderr when a page is full).
    #[arg(long)]
    cursor: Option<String>,
    /// Full-text search over subject, body and sender.
    #[arg(long)]
    search: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum MessagesCommand {
    /// Write the whole stored message (RFC 5322) to standard output.
    Raw {
        id: i64,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Write one attachment (0-based index, as `show` lists them) to standard output.
    Attachment {
        id: i64,
        index: usize,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
}

pub fn run(config: &Config, command: ConversationsCommand) -> anyhow::Result<ExitCode> {
    use ConversationsCommand as C;
    let (ids, action, agent) = match command {
        C::List(args) => return list(config, *args),
        C::Show {
            id,
            json,
            full,
            as_user,
        } => return show(config, id, json, full, as_user),
        C::Reply(args) => return super::outbound::reply(config, args),
        C::Forward(args) => return super::outbound::forward(config, args),
        C::Assign { id, user, agent } => (vec![id], Action::Assign(user), agent),
        C::Unassign(t) => (vec![t.id], Action::Unassign, t.agent),
        C::Comment { id, text, agent } => (vec![id], Action::Comment(text), agent),
        C::Close {
            ids,
            with_ticket,
            agent,
        } => (ids, Action::Close { with_ticket }, agent),
        C::Reopen(t) => (vec![t.id], Action::Reopen, t.agent),
        C::Move { id, inbox, agent } => (vec![id], Action::Move(inbox), agent),
        C::Trash { ids, agent } => (ids, Action::Trash, agent),
        C::Restore(t) => (vec![t.id], Action::Restore, t.agent),
        C::Delete(t) => (vec![t.id], Action::DeleteForever, t.agent),
        C::Spam(t) => (vec![t.id], Action::Spam, t.agent),
        C::NotSpam(t) => (vec![t.id], Action::NotSpam, t.agent),
        C::BlockSender(t) => (vec![t.id], Action::BlockSender, t.agent),
        C::Split { id, message, agent } => {
            return regroup(config, id, Regroup::Split(message), agent)
        }
        C::Merge { id, into, agent } => return regroup(config, id, Regroup::Merge(into), agent),
    };
    act(config, &ids, action, agent)
}

/// Runs the action on each conversation; fails (exit 1) if any was refused.
fn act(config: &Config, ids: &[i64], action: Action, agent: Agent) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    let caller = Caller::User(agent.as_user);
    let outcomes = run_async(service.act_on_many(&caller, ids, action))?;
    let mut failed = false;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(Some(c)) if agent.json => print_json(&json::conversation(&c))?,
            Ok(None) if agent.json => {
                print_json(&serde_json::json!({ "id": id, "deleted": true }))?
            }
            Ok(Some(c)) => outln!(
                "conversation {id}: ok ({}, assignee {})",
                c.status,
                c.assignee.as_deref().unwrap_or("none")
            ),
            Ok(None) => outln!("conversation {id}: deleted forever"),
            Err(e) => {
                eprintln!("inboxgate: conversation {id}: {} ({})", e, e.code());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A split (of this message) or a merge (into this conversation).
enum Regroup {
    Split(i64),
    Merge(i64),
}

/// Splits or merges; prints the conversation that resulted (the split one, or the one
/// merged into). Fails (exit 1) when refused.
fn regroup(config: &Config, id: i64, how: Regroup, agent: Agent) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    let caller = Caller::User(agent.as_user);
    let outcome = match how {
        Regroup::Split(message) => run_async(service.split(&caller, id, message))?,
        Regroup::Merge(into) => run_async(service.merge(&caller, id, into))?,
    };
    match (outcome, how) {
        (Ok(c), _) if agent.json => print_json(&json::conversation(&c))?,
        (Ok(c), Regroup::Split(message)) => outln!(
            "conversation {id}: message {message} split off into conversation {}",
            c.id
        ),
        (Ok(c), Regroup::Merge(_)) => {
            outln!("conversation {id}: merged into conversation {}", c.id)
        }
        (Err(e), _) => {
            eprintln!("inboxgate: conversation {id}: {} ({})", e, e.code());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_messages(config: &Config, command: MessagesCommand) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    let bytes = match command {
        MessagesCommand::Raw { id, as_user } => service.raw_message(&caller(as_user), id)?,
        MessagesCommand::Attachment { id, index, as_user } => {
            service.attachment(&caller(as_user), id, index)?.1
        }
    };
    output::write_bytes(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn list(config: &Config, args: ListArgs) -> anyhow::Result<ExitCode> {
    if args.view.as_deref() == Some("assigned_to_me") && args.as_user.is_none() {
        bail!("--view assigned_to_me needs --as EMAIL");
    }
    if let Some(email) = &args.as_user {
        if config.user(email).is_none() {
            bail!("--as: {email:?} is not a configured user");
        }
    }
    let params = ListParams {
        view: args.view,
        inbox: args.inbox,
        status: args.status,
        channel: args.channel,
        contact: args.contact,
        assignee: args.assignee,
        since: args.since,
        until: args.until,
        hide_filtered: Some(args.hide_filtered),
        hide_trash: args.include_trash.then_some(false),
        sort: args.sort,
        cursor: args.cursor,
        limit: args.limit,
        q: args.search,
    };
    if let Some(name) = &params.inbox {
        if config.inbox(name).is_none() {
            let known: Vec<&str> = config.inboxes.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "--inbox: no inbox named {name:?} (inboxes: {})",
                known.join(", ")
            );
        }
    }
    // The parameter errors start with the parameter's name; the flag adds `--`.
    let filter = params.into_filter().map_err(|e| anyhow::anyhow!("--{e}"))?;
    let service = open(config)?;
    let page = service.list(&caller(args.as_user), filter)?;
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more: --cursor {cursor}");
    }
    if args.json {
        let list: Vec<_> = page.conversations.iter().map(json::conversation).collect();
        print_json(&serde_json::Value::Array(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:>6}  {:<6}  {:<10}  {:<28}  {:>4}  {:<20}  SUBJECT",
        "ID",
        "STATUS",
        "INBOX",
        "CONTACT",
        "MSGS",
        "LAST MESSAGE"
    );
    for c in &page.conversations {
        outln!(
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

fn show(
    config: &Config,
    id: i64,
    as_json: bool,
    full: bool,
    as_user: Option<String>,
) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    let detail = service.show(&caller(as_user), id)?;
    let (conversation, messages) = (&detail.conversation, &detail.messages);
    if as_json {
        let value =
            json::conversation_with_messages(conversation, messages, &detail.timeline, full);
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "#{} {}  [{}] in {} via {}",
        conversation.id,
        line(&conversation.subject),
        conversation.status,
        line(&conversation.inbox),
        conversation.channel
    );
    for m in messages {
        let (text, truncated) = if full {
            (m.text.as_str(), false)
        } else {
            json::truncate(&m.text, json::TEXT_LIMIT)
        };
        outln!(
            "\n--- message {} ({}) from {} at {}",
            m.id,
            m.direction,
            line(&m.from),
            json::rfc3339(m.date.unwrap_or(m.received_at))
        );
        outln!("Subject: {}\n", line(&m.subject));
        outln!("{}", block(text.trim_end()));
        if truncated {
            outln!("[truncated at 100 KB: `inboxgate conversations show {id} --full` or `inboxgate messages raw {}`]", m.id);
        }
        for (index, a) in m.attachments.iter().enumerate() {
            outln!(
                "[attachment {index}] {} ({}, {} bytes)",
                line(&a.filename),
                line(&a.content_type),
                a.size
            );
        }
    }
    for e in &detail.timeline {
        outln!(
            "\n[{}] {} {} {}",
            json::rfc3339(e.at),
            line(&e.actor),
            e.action,
            line(e.detail.as_deref().unwrap_or(""))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` made safe for a terminal ([`line`]) and cut to `width` characters.
fn clip(text: &str, width: usize) -> String {
    let text = line(text);
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}
