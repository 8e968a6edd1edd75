//! What each agent has seen in the web inbox: opening a conversation marks it seen, and
//! the list asks which of its rows have new messages since (shown in bold).

use std::collections::HashSet;

use super::{Caller, InboxError, Service};
use crate::store::ConversationRow;

impl Service {
    /// Notes that the caller opened conversation `id` (already shown to them). The
    /// operator has no list to mark.
    pub async fn mark_seen(&self, caller: &Caller, id: i64) -> Result<(), InboxError> {
        let Caller::User(email) = caller else {
            return Ok(());
        };
        Ok(self
            .writer
            .mark_seen(email.to_lowercase(), id, self.now())
            .await?)
    }

    /// The ones of `conversations` with a message newer than the caller's last look
    /// (or never opened by them).
    pub fn unseen(
        &self,
        caller: &Caller,
        conversations: &[ConversationRow],
    ) -> Result<HashSet<i64>, InboxError> {
        let Caller::User(email) = caller else {
            return Ok(HashSet::new());
        };
        let ids: Vec<i64> = conversations.iter().map(|c| c.id).collect();
        let seen = self.read(|r| r.seen_at(&email.to_lowercase(), &ids))?;
        Ok(conversations
            .iter()
            .filter(|c| seen.get(&c.id).is_none_or(|&at| c.last_message_at > at))
            .map(|c| c.id)
            .collect())
    }
}
