//! Classification (SPEC C1–C5): what kind of mail a message is, and why.
//!
//! Each check returns [`Finding`]s — a verdict and the reason for it, such as
//! `role_sender:marketing` or `auto_submitted:auto-replied` — and [`Classification`]
//! keeps the strongest verdict with every reason, so an agent can see why. Checks that
//! need the network (SPF/DKIM/DMARC lookups, the spamd scanner) get their resolver or
//! address passed in and run before the message is handed to the store's writer;
//! checks that need the store (blocked senders) run inside the writer's transaction.

pub mod auth;
pub mod auto;
pub mod bayes;
pub mod content;
pub mod roles;
pub mod spamd;
pub mod tokenize;

use std::net::IpAddr;
use std::sync::Arc;

use super::parse::Inbound;
use crate::config::{Config, LiveConfig};

/// What a message is, weakest first: the strongest finding decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Mail from a person: routed, may create a ticket.
    #[default]
    Clean,
    /// Mailing-list and bulk mail (`List-Id`, `Precedence: bulk`).
    Bulk,
    /// Out-of-office and other automatic replies.
    AutoReply,
    /// Feedback (abuse) reports, ARF.
    Feedback,
    /// Delivery status notifications and returned mail.
    Bounce,
    /// Spam: the Spam view.
    Spam,
    /// From a blocked sender: the Filtered view.
    Filtered,
}

impl Verdict {
    pub const ALL: [Verdict; 7] = [
        Verdict::Clean,
        Verdict::Bulk,
        Verdict::AutoReply,
        Verdict::Feedback,
        Verdict::Bounce,
        Verdict::Spam,
        Verdict::Filtered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Bulk => "bulk",
            Verdict::AutoReply => "auto_reply",
            Verdict::Feedback => "feedback",
            Verdict::Bounce => "bounce",
            Verdict::Spam => "spam",
            Verdict::Filtered => "filtered",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// Only mail from people is auto-assigned and gets a ticket (C5, D1).
    pub fn routable(self) -> bool {
        self == Verdict::Clean
    }
}

/// One check's conclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    /// `check:detail`, e.g. `role_sender:noreply`, `dmarc:reject`.
    pub reason: String,
}

impl Finding {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Finding {
        Finding {
            verdict,
            reason: reason.into(),
        }
    }
}

/// The verdict on one message, with every reason found, strongest verdict's first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classification {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// The `Authentication-Results` value (RFC 8601) of the SPF/DKIM/DMARC checks.
    pub auth_results: Option<String>,
    /// The content score (header and body features plus the token model), when computed.
    pub score: Option<f64>,
    /// Sent from the null reverse path (`MAIL FROM:<>`, or `Return-Path: <>` when the
    /// envelope is unknown): a mail system wrote it, whatever the verdict says.
    pub null_sender: bool,
}

impl Classification {
    pub fn from_findings(findings: Vec<Finding>) -> Classification {
        let mut classification = Classification::default();
        for finding in findings {
            classification.add(finding);
        }
        classification
    }

    /// Only mail from people is auto-assigned and gets a ticket (C5, D1): a routable
    /// verdict, and never from the null sender.
    pub fn routable(&self) -> bool {
        self.verdict.routable() && !self.null_sender
    }

    /// Adds a finding: a stronger verdict wins, and its reason goes first.
    pub fn add(&mut self, finding: Finding) {
        if self.reasons.contains(&finding.reason) {
            return;
        }
        if finding.verdict > self.verdict {
            self.verdict = finding.verdict;
            self.reasons.insert(0, finding.reason);
        } else {
            self.reasons.push(finding.reason);
        }
    }
}

/// What the checks see of one received message.
pub struct Received<'a> {
    /// The message as the client sent it (without our trace header).
    pub raw: &'a [u8],
    pub parsed: &'a Inbound,
    /// The envelope sender; `None` for mail fetched over IMAP (no envelope), `Some("")`
    /// for the null sender.
    pub mail_from: Option<&'a str>,
    pub peer: Option<IpAddr>,
    pub helo: Option<&'a str>,
}

/// Runs every check. Built once from the live configuration; cheap to share.
pub struct Classifier {
    config: Arc<LiveConfig>,
    model: Arc<dyn ModelSource>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    authenticators: auth::Authenticators,
}

/// Where the classifier gets the token model it scores with: the store keeps the counts
/// (`store::ModelCache` reloads them when training moves their generation).
pub trait ModelSource: Send + Sync {
    /// The model to score with now, and its generation (`None` before one is loaded).
    fn current(&self) -> (Arc<bayes::Model>, Option<i64>);
}

impl Classifier {
    /// Scores with the token model `model` gives.
    pub fn new(config: Arc<LiveConfig>, model: Arc<dyn ModelSource>) -> Classifier {
        Classifier {
            config,
            model,
            metrics: None,
            authenticators: auth::Authenticators::default(),
        }
    }

    /// Reports the generation of the token model it scores with in `metrics`.
    pub fn counted(mut self, metrics: Arc<crate::metrics::Metrics>) -> Classifier {
        self.metrics = Some(metrics);
        self
    }

    /// The configuration in force now; the store routes with this snapshot.
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    /// Classifies one message. Never fails: a check that cannot run (a DNS or scanner
    /// outage) adds nothing, so mail is never held back or lost by classification.
    pub async fn classify(&self, message: &Received<'_>) -> Classification {
        let config = self.config.current();
        let settings = &config.classification;
        let mut findings = auto::findings(message);
        // Mail systems send their reports from `no-reply@` too: a report is a report,
        // whatever address it comes from.
        let automatic = findings.iter().any(|f| {
            matches!(
                f.verdict,
                Verdict::Bounce | Verdict::Feedback | Verdict::AutoReply
            )
        });
        if !automatic {
            findings.extend(roles::findings(&settings.role_senders, message.parsed));
        }
        let (model, generation) = self.model.current();
        if let (Some(metrics), Some(generation)) = (&self.metrics, generation) {
            metrics.model_loaded(generation);
        }
        let (content, score) = content::findings(settings, message, &model);
        findings.extend(content);
        let mut classification = Classification::from_findings(findings);
        classification.score = Some(score);
        classification.null_sender = auto::null_sender(message);
        if classification.null_sender {
            classification.add(Finding::new(Verdict::Clean, "null_sender"));
        }
        for finding in spamd::findings(settings.spamd.as_ref(), message).await {
            classification.add(finding);
        }
        if settings.check_authentication {
            let (findings, results) = auth::check(
                &self.authenticators,
                &settings.nameservers,
                &config.server.hostname,
                message,
            )
            .await;
            for finding in findings {
                classification.add(finding);
            }
            classification.auth_results = results;
        }
        classification
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_verdict_wins_and_keeps_every_reason() {
        let c = Classification::from_findings(vec![
            Finding::new(Verdict::Bulk, "list_id"),
            Finding::new(Verdict::Spam, "role_sender:marketing"),
            Finding::new(Verdict::AutoReply, "auto_submitted:auto-replied"),
            Finding::new(Verdict::Bulk, "list_id"),
        ]);
        assert_eq!(c.verdict, Verdict::Spam);
        assert_eq!(
            c.reasons,
            [
                "role_sender:marketing",
                "list_id",
                "auto_submitted:auto-replied"
            ]
        );
        assert!(!c.verdict.routable());
        assert!(Classification::default().verdict.routable());
        assert!(Classification::default().routable());
        let from_the_null_sender = Classification {
            null_sender: true,
            ..Classification::default()
        };
        assert!(!from_the_null_sender.routable());
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
    }
}
