//! `[[inboxes]]` and their channels: addresses, access, From name, routing, tickets,
//! signatures.

use super::*; // the section checks share the parent's imports and helpers

/// Where a channel was configured, for the cross-checks that need all channels.
pub(super) struct Site {
    pub(super) inbox: String,
    pub(super) channel_key: String,
    pub(super) address_key: String,
    pub(super) address: String,
    pub(super) fallback: bool,
    pub(super) from_name: Option<FromName>,
}

pub(super) fn inboxes(
    raw: &[RawInbox],
    known: &Known,
    p: &mut Problems,
) -> (Vec<Inbox>, Vec<Site>) {
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

pub(super) fn channel(
    p: &mut Problems,
    key: &str,
    raw: &RawChannel,
    known: &Known,
) -> (Channel, Site) {
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

pub(super) fn placeholder_from_name() -> FromName {
    FromName {
        mode: FromNameMode::Company,
        company: String::new(),
    }
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Fallback,
    Imap,
}

pub(super) const KINDS: &[(&str, Kind)] = &[("fallback", Kind::Fallback), ("imap", Kind::Imap)];
pub(super) const STATUSES: &[(&str, ChannelStatus)] =
    &[("on", ChannelStatus::On), ("off", ChannelStatus::Off)];
pub(super) const TLS_MODES: &[(&str, TlsMode)] = &[
    ("implicit", TlsMode::Implicit),
    ("starttls", TlsMode::StartTls),
    ("none", TlsMode::None),
];
pub(super) const FROM_NAME_MODES: &[(&str, FromNameMode)] = &[
    ("agent_and_company", FromNameMode::AgentAndCompany),
    ("company", FromNameMode::Company),
];

/// `{user}@{subdomain}.{fallback_domain}`, lower case (SPEC A1).
pub(super) fn fallback_address(
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

pub(super) fn check_signature(p: &mut Problems, key: &str, signature: &str) {
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

pub(super) fn access(
    p: &mut Problems,
    key: &str,
    value: Option<&toml::Value>,
    known: &Known,
) -> Access {
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
pub(super) fn members(
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

pub(super) fn from_name(
    p: &mut Problems,
    key: &str,
    value: Option<&toml::Value>,
) -> Option<FromName> {
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

pub(super) fn routing(
    p: &mut Problems,
    key: &str,
    value: Option<&toml::Value>,
    known: &Known,
) -> Routing {
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

pub(super) fn assign_to(
    p: &mut Problems,
    key: &str,
    value: Option<&toml::Value>,
    known: &Known,
) -> AssignTo {
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

pub(super) fn tickets(
    p: &mut Problems,
    key: &str,
    value: Option<&toml::Value>,
    known: &Known,
) -> Tickets {
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
