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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_path_to_error::Segment;

use super::raw::{
    RawAccount, RawApi, RawChannel, RawClassification, RawConfig, RawDkim, RawInbox, RawOutbound,
    RawRemote, RawServer, RawSmtp, RawSpamd, RawTeam, RawUser,
};
use super::{
    Access, AccountConfig, ApiConfig, AssignTo, Channel, ChannelKind, ChannelStatus,
    ClassificationConfig, Config, DkimConfig, FromName, FromNameMode, ImapChannel, Inbox,
    OutboundConfig, RemoteServer, Routing, ServerConfig, SmtpConfig, SpamdConfig, Strategy, Team,
    Tickets, TlsFiles, TlsMode, User,
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

// ---------------------------------------------------------------------------------
// Pass 2: shape

struct Shaped {
    raw: RawConfig,
    problems: Vec<Problem>,
    /// Keys removed because their value had the wrong type.
    removed: Vec<String>,
}

/// At most this many type errors are reported before giving up.
const MAX_TYPE_ERRORS: usize = 100;

fn deserialize(mut table: toml::Table) -> Result<Shaped, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let mut unknown = Vec::new();
        let mut note = |path: serde_ignored::Path| unknown.push(ignored_key(&path));
        let de = serde_ignored::Deserializer::new(table.clone(), &mut note);
        match serde_path_to_error::deserialize::<_, RawConfig>(de) {
            Ok(raw) => {
                problems.extend(unknown.into_iter().map(|k| Problem::new(k, "unknown key")));
                return Ok(Shaped {
                    raw,
                    problems,
                    removed,
                });
            }
            Err(e) => {
                let segments: Vec<&Segment> = e.path().iter().collect();
                problems.push(Problem::new(
                    segments_key(&segments),
                    type_message(e.inner().message()),
                ));
                removed.push(remove_value(&mut table, &segments).ok_or_else(|| problems.clone())?);
            }
        }
    }
    Err(problems)
}

/// Removes the innermost table key on `segments`; returns its key path.
fn remove_value(table: &mut toml::Table, segments: &[&Segment]) -> Option<String> {
    let last = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let Segment::Map { key } = segments[last] else {
        return None;
    };
    let container = match segments[..last].split_first() {
        None => table,
        Some((Segment::Map { key: first }, rest)) => {
            let mut value = table.get_mut(first.as_str())?;
            for segment in rest {
                value = match segment {
                    Segment::Map { key } => value.get_mut(key.as_str()),
                    Segment::Seq { index } => value.get_mut(*index),
                    _ => None,
                }?;
            }
            value.as_table_mut()?
        }
        Some(_) => return None,
    };
    container.remove(key.as_str())?;
    Some(segments_key(&segments[..=last]))
}

fn segments_key(segments: &[&Segment]) -> String {
    segments.iter().fold(String::new(), |key, s| match s {
        Segment::Seq { index } => format!("{key}[{index}]"),
        Segment::Map { key: k } => join(&key, k),
        Segment::Enum { variant } => join(&key, variant),
        Segment::Unknown => join(&key, "?"),
    })
}

fn ignored_key(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_key(parent)),
        P::Map { parent, key } => join(&ignored_key(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_key(parent)
        }
    }
}

/// serde speaks Rust (`expected i64`); the administrator reads TOML.
fn type_message(message: &str) -> String {
    let message = message
        .replace("invalid type: ", "wrong type: ")
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array");
    match message.find("expected struct ") {
        Some(at) => format!("{}expected a table", &message[..at]),
        None => message,
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

// ---------------------------------------------------------------------------------
// Pass 3: meaning

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
    }
}

fn server(raw: &RawServer, p: &mut Problems) -> ServerConfig {
    let hostname = raw.hostname.as_deref().unwrap_or(defaults::HOSTNAME);
    if let Err(why) = check_dns_name(hostname) {
        p.add("server.hostname", why);
    }
    let data_dir = raw.data_dir.as_deref().unwrap_or(defaults::DATA_DIR);
    if data_dir.trim().is_empty() {
        p.add("server.data_dir", "must not be empty");
    }
    ServerConfig {
        hostname: hostname.to_ascii_lowercase(),
        data_dir: PathBuf::from(data_dir),
    }
}

fn account(raw: &RawAccount, p: &mut Problems) -> AccountConfig {
    let subdomain = required(p, "account.subdomain", raw.subdomain.as_deref());
    if !subdomain.is_empty() {
        if let Err(why) = check_dns_label(&subdomain) {
            p.add("account.subdomain", why);
        }
    }
    let fallback_domain = raw
        .fallback_domain
        .as_deref()
        .unwrap_or(defaults::FALLBACK_DOMAIN);
    if let Err(why) = check_dns_name(fallback_domain) {
        p.add("account.fallback_domain", why);
    }
    AccountConfig {
        subdomain: subdomain.to_ascii_lowercase(),
        fallback_domain: fallback_domain.to_ascii_lowercase(),
        company_name: required(p, "account.company_name", raw.company_name.as_deref()),
    }
}

fn users(raw: &[RawUser], p: &mut Problems) -> Vec<User> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut users = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("users[{i}]");
        let email = email(p, &join(&key, "email"), u.email.as_deref());
        if let Some(j) = first.get(&email) {
            p.add(
                &join(&key, "email"),
                format!("{email} is already the address of users[{j}]"),
            );
        } else if !email.is_empty() {
            first.insert(email.clone(), i);
        }
        users.push(User {
            email,
            name: required(p, &join(&key, "name"), u.name.as_deref()),
            paid_seat: u.paid_seat.unwrap_or(defaults::PAID_SEAT),
            super_admin: u.super_admin.unwrap_or(defaults::SUPER_ADMIN),
            available: u.available.unwrap_or(defaults::AVAILABLE),
        });
    }
    users
}

fn teams(raw: &[RawTeam], users: &[User], p: &mut Problems) -> Vec<Team> {
    let mut teams: Vec<Team> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = format!("teams[{i}]");
        let name = required(p, &join(&key, "name"), t.name.as_deref());
        if let Some(j) = teams
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&name))
        {
            p.add(
                &join(&key, "name"),
                format!("team {name:?} is already defined by teams[{j}]"),
            );
        }
        let mut members: Vec<String> = Vec::new();
        for (m, member) in t.members.iter().flatten().enumerate() {
            let member_key = format!("{key}.members[{m}]");
            let email = user_ref(p, &member_key, member, users);
            if members.contains(&email) {
                p.add(&member_key, format!("{email} is listed twice"));
            }
            members.push(email);
        }
        teams.push(Team { name, members });
    }
    teams
}

/// Where a channel was configured, for the cross-checks that need all channels.
struct Site {
    inbox: String,
    channel_key: String,
    address_key: String,
    address: String,
    fallback: bool,
    from_name: Option<FromName>,
}

fn inboxes(raw: &[RawInbox], known: &Known, p: &mut Problems) -> (Vec<Inbox>, Vec<Site>) {
    if raw.is_empty() {
        p.add("inboxes", "at least one [[inboxes]] is required");
    }
    let mut inboxes: Vec<Inbox> = Vec::new();
    let mut sites = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("inboxes[{i}]");
        let name = required(p, &join(&key, "name"), r.name.as_deref());
        if let Some(j) = inboxes
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&name))
        {
            p.add(
                &join(&key, "name"),
                format!("inbox {name:?} is already defined by inboxes[{j}]"),
            );
        }
        let access = access(p, &join(&key, "access"), r.access.as_ref(), known);
        let channels_key = join(&key, "channels");
        let raw_channels = r.channels.as_deref().unwrap_or_default();
        if raw_channels.is_empty() {
            p.add(
                &channels_key,
                "an inbox needs at least one [[inboxes.channels]]",
            );
        }
        let mut channels = Vec::new();
        for (c, rc) in raw_channels.iter().enumerate() {
            let (channel, mut site) = channel(p, &format!("{channels_key}[{c}]"), rc, known);
            site.inbox.clone_from(&name);
            channels.push(channel);
            sites.push(site);
        }
        inboxes.push(Inbox {
            name,
            access,
            channels,
        });
    }
    (inboxes, sites)
}

fn channel(p: &mut Problems, key: &str, raw: &RawChannel, known: &Known) -> (Channel, Site) {
    let kind_key = join(key, "kind");
    let kind = choice(p, &kind_key, raw.kind.as_deref(), None, KINDS);
    let fallback = matches!(kind, Some(Kind::Fallback));
    let (address_key, address, kind) = match kind {
        Some(Kind::Fallback) => {
            let address = fallback_address(p, key, raw, known.account);
            (join(key, "user"), address, ChannelKind::Fallback)
        }
        Some(Kind::Imap) => {
            let (address, imap) = imap_channel(p, key, raw);
            (join(key, "address"), address, ChannelKind::Imap(imap))
        }
        // The kind is already reported; check what can be checked without it.
        None => (join(key, "address"), String::new(), ChannelKind::Fallback),
    };
    let from_name = from_name(p, &join(key, "from_name"), raw.from_name.as_ref());
    if let Some(signature) = &raw.signature {
        check_signature(p, &join(key, "signature"), signature);
    }
    let channel = Channel {
        address: address.clone(),
        status: choice(
            p,
            &join(key, "status"),
            raw.status.as_deref(),
            Some(ChannelStatus::On),
            STATUSES,
        )
        .unwrap_or(ChannelStatus::On),
        from_name: from_name.clone().unwrap_or_else(placeholder_from_name),
        log_forwarded_to_original_sender: raw
            .log_forwarded_to_original_sender
            .unwrap_or(defaults::LOG_FORWARDED_TO_ORIGINAL_SENDER),
        signature: raw.signature.clone(),
        routing: routing(p, &join(key, "routing"), raw.routing.as_ref(), known),
        tickets: tickets(p, &join(key, "tickets"), raw.tickets.as_ref(), known),
        kind,
    };
    let site = Site {
        inbox: String::new(),
        channel_key: key.to_string(),
        address_key,
        address,
        fallback,
        from_name,
    };
    (channel, site)
}

fn placeholder_from_name() -> FromName {
    FromName {
        mode: FromNameMode::Company,
        company: String::new(),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Fallback,
    Imap,
}

const KINDS: &[(&str, Kind)] = &[("fallback", Kind::Fallback), ("imap", Kind::Imap)];
const STATUSES: &[(&str, ChannelStatus)] =
    &[("on", ChannelStatus::On), ("off", ChannelStatus::Off)];
const TLS_MODES: &[(&str, TlsMode)] = &[
    ("implicit", TlsMode::Implicit),
    ("starttls", TlsMode::StartTls),
    ("none", TlsMode::None),
];
const FROM_NAME_MODES: &[(&str, FromNameMode)] = &[
    ("agent_and_company", FromNameMode::AgentAndCompany),
    ("company", FromNameMode::Company),
];

/// `{user}@{subdomain}.{fallback_domain}`, lower case (SPEC A1).
fn fallback_address(
    p: &mut Problems,
    key: &str,
    raw: &RawChannel,
    account: &AccountConfig,
) -> String {
    if raw.address.is_some() {
        p.add(
            &join(key, "address"),
            "not allowed for kind = \"fallback\": its address is {user}@{subdomain}.{fallback_domain}",
        );
    }
    let imap_only = [
        ("imap", raw.imap.is_some()),
        ("smtp", raw.smtp.is_some()),
        ("folders", raw.folders.is_some()),
        ("poll_interval", raw.poll_interval.is_some()),
        ("imap_timeout", raw.imap_timeout.is_some()),
    ];
    for (name, _) in imap_only.iter().filter(|(_, set)| *set) {
        p.add(&join(key, name), "only allowed for kind = \"imap\"");
    }
    let user_key = join(key, "user");
    let user = required(p, &user_key, raw.user.as_deref()).to_ascii_lowercase();
    if user.is_empty() {
        return String::new();
    }
    if let Err(why) = check_local_part(&user) {
        p.add(&user_key, why);
    } else if user.contains('+') {
        p.add(
            &user_key,
            "must not contain '+': it separates subaddresses (SPEC A7)",
        );
    }
    format!("{user}@{}", account.fallback_host())
}

fn imap_channel(p: &mut Problems, key: &str, raw: &RawChannel) -> (String, ImapChannel) {
    if raw.user.is_some() {
        p.add(&join(key, "user"), "only allowed for kind = \"fallback\"");
    }
    let address = email(p, &join(key, "address"), raw.address.as_deref());
    let imap_key = join(key, "imap");
    let server = match &raw.imap {
        Some(imap) => remote(p, &imap_key, imap, Protocol::Imap),
        None => {
            p.add(
                &imap_key,
                "required for kind = \"imap\": { host = .., username = .., password_file = .. }",
            );
            RemoteServer {
                host: String::new(),
                port: defaults::imap_port(defaults::IMAP_TLS),
                tls: defaults::IMAP_TLS,
                username: None,
                password_file: None,
                oauth2_token_command: None,
                ca_file: None,
            }
        }
    };
    let smtp = raw
        .smtp
        .as_ref()
        .map(|s| remote(p, &join(key, "smtp"), s, Protocol::Smtp));
    let imap = ImapChannel {
        server,
        smtp,
        folders: folders(p, &join(key, "folders"), raw.folders.as_deref()),
        poll_interval: seconds(
            p,
            &join(key, "poll_interval"),
            raw.poll_interval,
            defaults::POLL_INTERVAL_SECS,
            limits::SECONDS,
        ),
        timeout: seconds(
            p,
            &join(key, "imap_timeout"),
            raw.imap_timeout,
            defaults::IMAP_TIMEOUT_SECS,
            limits::IMAP_TIMEOUT,
        ),
    };
    (address, imap)
}

fn folders(p: &mut Problems, key: &str, raw: Option<&[String]>) -> Vec<String> {
    let Some(raw) = raw else {
        return defaults::IMAP_FOLDERS
            .iter()
            .map(|f| f.to_string())
            .collect();
    };
    if raw.is_empty() {
        p.add(key, "must name at least one folder");
    }
    for (i, folder) in raw.iter().enumerate() {
        if folder.trim().is_empty() {
            p.add(&format!("{key}[{i}]"), "must not be empty");
        } else if raw[..i].contains(folder) {
            p.add(
                &format!("{key}[{i}]"),
                format!("folder {folder:?} is listed twice"),
            );
        }
    }
    raw.to_vec()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Imap,
    Smtp,
}

fn remote(p: &mut Problems, key: &str, raw: &RawRemote, protocol: Protocol) -> RemoteServer {
    let host_key = join(key, "host");
    let host = required(p, &host_key, raw.host.as_deref()).to_ascii_lowercase();
    if !host.is_empty() && host.parse::<IpAddr>().is_err() {
        if let Err(why) = check_dns_name(&host) {
            p.add(&host_key, why);
        }
    }
    let default_tls = if protocol == Protocol::Smtp {
        defaults::SMTP_TLS
    } else {
        defaults::IMAP_TLS
    };
    let tls_key = join(key, "tls");
    let tls = choice(
        p,
        &tls_key,
        raw.tls.as_deref(),
        Some(default_tls),
        TLS_MODES,
    )
    .unwrap_or(default_tls);
    if tls == TlsMode::None && !host.is_empty() && !is_loopback(&host) {
        p.add(
            &tls_key,
            "\"none\" is only allowed for loopback hosts (localhost, 127.0.0.1, ::1)",
        );
    }
    let default_port = match protocol {
        Protocol::Smtp => defaults::smtp_port(tls),
        Protocol::Imap => defaults::imap_port(tls),
    };
    let port = int_in(
        p,
        &join(key, "port"),
        raw.port,
        i64::from(default_port),
        limits::PORT,
    );
    check_credentials(p, key, raw, protocol == Protocol::Imap);
    RemoteServer {
        host,
        port: u16::try_from(port).unwrap_or(default_port),
        tls,
        username: raw.username.clone(),
        password_file: raw.password_file.as_ref().map(PathBuf::from),
        oauth2_token_command: raw.oauth2_token_command.clone(),
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
    }
}

/// A login needs a password source; an IMAP mailbox always needs a login.
fn check_credentials(p: &mut Problems, key: &str, raw: &RawRemote, login_required: bool) {
    let username = raw.username.as_deref();
    let password_file = raw.password_file.as_deref();
    for (name, value) in [("username", username), ("password_file", password_file)] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            p.add(&join(key, name), "must not be empty");
        }
    }
    let oauth_key = join(key, "oauth2_token_command");
    match raw.oauth2_token_command.as_deref() {
        Some(_) if !login_required => p.add(
            &oauth_key,
            "only supported for IMAP mailboxes; use password_file",
        ),
        Some(command) if command.trim().is_empty() => p.add(&oauth_key, "must not be empty"),
        Some(_) if password_file.is_some() => p.add(
            &oauth_key,
            "set either password_file or oauth2_token_command, not both",
        ),
        _ => {}
    }
    if raw.ca_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
        p.add(&join(key, "ca_file"), "must not be empty");
    }
    match (username, password_file) {
        (Some(_), None) if raw.oauth2_token_command.is_none() => {
            p.add(&join(key, "password_file"), "required when username is set");
        }
        (None, Some(_)) => p.add(&join(key, "username"), "required when password_file is set"),
        (None, None) if login_required => {
            p.add(
                &join(key, "username"),
                "required: an IMAP mailbox needs a login",
            );
        }
        _ => {}
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_signature(p: &mut Problems, key: &str, signature: &str) {
    const TOKENS: &[&str] = &["full_name", "first_name", "last_name"];
    let mut rest = signature;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            p.add(key, "unclosed \"{{\"");
            return;
        };
        let token = after[..end].trim();
        if !TOKENS.contains(&token) {
            p.add(
                key,
                format!("unknown token {{{{{token}}}}}; known: {{{{full_name}}}}, {{{{first_name}}}}, {{{{last_name}}}}"),
            );
        }
        rest = &after[end + 2..];
    }
}

// ---------------------------------------------------------------------------------
// Polymorphic values, read by hand from `toml::Value`

/// A table read key by key; keys never asked for are reported as unknown.
struct Fields<'a> {
    key: String,
    table: &'a toml::Table,
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn of(p: &mut Problems, key: &str, value: &'a toml::Value, expected: &str) -> Option<Self> {
        match value.as_table() {
            Some(table) => Some(Fields {
                key: key.to_string(),
                table,
                asked: Vec::new(),
            }),
            None => {
                p.add(
                    key,
                    format!("expected {expected}, found {}", value.type_str()),
                );
                None
            }
        }
    }

    fn key(&self, name: &str) -> String {
        join(&self.key, name)
    }

    fn get(&mut self, name: &'static str) -> Option<&'a toml::Value> {
        self.asked.push(name);
        self.table.get(name)
    }

    fn typed<T>(
        &mut self,
        p: &mut Problems,
        name: &'static str,
        what: &str,
        read: fn(&'a toml::Value) -> Option<T>,
    ) -> Option<T> {
        let value = self.get(name)?;
        let typed = read(value);
        if typed.is_none() {
            p.add(
                &self.key(name),
                format!("expected {what}, found {}", value.type_str()),
            );
        }
        typed
    }

    fn str(&mut self, p: &mut Problems, name: &'static str) -> Option<&'a str> {
        self.typed(p, name, "a string", toml::Value::as_str)
    }

    /// A string that must be present and not blank.
    fn required_str(&mut self, p: &mut Problems, name: &'static str) -> Option<&'a str> {
        if !self.table.contains_key(name) {
            self.asked.push(name);
            p.add(&self.key(name), "required");
            return None;
        }
        let value = self.str(p, name)?;
        if value.trim().is_empty() {
            p.add(&self.key(name), "must not be empty");
            return None;
        }
        Some(value)
    }

    fn bool(&mut self, p: &mut Problems, name: &'static str) -> Option<bool> {
        self.typed(p, name, "a boolean", toml::Value::as_bool)
    }

    /// The strings of an array, each with its key path.
    fn strings(&mut self, p: &mut Problems, name: &'static str) -> Vec<(String, &'a str)> {
        let array_key = self.key(name);
        let Some(items) = self.typed(p, name, "an array", toml::Value::as_array) else {
            return Vec::new();
        };
        let mut strings = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{array_key}[{i}]");
            match item.as_str() {
                Some(s) => strings.push((key, s)),
                None => p.add(
                    &key,
                    format!("expected a string, found {}", item.type_str()),
                ),
            }
        }
        strings
    }

    /// Keys that only make sense with another setting: each present one is a problem.
    fn refuse(&mut self, p: &mut Problems, names: &[&'static str], why: &str) {
        for name in names {
            if self.get(name).is_some() {
                p.add(&self.key(name), why);
            }
        }
    }

    fn finish(self, p: &mut Problems) {
        for name in self.table.keys() {
            if !self.asked.contains(&name.as_str()) {
                p.add(&join(&self.key, name), "unknown key");
            }
        }
    }
}

fn access(p: &mut Problems, key: &str, value: Option<&toml::Value>, known: &Known) -> Access {
    match value {
        None => Access::Everyone,
        Some(toml::Value::String(s)) if s == "everyone" => Access::Everyone,
        Some(toml::Value::String(s)) => {
            p.add(key, format!("unknown access {s:?}; expected \"everyone\" or {{ users = [..], teams = [..] }}"));
            Access::Everyone
        }
        Some(v) => match members(p, key, v, known) {
            Some((users, teams)) => Access::Specific { users, teams },
            None => Access::Everyone,
        },
    }
}

/// `{ users = [..], teams = [..] }`, every name resolved; at least one of them.
fn members(
    p: &mut Problems,
    key: &str,
    value: &toml::Value,
    known: &Known,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut f = Fields::of(p, key, value, "\"everyone\" or a table { users, teams }")?;
    let users: Vec<String> = f
        .strings(p, "users")
        .into_iter()
        .map(|(k, s)| user_ref(p, &k, s, known.users))
        .collect();
    let teams: Vec<String> = f
        .strings(p, "teams")
        .into_iter()
        .map(|(k, s)| team_ref(p, &k, s, known.teams))
        .collect();
    f.finish(p);
    if users.is_empty() && teams.is_empty() {
        p.add(key, "names no users and no teams");
    }
    Some((users, teams))
}

fn from_name(p: &mut Problems, key: &str, value: Option<&toml::Value>) -> Option<FromName> {
    let Some(value) = value else {
        p.add(
            key,
            "required: { mode = \"agent_and_company\" | \"company\", company = \"..\" }",
        );
        return None;
    };
    let mut f = Fields::of(p, key, value, "a table { mode, company }")?;
    let mode_key = f.key("mode");
    let mode = f
        .required_str(p, "mode")
        .and_then(|m| choice(p, &mode_key, Some(m), None, FROM_NAME_MODES));
    let company = f.required_str(p, "company");
    f.finish(p);
    Some(FromName {
        mode: mode?,
        company: company?.to_string(),
    })
}

fn routing(p: &mut Problems, key: &str, value: Option<&toml::Value>, known: &Known) -> Routing {
    let Some(mut f) = value.and_then(|v| Fields::of(p, key, v, "a table { auto_assign, .. }"))
    else {
        return Routing::Manual;
    };
    let routing = if f.bool(p, "auto_assign").unwrap_or(false) {
        let assign_key = f.key("assign_to");
        let assign_to = assign_to(p, &assign_key, f.get("assign_to"), known);
        let only_available = f
            .bool(p, "only_available")
            .unwrap_or(defaults::ONLY_AVAILABLE);
        let strategy_key = f.key("strategy");
        let strategy_value = f.str(p, "strategy");
        let strategy = choice(
            p,
            &strategy_key,
            strategy_value,
            Some(Strategy::RoundRobin),
            &[
                ("round_robin", Strategy::RoundRobin),
                ("least_open", Strategy::LeastOpen),
            ],
        )
        .unwrap_or(Strategy::RoundRobin);
        Routing::AutoAssign {
            assign_to,
            only_available,
            strategy,
        }
    } else {
        f.refuse(
            p,
            &["assign_to", "only_available", "strategy"],
            "only used with auto_assign = true",
        );
        Routing::Manual
    };
    f.finish(p);
    routing
}

fn assign_to(p: &mut Problems, key: &str, value: Option<&toml::Value>, known: &Known) -> AssignTo {
    match value {
        None => {
            p.add(key, "required when auto_assign = true: \"contact_owner\" or { users = [..], teams = [..] }");
            AssignTo::ContactOwner
        }
        Some(toml::Value::String(s)) if s == "contact_owner" => AssignTo::ContactOwner,
        Some(toml::Value::String(s)) => {
            p.add(key, format!("unknown value {s:?}; expected \"contact_owner\" or {{ users = [..], teams = [..] }}"));
            AssignTo::ContactOwner
        }
        Some(v) => match members(p, key, v, known) {
            Some((users, teams)) => AssignTo::Members { users, teams },
            None => AssignTo::ContactOwner,
        },
    }
}

fn tickets(p: &mut Problems, key: &str, value: Option<&toml::Value>, known: &Known) -> Tickets {
    let Some(mut f) = value.and_then(|v| Fields::of(p, key, v, "a table { auto_create, .. }"))
    else {
        return Tickets::Off;
    };
    let tickets = if f.bool(p, "auto_create").unwrap_or(false) {
        let pipeline = f.required_str(p, "pipeline").unwrap_or_default();
        let stage = f.required_str(p, "stage").unwrap_or_default();
        let owner_key = f.key("owner");
        let owner = f
            .str(p, "owner")
            .map(|o| user_ref(p, &owner_key, &o.to_lowercase(), known.users));
        Tickets::AutoCreate {
            pipeline: pipeline.to_string(),
            stage: stage.to_string(),
            owner,
        }
    } else {
        f.refuse(
            p,
            &["pipeline", "stage", "owner"],
            "only used with auto_create = true",
        );
        Tickets::Off
    };
    f.finish(p);
    tickets
}

// ---------------------------------------------------------------------------------
// Sections that refer to inboxes

fn smtp(raw: &RawSmtp, inboxes: &[Inbox], p: &mut Problems) -> SmtpConfig {
    let listen = listen_list(p, raw.listen.as_deref());
    let size = count(
        p,
        "smtp.max_message_size",
        raw.max_message_size,
        defaults::MAX_MESSAGE_SIZE,
        limits::MESSAGE_SIZE,
    );
    let config = SmtpConfig {
        listen,
        max_message_size: u64::try_from(size).unwrap_or_default(),
        max_recipients: count(
            p,
            "smtp.max_recipients",
            raw.max_recipients,
            defaults::MAX_RECIPIENTS,
            limits::RECIPIENTS,
        ),
        max_line_length: count(
            p,
            "smtp.max_line_length",
            raw.max_line_length,
            defaults::MAX_LINE_LENGTH,
            limits::LINE_LENGTH,
        ),
        idle_timeout: seconds(
            p,
            "smtp.idle_timeout",
            raw.idle_timeout,
            defaults::IDLE_TIMEOUT_SECS,
            limits::SECONDS,
        ),
        session_timeout: seconds(
            p,
            "smtp.session_timeout",
            raw.session_timeout,
            defaults::SESSION_TIMEOUT_SECS,
            limits::SECONDS,
        ),
        max_connections: count(
            p,
            "smtp.max_connections",
            raw.max_connections,
            defaults::MAX_CONNECTIONS,
            limits::CONNECTIONS,
        ),
        max_connections_per_ip: count(
            p,
            "smtp.max_connections_per_ip",
            raw.max_connections_per_ip,
            defaults::MAX_CONNECTIONS_PER_IP,
            limits::CONNECTIONS,
        ),
        shutdown_grace: seconds(
            p,
            "smtp.shutdown_grace",
            raw.shutdown_grace,
            defaults::SHUTDOWN_GRACE_SECS,
            limits::SHUTDOWN_GRACE_SECS,
        ),
        tls: tls_files(p, raw),
        postmaster_inbox: postmaster_inbox(p, raw.postmaster_inbox.as_deref(), inboxes),
    };
    if config.max_connections_per_ip > config.max_connections {
        p.add(
            "smtp.max_connections_per_ip",
            format!(
                "must not exceed smtp.max_connections ({})",
                config.max_connections
            ),
        );
    }
    config
}

fn listen_list(p: &mut Problems, raw: Option<&[String]>) -> Vec<SocketAddr> {
    let defaults: Vec<String> = defaults::SMTP_LISTEN
        .iter()
        .map(|s| s.to_string())
        .collect();
    let raw = raw.unwrap_or(&defaults);
    if raw.is_empty() {
        p.add("smtp.listen", "must list at least one ip:port address");
    }
    let mut listen = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let key = format!("smtp.listen[{i}]");
        let Some(addr) = socket_addr(p, &key, text) else {
            continue;
        };
        if listen.contains(&addr) && addr.port() != 0 {
            p.add(&key, format!("{addr} is listed twice"));
        }
        listen.push(addr);
    }
    listen
}

fn tls_files(p: &mut Problems, raw: &RawSmtp) -> Option<TlsFiles> {
    let cert = raw.tls_cert.as_deref();
    let key = raw.tls_key.as_deref();
    for (name, value) in [("smtp.tls_cert", cert), ("smtp.tls_key", key)] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            p.add(name, "must not be empty");
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }),
        (Some(_), None) => {
            p.add("smtp.tls_key", "required when smtp.tls_cert is set");
            None
        }
        (None, Some(_)) => {
            p.add("smtp.tls_cert", "required when smtp.tls_key is set");
            None
        }
        (None, None) => None,
    }
}

fn postmaster_inbox(p: &mut Problems, raw: Option<&str>, inboxes: &[Inbox]) -> String {
    let Some(name) = raw else {
        return inboxes.first().map(|i| i.name.clone()).unwrap_or_default();
    };
    match inboxes.iter().find(|i| i.name.eq_ignore_ascii_case(name)) {
        Some(inbox) => inbox.name.clone(),
        None => {
            p.add(
                "smtp.postmaster_inbox",
                format!("{name:?} is not a configured inbox"),
            );
            name.to_string()
        }
    }
}

fn api(raw: &RawApi, smtp: &SmtpConfig, p: &mut Problems) -> ApiConfig {
    let text = raw.listen.as_deref().unwrap_or(defaults::API_LISTEN);
    let fallback = SocketAddr::from(([127, 0, 0, 1], 8025));
    let listen = socket_addr(p, "api.listen", text).unwrap_or(fallback);
    if listen.port() != 0 {
        if let Some(i) = smtp.listen.iter().position(|a| *a == listen) {
            p.add("api.listen", format!("{listen} is also smtp.listen[{i}]"));
        }
    }
    ApiConfig { listen }
}

fn outbound(raw: &RawOutbound, p: &mut Problems) -> OutboundConfig {
    OutboundConfig {
        relay: raw
            .relay
            .as_ref()
            .map(|r| remote(p, "outbound.relay", r, Protocol::Smtp)),
        lifetime: seconds(
            p,
            "outbound.lifetime",
            raw.lifetime,
            defaults::OUTBOUND_LIFETIME_SECS,
            limits::OUTBOUND_LIFETIME_SECS,
        ),
        nameservers: nameservers(
            p,
            "outbound.nameservers",
            raw.nameservers.as_deref().unwrap_or_default(),
        ),
        mx_port: u16::try_from(int_in(p, "outbound.mx_port", raw.mx_port, 25, limits::PORT))
            .unwrap_or(25),
        tls_ca_file: raw.tls_ca_file.as_ref().map(PathBuf::from),
        concurrency: count(
            p,
            "outbound.concurrency",
            raw.concurrency,
            defaults::OUTBOUND_CONCURRENCY,
            limits::OUTBOUND_CONCURRENCY,
        ),
        max_recipients: count(
            p,
            "outbound.max_recipients",
            raw.max_recipients,
            defaults::MAX_RECIPIENTS,
            limits::RECIPIENTS,
        ),
        dkim: raw.dkim.as_ref().and_then(|d| dkim(p, d)),
    }
}

fn classification(raw: &RawClassification, p: &mut Problems) -> ClassificationConfig {
    let default = ClassificationConfig::default();
    let role_senders = match &raw.role_senders {
        None => default.role_senders,
        Some(list) => role_senders(p, list),
    };
    let spam_threshold = raw.spam_threshold.unwrap_or(defaults::SPAM_THRESHOLD);
    if !(spam_threshold.is_finite() && spam_threshold > 0.0) {
        p.add(
            "classification.spam_threshold",
            format!("must be a number above 0, got {spam_threshold}"),
        );
    }
    ClassificationConfig {
        role_senders,
        check_authentication: raw.check_authentication.unwrap_or(true),
        nameservers: nameservers(
            p,
            "classification.nameservers",
            raw.nameservers.as_deref().unwrap_or_default(),
        ),
        spam_threshold,
        learn_from_marks: raw.learn_from_marks.unwrap_or(true),
        spamd: raw.spamd.as_ref().and_then(|s| spamd(p, s)),
    }
}

fn role_senders(p: &mut Problems, list: &[String]) -> Vec<String> {
    let mut parts = Vec::new();
    for (i, local) in list.iter().enumerate() {
        let local = local.trim().to_ascii_lowercase();
        match check_local_part(&local) {
            Ok(()) => parts.push(local),
            Err(why) => p.add(&format!("classification.role_senders[{i}]"), why),
        }
    }
    parts
}

fn spamd(p: &mut Problems, raw: &RawSpamd) -> Option<SpamdConfig> {
    let key = "classification.spamd.address";
    let text = required(p, key, raw.address.as_deref());
    let address = if text.is_empty() {
        None
    } else {
        socket_addr(p, key, &text)
    };
    let timeout = seconds(
        p,
        "classification.spamd.timeout",
        raw.timeout,
        defaults::SPAMD_TIMEOUT_SECS,
        limits::SPAMD_TIMEOUT_SECS,
    );
    address.map(|address| SpamdConfig { address, timeout })
}

/// `"ip"` (port 53) or `"ip:port"`.
fn nameservers(p: &mut Problems, key: &str, raw: &[String]) -> Vec<SocketAddr> {
    let mut list = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        if let Ok(ip) = text.parse::<IpAddr>() {
            list.push(SocketAddr::new(ip, 53));
        } else if let Some(addr) = socket_addr(p, &format!("{key}[{i}]"), text) {
            list.push(addr);
        }
    }
    list
}

fn dkim(p: &mut Problems, raw: &RawDkim) -> Option<DkimConfig> {
    let domain = required(p, "outbound.dkim.domain", raw.domain.as_deref()).to_ascii_lowercase();
    if !domain.is_empty() {
        if let Err(why) = check_dns_name(&domain) {
            p.add("outbound.dkim.domain", why);
        }
    }
    let selector = required(p, "outbound.dkim.selector", raw.selector.as_deref());
    if !selector.is_empty() && check_dns_name(&selector).is_err() {
        p.add(
            "outbound.dkim.selector",
            "must be a DNS label (letters, digits, '-', '.')",
        );
    }
    let key_file = required(p, "outbound.dkim.key_file", raw.key_file.as_deref());
    (!domain.is_empty() && !selector.is_empty() && !key_file.is_empty()).then(|| DkimConfig {
        domain,
        selector,
        key_file: PathBuf::from(key_file),
    })
}

// ---------------------------------------------------------------------------------
// Cross-checks (SPEC A3, A6)

fn cross_check(sites: &[Site], users: &[User], p: &mut Problems) {
    let mut by_address: HashMap<&str, &Site> = HashMap::new();
    let mut by_from_name: HashMap<(&str, String), &Site> = HashMap::new();
    for site in sites {
        if !site.address.is_empty() {
            check_address(p, site, &mut by_address, users);
        }
        if let (true, Some(from)) = (site.fallback, &site.from_name) {
            let id = (mode_name(from.mode), from.company.to_lowercase());
            match by_from_name.get(&id) {
                Some(first) => p.add(
                    &join(&site.channel_key, "from_name"),
                    format!(
                        "from-name {:?} (mode {}) is already used by the fallback channel {} (inbox {:?}); fallback addresses need distinct from-names",
                        from.company, mode_name(from.mode), first.channel_key, first.inbox
                    ),
                ),
                None => {
                    by_from_name.insert(id, site);
                }
            }
        }
    }
}

fn check_address<'a>(
    p: &mut Problems,
    site: &'a Site,
    seen: &mut HashMap<&'a str, &'a Site>,
    users: &[User],
) {
    if let Some(first) = seen.get(site.address.as_str()) {
        p.add(
            &site.address_key,
            format!(
                "{} is already the address of {} (inbox {:?}); an address belongs to one channel only",
                site.address, first.channel_key, first.inbox
            ),
        );
    } else {
        seen.insert(&site.address, site);
    }
    if let Some(i) = users.iter().position(|u| u.email == site.address) {
        p.add(
            &site.address_key,
            format!(
                "{} is the personal address of users[{i}]; it cannot also be a channel address",
                site.address
            ),
        );
    }
}

fn mode_name(mode: FromNameMode) -> &'static str {
    FROM_NAME_MODES
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or("?", |(name, _)| name)
}

// ---------------------------------------------------------------------------------
// Leaf checks

fn required(p: &mut Problems, key: &str, value: Option<&str>) -> String {
    match value {
        None => {
            p.add(key, "required");
            String::new()
        }
        Some(v) if v.trim().is_empty() => {
            p.add(key, "must not be empty");
            String::new()
        }
        Some(v) => v.to_string(),
    }
}

/// Picks the option named by `value`; reports a missing or unknown name.
fn choice<T: Copy>(
    p: &mut Problems,
    key: &str,
    value: Option<&str>,
    default: Option<T>,
    options: &[(&str, T)],
) -> Option<T> {
    let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
    let expected = names.join(" or ");
    let Some(value) = value else {
        if default.is_none() {
            p.add(key, format!("required: {expected}"));
        }
        return default;
    };
    let found = options.iter().find(|(n, _)| *n == value).map(|(_, v)| *v);
    if found.is_none() {
        p.add(key, format!("unknown value {value:?}; expected {expected}"));
    }
    found
}

fn int_in(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> i64 {
    match value {
        None => default,
        Some(v) if range.contains(&v) => v,
        Some(v) => {
            p.add(
                key,
                format!(
                    "must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

fn count(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> usize {
    usize::try_from(int_in(p, key, value, default, range)).unwrap_or_default()
}

fn seconds(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> Duration {
    Duration::from_secs(u64::try_from(int_in(p, key, value, default, range)).unwrap_or_default())
}

fn socket_addr(p: &mut Problems, key: &str, text: &str) -> Option<SocketAddr> {
    let parsed = text.parse::<SocketAddr>().ok();
    if parsed.is_none() {
        p.add(
            key,
            format!("{text:?} is not an ip:port address (e.g. \"127.0.0.1:2525\", \"[::1]:2525\")"),
        );
    }
    parsed
}

/// Validates and lower-cases a required address (reported as `key`).
fn email(p: &mut Problems, key: &str, value: Option<&str>) -> String {
    let address = required(p, key, value).to_ascii_lowercase();
    if !address.is_empty() {
        if let Err(why) = check_email(&address) {
            p.add(key, why);
        }
    }
    address
}

fn check_email(address: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("{address:?} is not a valid email address: {why}"));
    let Some((local, domain)) = address.rsplit_once('@') else {
        return invalid("no '@'");
    };
    if let Err(why) = check_local_part(local) {
        return invalid(&why);
    }
    match check_dns_name(domain) {
        Ok(()) => Ok(()),
        Err(why) => invalid(&format!("domain {why}")),
    }
}

/// Dot-atom local parts only (RFC 5322 §3.4.1); quoted local parts are not supported.
fn check_local_part(local: &str) -> Result<(), String> {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if local.is_empty() || local.len() > 64 {
        return Err("local part must have 1 to 64 characters".into());
    }
    if let Some(c) = local
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !SPECIALS.contains(*c))
    {
        return Err(format!("character {c:?} is not allowed in the local part"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("local part has a misplaced '.'".into());
    }
    Ok(())
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    name.split('.').try_for_each(check_dns_label)
}

fn check_dns_label(label: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&label.len())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{label:?} is not a DNS label (1-63 letters, digits or '-', not at either end)"
        ))
    }
}

fn user_ref(p: &mut Problems, key: &str, email: &str, users: &[User]) -> String {
    let email = email.to_ascii_lowercase();
    if !users.iter().any(|u| u.email == email) {
        p.add(key, format!("{email} is not a configured user"));
    }
    email
}

fn team_ref(p: &mut Problems, key: &str, name: &str, teams: &[Team]) -> String {
    match teams.iter().find(|t| t.name.eq_ignore_ascii_case(name)) {
        Some(team) => team.name.clone(),
        None => {
            p.add(key, format!("{name:?} is not a configured team"));
            name.to_string()
        }
    }
}
