//! PostgreSQL's schema (placeholder until the full DDL lands).

pub const PG_SCHEMA: &str = "";
