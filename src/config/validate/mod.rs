//! Turns the TOML text into a [`Config`], reporting every problem at once.
//!
//! Three passes, each keyed by the path an administrator sees in the file
//! (`inboxes[1].channels[0].status`):
//! 1. syntax: the text must be TOML (one problem, with line and column);
//! 2. shape: the table is deserialized into [`super::raw`] with `serde_ignored` (every
//!    unknown key) and `serde_path_to_error` (the path of a type error). A value of the
//!    wrong type is reported, removed, and deserialization retried, so one bad value
//!    never hides the others;
//! 3. meaning: ranges, enum strings, addresses, references between users, teams and
//!    inboxes, and the cross-checks of SPEC A3 and A6.
//!
//! Defaults live in [`defaults`], accepted ranges in [`limits`].

mod api;
mod channels;
mod checks;
mod classification;
mod cross_check;
mod fields;
mod inboxes;
mod outbound;
mod server;
mod shape;
mod smtp;
mod store;
mod users;

use self::{
    api::*, channels::*, checks::*, classification::*, cross_check::*, fields::*, inboxes::*,
    outbound::*, server::*, shape::*, smtp::*, store::*, users::*,
};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_path_to_error::Segment;

use super::raw::{
    RawAccount, RawApi, RawChannel, RawClassification, RawConfig, RawDkim, RawInbox, RawOutbound,
    RawRemote, RawServer, RawSmtp, RawSpamd, RawStore, RawTeam, RawUser,
};
use super::{
    Access, AccountConfig, ApiConfig, AssignTo, Channel, ChannelKind, ChannelStatus,
    ClassificationConfig, Config, DkimConfig, FromName, FromNameMode, ImapChannel, Inbox,
    OutboundConfig, PostgresConfig, RemoteServer, Routing, Secret, ServerConfig, SmtpConfig,
    SpamdConfig, StoreConfig, Strategy, Team, Tickets, TlsFiles, TlsMode, User,
};

/// One configuration problem, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The value of every key the file may leave out.
///
/// Not listed here because they are not plain values: `smtp.tls_cert`/`tls_key` and
/// `outbound.relay` are unset (no STARTTLS, delivery direct to MX);
/// `smtp.postmaster_inbox` is the first inbox; `inboxes[].access` is `"everyone"`;
/// a channel's `status` is `"on"`, `routing` manual (`auto_assign = false`) and
/// `tickets` off (`auto_create = false`). `from_name` has no default.
pub mod defaults {
    use super::TlsMode;

    pub const HOSTNAME: &str = "localhost";
    /// Relative paths stay relative: the caller resolves them against the working directory.
    pub const DATA_DIR: &str = "./data";
    pub const SMTP_LISTEN: &[&str] = &["127.0.0.1:2525"];
    /// 25 MiB.
    pub const MAX_MESSAGE_SIZE: i64 = 26_214_400;
    pub const MAX_RECIPIENTS: i64 = 100;
    pub const MAX_LINE_LENGTH: i64 = 2048;
    pub const IDLE_TIMEOUT_SECS: i64 = 300;
    pub const SESSION_TIMEOUT_SECS: i64 = 1800;
    pub const MAX_CONNECTIONS: i64 = 500;
    pub const MAX_CONNECTIONS_PER_IP: i64 = 50;
    pub const SHUTDOWN_GRACE_SECS: i64 = 10;
    /// The paid-plan domain of SPEC A1.
    pub const FALLBACK_DOMAIN: &str = "hs-inbox.com";
    pub const PAID_SEAT: bool = true;
    pub const SUPER_ADMIN: bool = false;
    pub const AVAILABLE: bool = true;
    pub const LOG_FORWARDED_TO_ORIGINAL_SENDER: bool = true;
    /// SPEC D2: by default only available users get conversations.
    pub const ONLY_AVAILABLE: bool = true;
    pub const IMAP_FOLDERS: &[&str] = &["INBOX"];
    pub const POLL_INTERVAL_SECS: i64 = 60;
    pub const IMAP_TIMEOUT_SECS: i64 = 120;
    pub const IMAP_TLS: TlsMode = TlsMode::Implicit;
    /// For a channel's `smtp` server and for `outbound.relay`.
    pub const SMTP_TLS: TlsMode = TlsMode::StartTls;
    pub const API_LISTEN: &str = "127.0.0.1:8025";
    /// SPEC E7: retry undelivered mail for five days.
    pub const OUTBOUND_LIFETIME_SECS: i64 = 5 * 24 * 3600;
    pub const OUTBOUND_CONCURRENCY: i64 = 20;
    /// C1: local parts that send campaigns and notifications, not customer questions.
    /// Left out on purpose: `info`, `contact`, `office`, `admin`, `hello`, `support`;
    /// small businesses write to a help desk from exactly those addresses.
    pub const ROLE_SENDERS: &[&str] = &[
        "marketing",
        "sales",
        "verkoop",
        "newsletter",
        "newsletters",
        "nieuwsbrief",
        "nyhetsbrev",
        "news",
        "promotions",
        "promo",
        "offers",
        "deals",
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "do_not_reply",
        "mailer",
        "campaigns",
        "marketing-noreply",
    ];
    /// C4: a content score at or above this is spam (SpamAssassin's scale).
    pub const SPAM_THRESHOLD: f64 = 5.0;
    pub const SPAMD_TIMEOUT_SECS: i64 = 5;
    /// `[server] node` when the host name cannot be read or is no valid node name.
    pub const NODE: &str = "node";

    /// `[server] node`: the host name (`/proc/sys/kernel/hostname`), else [`NODE`].
    pub fn node() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| super::check_node_name(name).is_ok())
            .unwrap_or_else(|| NODE.to_string())
    }

    /// 993 for implicit TLS, 143 otherwise.
    pub fn imap_port(tls: TlsMode) -> u16 {
        match tls {
            TlsMode::Implicit => 993,
            TlsMode::StartTls | TlsMode::None => 143,
        }
    }

    /// 465 for implicit TLS, 587 (submission) for STARTTLS, 25 without TLS.
    pub fn smtp_port(tls: TlsMode) -> u16 {
        match tls {
            TlsMode::Implicit => 465,
            TlsMode::StartTls => 587,
            TlsMode::None => 25,
        }
    }
}

/// Accepted ranges: beyond them a value is a typo, not a choice.
pub mod limits {
    use std::ops::RangeInclusive;

    /// 1 KiB to 1 GiB.
    pub const MESSAGE_SIZE: RangeInclusive<i64> = 1024..=1_073_741_824;
    pub const RECIPIENTS: RangeInclusive<i64> = 1..=10_000;
    /// RFC 5321 §4.5.3.1.4: a server must accept command lines of 512 octets.
    pub const LINE_LENGTH: RangeInclusive<i64> = 512..=1_048_576;
    /// Timeouts and poll intervals: one second to one day.
    pub const SECONDS: RangeInclusive<i64> = 1..=86_400;
    /// A reply deadline: long enough for a slow FETCH, short enough to notice a hang.
    pub const IMAP_TIMEOUT: RangeInclusive<i64> = 1..=3_600;
    pub const CONNECTIONS: RangeInclusive<i64> = 1..=1_000_000;
    /// Zero means: stop running sessions at once.
    pub const SHUTDOWN_GRACE_SECS: RangeInclusive<i64> = 0..=3600;
    pub const PORT: RangeInclusive<i64> = 1..=65_535;
    /// One minute to thirty days.
    pub const OUTBOUND_LIFETIME_SECS: RangeInclusive<i64> = 60..=30 * 86_400;
    pub const OUTBOUND_CONCURRENCY: RangeInclusive<i64> = 1..=1000;
    /// A scanner slower than a minute holds mail back too long.
    pub const SPAMD_TIMEOUT_SECS: RangeInclusive<i64> = 1..=60;
    /// A database password file is a line, not a document.
    pub const PASSWORD_FILE_BYTES: u64 = 1024;
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            "(file)",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    parse(&text)
}

/// Validates configuration text; on failure returns every problem found.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| vec![syntax_problem(text, &e)])?;
    let shaped = deserialize(table)?;
    let mut problems = Problems::default();
    let config = build(&shaped.raw, &mut problems);
    let mut all = shaped.problems;
    // A removed bad value would otherwise also show up as "missing".
    all.extend(
        problems
            .0
            .into_iter()
            .filter(|p| !shaped.removed.iter().any(|r| is_under(&p.key, r))),
    );
    if all.is_empty() {
        Ok(config)
    } else {
        Err(all)
    }
}

fn syntax_problem(text: &str, error: &toml::de::Error) -> Problem {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return Problem::new("(syntax)", message);
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Problem::new(
        "(syntax)",
        format!("line {line}, column {column}: {message}"),
    )
}

/// `key` is `prefix` or a key inside it.
fn is_under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

// Pass 3: meaning, section by section (one submodule each).

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }
}

/// What channels and access lists may refer to.
struct Known<'a> {
    users: &'a [User],
    teams: &'a [Team],
    account: &'a AccountConfig,
}

fn build(raw: &RawConfig, p: &mut Problems) -> Config {
    let server = server(&raw.server, p);
    let account = account(&raw.account, p);
    let users = users(&raw.users, p);
    let teams = teams(&raw.teams, &users, p);
    let known = Known {
        users: &users,
        teams: &teams,
        account: &account,
    };
    let (inboxes, sites) = inboxes(&raw.inboxes, &known, p);
    cross_check(&sites, &users, p);
    let smtp = smtp(&raw.smtp, &inboxes, p);
    let api = api(&raw.api, &smtp, p);
    let outbound = outbound(&raw.outbound, p);
    let classification = classification(&raw.classification, p);
    let store = store(&raw.store, p);
    Config {
        server,
        smtp,
        account,
        users,
        teams,
        inboxes,
        api,
        outbound,
        classification,
        store,
    }
}
