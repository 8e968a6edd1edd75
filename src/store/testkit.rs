//! Test helpers of the store's unit tests: a message received in Support, a reply of
//! ours, and a store with its writer in a temporary directory.

use crate::pipeline::parse::Mailbox;
use crate::pipeline::Target;
use crate::store::rows::{NewInbound, NewOutbound};
use crate::store::{Store, Writer};

/// A fresh store with its writer; keep the directory for the test's length.
pub fn store() -> (tempfile::TempDir, Store, Writer) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("t.db")).expect("store");
    let (writer, _thread) = store.start_writer().expect("writer");
    (dir, store, writer)
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
