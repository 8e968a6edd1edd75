//! DKIM signing (RFC 6376, RFC 8463) of outbound mail when `[outbound] dkim` is
//! configured: relaxed/relaxed canonicalization, `rsa-sha256` (PKCS#8 or PKCS#1 key)
//! or `ed25519-sha256` (PKCS#8 key), computed with ring. The worker signs each message
//! just before delivery, so the stored copy stays as the agent sent it and a key change
//! applies to everything still queued.

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Headers signed when present (RFC 6376 §5.4.1 recommends these).
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "thread-index",
];

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signs messages with the configured key.
pub struct Signer {
    domain: String,
    selector: String,
    key: Key,
    clock: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl Signer {
    /// The signer of `[outbound] dkim`, if configured; fails on an unreadable key.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Arc<Signer>>> {
        let Some(dkim) = &config.outbound.dkim else {
            return Ok(None);
        };
        let pem = std::fs::read(&dkim.key_file)
            .with_context(|| format!("reading key_file {}", dkim.key_file.display()))?;
        let key =
            parse_key(&pem).with_context(|| format!("key_file {}", dkim.key_file.display()))?;
        Ok(Some(Arc::new(Signer {
            domain: dkim.domain.clone(),
            selector: dkim.selector.clone(),
            key,
            clock: {
                let now = crate::clock::system_clock();
                Box::new(move || now())
            },
        })))
    }

    /// `raw` with a `DKIM-Signature` header in front; unchanged if signing fails (the
    /// mail still goes out, unsigned, and the failure is logged).
    pub fn sign(&self, raw: &[u8]) -> Vec<u8> {
        match self.signature_header(raw) {
            Some(header) => {
                let mut out = header.into_bytes();
                out.extend_from_slice(raw);
                out
            }
            None => {
                tracing::error!(domain = %self.domain, "DKIM signing failed; sending unsigned");
                raw.to_vec()
            }
        }
    }

    fn signature_header(&self, raw: &[u8]) -> Option<String> {
        let (head, body) = split_message(raw);
        let b64 = base64::engine::general_purpose::STANDARD;
        let body_hash = b64.encode(Sha256::digest(relaxed_body(body)));
        let fields = header_fields(head);
        let mut signed = Vec::new();
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            if let Some((field_name, value)) = fields
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                signed.extend_from_slice(relaxed_header(field_name, value).as_bytes());
                signed.extend_from_slice(b"\r\n");
                names.push(*name);
            }
        }
        let algorithm = match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        };
        let value = format!(
            "v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={}; t={}; h={}; bh={body_hash}; b=",
            self.domain,
            self.selector,
            (self.clock)(),
            names.join(":")
        );
        signed.extend_from_slice(relaxed_header("DKIM-Signature", &value).as_bytes());
        let signature = self.sign_bytes(&signed)?;
        Some(format!(
            "DKIM-Signature: {value}{}\r\n",
            fold(&b64.encode(signature))
        ))
    }

    fn sign_bytes(&self, data: &[u8]) -> Option<Vec<u8>> {
        match &self.key {
            Key::Rsa(key) => {
                let mut signature = vec![0u8; key.public().modulus_len()];
                let rng = ring::rand::SystemRandom::new();
                key.sign(&RSA_PKCS1_SHA256, &rng, data, &mut signature)
                    .ok()?;
                Some(signature)
            }
            // RFC 8463: Ed25519 signs the SHA-256 hash of the data.
            Key::Ed25519(key) => Some(key.sign(&Sha256::digest(data)).as_ref().to_vec()),
        }
    }
}

fn parse_key(pem: &[u8]) -> anyhow::Result<Key> {
    let der = PrivateKeyDer::from_pem_slice(pem).context("no PEM private key")?;
    match der {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
            .map(Key::Rsa)
            .map_err(|e| anyhow::anyhow!("RSA key: {e}")),
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            if let Ok(rsa) = RsaKeyPair::from_pkcs8(der) {
                return Ok(Key::Rsa(rsa));
            }
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Key::Ed25519)
                .map_err(|e| anyhow::anyhow!("neither an RSA nor an Ed25519 key: {e}"))
        }
        _ => anyhow::bail!("unsupported key type (use RSA or Ed25519)"),
    }
}

/// Header block and body, split at the first empty line.
fn split_message(raw: &[u8]) -> (&[u8], &[u8]) {
    match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&raw[..at + 2], &raw[at + 4..]),
        None => (raw, &[]),
    }
}

/// (name, value) of each header field, folded lines joined.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    fields
}

/// RFC 6376 §3.4.2.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    let collapsed = unfolded
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}", name.trim().to_ascii_lowercase(), collapsed)
}

/// RFC 6376 §3.4.4.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = body;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = Vec::with_capacity(line.len());
        let mut in_space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                in_space = true;
            } else {
                if in_space {
                    out.push(b' ');
                }
                in_space = false;
                out.push(b);
            }
        }
        lines.push(out);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(body.len());
    for line in lines {
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Folds a long base64 value over several header lines.
fn fold(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 70 * 3);
    for (i, chunk) in value.as_bytes().chunks(70).enumerate() {
        if i > 0 {
            out.push_str("\r\n\t");
        }
        out.push_str(&String::from_utf8_lossy(chunk));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization() {
        assert_eq!(
            relaxed_header("Subject", " Hello \r\n\t  World  "),
            "subject:Hello World"
        );
        assert_eq!(relaxed_body(b"a  b \t\r\n\r\n\r\n"), b"a b\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b" x\r\ny"), b" x\r\ny\r\n");
    }
}
