//! The store's row types, shared by every table module and by callers: what is filed
//! (inbound, outbound, IMAP batches), what deliveries look like, and what views read.
//! Plain data; no SQL here.

use std::sync::Arc;

use crate::config::Config;
use crate::pipeline::classify::Classification;
use crate::pipeline::parse::{AttachmentInfo, Inbound, Mailbox};
use crate::pipeline::Target;

// ---- filing inbound mail ----

/// A received message ready to be filed.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub targets: Vec<Target>,
    pub parsed: Inbound,
    /// The whole message as stored (our Received header first).
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub received_at: i64,
    /// What the checks before the store found (C1, C4, C5); the writer adds blocked
    /// senders (C2).
    pub classification: Classification,
    /// The configuration in force when the message arrived: routing, tickets and the
    /// forwarded-mail setting of its channels. `None` files without routing or tickets.
    pub config: Option<Arc<Config>>,
}

/// Where a message went in one inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub inbox: String,
    pub conversation_id: i64,
    /// Row id of the stored message; `None` when it was a duplicate.
    pub message_row: Option<i64>,
    /// Threading decision (`in_reply_to`, `new:stranger_reply`, `duplicate`, …).
    pub decision: &'static str,
}

// ---- filing outbound mail and its deliveries ----

/// An outbound message ready to be stored and queued.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub inbox: String,
    pub channel: String,
    /// The conversation a reply or forward belongs to; `None` starts one (compose).
    pub conversation_id: Option<i64>,
    /// The contact a new conversation is logged to (the first recipient).
    pub contact: Mailbox,
    pub message_id: String,
    pub from: Mailbox,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub subject_norm: String,
    pub text: String,
    /// Hex of the Outlook thread root this message carries.
    pub thread_index_root: Option<String>,
    /// Its `In-Reply-To` and `References` headers.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub attachments: Vec<AttachmentInfo>,
    /// The whole message as it will be sent.
    pub raw: Vec<u8>,
    /// Envelope sender.
    pub mail_from: String,
    pub now: i64,
    pub expires_at: i64,
}

/// Where an outbound message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiledOutbound {
    pub conversation_id: i64,
    pub message_row: i64,
}

/// A message outside any conversation (a From-address verification mail).
#[derive(Debug, Clone)]
pub struct NewSystemMail {
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub now: i64,
    pub expires_at: i64,
}

/// One message claimed for delivery, with the recipients still to be served.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub raw_id: i64,
    pub message_row: Option<i64>,
    pub mail_from: String,
    pub raw: Vec<u8>,
    pub recipients: Vec<DueRecipient>,
}

#[derive(Debug, Clone)]
pub struct DueRecipient {
    pub delivery_id: i64,
    pub address: String,
    /// Attempts including the one now starting.
    pub attempts: i64,
    pub expires_at: i64,
}

/// Where a delivery stands: queued → sending → sent | deferred | failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    /// A temporary failure: tried again at `next_attempt_at`.
    Deferred,
    /// A permanent failure, a bounce, or a temporary one past the message's lifetime.
    Failed,
}

impl DeliveryStatus {
    /// The `status` column's value (and the log's and metrics' label).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// The result of one attempt for one recipient, with the reply that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent(String),
    /// 4xx, network or TLS trouble: try again later.
    Temporary(String),
    /// 5xx, null MX, no such domain: give up now.
    Permanent(String),
}

/// What one attempt does to one recipient's delivery row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub delivery_id: i64,
    pub status: DeliveryStatus,
    pub last_reply: String,
    pub next_attempt_at: i64,
}

/// One recipient's delivery as `show` and `outbound list` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientDelivery {
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_reply: Option<String>,
    pub next_attempt_at: i64,
    pub updated_at: i64,
}

/// The message a reply answers, with what its headers need.
#[derive(Debug, Clone)]
pub struct ReplyParent {
    pub message_row: i64,
    pub direction: String,
    pub message_id: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The ids a reply's `References` continue: the parent's `References`, else its
    /// `In-Reply-To`. `None` for a message filed before they were kept (read its raw).
    pub references: Option<Vec<String>>,
}

/// An outbound message with its conversation, for `outbound list`.
#[derive(Debug, Clone)]
pub struct OutboundRow {
    pub conversation_id: i64,
    pub message: MessageRow,
}

/// What a bounce did: the outbound message it returned, and how many of its deliveries
/// it failed.
#[derive(Debug, PartialEq, Eq)]
pub struct BounceApplied {
    pub outbound_row: i64,
    pub failed: usize,
}

// ---- IMAP sync ----

/// Where a folder's sync stands: the mailbox's UIDVALIDITY and the highest UID filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Messages fetched from one folder, ready to file, with the checkpoint they reach.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub channel: String,
    pub folder: String,
    pub checkpoint: Checkpoint,
    pub messages: Vec<NewInbound>,
    /// When the batch was fetched (renews the lease from then).
    pub fetched_at: i64,
    /// On a shared store: the folder's lease this batch was fetched under, checked (and
    /// renewed) in the batch's transaction.
    pub lease: Option<Lease>,
}

/// A node's hold on one IMAP folder: only the holder files its mail, and only while
/// the fencing number is still the lease's (another node taking over raises it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub fencing: i64,
    /// How long a renewal holds, in seconds.
    pub seconds: i64,
}

/// How a batch was filed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchFiled {
    pub stored: u64,
    pub duplicates: u64,
}

/// A poller's state as `channels status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Syncing,
    Idle,
    Backoff,
    AuthFailed,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Syncing => "syncing",
            SyncState::Idle => "idle",
            SyncState::Backoff => "backoff",
            SyncState::AuthFailed => "auth_failed",
        }
    }
}

/// One channel's persisted sync status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSync {
    pub channel: String,
    pub state: String,
    pub state_since: i64,
    pub last_sync_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub ingested: i64,
}

// ---- views ----

/// One conversation as lists show it (SPEC F3).
#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: i64,
    pub inbox: String,
    pub channel: String,
    pub subject: String,
    pub status: String,
    pub assignee: Option<String>,
    pub contact_id: i64,
    pub contact_email: String,
    pub contact_name: Option<String>,
    pub spam: bool,
    pub filtered: bool,
    pub trashed: bool,
    pub trashed_at: Option<i64>,
    pub message_count: i64,
    pub last_message_at: i64,
    pub participant_count: i64,
    /// Direction and subject of the newest message (reply/forward indicator).
    pub last_direction: Option<String>,
    pub last_subject: Option<String>,
    /// Start of the newest message's text.
    pub preview: String,
    /// Start of the newest internal comment.
    pub comment_preview: Option<String>,
    /// The classification of the message that opened it, or of an agent's mark.
    pub verdict: String,
    pub reasons: Vec<String>,
    pub ticket: Option<TicketRow>,
}

/// A conversation's ticket (D4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub id: i64,
    pub pipeline: String,
    pub stage: String,
    pub owner: Option<String>,
    pub status: String,
}

/// One entry of a conversation's timeline: who did what, when.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
}

/// An API token as listed: never its secret or hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub user: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A contact record (SPEC F8).
#[derive(Debug, Clone)]
pub struct ContactRow {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub created_at: i64,
    /// The user conversations go to under `assign_to = "contact_owner"` (D3).
    pub owner: Option<String>,
}

/// A message with the conversation it belongs to (for access checks).
#[derive(Debug, Clone)]
pub struct MessageInConversation {
    pub conversation_id: i64,
    pub inbox: String,
    pub message: MessageRow,
}

/// One message of a conversation.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub direction: String,
    pub from: String,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub date: Option<i64>,
    pub received_at: i64,
    pub text: String,
    pub attachments: Vec<AttachmentInfo>,
    /// Classification (inbound; outbound messages are `clean`).
    pub verdict: String,
    pub reasons: Vec<String>,
    pub auth_results: Option<String>,
    pub spam_score: Option<f64>,
    /// A bounce: the row of the outbound message it returned.
    pub bounce_of: Option<i64>,
    /// Inbound messages: which threading rule put it in its conversation, or why it
    /// started one (`pipeline::thread::ThreadMatch::label`); `None` for outbound
    /// messages and those filed before the reason was kept.
    pub thread_reason: Option<String>,
    /// Outbound messages: each recipient's delivery (empty for inbound ones).
    pub deliveries: Vec<RecipientDelivery>,
}
