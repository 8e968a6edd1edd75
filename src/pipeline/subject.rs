//! Subject normalization for threading (DESIGN.md rule 3 and the subject guard).
//!
//! Strips reply and forward prefixes in the languages customers write in (`Re:`,
//! `RE :`, `AW:`, `SV:`, `Antw:`, `Fwd:`, `WG:`, `VS:`, `TR:`, `Doorst:`, …, also with
//! counters like `Re[2]:`), leading `[tags]`, and folds whitespace and case.

/// Reply and forward prefixes, lower case, without the colon.
const PREFIXES: &[&str] = &[
    "re", "aw", "sv", "antw", "vs", "ynt", "odp", "rif", "r", "fw", "fwd", "wg", "tr", "doorst",
    "rv", "i", "enc", "vb", "vl", "fs",
];

/// The subject with prefixes and tags removed, whitespace folded, lower case.
pub fn normalize(subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let stripped = strip_tag(rest).or_else(|| strip_prefix(rest));
        match stripped {
            Some(next) => rest = next.trim_start(),
            None => break,
        }
    }
    rest.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether the subject opens with a reply or forward prefix (after `[tags]`): a
/// person writing back, or passing something on.
pub fn has_reply_prefix(subject: &str) -> bool {
    let mut rest = subject.trim();
    while let Some(next) = strip_tag(rest) {
        rest = next.trim_start();
    }
    strip_prefix(rest).is_some()
}

/// `[ticket #12] rest` → `rest`.
fn strip_tag(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(&inner[end + 1..])
}

/// `Re: rest`, `RE : rest`, `Re[2]: rest`, `Re(2): rest` → `rest`.
fn strip_prefix(s: &str) -> Option<&str> {
    let word_len = s
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map(|(i, _)| i)?;
    let word = s[..word_len].to_lowercase();
    if !PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let after = skip_counter(&s[word_len..]).trim_start();
    after.strip_prefix(':').or_else(|| after.strip_prefix('：'))
}

fn skip_counter(s: &str) -> &str {
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(inner) = s.strip_prefix(open) {
            if let Some(end) = inner.find(close) {
                if inner[..end].chars().all(|c| c.is_ascii_digit()) {
                    return &inner[end + 1..];
                }
            }
        }
    }
    s
}

/// Whether one normalized subject contains the other (the subject guard: a reply
/// whose subject shares nothing with its parent is a new question).
pub fn related(a: &str, b: &str) -> bool {
    a.contains(b) || b.contains(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_localized_prefixes_tags_and_case() {
        for (input, want) in [
            ("Re: Order 12", "order 12"),
            ("RE : Order 12", "order 12"),
            ("AW: WG: Order  12", "order 12"),
            ("SV: Antw: order 12", "order 12"),
            ("Fwd: [Support] Re[3]: Order 12", "order 12"),
            ("Doorst: TR: VS: Order 12", "order 12"),
            ("  Order 12  ", "order 12"),
            ("Re: ", ""),
            ("Reply needed", "reply needed"),
            ("Re:Re:Re: x", "x"),
        ] {
            assert_eq!(normalize(input), want, "{input:?}");
        }
    }

    #[test]
    fn words_that_merely_start_like_a_prefix_are_kept() {
        assert_eq!(normalize("Invoice: March"), "invoice: march");
        assert_eq!(normalize("Trial: ends"), "trial: ends");
    }

    #[test]
    fn related_means_one_contains_the_other() {
        assert!(related("order 12", "order 12 delayed"));
        assert!(!related("order 12", "password reset"));
    }
}
