//! `store copy --to postgres`: copies this installation's SQLite store into an empty
//! PostgreSQL database, verifies the copy, and says what it did and what to do next.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::output::outln;
use crate::config::Config;
use crate::store::{CopyReport, PgTarget, Reader, Store};

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy this installation's SQLite store (a consistent snapshot, also while the
    /// daemon runs) into an empty PostgreSQL database, then verify the copy.
    Copy(CopyArgs),
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The backend to copy into.
    #[arg(long, value_enum)]
    to: Backend,
    /// The destination database, e.g. postgres://inboxgate@db.example:5432/inboxgate.
    #[arg(long)]
    url: String,
    /// A file holding the database password (its trailing newline is ignored).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Backend {
    Postgres,
}

/// What to do once the copy is verified.
const NEXT_STEP: &str = "set [store] backend = \"postgres\" and url (and password_file) in \
    the configuration, then restart inboxgate";

pub fn run(config: &Config, command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Copy(args) => copy(config, args),
    }
}

fn copy(config: &Config, args: CopyArgs) -> anyhow::Result<ExitCode> {
    let Backend::Postgres = args.to;
    let target = PgTarget {
        url: args.url.clone(),
        password: args
            .password_file
            .as_deref()
            .map(read_password)
            .transpose()?,
        ca_file: None,
        application: "inboxgate-store-copy".into(),
    };
    let path = config.database_path();
    // Brings an older store up to this build's schema (no write when it is current).
    let reader = Store::open(&path)
        .and_then(|_| Reader::open(&path))
        .with_context(|| format!("opening the store {}", path.display()))?;
    let destination = redacted(&args.url);
    let report = reader
        .copy_to_postgres(&target)
        .with_context(|| format!("store copy to {destination}"))?;
    if args.json {
        print_json(&path, &destination, &report)?;
    } else {
        print_text(&path, &destination, &report)?;
    }
    Ok(if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The password in `path`, without its line ending; the error names the file only.
fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --password-file {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// `url` with any password in it replaced by `***`, fit to print.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // A key=value connection string.
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => "password=***",
                _ => pair,
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

fn print_text(source: &Path, destination: &str, report: &CopyReport) -> anyhow::Result<()> {
    outln!("copied {} into {destination}", source.display());
    let width = report
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(0);
    for table in &report.tables {
        outln!("  {:<width$}  {:>9} rows", table.table, table.rows);
    }
    for check in report.checks.iter().filter(|c| !c.ok) {
        outln!(
            "MISMATCH {}: source {}, destination {}",
            check.what,
            check.source,
            check.destination
        );
    }
    outln!(
        "{} rows in {:.1} s; verification: {}",
        report.rows(),
        report.seconds,
        verdict(report)
    );
    if report.verified() {
        outln!("next: {NEXT_STEP}");
    } else {
        outln!("the copy was committed but does not match its source: do not switch to it");
    }
    Ok(())
}

fn verdict(report: &CopyReport) -> String {
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        format!(
            "ok ({} checks: rows per table, search queue, Message-IDs, raw messages)",
            report.checks.len()
        )
    } else {
        format!("{failed} of {} checks FAILED", report.checks.len())
    }
}

fn print_json(source: &Path, destination: &str, report: &CopyReport) -> anyhow::Result<()> {
    let tables: Vec<_> = report
        .tables
        .iter()
        .map(|t| json!({ "table": t.table, "rows": t.rows }))
        .collect();
    let checks: Vec<_> = report
        .checks
        .iter()
        .map(|c| {
            json!({
                "check": c.what,
                "source": c.source,
                "destination": c.destination,
                "ok": c.ok,
            })
        })
        .collect();
    let value = json!({
        "source": source.display().to_string(),
        "destination": destination,
        "tables": tables,
        "rows": report.rows(),
        "checks": checks,
        "verified": report.verified(),
        "seconds": report.seconds,
        "next": if report.verified() { NEXT_STEP } else { "do not switch: the copy does not match" },
    });
    outln!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_in_urls_are_not_printed() {
        assert_eq!(
            redacted("postgres://ig:s3cr%40t@db:5432/ig?sslmode=require"),
            "postgres://ig:***@db:5432/ig?sslmode=require"
        );
        assert_eq!(redacted("postgres://ig@db/ig"), "postgres://ig@db/ig");
        assert_eq!(
            redacted("host=db user=ig password=pw"),
            "host=db user=ig password=***"
        );
    }
}
