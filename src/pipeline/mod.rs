//! The ingest pipeline: turns a received message into a filed one.
//!
//! Stages are pure functions where they can be: `parse` turns raw bytes into an
//! [`parse::Inbound`] (addresses, ids, subject, text, attachments, dedupe key), `thread`
//! decides which conversation a message joins and why. The store's writer runs `thread`
//! inside its transaction, so two messages of one thread arriving together cannot race.
//! The pipeline does no network I/O of its own.

pub mod bounce;
pub mod classify;
pub mod forward;
pub mod parse;
pub mod route;
pub mod subject;
pub mod thread;

use std::net::IpAddr;

/// The SMTP envelope (or its IMAP equivalent) of one received message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Reverse path; empty for the null sender `<>`.
    pub mail_from: String,
    /// Accepted RCPT TO addresses, as given.
    pub recipients: Vec<String>,
    /// EHLO/HELO name of the client.
    pub helo: String,
    pub peer: Option<IpAddr>,
    /// `ESMTP`, `ESMTPS`, `SMTP`, … for the Received header.
    pub protocol: String,
}

/// One inbox a message is delivered into, through one of its channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub inbox: String,
    /// The channel address (lower case) the message arrived for.
    pub channel: String,
}
