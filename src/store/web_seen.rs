//! `web_seen`: when each agent last opened each conversation in the web inbox, so the
//! list can show in bold what changed since (UI.md: "unread/new in bold").

use std::collections::HashMap;

use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::writer::Writer;

impl Writer {
    /// Notes that `user` opened conversation `id` at `at`.
    pub async fn mark_seen(&self, user: String, id: i64, at: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO web_seen (user_email, conversation_id, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_email, conversation_id)
                 DO UPDATE SET seen_at = MAX(web_seen.seen_at, excluded.seen_at)",
            )?
            .execute(params![user, id, at])?;
            Ok(())
        })
        .await
    }
}

impl Reader {
    /// When `user` last opened each of `ids` (those never opened are absent).
    pub fn seen_at(&self, user: &str, ids: &[i64]) -> Result<HashMap<i64, i64>, StoreError> {
        let mut seen = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT seen_at FROM web_seen WHERE user_email = ?1 AND conversation_id = ?2",
        )?;
        for &id in ids {
            if let Some(at) = stmt
                .query_map(params![user, id], |r| r.get::<_, i64>(0))?
                .next()
                .transpose()?
            {
                seen.insert(id, at);
            }
        }
        Ok(seen)
    }
}
