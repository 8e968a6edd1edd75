//! `[outbound]`: lifetime, concurrency, relay, DKIM.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn outbound(raw: &RawOutbound, p: &mut Problems) -> OutboundConfig {
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

pub(super) fn dkim(p: &mut Problems, raw: &RawDkim) -> Option<DkimConfig> {
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
