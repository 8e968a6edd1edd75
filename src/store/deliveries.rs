//! `outbound_deliveries`: one row per recipient of every message we send. Every change
//! of a delivery's status is here: queued with its message, claimed (`sending`), the
//! outcome of an attempt through [`after_attempt`] (the one mapping of an SMTP outcome
//! to a status, which the worker's log and metrics read too), re-queued after a crash
//! or by `outbound retry`, failed by a bounce.
//!
//! A delivery moves queued → sending → sent | deferred | failed. `sending` is committed
//! before the connection is opened; after a crash, such rows are queued again, so a
//! crash costs at most one duplicate, never a lost message.

use super::db::{Conn, Dialect, OptionalExtension};
use crate::params;

use super::connection::Reader;
use super::conversations::outbound_message;
use super::error::StoreError;
use super::rows::{
    BounceApplied, DeliveryStatus, DeliveryUpdate, DueMessage, DueRecipient, Outcome,
    RecipientDelivery,
};
use super::writer::Writer;
use crate::pipeline::bounce::Bounce;

/// Wait before attempt n+1 after n failed attempts: minutes first, then hourly.
pub fn backoff_secs(attempts: i64) -> i64 {
    match attempts {
        ..=1 => 5 * 60,
        2 => 10 * 60,
        3 => 20 * 60,
        4 => 40 * 60,
        _ => 60 * 60,
    }
}

/// What an attempt's outcome does to a recipient's delivery: sent; failed (5xx, or a
/// temporary failure whose next try would come after the message expires); else
/// deferred with backoff. The worker logs and counts the status this returns, and the
/// store records it, so an outcome is named the same way everywhere.
pub fn after_attempt(r: &DueRecipient, outcome: &Outcome, now: i64) -> DeliveryUpdate {
    let (status, reply, next) = match outcome {
        Outcome::Sent(reply) => (DeliveryStatus::Sent, reply.clone(), now),
        Outcome::Permanent(reply) => (DeliveryStatus::Failed, reply.clone(), now),
        Outcome::Temporary(reply) => {
            let next = now.saturating_add(backoff_secs(r.attempts));
            if next > r.expires_at {
                let reply = format!("expired after {} attempts: {reply}", r.attempts);
                (DeliveryStatus::Failed, reply, now)
            } else {
                (DeliveryStatus::Deferred, reply.clone(), next)
            }
        }
    };
    DeliveryUpdate {
        delivery_id: r.delivery_id,
        status,
        last_reply: reply,
        next_attempt_at: next,
    }
}

impl Writer {
    /// Marks the due deliveries of up to `limit` messages `sending` and hands them out.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueMessage>, StoreError> {
        let node = self.node();
        self.write(move |conn| claim_due(conn, now, limit, &node))
            .await
    }

    /// Records what each attempt did (the updates come from [`after_attempt`]).
    pub async fn record_deliveries(
        &self,
        updates: Vec<DeliveryUpdate>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| record_outcomes(conn, &updates, now))
            .await
    }

    /// Queues deliveries interrupted by a crash or stop again; returns how many.
    pub async fn requeue_interrupted(&self, now: i64) -> Result<usize, StoreError> {
        let node = self.node();
        self.write(move |conn| requeue_interrupted(conn, now, &node))
            .await
    }

    /// `outbound retry`: deferred or failed deliveries of a message go out now, with a
    /// lifetime until at least `expires_at`. Returns how many.
    pub async fn retry_message(
        &self,
        message_row: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| retry_message(conn, message_row, now, expires_at))
            .await
    }

    /// An inbound bounce names one of our Message-IDs: its unfinished deliveries fail.
    pub async fn fail_deliveries_of(
        &self,
        message_id: String,
        reply: String,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| fail_by_message_id(conn, &message_id, &reply, now))
            .await
    }
}

pub(super) fn queue(
    conn: &Conn,
    raw_id: i64,
    message_row: Option<i64>,
    mail_from: &str,
    recipients: &[String],
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO outbound_deliveries (raw_id, message_row, mail_from, recipient,
             next_attempt_at, expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
    )?;
    for recipient in recipients {
        stmt.execute(params![
            raw_id,
            message_row,
            mail_from,
            recipient,
            now,
            expires_at
        ])?;
    }
    Ok(())
}

/// Delete forever: the deliveries of the conversation's messages go with them (what was
/// not sent yet is not sent).
pub(super) fn forget_conversation(conn: &Conn, conversation_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM outbound_deliveries
         WHERE message_row IN (SELECT id FROM messages WHERE conversation_id = ?1)",
    )?
    .execute([conversation_id])?;
    Ok(())
}

/// Due messages never tried yet (fresh mail, Postfix's "active" side). The first
/// condition repeats the `outbound_due` index's, so that partial index serves it.
const DUE_FRESH: &str = "SELECT raw_id FROM outbound_deliveries
     WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?1
       AND status = 'queued' AND attempts = 0
     GROUP BY raw_id ORDER BY MIN(next_attempt_at), raw_id LIMIT ?2";

/// Every due message, retries included, the longest waiting first.
const DUE_ALL: &str = "SELECT raw_id FROM outbound_deliveries
     WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?1
     GROUP BY raw_id ORDER BY MIN(next_attempt_at), raw_id LIMIT ?2";

/// Marks the due deliveries of up to `limit` messages `sending` and returns them.
/// Fresh mail gets half the slots (rounded up) whenever any is due, the rest go by next
/// attempt: a backlog of due retries to a dead host never holds back a new reply.
fn claim_due(
    conn: &Conn,
    now: i64,
    limit: usize,
    node: &str,
) -> Result<Vec<DueMessage>, StoreError> {
    if conn.dialect() == Dialect::Postgres {
        requeue_abandoned(conn, now)?;
    }
    let mut raw_ids = due_messages(conn, DUE_FRESH, now, limit.div_ceil(2))?;
    let fresh = raw_ids.len();
    let others: Vec<i64> = due_messages(conn, DUE_ALL, now, limit)?
        .into_iter()
        .filter(|id| !raw_ids.contains(id))
        .take(limit - fresh)
        .collect();
    raw_ids.extend(others);
    let mut claimed = Vec::with_capacity(raw_ids.len());
    for raw_id in raw_ids {
        let message = claim_message(conn, raw_id, now, node)?;
        // Another node may have claimed every recipient first (shared store).
        if !message.recipients.is_empty() {
            claimed.push(message);
        }
    }
    Ok(claimed)
}

/// How long a claim holds; a node that died mid-send leaves its deliveries to others
/// after this (its own restart requeues them at once).
const CLAIM_LEASE_SECS: i64 = 600;

/// Claims of nodes that stopped renewing them (killed mid-send) are queued again: at
/// most one extra copy, as after a crash of a single node.
fn requeue_abandoned(conn: &Conn, now: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'queued', claimed_by = NULL,
                 next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
             WHERE status = 'sending' AND claim_expires_at < ?1",
        )?
        .execute([now])?)
}

/// The claim's row selection: on PostgreSQL, rows another node is claiming right now
/// are skipped rather than waited for.
const CLAIM_ROWS_SQLITE: &str = "UPDATE outbound_deliveries SET status = 'sending',
         attempts = attempts + 1, updated_at = ?2, claimed_by = ?3, claim_expires_at = ?4
     WHERE raw_id = ?1 AND status IN ('queued', 'deferred') AND next_attempt_at <= ?2
     RETURNING id, recipient, attempts, expires_at, mail_from, message_row";
const CLAIM_ROWS_POSTGRES: &str = "UPDATE outbound_deliveries SET status = 'sending',
         attempts = attempts + 1, updated_at = ?2, claimed_by = ?3, claim_expires_at = ?4
     WHERE id IN (SELECT id FROM outbound_deliveries
                  WHERE raw_id = ?1 AND status IN ('queued', 'deferred')
                    AND next_attempt_at <= ?2
                  FOR UPDATE SKIP LOCKED)
     RETURNING id, recipient, attempts, expires_at, mail_from, message_row";

fn due_messages(conn: &Conn, sql: &str, now: i64, limit: usize) -> Result<Vec<i64>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_map(params![now, limit as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

fn claim_message(conn: &Conn, raw_id: i64, now: i64, node: &str) -> Result<DueMessage, StoreError> {
    let mut mail_from = String::new();
    let mut message_row = None;
    let claim = match conn.dialect() {
        Dialect::Sqlite => CLAIM_ROWS_SQLITE,
        Dialect::Postgres => CLAIM_ROWS_POSTGRES,
    };
    let recipients = conn
        .prepare_cached(claim)?
        .query_map(params![raw_id, now, node, now + CLAIM_LEASE_SECS], |r| {
            Ok((
                DueRecipient {
                    delivery_id: r.get(0)?,
                    address: r.get(1)?,
                    attempts: r.get(2)?,
                    expires_at: r.get(3)?,
                },
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?
        .map(|row| {
            row.map(|(recipient, from, row)| {
                mail_from = from;
                message_row = row;
                recipient
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let raw = conn
        .prepare_cached("SELECT body FROM raw_messages WHERE id = ?1")?
        .query_row([raw_id], |r| r.get(0))?;
    Ok(DueMessage {
        raw_id,
        message_row,
        mail_from,
        raw,
        recipients,
    })
}

/// Records the outcome of an attempt for each recipient.
fn record_outcomes(conn: &Conn, updates: &[DeliveryUpdate], now: i64) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbound_deliveries SET status = ?2, last_reply = ?3, next_attempt_at = ?4,
             updated_at = ?5
         WHERE id = ?1",
    )?;
    for u in updates {
        stmt.execute(params![
            u.delivery_id,
            u.status.as_str(),
            u.last_reply,
            u.next_attempt_at,
            now
        ])?;
    }
    Ok(())
}

/// After a crash or restart: deliveries left `sending` are queued again (at most one
/// extra send, never a lost message); on a shared store, those this node claimed (and
/// any whose claim ran out), not those another node is sending now. They keep their place at the head of the queue
/// (claiming never moves `next_attempt_at` forward), so their resend goes out first and
/// is not itself left hanging behind the backlog when the next crash comes. Returns how
/// many.
fn requeue_interrupted(conn: &Conn, now: i64, node: &str) -> Result<usize, StoreError> {
    let mine = match conn.dialect() {
        Dialect::Sqlite => "1 = 1 OR ?2 IS NULL",
        Dialect::Postgres => "(claimed_by = ?2 OR claimed_by IS NULL OR claim_expires_at < ?1)",
    };
    let sql = format!(
        "UPDATE outbound_deliveries SET status = 'queued', claimed_by = NULL,
             next_attempt_at = MIN(next_attempt_at, ?1),
             updated_at = ?1
         WHERE status = 'sending' AND ({mine})"
    );
    Ok(conn.prepare_cached(&sql)?.execute(params![now, node])?)
}

/// Queues the deferred or failed deliveries of an outbound message again, now, with a
/// fresh lifetime. Returns how many.
fn retry_message(
    conn: &Conn,
    message_row: i64,
    now: i64,
    expires_at: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'queued', next_attempt_at = ?2,
                 expires_at = MAX(expires_at, ?3), updated_at = ?2
             WHERE message_row = ?1 AND status IN ('deferred', 'failed')",
        )?
        .execute(params![message_row, now, expires_at])?)
}

/// Marks every unfinished delivery of the outbound message with this Message-ID
/// failed (an inbound bounce names it). Returns how many.
fn fail_by_message_id(
    conn: &Conn,
    message_id: &str,
    reply: &str,
    now: i64,
) -> Result<usize, StoreError> {
    match outbound_message(conn, message_id)? {
        Some((row, _)) => fail_recipient(conn, row, None, reply, now),
        None => Ok(0),
    }
}

/// Applies an inbound bounce to the first of its Message-IDs that is one of our
/// outbound messages: the reported failed recipients fail, with their DSN status; when
/// none of them is a recipient of that message, all its deliveries fail. Unknown ids
/// change nothing (`None`).
pub(super) fn apply_bounce(
    conn: &Conn,
    bounce: &Bounce,
    now: i64,
) -> Result<Option<BounceApplied>, StoreError> {
    for id in &bounce.message_ids {
        let Some((row, _)) = outbound_message(conn, id)? else {
            continue;
        };
        let mut changed = 0;
        let mut matched = false;
        for failed in &bounce.failed {
            let hit = std::iter::once(&failed.address).chain(failed.original.as_ref());
            for address in hit {
                let n = fail_recipient(conn, row, Some(address), &failed.status, now)?;
                if n > 0 {
                    matched = true;
                    changed += n;
                    break;
                }
                matched |= has_recipient(conn, row, address)?;
            }
        }
        if !matched {
            changed += fail_recipient(conn, row, None, &bounce.summary, now)?;
        }
        return Ok(Some(BounceApplied {
            outbound_row: row,
            failed: changed,
        }));
    }
    Ok(None)
}

/// Fails the unfinished deliveries of an outbound message: to `address` only, or all.
fn fail_recipient(
    conn: &Conn,
    message_row: i64,
    address: Option<&str>,
    reply: &str,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbound_deliveries SET status = 'failed', last_reply = ?3, updated_at = ?4
             WHERE message_row = ?1 AND (lower(recipient) = ?2 OR ?2 IS NULL)
               AND status != 'failed'",
        )?
        .execute(params![message_row, address, reply, now])?)
}

fn has_recipient(conn: &Conn, message_row: i64, address: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM outbound_deliveries WHERE message_row = ?1 AND lower(recipient) = ?2",
        )?
        .query_row(params![message_row, address], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Reader {
    /// Per-recipient delivery of one outbound message.
    pub fn deliveries(&self, message_row: i64) -> Result<Vec<RecipientDelivery>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT recipient, status, attempts, last_reply, next_attempt_at, updated_at
             FROM outbound_deliveries WHERE message_row = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([message_row], |r| {
            Ok(RecipientDelivery {
                recipient: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                last_reply: r.get(3)?,
                next_attempt_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recipient deliveries per status, for the metrics.
    pub fn deliveries_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM outbound_deliveries GROUP BY status")?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deliveries that reached the receiver (`sent`); the outbound benchmark counts them.
    pub fn sent_deliveries(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbound_deliveries WHERE status = 'sent'",
            (),
            |r| r.get(0),
        )?)
    }

    /// Deliveries not finished yet (queued, sending or deferred).
    pub fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbound_deliveries
             WHERE status IN ('queued', 'sending', 'deferred')",
            (),
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::bounce::FailedRecipient;
    use crate::store::rows::NewSystemMail;
    use crate::store::testkit::{self, reply};

    fn recipient(attempts: i64, expires_at: i64) -> DueRecipient {
        DueRecipient {
            delivery_id: 1,
            address: "jan@klant.example".into(),
            attempts,
            expires_at,
        }
    }

    #[test]
    fn backoff_is_minutes_then_hourly() {
        let waits: Vec<i64> = (1..=7).map(backoff_secs).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600, 3600]);
    }

    #[test]
    fn temporary_defers_until_expiry_then_fails() {
        let now = 1_000_000;
        let t = Outcome::Temporary("451 4.3.0 try later".into());
        let u = after_attempt(&recipient(1, now + 10_000), &t, now);
        assert_eq!(
            (u.status, u.next_attempt_at),
            (DeliveryStatus::Deferred, now + 300)
        );
        let u = after_attempt(&recipient(6, now + 100), &t, now);
        assert_eq!(u.status, DeliveryStatus::Failed);
        assert!(
            u.last_reply.starts_with("expired after 6 attempts: 451"),
            "{}",
            u.last_reply
        );
        let p = Outcome::Permanent("550 5.1.1 no such user".into());
        let u = after_attempt(&recipient(1, now + 10_000), &p, now);
        assert_eq!(u.status, DeliveryStatus::Failed);
        let s = Outcome::Sent("250 2.0.0 ok".into());
        let u = after_attempt(&recipient(1, now + 10_000), &s, now);
        assert_eq!(u.status, DeliveryStatus::Sent);
    }

    fn bounce(id: &str, failed: &[&str]) -> Bounce {
        Bounce {
            message_ids: vec!["unrelated@x".into(), id.into()],
            failed: failed
                .iter()
                .map(|a| FailedRecipient {
                    address: a.to_string(),
                    original: None,
                    status: format!("5.1.1 {a} unknown"),
                })
                .collect(),
            summary: "5.0.0 bounced".into(),
        }
    }

    #[tokio::test]
    async fn a_bounce_fails_the_named_recipient_or_else_all_and_unknown_ids_nothing() {
        let (_dir, store, writer) = testkit::store();
        let one = writer.file_outbound(reply("one@mx")).await.expect("filed");
        let two = writer.file_outbound(reply("two@mx")).await.expect("filed");
        let apply = |b: Bounce| {
            writer.write(move |conn| Ok(apply_bounce(conn, &b, 20)?.map_or(0, |a| a.failed)))
        };
        assert_eq!(
            apply(bounce("nobody@mx", &["jan@klant.example"]))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            apply(bounce("one@mx", &["jan@klant.example"]))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            apply(bounce("two@mx", &["alias@klant.example"]))
                .await
                .unwrap(),
            2
        );
        let reader = store.reader().expect("reader");
        let statuses = |row| {
            reader
                .deliveries(row)
                .expect("deliveries")
                .into_iter()
                .map(|d| (d.status, d.last_reply.unwrap_or_default()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            statuses(one.message_row),
            [
                ("failed".into(), "5.1.1 jan@klant.example unknown".into()),
                ("queued".into(), String::new())
            ]
        );
        assert_eq!(
            statuses(two.message_row),
            [
                ("failed".into(), "5.0.0 bounced".into()),
                ("failed".into(), "5.0.0 bounced".into())
            ]
        );
    }

    fn system_mail(to: &str, now: i64) -> NewSystemMail {
        NewSystemMail {
            raw: b"Subject: x\r\n\r\nx\r\n".to_vec(),
            mail_from: "support@demo.hs-inbox.com".into(),
            recipients: vec![to.into()],
            now,
            expires_at: now + 86_400,
        }
    }

    #[tokio::test]
    async fn fresh_mail_is_claimed_before_a_backlog_of_due_retries() {
        let (_dir, _store, writer) = testkit::store();
        for n in 0..10 {
            let mail = system_mail(&format!("x{n}@dead.example"), 10);
            writer.file_system_mail(mail).await.expect("queued");
        }
        // The backlog: every one tried once and deferred, due again at 20.
        let tried = writer.claim_deliveries(10, 100).await.expect("claimed");
        let updates = tried
            .iter()
            .flat_map(|m| &m.recipients)
            .map(|r| DeliveryUpdate {
                delivery_id: r.delivery_id,
                status: DeliveryStatus::Deferred,
                last_reply: "421 4.4.2 timeout".into(),
                next_attempt_at: 20,
            })
            .collect();
        writer
            .record_deliveries(updates, 10)
            .await
            .expect("deferred");
        let fresh = writer
            .file_system_mail(system_mail("jan@klant.example", 30))
            .await
            .expect("queued");
        let claimed = writer.claim_deliveries(100, 4).await.expect("claimed");
        let ids: Vec<i64> = claimed.iter().map(|m| m.raw_id).collect();
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert!(ids.contains(&fresh), "fresh {fresh} not in {ids:?}");
        let retries = claimed.iter().filter(|m| m.recipients[0].attempts == 2);
        assert_eq!(retries.count(), 3);
    }
}
