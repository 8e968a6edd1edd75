//! The web inbox's sign-in on `Service`: passwords (Argon2id), sessions kept in the
//! store with a per-session CSRF token, and the reads the web pages need beyond the
//! API's (view counts, the live-update marker). A session of a user no longer in the
//! running configuration is refused, like a token.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::service::{access, Caller, InboxError, Service};
use crate::store::{FailureKey, ListFilter, NewWebSession, StoreError, View};

/// A session ends this long after sign-in, whatever its use.
pub const SESSION_LIFETIME_SECS: i64 = 14 * 24 * 3600;
/// Views are counted up to this many conversations (the sidebar shows "99+"): an
/// exact count of a view of 100,000 conversations reads them all, on every page.
pub const VIEW_COUNT_CAP: i64 = 100;
/// The longest password accepted (Argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A signed-in agent as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id: i64,
    pub email: String,
    pub csrf: String,
}

/// A session just opened: the secret goes into the cookie and is never stored.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub secret: String,
    pub session: WebSession,
}

fn hash_password(password: &str) -> Result<String, InboxError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| InboxError::Invalid(format!("password: cannot hash it: {e}")))
}

/// A hash to verify against when the user has none, so a wrong address takes as long
/// to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, matches nothing").unwrap_or_default())
}

fn verifies(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Service {
    /// Sets a configured user's web password (stored as an Argon2id hash); their open
    /// sessions end.
    pub async fn set_password(&self, email: &str, password: &str) -> Result<(), InboxError> {
        let config = self.config();
        let user = config.user(email).ok_or_else(|| {
            InboxError::Invalid(format!(
                "user {email} is not configured (no [[users]] entry with that email)"
            ))
        })?;
        if password.is_empty() {
            return Err(InboxError::Invalid("password: it is empty".into()));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(InboxError::Invalid(format!(
                "password: longer than {MAX_PASSWORD_LEN} bytes"
            )));
        }
        let hash = hash_password(password)?;
        let email = user.email.to_lowercase();
        Ok(self
            .writer
            .set_web_password(email, hash, self.now())
            .await?)
    }

    /// The configured user's address when `password` is theirs; `None` otherwise (no
    /// such user, no password set, wrong password). Slow on purpose (Argon2id): call it
    /// on the blocking pool.
    pub fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<String>, InboxError> {
        let config = self.config();
        let user = config.user(email.trim());
        let stored = match user {
            Some(u) => self.read(|r| r.web_password(&u.email.to_lowercase()))?,
            None => None,
        };
        let candidate = password
            .get(..password.len().min(MAX_PASSWORD_LEN))
            .unwrap_or("");
        let right = verifies(candidate, stored.as_deref().unwrap_or_else(|| decoy_hash()));
        Ok(user
            .filter(|_| right && stored.is_some())
            .map(|u| u.email.clone()))
    }

    /// Opens a session for `email` (already checked); returns its cookie secret.
    pub async fn open_session(&self, email: &str) -> Result<OpenedSession, InboxError> {
        let secret = super::token::secret().map_err(no_randomness)?;
        let csrf = super::token::secret().map_err(no_randomness)?;
        let id = self
            .writer
            .create_web_session(NewWebSession {
                secret_sha256: super::token::hash(&secret),
                user: email.to_lowercase(),
                csrf: csrf.clone(),
                now: self.now(),
            })
            .await?;
        Ok(OpenedSession {
            secret,
            session: WebSession {
                id,
                email: email.to_string(),
                csrf,
            },
        })
    }

    /// The session a cookie secret names, if it is valid now: stored, not past its
    /// lifetime, and of a user in the running configuration.
    pub fn web_session(&self, secret: &str) -> Result<Option<WebSession>, InboxError> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let stored = self.read(|r| r.web_session(&super::token::hash(secret)))?;
        let Some(row) = stored.filter(|s| self.now() - s.created_at < SESSION_LIFETIME_SECS) else {
            return Ok(None);
        };
        Ok(self.config().user(&row.user).map(|user| WebSession {
            id: row.id,
            email: user.email.clone(),
            csrf: row.csrf,
        }))
    }

    /// Whether session `id` is still open: not signed out, not ended at a reload, not
    /// expired.
    pub fn web_session_exists(&self, id: i64) -> Result<bool, InboxError> {
        let created_at = self.read(|r| r.web_session_created_at(id))?;
        Ok(created_at.is_some_and(|at| self.now() - at < SESSION_LIFETIME_SECS))
    }

    /// Ends the sessions of users no longer in the running configuration (at start and
    /// after each reload).
    pub async fn end_sessions_of_removed_users(&self) -> Result<usize, InboxError> {
        let users = self
            .config()
            .users
            .iter()
            .map(|u| u.email.to_lowercase())
            .collect();
        Ok(self.writer.end_sessions_of_removed_users(users).await?)
    }

    /// Signs a session out.
    pub async fn end_session(&self, id: i64) -> Result<(), InboxError> {
        Ok(self.writer.delete_web_session(id).await?)
    }

    /// Each view's count for `caller`, in one inbox or in all they may see; a count
    /// of [`VIEW_COUNT_CAP`] means that many or more.
    pub fn view_counts(
        &self,
        caller: &Caller,
        inbox: Option<&str>,
    ) -> Result<Vec<(View, i64)>, InboxError> {
        let config = self.config();
        let email = match caller {
            Caller::User(email) => email.to_lowercase(),
            Caller::Operator => String::new(),
        };
        let visible: Vec<String> = config
            .inboxes
            .iter()
            .filter(|i| access(&config, caller, &i.name).can_view())
            .map(|i| i.name.clone())
            .collect();
        let inbox = match inbox {
            Some(name) => Some(
                visible
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(name))
                    .cloned()
                    .ok_or_else(|| InboxError::NotFound(format!("inbox {name:?}")))?,
            ),
            None => None,
        };
        self.read(|r| {
            View::ALL
                .into_iter()
                .map(|view| {
                    let filter = ListFilter {
                        view: Some(view),
                        user: Some(email.clone()),
                        inbox: inbox.clone(),
                        visible_inboxes: Some(visible.clone()),
                        ..ListFilter::default()
                    };
                    Ok((view, r.count_conversations(&filter, VIEW_COUNT_CAP)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    /// Counts an authentication attempt (a sign-in, a rejected API token) against
    /// `keys`, in the store every node shares, unless one is at its limit within
    /// `window_secs`: then `false`, and the caller refuses without checking further.
    pub async fn count_auth_attempt(
        &self,
        keys: Vec<FailureKey>,
        window_secs: i64,
    ) -> Result<bool, InboxError> {
        Ok(self
            .writer
            .count_auth_attempt(keys, self.now(), window_secs)
            .await?)
    }

    /// Takes back the attempt counted against `keys`: its password was right.
    pub async fn take_back_auth_attempt(&self, keys: Vec<FailureKey>) -> Result<(), InboxError> {
        let keys = keys.into_iter().map(|k| k.key).collect();
        Ok(self.writer.take_back_auth_attempt(keys).await?)
    }

    /// Moves whenever a message is stored or a conversation changes.
    pub fn change_marker(&self) -> Result<(i64, i64), InboxError> {
        self.read(|r| r.change_marker())
    }
}

fn no_randomness(e: std::io::Error) -> InboxError {
    InboxError::Store(StoreError::Invalid(format!("no randomness: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_and_only_the_password_verifies() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verifies("correct horse", &hash));
        assert!(!verifies("correct hors", &hash));
        assert!(!verifies("correct horse", "not a phc string"));
    }
}
