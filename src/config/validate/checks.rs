//! Leaf checks shared by every section: required keys, choices, ranges, addresses,
//! references to users and teams.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn required(p: &mut Problems, key: &str, value: Option<&str>) -> String {
    match value {
        None => {
            p.add(key, "required");
            String::new()
        }
        Some(v) if v.trim().is_empty() => {
            p.add(key, "must not be empty");
            String::new()
        }
        Some(v) => v.to_string(),
    }
}

/// Picks the option named by `value`; reports a missing or unknown name.
pub(super) fn choice<T: Copy>(
    p: &mut Problems,
    key: &str,
    value: Option<&str>,
    default: Option<T>,
    options: &[(&str, T)],
) -> Option<T> {
    let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
    let expected = names.join(" or ");
    let Some(value) = value else {
        if default.is_none() {
            p.add(key, format!("required: {expected}"));
        }
        return default;
    };
    let found = options.iter().find(|(n, _)| *n == value).map(|(_, v)| *v);
    if found.is_none() {
        p.add(key, format!("unknown value {value:?}; expected {expected}"));
    }
    found
}

pub(super) fn int_in(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> i64 {
    match value {
        None => default,
        Some(v) if range.contains(&v) => v,
        Some(v) => {
            p.add(
                key,
                format!(
                    "must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

pub(super) fn count(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> usize {
    usize::try_from(int_in(p, key, value, default, range)).unwrap_or_default()
}

pub(super) fn seconds(
    p: &mut Problems,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> Duration {
    Duration::from_secs(u64::try_from(int_in(p, key, value, default, range)).unwrap_or_default())
}

pub(super) fn socket_addr(p: &mut Problems, key: &str, text: &str) -> Option<SocketAddr> {
    let parsed = text.parse::<SocketAddr>().ok();
    if parsed.is_none() {
        p.add(
            key,
            format!("{text:?} is not an ip:port address (e.g. \"127.0.0.1:2525\", \"[::1]:2525\")"),
        );
    }
    parsed
}

/// Validates and lower-cases a required address (reported as `key`).
pub(super) fn email(p: &mut Problems, key: &str, value: Option<&str>) -> String {
    let address = required(p, key, value).to_ascii_lowercase();
    if !address.is_empty() {
        if let Err(why) = check_email(&address) {
            p.add(key, why);
        }
    }
    address
}

pub(super) fn check_email(address: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("{address:?} is not a valid email address: {why}"));
    let Some((local, domain)) = address.rsplit_once('@') else {
        return invalid("no '@'");
    };
    if let Err(why) = check_local_part(local) {
        return invalid(&why);
    }
    match check_dns_name(domain) {
        Ok(()) => Ok(()),
        Err(why) => invalid(&format!("domain {why}")),
    }
}

/// Dot-atom local parts only (RFC 5322 §3.4.1); quoted local parts are not supported.
pub(super) fn check_local_part(local: &str) -> Result<(), String> {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if local.is_empty() || local.len() > 64 {
        return Err("local part must have 1 to 64 characters".into());
    }
    if let Some(c) = local
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !SPECIALS.contains(*c))
    {
        return Err(format!("character {c:?} is not allowed in the local part"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("local part has a misplaced '.'".into());
    }
    Ok(())
}

pub(super) fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    name.split('.').try_for_each(check_dns_label)
}

pub(super) fn check_dns_label(label: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&label.len())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{label:?} is not a DNS label (1-63 letters, digits or '-', not at either end)"
        ))
    }
}

pub(super) fn user_ref(p: &mut Problems, key: &str, email: &str, users: &[User]) -> String {
    let email = email.to_ascii_lowercase();
    if !users.iter().any(|u| u.email == email) {
        p.add(key, format!("{email} is not a configured user"));
    }
    email
}

pub(super) fn team_ref(p: &mut Problems, key: &str, name: &str, teams: &[Team]) -> String {
    match teams.iter().find(|t| t.name.eq_ignore_ascii_case(name)) {
        Some(team) => team.name.clone(),
        None => {
            p.add(key, format!("{name:?} is not a configured team"));
            name.to_string()
        }
    }
}
