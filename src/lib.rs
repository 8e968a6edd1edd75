//! inboxgate: the email channel of a shared conversations inbox.
//!
//! See ARCHITECTURE.md for the map. Data flows SMTP/IMAP → `pipeline` → `store`;
//! agents read and act through `cli`, the HTTP API (`api`) and the web inbox (`web`),
//! all over `inbox`.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dns;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod imap;
pub mod inbox;
pub mod ingest;
pub mod logging;
pub mod mail_html;
pub mod metrics;
pub mod outbound;
pub mod pipeline;
pub mod smtp;
pub mod store;
pub mod web;
