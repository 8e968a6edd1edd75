//! The token model's counts (C4): read whole by the classifier, which keeps them in
//! memory and reloads when `bayes_totals.generation` moves; changed by training —
//! agents' spam / not-spam marks (a stored message is trained once per class, and a
//! changed mind untrains the old class) and `inboxgate spam train`.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use super::connection::Reader;
use super::error::StoreError;
use super::writer::Writer;
use crate::pipeline::classify::bayes::{tokens, Model};

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

impl Reader {
    /// Bumped by every training; the classifier reloads when it changes.
    pub fn bayes_generation(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT generation FROM bayes_totals WHERE id = 1",
            [],
            |r| r.get(0),
        )?)
    }

    /// The whole model and its generation.
    pub fn bayes_model(&self) -> Result<(Model, i64), StoreError> {
        let (spam, ham, generation) = self.conn.query_row(
            "SELECT spam, ham, generation FROM bayes_totals WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut stmt = self
            .conn
            .prepare("SELECT token, spam, ham FROM bayes_tokens")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))?;
        let tokens: HashMap<String, (u32, u32)> = rows.collect::<Result<_, _>>()?;
        Ok((Model { spam, ham, tokens }, generation))
    }
}

impl Writer {
    /// Trains message token sets (from `inboxgate spam train`) in one transaction.
    pub async fn train_messages(
        &self,
        messages: Vec<(HashSet<String>, Class)>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            for (tokens, class) in &messages {
                add(conn, tokens, *class, 1)?;
            }
            bump_generation(conn)
        })
        .await
    }

    /// Trains the inbound messages of a conversation as `class` (an agent's mark).
    pub async fn train_conversation(
        &self,
        conversation_id: i64,
        class: Class,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| train_conversation(conn, conversation_id, class))
            .await
    }
}

fn train_conversation(
    conn: &Connection,
    conversation_id: i64,
    class: Class,
) -> Result<usize, StoreError> {
    let messages: Vec<(i64, String, String, String, Option<String>)> = {
        let mut stmt = conn.prepare(
            "SELECT id, subject, text, from_addr, from_name FROM messages
             WHERE conversation_id = ?1 AND direction = 'in'",
        )?;
        let rows = stmt.query_map([conversation_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut trained = 0;
    for (row, subject, text, from, name) in messages {
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
        let tokens = tokens(&subject, &text, &from, name.as_deref());
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
        trained += 1;
    }
    if trained > 0 {
        bump_generation(conn)?;
    }
    Ok(trained)
}

/// Adds (`delta` = 1) or removes (-1) one message's tokens.
fn add(
    conn: &Connection,
    tokens: &HashSet<String>,
    class: Class,
    delta: i64,
) -> Result<(), StoreError> {
    let (spam, ham) = match class {
        Class::Spam => (delta, 0),
        Class::Ham => (0, delta),
    };
    let mut stmt = conn.prepare_cached(
        "INSERT INTO bayes_tokens (token, spam, ham) VALUES (?1, MAX(?2, 0), MAX(?3, 0))
         ON CONFLICT (token) DO UPDATE SET spam = MAX(spam + ?2, 0), ham = MAX(ham + ?3, 0)",
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

fn bump_generation(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE bayes_totals SET generation = generation + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}
