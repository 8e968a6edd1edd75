//! The DNS resolver shared by outbound MX lookups and inbound SPF/DKIM/DMARC checks:
//! hickory over the configured nameservers (UDP, then TCP for truncated answers), or
//! the system's resolver configuration when none are set.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

/// A resolver over `nameservers` (empty: `/etc/resolv.conf`), each query bounded by
/// `timeout` when given. The resolver caches answers by their TTL.
pub fn resolver(
    nameservers: &[SocketAddr],
    timeout: Option<Duration>,
) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| e.to_string())?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    if let Some(timeout) = timeout {
        builder.options_mut().timeout = timeout;
        builder.options_mut().attempts = 1;
    }
    builder.build().map_err(|e| e.to_string())
}
