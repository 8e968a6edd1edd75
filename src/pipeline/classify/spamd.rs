//! C4: SpamAssassin's spamd as an optional external scanner, failing open. (Being built.)

use super::{Finding, Received};
use crate::config::SpamdConfig;

pub async fn findings(_spamd: Option<&SpamdConfig>, _message: &Received<'_>) -> Vec<Finding> {
    Vec::new()
}
