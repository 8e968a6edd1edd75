//! Agents' side of the inbox: access rules (and, as they land, the actions) shared by
//! the CLI and the HTTP API, so both behave the same.

pub mod access;
