//! `[api]`.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn api(raw: &RawApi, smtp: &SmtpConfig, p: &mut Problems) -> ApiConfig {
    let text = raw.listen.as_deref().unwrap_or(defaults::API_LISTEN);
    let fallback = SocketAddr::from(([127, 0, 0, 1], 8025));
    let listen = socket_addr(p, "api.listen", text).unwrap_or(fallback);
    if listen.port() != 0 {
        if let Some(i) = smtp.listen.iter().position(|a| *a == listen) {
            p.add("api.listen", format!("{listen} is also smtp.listen[{i}]"));
        }
    }
    let trusted_proxies = trusted_proxies(p, raw.trusted_proxies.as_deref().unwrap_or(&[]));
    ApiConfig {
        listen,
        trusted_proxies,
        tls: super::smtp::tls_pair(p, "api", raw.tls_cert.as_deref(), raw.tls_key.as_deref()),
    }
}

/// `[api] trusted_proxies`: IP addresses, each checked on its own.
fn trusted_proxies(p: &mut Problems, raw: &[String]) -> Vec<IpAddr> {
    let mut list = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => list.push(ip),
            Err(_) => p.add(
                &format!("api.trusted_proxies[{i}]"),
                format!("{text:?} is not an IP address"),
            ),
        }
    }
    list
}
