//! C4: SPF, DKIM and DMARC. (Being built.)

use super::{Finding, Received};
use crate::config::ClassificationConfig;

/// The findings and the `Authentication-Results` value.
pub async fn check(
    _settings: &ClassificationConfig,
    _message: &Received<'_>,
) -> (Vec<Finding>, Option<String>) {
    (Vec::new(), None)
}
