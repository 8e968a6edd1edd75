//! The daemon's log: tracing to stderr, human-readable or JSON, never a mailbox
//! password. Shared by `cli` (which parses `--log-format`) and `app`.

use clap::ValueEnum;

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Logs to stderr, human-readable or JSON; `RUST_LOG` overrides the level.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // imap-next traces raw protocol bytes (LOGIN and AUTHENTICATE included) in debug
    // builds: never let RUST_LOG=trace put a mailbox password in the log.
    let filter = match "imap_next::stream=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
