//! `inboxgate classify FILE…`: runs the classifier on message files, offline, and
//! prints each verdict with its reasons — so an administrator can see why a message was
//! (or would be) flagged, and the corpus measurements can run without a daemon. The
//! token model is the configured store's (empty when there is none yet). No network:
//! SPF/DKIM/DMARC and the external scanner are skipped.

use super::output::{line, outln};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::service::run_async;
use crate::config::{Config, LiveConfig};
use crate::pipeline::classify::{Classifier, Received};
use crate::pipeline::parse::parse_received;
use crate::store::ModelCache;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Message files (RFC 5322, one message each).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per line: {file, verdict, reasons, score, bounce}; `bounce` is
    /// null, or the returned message's ids and the failed recipients the bounce names.
    #[arg(long)]
    json: bool,
}

pub fn run(config: &Config, args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let classifier = offline_classifier(config)?;
    let mut failed = false;
    for file in &args.files {
        let raw = match std::fs::read(file) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("inboxgate: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let parsed = parse_received(&raw, None);
        let received = Received {
            raw: &raw,
            parsed: &parsed,
            mail_from: None,
            peer: None,
            helo: None,
        };
        let c = run_async(classifier.classify(&received))?;
        if args.json {
            let line = json!({
                "file": file.display().to_string(),
                "verdict": c.verdict.as_str(),
                "reasons": c.reasons,
                "score": c.score,
                "bounce": parsed.bounce.as_ref().map(|b| json!({
                    "message_ids": b.message_ids,
                    "failed": b.failed.iter().map(|f| &f.address).collect::<Vec<_>>(),
                })),
            });
            outln!("{line}");
        } else {
            outln!(
                "{}\t{}\t{}",
                line(&file.display().to_string()),
                c.verdict.as_str(),
                line(&c.reasons.join(" "))
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn offline_classifier(config: &Config) -> anyhow::Result<Classifier> {
    // Built from the configured settings with the network checks switched off.
    let mut config = config.clone();
    config.classification.check_authentication = false;
    config.classification.spamd = None;
    let model = Arc::new(ModelCache::new(crate::store::Location::of(&config)));
    let live = Arc::new(LiveConfig::new(config));
    Ok(Classifier::new(live, model))
}
