//! How CLI commands reach `inbox::Service`: the CLI is its own process, so it opens
//! the store itself and starts a short-lived writer; SQLite's busy timeout serializes
//! its commits with the daemon's.

use super::output::outln;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::clock::system_clock;
use crate::config::{Config, LiveConfig};
use crate::inbox::{Caller, Service};
use crate::store::Store;

/// The service over this config's store (which must exist: the CLI does not create one
/// by accident).
pub fn open(config: &Config) -> anyhow::Result<Service> {
    if let crate::config::StoreTarget::Sqlite(path) = config.store_target() {
        if !path.exists() {
            bail!(
                "opening the store: no database at {} (has the daemon run with this config?)",
                path.display()
            );
        }
    }
    let store = Store::open_for(config).context("opening the store")?;
    let (writer, _thread) = store.start_writer().context("starting the store writer")?;
    Ok(Service::new(
        Arc::new(LiveConfig::new(config.clone())),
        store,
        writer,
        system_clock(),
    ))
}

/// The service over this config's store, creating the store when there is none yet:
/// for setting up users (passwords, tokens) before the daemon first starts.
pub fn open_creating(config: &Config) -> anyhow::Result<Service> {
    Store::open_for(config).context("creating the store")?;
    open(config)
}

/// `--as EMAIL`, or the operator.
pub fn caller(as_user: Option<String>) -> Caller {
    as_user.map_or(Caller::Operator, Caller::User)
}

/// Runs an async service call to completion.
pub fn run_async<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
