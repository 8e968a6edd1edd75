//! A plain-text mail body split into what is new, the quoted history and the
//! signature, so the conversation page can fold the last two behind "…".
//!
//! Line-based, in this order of precedence:
//! - Quoted history: lines starting with `>`; an attribution line before them
//!   ("On … wrote:", "Op … schreef …:", "Den … skrev …:", "Am … schrieb …:",
//!   "Le … a écrit :", "… wrote:"), possibly wrapped over two lines; and from an
//!   Outlook-style separator ("-----Original Message-----", "-----Oorspronkelijk
//!   bericht-----", "-----Ursprungligt meddelande-----", a line of underscores or a
//!   `From:`/`Sent:` header block) or an attribution that no `>` line follows to the end
//!   (a top-posted reply: everything below is history).
//! - Signature: from a `-- ` line (RFC 3676; `--` too, as many clients trim it) to the
//!   next quoted history or the end.
//! - Everything else is new text, including text between quoted blocks of an
//!   interleaved reply.

/// What a run of lines is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// Written for this message.
    Text,
    /// Earlier messages: `>` lines, attributions, Outlook history blocks.
    Quote,
    /// The sender's signature, from its `-- ` separator.
    Signature,
}

/// Consecutive lines of one kind, as they appear in the body (line ends included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// What the lines are.
    pub kind: PartKind,
    /// The lines.
    pub text: &'a str,
}

/// The body in parts, in order; joined, they give back `body` exactly.
pub fn split_quoted(body: &str) -> Vec<Part<'_>> {
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let kinds = classify(&lines);
    let mut parts: Vec<Part> = Vec::new();
    let mut part_start = 0;
    let mut end = 0;
    for (line, kind) in lines.iter().zip(kinds) {
        let line_start = end;
        end += line.len();
        match parts.last_mut() {
            Some(last) if last.kind == kind => last.text = &body[part_start..end],
            _ => {
                part_start = line_start;
                parts.push(Part {
                    kind,
                    text: &body[line_start..end],
                });
            }
        }
    }
    parts
}

/// The kind of each line. Blank lines join the part before them, so a fold hides a
/// quote with its trailing blank lines.
fn classify(lines: &[&str]) -> Vec<PartKind> {
    let mut kinds = vec![PartKind::Text; lines.len()];
    let mut in_signature = false;
    let mut index = 0;
    while index < lines.len() {
        let line = content(lines[index]);
        if history_to_end(lines, index) {
            kinds[index..].fill(PartKind::Quote);
            break;
        }
        if let Some(length) = attribution_before_quote(lines, index) {
            kinds[index..index + length].fill(PartKind::Quote);
            index += length;
            in_signature = false;
            continue;
        }
        kinds[index] = if is_quoted(line) {
            in_signature = false;
            PartKind::Quote
        } else if line == "-- " || line == "--" {
            in_signature = true;
            PartKind::Signature
        } else if in_signature {
            PartKind::Signature
        } else if line.trim().is_empty() && index > 0 {
            kinds[index - 1]
        } else {
            PartKind::Text
        };
        index += 1;
    }
    kinds
}

/// The line without its line ending.
fn content(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn is_quoted(line: &str) -> bool {
    line.starts_with('>')
}

/// Words that open an attribution line, per language (en, nl, sv, de, fr, es).
const ATTRIBUTION_OPENERS: &[&str] = &["On ", "Op ", "Den ", "Am ", "Le ", "El "];

/// The verbs of an attribution line.
const ATTRIBUTION_VERBS: &[&str] = &[
    "wrote",
    "schreef",
    "skrev",
    "schrieb",
    "a écrit",
    "escribió",
];

/// Separators Outlook and phone clients put above the history they do not quote.
const HISTORY_SEPARATORS: &[&str] = &[
    "original message",
    "oorspronkelijk bericht",
    "ursprungligt meddelande",
    "ursprüngliche nachricht",
    "message d'origine",
    "mensaje original",
];

/// Header names of an Outlook history block: From, then Sent/Date.
const FROM_HEADERS: &[&str] = &["From:", "Van:", "Från:", "Von:", "De:"];
const SENT_HEADERS: &[&str] = &[
    "Sent:",
    "Date:",
    "Verzonden:",
    "Datum:",
    "Skickat:",
    "Gesendet:",
    "Envoyé :",
];

/// Lines of an attribution ("On … wrote:", one or two lines) at `index` that a quoted
/// line follows (after blank lines).
fn attribution_before_quote(lines: &[&str], index: usize) -> Option<usize> {
    let length = attribution_length(lines, index)?;
    let next = lines[index + length..]
        .iter()
        .map(|l| content(l))
        .find(|l| !l.trim().is_empty())?;
    is_quoted(next).then_some(length)
}

/// One or two lines ending in an attribution verb and `:`.
fn attribution_length(lines: &[&str], index: usize) -> Option<usize> {
    let first = content(lines[index]).trim();
    if is_attribution(first, false) {
        return Some(1);
    }
    let opens = ATTRIBUTION_OPENERS
        .iter()
        .any(|opener| first.starts_with(opener));
    let second = lines.get(index + 1).map(|l| content(l).trim())?;
    (opens && is_attribution(&format!("{first} {second}"), true)).then_some(2)
}

/// `… wrote:` / `Op … schreef Jan:` — a line ending in `:` with an attribution verb
/// (followed by at most a name), short enough to be a header, not a paragraph.
fn is_attribution(line: &str, opened: bool) -> bool {
    if !line.ends_with(':') || line.len() > 300 || is_quoted(line) {
        return false;
    }
    let opens = opened
        || ATTRIBUTION_OPENERS
            .iter()
            .any(|opener| line.starts_with(opener));
    let body = line.trim_end_matches(':').trim_end();
    ATTRIBUTION_VERBS
        .iter()
        .any(|verb| body.ends_with(verb) || (opens && body.contains(&format!(" {verb} "))))
}

/// Whether history that runs to the end of the body starts at `index`: an Outlook
/// separator or header block, or a top-posted attribution no `>` line follows.
fn history_to_end(lines: &[&str], index: usize) -> bool {
    let line = content(lines[index]).trim();
    let lower = line.to_lowercase();
    let separator = line.starts_with("---") && HISTORY_SEPARATORS.iter().any(|s| lower.contains(s));
    let underscores = line.len() >= 10 && line.chars().all(|c| c == '_');
    let opened = ATTRIBUTION_OPENERS
        .iter()
        .any(|opener| line.starts_with(opener));
    separator
        || (underscores && starts_outlook_headers(lines, index + 1))
        || starts_outlook_headers(lines, index)
        || (opened
            && attribution_length(lines, index).is_some()
            && attribution_before_quote(lines, index).is_none())
}

/// `From:` at `index` with `Sent:`/`Date:` within the next three lines.
fn starts_outlook_headers(lines: &[&str], index: usize) -> bool {
    let Some(first) = lines.get(index).map(|l| content(l).trim_start()) else {
        return false;
    };
    FROM_HEADERS.iter().any(|h| first.starts_with(h))
        && lines[index + 1..].iter().take(3).any(|l| {
            SENT_HEADERS
                .iter()
                .any(|h| content(l).trim_start().starts_with(h))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn kinds(body: &str) -> Vec<(PartKind, &str)> {
        split_quoted(body)
            .into_iter()
            .map(|part| (part.kind, part.text))
            .collect()
    }

    fn joined(parts: &[Part]) -> String {
        parts.iter().map(|part| part.text).collect()
    }

    use PartKind::{Quote, Signature, Text};

    #[test]
    fn parts_join_back_to_the_body() {
        let body =
            "Hi\r\n\r\nOn Mon, Jan 1, 2024 at 9:00 AM Ann <a@x> wrote:\r\n> old\r\n-- \r\nBob\r\n";
        assert_eq!(joined(&split_quoted(body)), body);
        assert!(split_quoted("").is_empty());
    }

    #[test]
    fn bottom_quote_with_attribution_and_signature() {
        let body = "Thanks, fixed.\n\nOn Tue, 17 Nov 2009 14:00:54 -0500, Lars <l@x> wrote:\n> it breaks\n> badly\n\n-- \nCarl\n";
        assert_eq!(
            kinds(body),
            vec![
                (Text, "Thanks, fixed.\n\n"),
                (Quote, "On Tue, 17 Nov 2009 14:00:54 -0500, Lars <l@x> wrote:\n> it breaks\n> badly\n\n"),
                (Signature, "-- \nCarl\n"),
            ]
        );
    }

    #[test]
    fn interleaved_reply_keeps_the_answers_as_text() {
        let body = "Ann wrote:\n> question one\nanswer one\n> question two\nanswer two\n";
        assert_eq!(
            kinds(body),
            vec![
                (Quote, "Ann wrote:\n> question one\n"),
                (Text, "answer one\n"),
                (Quote, "> question two\n"),
                (Text, "answer two\n"),
            ]
        );
    }

    #[test]
    fn dutch_and_swedish_attributions() {
        for attribution in [
            "Op 12 mrt. 2024 om 10:00 schreef Jan de Vries <jan@example.nl>:",
            "Den 12 mars 2024 kl. 10:00 skrev Anna Berg <anna@example.se>:",
            "Am 12.03.2024 um 10:00 schrieb Hans <h@example.de>:",
            "Le 12 mars 2024 à 10:00, Pierre <p@example.fr> a écrit :",
        ] {
            let body = format!("Nieuw\n\n{attribution}\n> oud\n");
            assert_eq!(
                kinds(&body),
                vec![(Text, "Nieuw\n\n"), (Quote, &body[7..])],
                "{attribution}"
            );
        }
    }

    #[test]
    fn attribution_wrapped_over_two_lines() {
        let body = "Yes.\nOn Mon, 12 Mar 2024 at 10:00, Jonathan Longname <\njonathan@example.com> wrote:\n> earlier\n";
        assert_eq!(kinds(body), vec![(Text, "Yes.\n"), (Quote, &body[5..])]);
    }

    #[test]
    fn top_posted_attribution_without_quote_marks_folds_to_the_end() {
        let body =
            "See below.\n\nOn Mon, Jan 1, 2024 at 9:00 AM Ann <a@x> wrote:\n\nthe old text\nmore\n";
        assert_eq!(
            kinds(body),
            vec![(Text, "See below.\n\n"), (Quote, &body[12..])]
        );
    }

    #[test]
    fn outlook_original_message_block_folds_to_the_end() {
        for separator in [
            "-----Original Message-----",
            "-----Oorspronkelijk bericht-----",
            "-----Ursprungligt meddelande-----",
        ] {
            let body =
                format!("New text\n\n{separator}\nFrom: Ann\nSent: Monday\nSubject: x\n\nold\n");
            assert_eq!(
                kinds(&body),
                vec![(Text, "New text\n\n"), (Quote, &body[10..])],
                "{separator}"
            );
        }
    }

    #[test]
    fn outlook_underscore_and_header_block_folds_to_the_end() {
        let body = "Ok\r\n________________________________\r\nFrom: Ann <a@x>\r\nSent: Monday\r\nTo: b@x\r\nold\r\n";
        assert_eq!(kinds(body), vec![(Text, "Ok\r\n"), (Quote, &body[4..])]);
        let bare = "Ok\nVan: Ann\nVerzonden: maandag\nAan: b\nold\n";
        assert_eq!(kinds(bare), vec![(Text, "Ok\n"), (Quote, &bare[3..])]);
    }

    #[test]
    fn a_sentence_ending_in_wrote_is_not_an_attribution() {
        let body = "This is what I wrote:\nthe plan\n";
        assert_eq!(kinds(body), vec![(Text, body)]);
    }

    #[test]
    fn signature_without_trailing_space_and_text_after_quote_resets_it() {
        let body = "Hi\n--\nBob\nSupport\n";
        assert_eq!(
            kinds(body),
            vec![(Text, "Hi\n"), (Signature, "--\nBob\nSupport\n")]
        );
    }

    /// The message body of a stored mail file (after the first blank line).
    fn corpus_body(relative: &str) -> Option<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpora/threads")
            .join(relative);
        let raw = String::from_utf8_lossy(&std::fs::read(path).ok()?).into_owned();
        let start = raw.find("\n\n")? + 2;
        Some(raw[start..].to_owned())
    }

    #[test]
    fn real_thread_interleaved_reply_from_notmuch_list() {
        let Some(body) = corpus_body("notmuch-test-corpora/default/cur/41:2,") else {
            panic!("../shared/corpora/threads missing: the corpus tests read it in place");
        };
        let parts = split_quoted(&body);
        assert_eq!(joined(&parts), body);
        let first = parts[0];
        assert_eq!(first.kind, Quote);
        assert!(first
            .text
            .starts_with("On Tue, 17 Nov 2009 14:00:54 -0500, Lars Kellogg-Stedman"));
        let quotes = parts.iter().filter(|p| p.kind == Quote).count();
        let texts: Vec<&Part> = parts.iter().filter(|p| p.kind == Text).collect();
        assert_eq!(quotes, 3, "{parts:#?}");
        assert!(texts.iter().any(|p| p.text.contains("Welcome, Lars!")));
        assert!(texts.iter().all(|p| !p.text.contains("\n>")));
    }

    #[test]
    fn real_threads_keep_every_quoted_line_in_a_quote() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpora/threads/notmuch-test-corpora/default/cur");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut checked = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let relative = format!(
                "notmuch-test-corpora/default/cur/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            let Some(body) = corpus_body(&relative) else {
                continue;
            };
            let parts = split_quoted(&body);
            assert_eq!(joined(&parts), body, "{relative}");
            for part in parts.iter().filter(|p| p.kind != Quote) {
                assert!(
                    !part.text.lines().any(|l| l.starts_with('>')),
                    "{relative}: {part:?}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} corpus messages read");
    }

    #[test]
    fn real_thread_signature_is_folded() {
        let body =
            corpus_body("notmuch-test-corpora/default/cur/30:2,").expect("corpus message 30");
        let parts = split_quoted(&body);
        let signature = parts
            .iter()
            .find(|p| p.kind == Signature)
            .expect("a signature part");
        assert!(signature.text.starts_with("-- \n"), "{signature:?}");
    }
}
