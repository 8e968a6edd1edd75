//! C4: SPF, DKIM and DMARC with mail-auth, over the resolver of
//! `[classification] nameservers` (so tests point it at a local zone). The results are
//! kept as an `Authentication-Results` value (RFC 8601); a DMARC failure under
//! `p=reject` or `p=quarantine` sends the message to Spam. The whole check is bounded:
//! a slow or dead DNS server adds at most `CHECK_TIMEOUT` and never holds mail back.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};

use super::{Finding, Received, Verdict};

/// Each DNS query's own limit.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The limit on all three checks together.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The authenticator for the configured nameservers, built on first use and again when
/// a reload changes them.
#[derive(Default)]
pub struct Authenticators {
    current: Mutex<Option<(Vec<SocketAddr>, Arc<MessageAuthenticator>)>>,
}

impl Authenticators {
    fn for_nameservers(&self, nameservers: &[SocketAddr]) -> Option<Arc<MessageAuthenticator>> {
        let mut current = match self.current.lock() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((servers, authenticator)) = current.as_ref() {
            if servers == nameservers {
                return Some(authenticator.clone());
            }
        }
        match crate::dns::resolver(nameservers, Some(QUERY_TIMEOUT)) {
            Ok(resolver) => {
                let authenticator = Arc::new(MessageAuthenticator(resolver));
                *current = Some((nameservers.to_vec(), authenticator.clone()));
                Some(authenticator)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver; SPF, DKIM and DMARC skipped");
                None
            }
        }
    }
}

/// The findings and the `Authentication-Results` value (`hostname` is our authserv-id).
pub async fn check(
    authenticators: &Authenticators,
    nameservers: &[SocketAddr],
    hostname: &str,
    message: &Received<'_>,
) -> (Vec<Finding>, Option<String>) {
    let Some(authenticator) = authenticators.for_nameservers(nameservers) else {
        return (Vec::new(), None);
    };
    match tokio::time::timeout(CHECK_TIMEOUT, verify(&authenticator, hostname, message)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!("SPF/DKIM/DMARC checks timed out; message accepted unjudged");
            (Vec::new(), Some(format!("{hostname}; none (dns timeout)")))
        }
    }
}

async fn verify(
    authenticator: &MessageAuthenticator,
    hostname: &str,
    message: &Received<'_>,
) -> (Vec<Finding>, Option<String>) {
    let Some(authenticated) = AuthenticatedMessage::parse(message.raw) else {
        return (Vec::new(), None);
    };
    let dkim = authenticator.verify_dkim(&authenticated).await;
    let results =
        AuthenticationResults::new(hostname).with_dkim_results(&dkim, authenticated.from());
    // Fetched over IMAP, there is no connecting address: no SPF, and so no DMARC
    // verdict (the team mailbox's own server judged the delivery).
    let Some(ip) = message.peer.map(canonical) else {
        return (Vec::new(), Some(one_line(&results.to_string())));
    };
    let helo = message.helo.unwrap_or("");
    let mail_from = message.mail_from.unwrap_or("");
    let mail_from_domain = mail_from
        .rsplit_once('@')
        .map_or(helo, |(_, domain)| domain);
    let spf = authenticator
        .verify_spf(SpfParameters::verify(ip, helo, hostname, mail_from))
        .await;
    let dmarc = authenticator
        .verify_dmarc(DmarcParameters {
            message: &authenticated,
            dkim_output: &dkim,
            dkim2_output: None,
            rfc5321_mail_from_domain: mail_from_domain,
            spf_output: &spf,
        })
        .await;
    let results = results
        .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
        .with_dmarc_result(&dmarc);
    // `Fail` needs a published policy and neither aligned check passing; a DNS error
    // is `TempError`, which fails open.
    let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
    let findings = match dmarc.policy() {
        Policy::Reject if failed => vec![Finding::new(Verdict::Spam, "dmarc:reject")],
        Policy::Quarantine if failed => vec![Finding::new(Verdict::Spam, "dmarc:quarantine")],
        _ => Vec::new(),
    };
    (findings, Some(one_line(&results.to_string())))
}

/// Stored and shown on one line; the header's folding is for the wire.
fn one_line(results: &str) -> String {
    results.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The peer address as SPF sees it (an IPv4-mapped IPv6 address is IPv4).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
