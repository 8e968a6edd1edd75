//! Deliver stage (SPEC E7): one SMTP transaction per message and next hop, with the
//! outcome per recipient.
//!
//! The next hop is the configured relay (implicit TLS or STARTTLS with a verified
//! certificate, AUTH when a login is set) or, without one, each recipient domain's MX
//! hosts found with hickory-resolver (RFC 5321 §5.1: by preference, equal preferences
//! shuffled, the domain itself when it has no MX, a null MX is a permanent failure,
//! never the A record when MX exist). MX delivery uses STARTTLS when offered, without
//! certificate checks (opportunistic, as RFC 7435 describes); a host that cannot be
//! reached or answers 4xx before any recipient was accepted hands over to the next.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use smtp_proto::{Response, EXT_START_TLS};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::config::{Config, RemoteServer, TlsMode};

/// How long one SMTP command may take (RFC 5321 §4.5.3.2 suggests minutes).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The result of one attempt for one recipient (the store's type: it maps it to a
/// delivery status).
pub use crate::store::Outcome;

/// The outcome an SMTP reply means: 2xx sent, 5xx permanent, else temporary.
fn outcome_of_reply(reply: &Response<String>) -> Outcome {
    let text = reply_text(reply);
    match reply.code {
        200..=299 => Outcome::Sent(text),
        500..=599 => Outcome::Permanent(text),
        _ => Outcome::Temporary(text),
    }
}

/// The outcome a failed SMTP exchange means.
fn outcome_of_error(error: mail_send::Error) -> Outcome {
    match error {
        mail_send::Error::UnexpectedReply(r) => outcome_of_reply(&r),
        // A refused login is a configuration problem on our side: keep the mail.
        mail_send::Error::AuthenticationFailed(r) => {
            Outcome::Temporary(format!("authentication failed: {}", reply_text(&r)))
        }
        other => Outcome::Temporary(other.to_string()),
    }
}

fn reply_text(r: &Response<String>) -> String {
    let [a, b, c] = r.esc;
    let message = r.message.split_whitespace().collect::<Vec<_>>().join(" ");
    if a == 0 {
        format!("{} {message}", r.code)
    } else {
        format!("{} {a}.{b}.{c} {message}", r.code)
    }
}

/// Error building the deliverer from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("outbound.relay.password_file {0}: {1}")]
    Password(String, std::io::Error),
    #[error("outbound.tls_ca_file {0}: {1}")]
    CaFile(String, String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

enum NextHop {
    Relay {
        server: RemoteServer,
        login: Option<(String, String)>,
        tls: TlsConnector,
    },
    Mx {
        resolver: Box<TokioResolver>,
        port: u16,
    },
}

/// Sends messages to their next hop. Cheap to share.
pub struct Deliverer {
    helo: String,
    hop: NextHop,
    opportunistic: TlsConnector,
}

impl Deliverer {
    /// Reads the relay's password and CA file now, so mistakes show at startup.
    pub fn from_config(config: &Config) -> Result<Arc<Deliverer>, SetupError> {
        let out = &config.outbound;
        let hop = match &out.relay {
            Some(server) => NextHop::Relay {
                login: relay_login(server)?,
                tls: verified_connector(out.tls_ca_file.as_deref())?,
                server: server.clone(),
            },
            None => NextHop::Mx {
                resolver: Box::new(
                    crate::dns::resolver(&out.nameservers, None).map_err(SetupError::Resolver)?,
                ),
                port: out.mx_port,
            },
        };
        Ok(Arc::new(Deliverer {
            helo: config.server.hostname.clone(),
            hop,
            opportunistic: opportunistic_connector(),
        }))
    }

    /// Delivers `raw` to `recipients`; one outcome per recipient, in order.
    pub async fn deliver(
        &self,
        mail_from: &str,
        recipients: &[String],
        raw: &[u8],
    ) -> Vec<Outcome> {
        match &self.hop {
            NextHop::Relay { server, login, tls } => {
                let envelope = Envelope {
                    mail_from,
                    recipients,
                    raw,
                };
                match self
                    .relay_session(server, login.as_ref(), tls, &envelope)
                    .await
                {
                    Ok(outcomes) => outcomes,
                    Err(outcome) => vec![outcome; recipients.len()],
                }
            }
            NextHop::Mx { resolver, port } => {
                self.deliver_by_domain(resolver, *port, mail_from, recipients, raw)
                    .await
            }
        }
    }

    async fn relay_session(
        &self,
        server: &RemoteServer,
        login: Option<&(String, String)>,
        tls: &TlsConnector,
        envelope: &Envelope<'_>,
    ) -> Result<Vec<Outcome>, Outcome> {
        let mut builder = SmtpClientBuilder::new_with_tls_connector(
            server.host.as_str(),
            server.port,
            tls.clone(),
        )
        .helo_host(self.helo.as_str())
        .timeout(COMMAND_TIMEOUT);
        if let Some((user, password)) = login {
            builder = builder.credentials(Credentials::new(user.as_str(), password.as_str()));
        }
        match server.tls {
            TlsMode::Implicit | TlsMode::StartTls => {
                let builder = builder.implicit_tls(server.tls == TlsMode::Implicit);
                let mut client = builder.connect().await.map_err(outcome_of_error)?;
                transaction(&mut client, envelope).await
            }
            TlsMode::None => {
                let mut client = builder.connect_plain().await.map_err(outcome_of_error)?;
                transaction(&mut client, envelope).await
            }
        }
    }

    async fn deliver_by_domain(
        &self,
        resolver: &TokioResolver,
        port: u16,
        mail_from: &str,
        recipients: &[String],
        raw: &[u8],
    ) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Temporary("not attempted".into()); recipients.len()];
        for (domain, indexes) in by_domain(recipients) {
            let group: Vec<String> = indexes.iter().map(|&i| recipients[i].clone()).collect();
            let envelope = Envelope {
                mail_from,
                recipients: &group,
                raw,
            };
            let results = self.deliver_to_mx(resolver, port, &domain, &envelope).await;
            for (i, outcome) in indexes.into_iter().zip(results) {
                outcomes[i] = outcome;
            }
        }
        outcomes
    }

    async fn deliver_to_mx(
        &self,
        resolver: &TokioResolver,
        port: u16,
        domain: &str,
        envelope: &Envelope<'_>,
    ) -> Vec<Outcome> {
        let all = |o: Outcome| vec![o; envelope.recipients.len()];
        let hosts = match mx_hosts(resolver, domain).await {
            Ok(hosts) => hosts,
            Err(outcome) => return all(outcome),
        };
        let mut last = Outcome::Temporary(format!("no MX host of {domain} could be reached"));
        for host in hosts {
            let addresses = match host_addresses(resolver, &host).await {
                Ok(list) => list,
                Err(why) => {
                    last = Outcome::Temporary(why);
                    continue;
                }
            };
            for ip in addresses {
                match self
                    .mx_session(SocketAddr::new(ip, port), &host, envelope)
                    .await
                {
                    Ok(outcomes) => return outcomes,
                    Err(Outcome::Permanent(reply)) => return all(Outcome::Permanent(reply)),
                    Err(outcome) => {
                        tracing::debug!(%host, %ip, ?outcome, "MX host failed; trying the next");
                        last = outcome;
                    }
                }
            }
        }
        all(last)
    }

    /// One session with one MX address. `Err` means nothing was accepted there: the
    /// caller moves on to the next host (4xx, network) or gives up (5xx).
    async fn mx_session(
        &self,
        addr: SocketAddr,
        host: &str,
        envelope: &Envelope<'_>,
    ) -> Result<Vec<Outcome>, Outcome> {
        let mut client = SmtpClient::connect(addr, COMMAND_TIMEOUT)
            .await
            .map_err(outcome_of_error)?;
        let greeting = client.read().await.map_err(outcome_of_error)?;
        if greeting.code != 220 {
            return Err(outcome_of_reply(&greeting));
        }
        let ehlo = client.ehlo(&self.helo).await.map_err(outcome_of_error)?;
        if !ehlo.has_capability(EXT_START_TLS) {
            return transaction(&mut client, envelope).await;
        }
        let name = host.trim_end_matches('.');
        let mut client = client
            .start_tls(&self.opportunistic, name)
            .await
            .map_err(outcome_of_error)?;
        client.ehlo(&self.helo).await.map_err(outcome_of_error)?;
        transaction(&mut client, envelope).await
    }
}

struct Envelope<'a> {
    mail_from: &'a str,
    recipients: &'a [String],
    raw: &'a [u8],
}

/// MAIL, RCPT per recipient, DATA, QUIT. `Err` when the session failed before any
/// recipient was accepted (applies to all of them).
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    envelope: &Envelope<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let params = Parameters::default();
    client
        .mail_from(envelope.mail_from, &params)
        .await
        .map_err(outcome_of_error)?;
    let mut outcomes = Vec::with_capacity(envelope.recipients.len());
    let mut accepted = Vec::new();
    for (i, rcpt) in envelope.recipients.iter().enumerate() {
        match client.rcpt_to(rcpt, &params).await {
            Ok(()) => {
                accepted.push(i);
                outcomes.push(Outcome::Temporary("accepted, awaiting DATA".into()));
            }
            Err(e) => outcomes.push(outcome_of_error(e)),
        }
    }
    if accepted.is_empty() {
        let _ = client.rset().await;
        // Every recipient refused: a 4xx for all of them may do better elsewhere.
        if outcomes.iter().all(|o| matches!(o, Outcome::Temporary(_))) {
            return Err(outcomes.swap_remove(0));
        }
        return Ok(outcomes);
    }
    let result = match client.data(envelope.raw).await {
        Ok(reply) => outcome_of_reply(&reply),
        Err(e) => outcome_of_error(e),
    };
    for i in accepted {
        outcomes[i] = result.clone();
    }
    let _ = client.cmd(b"QUIT\r\n").await;
    Ok(outcomes)
}

/// Recipients grouped by domain (lower case), first appearance first.
fn by_domain(recipients: &[String]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, rcpt) in recipients.iter().enumerate() {
        let domain = rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(i),
            None => groups.push((domain, vec![i])),
        }
    }
    groups
}

/// The hosts to try for `domain`, in order (RFC 5321 §5.1).
async fn mx_hosts(resolver: &TokioResolver, domain: &str) -> Result<Vec<String>, Outcome> {
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let records: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect();
            order_mx(records, domain)
        }
        Err(e) if e.is_nx_domain() => Err(Outcome::Permanent(format!(
            "550 5.1.2 domain {domain} does not exist"
        ))),
        // No MX records: the domain itself is the implicit MX (RFC 5321 §5.1).
        Err(e) if e.is_no_records_found() => Ok(vec![fqdn]),
        Err(e) => Err(Outcome::Temporary(format!("MX lookup for {domain}: {e}"))),
    }
}

/// Sorts by preference with equal preferences shuffled; a null MX (RFC 7505) fails.
fn order_mx(mut records: Vec<(u16, String)>, domain: &str) -> Result<Vec<String>, Outcome> {
    if records.is_empty() {
        return Ok(vec![format!("{domain}.")]);
    }
    if records
        .iter()
        .any(|(_, host)| host == "." || host.is_empty())
    {
        return Err(Outcome::Permanent(format!(
            "556 5.1.10 {domain} does not accept mail (null MX)"
        )));
    }
    let noise = super::compose::random_bytes::<32>();
    records.sort_by_key(|(preference, host)| {
        let salt = host
            .bytes()
            .fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b));
        (*preference, noise[usize::from(salt) % noise.len()] ^ salt)
    });
    Ok(records.into_iter().map(|(_, host)| host).collect())
}

async fn host_addresses(resolver: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.trim_end_matches('.').parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let fqdn = if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    };
    match resolver.lookup_ip(fqdn.as_str()).await {
        Ok(lookup) => Ok(lookup.iter().collect()),
        Err(e) => Err(format!("address lookup for {host}: {e}")),
    }
}

fn relay_login(server: &RemoteServer) -> Result<Option<(String, String)>, SetupError> {
    let (Some(user), Some(file)) = (&server.username, &server.password_file) else {
        return Ok(None);
    };
    let password = std::fs::read_to_string(file)
        .map_err(|e| SetupError::Password(file.display().to_string(), e))?;
    Ok(Some((
        user.clone(),
        password.trim_end_matches(['\r', '\n']).to_string(),
    )))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the relay's certificate against the platform's roots plus `ca_file`.
fn verified_connector(ca_file: Option<&std::path::Path>) -> Result<TlsConnector, SetupError> {
    let extra = match ca_file {
        Some(path) => {
            let name = path.display().to_string();
            let pem =
                std::fs::read(path).map_err(|e| SetupError::CaFile(name.clone(), e.to_string()))?;
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SetupError::CaFile(name, e.to_string()))?
        }
        None => Vec::new(),
    };
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
        .map_err(|e| SetupError::Tls(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Encrypts without checking the certificate: MX hosts rarely have one that matches,
/// and plain text would be the only alternative (RFC 7435).
fn opportunistic_connector() -> TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth()
        });
    match config {
        Ok(config) => TlsConnector::from(Arc::new(config)),
        // ring supports the default versions; this arm is not reached in practice.
        Err(_) => TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("ring supports TLS 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth(),
        )),
    }
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_order_by_preference_and_null_mx() {
        let hosts = order_mx(
            vec![
                (20, "b.example.".into()),
                (10, "a.example.".into()),
                (30, "c.example.".into()),
            ],
            "x.example",
        )
        .unwrap();
        assert_eq!(hosts, ["a.example.", "b.example.", "c.example."]);
        assert!(matches!(
            order_mx(vec![(0, ".".into())], "x.example"),
            Err(Outcome::Permanent(_))
        ));
        assert_eq!(order_mx(vec![], "x.example").unwrap(), ["x.example."]);
    }

    #[test]
    fn equal_preferences_are_shuffled() {
        let records: Vec<(u16, String)> = (0..8).map(|i| (10, format!("mx{i}.example."))).collect();
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..64 {
            let hosts = order_mx(records.clone(), "x.example").unwrap();
            assert_eq!(hosts.len(), 8);
            firsts.insert(hosts[0].clone());
        }
        assert!(firsts.len() > 1, "always the same first host: {firsts:?}");
    }

    #[test]
    fn recipients_group_by_domain() {
        let r: Vec<String> = ["a@x.example", "b@y.example", "c@X.example"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            by_domain(&r),
            [
                ("x.example".to_string(), vec![0, 2]),
                ("y.example".to_string(), vec![1])
            ]
        );
    }
}
