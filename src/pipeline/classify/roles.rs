//! C1: role-based senders (`marketing@`, `noreply@`, …) go to Spam. (Being built.)

use super::Finding;
use crate::pipeline::parse::Inbound;

pub fn findings(_role_senders: &[String], _parsed: &Inbound) -> Vec<Finding> {
    Vec::new()
}
