//! `auth_failures`: failed authentications counted per key within a window, in the
//! store so that every node behind a load balancer counts against the same limit. The
//! web's sign-in counts an attempt against its client address and account before the
//! password is checked and takes it back when it succeeds, so parallel guesses meet the
//! limit as surely as guesses one after another; the API counts a rejected token
//! against the token id it names or its client address.

use crate::params;

use super::error::StoreError;
use super::writer::Writer;

/// Any constant names the lock; this one serializes the counting across nodes.
const COUNTING_LOCK: i64 = 0x5167_6e49;

/// A key attempts are counted against, and how many failures it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureKey {
    pub key: String,
    pub limit: u32,
}

impl Writer {
    /// Counts an attempt at `now` against every key, unless one of them already has
    /// `limit` failures begun within `window` seconds: then nothing is counted and the
    /// answer is `false`.
    pub async fn count_auth_attempt(
        &self,
        keys: Vec<FailureKey>,
        now: i64,
        window: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.lock_key(COUNTING_LOCK)?;
            conn.prepare_cached("DELETE FROM auth_failures WHERE since <= ?1")?
                .execute([now - window])?;
            let mut count =
                conn.prepare_cached("SELECT failures FROM auth_failures WHERE key = ?1")?;
            for key in &keys {
                let failures: Option<i64> = count
                    .query_map([&key.key], |r| r.get(0))?
                    .next()
                    .transpose()?;
                if failures.is_some_and(|n| n >= i64::from(key.limit)) {
                    return Ok(false);
                }
            }
            let mut add = conn.prepare_cached(
                "INSERT INTO auth_failures (key, failures, since) VALUES (?1, 1, ?2)
                 ON CONFLICT (key) DO UPDATE SET failures = auth_failures.failures + 1",
            )?;
            for key in &keys {
                add.execute(params![key.key, now])?;
            }
            Ok(true)
        })
        .await
    }

    /// Takes back the attempt counted against `keys` (its password was right).
    pub async fn take_back_auth_attempt(&self, keys: Vec<String>) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.lock_key(COUNTING_LOCK)?;
            let mut take = conn.prepare_cached(
                "UPDATE auth_failures SET failures = failures - 1
                 WHERE key = ?1 AND failures > 0",
            )?;
            for key in &keys {
                take.execute([key])?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit;

    fn keys(address: &str, account: &str) -> Vec<FailureKey> {
        vec![
            FailureKey {
                key: format!("address:{address}"),
                limit: 30,
            },
            FailureKey {
                key: format!("account:{account}"),
                limit: 10,
            },
        ]
    }

    #[tokio::test]
    async fn an_account_is_held_back_at_its_limit_until_the_window_passes() {
        let (_dir, _store, writer) = testkit::store();
        let window = 300;
        for n in 0..10 {
            let begun = writer
                .count_auth_attempt(keys("192.0.2.1", "alice@x.example"), 1000 + n, window)
                .await
                .unwrap();
            assert!(begun, "attempt {n}");
        }
        let held = writer
            .count_auth_attempt(keys("192.0.2.1", "alice@x.example"), 1010, window)
            .await
            .unwrap();
        assert!(!held, "the account is held back");
        let other = writer
            .count_auth_attempt(keys("192.0.2.1", "bob@x.example"), 1010, window)
            .await
            .unwrap();
        assert!(other, "another account is not");
        let later = writer
            .count_auth_attempt(keys("192.0.2.1", "alice@x.example"), 1000 + window, window)
            .await
            .unwrap();
        assert!(later, "the window passes");
    }

    #[tokio::test]
    async fn an_address_is_held_back_across_accounts_and_a_right_password_takes_back() {
        let (_dir, _store, writer) = testkit::store();
        for n in 0..30 {
            let account = format!("user{n}@x.example");
            let begun = writer
                .count_auth_attempt(keys("192.0.2.9", &account), 1000, 300)
                .await
                .unwrap();
            assert!(begun, "attempt {n}");
        }
        let held = writer
            .count_auth_attempt(keys("192.0.2.9", "fresh@x.example"), 1000, 300)
            .await
            .unwrap();
        assert!(!held, "the address is held back, whatever the account");
        let elsewhere = writer
            .count_auth_attempt(keys("192.0.2.10", "fresh@x.example"), 1000, 300)
            .await
            .unwrap();
        assert!(elsewhere, "another address is not");

        for _ in 0..20 {
            let attempt = keys("198.51.100.1", "carol@x.example");
            assert!(writer
                .count_auth_attempt(attempt.clone(), 1000, 300)
                .await
                .unwrap());
            let all = attempt.into_iter().map(|k| k.key).collect();
            writer.take_back_auth_attempt(all).await.unwrap();
        }
        let after_successes = writer
            .count_auth_attempt(keys("198.51.100.1", "carol@x.example"), 1000, 300)
            .await
            .unwrap();
        assert!(after_successes, "right passwords count nothing");
    }

    #[tokio::test]
    async fn attempts_in_flight_count_before_their_passwords_are_checked() {
        let (_dir, _store, writer) = testkit::store();
        let begun: Vec<_> = (0..50)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .count_auth_attempt(keys("192.0.2.7", "dave@x.example"), 1000, 300)
                        .await
                })
            })
            .collect();
        let mut admitted = 0;
        for attempt in begun {
            if attempt.await.unwrap().unwrap() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10, "a burst meets the account's limit exactly");
    }
}
