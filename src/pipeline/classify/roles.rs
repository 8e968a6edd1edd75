//! C1: mail from role addresses that send campaigns and notifications (`marketing@`,
//! `noreply@`, …) goes to Spam. The list is the administrator's
//! (`classification.role_senders`); the default leaves out the role addresses real
//! customers write from.

use super::{Finding, Verdict};
use crate::pipeline::parse::Inbound;

pub fn findings(role_senders: &[String], parsed: &Inbound) -> Vec<Finding> {
    let Some(from) = &parsed.from else {
        return Vec::new();
    };
    let local = from.address.split('@').next().unwrap_or("");
    // `newsletter+weekly@` is still the newsletter address.
    let local = local.split('+').next().unwrap_or(local);
    role_senders
        .iter()
        .find(|role| role.as_str() == local)
        .map(|role| Finding::new(Verdict::Spam, format!("role_sender:{role}")))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::parse;

    fn roles(from: &str, list: &[&str]) -> Vec<String> {
        let parsed = parse(format!("From: {from}\r\nSubject: x\r\n\r\nx").as_bytes());
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        findings(&list, &parsed)
            .into_iter()
            .map(|f| f.reason)
            .collect()
    }

    #[test]
    fn role_local_parts_are_spam_and_others_are_not() {
        let list = ["marketing", "noreply"];
        assert_eq!(
            roles("Shop <Marketing@shop.example>", &list),
            ["role_sender:marketing"]
        );
        assert_eq!(
            roles("noreply+x@shop.example", &list),
            ["role_sender:noreply"]
        );
        assert!(roles("info@shop.example", &list).is_empty());
        assert!(roles("marketingteam@shop.example", &list).is_empty());
    }
}
