//! The delivery queue (SPEC E7) as the outbound side sees it: the clock and the
//! message lifetime over the store's delivery operations. The rows and every change of
//! their status belong to `store::deliveries`; the queue lives in the store and goes
//! through the same single writer as everything else, so a message is queued in the
//! same transaction that stores it in its conversation, and survives restarts.

use crate::clock::Clock;
use crate::store::{
    after_attempt, DeliveryUpdate, DueMessage, DueRecipient, FiledOutbound, NewOutbound,
    NewSystemMail, Outcome, StoreError, Writer,
};

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
        self.writer.file_outbound(message).await
    }

    /// Queues a message that belongs to no conversation.
    pub async fn submit_system(&self, message: NewSystemMail) -> Result<i64, StoreError> {
        self.writer.file_system_mail(message).await
    }

    /// Marks up to `limit` due messages `sending` and hands them out.
    pub async fn claim(&self, limit: usize) -> Result<Vec<DueMessage>, StoreError> {
        let now = self.now();
        self.writer.claim_deliveries(now, limit).await
    }

    /// What one attempt's outcomes do to its recipients' deliveries, now.
    pub fn after_attempt(
        &self,
        recipients: &[DueRecipient],
        outcomes: &[Outcome],
    ) -> Vec<DeliveryUpdate> {
        let now = self.now();
        recipients
            .iter()
            .zip(outcomes)
            .map(|(r, o)| after_attempt(r, o, now))
            .collect()
    }

    /// Records what happened to each recipient of one attempt.
    pub async fn record(&self, updates: Vec<DeliveryUpdate>) -> Result<(), StoreError> {
        let now = self.now();
        self.writer.record_deliveries(updates, now).await
    }

    /// Queues deliveries interrupted by a crash again.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let now = self.now();
        self.writer.requeue_interrupted(now).await
    }

    /// `outbound retry`: deferred or failed deliveries of a message go out now.
    pub async fn retry(&self, message_row: i64) -> Result<usize, StoreError> {
        let now = self.now();
        let expires = self.expiry(now);
        self.writer.retry_message(message_row, now, expires).await
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
            .request_from_address(channel, address, code_sha256, mail)
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
            .confirm_from_address(channel, code_sha256, since, now)
            .await
    }

    /// An inbound bounce names one of our Message-IDs: its deliveries failed.
    pub async fn fail_bounced(
        &self,
        message_id: String,
        reply: String,
    ) -> Result<usize, StoreError> {
        let now = self.now();
        self.writer.fail_deliveries_of(message_id, reply, now).await
    }
}
