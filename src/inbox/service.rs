//! The one service both shells call: every read an agent makes and every action, each
//! checked against the inbox access rules (`access`) before anything is read out or
//! written. The CLI and the HTTP API only parse input and render output.
//!
//! Reads use pooled read-only connections (synchronous; the API calls them on the
//! blocking pool). Writes go through the store's single writer with their timeline
//! record in the same transaction.

use std::sync::{Arc, Mutex};

use super::access::{inbox_access, InboxAccess};
use crate::clock::Clock;
use crate::config::{ChannelKind, Config, Inbox, LiveConfig, Strategy, User};
use crate::outbound::queue::Queue;
use crate::outbound::send::{self, ComposeRequest, ForwardRequest, ReplyRequest, SendError};
use crate::pipeline::parse::AttachmentInfo;
use crate::pipeline::route;
use crate::store::bayes::Class;
use crate::store::{
    Change, ContactRow, ConversationRow, Cursor, ListFilter, MessageInConversation, MessageRow,
    Reader, Store, StoreError, TimelineEntry, View, Writer,
};

/// Conversations stay in trash this long, then are deleted for good (F5).
pub const TRASH_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// Page size when the caller gives none (API), and the largest allowed.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Someone with the config and the database file (CLI without `--as`): may read
    /// everything, may not act.
    Operator,
    /// An agent, by email (configured or not: a removed user sees nothing).
    User(String),
}

/// Why a request was refused; `code` is the stable name the API returns.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl InboxError {
    pub fn code(&self) -> &'static str {
        match self {
            InboxError::NotFound(_) => "not_found",
            InboxError::Forbidden(_) => "forbidden",
            InboxError::Invalid(_) => "invalid",
            InboxError::Conflict(_) => "conflict",
            InboxError::Store(_) => "internal",
        }
    }
}

impl From<StoreError> for InboxError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => InboxError::Conflict(m),
            other => InboxError::Store(other),
        }
    }
}

/// An agent action on one conversation (SPEC F4, C2, C3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Assign(String),
    /// Assign to the team's member who can take it with the fewest open
    /// conversations (available ones first).
    AssignTeam(String),
    Unassign,
    Comment(String),
    Close {
        with_ticket: bool,
    },
    Reopen,
    Move(String),
    Trash,
    Restore,
    DeleteForever,
    Spam,
    NotSpam,
    BlockSender,
}

impl Action {
    /// Every action name, as the CLI verbs and API routes spell them.
    pub const NAMES: [&'static str; 12] = [
        "assign",
        "unassign",
        "comment",
        "close",
        "reopen",
        "move",
        "trash",
        "restore",
        "delete",
        "spam",
        "not_spam",
        "block_sender",
    ];
}

/// Mail an agent sends (`Service::send`).
#[derive(Debug, Clone)]
pub enum SendRequest {
    Reply(ReplyRequest),
    Compose(ComposeRequest),
    Forward(ForwardRequest),
}

/// What a bearer token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    /// A configured user's valid token: its id and the user's address.
    User { token_id: i64, email: String },
    /// A valid token of a user no longer in the configuration.
    Removed,
    /// Not a token we issued (malformed, unknown id, or wrong secret).
    Unknown,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub conversations: Vec<ConversationRow>,
    /// Pass back to get the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A conversation with everything `show` prints.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub conversation: ConversationRow,
    pub messages: Vec<MessageRow>,
    pub timeline: Vec<TimelineEntry>,
}

/// An inbox as a caller sees it.
#[derive(Debug, Clone)]
pub struct InboxView {
    pub name: String,
    pub access: InboxAccess,
    /// (address, kind, status, forwarding address)
    pub channels: Vec<ChannelView>,
}

#[derive(Debug, Clone)]
pub struct ChannelView {
    pub address: String,
    pub kind: &'static str,
    pub on: bool,
    /// Where a team's own mailbox forwards to (A2): the inbox's fallback address.
    pub forwarding_address: Option<String>,
}

/// Shared by the CLI and the API. It reads the running configuration live: every call
/// takes one snapshot and decides with it, so a reload (a user removed, an inbox's
/// access changed) applies to the next request.
pub struct Service {
    config: Arc<LiveConfig>,
    store: Store,
    pub(super) writer: Writer,
    clock: Clock,
    readers: Mutex<Vec<Reader>>,
}

impl Service {
    pub fn new(config: Arc<LiveConfig>, store: Store, writer: Writer, clock: Clock) -> Service {
        Service {
            config,
            store,
            writer,
            clock,
            readers: Mutex::new(Vec::new()),
        }
    }

    /// The configuration as it is now (a snapshot; a reload does not change it).
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// What `/metrics` reads from the store: IMAP sync state, outbound queue depth, the
    /// token model's generation.
    pub fn store_gauges(&self) -> Result<crate::metrics::StoreGauges, InboxError> {
        self.read(|reader| {
            let imap_channels = reader
                .channel_sync()?
                .into_iter()
                .map(|c| (c.channel, c.state, c.ingested))
                .collect();
            let outbound_by_status = reader.deliveries_by_status()?;
            Ok(crate::metrics::StoreGauges {
                imap_channels,
                outbound_by_status,
                bayes_generation: reader.bayes_generation()?,
            })
        })
    }

    /// Runs `query` on a pooled read connection.
    pub(super) fn read<T>(
        &self,
        query: impl FnOnce(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, InboxError> {
        // Sessions the database closed (it stopped or restarted) are left behind.
        let pooled = self
            .readers
            .lock()
            .ok()
            .and_then(|mut pool| std::iter::from_fn(|| pool.pop()).find(|r| !r.is_broken()));
        let reader = match pooled {
            Some(reader) => reader,
            None => self.store.reader()?,
        };
        let result = query(&reader);
        if reader.is_broken() {
            return Ok(result?);
        }
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(reader);
        }
        Ok(result?)
    }

    // ---- reading ----

    /// Conversations the caller may see, by view and filters.
    pub fn list(&self, caller: &Caller, filter: ListFilter) -> Result<Page, InboxError> {
        self.list_in(&self.config(), caller, filter)
    }

    fn list_in(
        &self,
        config: &Config,
        caller: &Caller,
        mut filter: ListFilter,
    ) -> Result<Page, InboxError> {
        if filter.search.is_some() {
            // Messages are indexed in batches after they are stored; catch up first.
            self.writer.index_search_blocking()?;
        }
        if let Some(name) = &filter.inbox {
            let canonical = config
                .inbox(name)
                .filter(|i| access(config, caller, &i.name).can_view())
                .ok_or_else(|| InboxError::NotFound(format!("inbox {name:?}")))?;
            filter.inbox = Some(canonical.name.clone());
        }
        if filter.view.is_some_and(View::needs_user) {
            match caller {
                Caller::User(email) => filter.user = Some(email.to_lowercase()),
                Caller::Operator => {
                    return Err(InboxError::Invalid(
                        "view assigned_to_me needs the calling agent (--as EMAIL)".into(),
                    ))
                }
            }
        }
        if let Some(limit) = filter.limit {
            filter.limit = Some(limit.max(1));
        }
        filter.visible_inboxes = visible_inboxes(config, caller);
        let conversations = self.read(|r| r.conversations(&filter))?;
        let full_page = filter
            .limit
            .is_some_and(|l| conversations.len() == l as usize);
        let next_cursor = conversations.last().filter(|_| full_page).map(|c| {
            Cursor {
                last_message_at: c.last_message_at,
                id: c.id,
            }
            .encode()
        });
        Ok(Page {
            conversations,
            next_cursor,
        })
    }

    /// A conversation the caller may see (404 otherwise).
    pub fn conversation(&self, caller: &Caller, id: i64) -> Result<ConversationRow, InboxError> {
        let config = self.config();
        let found = self.read(|r| r.conversation(id))?;
        found
            .filter(|c| access(&config, caller, &c.inbox).can_view())
            .ok_or_else(|| InboxError::NotFound(format!("conversation {id}")))
    }

    pub fn show(&self, caller: &Caller, id: i64) -> Result<ConversationDetail, InboxError> {
        let conversation = self.conversation(caller, id)?;
        let (messages, timeline) = self.read(|r| Ok((r.messages(id)?, r.timeline(id)?)))?;
        Ok(ConversationDetail {
            conversation,
            messages,
            timeline,
        })
    }

    /// A message the caller may see.
    pub fn message(&self, caller: &Caller, id: i64) -> Result<MessageInConversation, InboxError> {
        let config = self.config();
        let found = self.read(|r| r.message(id))?;
        found
            .filter(|m| access(&config, caller, &m.inbox).can_view())
            .ok_or_else(|| InboxError::NotFound(format!("message {id}")))
    }

    /// Sends an agent's reply, new message or forward (SPEC E1, E2, E9) with the checks
    /// of `outbound::send` (member of the inbox, channel on, From allowed), queued on the
    /// daemon's writer for its outbound worker. Returns the stored message. Its future
    /// is not `Send` (a read connection is held across the queueing), so the API runs it
    /// on the blocking pool.
    pub async fn send(&self, request: SendRequest) -> Result<MessageInConversation, SendError> {
        let config = self.config();
        let reader = self.store.reader()?;
        let queue = Queue::new(
            self.writer.clone(),
            self.clock.clone(),
            config.outbound.lifetime,
        );
        let config = &*config;
        let filed = match request {
            SendRequest::Reply(r) => send::reply(config, &reader, &queue, r).await?,
            SendRequest::Compose(r) => send::compose(config, &reader, &queue, r).await?,
            SendRequest::Forward(r) => send::forward(config, &reader, &queue, r).await?,
        };
        reader.message(filed.message_row)?.ok_or_else(|| {
            SendError::Store(StoreError::Conflict(format!(
                "message {} vanished after queueing",
                filed.message_row
            )))
        })
    }

    /// The whole stored message (RFC 5322).
    pub fn raw_message(&self, caller: &Caller, id: i64) -> Result<Vec<u8>, InboxError> {
        self.message(caller, id)?;
        self.read(|r| r.raw_message(id))?
            .ok_or_else(|| InboxError::NotFound(format!("raw copy of message {id}")))
    }

    /// One attachment of a message, decoded (B9).
    pub fn attachment(
        &self,
        caller: &Caller,
        id: i64,
        index: usize,
    ) -> Result<(AttachmentInfo, Vec<u8>), InboxError> {
        let raw = self.raw_message(caller, id)?;
        crate::pipeline::parse::attachment(&raw, index)
            .ok_or_else(|| InboxError::NotFound(format!("attachment {index} of message {id}")))
    }

    /// A contact with the conversations the caller may see (F8). Any configured user
    /// may look contacts up; the operator too.
    pub fn contact(
        &self,
        caller: &Caller,
        key: &str,
    ) -> Result<(ContactRow, Vec<ConversationRow>), InboxError> {
        let config = self.config();
        if let Caller::User(email) = caller {
            if config.user(email).is_none() {
                return Err(InboxError::NotFound(format!("contact {key}")));
            }
        }
        let contact = self
            .read(|r| r.contact(key))?
            .ok_or_else(|| InboxError::NotFound(format!("contact {key}")))?;
        let filter = ListFilter {
            contact: Some(contact.email.clone()),
            hide_trash: Some(false),
            ..ListFilter::default()
        };
        let page = self.list_in(&config, caller, filter)?;
        Ok((contact, page.conversations))
    }

    /// Inboxes the caller may see, with their addresses (A2).
    pub fn inboxes(&self, caller: &Caller) -> Vec<InboxView> {
        let config = self.config();
        config
            .inboxes
            .iter()
            .map(|inbox| (inbox, access(&config, caller, &inbox.name)))
            .filter(|(_, access)| access.can_view())
            .map(|(inbox, access)| InboxView {
                name: inbox.name.clone(),
                access,
                channels: channels(inbox),
            })
            .collect()
    }

    /// The caller's own record, with availability as last set (F7).
    pub fn me(&self, caller: &Caller) -> Result<(User, bool), InboxError> {
        let user = acting_user(&self.config(), caller)?.clone();
        let stored = self.read(|r| r.availability(&user.email))?;
        let available = stored.unwrap_or(user.available);
        Ok((user, available))
    }

    pub fn blocked_senders(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(String, i64, String)>, InboxError> {
        if let Caller::User(_) = caller {
            acting_user(&self.config(), caller)?;
        }
        self.read(|r| r.blocked_senders())
    }

    // ---- acting ----

    /// Applies `action` to conversation `id` as `caller`; returns the conversation as
    /// it is now (`None` once deleted forever).
    pub async fn act(
        &self,
        caller: &Caller,
        id: i64,
        action: Action,
    ) -> Result<Option<ConversationRow>, InboxError> {
        let config = self.config();
        let conversation = self.acting_on(&config, caller, id)?;
        let user = acting_user(&config, caller)?.email.clone();
        let action = self.team_member_for(&config, &conversation, action)?;
        let change = change_for(&config, caller, &conversation, action)?;
        let mark = match change {
            Change::Spam(true) => Some(Class::Spam),
            Change::Spam(false) => Some(Class::Ham),
            _ => None,
        };
        // C4: every mark teaches the token model in the mark's own transaction; a
        // changed mind untrains the old class.
        let train = mark.filter(|_| config.classification.learn_from_marks);
        self.writer
            .mark_and_train(id, change, train, user, self.now())
            .await?;
        self.read(|r| r.conversation(id))
    }

    /// Turns an assignment to a team into one to the member who takes it: among the
    /// team's members who may act in the conversation's inbox and have a paid seat,
    /// the available one with the fewest open conversations, else any such one.
    fn team_member_for(
        &self,
        config: &Config,
        conversation: &ConversationRow,
        action: Action,
    ) -> Result<Action, InboxError> {
        let Action::AssignTeam(name) = action else {
            return Ok(action);
        };
        let team = config
            .teams
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| InboxError::Invalid(format!("no team named {name:?}")))?;
        let inbox = config.inbox(&conversation.inbox);
        let members: Vec<String> = team
            .members
            .iter()
            .filter(|email| inbox.is_some_and(|i| inbox_access(config, email, i).can_act()))
            .map(|email| email.to_lowercase())
            .collect();
        let candidates = self.read(|r| r.routing_candidates(config, &members))?;
        [true, false]
            .into_iter()
            .find_map(|only_available| {
                route::choose(&candidates, Strategy::LeastOpen, only_available, None)
            })
            .map(Action::Assign)
            .ok_or_else(|| {
                InboxError::Invalid(format!(
                    "nobody in team {:?} can take conversations in inbox {:?}",
                    team.name, conversation.inbox
                ))
            })
    }

    /// A conversation `caller` may act on (a page asking before an action): 404 when
    /// they may not see it, 403 when they may only view it.
    pub fn actionable(&self, caller: &Caller, id: i64) -> Result<ConversationRow, InboxError> {
        self.acting_on(&self.config(), caller, id)
    }

    fn acting_on(
        &self,
        config: &Config,
        caller: &Caller,
        id: i64,
    ) -> Result<ConversationRow, InboxError> {
        let conversation = self.conversation(caller, id)?;
        match access(config, caller, &conversation.inbox) {
            InboxAccess::Member => Ok(conversation),
            InboxAccess::ViewOnly => Err(InboxError::Forbidden(format!(
                "only members of inbox {:?} may act in it",
                conversation.inbox
            ))),
            InboxAccess::None => Err(InboxError::NotFound(format!("conversation {id}"))),
        }
    }

    /// Splits message `message` out of conversation `id` into a new conversation of
    /// the same inbox and contact (G3); later replies to it follow it there. Returns
    /// the new conversation. Same access as every action.
    pub async fn split(
        &self,
        caller: &Caller,
        id: i64,
        message: i64,
    ) -> Result<ConversationRow, InboxError> {
        let config = self.config();
        let conversation = self.acting_on(&config, caller, id)?;
        let user = acting_user(&config, caller)?.email.clone();
        let found = self.message(caller, message)?;
        if found.conversation_id != id {
            return Err(InboxError::Invalid(format!(
                "message {message} is not in conversation {id}"
            )));
        }
        if conversation.message_count < 2 {
            return Err(InboxError::Invalid(format!(
                "conversation {id} has one message: there is nothing to split off"
            )));
        }
        let new_id = self
            .writer
            .split_message(id, message, user, self.now())
            .await?;
        self.read(|r| r.conversation(new_id))?
            .ok_or_else(|| InboxError::Conflict(format!("conversation {new_id} vanished")))
    }

    /// Merges conversation `id` into `into` (G3): its messages, comments and timeline
    /// move, it disappears, and replies to its messages land in `into`. The caller
    /// must be able to act on both. Returns `into` as it is now.
    pub async fn merge(
        &self,
        caller: &Caller,
        id: i64,
        into: i64,
    ) -> Result<ConversationRow, InboxError> {
        let config = self.config();
        self.acting_on(&config, caller, id)?;
        self.acting_on(&config, caller, into)?;
        if id == into {
            return Err(InboxError::Invalid(format!(
                "conversation {id} cannot be merged into itself"
            )));
        }
        let user = acting_user(&config, caller)?.email.clone();
        self.writer
            .merge_conversations(id, into, user, self.now())
            .await?;
        self.read(|r| r.conversation(into))?
            .ok_or_else(|| InboxError::Conflict(format!("conversation {into} vanished")))
    }

    /// Where a conversation merged away went, if `caller` could see it: a stale link
    /// to it leads on to the conversation it was merged into.
    pub fn merged_into(&self, caller: &Caller, id: i64) -> Result<Option<i64>, InboxError> {
        let config = self.config();
        let found = self.read(|r| r.merged_into(id))?;
        Ok(found
            .filter(|(inbox, _)| access(&config, caller, inbox).can_view())
            .map(|(_, target)| target))
    }

    /// Applies one action to many conversations (bulk close, bulk trash); each gets
    /// its own outcome, so one refusal does not stop the rest.
    pub async fn act_on_many(
        &self,
        caller: &Caller,
        ids: &[i64],
        action: Action,
    ) -> Vec<(i64, Result<Option<ConversationRow>, InboxError>)> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            outcomes.push((id, self.act(caller, id, action.clone()).await));
        }
        outcomes
    }

    /// Blocks or unblocks a sender address account-wide (C2). Any agent who is a
    /// member of some inbox may.
    pub async fn set_sender_blocked(
        &self,
        caller: &Caller,
        address: &str,
        blocked: bool,
    ) -> Result<(), InboxError> {
        let config = self.config();
        let user = acting_user(&config, caller)?;
        if !member_somewhere(&config, user) {
            return Err(InboxError::Forbidden(
                "only inbox members may block senders".into(),
            ));
        }
        let address = if blocked {
            blocked_sender_value(address)?
        } else {
            // Unblocking takes any stored value, so a bad entry can still be removed.
            address.trim().to_lowercase()
        };
        self.writer
            .set_sender_blocked(address, blocked, user.email.clone(), self.now())
            .await?;
        Ok(())
    }

    /// Sets (or clears) a contact's owner (D3), creating the contact when it has not
    /// written yet. The owner must be a configured user; an agent may set it when they
    /// are a member of some inbox, the operator (CLI without `--as`) always.
    pub async fn set_contact_owner(
        &self,
        caller: &Caller,
        email: &str,
        owner: Option<&str>,
    ) -> Result<(), InboxError> {
        let config = self.config();
        if let Caller::User(_) = caller {
            let user = acting_user(&config, caller)?;
            if !member_somewhere(&config, user) {
                return Err(InboxError::Forbidden(
                    "only inbox members may set contact owners".into(),
                ));
            }
        }
        let email = email.trim().to_lowercase();
        if !email.contains('@') {
            return Err(InboxError::Invalid(format!(
                "contact {email:?} is not an email address"
            )));
        }
        let owner = match owner {
            None => None,
            Some(owner) => Some(
                config
                    .user(owner)
                    .ok_or_else(|| {
                        InboxError::Invalid(format!("owner {owner:?} is not a configured user"))
                    })?
                    .email
                    .clone(),
            ),
        };
        self.writer
            .set_contact_owner(email, owner, self.now())
            .await?;
        Ok(())
    }

    /// Sets the caller's availability (F7).
    pub async fn set_availability(
        &self,
        caller: &Caller,
        available: bool,
    ) -> Result<(), InboxError> {
        let user = acting_user(&self.config(), caller)?.email.clone();
        self.writer
            .set_availability(user, available, self.now())
            .await?;
        Ok(())
    }

    /// Deletes for good what has been in trash longer than the retention period (F5).
    pub async fn purge_trash(&self) -> Result<usize, InboxError> {
        let now = self.now();
        let expired = self.read(|r| r.trashed_before(now - TRASH_RETENTION_SECS))?;
        let mut deleted = 0;
        for id in expired {
            match self
                .writer
                .change_conversation(id, Change::DeleteForever, "system".into(), now)
                .await
            {
                Ok(()) => deleted += 1,
                // Restored or deleted meanwhile: nothing to do.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// D5: conversations of users no longer configured become unassigned.
    pub async fn unassign_removed_users(&self) -> Result<usize, InboxError> {
        let users = self
            .config()
            .users
            .iter()
            .map(|u| u.email.clone())
            .collect();
        Ok(self
            .writer
            .unassign_removed_users(users, self.now())
            .await?)
    }

    /// Creates an API token for a configured user; returns it (shown once). Only the
    /// hash of its secret is stored.
    pub async fn create_token(&self, email: &str) -> Result<String, InboxError> {
        let config = self.config();
        let user = config
            .user(email)
            .ok_or_else(|| InboxError::NotFound(format!("user {email}")))?;
        let secret = super::token::secret()
            .map_err(|e| InboxError::Store(StoreError::Invalid(format!("no randomness: {e}"))))?;
        let id = self
            .writer
            .add_api_token(user.email.clone(), super::token::hash(&secret), self.now())
            .await?;
        Ok(super::token::format(id, &secret))
    }

    /// Who a bearer token belongs to. Reads the store every time, so a revoked token is
    /// refused at once; a user removed from the running configuration is refused at
    /// once, whatever the token.
    pub fn authenticate(&self, token: &str) -> Result<TokenOwner, InboxError> {
        let Some((id, secret)) = super::token::split(token) else {
            return Ok(TokenOwner::Unknown);
        };
        let stored = self.read(|r| r.api_token(id))?;
        let Some((user, _)) = stored.filter(|(_, hash)| super::token::matches(secret, hash)) else {
            return Ok(TokenOwner::Unknown);
        };
        Ok(match self.config().user(&user) {
            Some(user) => TokenOwner::User {
                token_id: id,
                email: user.email.clone(),
            },
            None => TokenOwner::Removed,
        })
    }

    /// Records that token `id` was used at `at`.
    pub async fn token_used(&self, id: i64, at: i64) -> Result<(), InboxError> {
        Ok(self.writer.touch_api_token(id, at).await?)
    }

    /// The tokens `caller` may see: all for the operator and super admins, else their
    /// own; `user` narrows the list to one user's.
    pub fn tokens(
        &self,
        caller: &Caller,
        user: Option<&str>,
    ) -> Result<Vec<crate::store::TokenRow>, InboxError> {
        let own = self.own_tokens_only(caller)?;
        let user = match (own, user) {
            (Some(me), Some(asked)) if !me.eq_ignore_ascii_case(asked) => return Ok(Vec::new()),
            (Some(me), _) => Some(me),
            (None, asked) => asked,
        };
        self.read(|r| r.api_tokens(user))
    }

    /// Revokes token `id`: any for the operator and super admins, else only the
    /// caller's own; another's is "not found".
    pub async fn revoke_token(&self, caller: &Caller, id: i64) -> Result<(), InboxError> {
        let own = self.own_tokens_only(caller)?;
        let owner = self.read(|r| r.api_token(id))?.map(|(user, _)| user);
        let visible = match (&owner, own) {
            (Some(owner), Some(me)) => owner.eq_ignore_ascii_case(me),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !visible || !self.writer.delete_api_token(id).await? {
            return Err(InboxError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    /// `Some(email)` when `caller` may manage only their own tokens.
    fn own_tokens_only<'a>(&self, caller: &'a Caller) -> Result<Option<&'a str>, InboxError> {
        match caller {
            Caller::Operator => Ok(None),
            Caller::User(email) => {
                let config = self.config();
                let user = acting_user(&config, caller)?;
                Ok((!user.super_admin).then_some(email.as_str()))
            }
        }
    }
}

/// What `caller` may do in the inbox named `inbox_name`, by `config`.
pub(super) fn access(config: &Config, caller: &Caller, inbox_name: &str) -> InboxAccess {
    match (caller, config.inbox(inbox_name)) {
        (Caller::Operator, _) => InboxAccess::ViewOnly,
        (Caller::User(_), None) => InboxAccess::None,
        (Caller::User(email), Some(inbox)) => inbox_access(config, email, inbox),
    }
}

/// The configured user behind `caller`, or why there is none.
fn acting_user<'c>(config: &'c Config, caller: &Caller) -> Result<&'c User, InboxError> {
    match caller {
        Caller::Operator => Err(InboxError::Forbidden(
            "actions need an agent (--as EMAIL)".into(),
        )),
        Caller::User(email) => config
            .user(email)
            .ok_or_else(|| InboxError::NotFound(format!("user {email}"))),
    }
}

/// Whether the configured user acts in at least one inbox.
fn member_somewhere(config: &Config, user: &User) -> bool {
    config
        .inboxes
        .iter()
        .any(|i| inbox_access(config, &user.email, i).can_act())
}

fn visible_inboxes(config: &Config, caller: &Caller) -> Option<Vec<String>> {
    match caller {
        Caller::Operator => None,
        Caller::User(_) => Some(
            config
                .inboxes
                .iter()
                .filter(|i| access(config, caller, &i.name).can_view())
                .map(|i| i.name.clone())
                .collect(),
        ),
    }
}

/// Checks the action's argument and turns it into the store's change.
fn change_for(
    config: &Config,
    caller: &Caller,
    conversation: &ConversationRow,
    action: Action,
) -> Result<Change, InboxError> {
    Ok(match action {
        Action::Assign(email) => {
            let inbox = config.inbox(&conversation.inbox);
            let assignee = config
                .user(&email)
                .filter(|u| inbox.is_some_and(|i| inbox_access(config, &u.email, i).can_act()))
                .ok_or_else(|| {
                    InboxError::Invalid(format!(
                        "{email} is not a member of inbox {:?}",
                        conversation.inbox
                    ))
                })?;
            Change::Assign(Some(assignee.email.clone()))
        }
        Action::AssignTeam(team) => {
            return Err(InboxError::Invalid(format!(
                "team {team:?} is assigned through one of its members"
            )))
        }
        Action::Unassign => Change::Assign(None),
        Action::Comment(text) if text.trim().is_empty() => {
            return Err(InboxError::Invalid("a comment needs text".into()))
        }
        Action::Comment(text) => Change::Comment(text),
        Action::Close { with_ticket } => Change::Close { with_ticket },
        Action::Reopen => Change::Reopen,
        Action::Move(name) => move_change(config, caller, conversation, &name)?,
        Action::Trash => Change::Trash,
        Action::Restore => Change::Restore,
        Action::DeleteForever => Change::DeleteForever,
        Action::Spam => Change::Spam(true),
        Action::NotSpam => Change::Spam(false),
        Action::BlockSender => Change::BlockSender,
    })
}

fn move_change(
    config: &Config,
    caller: &Caller,
    conversation: &ConversationRow,
    name: &str,
) -> Result<Change, InboxError> {
    let target = config
        .inbox(name)
        .filter(|i| access(config, caller, &i.name).can_view())
        .ok_or_else(|| InboxError::NotFound(format!("inbox {name:?}")))?;
    if !access(config, caller, &target.name).can_act() {
        return Err(InboxError::Forbidden(format!(
            "only members of inbox {:?} may move conversations into it",
            target.name
        )));
    }
    if target.name == conversation.inbox {
        return Err(InboxError::Invalid(format!(
            "conversation is already in {name:?}"
        )));
    }
    let channel = target
        .channels
        .first()
        .map(|c| c.address.clone())
        .ok_or_else(|| InboxError::Invalid(format!("inbox {name:?} has no channel")))?;
    Ok(Change::Move {
        inbox: target.name.clone(),
        channel,
    })
}

fn channels(inbox: &Inbox) -> Vec<ChannelView> {
    let fallback = inbox
        .channels
        .iter()
        .find(|c| matches!(c.kind, ChannelKind::Fallback))
        .map(|c| c.address.clone());
    inbox
        .channels
        .iter()
        .map(|c| ChannelView {
            address: c.address.clone(),
            kind: match c.kind {
                ChannelKind::Fallback => "fallback",
                ChannelKind::Imap(_) => "imap",
            },
            on: c.status == crate::config::ChannelStatus::On,
            forwarding_address: fallback.clone(),
        })
        .collect()
}

/// A blocked-sender value (C2): one address, or `@domain` for a whole domain, checked
/// like an address we would send to (no control characters, a dotted domain), and
/// lower-cased.
fn blocked_sender_value(text: &str) -> Result<String, InboxError> {
    let value = text.trim().to_lowercase();
    let checked = match value.strip_prefix('@') {
        // A domain passes when some address at it would.
        Some(domain) => crate::outbound::compose::address(&format!("postmaster@{domain}")),
        None => crate::outbound::compose::address(&value),
    };
    checked.map(|_| value).map_err(|_| {
        InboxError::Invalid(format!("{text:?} is neither an email address nor @domain"))
    })
}
