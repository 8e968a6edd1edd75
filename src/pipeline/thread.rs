//! Threading stage (SPEC B10, DESIGN.md "Threading rules"): which conversation an
//! inbound message joins, and why.
//!
//! The rules are pure; the facts they need come through [`ThreadLookup`], which the
//! store implements over its write transaction. The result carries the rule or the
//! reason, so logs and tests can show why a message joined or started a thread.

use super::parse::Inbound;
use super::subject;

/// How long rule 3 (subject + contact) looks back.
pub const SUBJECT_WINDOW_SECS: i64 = 14 * 24 * 3600;

/// A stored message found by one of the message's reply ids or its Thread-Index.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub conversation_id: i64,
    /// Normalized subject of the matched message.
    pub subject_norm: String,
    /// Whether the sender is among the conversation's from/to/cc addresses.
    pub sender_is_participant: bool,
    /// The conversation's contact address.
    pub contact: String,
    /// The conversation is in trash or deleted (its id is a tombstone).
    pub gone: bool,
}

/// Read access the rules need, scoped to one inbox.
pub trait ThreadLookup {
    type Error;
    /// The conversation holding a message (inbound, outbound or deduplicated) with this id.
    fn by_message_id(&mut self, id: &str, sender: &str) -> Result<Option<Candidate>, Self::Error>;
    /// The conversation holding a message with this Outlook thread root.
    fn by_thread_index(
        &mut self,
        root: &str,
        sender: &str,
    ) -> Result<Option<Candidate>, Self::Error>;
    /// The open or closed, not trashed conversation of `contact` with this normalized
    /// subject whose last activity is at or after `since`.
    fn by_subject(
        &mut self,
        subject_norm: &str,
        contact: &str,
        since: i64,
    ) -> Result<Option<i64>, Self::Error>;
}

/// Which rule joined the message to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRule {
    InReplyTo,
    References,
    ThreadIndex,
    SubjectAndContact,
}

/// Why the message starts a new conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewReason {
    NoMatch,
    /// A header matched, but the sender takes no part in that conversation.
    StrangerReply,
    /// A header matched, but the subject shares nothing with the matched message.
    SubjectChanged,
    /// A header matched a conversation in trash or deleted.
    MatchedConversationGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadMatch {
    Join {
        conversation_id: i64,
        rule: JoinRule,
    },
    New(NewReason),
}

impl ThreadMatch {
    /// Short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            ThreadMatch::Join { rule, .. } => match rule {
                JoinRule::InReplyTo => "in_reply_to",
                JoinRule::References => "references",
                JoinRule::ThreadIndex => "thread_index",
                JoinRule::SubjectAndContact => "subject_and_contact",
            },
            ThreadMatch::New(reason) => match reason {
                NewReason::NoMatch => "new",
                NewReason::StrangerReply => "new:stranger_reply",
                NewReason::SubjectChanged => "new:subject_changed",
                NewReason::MatchedConversationGone => "new:matched_conversation_gone",
            },
        }
    }
}

/// Applies the threading rules in order; the first that matches wins.
pub fn decide<L: ThreadLookup>(
    message: &Inbound,
    sender: &str,
    now: i64,
    lookup: &mut L,
) -> Result<ThreadMatch, L::Error> {
    if let Some((candidate, rule)) = header_match(message, sender, lookup)? {
        return Ok(guard(message, sender, &candidate, rule));
    }
    if let Some(root) = &message.thread_index_root {
        if let Some(candidate) = lookup.by_thread_index(root, sender)? {
            if !candidate.gone {
                return Ok(join(candidate.conversation_id, JoinRule::ThreadIndex));
            }
        }
    }
    if !message.has_reply_headers() && !message.subject_norm.is_empty() {
        let since = now - SUBJECT_WINDOW_SECS;
        if let Some(id) = lookup.by_subject(&message.subject_norm, sender, since)? {
            return Ok(join(id, JoinRule::SubjectAndContact));
        }
    }
    Ok(ThreadMatch::New(NewReason::NoMatch))
}

/// Rule 1: `In-Reply-To`, then `References` newest first.
fn header_match<L: ThreadLookup>(
    message: &Inbound,
    sender: &str,
    lookup: &mut L,
) -> Result<Option<(Candidate, JoinRule)>, L::Error> {
    for id in &message.in_reply_to {
        if let Some(c) = lookup.by_message_id(id, sender)? {
            return Ok(Some((c, JoinRule::InReplyTo)));
        }
    }
    for id in message.references.iter().rev() {
        if let Some(c) = lookup.by_message_id(id, sender)? {
            return Ok(Some((c, JoinRule::References)));
        }
    }
    Ok(None)
}

/// The guards on rule 1: strangers and changed subjects start new conversations.
fn guard(message: &Inbound, sender: &str, candidate: &Candidate, rule: JoinRule) -> ThreadMatch {
    if candidate.gone {
        return ThreadMatch::New(NewReason::MatchedConversationGone);
    }
    if !candidate.sender_is_participant && !same_domain(sender, &candidate.contact) {
        return ThreadMatch::New(NewReason::StrangerReply);
    }
    if !subject::related(&message.subject_norm, &candidate.subject_norm) {
        return ThreadMatch::New(NewReason::SubjectChanged);
    }
    join(candidate.conversation_id, rule)
}

fn join(conversation_id: i64, rule: JoinRule) -> ThreadMatch {
    ThreadMatch::Join {
        conversation_id,
        rule,
    }
}

fn same_domain(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((_, da)), Some((_, db))) => !da.is_empty() && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory lookup: the rules are pure, so their unit tests need no store.
    #[derive(Default)]
    struct Facts {
        ids: HashMap<String, Candidate>,
        roots: HashMap<String, Candidate>,
        subjects: Vec<(String, String, i64, i64)>,
    }

    impl ThreadLookup for Facts {
        type Error = ();
        fn by_message_id(&mut self, id: &str, _: &str) -> Result<Option<Candidate>, ()> {
            Ok(self.ids.get(id).cloned())
        }
        fn by_thread_index(&mut self, root: &str, _: &str) -> Result<Option<Candidate>, ()> {
            Ok(self.roots.get(root).cloned())
        }
        fn by_subject(&mut self, s: &str, contact: &str, since: i64) -> Result<Option<i64>, ()> {
            Ok(self
                .subjects
                .iter()
                .find(|(subj, c, last, _)| subj == s && c == contact && *last >= since)
                .map(|(_, _, _, id)| *id))
        }
    }

    fn candidate(id: i64, participant: bool) -> Candidate {
        Candidate {
            conversation_id: id,
            subject_norm: "order 12".into(),
            sender_is_participant: participant,
            contact: "jan@klant.example".into(),
            gone: false,
        }
    }

    fn reply(in_reply_to: &[&str], references: &[&str], subject: &str) -> Inbound {
        Inbound {
            in_reply_to: in_reply_to.iter().map(|s| s.to_string()).collect(),
            references: references.iter().map(|s| s.to_string()).collect(),
            subject_norm: super::subject::normalize(subject),
            ..Inbound::default()
        }
    }

    #[test]
    fn in_reply_to_wins_then_references_newest_first() {
        let mut facts = Facts::default();
        facts.ids.insert("a".into(), candidate(1, true));
        facts.ids.insert("b".into(), candidate(2, true));
        let m = reply(&[], &["a", "b"], "Re: Order 12");
        let got = decide(&m, "jan@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, join(2, JoinRule::References));
        let m = reply(&["a"], &["b"], "Re: Order 12");
        let got = decide(&m, "jan@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, join(1, JoinRule::InReplyTo));
    }

    #[test]
    fn stranger_and_changed_subject_start_new_conversations() {
        let mut facts = Facts::default();
        facts.ids.insert("a".into(), candidate(1, false));
        let m = reply(&["a"], &[], "Re: Order 12");
        let got = decide(&m, "x@other.example", 0, &mut facts).unwrap();
        assert_eq!(got, ThreadMatch::New(NewReason::StrangerReply));
        // A colleague at the contact's domain is not a stranger.
        let got = decide(&m, "piet@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, join(1, JoinRule::InReplyTo));
        let m = reply(&["a"], &[], "Password reset");
        let got = decide(&m, "jan@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, ThreadMatch::New(NewReason::SubjectChanged));
    }

    #[test]
    fn gone_conversations_are_not_resurrected() {
        let mut facts = Facts::default();
        let mut gone = candidate(1, true);
        gone.gone = true;
        facts.ids.insert("a".into(), gone);
        let m = reply(&["a"], &[], "Re: Order 12");
        let got = decide(&m, "jan@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, ThreadMatch::New(NewReason::MatchedConversationGone));
    }

    #[test]
    fn thread_index_only_when_headers_found_nothing() {
        let mut facts = Facts::default();
        facts.roots.insert("root".into(), candidate(5, false));
        let mut m = reply(&["unknown"], &[], "AW: Order 12");
        m.thread_index_root = Some("root".into());
        let got = decide(&m, "jan@klant.example", 0, &mut facts).unwrap();
        assert_eq!(got, join(5, JoinRule::ThreadIndex));
    }

    #[test]
    fn subject_rule_needs_no_reply_headers_same_contact_and_window() {
        let now = 100 * 24 * 3600;
        let mut facts = Facts::default();
        facts
            .subjects
            .push(("order 12".into(), "jan@klant.example".into(), now - 3600, 9));
        let m = reply(&[], &[], "RE: Order 12");
        assert_eq!(
            decide(&m, "jan@klant.example", now, &mut facts).unwrap(),
            join(9, JoinRule::SubjectAndContact)
        );
        let other = decide(&m, "piet@klant.example", now, &mut facts).unwrap();
        assert_eq!(other, ThreadMatch::New(NewReason::NoMatch));
        let later = now + SUBJECT_WINDOW_SECS;
        let stale = decide(&m, "jan@klant.example", later, &mut facts).unwrap();
        assert_eq!(stale, ThreadMatch::New(NewReason::NoMatch));
        let with_headers = reply(&["unknown"], &[], "RE: Order 12");
        let got = decide(&with_headers, "jan@klant.example", now, &mut facts).unwrap();
        assert_eq!(got, ThreadMatch::New(NewReason::NoMatch));
    }
}
