//! The delivery queue (SPEC E7): the only module that changes delivery rows. It lives
//! in the store and goes through the same single writer as everything else, so a
//! message is queued in the same transaction that stores it in its conversation, and
//! survives restarts.
//!
//! A delivery moves queued → sending → sent | deferred | failed. `sending` is committed
//! before the connection is opened; after a crash, such rows are queued again, so a
//! crash costs at most one duplicate, never a lost message.

use crate::clock::Clock;
use crate::store::outbound::{
    self, DeliveryUpdate, DueMessage, DueRecipient, FiledOutbound, NewOutbound, NewSystemMail,
};
use crate::store::{StoreError, Writer};

use super::deliver::Outcome;

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

/// The queue's handle on the store.
#[derive(Clone)]
pub struct Queue {
    writer: Writer,
    clock: Clock,
    /// Seconds a message may stay undelivered.
    lifetime: i64,
}

impl Queue {
    pub fn new(writer: Writer, clock: Clock, lifetime: std::time::Duration) -> Queue {
        Queue {
            writer,
            clock,
            lifetime: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// When a message queued now expires.
    pub fn expiry(&self, now: i64) -> i64 {
        now.saturating_add(self.lifetime)
    }

    /// Stores the message in its conversation and queues it, in one transaction.
    pub async fn submit(&self, message: NewOutbound) -> Result<FiledOutbound, StoreError> {
        self.writer
            .write(move |conn| outbound::file_outbound(conn, &message))
            .await
    }

    /// Queues a message that belongs to no conversation.
    pub async fn submit_system(&self, message: NewSystemMail) -> Result<i64, StoreError> {
        self.writer
            .write(move |conn| outbound::file_system_mail(conn, &message))
            .await
    }

    /// Marks up to `limit` due messages `sending` and hands them out.
    pub async fn claim(&self, limit: usize) -> Result<Vec<DueMessage>, StoreError> {
        let now = self.now();
        self.writer
            .write(move |conn| outbound::claim_due(conn, now, limit))
            .await
    }

    /// Records what happened to each recipient of one attempt.
    pub async fn record(
        &self,
        recipients: &[DueRecipient],
        outcomes: &[Outcome],
    ) -> Result<(), StoreError> {
        let now = self.now();
        let updates: Vec<DeliveryUpdate> = recipients
            .iter()
            .zip(outcomes)
            .map(|(r, o)| update_for(r, o, now))
            .collect();
        self.writer
            .write(move |conn| outbound::record_outcomes(conn, &updates, now))
            .await
    }

    /// Queues deliveries interrupted by a crash again.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let now = self.now();
        self.writer
            .write(move |conn| outbound::requeue_interrupted(conn, now))
            .await
    }

    /// `outbound retry`: deferred or failed deliveries of a message go out now.
    pub async fn retry(&self, message_row: i64) -> Result<usize, StoreError> {
        let now = self.now();
        let expires = self.expiry(now);
        self.writer
            .write(move |conn| outbound::retry_message(conn, message_row, now, expires))
            .await
    }

    /// Records a custom From address awaiting its code and queues the code's mail, in
    /// one transaction.
    pub async fn request_from_address(
        &self,
        channel: String,
        address: String,
        code_sha256: String,
        mail: NewSystemMail,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                outbound::request_from_address(conn, &channel, &address, &code_sha256, mail.now)?;
                outbound::file_system_mail(conn, &mail).map(|_| ())
            })
            .await
    }

    /// Confirms the address whose code hashes to `code_sha256`, if requested since `since`.
    pub async fn confirm_from_address(
        &self,
        channel: String,
        code_sha256: String,
        since: i64,
    ) -> Result<Option<String>, StoreError> {
        let now = self.now();
        self.writer
            .write(move |conn| {
                outbound::confirm_from_address(conn, &channel, &code_sha256, since, now)
            })
            .await
    }

    /// An inbound bounce names one of our Message-IDs: its deliveries failed.
    pub async fn fail_bounced(
        &self,
        message_id: String,
        reply: String,
    ) -> Result<usize, StoreError> {
        let now = self.now();
        self.writer
            .write(move |conn| outbound::fail_by_message_id(conn, &message_id, &reply, now))
            .await
    }
}

/// The row update for one recipient's outcome: sent, failed (5xx or expired) or
/// deferred with backoff.
pub fn update_for(r: &DueRecipient, outcome: &Outcome, now: i64) -> DeliveryUpdate {
    let (status, reply, next) = match outcome {
        Outcome::Sent(reply) => ("sent", reply.clone(), now),
        Outcome::Permanent(reply) => ("failed", reply.clone(), now),
        Outcome::Temporary(reply) => {
            let next = now.saturating_add(backoff_secs(r.attempts));
            if next > r.expires_at {
                (
                    "failed",
                    format!("expired after {} attempts: {reply}", r.attempts),
                    now,
                )
            } else {
                ("deferred", reply.clone(), next)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let u = update_for(&recipient(1, now + 10_000), &t, now);
        assert_eq!((u.status, u.next_attempt_at), ("deferred", now + 300));
        let u = update_for(&recipient(6, now + 100), &t, now);
        assert_eq!(u.status, "failed");
        assert!(
            u.last_reply.starts_with("expired after 6 attempts: 451"),
            "{}",
            u.last_reply
        );
        let p = Outcome::Permanent("550 5.1.1 no such user".into());
        assert_eq!(
            update_for(&recipient(1, now + 10_000), &p, now).status,
            "failed"
        );
        let s = Outcome::Sent("250 2.0.0 ok".into());
        assert_eq!(
            update_for(&recipient(1, now + 10_000), &s, now).status,
            "sent"
        );
    }
}
