//! Integration tests: one binary, a module per feature. Each test starts a real daemon
//! on an ephemeral port and talks to it over TCP, then reads results with the real CLI.

mod dovecot;
mod postgres_cluster;
mod support;

mod api;
mod api_hostile;
mod api_send;
mod authentication;
mod classify;
mod durability;
mod fixtures;
mod forward;
mod hostile;
mod imap;
mod ingest;
mod mail_html;
mod metrics;
mod nodes;
mod outbound;
mod parallel;
mod pg_tls;
mod regroup;
mod reload;
mod routing;
mod smtp;
mod spam;
mod store_copy;
mod web;
