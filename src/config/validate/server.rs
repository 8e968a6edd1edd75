//! `[server]` and `[account]`.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn server(raw: &RawServer, p: &mut Problems) -> ServerConfig {
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
        node: node(raw.node.as_deref(), p),
    }
}

/// `[server] node`: as written when valid, else the host name.
fn node(raw: Option<&str>, p: &mut Problems) -> String {
    let Some(name) = raw else {
        return defaults::node();
    };
    if let Err(why) = check_node_name(name) {
        p.add("server.node", why);
    }
    name.to_string()
}

/// A node name goes into logs and lease rows: a short word, no spaces or quotes.
pub(super) fn check_node_name(name: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a node name (1-63 letters, digits, '-', '_' or '.')"
        ))
    }
}

pub(super) fn account(raw: &RawAccount, p: &mut Problems) -> AccountConfig {
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
