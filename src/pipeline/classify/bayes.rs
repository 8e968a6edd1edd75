//! The learned half of C4: a naive Bayes token model in the style of SpamBayes and
//! bogofilter. Each token's spam probability is Robinson's f(w) (s = 1, x = 0.5), and
//! the most telling tokens are combined with Fisher's chi-square method, which says
//! "unsure" (near 0.5) instead of guessing when the evidence disagrees.
//!
//! Pure: the counts come from the store (`store::bayes`), trained by agents' marks and
//! `inboxgate spam train`. The same tokenizer serves training and scoring, over what
//! the store keeps of every message: subject, text and sender.

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

impl Model {
    /// The message's spam probability, or `None` while the model knows too little.
    pub fn probability(&self, tokens: &HashSet<String>) -> Option<f64> {
        if self.spam < MIN_TRAINED || self.ham < MIN_TRAINED {
            return None;
        }
        let mut telling: Vec<f64> = tokens
            .iter()
            .filter_map(|t| self.tokens.get(t))
            .map(|&(spam, ham)| self.token_probability(spam, ham))
            .filter(|p| (p - 0.5).abs() > MIN_DEVIATION)
            .collect();
        telling.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        telling.truncate(MAX_TOKENS);
        if telling.is_empty() {
            return Some(0.5);
        }
        Some(fisher(&telling))
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

/// The tokens of a parsed message: what the classifier scores and training counts.
pub fn message_tokens(message: &crate::pipeline::parse::Inbound) -> HashSet<String> {
    let from = message.from.as_ref();
    tokens(
        &message.subject,
        &message.text,
        from.map_or("", |m| m.address.as_str()),
        from.and_then(|m| m.name.as_deref()),
    )
}

/// The distinct tokens of a message: words of the subject (prefixed) and body, the
/// sender's address, domain and name, and the hosts of linked URLs.
pub fn tokens(
    subject: &str,
    text: &str,
    from_address: &str,
    from_name: Option<&str>,
) -> HashSet<String> {
    let mut set = HashSet::new();
    for word in words(subject) {
        set.insert(format!("subject:{word}"));
    }
    let body: String = text.chars().take(20_000).collect();
    for word in words(&body) {
        set.insert(word);
    }
    for host in url_hosts(&body) {
        set.insert(format!("url:{host}"));
    }
    let address = from_address.to_lowercase();
    if let Some((_, domain)) = address.split_once('@') {
        set.insert(format!("from-domain:{domain}"));
    }
    set.insert(format!("from:{address}"));
    for word in words(from_name.unwrap_or("")) {
        set.insert(format!("from-name:{word}"));
    }
    set
}

/// Lower-case words of 3 to 20 letters; longer runs become a length token (SpamBayes's
/// "skip" tokens), so encoded blobs do not flood the model.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '\'' || c == '-'))
        .filter(|w| w.chars().count() >= 3)
        .map(|w| {
            let n = w.chars().count();
            if n > 20 {
                format!("skip:{}", n / 10 * 10)
            } else {
                w.to_lowercase()
            }
        })
}

fn url_hosts(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("://").filter_map(move |(at, _)| {
        let rest = &text[at + 3..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let host = rest[..end].trim_end_matches('.').to_lowercase();
        (!host.is_empty()).then_some(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "subject:hello",
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
