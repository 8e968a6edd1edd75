//! Serde mirror of `inboxgate.toml`, key for key, before any checking.
//!
//! Every key is optional here, even the ones the file must have: whether a key is
//! missing, and what its default is, is decided in [`super::validate`], which can then
//! report all problems at once with their key paths. Integers are read as `i64` so a
//! negative or zero value gets a range message rather than a serde type error.
//! Polymorphic values (`access`, `from_name`, `routing`, `tickets`) stay
//! [`toml::Value`] and are converted by hand. Unknown keys are not rejected here;
//! `validate` collects them all with `serde_ignored`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub smtp: RawSmtp,
    #[serde(default)]
    pub account: RawAccount,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub teams: Vec<RawTeam>,
    #[serde(default)]
    pub inboxes: Vec<RawInbox>,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub outbound: RawOutbound,
    #[serde(default)]
    pub classification: RawClassification,
    #[serde(default)]
    pub store: RawStore,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub hostname: Option<String>,
    pub data_dir: Option<String>,
    /// This node's name in logs and leases; default: the host name.
    pub node: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStore {
    /// `"sqlite"` or `"postgres"`.
    pub backend: Option<String>,
    /// PostgreSQL only: `postgres://user@host:port/database`, without a password.
    pub url: Option<String>,
    /// PostgreSQL only: a file holding the database password.
    pub password_file: Option<String>,
    /// PostgreSQL only: PEM roots trusted for TLS to the database, beside the system's.
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSmtp {
    pub listen: Option<Vec<String>>,
    pub max_message_size: Option<i64>,
    pub max_recipients: Option<i64>,
    pub max_line_length: Option<i64>,
    /// Seconds.
    pub idle_timeout: Option<i64>,
    /// Seconds.
    pub session_timeout: Option<i64>,
    pub max_connections: Option<i64>,
    pub max_connections_per_ip: Option<i64>,
    /// Seconds.
    pub shutdown_grace: Option<i64>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub postmaster_inbox: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAccount {
    pub subdomain: Option<String>,
    pub fallback_domain: Option<String>,
    pub company_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawUser {
    pub email: Option<String>,
    pub name: Option<String>,
    pub paid_seat: Option<bool>,
    pub super_admin: Option<bool>,
    pub available: Option<bool>,
    pub language: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTeam {
    pub name: Option<String>,
    pub members: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawInbox {
    pub name: Option<String>,
    /// `"everyone"` or `{ users = [..], teams = [..] }`.
    pub access: Option<toml::Value>,
    pub channels: Option<Vec<RawChannel>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawChannel {
    /// `"fallback"` or `"imap"`.
    pub kind: Option<String>,
    /// Fallback channels: the local part of `{user}@{subdomain}.{fallback_domain}`.
    pub user: Option<String>,
    /// IMAP channels: the team mailbox address.
    pub address: Option<String>,
    /// `"on"` or `"off"`.
    pub status: Option<String>,
    /// `{ mode = "agent_and_company" | "company", company = ".." }`.
    pub from_name: Option<toml::Value>,
    pub log_forwarded_to_original_sender: Option<bool>,
    pub signature: Option<String>,
    /// `{ auto_assign = false }` or
    /// `{ auto_assign = true, assign_to = { users, teams } | "contact_owner", only_available }`.
    pub routing: Option<toml::Value>,
    /// `{ auto_create = false }` or `{ auto_create = true, pipeline, stage }`.
    pub tickets: Option<toml::Value>,
    pub folders: Option<Vec<String>>,
    /// Seconds.
    pub poll_interval: Option<i64>,
    /// Seconds a silent IMAP server is given to answer before the poller backs off.
    pub imap_timeout: Option<i64>,
    pub imap: Option<RawRemote>,
    pub smtp: Option<RawRemote>,
}

/// A server we connect to: a channel's IMAP or SMTP server, or the outbound relay.
#[derive(Debug, Default, Deserialize)]
pub struct RawRemote {
    pub host: Option<String>,
    pub port: Option<i64>,
    /// `"implicit"`, `"starttls"` or `"none"`.
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    /// IMAP only: a command whose standard output is an OAuth2 access token (XOAUTH2).
    pub oauth2_token_command: Option<String>,
    /// A PEM file of extra CA certificates trusted for this server (self-hosted CAs).
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawApi {
    pub listen: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client (IP addresses).
    pub trusted_proxies: Option<Vec<String>>,
    /// PEM files: serve the API and the web inbox over HTTPS.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawOutbound {
    pub relay: Option<RawRemote>,
    /// Seconds a message may stay undelivered before it fails (default 5 days).
    pub lifetime: Option<i64>,
    /// DNS servers for MX lookups, `"ip"` or `"ip:port"`; default: the system's.
    pub nameservers: Option<Vec<String>>,
    /// Port of the recipients' MX hosts (25; other values are for tests).
    pub mx_port: Option<i64>,
    /// Extra PEM trust anchors for the relay's certificate (a private CA).
    pub tls_ca_file: Option<String>,
    /// Messages delivered at once.
    pub concurrency: Option<i64>,
    /// Most recipients (To + Cc + Bcc) of one agent's message (default 100).
    pub max_recipients: Option<i64>,
    /// `{ domain, selector, key_file }`: DKIM-sign outbound mail.
    pub dkim: Option<RawDkim>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDkim {
    pub domain: Option<String>,
    pub selector: Option<String>,
    /// PEM private key (RSA PKCS#8 or PKCS#1, or Ed25519 PKCS#8).
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawClassification {
    /// Local parts whose mail goes to Spam (C1); replaces the default list.
    pub role_senders: Option<Vec<String>>,
    /// Check SPF, DKIM and DMARC of inbound mail (C4).
    pub check_authentication: Option<bool>,
    /// DNS servers for the authentication checks: `"ip"` or `"ip:port"`.
    pub nameservers: Option<Vec<String>>,
    /// Content score at or above which a message is spam.
    pub spam_threshold: Option<f64>,
    /// Train the token model from agents' spam / not-spam marks.
    pub learn_from_marks: Option<bool>,
    /// SpamAssassin's spamd: `{ address = "127.0.0.1:783", timeout = 5 }`.
    pub spamd: Option<RawSpamd>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSpamd {
    pub address: Option<String>,
    /// Seconds.
    pub timeout: Option<i64>,
}
