//! Serde mirror of the TOML file (placeholder until the config work lands).
