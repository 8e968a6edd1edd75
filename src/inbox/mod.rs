//! Agents' side of the inbox, shared by the CLI and the HTTP API so both behave the
//! same: access rules (`access`), every read and action (`service`), API tokens
//! (`token`), the JSON shapes both print (`json`), safe display of mail-derived text
//! (`display`), the web inbox's sign-in and sessions (`sign_in`), who is present in
//! a conversation (`presence`), and the trash retention job.

pub mod access;
pub mod display;
pub mod json;
pub mod presence;
pub mod query;
pub mod retention;
mod seen;
pub mod service;
pub mod sign_in;
pub mod token;

pub use service::{Action, Caller, InboxError, Page, Service, TokenOwner};
