//! Test helpers of the store's unit tests: a message received in Support, a reply of
//! ours, and a store with its writer in a temporary directory.

use crate::pipeline::parse::Mailbox;
use crate::pipeline::Target;
use crate::store::rows::{NewInbound, NewOutbound};
use crate::store::{Store, Writer};

/// A fresh store with its writer; keep the directory for the test's length.
pub fn store() -> (tempfile::TempDir, Store, Writer) {
    let dir = tempfile::tempdir().expect("dir");
    let store = fresh_store(dir.path());
    let (writer, _thread) = store.start_writer().expect("writer");
    (dir, store, writer)
}

/// A fresh, empty store: SQLite in `dir`, or, when `INBOXGATE_TEST_PG_URL` names a
/// PostgreSQL cluster (`postgres://postgres@127.0.0.1:PORT/postgres`), a new database
/// of its own there, so the store's unit tests run on either backend.
pub fn fresh_store(dir: &std::path::Path) -> Store {
    let Ok(admin_url) = std::env::var("INBOXGATE_TEST_PG_URL") else {
        return Store::open(&dir.join("t.db")).expect("store");
    };
    Store::open_at(&crate::store::Location::Postgres(pg_target(
        empty_pg_database(&admin_url),
    )))
    .expect("store")
}

/// A unit test's PostgreSQL session settings for `url`.
pub fn pg_target(url: String) -> crate::store::PgTarget {
    crate::store::PgTarget {
        url,
        password: None,
        ca_file: None,
        application: "unit-test".into(),
    }
}

/// A new, empty database on the cluster of `admin_url`; returns its URL.
pub fn empty_pg_database(admin_url: &str) -> String {
    static DATABASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = DATABASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("unit_{}_{n}", std::process::id());
    let admin = crate::store::db::PgConn::connect(&pg_target(admin_url.to_string()), false)
        .expect("the cluster of INBOXGATE_TEST_PG_URL");
    crate::store::db::Conn::Postgres(admin)
        .execute_batch(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// `raw` received from `from` in Support at `at`, unclassified and unrouted.
pub fn inbound(raw: &str, from: &str, at: i64) -> NewInbound {
    NewInbound {
        targets: vec![Target {
            inbox: "Support".into(),
            channel: "support@demo.hs-inbox.com".into(),
        }],
        parsed: crate::pipeline::parse::parse(raw.as_bytes()),
        raw: raw.as_bytes().to_vec(),
        mail_from: from.into(),
        rcpt_to: vec!["support@demo.hs-inbox.com".into()],
        received_at: at,
        classification: Default::default(),
        config: None,
    }
}

/// Our reply with Message-ID `id` to jan@klant.example (CC boss@), starting a
/// conversation unless `conversation_id` is set.
pub fn reply(id: &str) -> NewOutbound {
    let from = Mailbox {
        address: "support@demo.hs-inbox.com".into(),
        name: None,
    };
    NewOutbound {
        inbox: "Support".into(),
        channel: from.address.clone(),
        conversation_id: None,
        contact: Mailbox {
            address: "jan@klant.example".into(),
            name: None,
        },
        message_id: id.into(),
        mail_from: from.address.clone(),
        from,
        to: vec!["jan@klant.example".into()],
        cc: vec!["boss@klant.example".into()],
        bcc: Vec::new(),
        subject: "Re: x".into(),
        subject_norm: "x".into(),
        text: "hi".into(),
        thread_index_root: None,
        in_reply_to: None,
        references: Vec::new(),
        attachments: Vec::new(),
        raw: b"Subject: Re: x\r\n\r\nhi\r\n".to_vec(),
        now: 10,
        expires_at: 1000,
    }
}
