//! C5: auto-replies, bounces, feedback reports and bulk/list mail. (Being built.)

use super::{Finding, Received};

pub fn findings(_message: &Received<'_>) -> Vec<Finding> {
    Vec::new()
}
