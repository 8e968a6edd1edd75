//! Versioned migrations, applied in order inside one transaction each;
//! `PRAGMA user_version` records the last one applied.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::db::{Conn, OptionalExtension};
use super::error::StoreError;

/// Each entry migrates from version `index` to `index + 1`. Never edit a shipped entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE raw_messages (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    mail_from   TEXT NOT NULL,
    rcpt_to     TEXT NOT NULL,          -- JSON array of envelope recipients
    size        INTEGER NOT NULL,
    body        BLOB NOT NULL           -- the whole message, our Received header first
);

CREATE TABLE contacts (
    id         INTEGER PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    name       TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY,
    inbox           TEXT NOT NULL,
    channel         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    subject_norm    TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    assignee        TEXT,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    spam            INTEGER NOT NULL DEFAULT 0,
    filtered        INTEGER NOT NULL DEFAULT 0,
    trashed_at      INTEGER,
    deleted         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL,
    message_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_by_activity ON conversations(last_message_at DESC, id DESC);
CREATE INDEX conversations_by_subject ON conversations(inbox, contact_id, subject_norm);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    raw_id           INTEGER REFERENCES raw_messages(id),
    direction        TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    message_id       TEXT,
    from_addr        TEXT NOT NULL,
    from_name        TEXT,
    to_json          TEXT NOT NULL,
    cc_json          TEXT NOT NULL,
    subject          TEXT NOT NULL,
    subject_norm     TEXT NOT NULL,
    date             INTEGER,
    received_at      INTEGER NOT NULL,
    text             TEXT NOT NULL,
    thread_index     TEXT,
    attachments_json TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX messages_by_thread_index ON messages(thread_index) WHERE thread_index IS NOT NULL;

-- Every Message-ID (or content hash) seen per inbox: stored, deduplicated, or left
-- behind by a deleted conversation. Dedupe and threading both read it.
CREATE TABLE known_ids (
    inbox           TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    message_row     INTEGER,
    PRIMARY KEY (inbox, message_id)
) WITHOUT ROWID;

CREATE TABLE participants (
    conversation_id INTEGER NOT NULL,
    address         TEXT NOT NULL,
    PRIMARY KEY (conversation_id, address)
) WITHOUT ROWID;
"#,
    r#"
-- IMAP sync (issue 3): per folder of a connected mailbox, the UIDVALIDITY and highest
-- UID filed; advanced in the same transaction as the messages of each batch.
CREATE TABLE imap_checkpoints (
    channel     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    PRIMARY KEY (channel, folder)
) WITHOUT ROWID;

-- What each channel's poller is doing, for `channels status` (another process).
CREATE TABLE channel_sync (
    channel       TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    state_since   INTEGER NOT NULL,
    last_sync_at  INTEGER,
    last_error    TEXT,
    last_error_at INTEGER,
    ingested      INTEGER NOT NULL DEFAULT 0
);
"#,
    // Outbound (SPEC E7): one delivery row per recipient of an outbound message. Only
    // `outbound::queue` changes these rows; `status` follows queued → sending → sent |
    // deferred → … | failed.
    r#"
CREATE TABLE outbound_deliveries (
    id              INTEGER PRIMARY KEY,
    raw_id          INTEGER NOT NULL REFERENCES raw_messages(id),
    message_row     INTEGER REFERENCES messages(id),  -- NULL: not in a conversation
    mail_from       TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_reply      TEXT,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbound_due ON outbound_deliveries(next_attempt_at)
    WHERE status IN ('queued', 'deferred');
CREATE INDEX outbound_by_message ON outbound_deliveries(message_row);
CREATE INDEX outbound_by_raw ON outbound_deliveries(raw_id);

-- Custom From addresses (SPEC E4): a one-time code mailed to the address; confirmed
-- when `confirmed_at` is set.
CREATE TABLE from_addresses (
    channel      TEXT NOT NULL,
    address      TEXT NOT NULL,
    code_sha256  TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    PRIMARY KEY (channel, address)
) WITHOUT ROWID;
"#,
    // 4: agents' actions (timeline, comments), blocked senders, API tokens, availability,
    // full-text search over messages, and indexes for the views.
    r#"
CREATE TABLE timeline (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,          -- user email, or 'system'
    action          TEXT NOT NULL,          -- assign, comment, close, trash, ...
    detail          TEXT                    -- assignee, comment text, target inbox, ...
);
CREATE INDEX timeline_by_conversation ON timeline(conversation_id, id);
CREATE INDEX timeline_comments ON timeline(conversation_id, id) WHERE action = 'comment';

CREATE TABLE blocked_senders (
    address    TEXT PRIMARY KEY,
    blocked_at INTEGER NOT NULL,
    blocked_by TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_email TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,        -- SHA-256 of the token, hex; never the token
    created_at INTEGER NOT NULL
);

CREATE TABLE user_status (
    email      TEXT PRIMARY KEY,
    available  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX conversations_by_inbox_activity
    ON conversations(inbox, last_message_at DESC, id DESC) WHERE deleted = 0;
CREATE INDEX conversations_by_assignee
    ON conversations(assignee, last_message_at DESC, id DESC) WHERE assignee IS NOT NULL;
CREATE INDEX conversations_by_contact ON conversations(contact_id, last_message_at DESC);
CREATE INDEX conversations_in_trash ON conversations(trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX conversations_spam ON conversations(last_message_at DESC, id DESC) WHERE spam = 1;
CREATE INDEX conversations_filtered ON conversations(last_message_at DESC, id DESC) WHERE filtered = 1;
CREATE INDEX messages_outbound ON messages(conversation_id) WHERE direction = 'out';

-- Full-text search over messages (F2). Contentless: the text lives in messages. A row's
-- rowid is conversation_id * 2^24 + the message's ordinal in its conversation, so a hit
-- names its conversation without a lookup (messages leave a conversation only all
-- together, by delete forever, which removes the rowid range).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    subject, text, sender,
    content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, subject, text, sender)
    VALUES (new.conversation_id * 16777216
              + (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = new.conversation_id),
            new.subject, new.text, new.from_addr || ' ' || COALESCE(new.from_name, ''));
END;
INSERT INTO messages_fts (rowid, subject, text, sender)
    SELECT conversation_id * 16777216
             + ROW_NUMBER() OVER (PARTITION BY conversation_id ORDER BY id),
           subject, text, from_addr || ' ' || COALESCE(from_name, '')
    FROM messages;
"#,
    // Bounces find our outbound message by its Message-ID (SPEC E7).
    r#"
CREATE INDEX messages_out_by_message_id ON messages(message_id) WHERE direction = 'out';
"#,
    // Search indexing leaves the acknowledgement path: indexing each message in the
    // transaction a client waits on doubled its cost (an FTS5 segment per commit).
    // `search_index::index_pending` indexes new messages in batches instead; searches
    // catch the index up first, so results stay complete.
    r#"
DROP TRIGGER messages_fts_insert;
CREATE TABLE fts_progress (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    last_message INTEGER NOT NULL       -- highest messages.id already indexed
);
INSERT INTO fts_progress (id, last_message) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
"#,
    // Classification and routing (SPEC C1–C5, D1–D4): each message's verdict with its
    // reasons and authentication results; the conversation keeps the verdict of the
    // message that opened it (or of an agent's mark). Contacts get owners; conversations
    // get tickets; round-robin routing remembers its place per channel; the token model
    // learns from marks and `spam train`.
    r#"
ALTER TABLE messages ADD COLUMN verdict TEXT NOT NULL DEFAULT 'clean';
ALTER TABLE messages ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';   -- JSON array
ALTER TABLE messages ADD COLUMN auth_results TEXT;      -- Authentication-Results value
ALTER TABLE messages ADD COLUMN spam_score REAL;
ALTER TABLE messages ADD COLUMN bounce_of INTEGER;      -- the outbound message returned
ALTER TABLE conversations ADD COLUMN verdict TEXT NOT NULL DEFAULT 'clean';
ALTER TABLE conversations ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE contacts ADD COLUMN owner TEXT;             -- user email (D3)

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL UNIQUE,
    pipeline        TEXT NOT NULL,
    stage           TEXT NOT NULL,
    owner           TEXT,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at      INTEGER NOT NULL
);

CREATE TABLE routing_cursor (
    channel   TEXT PRIMARY KEY,
    last_user TEXT NOT NULL                 -- the user the last conversation went to
) WITHOUT ROWID;

CREATE TABLE bayes_tokens (
    token TEXT PRIMARY KEY,
    spam  INTEGER NOT NULL DEFAULT 0,       -- spam messages the token appeared in
    ham   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE bayes_totals (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    spam       INTEGER NOT NULL,            -- spam messages trained
    ham        INTEGER NOT NULL,
    generation INTEGER NOT NULL             -- bumped on every change; readers reload
);
INSERT INTO bayes_totals (id, spam, ham, generation) VALUES (1, 0, 0, 0);
CREATE TABLE bayes_trained (                -- what each stored message was trained as
    message_row INTEGER PRIMARY KEY,
    class       TEXT NOT NULL CHECK (class IN ('spam', 'ham'))
);
"#,
    // A reply's References build on its parent's (RFC 5322 3.6.4): kept at filing time,
    // so composing a reply does not parse the parent again. NULL on rows filed before;
    // a reply to one of those reads the raw message once.
    r#"
ALTER TABLE messages ADD COLUMN reply_refs TEXT;  -- JSON: References, else In-Reply-To
"#,
    // Token revocation lists tokens with when each was last used (written at most once
    // a minute per token); a revoked token's row is deleted.
    r#"
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
"#,
    // The token model records the tokenizer version its counts were made with (rows
    // before this were made by version 1: stale once the tokenizer changed; retrained
    // from marked messages on the next training) and when it last learned.
    r#"
ALTER TABLE bayes_totals ADD COLUMN tokenizer INTEGER NOT NULL DEFAULT 1;
ALTER TABLE bayes_totals ADD COLUMN trained_at INTEGER;
"#,
    // The web inbox (issue 13): agents' passwords (Argon2id PHC strings) and sign-in
    // sessions, so sessions survive a restart. Only the SHA-256 of a session's secret
    // is stored; its CSRF token is per session.
    r#"
CREATE TABLE web_passwords (
    email      TEXT PRIMARY KEY,            -- lower-case user email
    hash       TEXT NOT NULL,               -- $argon2id$… PHC string
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE web_sessions (
    id           INTEGER PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    user_email   TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions(user_email);
"#,
    // Why an inbound message is in its conversation: the threading rule that joined it
    // (in_reply_to, references, thread_index, subject_and_contact) or why it started
    // one (new, new:stranger_reply, …). NULL for outbound mail and rows filed before.
    r#"
ALTER TABLE messages ADD COLUMN thread_reason TEXT;
"#,
    // When each agent last opened each conversation in the web inbox: what changed
    // since is shown in bold in the list.
    r#"
CREATE TABLE web_seen (
    user_email      TEXT NOT NULL,     -- lower-case user email
    conversation_id INTEGER NOT NULL,
    seen_at         INTEGER NOT NULL,
    PRIMARY KEY (user_email, conversation_id)
) WITHOUT ROWID;
"#,
    // Several nodes on one PostgreSQL store (issue 15); the same tables here keep the two
    // schemas alike. Each IMAP folder is polled by the holder of its lease; a batch is
    // filed only while the fencing number it was fetched under is still the lease's.
    // A delivery being sent names the node that claimed it and until when.
    r#"
CREATE TABLE imap_leases (
    channel    TEXT NOT NULL,
    folder     TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    fencing    INTEGER NOT NULL,
    PRIMARY KEY (channel, folder)
) WITHOUT ROWID;
ALTER TABLE outbound_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE outbound_deliveries ADD COLUMN claim_expires_at INTEGER;
"#,
    // The web inbox's shared live state (issue 15): who is viewing or replying where,
    // and failed sign-ins and API tokens, so that every node counts the same.
    r#"
CREATE TABLE web_presence (
    conversation_id INTEGER NOT NULL,
    user_email      TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    doing           TEXT NOT NULL,
    until_at        INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_email)
) WITHOUT ROWID;
CREATE INDEX web_presence_until ON web_presence (until_at);
CREATE TABLE auth_failures (
    key      TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    since    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_failures_since ON auth_failures (since);
"#,
];

/// How long a process starting beside others waits to switch a new database to WAL.
const WAL_SWITCH_WAIT: Duration = Duration::from_secs(10);

/// Puts the database in WAL mode. Switching a new database needs it to itself, and
/// SQLite answers "locked" at once (no busy timeout) while another process starting
/// at the same moment has it open; so this retries until the switch is done.
pub fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + WAL_SWITCH_WAIT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            outcome => return outcome,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Brings the database up to the newest schema. Each step runs under `BEGIN IMMEDIATE`
/// and reads `user_version` inside it, so processes starting together on one database
/// take turns: the second waits for the first's write lock (the busy timeout), then
/// finds the schema current and applies nothing twice.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: usize = tx.query_row("PRAGMA user_version", (), |r| r.get(0))?;
        let Some(sql) = MIGRATIONS.get(current) else {
            return tx.commit();
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
    }
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

/// Refuses a database written by a newer build.
pub fn check_not_newer(version: usize) -> Result<(), StoreError> {
    if version > latest_version() {
        return Err(StoreError::Invalid(format!(
            "database schema {version} is newer than this build ({})",
            latest_version()
        )));
    }
    Ok(())
}

/// PostgreSQL's migrations: the first creates the whole schema of SQLite's version 15
/// at once; later entries are appended as SQLite's are.
pub(super) const PG_MIGRATIONS: &[&str] = &[
    super::schema_pg::PG_SCHEMA,
    super::schema_pg::PG_WEB_LIVE_STATE,
];

/// Any constant names the lock; this one is the store's migration lock.
const MIGRATION_LOCK: i64 = 0x1b0c_6a7e;

/// Brings a PostgreSQL database up to the newest schema, in one transaction under an
/// advisory lock: nodes starting together on an empty database take turns, and the
/// later ones find it migrated.
pub fn migrate_postgres(conn: &Conn) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN")?;
    match apply_postgres_migrations(conn) {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn apply_postgres_migrations(conn: &Conn) -> Result<(), StoreError> {
    conn.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| {
        Ok(())
    })?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             id      INT PRIMARY KEY CHECK (id = 1),
             version BIGINT NOT NULL)",
    )?;
    let current: Option<usize> = conn
        .query_row("SELECT version FROM schema_version WHERE id = 1", (), |r| {
            r.get(0)
        })
        .optional()?;
    let current = current.unwrap_or(0);
    if current > PG_MIGRATIONS.len() {
        return Err(StoreError::Invalid(format!(
            "database schema {current} is newer than this build ({})",
            PG_MIGRATIONS.len()
        )));
    }
    for sql in &PG_MIGRATIONS[current..] {
        conn.execute_batch(sql)?;
    }
    conn.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [PG_MIGRATIONS.len()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testkit;

    const SEEN: &str =
        "INSERT INTO web_seen (user_email, conversation_id, seen_at) VALUES ('a@x.example', 1, 5)";
    const COUNTS: &str =
        "SELECT (SELECT COUNT(*) FROM web_seen), (SELECT COUNT(*) FROM web_presence)";

    /// A store written by the previous build (one migration short) is brought up to
    /// date, its rows kept: SQLite always, PostgreSQL too when `INBOXGATE_TEST_PG_URL`
    /// names a cluster.
    #[test]
    fn a_store_one_migration_behind_is_brought_up_to_date_with_its_rows() {
        let mut sqlite = Connection::open_in_memory().unwrap();
        for (version, sql) in MIGRATIONS[..MIGRATIONS.len() - 1].iter().enumerate() {
            sqlite.execute_batch(sql).unwrap();
            sqlite
                .pragma_update(None, "user_version", version + 1)
                .unwrap();
        }
        sqlite.execute_batch(SEEN).unwrap();
        migrate(&mut sqlite).unwrap();
        let version: usize = sqlite
            .query_row("PRAGMA user_version", (), |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest_version());
        let counts: (i64, i64) = sqlite
            .query_row(COUNTS, (), |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(counts, (1, 0));

        let Ok(admin_url) = std::env::var("INBOXGATE_TEST_PG_URL") else {
            return;
        };
        let url = testkit::empty_pg_database(&admin_url);
        let pg = super::super::db::PgConn::connect(&testkit::pg_target(url), false).unwrap();
        let pg = Conn::Postgres(pg);
        pg.execute_batch(PG_MIGRATIONS[0]).unwrap();
        pg.execute_batch(
            "CREATE TABLE schema_version (id INT PRIMARY KEY CHECK (id = 1),
                                          version BIGINT NOT NULL);
             INSERT INTO schema_version (id, version) VALUES (1, 1);",
        )
        .unwrap();
        pg.execute_batch(SEEN).unwrap();
        migrate_postgres(&pg).unwrap();
        let version: i64 = pg
            .query_row("SELECT version FROM schema_version", (), |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, PG_MIGRATIONS.len());
        let counts: (i64, i64) = pg
            .query_row(COUNTS, (), |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(counts, (1, 0));
    }
}
