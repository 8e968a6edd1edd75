//! Agent actions that send mail (SPEC E1, E2, E4, E9), shared by the CLI and the API:
//! who may send from where (inbox access, channel on, From allowed), then compose and
//! queue. Nothing is queued when any check fails.

use sha2::{Digest, Sha256};

use super::compose::{self, Attachment, ComposeError, Draft, Threading};
use super::queue::Queue;
use crate::config::{Channel, ChannelStatus, Config, Inbox, User};
use crate::inbox::access::{inbox_access, InboxAccess};
use crate::pipeline::parse::{self, AttachmentInfo, Mailbox};
use crate::pipeline::subject;
use crate::store::{FiledOutbound, NewOutbound, NewSystemMail, ReplyParent};
use crate::store::{Reader, StoreError};

/// A confirmation code is valid this long after it was mailed.
pub const CODE_VALIDITY_SECS: i64 = 24 * 3600;

/// Why an agent's mail was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("conversation {0} not found")]
    NotFound(i64),
    #[error("{0} is not a configured user")]
    UnknownAgent(String),
    #[error("{agent} may view inbox {inbox} but is not a member, so cannot send from it")]
    Forbidden { agent: String, inbox: String },
    #[error("{agent} has no access to inbox {inbox}")]
    NoAccess { agent: String, inbox: String },
    #[error("channel {0} is switched off: it sends nothing (SPEC A4)")]
    ChannelOff(String),
    #[error("{0} is neither a channel address of this inbox nor a verified From address (see `channels verify-from`)")]
    UnknownFrom(String),
    #[error("{0} is not a channel address")]
    UnknownChannel(String),
    #[error("no pending verification of a From address matches that code for {0}")]
    BadCode(String),
    #[error("{count} recipients (to, cc and bcc together); at most {limit} per message (outbound.max_recipients)")]
    TooManyRecipients { count: usize, limit: usize },
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The agent's content of a message.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// `conversations reply`.
#[derive(Debug, Clone, Default)]
pub struct ReplyRequest {
    pub conversation_id: i64,
    pub agent: String,
    pub content: Content,
    /// Empty: the sender of the message replied to.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub from: Option<String>,
}

/// `compose`: a new conversation that starts with our message.
#[derive(Debug, Clone, Default)]
pub struct ComposeRequest {
    pub agent: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub from: String,
    pub subject: String,
    pub content: Content,
}

/// `conversations forward`.
#[derive(Debug, Clone, Default)]
pub struct ForwardRequest {
    pub conversation_id: i64,
    pub agent: String,
    pub to: Vec<String>,
    pub note: Option<String>,
}

/// The sending side of one message: inbox, channel, From.
struct Sender<'a> {
    inbox: &'a Inbox,
    channel: &'a Channel,
    address: String,
    agent: &'a User,
}

/// Everything of an outbound message but its content and threading.
struct Outgoing<'a> {
    sender: Sender<'a>,
    conversation_id: Option<i64>,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    subject: String,
    threading: Threading,
}

/// Sends a reply in a conversation.
pub async fn reply(
    config: &Config,
    reader: &Reader,
    queue: &Queue,
    req: ReplyRequest,
) -> Result<FiledOutbound, SendError> {
    let id = req.conversation_id;
    let conversation = reader.conversation(id)?.ok_or(SendError::NotFound(id))?;
    let inbox = config
        .inbox(&conversation.inbox)
        .ok_or(SendError::NotFound(id))?;
    let agent = acting_agent(config, &req.agent, inbox)?;
    let from = req.from.as_deref().unwrap_or(&conversation.channel);
    let sender = sender(config, reader, inbox, &conversation.channel, from, agent)?;
    let parent = reader.reply_parent(id)?;
    let to = if req.to.is_empty() {
        default_reply_to(parent.as_ref(), &conversation.contact_email)
    } else {
        req.to.clone()
    };
    let (threading, subject) = match &parent {
        Some(p) => (
            reply_threading(reader, id, p, queue.now())?,
            compose::reply_subject(&p.subject),
        ),
        None => (
            Threading {
                thread_root: compose::new_thread_root(queue.now()),
                ..Threading::default()
            },
            compose::reply_subject(&conversation.subject),
        ),
    };
    let out = Outgoing {
        sender,
        conversation_id: Some(id),
        to: compose::addresses(&to)?,
        cc: compose::addresses(&req.cc)?,
        bcc: compose::addresses(&req.bcc)?,
        subject,
        threading,
    };
    submit(config, queue, out, req.content).await
}

/// Starts a conversation with an outbound message (it sits in *Sent* until answered).
pub async fn compose(
    config: &Config,
    reader: &Reader,
    queue: &Queue,
    req: ComposeRequest,
) -> Result<FiledOutbound, SendError> {
    let from = compose::address(&req.from)?;
    let (inbox, channel) = channel_for_from(config, reader, &from)?;
    let agent = acting_agent(config, &req.agent, inbox)?;
    let sender = sender(config, reader, inbox, &channel.address, &from, agent)?;
    let out = Outgoing {
        sender,
        conversation_id: None,
        to: compose::addresses(&req.to)?,
        cc: compose::addresses(&req.cc)?,
        bcc: compose::addresses(&req.bcc)?,
        subject: compose::header_text(&req.subject),
        threading: Threading {
            thread_root: compose::new_thread_root(queue.now()),
            ..Threading::default()
        },
    };
    submit(config, queue, out, req.content).await
}

/// Forwards a conversation's messages to another address (E9), logged in it.
pub async fn forward(
    config: &Config,
    reader: &Reader,
    queue: &Queue,
    req: ForwardRequest,
) -> Result<FiledOutbound, SendError> {
    let id = req.conversation_id;
    let conversation = reader.conversation(id)?.ok_or(SendError::NotFound(id))?;
    let inbox = config
        .inbox(&conversation.inbox)
        .ok_or(SendError::NotFound(id))?;
    let agent = acting_agent(config, &req.agent, inbox)?;
    let sender = sender(
        config,
        reader,
        inbox,
        &conversation.channel,
        &conversation.channel,
        agent,
    )?;
    let messages = reader.messages(id)?;
    let mut text = req.note.clone().unwrap_or_default();
    for m in &messages {
        text.push_str(&format!(
            "\n\n---------- Forwarded message ----------\nFrom: {}\nDate: {}\nSubject: {}\nTo: {}\n\n{}",
            m.from,
            crate::inbox::json::rfc3339(m.date.unwrap_or(m.received_at)),
            m.subject,
            m.to.join(", "),
            m.text.trim_end()
        ));
    }
    let out = Outgoing {
        sender,
        conversation_id: Some(id),
        to: compose::addresses(&req.to)?,
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: compose::forward_subject(&conversation.subject),
        threading: Threading {
            thread_root: thread_root(reader, id, queue.now())?,
            ..Threading::default()
        },
    };
    let content = Content {
        text: text.trim_start().to_string(),
        ..Content::default()
    };
    submit(config, queue, out, content).await
}

/// `channels verify-from`: mails a one-time code to `address`; returns nothing the
/// caller may print (the code is only in the mail).
pub async fn request_from_address(
    config: &Config,
    queue: &Queue,
    channel_address: &str,
    address: &str,
) -> Result<(), SendError> {
    let channel_address = channel_address.to_ascii_lowercase();
    let (_, channel) = config
        .channels()
        .find(|(_, c)| c.address == channel_address)
        .ok_or_else(|| SendError::UnknownChannel(channel_address.clone()))?;
    if channel.status == ChannelStatus::Off {
        return Err(SendError::ChannelOff(channel.address.clone()));
    }
    let address = compose::address(address)?;
    let code = compose::hex(&compose::random_bytes::<4>());
    let now = queue.now();
    let draft = Draft {
        from_name: channel.from_name.company.clone(),
        from_address: channel.address.clone(),
        to: vec![address.clone()],
        cc: Vec::new(),
        subject: format!("Confirm {address} as a From address"),
        text: format!(
            "Someone asked to send mail from {address} through {}.\n\n\
             To confirm, run:\n\n  inboxgate channels confirm-from {} {code}\n\n\
             The code is valid for 24 hours. If you did not ask for this, ignore this mail.\n",
            channel.address, channel.address
        ),
        html: None,
        attachments: Vec::new(),
        message_id: compose::new_message_id(&config.server.hostname),
        threading: Threading::default(),
        date: now,
    };
    let mail = NewSystemMail {
        raw: compose::build(&draft),
        mail_from: channel.address.clone(),
        recipients: vec![address.clone()],
        now,
        expires_at: queue.expiry(now),
    };
    queue
        .request_from_address(channel.address.clone(), address, code_hash(&code), mail)
        .await?;
    Ok(())
}

/// `channels confirm-from`: confirms the address the code was mailed to.
pub async fn confirm_from_address(
    config: &Config,
    queue: &Queue,
    channel_address: &str,
    code: &str,
) -> Result<String, SendError> {
    let channel_address = channel_address.to_ascii_lowercase();
    if !config.channels().any(|(_, c)| c.address == channel_address) {
        return Err(SendError::UnknownChannel(channel_address));
    }
    let since = queue.now() - CODE_VALIDITY_SECS;
    queue
        .confirm_from_address(channel_address.clone(), code_hash(code.trim()), since)
        .await?
        .ok_or(SendError::BadCode(channel_address))
}

fn code_hash(code: &str) -> String {
    compose::hex(&Sha256::digest(code.to_ascii_lowercase().as_bytes()))
}

/// The configured user acting, who must be a member of the inbox.
fn acting_agent<'a>(config: &'a Config, agent: &str, inbox: &Inbox) -> Result<&'a User, SendError> {
    let user = config
        .user(agent)
        .ok_or_else(|| SendError::UnknownAgent(agent.to_string()))?;
    match inbox_access(config, &user.email, inbox) {
        InboxAccess::Member => Ok(user),
        InboxAccess::ViewOnly => Err(SendError::Forbidden {
            agent: user.email.clone(),
            inbox: inbox.name.clone(),
        }),
        InboxAccess::None => Err(SendError::NoAccess {
            agent: user.email.clone(),
            inbox: inbox.name.clone(),
        }),
    }
}

/// Picks the channel and From for a message in `inbox`: a channel address of the
/// inbox, or a custom address verified for the conversation's channel (E1, E4).
fn sender<'a>(
    config: &Config,
    reader: &Reader,
    inbox: &'a Inbox,
    conversation_channel: &str,
    from: &str,
    agent: &'a User,
) -> Result<Sender<'a>, SendError> {
    let _ = config;
    let from = compose::address(from)?;
    let channel = match inbox.channels.iter().find(|c| c.address == from) {
        Some(channel) => channel,
        None => inbox
            .channels
            .iter()
            .filter(|c| c.address == conversation_channel || conversation_channel.is_empty())
            .chain(inbox.channels.iter())
            .find(|c| {
                reader
                    .from_address_confirmed(&c.address, &from)
                    .unwrap_or(false)
            })
            .ok_or_else(|| SendError::UnknownFrom(from.clone()))?,
    };
    if channel.status == ChannelStatus::Off {
        return Err(SendError::ChannelOff(channel.address.clone()));
    }
    Ok(Sender {
        inbox,
        channel,
        address: from,
        agent,
    })
}

/// For `compose --from`: the channel with this address, or the channel that verified it.
fn channel_for_from<'a>(
    config: &'a Config,
    reader: &Reader,
    from: &str,
) -> Result<(&'a Inbox, &'a Channel), SendError> {
    if let Some(found) = config.channels().find(|(_, c)| c.address == from) {
        return Ok(found);
    }
    config
        .channels()
        .find(|(_, c)| {
            reader
                .from_address_confirmed(&c.address, from)
                .unwrap_or(false)
        })
        .ok_or_else(|| SendError::UnknownFrom(from.to_string()))
}

fn default_reply_to(parent: Option<&ReplyParent>, contact: &str) -> Vec<String> {
    match parent {
        Some(p) if p.direction == "in" => vec![p.from.clone()],
        Some(p) if !p.to.is_empty() => p.to.clone(),
        _ => vec![contact.to_string()],
    }
}

fn reply_threading(
    reader: &Reader,
    conversation_id: i64,
    parent: &ReplyParent,
    now: i64,
) -> Result<Threading, SendError> {
    let parent_refs = match &parent.references {
        Some(refs) => refs.clone(),
        None => references_of_raw(reader, parent.message_row)?,
    };
    Ok(Threading {
        in_reply_to: parent.message_id.clone(),
        references: compose::references(&parent_refs, parent.message_id.as_deref()),
        thread_root: thread_root(reader, conversation_id, now)?,
    })
}

/// What a reply to a message filed before its references were kept continues: its
/// `References`, else its `In-Reply-To`, read from the raw message.
fn references_of_raw(reader: &Reader, message_row: i64) -> Result<Vec<String>, SendError> {
    let Some(raw) = reader.raw_message(message_row)? else {
        return Ok(Vec::new());
    };
    let parsed = parse::parse(&raw);
    Ok(if parsed.references.is_empty() {
        parsed.in_reply_to
    } else {
        parsed.references
    })
}

/// The conversation's Outlook thread root, or a new one.
fn thread_root(reader: &Reader, conversation_id: i64, now: i64) -> Result<Vec<u8>, SendError> {
    Ok(reader
        .thread_root(conversation_id)?
        .and_then(|hex| unhex(&hex))
        .filter(|root| root.len() == 22)
        .unwrap_or_else(|| compose::new_thread_root(now)))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// Composes the finished message and stores + queues it.
async fn submit(
    config: &Config,
    queue: &Queue,
    out: Outgoing<'_>,
    content: Content,
) -> Result<FiledOutbound, SendError> {
    if out.to.is_empty() && out.cc.is_empty() && out.bcc.is_empty() {
        return Err(ComposeError::NoRecipients.into());
    }
    let count = out.to.len() + out.cc.len() + out.bcc.len();
    let limit = config.outbound.max_recipients;
    if count > limit {
        return Err(SendError::TooManyRecipients { count, limit });
    }
    let now = queue.now();
    let s = &out.sender;
    let signature = s
        .channel
        .signature
        .as_deref()
        .map(|t| compose::signature(t, &s.agent.name));
    let text = compose::with_text_signature(&content.text, signature.as_deref());
    let html = content
        .html
        .as_deref()
        .map(|h| compose::with_html_signature(h, signature.as_deref()));
    let draft = Draft {
        from_name: compose::from_name(&s.channel.from_name, &s.agent.name),
        from_address: s.address.clone(),
        to: out.to.clone(),
        cc: out.cc.clone(),
        subject: out.subject.clone(),
        text: text.clone(),
        html,
        attachments: content.attachments.clone(),
        message_id: compose::new_message_id(&config.server.hostname),
        threading: out.threading.clone(),
        date: now,
    };
    let raw = compose::build(&draft);
    let contact = out.to.first().or(out.cc.first()).or(out.bcc.first());
    let message = NewOutbound {
        inbox: s.inbox.name.clone(),
        channel: s.channel.address.clone(),
        conversation_id: out.conversation_id,
        contact: Mailbox {
            address: contact.cloned().unwrap_or_default(),
            name: None,
        },
        message_id: draft.message_id.clone(),
        from: Mailbox {
            address: s.address.clone(),
            name: Some(draft.from_name.clone()),
        },
        to: out.to,
        cc: out.cc,
        bcc: out.bcc,
        subject_norm: subject::normalize(&out.subject),
        subject: out.subject,
        text,
        thread_index_root: Some(compose::hex(&out.threading.thread_root)),
        in_reply_to: out.threading.in_reply_to.clone(),
        references: out.threading.references.clone(),
        attachments: content
            .attachments
            .iter()
            .map(|a| AttachmentInfo {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.bytes.len(),
            })
            .collect(),
        raw,
        mail_from: s.address.clone(),
        now,
        expires_at: queue.expiry(now),
    };
    let filed = queue.submit(message).await?;
    tracing::info!(
        message_id = %draft.message_id,
        conversation = filed.conversation_id,
        message = filed.message_row,
        agent = %s.agent.email,
        "queued"
    );
    Ok(filed)
}
