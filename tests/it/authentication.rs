//! SPF, DKIM and DMARC (SPEC C4) through real SMTP against a private zone served by
//! dnsmasq: aligned, signed mail passes and keeps its `Authentication-Results`; mail
//! forging a `p=reject` domain goes to Spam with `dmarc:reject`; a tampered signature
//! does not pass; a DNS server that never answers delays mail by a bounded time and fails open.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";

/// An RSA key pair: the private key's PEM (PKCS#1, as dkimpy reads it) and the public
/// key's base64 DER for the DNS record.
fn rsa_key(dir: &Path) -> (Vec<u8>, String) {
    require("openssl", "apt-get install openssl");
    let private = dir.join("dkim.pem");
    let made = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&private)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl rsa");
    use base64::Engine;
    (
        std::fs::read(&private).expect("key"),
        base64::engine::general_purpose::STANDARD.encode(&public.stdout),
    )
}

/// `message` with a DKIM-Signature for `domain` (selector `sel`) made by dkimpy, an
/// independent signer.
fn dkim_sign(dir: &Path, message: &str, domain: &str, key: &[u8]) -> String {
    require_python_module("dkim", "apt-get install python3-dkim");
    let message_file = dir.join("unsigned.eml");
    let key_file = dir.join("signing.pem");
    std::fs::write(&message_file, message).expect("write message");
    std::fs::write(&key_file, key).expect("write key");
    let script = format!(
        "import dkim,sys\n\
         m=open(sys.argv[1],'rb').read()\n\
         h=dkim.sign(m, b'sel', b'{domain}', open(sys.argv[2],'rb').read(),\n\
                     canonicalize=(b'relaxed', b'relaxed'),\n\
                     include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])\n\
         sys.stdout.buffer.write(h + m)"
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .arg(&message_file)
        .arg(&key_file)
        .output()
        .expect("python3-dkim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn message(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@x.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}

/// The zone: `signed.test` publishes SPF for 127.0.0.1, its DKIM key and `p=reject`;
/// `forged.test` allows only 192.0.2.1 and also says `p=reject`; `lax.test` fails SPF
/// but asks for nothing (`p=none`).
fn zone(public_key: &str) -> Vec<String> {
    // A 2048-bit key is longer than one TXT string (255 bytes): dnsmasq makes each
    // comma-separated part a string, and DKIM joins them.
    let chunks: Vec<String> = public_key
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    vec![
        "--txt-record=signed.test,v=spf1 ip4:127.0.0.1 -all".into(),
        "--txt-record=_dmarc.signed.test,v=DMARC1; p=reject".into(),
        format!(
            "--txt-record=sel._domainkey.signed.test,v=DKIM1; k=rsa; p={}",
            chunks.join(",")
        ),
        "--txt-record=forged.test,v=spf1 ip4:192.0.2.1 -all".into(),
        "--txt-record=_dmarc.forged.test,v=DMARC1; p=reject".into(),
        "--txt-record=lax.test,v=spf1 ip4:192.0.2.1 -all".into(),
        "--txt-record=_dmarc.lax.test,v=DMARC1; p=none".into(),
    ]
}

async fn daemon_with_nameserver(port: u16) -> Daemon {
    Daemon::start_with_classification(&format!(
        "check_authentication = true\nnameservers = [\"127.0.0.1:{port}\"]"
    ))
    .await
}

/// Delivers and returns the conversation's first message's classification.
async fn deliver(d: &Daemon, mail_from: &str, raw: &str, subject: &str) -> Value {
    let reply = d.send(mail_from, &[SUPPORT], raw.as_bytes()).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mut listed = d.list(&["--view", "all_open"]);
    listed.extend(d.list(&["--view", "spam"]));
    let id = conversation_with_subject(&listed, subject);
    d.show(id)["messages"][0]["classification"].clone()
}

/// signed.test's key, to sign Jan's mail with.
struct Signer {
    dir: tempfile::TempDir,
    private: Vec<u8>,
}

impl Signer {
    /// A message from jan@signed.test, DKIM-signed.
    fn jans_signed_mail(&self, subject: &str, body: &str) -> String {
        let raw = message("Jan <jan@signed.test>", subject, body);
        dkim_sign(self.dir.path(), &raw, "signed.test", &self.private)
    }
}

/// A fresh key, the zone publishing it, and a daemon checking against that zone.
async fn signer_zone_and_daemon() -> (Signer, Dns, Daemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = rsa_key(dir.path());
    let dns = Dns::start(&zone(&public));
    let d = daemon_with_nameserver(dns.port).await;
    (Signer { dir, private }, dns, d)
}

fn has_reason(c: &Value, reason: &str) -> bool {
    c["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .any(|r| r == reason)
}

fn results(c: &Value) -> String {
    c["authentication_results"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn aligned_signed_mail_passes_and_forged_mail_under_p_reject_is_spam() {
    let (signer, _dns, d) = signer_zone_and_daemon().await;

    let signed = signer.jans_signed_mail("Signed order", "Where is my order?");
    let c = deliver(&d, "jan@signed.test", &signed, "Signed order").await;
    assert_eq!(c["verdict"], "clean", "{c}");
    let r = results(&c);
    assert!(r.starts_with("mx.test.example;"), "{r}");
    for want in [
        "dkim=pass",
        "header.i=@signed.test",
        "spf=pass",
        "dmarc=pass",
    ] {
        assert!(r.contains(want), "{want} missing from {r}");
    }

    let forged = message("CEO <ceo@forged.test>", "Urgent wire transfer", "Pay now.");
    let c = deliver(&d, "ceo@forged.test", &forged, "Urgent wire transfer").await;
    assert_eq!(c["verdict"], "spam", "{c}");
    assert!(has_reason(&c, "dmarc:reject"), "{c}");
    let r = results(&c);
    assert!(r.contains("spf=fail") && r.contains("dmarc=fail"), "{r}");

    // A domain that fails but asks for nothing is recorded, not punished.
    let lax = message("Piet <piet@lax.test>", "Lax question", "Hello?");
    let c = deliver(&d, "piet@lax.test", &lax, "Lax question").await;
    assert_eq!(c["verdict"], "clean", "{c}");
    assert!(results(&c).contains("dmarc=fail"), "{c}");
    d.stop().await;
}

#[tokio::test]
async fn a_signature_broken_in_transit_does_not_pass_dkim_and_dmarc_fails() {
    let (signer, _dns, d) = signer_zone_and_daemon().await;
    let signed = signer.jans_signed_mail("Changed invoice", "Pay to account 1234.");
    let tampered = signed.replace("account 1234", "account 6666");
    // Relayed through a forwarder: the envelope is not signed.test's, so only DKIM
    // could align — and it no longer verifies.
    let c = deliver(&d, "fwd@relay.test", &tampered, "Changed invoice").await;
    let r = results(&c);
    // mail-auth reports a body-hash mismatch as `neutral`, not `pass`: enough for DMARC.
    assert!(
        !r.contains("dkim=pass") && r.contains("body hash did not verify"),
        "{r}"
    );
    assert_eq!(c["verdict"], "spam", "{c}");
    assert!(has_reason(&c, "dmarc:reject"), "{c}");

    // An untouched signed message through the same forwarder passes on DKIM alone.
    let intact = signer.jans_signed_mail("Forwarded intact", "Pay to account 1234.");
    let c = deliver(&d, "fwd@relay.test", &intact, "Forwarded intact").await;
    assert!(
        results(&c).contains("dkim=pass") && results(&c).contains("dmarc=pass"),
        "{c}"
    );
    assert_eq!(c["verdict"], "clean", "{c}");
    d.stop().await;
}

#[tokio::test]
async fn a_dns_server_that_never_answers_delays_mail_a_bounded_time_and_fails_open() {
    // Bound but never read: every query to it times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let d = daemon_with_nameserver(port).await;
    let raw = message("CEO <ceo@forged.test>", "While DNS is down", "Hello");
    let started = Instant::now();
    let c = deliver(&d, "ceo@forged.test", &raw, "While DNS is down").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert_eq!(c["verdict"], "clean", "{c}");
    d.stop().await;
}
