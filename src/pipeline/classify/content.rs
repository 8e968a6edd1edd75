//! C4: a content score against `spam_threshold` (5.0 by default): while the token
//! model is untrained, points for header and body features in SpamAssassin's manner;
//! once trained, the model's probability (× 10) over every token, the features
//! included. Every feature that scored is named in the reasons, so an
//! agent can see why a message went to Spam.

use super::bayes::{self, Model};
use super::{Finding, Received, Verdict};
use crate::config::ClassificationConfig;
use crate::pipeline::parse::Inbound;

/// The score and its findings: `Spam` with `score:N` and each feature when the score
/// reaches the threshold, else the features as reasons only.
///
/// Once the token model is trained, the score is the model's alone — 10 × its
/// probability — and the features weigh in as tokens it learned (`feature:…`), so
/// one calibrated number decides; its strongest tokens are named (`token:…`). Before,
/// the features' hand-set points decide.
pub fn findings(
    settings: &ClassificationConfig,
    message: &Received<'_>,
    model: &Model,
) -> (Vec<Finding>, f64) {
    let parsed = message.parsed;
    let mut features = header_and_body_features(parsed);
    let tokens = bayes::message_tokens(message.raw, parsed);
    let learned = model.score(&tokens);
    let score = match &learned {
        Some(s) => (s.probability * 100.0).round() / 10.0,
        None => features.iter().map(|(_, points)| points).sum(),
    };
    // A learned score of exactly 5 is "unsure" (no evidence either way): the line must
    // be crossed, not met.
    let spam = match learned {
        Some(_) => score > settings.spam_threshold,
        None => score >= settings.spam_threshold,
    };
    let verdict = if spam { Verdict::Spam } else { Verdict::Clean };
    let mut found = Vec::new();
    if verdict == Verdict::Spam {
        found.push(Finding::new(Verdict::Spam, format!("score:{score:.1}")));
    }
    if let Some(learned) = &learned {
        features.retain(|(_, points)| *points > 0.0);
        features.push((format!("bayes:{:.3}", learned.probability), 1.0));
        for (token, p) in &learned.clues {
            features.push((format!("token:{token}={p:.2}"), 1.0));
        }
    }
    found.extend(
        features
            .into_iter()
            .filter(|(_, points)| *points > 0.0)
            .map(|(reason, _)| Finding::new(verdict, reason)),
    );
    (found, score)
}

/// The header and body features a message has, by name: tokens for the model.
pub fn feature_names(parsed: &Inbound) -> Vec<String> {
    header_and_body_features(parsed)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Phrases of bulk advertising (lower case); each one found adds a point, three at most.
const SPAM_PHRASES: &[&str] = &[
    "viagra",
    "cialis",
    "lottery",
    "you have won",
    "winner!",
    "100% free",
    "act now",
    "risk free",
    "risk-free",
    "earn money",
    "work from home",
    "dear friend",
    "limited time offer",
    "click here to unsubscribe",
    "no credit check",
    "casino",
    "make money fast",
    "double your",
    "miracle",
    "weight loss",
];

fn header_and_body_features(parsed: &Inbound) -> Vec<(String, f64)> {
    let mut features = Vec::new();
    let subject = &parsed.subject;
    let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 10
        && letters.iter().filter(|c| c.is_uppercase()).count() * 10 >= letters.len() * 9
    {
        features.push(("subject_all_caps".to_string(), 1.5));
    }
    if subject.contains("!!") || subject.contains("$$") {
        features.push(("subject_shouts".to_string(), 1.0));
    }
    if parsed.date.is_none() {
        features.push(("missing_date".to_string(), 1.0));
    }
    if parsed.message_id.is_none() {
        features.push(("missing_message_id".to_string(), 1.0));
    }
    if let Some(from) = &parsed.from {
        let name = from.name.as_deref().unwrap_or("").to_lowercase();
        if name.contains('@') && !name.contains(&from.address) {
            features.push(("from_name_is_another_address".to_string(), 1.5));
        }
    } else {
        features.push(("missing_from".to_string(), 1.5));
    }
    let body: String = parsed
        .text
        .chars()
        .take(20_000)
        .collect::<String>()
        .to_lowercase();
    features.extend(body_features(parsed, &body));
    let phrases = SPAM_PHRASES
        .iter()
        .filter(|p| body.contains(*p) || subject.to_lowercase().contains(*p))
        .take(3);
    for phrase in phrases {
        features.push((format!("phrase:{phrase}"), 1.0));
    }
    features
}

/// Traits of bulk advertising that wanted mail seldom has (weighed on the training part
/// of the SpamAssassin corpus: each is several times commoner in its spam than its ham).
fn body_features(parsed: &Inbound, body: &str) -> Vec<(String, f64)> {
    let mut features = Vec::new();
    let content_type = parsed
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/html") {
        features.push(("html_only".to_string(), 1.5));
    }
    if body.contains("click here") {
        features.push(("click_here".to_string(), 1.0));
    }
    if body.matches('!').count() >= 5 {
        features.push(("many_exclamations".to_string(), 1.0));
    }
    if has_money_amount(body) {
        features.push(("money_amount".to_string(), 0.5));
    }
    // Lists announce unsubscribing in a header (RFC 2369); bulk senders who do not
    // put removal instructions in the text.
    let list_headers =
        parsed.header("list-unsubscribe").is_some() || parsed.header("list-id").is_some();
    let removal = [
        "to be removed",
        "remove me",
        "unsubscribe",
        "opt-out",
        "opt out",
        "removal",
    ];
    if !list_headers && removal.iter().any(|p| body.contains(p)) {
        features.push(("removal_without_list_headers".to_string(), 1.0));
    }
    features
}

/// `$` followed by at least two digits (`$50`, `$ 1,000`).
fn has_money_amount(body: &str) -> bool {
    body.match_indices('$').any(|(at, _)| {
        let after = body[at + 1..].trim_start_matches(' ');
        after.chars().take(2).filter(|c| c.is_ascii_digit()).count() == 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::parse;

    fn score(raw: &str) -> (Vec<String>, f64) {
        let parsed = parse(raw.as_bytes());
        let received = Received {
            raw: raw.as_bytes(),
            parsed: &parsed,
            mail_from: None,
            peer: None,
            helo: None,
        };
        let (found, score) = findings(
            &ClassificationConfig::default(),
            &received,
            &Model::default(),
        );
        (found.into_iter().map(|f| f.reason).collect(), score)
    }

    #[test]
    fn features_add_up_to_spam_and_plain_mail_scores_nothing() {
        let (reasons, s) = score("From: \"support@bank.example\" <x@spam.example>\r\nSubject: YOU HAVE WON THE LOTTERY!!\r\n\r\nDear friend, act now, 100% free\r\n");
        assert!(s >= 5.0, "{s} {reasons:?}");
        assert!(reasons[0].starts_with("score:"), "{reasons:?}");
        assert!(reasons.contains(&"subject_all_caps".to_string()));
        let (reasons, s) = score("Message-ID: <a@b>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nFrom: Jan <jan@klant.example>\r\nSubject: Order 12 is late\r\n\r\nWhere is my order?\r\n");
        assert_eq!((reasons, s), (vec![], 0.0));
    }

    #[test]
    fn advertising_traits_score_and_list_mail_may_say_unsubscribe() {
        let advert = "Message-ID: <a@b>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nFrom: deals1234@shop.example\r\nSubject: Offer\r\nContent-Type: text/html\r\n\r\n<p>Only $99!!! Buy!! Click here now. To be removed reply REMOVE</p>\r\n";
        let (reasons, s) = score(advert);
        assert_eq!(s, 5.0, "{reasons:?}");
        for r in [
            "html_only",
            "click_here",
            "many_exclamations",
            "money_amount",
            "removal_without_list_headers",
        ] {
            assert!(reasons.contains(&r.to_string()), "{r} not in {reasons:?}");
        }
        let list = "Message-ID: <a@b>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nFrom: list@lists.example\r\nList-Id: <dev.lists.example>\r\nSubject: Digest\r\n\r\nTo unsubscribe, visit the list page. Costs $5.\r\n";
        assert_eq!(score(list), (vec![], 0.0));
    }

    /// A model that has seen `token` in 50 spam and no ham, and nothing else.
    fn model_knowing(token: &str) -> Model {
        let mut model = Model {
            spam: 50,
            ham: 50,
            ..Model::default()
        };
        model.tokens.insert(token.to_string(), (50, 0));
        model
    }

    fn learned_verdict(fixture: &str, model: &Model) -> (Verdict, Vec<String>) {
        let path = format!(
            "{}/tests/fixtures/spam/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read(&path).expect(&path);
        let parsed = parse(&raw);
        let received = Received {
            raw: &raw,
            parsed: &parsed,
            mail_from: None,
            peer: None,
            helo: None,
        };
        let (found, _) = findings(&ClassificationConfig::default(), &received, model);
        let verdict = found.first().map_or(Verdict::Clean, |f| f.verdict);
        (verdict, found.into_iter().map(|f| f.reason).collect())
    }

    /// Each token group decides a verdict: the fixture that has it goes to Spam under a
    /// model that learned it, the fixture without it stays clean, and so does the
    /// fixture under a model that never saw it.
    #[test]
    fn each_token_group_changes_a_verdict_on_its_fixture() {
        for (fixture, token, without) in [
            ("lying-link.eml", "html:link-text-other-host", "plain.eml"),
            ("hidden-text.eml", "html:hidden-text", "plain.eml"),
            ("image-only.eml", "html:image-only", "plain.eml"),
            (
                "reply-to-other-domain.eml",
                "reply-to:other-domain",
                "plain.eml",
            ),
            (
                "reply-to-other-domain.eml",
                "reply-to-domain:elsewhere.example",
                "plain.eml",
            ),
            ("url-host.eml", "url:offers.example", "plain.eml"),
            (
                "word-pair.eml",
                "pair:wire transfer",
                "word-pair-reversed.eml",
            ),
            ("charset.eml", "charset:gb2312", "plain.eml"),
            (
                "removal-text.eml",
                "feature:removal_without_list_headers",
                "plain.eml",
            ),
            // Degeneration: the unseen `subject:FREE!` is scored as the known `free`.
            ("shouted-subject.eml", "free", "plain.eml"),
        ] {
            let model = model_knowing(token);
            let (verdict, reasons) = learned_verdict(fixture, &model);
            assert_eq!(
                verdict,
                Verdict::Spam,
                "{fixture} with {token}: {reasons:?}"
            );
            assert!(
                reasons
                    .iter()
                    .any(|r| r.starts_with(&format!("token:{token}="))),
                "{fixture}: {reasons:?}"
            );
            let (verdict, reasons) = learned_verdict(without, &model);
            assert_eq!(
                verdict,
                Verdict::Clean,
                "{without} with {token}: {reasons:?}"
            );
            let (verdict, reasons) = learned_verdict(fixture, &model_knowing("zzz-unrelated"));
            assert_eq!(verdict, Verdict::Clean, "{fixture} untaught: {reasons:?}");
        }
    }
}
