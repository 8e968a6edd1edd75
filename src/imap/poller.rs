//! One poller per connected team mailbox (B3): connect, log in, sync every configured
//! folder by UID, then wait for new mail with IDLE (or sleep the poll interval when the
//! server has no IDLE, or several folders are synced) and sync again.
//!
//! Exactly once: each batch of fetched messages is filed together with the folder's new
//! UID checkpoint in one store transaction, so a crash or a dropped connection can only
//! make the next sync fetch a batch again, which Message-ID dedupe absorbs. When the
//! folder's UIDVALIDITY changes the whole folder is fetched again, with the same
//! guarantee. Junk folders (`\Junk`, or named Junk/Spam) are never read.
//!
//! Faults never disable a channel: every failure is one log line, a `backoff` (or
//! `auth_failed`) state in the store, and a retry after an exponential delay with
//! jitter. Each channel runs in its own task, so one failing mailbox stalls no other.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::sync::watch;

use super::client::{Credentials, Folder, ImapError, Session};
use crate::clock::Clock;
use crate::config::{ImapChannel, RemoteServer};
use crate::ingest::{Ingest, Source};
use crate::pipeline::Target;
use crate::store::imap::{BatchFiled, Checkpoint, FetchedBatch, Lease, SyncState};
use crate::store::{StoreError, Writer};

/// Messages fetched and committed together; bounds memory and the work a crash repeats.
const BATCH: usize = 100;
/// Servers drop IDLE after 30 minutes (RFC 2177); re-issue it well before.
const IDLE_LIMIT: Duration = Duration::from_secs(25 * 60);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What one poller needs to know about its channel.
#[derive(Clone, PartialEq, Eq)]
pub struct PollerConfig {
    pub inbox: String,
    /// The channel's (team mailbox's) address; names the channel in the store.
    pub address: String,
    pub imap: ImapChannel,
}

/// Why a sync round stopped.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("storing fetched mail: {0}")]
    Store(#[from] StoreError),
    #[error("reading credentials: {0}")]
    Credentials(String),
}

impl SyncError {
    fn is_auth(&self) -> bool {
        matches!(
            self,
            SyncError::Imap(ImapError::Auth(_)) | SyncError::Credentials(_)
        )
    }
}

/// Polls one mailbox until `shutdown` turns true.
pub struct Poller {
    config: PollerConfig,
    writer: Writer,
    /// The pipeline's entry, shared with SMTP: parse, classify, the store's job.
    ingest: Ingest,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
    failures: u32,
    /// On a shared store: whether this node held every folder's lease in the last round
    /// (a node that does not watches for the holder's lease running out).
    holds_every_lease: bool,
}

impl Poller {
    pub fn new(
        config: PollerConfig,
        writer: Writer,
        ingest: Ingest,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
    ) -> Poller {
        Poller {
            config,
            writer,
            ingest,
            clock,
            shutdown,
            failures: 0,
            holds_every_lease: true,
        }
    }

    /// Runs until shutdown; never returns early on errors.
    pub async fn run(mut self) {
        let mut shutdown = self.shutdown.clone();
        while !*shutdown.borrow() {
            let outcome = tokio::select! {
                outcome = self.session() => outcome,
                _ = shutdown.changed() => break,
            };
            if let Err(e) = outcome {
                self.failures = self.failures.saturating_add(1);
                let delay = backoff(self.failures);
                let state = if e.is_auth() {
                    SyncState::AuthFailed
                } else {
                    SyncState::Backoff
                };
                tracing::warn!(
                    channel = %self.config.address,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "imap sync failed"
                );
                self.set_state(state, Some(&e.to_string())).await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        tracing::debug!(channel = %self.config.address, "imap poller stopped");
    }

    /// One connection: log in, then sync and wait, over and over, until an error.
    async fn session(&mut self) -> Result<(), SyncError> {
        self.set_state(SyncState::Syncing, None).await;
        let server = &self.config.imap.server;
        let credentials = credentials(server).await?;
        let mut session = Session::connect(server, self.config.imap.timeout).await?;
        session.authenticate(&credentials).await?;
        let folders = self.readable_folders(&mut session).await?;
        let idle = session.has_capability("IDLE");
        loop {
            self.set_state(SyncState::Syncing, None).await;
            self.holds_every_lease = true;
            for folder in &folders {
                self.sync_folder(&mut session, folder).await?;
            }
            let now = (self.clock)();
            let channel = self.config.address.clone();
            self.writer.record_channel_sync(channel, now).await?;
            self.failures = 0;
            self.wait_for_mail(&mut session, &folders, idle).await?;
        }
    }

    /// The configured folders minus Junk ones (by `\Junk` or by name) and missing ones.
    async fn readable_folders(&self, session: &mut Session) -> Result<Vec<String>, SyncError> {
        let mut readable = Vec::new();
        for folder in &self.config.imap.folders {
            match session.folder_attributes(folder).await? {
                None => {
                    tracing::warn!(channel = %self.config.address, folder, "folder not found on the server; skipped")
                }
                Some(junk) if junk || is_junk_name(folder) => tracing::info!(
                    channel = %self.config.address,
                    folder,
                    "junk folder: never ingested"
                ),
                Some(_) => readable.push(folder.clone()),
            }
        }
        Ok(readable)
    }

    /// IDLE on the only folder, else sleep the poll interval (IDLE watches one folder).
    async fn wait_for_mail(
        &self,
        session: &mut Session,
        folders: &[String],
        idle: bool,
    ) -> Result<(), SyncError> {
        let shared = self.writer.is_shared();
        match folders {
            [folder] if idle && self.holds_every_lease => {
                session.examine(folder).await?;
                // On a shared store the holder wakes to renew its lease in time.
                let limit = match shared {
                    true => IDLE_LIMIT.min(self.lease_period() / 3),
                    false => IDLE_LIMIT,
                };
                let end = session.idle(limit).await?;
                tracing::debug!(channel = %self.config.address, ?end, "idle ended");
            }
            _ if shared => {
                let wait = self.config.imap.poll_interval.min(self.lease_period() / 3);
                tokio::time::sleep(wait).await
            }
            _ => tokio::time::sleep(self.config.imap.poll_interval).await,
        }
        Ok(())
    }

    /// How long a folder's lease holds without renewal: three poll intervals, within
    /// 5 seconds and 5 minutes. Another node takes over within two of these after the
    /// holder stops.
    fn lease_period(&self) -> Duration {
        (self.config.imap.poll_interval * 3).clamp(Duration::from_secs(5), Duration::from_secs(300))
    }

    /// On a shared store, takes or renews this node's lease on `folder`: `Ok(None)` when
    /// another node holds it (this node leaves the folder alone). On SQLite (one node)
    /// there is nothing to hold: `Ok(Some(None))`.
    async fn lease(&mut self, folder: &str) -> Result<Option<Option<Lease>>, SyncError> {
        if !self.writer.is_shared() {
            return Ok(Some(None));
        }
        let seconds = self.lease_period().as_secs() as i64;
        let lease = self
            .writer
            .take_imap_lease(
                self.config.address.clone(),
                folder.to_string(),
                (self.clock)(),
                seconds,
            )
            .await?;
        if lease.is_none() {
            self.holds_every_lease = false;
            tracing::debug!(channel = %self.config.address, folder, "folder leased by another node");
        }
        Ok(lease.map(Some))
    }

    /// Fetches and files everything above the folder's checkpoint, batch by batch.
    async fn sync_folder(&mut self, session: &mut Session, folder: &str) -> Result<(), SyncError> {
        let Some(lease) = self.lease(folder).await? else {
            return Ok(());
        };
        let opened = session.examine(folder).await?;
        let start = self.start_uid(folder, &opened).await?;
        if opened
            .uidnext
            .is_some_and(|next| next <= start.saturating_add(1))
            && start > 0
        {
            return Ok(());
        }
        let uids = session.uids_after(start).await?;
        if uids.is_empty() && start == 0 {
            self.save_empty(folder, opened.uidvalidity).await?;
        }
        let mut filed = BatchFiled::default();
        for chunk in uids.chunks(BATCH) {
            let fetched = session.fetch(chunk).await?;
            let last_uid = chunk.last().copied().unwrap_or(start);
            let mut batch = self
                .batch(
                    folder,
                    Checkpoint {
                        uidvalidity: opened.uidvalidity,
                        last_uid,
                    },
                    fetched,
                )
                .await?;
            batch.lease = lease;
            let done = self.writer.file_imap_batch(batch).await?;
            filed.stored += done.stored;
            filed.duplicates += done.duplicates;
        }
        if !uids.is_empty() {
            tracing::info!(
                channel = %self.config.address,
                folder,
                fetched = uids.len(),
                stored = filed.stored,
                duplicates = filed.duplicates,
                "imap folder synced"
            );
        }
        Ok(())
    }

    /// The UID to fetch after: the checkpoint, or 0 when UIDVALIDITY changed.
    async fn start_uid(&self, folder: &str, opened: &Folder) -> Result<u32, SyncError> {
        let channel = self.config.address.clone();
        let name = folder.to_string();
        let saved = self.writer.imap_checkpoint(channel, name).await?;
        Ok(match saved {
            Some(cp) if cp.uidvalidity == opened.uidvalidity => cp.last_uid,
            Some(cp) => {
                tracing::warn!(
                    channel = %self.config.address,
                    folder,
                    old = cp.uidvalidity,
                    new = opened.uidvalidity,
                    "UIDVALIDITY changed: rescanning the folder (duplicates are skipped)"
                );
                0
            }
            None => 0,
        })
    }

    async fn save_empty(&self, folder: &str, uidvalidity: u32) -> Result<(), SyncError> {
        let channel = self.config.address.clone();
        let name = folder.to_string();
        let cp = Checkpoint {
            uidvalidity,
            last_uid: 0,
        };
        self.writer.save_imap_checkpoint(channel, name, cp).await?;
        Ok(())
    }

    /// The fetched messages as jobs for the store, through the pipeline's one entry,
    /// with the checkpoint they reach.
    async fn batch(
        &self,
        folder: &str,
        checkpoint: Checkpoint,
        fetched: Vec<(u32, Vec<u8>)>,
    ) -> Result<FetchedBatch, SyncError> {
        let target = Target {
            inbox: self.config.inbox.clone(),
            channel: self.config.address.clone(),
        };
        let source = Source::Imap {
            channel: &self.config.address,
        };
        let mut messages = Vec::with_capacity(fetched.len());
        for (_, raw) in fetched {
            let job = self.ingest.prepare(source, vec![target.clone()], raw);
            messages.push(job.await?);
        }
        Ok(FetchedBatch {
            channel: self.config.address.clone(),
            folder: folder.to_string(),
            checkpoint,
            messages,
            fetched_at: (self.clock)(),
            lease: None,
        })
    }

    /// Records the poller's state; a store failure here is logged, not fatal.
    async fn set_state(&self, state: SyncState, error: Option<&str>) {
        let channel = self.config.address.clone();
        let error = error.map(str::to_string);
        let now = (self.clock)();
        let written = self
            .writer
            .set_channel_state(channel, state, now, error)
            .await;
        if let Err(e) = written {
            tracing::warn!(channel = %self.config.address, error = %e, "could not record channel state");
        }
    }
}

/// Reads the password file, or runs the OAuth2 token command, afresh for each login.
async fn credentials(server: &RemoteServer) -> Result<Credentials, SyncError> {
    let username = server.username.clone().unwrap_or_default();
    if let Some(command) = server.oauth2_token_command.clone() {
        let token = tokio::task::spawn_blocking(move || token_from_command(&command))
            .await
            .map_err(|e| SyncError::Credentials(e.to_string()))??;
        return Ok(Credentials::OAuth2 { username, token });
    }
    let path = server.password_file.clone().unwrap_or_default();
    let password = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| SyncError::Credentials(format!("password_file {}: {e}", path.display())))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    Ok(Credentials::Password { username, password })
}

/// Runs `sh -c command`; its trimmed standard output is the token (never logged).
fn token_from_command(command: &str) -> Result<String, SyncError> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SyncError::Credentials(format!("oauth2_token_command: {e}")))?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || token.is_empty() {
        return Err(SyncError::Credentials(format!(
            "oauth2_token_command exited with {} and {} bytes of output",
            output.status,
            token.len()
        )));
    }
    Ok(token)
}

/// Junk by name, for servers without special-use flags: the last path segment.
fn is_junk_name(folder: &str) -> bool {
    let leaf = folder.rsplit(['/', '.']).next().unwrap_or(folder);
    ["junk", "spam", "junk e-mail", "junk email", "bulk mail"]
        .iter()
        .any(|name| leaf.eq_ignore_ascii_case(name))
}

/// Exponential delay with up to 50 % random jitter, capped: 1 s, 2 s, 4 s, … 5 min.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX);
    let jitter = RandomState::new().build_hasher().finish() % 1000;
    base + base.mul_f64(jitter as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_folders_are_recognized_by_name() {
        assert!(is_junk_name("Junk"));
        assert!(is_junk_name("INBOX.Spam"));
        assert!(is_junk_name("[Gmail]/Spam"));
        assert!(is_junk_name("Junk E-mail"));
        assert!(!is_junk_name("INBOX"));
        assert!(!is_junk_name("Spammers-we-answered"));
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        for failures in 1..40 {
            let delay = backoff(failures);
            let base = BACKOFF_FIRST
                .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                .min(BACKOFF_MAX);
            assert!(
                delay >= base && delay <= base.mul_f64(1.5),
                "{failures}: {delay:?}"
            );
        }
        assert_eq!(backoff(1).as_secs(), 1);
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.5));
    }
}
