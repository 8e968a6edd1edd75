//! Tests of config parsing: every rule's exact key path and message, defaults, the
//! shipped file and the contract example of DESIGN.md.

use super::*;

/// A small valid file that the tests below extend or break.
const BASE: &str = r#"
[account]
subdomain = "demo"
company_name = "Demo Inc"

[[users]]
email = "alice@demo.example"
name = "Alice Smith"

[[users]]
email = "bob@demo.example"
name = "Bob Jansen"

[[teams]]
name = "support"
members = ["alice@demo.example"]

[[inboxes]]
name = "Support"

  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = { mode = "company", company = "Demo Support" }
"#;

/// Every problem of `text`, as `check-config` prints them.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

fn keys(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| p.key).collect(),
    }
}

fn valid(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(problems) => panic!("unexpected problems: {problems:#?}"),
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

/// A second inbox holding one channel written as inline TOML lines.
fn second_inbox(channel: &str) -> String {
    with(&format!(
        "[[inboxes]]\nname = \"Sales\"\n[[inboxes.channels]]\n{channel}\n"
    ))
}

const IMAP: &str = r#"kind = "imap"
address = "help@demo.example"
from_name = { mode = "company", company = "Demo Help" }
imap = { host = "imap.demo.example", username = "help@demo.example", password_file = "/etc/help.pw" }"#;

#[test]
fn shipped_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/inboxgate.toml");
    let config = match load(&path) {
        Ok(config) => config,
        Err(problems) => panic!("shipped config has problems: {problems:#?}"),
    };
    assert_eq!(config.server.hostname, "mx.demo.example");
    assert_eq!(config.users.len(), 3);
    assert_eq!(
        config.teams[0].members,
        ["alice@demo.example", "bob@demo.example"]
    );
    let addresses: Vec<&str> = config.channels().map(|(_, c)| c.address.as_str()).collect();
    assert_eq!(
        addresses,
        ["support@demo.hs-inbox.com", "sales@demo.hs-inbox.com"]
    );
    assert_eq!(config.inboxes[0].access, Access::Everyone);
    assert_eq!(
        config.inboxes[1].access,
        Access::Specific {
            users: vec!["carol@demo.example".into()],
            teams: vec!["support".into()],
        }
    );
    assert_eq!(config.smtp.postmaster_inbox, "Support");
    assert_eq!(
        config.inboxes[0].channels[0].signature.as_deref(),
        Some("-- \n{{full_name}}\nDemo Inc support")
    );
}

#[test]
fn missing_file_is_one_problem() {
    let problems = load(Path::new("/nonexistent/inboxgate.toml")).expect_err("no file");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "(file)");
    assert!(problems[0]
        .message
        .starts_with("cannot read /nonexistent/inboxgate.toml"));
}

#[test]
fn defaults_fill_every_optional_key() {
    let c = valid(BASE);
    assert_eq!(c.server.hostname, "localhost");
    assert_eq!(c.server.data_dir, PathBuf::from("./data"));
    assert!(c.server.data_dir.is_relative());
    assert_eq!(c.smtp.listen, ["127.0.0.1:2525".parse().expect("addr")]);
    assert_eq!(c.smtp.max_message_size, 26_214_400);
    assert_eq!(c.smtp.max_recipients, 100);
    assert_eq!(c.smtp.max_line_length, 2048);
    assert_eq!(c.smtp.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.smtp.session_timeout, Duration::from_secs(1800));
    assert_eq!(c.smtp.max_connections, 500);
    assert_eq!(c.smtp.max_connections_per_ip, 50);
    assert_eq!(c.smtp.shutdown_grace, Duration::from_secs(10));
    assert!(c.smtp.tls.is_none());
    assert_eq!(c.smtp.postmaster_inbox, "Support");
    assert_eq!(c.account.fallback_domain, "hs-inbox.com");
    let alice = &c.users[0];
    assert!(alice.paid_seat && !alice.super_admin && alice.available);
    assert_eq!(c.inboxes[0].access, Access::Everyone);
    let channel = &c.inboxes[0].channels[0];
    assert_eq!(channel.address, "support@demo.hs-inbox.com");
    assert!(matches!(channel.kind, ChannelKind::Fallback));
    assert_eq!(channel.status, ChannelStatus::On);
    assert!(channel.log_forwarded_to_original_sender);
    assert_eq!(channel.routing, Routing::Manual);
    assert_eq!(channel.tickets, Tickets::Off);
    assert_eq!(channel.signature, None);
    assert_eq!(c.api.listen, "127.0.0.1:8025".parse().expect("addr"));
    assert!(c.outbound.relay.is_none());
}

#[test]
fn imap_defaults_depend_on_tls() {
    let c = valid(&second_inbox(IMAP));
    let (_, channel) = c.channels().nth(1).expect("imap channel");
    let ChannelKind::Imap(imap) = &channel.kind else {
        panic!("not imap: {channel:?}");
    };
    assert_eq!(channel.address, "help@demo.example");
    assert_eq!(imap.folders, ["INBOX"]);
    assert_eq!(imap.poll_interval, Duration::from_secs(60));
    assert_eq!(imap.timeout, Duration::from_secs(120));
    assert_eq!(
        (imap.server.tls, imap.server.port),
        (TlsMode::Implicit, 993)
    );
    assert!(imap.smtp.is_none());

    let starttls = IMAP.replace(
        "host = \"imap.demo.example\"",
        "host = \"imap.demo.example\", tls = \"starttls\"",
    );
    let smtp = "smtp = { host = \"smtp.demo.example\" }";
    let c = valid(&second_inbox(&format!("{starttls}\n{smtp}")));
    let (_, channel) = c.channels().nth(1).expect("imap channel");
    let ChannelKind::Imap(imap) = &channel.kind else {
        panic!("not imap: {channel:?}");
    };
    assert_eq!(
        (imap.server.tls, imap.server.port),
        (TlsMode::StartTls, 143)
    );
    let smtp = imap.smtp.as_ref().expect("smtp server");
    assert_eq!((smtp.tls, smtp.port), (TlsMode::StartTls, 587));
}

/// DESIGN.md's "Config keys" example, both channel forms, verbatim in substance.
const DESIGN_EXAMPLE: &str = r#"
[server]
hostname = "mx.example.test"
data_dir = "./data"

[smtp]
listen = ["127.0.0.1:2525"]
max_message_size = 26214400
tls_cert = "cert.pem"
tls_key = "key.pem"

[account]
subdomain = "demo"
fallback_domain = "hs-inbox.com"
company_name = "Demo Inc"

[[users]]
email = "alice@demo.example"
name = "Alice Smith"
paid_seat = true
super_admin = false

[[teams]]
name = "support"
members = ["alice@demo.example"]

[[inboxes]]
name = "Support"
access = "everyone"

  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  status = "on"
  from_name = { mode = "agent_and_company", company = "Demo Support" }
  log_forwarded_to_original_sender = true
  signature = "-- \n{{full_name}}\nDemo Inc support"
  routing = { auto_assign = true, assign_to = { users = ["alice@demo.example"], teams = ["support"] }, only_available = true }
  tickets = { auto_create = true, pipeline = "Support", stage = "New" }

  [[inboxes.channels]]
  kind = "imap"
  address = "help@demo.example"
  status = "on"
  from_name = { mode = "company", company = "Demo Help" }
  folders = ["INBOX"]
  poll_interval = 60
  imap = { host = "imap.demo.example", port = 993, tls = "implicit", username = "help@demo.example", password_file = "/etc/inboxgate/help.pw" }
  smtp = { host = "smtp.demo.example", port = 587, tls = "starttls", username = "help@demo.example", password_file = "/etc/inboxgate/help.pw" }

[api]
listen = "127.0.0.1:8025"

[outbound]
relay = { host = "smtp.relay.example", port = 587, tls = "starttls", username = "relay", password_file = "relay.pw" }
"#;

#[test]
fn design_example_is_accepted() {
    let c = valid(DESIGN_EXAMPLE);
    let fallback = &c.inboxes[0].channels[0];
    assert_eq!(
        fallback.routing,
        Routing::AutoAssign {
            assign_to: AssignTo::Members {
                users: vec!["alice@demo.example".into()],
                teams: vec!["support".into()],
            },
            only_available: true,
            strategy: Strategy::RoundRobin,
        }
    );
    assert_eq!(
        fallback.tickets,
        Tickets::AutoCreate {
            pipeline: "Support".into(),
            stage: "New".into(),
            owner: None,
        }
    );
    assert_eq!(fallback.from_name.mode, FromNameMode::AgentAndCompany);
    let ChannelKind::Imap(imap) = &c.inboxes[0].channels[1].kind else {
        panic!("second channel is not imap");
    };
    assert_eq!(imap.server.host, "imap.demo.example");
    assert_eq!(
        imap.server.password_file.as_deref(),
        Some(Path::new("/etc/inboxgate/help.pw"))
    );
    let relay = c.outbound.relay.as_ref().expect("relay");
    assert_eq!(
        (relay.host.as_str(), relay.port),
        ("smtp.relay.example", 587)
    );
    let tls = c.smtp.tls.as_ref().expect("tls files");
    assert_eq!(tls.cert, PathBuf::from("cert.pem"));
}

#[test]
fn syntax_error_is_one_problem_with_line_and_column() {
    let problems = problems("[server]\nhostname = \"a\"\nport = = 3\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("(syntax): line 3, column 8: "),
        "{problems:?}"
    );
}

#[test]
fn unknown_keys_are_reported_everywhere() {
    let text = with(
        r#"[colour]
x = 1
"#,
    )
    .replace("[account]\n", "[account]\nplan = \"pro\"\n")
    .replace(
        "name = \"Bob Jansen\"",
        "name = \"Bob Jansen\"\nnick = \"b\"",
    )
    .replace(
        "company = \"Demo Support\" }",
        "company = \"Demo Support\", style = 1 }\n  routing = { auto_assign = false, mode = 2 }",
    );
    let text = format!(
        "{text}\n[outbound]\nrelay = {{ host = \"127.0.0.1\", tls = \"none\", retry = 3 }}\n"
    );
    let problems = problems(&text);
    assert!(
        problems.iter().all(|p| p.ends_with(": unknown key")),
        "{problems:?}"
    );
    let mut got = keys(&text);
    got.sort();
    assert_eq!(
        got,
        [
            "account.plan",
            "colour",
            "inboxes[0].channels[0].from_name.style",
            "inboxes[0].channels[0].routing.mode",
            "outbound.relay.retry",
            "users[1].nick",
        ]
    );
}

#[test]
fn wrong_types_are_all_reported_with_paths_and_other_checks_still_run() {
    // Type errors come in table-key order (the TOML table is sorted), then the rest.
    let text = with("[smtp]\nmax_message_size = \"big\"\nmax_recipients = 0\n")
        .replace("subdomain = \"demo\"", "subdomain = 5")
        .replace(
            "name = \"Bob Jansen\"",
            "name = \"Bob Jansen\"\npaid_seat = \"yes\"",
        )
        .replace("kind = \"fallback\"", "kind = \"fallback\"\n  status = 1");
    assert_eq!(
        problems(&text),
        [
            "account.subdomain: wrong type: integer `5`, expected a string",
            "inboxes[0].channels[0].status: wrong type: integer `1`, expected a string",
            "smtp.max_message_size: wrong type: string \"big\", expected an integer",
            "users[1].paid_seat: wrong type: string \"yes\", expected a boolean",
            "smtp.max_recipients: must be between 1 and 10000, got 0",
        ]
    );
}

#[test]
fn a_table_where_an_array_belongs_is_one_problem() {
    let text = BASE.replace("[[teams]]", "[teams]");
    assert_eq!(
        problems(&text),
        ["teams: wrong type: map, expected an array"]
    );
}

#[test]
fn listen_addresses_must_be_ip_and_port() {
    let text = with(
        "[smtp]\nlisten = [\"127.0.0.1\", \"localhost:25\", \"[::1]:25\", \"[::1]:25\"]\n[api]\nlisten = \"8025\"\n",
    );
    assert_eq!(
        keys(&text),
        [
            "smtp.listen[0]",
            "smtp.listen[1]",
            "smtp.listen[3]",
            "api.listen"
        ]
    );
    assert_eq!(
        problems(&text)[0],
        "smtp.listen[0]: \"127.0.0.1\" is not an ip:port address (e.g. \"127.0.0.1:2525\", \"[::1]:2525\")"
    );
    assert_eq!(
        problems(&text)[2],
        "smtp.listen[3]: [::1]:25 is listed twice"
    );
    let empty = with("[smtp]\nlisten = []\n");
    assert_eq!(
        problems(&empty),
        ["smtp.listen: must list at least one ip:port address"]
    );
    let clash = with("[api]\nlisten = \"127.0.0.1:2525\"\n");
    assert_eq!(
        problems(&clash),
        ["api.listen: 127.0.0.1:2525 is also smtp.listen[0]"]
    );
    // Port 0 (pick a free port) is what integration tests use.
    valid(&with(
        "[smtp]\nlisten = [\"127.0.0.1:0\"]\n[api]\nlisten = \"127.0.0.1:0\"\n",
    ));
}

#[test]
fn zero_and_absurd_limits_are_refused() {
    let text = with(
        "[smtp]
max_message_size = 0
max_recipients = 1000000
max_line_length = 100
idle_timeout = -1
session_timeout = 0
max_connections = 10
max_connections_per_ip = 20
shutdown_grace = 99999
",
    );
    assert_eq!(
        problems(&text),
        [
            "smtp.max_message_size: must be between 1024 and 1073741824, got 0",
            "smtp.max_recipients: must be between 1 and 10000, got 1000000",
            "smtp.max_line_length: must be between 512 and 1048576, got 100",
            "smtp.idle_timeout: must be between 1 and 86400, got -1",
            "smtp.session_timeout: must be between 1 and 86400, got 0",
            "smtp.shutdown_grace: must be between 0 and 3600, got 99999",
            "smtp.max_connections_per_ip: must not exceed smtp.max_connections (10)",
        ]
    );
    let imap = IMAP.replace("port", "x") + "\npoll_interval = 0\nimap_timeout = 0";
    let imap = imap.replace(
        "host = \"imap.demo.example\"",
        "host = \"imap.demo.example\", port = 70000",
    );
    assert_eq!(
        problems(&second_inbox(&imap)),
        [
            "inboxes[1].channels[0].imap.port: must be between 1 and 65535, got 70000",
            "inboxes[1].channels[0].poll_interval: must be between 1 and 86400, got 0",
            "inboxes[1].channels[0].imap_timeout: must be between 1 and 3600, got 0",
        ]
    );
}

#[test]
fn unknown_enum_strings_are_refused() {
    let text = BASE
        .replace(
            "kind = \"fallback\"",
            "kind = \"fallback\"\n  status = \"paused\"",
        )
        .replace("mode = \"company\"", "mode = \"agent\"");
    let text = format!("{text}\n[[inboxes]]\nname = \"Sales\"\n[[inboxes.channels]]\nkind = \"pop3\"\nfrom_name = {{ mode = \"company\", company = \"S\" }}\n");
    assert_eq!(
        problems(&text),
        [
            "inboxes[0].channels[0].from_name.mode: unknown value \"agent\"; expected \"agent_and_company\" or \"company\"",
            "inboxes[0].channels[0].status: unknown value \"paused\"; expected \"on\" or \"off\"",
            "inboxes[1].channels[0].kind: unknown value \"pop3\"; expected \"fallback\" or \"imap\"",
        ]
    );
    let tls = IMAP.replace(
        "host = \"imap.demo.example\"",
        "host = \"imap.demo.example\", tls = \"ssl\"",
    );
    assert_eq!(
        problems(&second_inbox(&tls)),
        ["inboxes[1].channels[0].imap.tls: unknown value \"ssl\"; expected \"implicit\" or \"starttls\" or \"none\""]
    );
    let off = BASE.replace(
        "kind = \"fallback\"",
        "kind = \"fallback\"\n  status = \"off\"",
    );
    assert_eq!(
        valid(&off).inboxes[0].channels[0].status,
        ChannelStatus::Off
    );
}

#[test]
fn plain_text_connections_only_to_loopback() {
    let relay = |host: &str| {
        with(&format!(
            "[outbound]\nrelay = {{ host = \"{host}\", tls = \"none\" }}\n"
        ))
    };
    assert_eq!(
        problems(&relay("smtp.relay.example")),
        ["outbound.relay.tls: \"none\" is only allowed for loopback hosts (localhost, 127.0.0.1, ::1)"]
    );
    assert_eq!(keys(&relay("10.0.0.1")), ["outbound.relay.tls"]);
    for host in ["127.0.0.1", "localhost", "::1"] {
        let c = valid(&relay(host));
        let relay = c.outbound.relay.expect("relay");
        assert_eq!((relay.tls, relay.port), (TlsMode::None, 25), "{host}");
    }
}

#[test]
fn invalid_email_addresses_are_refused() {
    let text = BASE
        .replace("email = \"alice@demo.example\"", "email = \"alice\"")
        .replace(
            "email = \"bob@demo.example\"",
            "email = \"bob jansen@demo.example\"",
        );
    let text = text.replace(
        "members = [\"alice@demo.example\"]",
        "members = [\"alice\"]",
    );
    assert_eq!(
        problems(&text),
        [
            "users[0].email: \"alice\" is not a valid email address: no '@'",
            "users[1].email: \"bob jansen@demo.example\" is not a valid email address: character ' ' is not allowed in the local part",
        ]
    );
    let imap = IMAP.replace(
        "address = \"help@demo.example\"",
        "address = \"help@-demo.example\"",
    );
    assert_eq!(
        problems(&second_inbox(&imap)),
        ["inboxes[1].channels[0].address: \"help@-demo.example\" is not a valid email address: domain \"-demo\" is not a DNS label (1-63 letters, digits or '-', not at either end)"]
    );
}

#[test]
fn fallback_channel_needs_user_and_no_address() {
    let text = BASE.replace(
        "user = \"support\"",
        "address = \"support@demo.example\"\n  folders = [\"INBOX\"]\n  imap_timeout = 5",
    );
    assert_eq!(
        problems(&text),
        [
            "inboxes[0].channels[0].address: not allowed for kind = \"fallback\": its address is {user}@{subdomain}.{fallback_domain}",
            "inboxes[0].channels[0].folders: only allowed for kind = \"imap\"",
            "inboxes[0].channels[0].imap_timeout: only allowed for kind = \"imap\"",
            "inboxes[0].channels[0].user: required",
        ]
    );
    let plus = BASE.replace("user = \"support\"", "user = \"support+x\"");
    assert_eq!(
        problems(&plus),
        ["inboxes[0].channels[0].user: must not contain '+': it separates subaddresses (SPEC A7)"]
    );
}

#[test]
fn fallback_address_is_lower_case() {
    let text = BASE
        .replace("user = \"support\"", "user = \"Support\"")
        .replace(
            "subdomain = \"demo\"",
            "subdomain = \"Demo\"\nfallback_domain = \"HS-Inbox.test\"",
        );
    assert_eq!(
        valid(&text).inboxes[0].channels[0].address,
        "support@demo.hs-inbox.test"
    );
}

#[test]
fn imap_channel_needs_address_and_imap_table() {
    let text = second_inbox(
        "kind = \"imap\"\nuser = \"help\"\nfrom_name = { mode = \"company\", company = \"H\" }",
    );
    assert_eq!(
        problems(&text),
        [
            "inboxes[1].channels[0].user: only allowed for kind = \"fallback\"",
            "inboxes[1].channels[0].address: required",
            "inboxes[1].channels[0].imap: required for kind = \"imap\": { host = .., username = .., password_file = .. }",
        ]
    );
}

#[test]
fn imap_credentials_must_be_complete() {
    let imap = |table: &str| {
        second_inbox(&format!(
            "{}\nimap = {{ {table} }}",
            &IMAP[..IMAP.find("imap =").unwrap_or(0)]
        ))
    };
    assert_eq!(
        problems(&imap("host = \"imap.demo.example\"")),
        ["inboxes[1].channels[0].imap.username: required: an IMAP mailbox needs a login"]
    );
    assert_eq!(
        problems(&imap("host = \"imap.demo.example\", username = \"help\"")),
        ["inboxes[1].channels[0].imap.password_file: required when username is set"]
    );
    assert_eq!(
        problems(&imap("host = \"imap.demo.example\", password_file = \"p\"")),
        ["inboxes[1].channels[0].imap.username: required when password_file is set"]
    );
    assert!(problems(&imap(
        "host = \"imap.demo.example\", username = \"help\", oauth2_token_command = \"tok\", ca_file = \"/etc/ca.pem\""
    ))
    .is_empty());
    assert_eq!(
        problems(&imap("host = \"imap.demo.example\", username = \"help\", password_file = \"p\", oauth2_token_command = \"tok\"")),
        ["inboxes[1].channels[0].imap.oauth2_token_command: set either password_file or oauth2_token_command, not both"]
    );
    assert_eq!(
        problems(&imap("host = \"imap.demo.example\", username = \"help\", password_file = \"p\", ca_file = \"\"")),
        ["inboxes[1].channels[0].imap.ca_file: must not be empty"]
    );
    assert_eq!(
        problems(&imap(
            "host = \"\", username = \"help\", password_file = \"\""
        )),
        [
            "inboxes[1].channels[0].imap.host: must not be empty",
            "inboxes[1].channels[0].imap.password_file: must not be empty",
        ]
    );
    // A relay may be used without login.
    valid(&with(
        "[outbound]\nrelay = { host = \"smtp.relay.example\" }\n",
    ));
}

#[test]
fn references_must_name_configured_users_and_teams() {
    let text = BASE
        .replace("members = [\"alice@demo.example\"]", "members = [\"alice@demo.example\", \"dave@demo.example\", \"ALICE@demo.example\"]")
        .replace(
            "name = \"Support\"",
            "name = \"Support\"\naccess = { users = [\"Bob@Demo.Example\", \"erin@demo.example\"], teams = [\"sales\"] }",
        )
        .replace(
            "company = \"Demo Support\" }",
            "company = \"Demo Support\" }\n  routing = { auto_assign = true, assign_to = { users = [\"zed@demo.example\"], teams = [\"Support\", \"ops\"] } }",
        );
    assert_eq!(
        problems(&text),
        [
            "teams[0].members[1]: dave@demo.example is not a configured user",
            "teams[0].members[2]: alice@demo.example is listed twice",
            "inboxes[0].access.users[1]: erin@demo.example is not a configured user",
            "inboxes[0].access.teams[0]: \"sales\" is not a configured team",
            "inboxes[0].channels[0].routing.assign_to.users[0]: zed@demo.example is not a configured user",
            "inboxes[0].channels[0].routing.assign_to.teams[1]: \"ops\" is not a configured team",
        ]
    );
}

#[test]
fn access_forms() {
    let text = BASE.replace(
        "name = \"Support\"",
        "name = \"Support\"\naccess = { users = [\"Bob@Demo.Example\"], teams = [\"SUPPORT\"] }",
    );
    assert_eq!(
        valid(&text).inboxes[0].access,
        Access::Specific {
            users: vec!["bob@demo.example".into()],
            teams: vec!["support".into()],
        }
    );
    let nobody = BASE.replace(
        "name = \"Support\"",
        "name = \"Support\"\naccess = { users = [] }",
    );
    assert_eq!(
        problems(&nobody),
        ["inboxes[0].access: names no users and no teams"]
    );
    let word = BASE.replace("name = \"Support\"", "name = \"Support\"\naccess = \"all\"");
    assert_eq!(
        problems(&word),
        ["inboxes[0].access: unknown access \"all\"; expected \"everyone\" or { users = [..], teams = [..] }"]
    );
    let number = BASE.replace("name = \"Support\"", "name = \"Support\"\naccess = 3");
    assert_eq!(
        problems(&number),
        ["inboxes[0].access: expected \"everyone\" or a table { users, teams }, found integer"]
    );
}

#[test]
fn duplicates_of_users_teams_and_inboxes() {
    let text = with(
        r#"[[users]]
email = "ALICE@demo.example"
name = "Alice Again"

[[teams]]
name = "Support"

[[inboxes]]
name = "support"
"#,
    );
    assert_eq!(
        problems(&text),
        [
            "users[2].email: alice@demo.example is already the address of users[0]",
            "teams[1].name: team \"Support\" is already defined by teams[0]",
            "inboxes[1].name: inbox \"support\" is already defined by inboxes[0]",
            "inboxes[1].channels: an inbox needs at least one [[inboxes.channels]]",
        ]
    );
}

#[test]
fn a_file_without_inboxes_or_account_is_refused() {
    assert_eq!(
        problems(""),
        [
            "account.subdomain: required",
            "account.company_name: required",
            "inboxes: at least one [[inboxes]] is required",
        ]
    );
}

#[test]
fn tls_files_come_in_pairs() {
    assert_eq!(
        problems(&with("[smtp]\ntls_cert = \"cert.pem\"\n")),
        ["smtp.tls_key: required when smtp.tls_cert is set"]
    );
    assert_eq!(
        problems(&with("[smtp]\ntls_key = \"key.pem\"\n")),
        ["smtp.tls_cert: required when smtp.tls_key is set"]
    );
}

#[test]
fn postmaster_inbox_must_exist() {
    assert_eq!(
        problems(&with("[smtp]\npostmaster_inbox = \"Billing\"\n")),
        ["smtp.postmaster_inbox: \"Billing\" is not a configured inbox"]
    );
    let c = valid(&second_inbox(IMAP).replace(
        "[account]",
        "[smtp]\npostmaster_inbox = \"SALES\"\n\n[account]",
    ));
    assert_eq!(c.smtp.postmaster_inbox, "Sales");
}

#[test]
fn names_must_be_dns_names() {
    let text = BASE
        .replace("[account]", "[server]\nhostname = \"\"\n\n[account]")
        .replace(
            "subdomain = \"demo\"",
            "subdomain = \"de.mo\"\nfallback_domain = \"hs_inbox.com\"",
        );
    assert_eq!(
        problems(&text),
        [
            "server.hostname: must not be empty",
            "account.subdomain: \"de.mo\" is not a DNS label (1-63 letters, digits or '-', not at either end)",
            "account.fallback_domain: \"hs_inbox\" is not a DNS label (1-63 letters, digits or '-', not at either end)",
        ]
    );
}

#[test]
fn a_channel_address_belongs_to_one_channel_only() {
    let text = second_inbox(IMAP)
        + &format!(
            "\n[[inboxes]]\nname = \"Help\"\n[[inboxes.channels]]\n{}\n",
            IMAP.replace("help@", "HELP@")
        );
    assert_eq!(
        problems(&text),
        ["inboxes[2].channels[0].address: help@demo.example is already the address of inboxes[1].channels[0] (inbox \"Sales\"); an address belongs to one channel only"]
    );
    let twice = second_inbox("kind = \"fallback\"\nuser = \"SUPPORT\"\nfrom_name = { mode = \"company\", company = \"Other\" }");
    assert_eq!(
        problems(&twice),
        ["inboxes[1].channels[0].user: support@demo.hs-inbox.com is already the address of inboxes[0].channels[0] (inbox \"Support\"); an address belongs to one channel only"]
    );
}

#[test]
fn a_personal_address_cannot_be_a_channel_address() {
    let text = second_inbox(&IMAP.replace(
        "address = \"help@demo.example\"",
        "address = \"Bob@demo.example\"",
    ));
    assert_eq!(
        problems(&text),
        ["inboxes[1].channels[0].address: bob@demo.example is the personal address of users[1]; it cannot also be a channel address"]
    );
    let user = BASE.replace(
        "email = \"bob@demo.example\"",
        "email = \"support@demo.hs-inbox.com\"",
    );
    assert_eq!(keys(&user), ["inboxes[0].channels[0].user"]);
}

#[test]
fn fallback_channels_need_distinct_from_names() {
    let channel = |mode: &str, company: &str, kind: &str| {
        let other = if kind == "imap" {
            IMAP.replace(
                "from_name = { mode = \"company\", company = \"Demo Help\" }",
                "",
            )
        } else {
            "kind = \"fallback\"\nuser = \"sales\"".to_string()
        };
        second_inbox(&format!(
            "{other}\nfrom_name = {{ mode = \"{mode}\", company = \"{company}\" }}"
        ))
    };
    assert_eq!(
        problems(&channel("company", "DEMO support", "fallback")),
        ["inboxes[1].channels[0].from_name: from-name \"DEMO support\" (mode company) is already used by the fallback channel inboxes[0].channels[0] (inbox \"Support\"); fallback addresses need distinct from-names"]
    );
    valid(&channel("agent_and_company", "Demo Support", "fallback"));
    valid(&channel("company", "Demo Sales", "fallback"));
    // A team mailbox may share the name: A6 concerns fallback addresses.
    valid(&channel("company", "Demo Support", "imap"));
}

#[test]
fn from_name_is_required_and_complete() {
    let text = BASE.replace(
        "from_name = { mode = \"company\", company = \"Demo Support\" }",
        "",
    );
    assert_eq!(
        problems(&text),
        ["inboxes[0].channels[0].from_name: required: { mode = \"agent_and_company\" | \"company\", company = \"..\" }"]
    );
    let partial = BASE.replace(
        "mode = \"company\", company = \"Demo Support\"",
        "company = \" \"",
    );
    assert_eq!(
        problems(&partial),
        [
            "inboxes[0].channels[0].from_name.mode: required",
            "inboxes[0].channels[0].from_name.company: must not be empty",
        ]
    );
}

#[test]
fn routing_forms() {
    let routing = |r: &str| {
        let text = BASE.replace(
            "company = \"Demo Support\" }",
            &format!("company = \"Demo Support\" }}\n  routing = {r}"),
        );
        parse(&text).map(|c| c.inboxes[0].channels[0].routing.clone())
    };
    assert_eq!(
        routing("{ auto_assign = true, assign_to = \"contact_owner\" }").expect("valid"),
        Routing::AutoAssign {
            assign_to: AssignTo::ContactOwner,
            only_available: true,
            strategy: Strategy::RoundRobin,
        }
    );
    assert_eq!(
        routing(
            "{ auto_assign = true, assign_to = { teams = [\"support\"] }, only_available = false }"
        )
        .expect("valid"),
        Routing::AutoAssign {
            assign_to: AssignTo::Members {
                users: vec![],
                teams: vec!["support".into()]
            },
            only_available: false,
            strategy: Strategy::RoundRobin,
        }
    );
    assert_eq!(
        routing("{ auto_assign = true, assign_to = \"contact_owner\", strategy = \"least_open\" }")
            .expect("valid"),
        Routing::AutoAssign {
            assign_to: AssignTo::ContactOwner,
            only_available: true,
            strategy: Strategy::LeastOpen,
        }
    );
    let strategy_errors =
        routing("{ auto_assign = true, assign_to = \"contact_owner\", strategy = \"random\" }")
            .expect_err("unknown strategy");
    assert!(
        strategy_errors
            .iter()
            .any(|p| p.key.ends_with("routing.strategy")),
        "{strategy_errors:?}"
    );
    let errors = |r: &str| {
        routing(r)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors("{ auto_assign = true }"),
        ["inboxes[0].channels[0].routing.assign_to: required when auto_assign = true: \"contact_owner\" or { users = [..], teams = [..] }"]
    );
    assert_eq!(
        errors("{ auto_assign = false, assign_to = \"contact_owner\" }"),
        ["inboxes[0].channels[0].routing.assign_to: only used with auto_assign = true"]
    );
    assert_eq!(
        errors("{ auto_assign = true, assign_to = \"owner\" }"),
        ["inboxes[0].channels[0].routing.assign_to: unknown value \"owner\"; expected \"contact_owner\" or { users = [..], teams = [..] }"]
    );
    assert_eq!(
        errors("{ auto_assign = \"yes\" }"),
        ["inboxes[0].channels[0].routing.auto_assign: expected a boolean, found string"]
    );
}

#[test]
fn ticket_forms() {
    let tickets = |t: &str| {
        let text = BASE.replace(
            "company = \"Demo Support\" }",
            &format!("company = \"Demo Support\" }}\n  tickets = {t}"),
        );
        parse(&text).map_err(|ps| ps.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    assert_eq!(
        tickets("{ auto_create = true, pipeline = \"Support\" }").map(|_| ()),
        Err(vec![
            "inboxes[0].channels[0].tickets.stage: required".to_string()
        ])
    );
    assert_eq!(
        tickets("{ auto_create = false, pipeline = \"Support\" }").map(|_| ()),
        Err(vec![
            "inboxes[0].channels[0].tickets.pipeline: only used with auto_create = true"
                .to_string()
        ])
    );
    assert!(tickets("{ auto_create = false }").is_ok());
}

#[test]
fn signature_tokens_are_checked() {
    let text = BASE.replace(
        "company = \"Demo Support\" }",
        "company = \"Demo Support\" }\n  signature = \"{{ first_name }} {{fullname}}\"",
    );
    assert_eq!(
        problems(&text),
        ["inboxes[0].channels[0].signature: unknown token {{fullname}}; known: {{full_name}}, {{first_name}}, {{last_name}}"]
    );
}

#[test]
fn many_problems_in_one_file_are_all_reported() {
    let text = r#"
[server]
hostname = "mx..example"
[smtp]
listen = ["nowhere"]
max_message_size = 0
tls_cert = "c.pem"
[account]
subdomain = "demo"
company_name = "Demo"
[[users]]
email = "alice@demo.example"
name = "Alice"
[[users]]
email = "alice@demo.example"
[[inboxes]]
name = "Support"
access = { users = ["nobody@demo.example"] }
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  status = "maybe"
  from_name = { mode = "company", company = "X" }
  [[inboxes.channels]]
  kind = "imap"
  address = "alice@demo.example"
  from_name = { mode = "company", company = "X" }
  imap = { host = "imap.demo.example", tls = "none", username = "a", password_file = "p" }
  [[inboxes.channels]]
  kind = "fallback"
  user = "sales"
  from_name = { mode = "company", company = "x" }
  extra = true
"#;
    assert_eq!(
        keys(text),
        [
            "inboxes[0].channels[2].extra",
            "server.hostname",
            "users[1].email",
            "users[1].name",
            "inboxes[0].access.users[0]",
            "inboxes[0].channels[0].status",
            "inboxes[0].channels[1].imap.tls",
            "inboxes[0].channels[1].address",
            "inboxes[0].channels[2].from_name",
            "smtp.listen[0]",
            "smtp.max_message_size",
            "smtp.tls_key",
        ]
    );
}

#[test]
fn outbound_delivery_keys_parse_with_defaults_and_ranges() {
    let c = valid(BASE);
    assert_eq!(c.outbound.lifetime, Duration::from_secs(5 * 24 * 3600));
    assert_eq!((c.outbound.mx_port, c.outbound.concurrency), (25, 20));
    assert!(c.outbound.nameservers.is_empty() && c.outbound.dkim.is_none());
    let c = valid(&with(
        "[outbound]\nlifetime = 3600\nnameservers = [\"127.0.0.1\", \"[::1]:5353\"]\nmx_port = 2525\nconcurrency = 4\ndkim = { domain = \"Demo.Example\", selector = \"ig1\", key_file = \"/k.pem\" }\n",
    ));
    assert_eq!(c.outbound.lifetime, Duration::from_secs(3600));
    let servers: Vec<String> = c
        .outbound
        .nameservers
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(servers, ["127.0.0.1:53", "[::1]:5353"]);
    assert_eq!(c.outbound.dkim.unwrap().domain, "demo.example");
    assert_eq!(
        keys(&with(
            "[outbound]\nlifetime = 10\nnameservers = [\"dns.example\"]\nconcurrency = 0\ndkim = { selector = \"a b\" }\n"
        )),
        [
            "outbound.lifetime",
            "outbound.nameservers[0]",
            "outbound.concurrency",
            "outbound.dkim.domain",
            "outbound.dkim.selector",
            "outbound.dkim.key_file",
        ]
    );
}

#[test]
fn trusted_proxies_are_ip_addresses_named_by_key_path() {
    let c = valid(&with("[api]\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n"));
    assert_eq!(c.api.trusted_proxies.len(), 2);
    assert!(
        valid(BASE).api.trusted_proxies.is_empty(),
        "none by default"
    );
    let bad = with("[api]\ntrusted_proxies = [\"127.0.0.1\", \"proxy.example\"]\n");
    assert_eq!(
        problems(&bad),
        ["api.trusted_proxies[1]: \"proxy.example\" is not an IP address"]
    );
}

#[test]
fn a_users_web_language_is_english_by_default_and_must_be_a_catalogue_language() {
    let config = valid(&BASE.replace(
        "name = \"Bob Jansen\"",
        "name = \"Bob Jansen\"\nlanguage = \"sv\"",
    ));
    let languages: Vec<&str> = config.users.iter().map(|u| u.language).collect();
    assert_eq!(languages[0], "en");
    assert_eq!(languages[1], "sv");
    let text = BASE.replace(
        "name = \"Bob Jansen\"",
        "name = \"Bob Jansen\"\nlanguage = \"de\"",
    );
    assert_eq!(
        problems(&text),
        ["users[1].language: unknown value \"de\"; expected \"en\" or \"nl\" or \"sv\""]
    );
}

#[test]
fn an_api_certificate_needs_its_key() {
    let text = with("[api]\ntls_cert = \"/etc/inboxgate/web.pem\"\n");
    assert_eq!(
        problems(&text),
        ["api.tls_key: required when api.tls_cert is set"]
    );
}

/// A `[store]` section for PostgreSQL with `keys` added.
fn postgres(keys: &str) -> String {
    with(&format!("[store]\nbackend = \"postgres\"\n{keys}\n"))
}

/// A password file holding `text`, in a directory that lives as long as the result.
fn password_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pg.pw");
    std::fs::write(&path, text).expect("write password file");
    let path = path.to_str().expect("utf-8 path").to_string();
    (dir, path)
}

#[test]
fn the_store_is_sqlite_in_the_data_dir_by_default_and_when_named() {
    for text in [BASE.to_string(), with("[store]\nbackend = \"sqlite\"\n")] {
        let c = valid(&text);
        assert_eq!(c.store, StoreConfig::Sqlite);
        assert_eq!(
            c.store_target(),
            StoreTarget::Sqlite(PathBuf::from("./data/inboxgate.db"))
        );
        assert_eq!(c.store_target(), StoreTarget::Sqlite(c.database_path()));
    }
}

#[test]
fn the_node_name_defaults_to_the_host_name_and_is_checked() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    let expected = if host.is_empty() {
        "node"
    } else {
        host.as_str()
    };
    assert_eq!(valid(BASE).node_name(), expected);
    assert_eq!(
        valid(&with("[server]\nnode = \"mx1\"\n")).node_name(),
        "mx1"
    );
    assert_eq!(
        problems(&with("[server]\nnode = \"mx 1\"\n")),
        ["server.node: \"mx 1\" is not a node name (1-63 letters, digits, '-', '_' or '.')"]
    );
    assert_eq!(keys(&with("[server]\nnode = \"\"\n")), ["server.node"]);
    assert_eq!(keys(&with("[server]\nnode = 1\n")), ["server.node"]);
}

#[test]
fn postgres_takes_its_url_and_the_password_from_its_file() {
    let (_dir, path) = password_file("correct horse\n");
    let url = "postgres://inboxgate@127.0.0.1:5432/inboxgate";
    let c = valid(&postgres(&format!(
        "url = \"{url}\"\npassword_file = \"{path}\""
    )));
    assert_eq!(
        c.store_target(),
        StoreTarget::Postgres {
            url: url.into(),
            password: Some("correct horse".into()),
            ca_file: None,
        }
    );
    let (_dir, path) = password_file("windows line\r\n");
    let c = valid(&postgres(&format!(
        "url = \"postgresql://ig@db.example/ig\"\npassword_file = \"{path}\""
    )));
    let StoreTarget::Postgres { password, .. } = c.store_target() else {
        panic!("postgres");
    };
    assert_eq!(password.as_deref(), Some("windows line"));
    let c = valid(&postgres(
        "url = \"postgres://ig@db.example/ig?sslmode=require\"",
    ));
    assert_eq!(
        c.store_target(),
        StoreTarget::Postgres {
            url: "postgres://ig@db.example/ig?sslmode=require".into(),
            password: None,
            ca_file: None,
        }
    );
}

#[test]
fn the_database_password_never_shows_in_debug_output() {
    let (_dir, path) = password_file("Tr0ub4dor&3\n");
    let c = valid(&postgres(&format!(
        "url = \"postgres://ig@127.0.0.1/ig\"\npassword_file = \"{path}\""
    )));
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", c.store_target()),
        format!("{:?}", c.store),
    ] {
        assert!(!shown.contains("Tr0ub4dor"), "{shown}");
        assert!(shown.contains("hidden"), "{shown}");
    }
}

#[test]
fn a_postgres_url_must_be_one_without_a_password() {
    let cases = [
        (
            "",
            "store.url: required with backend = \"postgres\": postgres://USER@HOST:PORT/DATABASE",
        ),
        ("url = \" \"", "store.url: must not be empty"),
        (
            "url = \"mysql://ig@db/ig\"",
            "store.url: must start with postgres:// or postgresql:// (postgres://USER@HOST:PORT/DATABASE)",
        ),
        (
            "url = \"host=db user=ig\"",
            "store.url: must start with postgres:// or postgresql:// (postgres://USER@HOST:PORT/DATABASE)",
        ),
        (
            "url = \"postgres://ig:hunter2@db/ig\"",
            "store.url: holds a password: put it in store.password_file instead",
        ),
        (
            "url = \"postgres://ig@db/ig?password=hunter2\"",
            "store.url: holds a password: put it in store.password_file instead",
        ),
        (
            "url = \"postgres://db.example/ig\"",
            "store.url: names no user (postgres://USER@HOST:PORT/DATABASE)",
        ),
    ];
    for (keys, expected) in cases {
        assert_eq!(problems(&postgres(keys)), [expected], "{keys}");
    }
    let bad_port = problems(&postgres("url = \"postgres://ig@db:port/ig\""));
    assert_eq!(bad_port.len(), 1);
    assert!(
        bad_port[0].starts_with("store.url: is not a PostgreSQL URL: "),
        "{bad_port:?}"
    );
}

#[test]
fn a_password_file_must_be_readable_and_not_empty() {
    let url = "url = \"postgres://ig@db/ig\"";
    assert_eq!(
        problems(&postgres(&format!(
            "{url}\npassword_file = \"/nonexistent/pg.pw\""
        ))),
        ["store.password_file: cannot read /nonexistent/pg.pw: No such file or directory (os error 2)"]
    );
    let (_dir, path) = password_file("\n");
    assert_eq!(
        problems(&postgres(&format!("{url}\npassword_file = \"{path}\""))),
        [format!("store.password_file: {path} is empty")]
    );
    let (_dir, path) = password_file(&"x".repeat(2000));
    assert_eq!(
        problems(&postgres(&format!("{url}\npassword_file = \"{path}\""))),
        [format!(
            "store.password_file: {path} is longer than 1024 bytes: not a password file"
        )]
    );
    assert_eq!(
        problems(&postgres(&format!("{url}\npassword_file = \"\""))),
        ["store.password_file: must not be empty"]
    );
}

#[test]
fn store_keys_are_checked_with_their_key_paths() {
    assert_eq!(
        problems(&with("[store]\nbackend = \"mysql\"\n")),
        ["store.backend: unknown value \"mysql\"; expected \"sqlite\" or \"postgres\""]
    );
    assert_eq!(
        problems(&with(
            "[store]\nurl = \"postgres://ig@db/ig\"\npassword_file = \"pw\"\n"
        )),
        [
            "store.url: only used with backend = \"postgres\"",
            "store.password_file: only used with backend = \"postgres\""
        ]
    );
    assert_eq!(keys(&with("[store]\nbackend = 1\n")), ["store.backend"]);
    assert_eq!(
        problems(&postgres("url = \"postgres://ig@db/ig\"\nuser = \"ig\"")),
        ["store.user: unknown key"]
    );
}

#[test]
fn the_design_store_example_is_accepted() {
    let (_dir, path) = password_file("pw\n");
    let example = "[store]\nbackend = \"postgres\"\n\
                   url = \"postgres://inboxgate@127.0.0.1:5432/inboxgate\"\n"
        .to_string()
        + &format!("password_file = \"{path}\"\n[server]\nnode = \"mx1\"\n");
    let c = valid(&with(&example));
    assert_eq!(c.node_name(), "mx1");
    assert!(matches!(c.store, StoreConfig::Postgres(_)));
}

#[test]
fn the_database_ca_file_must_be_readable_and_is_postgres_only() {
    assert_eq!(
        problems(&postgres(
            "url = \"postgres://ig@db.example/ig\"\nca_file = \"/nonexistent/ca.pem\""
        )),
        ["store.ca_file: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)"]
    );
    assert_eq!(
        keys(&with(
            "[store]\nbackend = \"sqlite\"\nca_file = \"/etc/ssl/ca.pem\"\n"
        )),
        ["store.ca_file"]
    );
}
