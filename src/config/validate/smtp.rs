//! `[smtp]`: listeners, TLS files, limits, timeouts, the postmaster inbox.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn smtp(raw: &RawSmtp, inboxes: &[Inbox], p: &mut Problems) -> SmtpConfig {
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

pub(super) fn listen_list(p: &mut Problems, raw: Option<&[String]>) -> Vec<SocketAddr> {
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

pub(super) fn tls_files(p: &mut Problems, raw: &RawSmtp) -> Option<TlsFiles> {
    tls_pair(p, "smtp", raw.tls_cert.as_deref(), raw.tls_key.as_deref())
}

/// `tls_cert` and `tls_key` of `section`: both or neither.
pub(super) fn tls_pair(
    p: &mut Problems,
    section: &str,
    cert: Option<&str>,
    key: Option<&str>,
) -> Option<TlsFiles> {
    let (cert_key, key_key) = (format!("{section}.tls_cert"), format!("{section}.tls_key"));
    for (name, value) in [(&cert_key, cert), (&key_key, key)] {
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
            p.add(&key_key, format!("required when {cert_key} is set"));
            None
        }
        (None, Some(_)) => {
            p.add(&cert_key, format!("required when {key_key} is set"));
            None
        }
        (None, None) => None,
    }
}

pub(super) fn postmaster_inbox(p: &mut Problems, raw: Option<&str>, inboxes: &[Inbox]) -> String {
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
