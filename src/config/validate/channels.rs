//! An IMAP channel's own keys: folders, the IMAP and SMTP servers, credentials.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn imap_channel(p: &mut Problems, key: &str, raw: &RawChannel) -> (String, ImapChannel) {
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

pub(super) fn folders(p: &mut Problems, key: &str, raw: Option<&[String]>) -> Vec<String> {
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
pub(super) enum Protocol {
    Imap,
    Smtp,
}

pub(super) fn remote(
    p: &mut Problems,
    key: &str,
    raw: &RawRemote,
    protocol: Protocol,
) -> RemoteServer {
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
pub(super) fn check_credentials(
    p: &mut Problems,
    key: &str,
    raw: &RawRemote,
    login_required: bool,
) {
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

pub(super) fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
