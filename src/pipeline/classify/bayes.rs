//! The learned half of C4: a naive Bayes token model in the style of SpamBayes and
//! bogofilter. Each token's spam probability is Robinson's f(w) (s = 1, x = 0.5), and
//! the most telling tokens are combined with Fisher's chi-square method, which says
//! "unsure" (near 0.5) instead of guessing when the evidence disagrees.
//!
//! Pure: the counts come from the store (`store::bayes`), trained by agents' marks and
//! `inboxgate spam train`. The same tokenizer (`tokenize`) serves training and scoring,
//! over the raw message (stored whole, so a mark trains on what scoring saw).

use std::collections::{HashMap, HashSet};

/// Fewer trained messages of either class than this, and the model keeps quiet.
pub const MIN_TRAINED: u32 = 20;
/// Tokens combined per message: the ones furthest from 0.5.
const MAX_TOKENS: usize = 150;
/// Tokens whose probability is within this of 0.5 say nothing.
const MIN_DEVIATION: f64 = 0.1;

/// Token counts: in how many spam and ham messages each token appeared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub spam: u32,
    pub ham: u32,
    pub tokens: HashMap<String, (u32, u32)>,
}

/// A message's score from the model: the combined probability and the tokens that
/// weighed most (as trained, after degeneration), furthest from 0.5 first.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub probability: f64,
    pub clues: Vec<(String, f64)>,
}

/// Clues kept for the reasons (`token:…`) an agent sees.
pub const CLUES_SHOWN: usize = 5;

impl Model {
    /// The message's spam probability, or `None` while the model knows too little.
    pub fn probability(&self, tokens: &HashSet<String>) -> Option<f64> {
        self.score(tokens).map(|s| s.probability)
    }

    /// The message's score, or `None` while the model knows too little. A token never
    /// seen is looked up by its degenerations (`FREE!` → `free!` → `free`).
    pub fn score(&self, tokens: &HashSet<String>) -> Option<Score> {
        if self.spam < MIN_TRAINED || self.ham < MIN_TRAINED {
            return None;
        }
        let mut telling: Vec<(&str, f64)> = Vec::with_capacity(tokens.len());
        for token in tokens {
            let Some((name, &(spam, ham))) = self.lookup(token) else {
                continue;
            };
            let p = self.token_probability(spam, ham);
            if (p - 0.5).abs() > MIN_DEVIATION {
                telling.push((name, p));
            }
        }
        telling.sort_unstable_by(|a, b| {
            (b.1 - 0.5)
                .abs()
                .total_cmp(&(a.1 - 0.5).abs())
                .then_with(|| a.0.cmp(b.0))
        });
        // Two tokens degenerating to one count once (equal names sort side by side).
        telling.dedup_by(|a, b| a.0 == b.0);
        telling.truncate(MAX_TOKENS);
        let probabilities: Vec<f64> = telling.iter().map(|(_, p)| *p).collect();
        let probability = if probabilities.is_empty() {
            0.5
        } else {
            fisher(&probabilities)
        };
        let clues = telling
            .iter()
            .take(CLUES_SHOWN)
            .map(|(t, p)| ((*t).to_string(), *p))
            .collect();
        Some(Score { probability, clues })
    }

    fn lookup<'m>(&'m self, token: &str) -> Option<(&'m str, &'m (u32, u32))> {
        if let Some((name, counts)) = self.tokens.get_key_value(token) {
            return Some((name.as_str(), counts));
        }
        super::tokenize::degenerations(token)
            .iter()
            .find_map(|d| self.tokens.get_key_value(d.as_str()))
            .map(|(name, counts)| (name.as_str(), counts))
    }

    /// Robinson's f(w): the token's spam ratio, pulled towards 0.5 when seldom seen.
    fn token_probability(&self, spam: u32, ham: u32) -> f64 {
        const S: f64 = 1.0;
        const X: f64 = 0.5;
        let spam_ratio = f64::from(spam) / f64::from(self.spam.max(1));
        let ham_ratio = f64::from(ham) / f64::from(self.ham.max(1));
        let p = spam_ratio / (spam_ratio + ham_ratio).max(f64::MIN_POSITIVE);
        let n = f64::from(spam + ham);
        ((S * X + n * p) / (S + n)).clamp(0.0001, 0.9999)
    }
}

/// Fisher's combining: (S - H + 1) / 2 from the chi-square tails of both hypotheses.
fn fisher(probabilities: &[f64]) -> f64 {
    let n = probabilities.len();
    let ln_spam: f64 = probabilities.iter().map(|p| p.ln()).sum();
    let ln_ham: f64 = probabilities.iter().map(|p| (1.0 - p).ln()).sum();
    let h = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
    let s = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
    ((s - h + 1.0) / 2.0).clamp(0.0, 1.0)
}

/// The chi-square survival function for an even number of degrees of freedom.
fn chi2q(x2: f64, degrees: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..degrees / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The tokens of a received message (see `tokenize`): what the classifier scores and
/// training counts.
pub fn message_tokens(raw: &[u8], message: &crate::pipeline::parse::Inbound) -> HashSet<String> {
    super::tokenize::message_tokens(raw, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of a message with this subject, text and sender.
    fn tokens(subject: &str, text: &str, from: &str, name: Option<&str>) -> HashSet<String> {
        let from = match name {
            Some(name) => format!("{name} <{from}>"),
            None => from.to_string(),
        };
        let raw = format!("From: {from}\r\nSubject: {subject}\r\n\r\n{text}\r\n");
        message_tokens(
            raw.as_bytes(),
            &crate::pipeline::parse::parse(raw.as_bytes()),
        )
    }

    fn trained() -> Model {
        let mut model = Model::default();
        let spam = tokens(
            "Cheap pills",
            "Buy cheap pills now http://pills.example/x",
            "deals@pills.example",
            None,
        );
        let ham = tokens(
            "Order 12",
            "My order has not arrived, can you check?",
            "jan@klant.example",
            Some("Jan"),
        );
        for _ in 0..30 {
            for t in &spam {
                model.tokens.entry(t.clone()).or_default().0 += 1;
            }
            for t in &ham {
                model.tokens.entry(t.clone()).or_default().1 += 1;
            }
        }
        model.spam = 30;
        model.ham = 30;
        model
    }

    #[test]
    fn spam_like_mail_scores_high_and_ham_like_low() {
        let model = trained();
        let spam = model
            .probability(&tokens(
                "cheap pills!!",
                "cheap pills here",
                "x@pills.example",
                None,
            ))
            .expect("trained");
        let ham = model
            .probability(&tokens(
                "Order 13",
                "my order has not arrived",
                "jan@klant.example",
                None,
            ))
            .expect("trained");
        assert!(spam > 0.95, "{spam}");
        assert!(ham < 0.05, "{ham}");
        let unknown = model
            .probability(&tokens("zzz", "qqq www", "a@b.example", None))
            .expect("trained");
        assert!((unknown - 0.5).abs() < 0.01, "{unknown}");
    }

    #[test]
    fn an_untrained_model_keeps_quiet() {
        assert_eq!(
            Model::default().probability(&tokens("a", "b", "c@d", None)),
            None
        );
    }

    #[test]
    fn tokens_cover_subject_body_sender_and_links() {
        let t = tokens(
            "Hello World",
            "see https://Shop.example/path and aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "Jan@Klant.example",
            Some("Jan Vries"),
        );
        for expected in [
            "subject:Hello",
            "see",
            "url:shop.example",
            "from:jan@klant.example",
            "from-domain:klant.example",
            "from-name:jan",
            "skip:30",
        ] {
            assert!(t.contains(expected), "{expected} in {t:?}");
        }
    }

    #[test]
    fn chi2q_matches_known_values() {
        assert!((chi2q(0.0, 2) - 1.0).abs() < 1e-12);
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!(chi2q(100.0, 4) < 1e-15);
    }
}
