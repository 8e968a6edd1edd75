//! Polymorphic values (a string or a table) read by hand from `toml::Value`, key by
//! key, so unknown keys inside them are reported too.

use super::*; // the section checks share the parent's imports and helpers

/// A table read key by key; keys never asked for are reported as unknown.
pub(super) struct Fields<'a> {
    pub(super) key: String,
    pub(super) table: &'a toml::Table,
    pub(super) asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub(super) fn of(
        p: &mut Problems,
        key: &str,
        value: &'a toml::Value,
        expected: &str,
    ) -> Option<Self> {
        match value.as_table() {
            Some(table) => Some(Fields {
                key: key.to_string(),
                table,
                asked: Vec::new(),
            }),
            None => {
                p.add(
                    key,
                    format!("expected {expected}, found {}", value.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn key(&self, name: &str) -> String {
        join(&self.key, name)
    }

    pub(super) fn get(&mut self, name: &'static str) -> Option<&'a toml::Value> {
        self.asked.push(name);
        self.table.get(name)
    }

    pub(super) fn typed<T>(
        &mut self,
        p: &mut Problems,
        name: &'static str,
        what: &str,
        read: fn(&'a toml::Value) -> Option<T>,
    ) -> Option<T> {
        let value = self.get(name)?;
        let typed = read(value);
        if typed.is_none() {
            p.add(
                &self.key(name),
                format!("expected {what}, found {}", value.type_str()),
            );
        }
        typed
    }

    pub(super) fn str(&mut self, p: &mut Problems, name: &'static str) -> Option<&'a str> {
        self.typed(p, name, "a string", toml::Value::as_str)
    }

    /// A string that must be present and not blank.
    pub(super) fn required_str(&mut self, p: &mut Problems, name: &'static str) -> Option<&'a str> {
        if !self.table.contains_key(name) {
            self.asked.push(name);
            p.add(&self.key(name), "required");
            return None;
        }
        let value = self.str(p, name)?;
        if value.trim().is_empty() {
            p.add(&self.key(name), "must not be empty");
            return None;
        }
        Some(value)
    }

    pub(super) fn bool(&mut self, p: &mut Problems, name: &'static str) -> Option<bool> {
        self.typed(p, name, "a boolean", toml::Value::as_bool)
    }

    /// The strings of an array, each with its key path.
    pub(super) fn strings(
        &mut self,
        p: &mut Problems,
        name: &'static str,
    ) -> Vec<(String, &'a str)> {
        let array_key = self.key(name);
        let Some(items) = self.typed(p, name, "an array", toml::Value::as_array) else {
            return Vec::new();
        };
        let mut strings = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{array_key}[{i}]");
            match item.as_str() {
                Some(s) => strings.push((key, s)),
                None => p.add(
                    &key,
                    format!("expected a string, found {}", item.type_str()),
                ),
            }
        }
        strings
    }

    /// Keys that only make sense with another setting: each present one is a problem.
    pub(super) fn refuse(&mut self, p: &mut Problems, names: &[&'static str], why: &str) {
        for name in names {
            if self.get(name).is_some() {
                p.add(&self.key(name), why);
            }
        }
    }

    pub(super) fn finish(self, p: &mut Problems) {
        for name in self.table.keys() {
            if !self.asked.contains(&name.as_str()) {
                p.add(&join(&self.key, name), "unknown key");
            }
        }
    }
}
