//! `[store]`: SQLite (the default) or PostgreSQL, with the database password read from
//! its file here, at load. Messages never repeat the URL or the password: a URL that
//! wrongly holds one would show it in `check-config` and the logs.

use std::io::Read;

use super::*; // the section checks share the parent's imports and helpers

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

pub(super) fn store(raw: &RawStore, p: &mut Problems) -> StoreConfig {
    let backend = choice(
        p,
        "store.backend",
        raw.backend.as_deref(),
        Some(Backend::Sqlite),
        &[("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)],
    );
    match backend {
        Some(Backend::Postgres) => StoreConfig::Postgres(postgres(raw, p)),
        Some(Backend::Sqlite) => {
            refuse_postgres_keys(raw, p);
            StoreConfig::Sqlite
        }
        None => StoreConfig::Sqlite,
    }
}

fn refuse_postgres_keys(raw: &RawStore, p: &mut Problems) {
    let why = "only used with backend = \"postgres\"";
    if raw.url.is_some() {
        p.add("store.url", why);
    }
    if raw.password_file.is_some() {
        p.add("store.password_file", why);
    }
    if raw.ca_file.is_some() {
        p.add("store.ca_file", why);
    }
}

fn postgres(raw: &RawStore, p: &mut Problems) -> PostgresConfig {
    let url = raw.url.as_deref().unwrap_or_default();
    let problem = match raw.url.as_deref() {
        None => {
            Err("required with backend = \"postgres\": postgres://USER@HOST:PORT/DATABASE".into())
        }
        Some(blank) if blank.trim().is_empty() => Err("must not be empty".to_string()),
        Some(url) => check_postgres_url(url),
    };
    if let Err(why) = problem {
        p.add("store.url", why);
    }
    let password_file = raw.password_file.as_deref().map(PathBuf::from);
    let password = password_file
        .as_deref()
        .and_then(|path| match read_password(path) {
            Ok(password) => Some(password),
            Err(why) => {
                p.add("store.password_file", why);
                None
            }
        });
    let ca_file = raw.ca_file.as_deref().map(PathBuf::from);
    if let Some(path) = &ca_file {
        if let Err(e) = std::fs::read(path) {
            p.add(
                "store.ca_file",
                format!("cannot read {}: {e}", path.display()),
            );
        }
    }
    PostgresConfig {
        url: url.to_string(),
        password_file,
        password,
        ca_file,
    }
}

/// A `postgres://` URL that the driver can read, naming a user and a host and holding
/// no password.
pub(super) fn check_postgres_url(url: &str) -> Result<(), String> {
    const FORM: &str = "postgres://USER@HOST:PORT/DATABASE";
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "must start with postgres:// or postgresql:// ({FORM})"
        ));
    }
    // The driver's messages name the bad option, never a value.
    let parsed: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("is not a PostgreSQL URL: {e}"))?;
    if parsed.get_password().is_some() {
        return Err("holds a password: put it in store.password_file instead".into());
    }
    if parsed.get_user().is_none() {
        return Err(format!("names no user ({FORM})"));
    }
    if parsed.get_hosts().is_empty() {
        return Err(format!("names no host ({FORM})"));
    }
    Ok(())
}

/// The file's text without one trailing newline (`\n` or `\r\n`).
fn read_password(path: &Path) -> Result<Secret, String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".into());
    }
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(limits::PASSWORD_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limits::PASSWORD_FILE_BYTES {
        return Err(format!(
            "{} is longer than {} bytes: not a password file",
            path.display(),
            limits::PASSWORD_FILE_BYTES
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let password = line.strip_suffix('\r').unwrap_or(line);
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(password.to_string()))
}
