//! `[classification]`: thresholds, role senders, spamd, nameservers.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn classification(raw: &RawClassification, p: &mut Problems) -> ClassificationConfig {
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

pub(super) fn role_senders(p: &mut Problems, list: &[String]) -> Vec<String> {
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

pub(super) fn spamd(p: &mut Problems, raw: &RawSpamd) -> Option<SpamdConfig> {
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
pub(super) fn nameservers(p: &mut Problems, key: &str, raw: &[String]) -> Vec<SocketAddr> {
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
