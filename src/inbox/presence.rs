//! Presence on `Service`: who else has a conversation open in the web inbox or is
//! replying there. Reports are kept in the store for [`PRESENCE_TTL`] seconds after
//! the last one, so agents on different nodes see each other.

use super::{InboxError, Service};
use crate::store::{Doing, PresenceReport};

/// Seconds a report counts without a heartbeat.
pub const PRESENCE_TTL: i64 = 30;

impl Service {
    /// Notes that `email` (`name`) is `doing` in conversation `id` now; `None`: left.
    /// The caller has checked that they may see the conversation.
    pub async fn report_presence(
        &self,
        id: i64,
        email: &str,
        name: &str,
        doing: Option<Doing>,
    ) -> Result<(), InboxError> {
        let now = self.now();
        let report = PresenceReport {
            conversation: id,
            email: email.to_lowercase(),
            name: name.to_string(),
            doing,
            now,
            until: now + PRESENCE_TTL,
        };
        Ok(self.writer.report_presence(report).await?)
    }

    /// Everyone but `me` present in conversation `id` now: (name, doing), by name.
    pub fn others_present(&self, id: i64, me: &str) -> Result<Vec<(String, Doing)>, InboxError> {
        let me = me.to_lowercase();
        let present = self.read(|r| r.present(id, self.now()))?;
        Ok(present
            .into_iter()
            .filter(|p| p.email != me)
            .map(|p| (p.name, p.doing))
            .collect())
    }
}
