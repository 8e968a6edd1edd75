//! Routing and tickets for a new conversation (SPEC D1–D4), inside the ingest
//! transaction: the candidates' availability and open counts, the contact's owner and
//! the channel's round-robin cursor are read here, `pipeline::route` decides, and the
//! assignment, its timeline entry, the cursor and the ticket are written with the
//! message — so a crash never leaves a conversation half-routed, and round-robin
//! continues where it stopped after a restart.

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use crate::config::{AssignTo, Channel, Config, Inbox, Routing, Tickets};
use crate::pipeline::classify::Classification;
use crate::pipeline::route::{self, Candidate};

/// A conversation that was just created, and what it needs for routing.
pub struct NewConversation<'a> {
    pub id: i64,
    pub contact_id: i64,
    pub channel: &'a str,
    pub classification: &'a Classification,
    pub now: i64,
}

/// Assigns the conversation and creates its ticket as the channel says. Only mail from
/// people is routed (C5): never spam, filtered, automatic replies, bounces or bulk,
/// and never mail from the null sender.
pub fn new_conversation(
    conn: &Conn,
    config: &Config,
    conversation: &NewConversation,
) -> Result<(), StoreError> {
    if !conversation.classification.routable() {
        return Ok(());
    }
    let Some((inbox, channel)) = config
        .channels()
        .find(|(_, c)| c.address == conversation.channel)
    else {
        return Ok(());
    };
    let assignee = assign(conn, config, inbox, channel, conversation)?;
    if let Tickets::AutoCreate {
        pipeline,
        stage,
        owner,
    } = &channel.tickets
    {
        let owner = owner.clone().or(assignee);
        conn.prepare_cached(
            "INSERT INTO tickets (conversation_id, pipeline, stage, owner, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            conversation.id,
            pipeline,
            stage,
            owner,
            conversation.now
        ])?;
    }
    Ok(())
}

fn assign(
    conn: &Conn,
    config: &Config,
    inbox: &Inbox,
    channel: &Channel,
    conversation: &NewConversation,
) -> Result<Option<String>, StoreError> {
    let Routing::AutoAssign {
        assign_to,
        only_available,
        strategy,
    } = &channel.routing
    else {
        return Ok(None);
    };
    let (chosen, why) = match assign_to {
        AssignTo::ContactOwner => {
            let owner = contact_owner(conn, conversation.contact_id)?
                .filter(|o| config.is_member(o, inbox))
                .map(|o| candidate(conn, config, &o))
                .transpose()?
                .flatten();
            (
                route::owner_if_eligible(owner, *only_available),
                "contact_owner",
            )
        }
        AssignTo::Members { .. } => {
            let candidates = route::members(config, inbox, assign_to)
                .iter()
                .map(|email| candidate(conn, config, email))
                .collect::<Result<Vec<_>, _>>()?;
            let candidates: Vec<Candidate> = candidates.into_iter().flatten().collect();
            let last = cursor(conn, &channel.address)?;
            let chosen = route::choose(&candidates, *strategy, *only_available, last.as_deref());
            let why = match strategy {
                crate::config::Strategy::RoundRobin => "round_robin",
                crate::config::Strategy::LeastOpen => "least_open",
            };
            (chosen, why)
        }
    };
    let Some(user) = chosen else {
        return Ok(None);
    };
    conn.prepare_cached("UPDATE conversations SET assignee = ?2 WHERE id = ?1")?
        .execute(params![conversation.id, user])?;
    conn.prepare_cached(
        "INSERT INTO timeline (conversation_id, at, actor, action, detail)
         VALUES (?1, ?2, 'system', 'assign', ?3)",
    )?
    .execute(params![
        conversation.id,
        conversation.now,
        format!("{user} ({why})")
    ])?;
    if why == "round_robin" {
        conn.prepare_cached(
            "INSERT INTO routing_cursor (channel, last_user) VALUES (?1, ?2)
             ON CONFLICT (channel) DO UPDATE SET last_user = ?2",
        )?
        .execute(params![channel.address, user])?;
    }
    Ok(Some(user))
}

impl Reader {
    /// The configured users among `emails` as routing sees them now (availability,
    /// open conversations), in the order given: an agent assigning to a team.
    pub fn routing_candidates(
        &self,
        config: &Config,
        emails: &[String],
    ) -> Result<Vec<Candidate>, StoreError> {
        let mut candidates = Vec::new();
        for email in emails {
            candidates.extend(candidate(&self.conn, config, email)?);
        }
        Ok(candidates)
    }
}

/// The configured user with their availability (the agent's own setting, else the
/// config's default) and open conversations; `None` when not configured.
fn candidate(conn: &Conn, config: &Config, email: &str) -> Result<Option<Candidate>, StoreError> {
    let Some(user) = config.user(email) else {
        return Ok(None);
    };
    let available: Option<bool> = conn
        .prepare_cached("SELECT available FROM user_status WHERE email = ?1")?
        .query_row([&user.email], |r| r.get(0))
        .optional()?;
    let open: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM conversations WHERE assignee = ?1 AND status = 'open'
               AND spam = 0 AND filtered = 0 AND trashed_at IS NULL AND deleted = 0",
        )?
        .query_row([&user.email], |r| r.get(0))?;
    Ok(Some(Candidate {
        email: user.email.clone(),
        paid_seat: user.paid_seat,
        available: available.unwrap_or(user.available),
        open,
    }))
}

fn contact_owner(conn: &Conn, contact_id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT owner FROM contacts WHERE id = ?1")?
        .query_row([contact_id], |r| r.get(0))
        .optional()?
        .flatten())
}

/// The channel's round-robin place. Nodes sharing a store take turns on it (the lock
/// holds until the transaction commits), so two nodes never give the next
/// conversation to the same agent at once.
fn cursor(conn: &Conn, channel: &str) -> Result<Option<String>, StoreError> {
    conn.lock("routing_cursor", channel)?;
    Ok(conn
        .prepare_cached("SELECT last_user FROM routing_cursor WHERE channel = ?1")?
        .query_row([channel], |r| r.get(0))
        .optional()?)
}
