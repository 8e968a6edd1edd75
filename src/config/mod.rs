//! Configuration: the TOML file mirrored by [`raw`], checked by [`validate`] into the
//! ready-to-use [`Config`] below. Every problem is reported with its key path
//! (`inboxes[1].channels[0].status`), all at once, so `check-config` can list them.

mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use validate::{defaults, limits, load, parse, Problem};

/// The validated configuration of one installation (one account).
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub smtp: SmtpConfig,
    pub account: AccountConfig,
    pub users: Vec<User>,
    pub teams: Vec<Team>,
    pub inboxes: Vec<Inbox>,
    pub api: ApiConfig,
    pub outbound: OutboundConfig,
    pub classification: ClassificationConfig,
    pub store: StoreConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// EHLO name, `Received` host and Message-ID domain.
    pub hostname: String,
    /// Where the SQLite store lives; relative paths are relative to the working directory.
    pub data_dir: PathBuf,
    /// This node's name in logs and leases (`[server] node`; default: the host name).
    pub node: String,
}

/// Where the conversations are stored (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default: one SQLite file in `server.data_dir`.
    Sqlite,
    /// A PostgreSQL database that any number of nodes share.
    Postgres(PostgresConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database`; never holds a password (refused there).
    pub url: String,
    pub password_file: Option<PathBuf>,
    /// The password file's text without its trailing newline, read at load.
    pub password: Option<Secret>,
    /// Extra trusted roots (PEM) for TLS to the database.
    pub ca_file: Option<PathBuf>,
}

/// A secret read from a file. Its `Debug` form never shows it, so a logged or printed
/// configuration does not either.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

/// What [`Config::store_target`] tells the store to open.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreTarget {
    /// The SQLite database file ([`Config::database_path`]).
    Sqlite(PathBuf),
    Postgres {
        url: String,
        password: Option<String>,
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for StoreTarget {
    /// Like a derived `Debug`, with the password hidden.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreTarget::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreTarget::Postgres {
                url,
                password,
                ca_file,
            } => f
                .debug_struct("Postgres")
                .field("url", url)
                .field("password", &password.as_ref().map(|_| "hidden"))
                .field("ca_file", ca_file)
                .finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted, in bytes (SIZE and DATA).
    pub max_message_size: u64,
    /// Most RCPT TO accepted per transaction.
    pub max_recipients: usize,
    /// Longest command line, in bytes, CRLF included.
    pub max_line_length: usize,
    /// How long a client may stay silent between commands or while sending DATA.
    pub idle_timeout: Duration,
    /// Whole-session deadline.
    pub session_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// How long running sessions may go on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// STARTTLS is offered only when both files are set.
    pub tls: Option<TlsFiles>,
    /// Inbox that receives mail for `postmaster@` (default: the first inbox).
    pub postmaster_inbox: String,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub subdomain: String,
    pub fallback_domain: String,
    pub company_name: String,
}

impl AccountConfig {
    /// The domain of every fallback address: `{subdomain}.{fallback_domain}`.
    pub fn fallback_host(&self) -> String {
        format!("{}.{}", self.subdomain, self.fallback_domain)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    /// Lower-cased personal address; also the login for `--as`.
    pub email: String,
    pub name: String,
    pub paid_seat: bool,
    pub super_admin: bool,
    pub available: bool,
    /// The web inbox's language: `en` (default), `nl` or `sv`.
    pub language: &'static str,
}

#[derive(Debug, Clone)]
pub struct Team {
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Inbox {
    pub name: String,
    pub access: Access,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Everyone,
    Specific {
        users: Vec<String>,
        teams: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Channel {
    /// Lower-cased address mail is received at and sent from.
    pub address: String,
    pub kind: ChannelKind,
    pub status: ChannelStatus,
    pub from_name: FromName,
    pub log_forwarded_to_original_sender: bool,
    pub signature: Option<String>,
    pub routing: Routing,
    pub tickets: Tickets,
}

// Built once at startup; the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// Hosted address `{user}@{subdomain}.{fallback_domain}`.
    Fallback,
    /// A connected team mailbox polled over IMAP.
    Imap(ImapChannel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromName {
    pub mode: FromNameMode,
    pub company: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromNameMode {
    AgentAndCompany,
    Company,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Manual,
    AutoAssign {
        assign_to: AssignTo,
        only_available: bool,
        strategy: Strategy,
    },
}

/// How auto-assignment spreads conversations over the eligible users (D2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each in turn, continuing after the last one given a conversation (persisted).
    RoundRobin,
    /// The one with the fewest open conversations; ties go in configuration order.
    LeastOpen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignTo {
    Members {
        users: Vec<String>,
        teams: Vec<String>,
    },
    ContactOwner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tickets {
    Off,
    AutoCreate {
        pipeline: String,
        stage: String,
        /// A configured user; `None` means the conversation's assignee.
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapChannel {
    pub server: RemoteServer,
    pub smtp: Option<RemoteServer>,
    pub folders: Vec<String>,
    pub poll_interval: Duration,
    /// How long the server may stay silent on any command (`imap_timeout`).
    pub timeout: Duration,
}

/// A server we connect to (IMAP mailbox, SMTP relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteServer {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// IMAP only: run through `sh -c`; its standard output is an OAuth2 access token.
    pub oauth2_token_command: Option<String>,
    /// Extra CA certificates (PEM) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Implicit,
    StartTls,
    None,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: none).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Certificate and key: the listener speaks HTTPS only (session cookies `Secure`).
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// The next hop for every message; without it, each recipient's MX.
    pub relay: Option<RemoteServer>,
    /// How long delivery is retried before the message fails.
    pub lifetime: Duration,
    /// DNS servers for MX lookups; empty means the system's resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    pub mx_port: u16,
    pub tls_ca_file: Option<PathBuf>,
    /// Messages in delivery at once.
    pub concurrency: usize,
    /// Most recipients (To + Cc + Bcc) of one agent's message.
    pub max_recipients: usize,
    pub dkim: Option<DkimConfig>,
}

impl Default for OutboundConfig {
    /// Direct to MX with the system's resolver, the default lifetime and concurrency.
    fn default() -> Self {
        OutboundConfig {
            relay: None,
            lifetime: Duration::from_secs(defaults::OUTBOUND_LIFETIME_SECS as u64),
            nameservers: Vec::new(),
            mx_port: 25,
            tls_ca_file: None,
            concurrency: defaults::OUTBOUND_CONCURRENCY as usize,
            max_recipients: defaults::MAX_RECIPIENTS as usize,
            dkim: None,
        }
    }
}

/// How inbound mail is classified (SPEC C1, C4).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationConfig {
    /// Lower-case local parts whose mail goes to Spam (C1).
    pub role_senders: Vec<String>,
    /// Check SPF, DKIM and DMARC (C4).
    pub check_authentication: bool,
    /// DNS servers for those checks; empty means the system's resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Content score at or above which a message is spam.
    pub spam_threshold: f64,
    /// Agents' spam / not-spam marks train the token model.
    pub learn_from_marks: bool,
    /// An external scanner speaking spamd's protocol; fails open.
    pub spamd: Option<SpamdConfig>,
}

impl Default for ClassificationConfig {
    /// The default role list, authentication checks on, the default threshold, learning
    /// from marks, no external scanner.
    fn default() -> Self {
        ClassificationConfig {
            role_senders: validate::defaults::ROLE_SENDERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            check_authentication: true,
            nameservers: Vec::new(),
            spam_threshold: validate::defaults::SPAM_THRESHOLD,
            learn_from_marks: true,
            spamd: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpamdConfig {
    pub address: SocketAddr,
    pub timeout: Duration,
}

/// DKIM signing of outbound mail (RFC 6376).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
        load(path)
    }

    /// Every channel with the name of the inbox it belongs to.
    pub fn channels(&self) -> impl Iterator<Item = (&Inbox, &Channel)> {
        self.inboxes
            .iter()
            .flat_map(|inbox| inbox.channels.iter().map(move |c| (inbox, c)))
    }

    pub fn inbox(&self, name: &str) -> Option<&Inbox> {
        self.inboxes
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    pub fn user(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// Whether the user (by address, any case) is a member of `inbox`, directly or
    /// through a team. Says nothing about whether the user is configured.
    pub fn is_member(&self, user_email: &str, inbox: &Inbox) -> bool {
        match &inbox.access {
            Access::Everyone => true,
            Access::Specific { users, teams } => {
                users.iter().any(|u| u.eq_ignore_ascii_case(user_email))
                    || self
                        .teams
                        .iter()
                        .filter(|t| teams.iter().any(|name| name.eq_ignore_ascii_case(&t.name)))
                        .any(|t| t.members.iter().any(|m| m.eq_ignore_ascii_case(user_email)))
            }
        }
    }

    /// Path of the SQLite database inside the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("inboxgate.db")
    }

    /// The store to open: the SQLite file, or the PostgreSQL database and its password.
    pub fn store_target(&self) -> StoreTarget {
        match &self.store {
            StoreConfig::Sqlite => StoreTarget::Sqlite(self.database_path()),
            StoreConfig::Postgres(postgres) => StoreTarget::Postgres {
                url: postgres.url.clone(),
                password: postgres.password.as_ref().map(|p| p.expose().to_string()),
                ca_file: postgres.ca_file.clone(),
            },
        }
    }

    /// This node's name in logs and leases.
    pub fn node_name(&self) -> &str {
        &self.server.node
    }
}

/// The running configuration, replaceable on SIGHUP. Readers take a snapshot
/// ([`LiveConfig::current`]) and keep it for the unit of work at hand (an SMTP session),
/// so one session never sees two configurations.
#[derive(Debug)]
pub struct LiveConfig(RwLock<Arc<Config>>);

impl LiveConfig {
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig(RwLock::new(Arc::new(config)))
    }

    pub fn current(&self) -> Arc<Config> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, config: Config) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(config);
    }
}
