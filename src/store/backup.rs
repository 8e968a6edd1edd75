//! Online backup: copies the live database page by page with SQLite's backup API while
//! the daemon keeps writing, then checks the copy's integrity.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;

use super::connection::Reader;
use super::error::StoreError;

/// Pages copied per step; between steps the writer may commit.
const PAGES_PER_STEP: std::os::raw::c_int = 1024;

/// Size and integrity of a finished backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub pages: i32,
    pub bytes: u64,
}

impl Reader {
    /// Writes a consistent copy of the database to `dest`, which must not exist.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!(
                "{} already exists",
                dest.display()
            )));
        }
        let mut target = Connection::open(dest)?;
        let Some(source) = self.conn.sqlite() else {
            return Err(StoreError::Invalid(
                "store backup copies the embedded SQLite store; back up PostgreSQL with pg_dump"
                    .into(),
            ));
        };
        let pages = copy_pages(source, &mut target)?;
        let integrity: String = target.query_row("PRAGMA integrity_check", (), |r| r.get(0))?;
        if integrity != "ok" {
            return Err(StoreError::Invalid(format!(
                "the copy failed its integrity check: {integrity}"
            )));
        }
        drop(target);
        let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport { pages, bytes })
    }
}

fn copy_pages(source: &Connection, target: &mut Connection) -> Result<i32, StoreError> {
    let backup = Backup::new(source, target)?;
    loop {
        match backup.step(PAGES_PER_STEP)? {
            StepResult::Done => return Ok(backup.progress().pagecount),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(10)),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
