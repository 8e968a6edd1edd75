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
