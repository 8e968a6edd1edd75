//! Human-readable output of the CLI: text from mail (names, subjects, bodies, file
//! names) is attacker-controlled, so every printer shows it through [`line`] or
//! [`block`], which make control characters visible instead of sending them to the
//! terminal; and every write goes through [`write_out`], so a closed pipe
//! (`inboxgate … | head -1`) ends the command quietly instead of panicking.

use std::io::Write as _;

pub use crate::inbox::display::{block, line};

/// Writes formatted text to standard output. A closed pipe becomes [`ClosedPipe`],
/// which `cli::main` turns into a quiet, successful exit.
pub fn write_out(args: std::fmt::Arguments<'_>) -> Result<(), ClosedPipe> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).map_err(ClosedPipe::from_io)
}

/// Writes raw bytes (an attachment, a raw message) to standard output.
pub fn write_bytes(bytes: &[u8]) -> Result<(), ClosedPipe> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(ClosedPipe::from_io)
}

/// Standard output could not be written: the reader went away (a closed pipe), or
/// another I/O error (kept, and reported).
#[derive(Debug, thiserror::Error)]
pub enum ClosedPipe {
    #[error("standard output was closed")]
    Closed,
    #[error("writing to standard output: {0}")]
    Other(std::io::Error),
}

impl ClosedPipe {
    fn from_io(e: std::io::Error) -> ClosedPipe {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            ClosedPipe::Closed
        } else {
            ClosedPipe::Other(e)
        }
    }
}

/// Whether a command failed only because its reader closed standard output.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(cause.downcast_ref::<ClosedPipe>(), Some(ClosedPipe::Closed))
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` for the CLI: writes through [`write_out`] and returns early with the
/// error when standard output is gone.
macro_rules! outln {
    () => {
        $crate::cli::output::write_out(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;
