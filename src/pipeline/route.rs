//! Auto-assignment (SPEC D1–D3): who gets a new conversation. Pure: the store gives it
//! the candidates with their availability and open counts, the contact's owner and the
//! round-robin cursor, and files the answer in the same transaction as the message.
//!
//! Rules: only users with a paid seat; only available ones unless the channel says
//! `only_available = false`; nobody eligible leaves the conversation unassigned.

use crate::config::{AssignTo, Config, Inbox, Strategy};

/// A user who could be given the conversation, as the store sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub email: String,
    pub paid_seat: bool,
    pub available: bool,
    /// Open conversations assigned to them (for `least_open`).
    pub open: i64,
}

impl Candidate {
    fn eligible(&self, only_available: bool) -> bool {
        self.paid_seat && (self.available || !only_available)
    }
}

/// The users a members list names, teams expanded, in configuration order, each once;
/// only configured users who are members of the inbox.
pub fn members(config: &Config, inbox: &Inbox, assign_to: &AssignTo) -> Vec<String> {
    let AssignTo::Members { users, teams } = assign_to else {
        return Vec::new();
    };
    let team_members = config
        .teams
        .iter()
        .filter(|t| teams.iter().any(|name| name.eq_ignore_ascii_case(&t.name)))
        .flat_map(|t| t.members.iter());
    let mut list: Vec<String> = Vec::new();
    for email in users.iter().chain(team_members) {
        let email = email.to_lowercase();
        let known = config.user(&email).is_some() && config.is_member(&email, inbox);
        if known && !list.contains(&email) {
            list.push(email);
        }
    }
    list
}

/// Picks among `candidates` (configuration order). `last` is the user the previous
/// round-robin conversation of the channel went to.
pub fn choose(
    candidates: &[Candidate],
    strategy: Strategy,
    only_available: bool,
    last: Option<&str>,
) -> Option<String> {
    let eligible = |c: &&Candidate| c.eligible(only_available);
    match strategy {
        Strategy::LeastOpen => candidates
            .iter()
            .filter(eligible)
            .min_by_key(|c| c.open)
            .map(|c| c.email.clone()),
        Strategy::RoundRobin => {
            let start = last
                .and_then(|last| candidates.iter().position(|c| c.email == last))
                .map_or(0, |i| i + 1);
            candidates
                .iter()
                .cycle()
                .skip(start)
                .take(candidates.len())
                .find(eligible)
                .map(|c| c.email.clone())
        }
    }
}

/// The contact owner (D3), if they may take it.
pub fn owner_if_eligible(owner: Option<Candidate>, only_available: bool) -> Option<String> {
    owner
        .filter(|c| c.eligible(only_available))
        .map(|c| c.email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(email: &str, paid_seat: bool, available: bool, open: i64) -> Candidate {
        Candidate {
            email: email.into(),
            paid_seat,
            available,
            open,
        }
    }

    #[test]
    fn round_robin_continues_after_the_last_one_and_skips_the_ineligible() {
        let list = [
            c("a", true, true, 0),
            c("b", false, true, 0),
            c("c", true, false, 0),
            c("d", true, true, 0),
        ];
        let rr = |last, only| choose(&list, Strategy::RoundRobin, only, last);
        assert_eq!(rr(None, true).as_deref(), Some("a"));
        assert_eq!(rr(Some("a"), true).as_deref(), Some("d"));
        assert_eq!(rr(Some("d"), true).as_deref(), Some("a"));
        assert_eq!(rr(Some("a"), false).as_deref(), Some("c"));
        assert_eq!(rr(Some("gone"), true).as_deref(), Some("a"));
    }

    #[test]
    fn least_open_takes_the_fewest_and_ties_go_in_order() {
        let list = [
            c("a", true, true, 3),
            c("b", true, true, 1),
            c("c", true, true, 1),
            c("d", true, false, 0),
        ];
        assert_eq!(
            choose(&list, Strategy::LeastOpen, true, None).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose(&list, Strategy::LeastOpen, false, None).as_deref(),
            Some("d")
        );
    }

    #[test]
    fn nobody_eligible_means_unassigned() {
        let list = [c("a", false, true, 0), c("b", true, false, 0)];
        assert_eq!(choose(&list, Strategy::RoundRobin, true, None), None);
        assert_eq!(choose(&list, Strategy::LeastOpen, true, None), None);
        assert_eq!(choose(&[], Strategy::RoundRobin, true, None), None);
        assert_eq!(owner_if_eligible(Some(c("b", true, false, 0)), true), None);
        assert_eq!(
            owner_if_eligible(Some(c("b", true, false, 0)), false).as_deref(),
            Some("b")
        );
    }
}
