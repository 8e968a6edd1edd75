//! API tokens: `igt_<id>_<secret>`. The id finds the row; only the SHA-256 of the
//! secret is stored, and it is compared in constant time, so neither the database nor
//! response timing gives a token away.

use std::io::Read;

use sha2::{Digest, Sha256};

const PREFIX: &str = "igt_";

/// 32 random bytes from the kernel, hex.
pub fn secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

pub fn format(id: i64, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// The id and secret of a token as presented; `None` when it is not one of ours.
pub fn split(token: &str) -> Option<(i64, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    Some((id.parse().ok()?, secret))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, in time independent of where they differ.
pub fn matches(secret: &str, stored: &str) -> bool {
    let computed = hash(secret);
    let (a, b) = (computed.as_bytes(), stored.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_only_its_secret_matches() {
        let secret = secret().expect("urandom");
        assert_eq!(secret.len(), 64);
        let token = format(7, &secret);
        let (id, presented) = split(&token).expect("our format");
        assert_eq!(id, 7);
        let stored = hash(&secret);
        assert!(matches(presented, &stored));
        assert!(!matches(&secret[1..], &stored));
        assert!(!matches("", &stored));
        assert_eq!(split("Bearer nonsense"), None);
        assert_eq!(split("igt_x_abc"), None);
    }
}
