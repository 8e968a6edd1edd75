//! C4: a content score from header and body features and the token model. (Being built.)

use super::{Finding, Received};
use crate::config::ClassificationConfig;

pub fn findings(_settings: &ClassificationConfig, _message: &Received<'_>) -> Vec<Finding> {
    Vec::new()
}
