//! Turns the raw TOML model into a [`Config`] (placeholder until the config work lands).
use std::path::Path;

use super::Config;

/// One configuration problem, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            key: "(file)".into(),
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    parse(&text)
}

pub fn parse(_text: &str) -> Result<Config, Vec<Problem>> {
    unimplemented!("config parsing lands with the config work")
}
