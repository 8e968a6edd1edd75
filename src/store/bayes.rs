//! The token model's counts (C4): read whole by the classifier, which keeps them in
//! memory and reloads when `bayes_totals.generation` moves; changed by training —
//! agents' spam / not-spam marks (a stored message is trained once per class, and a
//! changed mind untrains the old class; the mark and its training share one
//! transaction) and `inboxgate spam train`.
//!
//! The counts are only as good as the tokenizer that made them: `bayes_totals.tokenizer`
//! records its version. A model made by another version is stale: the classifier
//! ignores it, and the next training resets it and retrains every marked message from
//! its stored raw copy (folders trained with `spam train` must be trained again).
//! Rare tokens are pruned so the model, held in memory whole, stays bounded.

use std::collections::{HashMap, HashSet};

use super::db::{Conn, OptionalExtension};
use crate::params;

use super::actions::Change;
use super::connection::Reader;
use super::error::StoreError;
use super::writer::Writer;
use crate::pipeline::classify::bayes::{message_tokens, Model};
use crate::pipeline::classify::tokenize::TOKENIZER_VERSION;
use crate::pipeline::parse::parse;

/// The most tokens kept; beyond it the rarest go (seen once, then twice, …).
pub const MAX_MODEL_TOKENS: i64 = 400_000;

/// Spam or ham, as trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// What `inboxgate spam stats` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStats {
    pub tokens: i64,
    pub spam: i64,
    pub ham: i64,
    /// Marked messages among those (the rest came from `spam train`).
    pub marked_spam: i64,
    pub marked_ham: i64,
    /// When it last learned (Unix seconds); `None` before any training.
    pub trained_at: Option<i64>,
    /// The tokenizer version the counts were made with.
    pub tokenizer: i64,
}

impl ModelStats {
    /// Made by another tokenizer than this build's: ignored until retrained.
    pub fn stale(&self) -> bool {
        self.tokenizer != TOKENIZER_VERSION && self.spam + self.ham > 0
    }
}

/// What a training did beyond counting its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retrained {
    /// The model was stale: its counts were reset first, made by this version.
    pub reset_from: Option<i64>,
    /// Marked messages retrained from their stored copies after the reset.
    pub marked: usize,
    /// Rare tokens pruned.
    pub pruned: usize,
}

impl Reader {
    /// Bumped by every training; the classifier reloads when it changes.
    pub fn bayes_generation(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT generation FROM bayes_totals WHERE id = 1",
            (),
            |r| r.get(0),
        )?)
    }

    /// The whole model and its generation; an empty model while the counts are stale.
    pub fn bayes_model(&self) -> Result<(Model, i64), StoreError> {
        let (spam, ham, generation, tokenizer): (u32, u32, i64, i64) = self.conn.query_row(
            "SELECT spam, ham, generation, tokenizer FROM bayes_totals WHERE id = 1",
            (),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        if tokenizer != TOKENIZER_VERSION {
            if spam + ham > 0 {
                tracing::warn!(
                    tokenizer,
                    current = TOKENIZER_VERSION,
                    "token model made by another tokenizer: ignored until retrained \
                     (inboxgate spam train, or the next spam mark)"
                );
            }
            return Ok((Model::default(), generation));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT token, spam, ham FROM bayes_tokens")?;
        let rows = stmt.query_map((), |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
        let tokens: HashMap<String, (u32, u32)> = rows.collect::<Result<_, _>>()?;
        Ok((Model { spam, ham, tokens }, generation))
    }

    /// Counts for `inboxgate spam stats`.
    pub fn bayes_stats(&self) -> Result<ModelStats, StoreError> {
        let tokens = self
            .conn
            .query_row("SELECT count(*) FROM bayes_tokens", (), |r| r.get(0))?;
        let (marked_spam, marked_ham) = self.conn.query_row(
            "SELECT count(*) FILTER (WHERE class = 'spam'), count(*) FILTER (WHERE class = 'ham')
             FROM bayes_trained",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(self.conn.query_row(
            "SELECT spam, ham, trained_at, tokenizer FROM bayes_totals WHERE id = 1",
            (),
            |r| {
                Ok(ModelStats {
                    tokens,
                    spam: r.get(0)?,
                    ham: r.get(1)?,
                    marked_spam,
                    marked_ham,
                    trained_at: r.get(2)?,
                    tokenizer: r.get(3)?,
                })
            },
        )?)
    }
}

impl Writer {
    /// Trains message token sets (from `inboxgate spam train`) in one transaction.
    pub async fn train_messages(
        &self,
        messages: Vec<(HashSet<String>, Class)>,
        now: i64,
    ) -> Result<Retrained, StoreError> {
        self.write(move |conn| {
            let mut retrained = bring_up_to_date(conn)?;
            for (tokens, class) in &messages {
                add(conn, tokens, *class, 1)?;
            }
            retrained.pruned = prune(conn, MAX_MODEL_TOKENS)?;
            trained(conn, now)?;
            Ok(retrained)
        })
        .await
    }

    /// An agent's spam / not-spam mark and the training it teaches (the conversation's
    /// inbound messages as `class`), in one transaction.
    pub async fn mark_and_train(
        &self,
        conversation_id: i64,
        change: Change,
        train: Option<Class>,
        actor: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_retried(move |conn| {
            super::actions::apply(conn, conversation_id, &change, &actor, now)?;
            if let Some(class) = train {
                train_conversation(conn, conversation_id, class, now)?;
            }
            Ok(())
        })
        .await
    }

    /// Trains the inbound messages of a conversation as `class` (an agent's mark).
    pub async fn train_conversation(
        &self,
        conversation_id: i64,
        class: Class,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| train_conversation(conn, conversation_id, class, now))
            .await
    }
}

fn train_conversation(
    conn: &Conn,
    conversation_id: i64,
    class: Class,
    now: i64,
) -> Result<usize, StoreError> {
    bring_up_to_date(conn)?;
    let messages: Vec<i64> = {
        let mut stmt = conn
            .prepare("SELECT id FROM messages WHERE conversation_id = ?1 AND direction = 'in'")?;
        let rows = stmt.query_map([conversation_id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut count = 0;
    for row in messages {
        let before: Option<String> = conn
            .query_row(
                "SELECT class FROM bayes_trained WHERE message_row = ?1",
                [row],
                |r| r.get(0),
            )
            .optional()?;
        if before.as_deref() == Some(class.as_str()) {
            continue;
        }
        let tokens = stored_message_tokens(conn, row)?;
        if let Some(old) = before {
            let old = if old == "spam" {
                Class::Spam
            } else {
                Class::Ham
            };
            add(conn, &tokens, old, -1)?;
        }
        add(conn, &tokens, class, 1)?;
        conn.execute(
            "INSERT INTO bayes_trained (message_row, class) VALUES (?1, ?2)
             ON CONFLICT (message_row) DO UPDATE SET class = ?2",
            params![row, class.as_str()],
        )?;
        count += 1;
    }
    if count > 0 {
        prune(conn, MAX_MODEL_TOKENS)?;
        trained(conn, now)?;
    }
    Ok(count)
}

/// A stored message's tokens, from its raw copy (what scoring saw); from the stored
/// fields when the raw copy is gone.
fn stored_message_tokens(conn: &Conn, row: i64) -> Result<HashSet<String>, StoreError> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT r.body FROM messages m JOIN raw_messages r ON r.id = m.raw_id
             WHERE m.id = ?1",
            [row],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(raw) = raw {
        return Ok(message_tokens(&raw, &parse(&raw)));
    }
    let (subject, text, from, name): (String, String, String, Option<String>) = conn.query_row(
        "SELECT subject, text, from_addr, from_name FROM messages WHERE id = ?1",
        [row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut inbound = crate::pipeline::parse::Inbound {
        subject,
        text,
        ..Default::default()
    };
    inbound.from = Some(crate::pipeline::parse::Mailbox {
        address: from,
        name,
    });
    Ok(message_tokens(b"", &inbound))
}

/// A model made by another tokenizer is reset and its marked messages retrained.
fn bring_up_to_date(conn: &Conn) -> Result<Retrained, StoreError> {
    // One node at a time retrains (a shared store); the next finds it done.
    conn.lock("bayes", "retrain")?;
    let (tokenizer, spam, ham): (i64, i64, i64) = conn.query_row(
        "SELECT tokenizer, spam, ham FROM bayes_totals WHERE id = 1",
        (),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut retrained = Retrained::default();
    if tokenizer == TOKENIZER_VERSION {
        return Ok(retrained);
    }
    conn.execute("DELETE FROM bayes_tokens", ())?;
    conn.execute(
        "UPDATE bayes_totals SET spam = 0, ham = 0, tokenizer = ?1 WHERE id = 1",
        [TOKENIZER_VERSION],
    )?;
    if spam + ham > 0 {
        retrained.reset_from = Some(tokenizer);
    }
    let marked: Vec<(i64, String)> = {
        let mut stmt = conn.prepare("SELECT message_row, class FROM bayes_trained")?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (row, class) in marked {
        let class = if class == "spam" {
            Class::Spam
        } else {
            Class::Ham
        };
        let tokens = stored_message_tokens(conn, row)?;
        add(conn, &tokens, class, 1)?;
        retrained.marked += 1;
    }
    Ok(retrained)
}

/// Keeps at most `max` tokens ([`MAX_MODEL_TOKENS`]): drops tokens seen in one
/// message, then two, … until under the bound; and tokens whose counts fell to nothing
/// (untrained).
fn prune(conn: &Conn, max: i64) -> Result<usize, StoreError> {
    let mut pruned = conn.execute("DELETE FROM bayes_tokens WHERE spam = 0 AND ham = 0", ())?;
    let mut seen = 1;
    loop {
        let count: i64 = conn.query_row("SELECT count(*) FROM bayes_tokens", (), |r| r.get(0))?;
        if count <= max {
            return Ok(pruned);
        }
        pruned += conn.execute("DELETE FROM bayes_tokens WHERE spam + ham <= ?1", [seen])?;
        seen += 1;
    }
}

/// Adds (`delta` = 1) or removes (-1) one message's tokens.
fn add(conn: &Conn, tokens: &HashSet<String>, class: Class, delta: i64) -> Result<(), StoreError> {
    let (spam, ham) = match class {
        Class::Spam => (delta, 0),
        Class::Ham => (0, delta),
    };
    let mut stmt = conn.prepare_cached(
        "INSERT INTO bayes_tokens (token, spam, ham) VALUES (?1, MAX(?2, 0), MAX(?3, 0))
         ON CONFLICT (token) DO UPDATE SET spam = MAX(bayes_tokens.spam + ?2, 0), ham = MAX(bayes_tokens.ham + ?3, 0)",
    )?;
    for token in tokens {
        stmt.execute(params![token, spam, ham])?;
    }
    conn.prepare_cached(
        "UPDATE bayes_totals SET spam = MAX(spam + ?1, 0), ham = MAX(ham + ?2, 0) WHERE id = 1",
    )?
    .execute(params![spam, ham])?;
    Ok(())
}

/// Marks a training: readers reload (`generation`), `spam stats` shows when.
fn trained(conn: &Conn, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE bayes_totals SET generation = generation + 1, trained_at = ?1 WHERE id = 1",
        [now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_drops_the_rarest_tokens_first_until_under_the_bound() {
        let mut sqlite = rusqlite::Connection::open_in_memory().expect("sqlite");
        super::super::schema::migrate(&mut sqlite).expect("migrate");
        let conn = Conn::Sqlite(sqlite);
        for (token, seen) in [("once", 1), ("twice", 2), ("often", 9), ("gone", 0)] {
            conn.execute(
                "INSERT INTO bayes_tokens (token, spam, ham) VALUES (?1, ?2, 0)",
                params![token, seen],
            )
            .expect("insert");
        }
        assert_eq!(prune(&conn, 3).expect("prune"), 1, "only the emptied token");
        assert_eq!(prune(&conn, 1).expect("prune"), 2);
        let left: Vec<String> = conn
            .prepare("SELECT token FROM bayes_tokens")
            .and_then(|mut s| s.query_map((), |r| r.get(0))?.collect())
            .expect("tokens");
        assert_eq!(left, ["often"]);
    }
}
