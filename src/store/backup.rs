//! `backup`: a consistent copy of the live store in one SQLite file, checked for
//! integrity. The embedded store is copied page by page with SQLite's backup API while
//! the daemon keeps writing; a PostgreSQL store is copied table by table from one
//! snapshot into a new SQLite store (`copy_back`), compared with its source.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;

use super::connection::Reader;
use super::copy::CopyReport;
use super::error::StoreError;

/// Pages copied per step; between steps the writer may commit.
const PAGES_PER_STEP: std::os::raw::c_int = 1024;

/// Size and integrity of a finished backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub pages: i32,
    pub bytes: u64,
    /// From PostgreSQL: the tables copied and the checks, every one passed.
    pub copied: Option<CopyReport>,
}

impl Reader {
    /// Writes a consistent copy of the store to `dest`, which must not exist: a SQLite
    /// database whichever the backend. Nothing is left at `dest` when it fails.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!(
                "{} already exists",
                dest.display()
            )));
        }
        let made = self.write_copy(dest).and_then(|copied| {
            let target = Connection::open(dest)?;
            let pages = check_integrity(&target)?;
            Ok((pages, copied))
        });
        let (pages, copied) = made.inspect_err(|_| remove_copy(dest))?;
        let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            pages,
            bytes,
            copied,
        })
    }

    /// The copy at `dest`; from PostgreSQL, with what was copied and compared.
    fn write_copy(&self, dest: &Path) -> Result<Option<CopyReport>, StoreError> {
        if let Some(source) = self.conn.sqlite() {
            copy_pages(source, &mut Connection::open(dest)?)?;
            return Ok(None);
        }
        let report = self.copy_to_sqlite(dest)?;
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                format!(
                    "{}: {} in PostgreSQL, {} in the copy",
                    c.what, c.source, c.destination
                )
            })
            .collect();
        if !failed.is_empty() {
            return Err(StoreError::Invalid(format!(
                "the copy does not match the database ({}); nothing was kept",
                failed.join("; ")
            )));
        }
        Ok(Some(report))
    }
}

/// `PRAGMA integrity_check` on the copy; its pages.
fn check_integrity(copy: &Connection) -> Result<i32, StoreError> {
    let integrity: String = copy.query_row("PRAGMA integrity_check", (), |r| r.get(0))?;
    if integrity != "ok" {
        return Err(StoreError::Invalid(format!(
            "the copy failed its integrity check: {integrity}"
        )));
    }
    Ok(copy.query_row("PRAGMA page_count", (), |r| r.get(0))?)
}

/// Removes a failed copy and the files SQLite may have left beside it.
fn remove_copy(dest: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = dest.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

fn copy_pages(source: &Connection, target: &mut Connection) -> Result<(), StoreError> {
    let backup = Backup::new(source, target)?;
    loop {
        match backup.step(PAGES_PER_STEP)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(10)),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
