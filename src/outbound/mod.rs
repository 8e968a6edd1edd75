//! Outbound mail (SPEC E1–E9): what agents send, and its way out.
//!
//! `compose` turns an agent's draft into an RFC 5322 message (from-name, signature,
//! threading headers; pure). `queue` stores it in its conversation and queues one
//! delivery per recipient in the same transaction; it is the only module that changes
//! delivery rows. `worker` (in the daemon) claims due deliveries and hands them to
//! `deliver`, which speaks SMTP to the relay or the recipients' MX hosts; `dkim` signs
//! on the way out. `send` holds the agent actions (reply, compose, forward, custom From
//! verification) shared by the CLI and the API: access, channel status, then compose
//! and queue.

pub mod compose;
pub mod deliver;
pub mod dkim;
pub mod queue;
pub mod send;
pub mod worker;
