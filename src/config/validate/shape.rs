//! Pass 2 of validation: the table deserialized into `raw`, every unknown key and every
//! wrong-typed value reported by its path.

use super::*; // the section checks share the parent's imports and helpers

pub(super) struct Shaped {
    pub(super) raw: RawConfig,
    pub(super) problems: Vec<Problem>,
    /// Keys removed because their value had the wrong type.
    pub(super) removed: Vec<String>,
}

/// At most this many type errors are reported before giving up.
pub(super) const MAX_TYPE_ERRORS: usize = 100;

pub(super) fn deserialize(mut table: toml::Table) -> Result<Shaped, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let mut unknown = Vec::new();
        let mut note = |path: serde_ignored::Path| unknown.push(ignored_key(&path));
        let de = serde_ignored::Deserializer::new(table.clone(), &mut note);
        match serde_path_to_error::deserialize::<_, RawConfig>(de) {
            Ok(raw) => {
                problems.extend(unknown.into_iter().map(|k| Problem::new(k, "unknown key")));
                return Ok(Shaped {
                    raw,
                    problems,
                    removed,
                });
            }
            Err(e) => {
                let segments: Vec<&Segment> = e.path().iter().collect();
                problems.push(Problem::new(
                    segments_key(&segments),
                    type_message(e.inner().message()),
                ));
                removed.push(remove_value(&mut table, &segments).ok_or_else(|| problems.clone())?);
            }
        }
    }
    Err(problems)
}

/// Removes the innermost table key on `segments`; returns its key path.
pub(super) fn remove_value(table: &mut toml::Table, segments: &[&Segment]) -> Option<String> {
    let last = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let Segment::Map { key } = segments[last] else {
        return None;
    };
    let container = match segments[..last].split_first() {
        None => table,
        Some((Segment::Map { key: first }, rest)) => {
            let mut value = table.get_mut(first.as_str())?;
            for segment in rest {
                value = match segment {
                    Segment::Map { key } => value.get_mut(key.as_str()),
                    Segment::Seq { index } => value.get_mut(*index),
                    _ => None,
                }?;
            }
            value.as_table_mut()?
        }
        Some(_) => return None,
    };
    container.remove(key.as_str())?;
    Some(segments_key(&segments[..=last]))
}

pub(super) fn segments_key(segments: &[&Segment]) -> String {
    segments.iter().fold(String::new(), |key, s| match s {
        Segment::Seq { index } => format!("{key}[{index}]"),
        Segment::Map { key: k } => join(&key, k),
        Segment::Enum { variant } => join(&key, variant),
        Segment::Unknown => join(&key, "?"),
    })
}

pub(super) fn ignored_key(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_key(parent)),
        P::Map { parent, key } => join(&ignored_key(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_key(parent)
        }
    }
}

/// serde speaks Rust (`expected i64`); the administrator reads TOML.
pub(super) fn type_message(message: &str) -> String {
    let message = message
        .replace("invalid type: ", "wrong type: ")
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array");
    match message.find("expected struct ") {
        Some(at) => format!("{}expected a table", &message[..at]),
        None => message,
    }
}

pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}
