//! `web_presence`: who has a conversation open in the web inbox, or is typing a reply
//! in it, until when. Kept in the store so that agents served by different nodes see
//! each other; a report counts until its `until_at`, and expired rows are swept by
//! the next report.

use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::writer::Writer;

/// What an agent is doing in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    Viewing,
    Replying,
}

impl Doing {
    /// The name stored and sent to pages.
    pub fn name(self) -> &'static str {
        match self {
            Doing::Viewing => "viewing",
            Doing::Replying => "replying",
        }
    }

    /// The `Doing` a name stands for.
    pub fn from_name(name: &str) -> Option<Doing> {
        match name {
            "viewing" => Some(Doing::Viewing),
            "replying" => Some(Doing::Replying),
            _ => None,
        }
    }
}

/// One agent present in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub email: String,
    pub name: String,
    pub doing: Doing,
}

/// A report: `email` (`name`) is `doing` in `conversation` until `until`; `doing` of
/// `None` says they left.
#[derive(Debug, Clone)]
pub struct PresenceReport {
    pub conversation: i64,
    pub email: String,
    pub name: String,
    pub doing: Option<Doing>,
    pub now: i64,
    pub until: i64,
}

impl Writer {
    /// Records a presence report, and forgets every report past its time.
    pub async fn report_presence(&self, report: PresenceReport) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM web_presence WHERE until_at <= ?1")?
                .execute([report.now])?;
            match report.doing {
                Some(doing) => conn
                    .prepare_cached(
                        "INSERT INTO web_presence
                             (conversation_id, user_email, user_name, doing, until_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (conversation_id, user_email) DO UPDATE SET
                             user_name = excluded.user_name, doing = excluded.doing,
                             until_at = excluded.until_at",
                    )?
                    .execute(params![
                        report.conversation,
                        report.email,
                        report.name,
                        doing.name(),
                        report.until
                    ])?,
                None => conn
                    .prepare_cached(
                        "DELETE FROM web_presence
                         WHERE conversation_id = ?1 AND user_email = ?2",
                    )?
                    .execute(params![report.conversation, report.email])?,
            };
            Ok(())
        })
        .await
    }
}

impl Reader {
    /// Everyone present in `conversation` at `now`, by name then email.
    pub fn present(&self, conversation: i64, now: i64) -> Result<Vec<Present>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_email, user_name, doing FROM web_presence
             WHERE conversation_id = ?1 AND until_at > ?2
             ORDER BY user_name, user_email",
        )?;
        let rows = stmt.query_map(params![conversation, now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut present = Vec::new();
        for row in rows {
            let (email, name, doing) = row?;
            if let Some(doing) = Doing::from_name(&doing) {
                present.push(Present { email, name, doing });
            }
        }
        Ok(present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit;

    fn report(conversation: i64, email: &str, doing: Option<Doing>, now: i64) -> PresenceReport {
        PresenceReport {
            conversation,
            email: email.to_string(),
            name: email.split('@').next().unwrap_or_default().to_string(),
            doing,
            now,
            until: now + 30,
        }
    }

    fn doing_in(reader: &Reader, conversation: i64, now: i64) -> Vec<(String, Doing)> {
        reader
            .present(conversation, now)
            .unwrap()
            .into_iter()
            .map(|p| (p.email, p.doing))
            .collect()
    }

    #[tokio::test]
    async fn the_latest_report_counts_until_it_expires_and_leaving_ends_it() {
        let (_dir, store, writer) = testkit::store();
        let reader = store.reader().unwrap();
        writer
            .report_presence(report(7, "bob@x.example", Some(Doing::Viewing), 100))
            .await
            .unwrap();
        writer
            .report_presence(report(7, "alice@x.example", Some(Doing::Viewing), 100))
            .await
            .unwrap();
        writer
            .report_presence(report(7, "bob@x.example", Some(Doing::Replying), 110))
            .await
            .unwrap();
        assert_eq!(
            doing_in(&reader, 7, 111),
            vec![
                ("alice@x.example".to_string(), Doing::Viewing),
                ("bob@x.example".to_string(), Doing::Replying)
            ]
        );
        assert!(doing_in(&reader, 8, 111).is_empty());
        assert_eq!(
            doing_in(&reader, 7, 130),
            vec![("bob@x.example".to_string(), Doing::Replying)],
            "alice sent no heartbeat for 30 s"
        );
        writer
            .report_presence(report(7, "bob@x.example", None, 131))
            .await
            .unwrap();
        assert!(doing_in(&reader, 7, 131).is_empty(), "bob left");
    }

    #[tokio::test]
    async fn expired_reports_are_swept_not_kept_forever() {
        let (_dir, store, writer) = testkit::store();
        writer
            .report_presence(report(9, "bob@x.example", Some(Doing::Viewing), 300))
            .await
            .unwrap();
        writer
            .report_presence(report(10, "alice@x.example", Some(Doing::Viewing), 330))
            .await
            .unwrap();
        let reader = store.reader().unwrap();
        let rows: i64 = reader
            .conn
            .query_row("SELECT COUNT(*) FROM web_presence", (), |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 1,
            "bob's expired report in another conversation is gone"
        );
    }
}
