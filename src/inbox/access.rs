//! Who may see and act in an inbox (SPEC A5, F6).
//!
//! Members act. Account and super admins who are not members may view every inbox but
//! not act (callers answer 403). Everyone else, including users no longer configured,
//! learns nothing: callers answer 404, as if the inbox or conversation did not exist.

use crate::config::{Config, Inbox};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxAccess {
    /// A member: may view and act.
    Member,
    /// An admin who is not a member: may view, every action is refused (403).
    ViewOnly,
    /// No access: the inbox is invisible (404).
    None,
}

impl InboxAccess {
    pub fn can_view(self) -> bool {
        self != InboxAccess::None
    }

    pub fn can_act(self) -> bool {
        self == InboxAccess::Member
    }
}

/// What `user_email` may do in `inbox`.
pub fn inbox_access(config: &Config, user_email: &str, inbox: &Inbox) -> InboxAccess {
    let Some(user) = config.user(user_email) else {
        return InboxAccess::None;
    };
    if config.is_member(&user.email, inbox) {
        InboxAccess::Member
    } else if user.super_admin {
        InboxAccess::ViewOnly
    } else {
        InboxAccess::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[account]
subdomain = "demo"
company_name = "Demo"
[[users]]
email = "alice@demo.example"
name = "Alice"
[[users]]
email = "bob@demo.example"
name = "Bob"
[[users]]
email = "root@demo.example"
name = "Root"
super_admin = true
[[users]]
email = "carol@demo.example"
name = "Carol"
[[teams]]
name = "support"
members = ["bob@demo.example"]
[[inboxes]]
name = "Support"
  [[inboxes.channels]]
  kind = "fallback"
  user = "support"
  from_name = { mode = "company", company = "Demo Support" }
[[inboxes]]
name = "Sales"
access = { users = ["alice@demo.example"], teams = ["support"] }
  [[inboxes.channels]]
  kind = "fallback"
  user = "sales"
  from_name = { mode = "company", company = "Demo Sales" }
"#;

    #[test]
    fn members_act_admins_view_others_see_nothing() {
        let config = crate::config::parse(CONFIG).expect("valid");
        let sales = config.inbox("Sales").unwrap();
        let support = config.inbox("Support").unwrap();
        let access = |user| inbox_access(&config, user, sales);
        assert_eq!(access("alice@demo.example"), InboxAccess::Member);
        assert_eq!(
            access("BOB@demo.example"),
            InboxAccess::Member,
            "through team"
        );
        assert_eq!(access("root@demo.example"), InboxAccess::ViewOnly);
        assert_eq!(access("carol@demo.example"), InboxAccess::None);
        assert_eq!(
            access("gone@demo.example"),
            InboxAccess::None,
            "removed user"
        );
        assert_eq!(
            inbox_access(&config, "carol@demo.example", support),
            InboxAccess::Member
        );
        assert!(!InboxAccess::ViewOnly.can_act() && InboxAccess::ViewOnly.can_view());
    }
}
