//! Full-text search text for PostgreSQL, with the semantics of the FTS5 search (`unicode61 remove_diacritics 2`, `read::fts_query`).
//!
//! A message is stored as `to_tsvector('simple', search_document(subject, text, sender))`
//! and searched with `doc @@ to_tsquery('simple', tsquery(input))`. Tokens are made
//! here, as FTS5's tokenizer makes them: runs of letters and digits, lower-cased, with
//! diacritics removed. The document is those tokens separated by single spaces, so
//! PostgreSQL's parser finds exactly these words (one position each) and the 'simple'
//! configuration keeps them as they are.
//!
//! Known differences from FTS5: a phrase (a word like `a.b` or `x@y.z`) can match
//! across the end of the subject and the start of the text, where FTS5 keeps columns
//! apart; tokens longer than PostgreSQL's limit are cut to [`MAX_TOKEN_BYTES`] on both
//! sides; a document is capped at [`MAX_TSVECTOR_BYTES`] (later new words are not
//! indexed), and phrase positions beyond 16,383 are all one position.
//! PostgreSQL's parser splits words at characters its `LC_CTYPE` does not count as
//! letters or digits: with `C.UTF-8`, `²` and `½` (which FTS5 indexes) are dropped, and
//! a query phrase around them can miss; with `LC_CTYPE = 'C'` every non-ASCII character
//! is a letter to it and each token here is exactly one lexeme there.

use std::collections::HashMap;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// PostgreSQL ignores words of 2047 bytes or more (`MAXSTRLEN`, with a notice); longer
/// tokens are cut to this many bytes, at a character boundary, in documents and queries
/// alike, so a search for a long word still finds it.
pub const MAX_TOKEN_BYTES: usize = 2046;

/// PostgreSQL refuses a tsvector bigger than 1 MiB (`MAXSTRPOS`, an error "string is
/// too long for tsvector"), counting per distinct lexeme its bytes (rounded up to even),
/// 2 bytes, and 2 per position (at most 255 positions kept). A document stays under
/// this many such bytes: past it, new words and further positions are left out.
pub const MAX_TSVECTOR_BYTES: usize = 1_000_000;

/// Positions PostgreSQL keeps per lexeme (`MAXNUMPOS` - 1).
const MAX_POSITIONS: u16 = 255;

/// The text to index for one message: its subject, text and sender (address and
/// name, as FTS5's `sender` column), as tokens separated by single spaces.
pub fn search_document(subject: &str, text: &str, sender: &str) -> String {
    let mut document = String::new();
    let mut positions: HashMap<String, u16> = HashMap::new();
    let mut size = 0;
    for field in [subject, text, sender] {
        for token in tokens(field) {
            let seen = positions.get(&token).copied();
            let cost = match seen {
                None => token.len().next_multiple_of(2) + 4,
                Some(n) if n < MAX_POSITIONS => 2,
                Some(_) => 0,
            };
            if size + cost > MAX_TSVECTOR_BYTES {
                continue;
            }
            size += cost;
            if !document.is_empty() {
                document.push(' ');
            }
            document.push_str(&token);
            positions.insert(token, seen.unwrap_or(0).saturating_add(1));
        }
    }
    document
}

/// Turns what a user typed into a `to_tsquery('simple', …)` argument, as `fts_query`
/// does for FTS5: every word must match (a word with punctuation inside, like
/// `x@y.com`, as a phrase), the last one as a prefix. Lexemes are quoted, so nothing
/// typed is read as tsquery syntax. `None` when no word has a token.
///
/// FTS5 leaves a word without tokens (`--`) out of the query; when that word is the
/// last, no word is a prefix. An input whose words all lack tokens (`...`) gives
/// `fts_query` a query that matches nothing, and `None` here.
pub fn tsquery(input: &str) -> Option<String> {
    let mut phrases: Vec<Vec<String>> = query_words(input).map(tokens).collect();
    let last_is_prefix = phrases.last().is_some_and(|p| !p.is_empty());
    phrases.retain(|p| !p.is_empty());
    let mut quoted: Vec<Vec<String>> = phrases
        .iter()
        .map(|p| p.iter().map(|t| quote(t)).collect())
        .collect();
    let last = quoted.last_mut()?;
    if last_is_prefix {
        if let Some(token) = last.last_mut() {
            token.push_str(":*");
        }
    }
    let ands: Vec<String> = quoted.iter().map(|p| p.join(" <-> ")).collect();
    Some(ands.join(" & "))
}

/// The words of a query, split as `read::fts_query` splits them.
fn query_words(input: &str) -> impl Iterator<Item = &str> {
    input
        .split(|ch: char| !ch.is_alphanumeric() && !matches!(ch, '@' | '.' | '_' | '-'))
        .filter(|w| !w.is_empty())
}

/// A tsquery operand for a token (alphanumeric already; quoted all the same).
fn quote(token: &str) -> String {
    format!("'{}'", token.replace('\'', "''"))
}

/// The tokens of `text` as FTS5's `unicode61 remove_diacritics 2` makes them: runs of
/// letters and digits, lower-cased, Latin letters without their diacritics (the base
/// letter of the canonical decomposition), combining diacritical marks dropped, other
/// combining marks (Devanagari vowel signs, …) separating; each cut to
/// [`MAX_TOKEN_BYTES`]. Greek, Cyrillic and other letters keep their marks, as in FTS5.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for ch in text.chars().flat_map(char::to_lowercase) {
        if is_diacritic(ch) {
            continue;
        }
        let ch = without_diacritics(ch);
        if ch.is_alphanumeric() && !is_combining_mark(ch) {
            current.push(ch);
        } else if !current.is_empty() {
            tokens.push(cut(std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        tokens.push(cut(current));
    }
    tokens
}

/// A combining diacritical mark that FTS5 drops inside a word (its
/// `sqlite3Fts5UnicodeIsdiacritic`: a set of marks in U+0300..U+0331); other combining
/// marks separate words.
fn is_diacritic(ch: char) -> bool {
    const LOW: u32 = 0x0802_9FDF; // U+0300..U+031F
    const HIGH: u32 = 0x0003_61F8; // U+0320..U+0331
    match u32::from(ch) {
        c @ 0x300..=0x31F => LOW & (1 << (c - 0x300)) != 0,
        c @ 0x320..=0x331 => HIGH & (1 << (c - 0x320)) != 0,
        _ => false,
    }
}

/// The base letter of a Latin letter with diacritics (`é` → `e`); others unchanged.
fn without_diacritics(ch: char) -> char {
    let base = ch.nfd().next().unwrap_or(ch);
    if is_latin(base) {
        base
    } else {
        ch
    }
}

/// Whether `ch` is in a Latin block (the letters FTS5 removes diacritics from).
fn is_latin(ch: char) -> bool {
    matches!(ch,
        'a'..='z'
        | '\u{00C0}'..='\u{024F}'
        | '\u{1E00}'..='\u{1EFF}'
        | '\u{2C60}'..='\u{2C7F}'
        | '\u{A720}'..='\u{A7FF}'
        | '\u{AB30}'..='\u{AB6F}')
}

/// `token` cut to at most [`MAX_TOKEN_BYTES`] bytes at a character boundary.
fn cut(mut token: String) -> String {
    if token.len() > MAX_TOKEN_BYTES {
        let mut end = MAX_TOKEN_BYTES;
        while !token.is_char_boundary(end) {
            end -= 1;
        }
        token.truncate(end);
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fts_query;
    use rusqlite::Connection;

    /// Messages (subject, text, sender) searched in [`SEARCHES`].
    const DOCS: &[(&str, &str, &str)] = &[
        (
            "Invoice overdue",
            "Please pay invoice #4711 by Friday.",
            "billing@acme.example Acme Billing",
        ),
        (
            "Café crème",
            "Naïve résumé attached",
            "zoe@example.org Zoë Ærø",
        ),
        (
            "re: snake_case and kebab-case",
            "see v1.2.3 and 0x1F, 123abc",
            "dev@example.org",
        ),
        ("東京タワー", "한국어 텍스트 straße", "kim@example.kr"),
        ("hello", "world again", "a@b.example"),
    ];

    /// A query, and which of [`DOCS`] it finds: checked here against FTS5, and against
    /// PostgreSQL 15 by hand with `search_document` / `tsquery` (same hits).
    const SEARCHES: &[(&str, &[usize])] = &[
        ("invoice", &[0]),
        ("INVOI", &[0]),
        ("invoice fri", &[0]),
        ("fri invoice", &[]),
        ("4711", &[0]),
        ("billing@acme.example", &[0]),
        ("acme.exa", &[0]),
        ("cafe creme", &[1]),
        ("CAFÉ", &[1]),
        ("resume", &[1]),
        ("zoe", &[1]),
        ("aerø", &[]),
        ("ærø", &[1]),
        ("snake_case", &[2]),
        ("case-and", &[2]),
        ("and-case", &[]),
        ("kebab-ca", &[2]),
        ("v1.2", &[2]),
        ("0x1f", &[2]),
        ("123", &[2]),
        ("東京", &[3]),
        ("STRASSE", &[]),
        ("straße", &[3]),
        ("example", &[0, 1, 2, 3, 4]),
        ("example -- ...", &[0, 1, 2, 3, 4]),
        ("exam --", &[]),
        ("hello world", &[4]),
        ("\"hello\" OR x*", &[]),
        ("it's (a) & b | !c <-> d:*", &[]),
    ];

    fn fts5_hits(query: &str) -> Vec<usize> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(subject, text, sender,
             tokenize = 'unicode61 remove_diacritics 2')",
        )
        .unwrap();
        for (i, (subject, text, sender)) in DOCS.iter().enumerate() {
            conn.execute(
                "INSERT INTO f (rowid, subject, text, sender) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![i as i64, subject, text, sender],
            )
            .unwrap();
        }
        let Some(q) = fts_query(query) else {
            return Vec::new();
        };
        let mut stmt = conn
            .prepare("SELECT rowid FROM f WHERE f MATCH ?1 ORDER BY rowid")
            .unwrap();
        let rows = stmt.query_map([q], |r| r.get::<_, i64>(0)).unwrap();
        rows.map(|r| r.unwrap() as usize).collect()
    }

    #[test]
    fn the_cases_are_what_fts5_finds() {
        for (query, expected) in SEARCHES {
            assert_eq!(fts5_hits(query), *expected, "{query}");
        }
    }

    /// FTS5's own tokens of `text` in order (the fts5vocab 'instance' table).
    fn fts5_tokens(text: &str) -> Vec<String> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(t, tokenize = 'unicode61 remove_diacritics 2');
             CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance');",
        )
        .unwrap();
        conn.execute("INSERT INTO f (t) VALUES (?1)", [text])
            .unwrap();
        let mut stmt = conn.prepare("SELECT term FROM v ORDER BY offset").unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn tokens_are_the_fts5_tokens() {
        for text in [
            "Invoice #4711: PAY by Friday!",
            "Café crème, naïve résumé; Zoë",
            "snake_case kebab-case x@y.example v1.2.3 0x1F 123abc",
            "東京タワー 한국어 Ñandú",
            "it's \"quoted\" <tag> &amp; a:b",
            "tab\tnew\nline  double  space",
            "ダイス Ωμέγα ά ёй हिन्दी ไทย ḗ ş ő ǘ ł ø ß",
            "x\u{301}y ə\u{303} a\u{20DD}b İstanbul ǅemal ﬁne",
            "a\u{300}b a\u{305}b a\u{31F}b a\u{327}b a\u{331}b a\u{36F}b a\u{1DC0}b a\u{FE20}b",
        ] {
            let ours: Vec<String> = search_document(text, "", "")
                .split(' ')
                .map(str::to_string)
                .collect();
            assert_eq!(ours, fts5_tokens(text), "{text}");
        }
    }

    #[test]
    fn documents_are_tokens_joined_by_spaces() {
        assert_eq!(
            search_document("Re: Café", "Naïve résumé, #4711", "zoe@example.org Zoë"),
            "re cafe naive resume 4711 zoe example org zoe"
        );
        assert_eq!(
            search_document("snake_case kebab-case", "v1.2.3 0x1F 123abc", ""),
            "snake case kebab case v1 2 3 0x1f 123abc"
        );
        assert_eq!(
            search_document("東京タワー", "Straße", ""),
            "東京タワー straße"
        );
        assert_eq!(search_document("", "...", ""), "");
    }

    #[test]
    fn long_tokens_are_cut_at_a_character_boundary() {
        let doc = search_document(&"a".repeat(3000), "", "");
        assert_eq!(doc, "a".repeat(MAX_TOKEN_BYTES));
        let doc = search_document(&"é".repeat(1100), "", "");
        assert_eq!(doc, "e".repeat(1100));
        let doc = search_document(&"ж".repeat(1100), "", "");
        assert_eq!(doc, "ж".repeat(MAX_TOKEN_BYTES / 2));
        let query = tsquery(&"a".repeat(3000)).unwrap();
        assert_eq!(query, format!("'{}':*", "a".repeat(MAX_TOKEN_BYTES)));
    }

    /// The size PostgreSQL gives the document's tsvector (see [`MAX_TSVECTOR_BYTES`]).
    fn tsvector_bytes(doc: &str) -> usize {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for token in doc.split(' ') {
            *counts.entry(token).or_default() += 1;
        }
        let lexeme = |(t, n): (&&str, &usize)| t.len().next_multiple_of(2) + 2 + 2 * n.min(&255);
        counts.iter().map(lexeme).sum()
    }

    #[test]
    fn documents_stay_under_the_tsvector_limit() {
        // 200,000 distinct words: PostgreSQL refused even 125,000 of them
        // ("string is too long for tsvector (1500000 bytes, max 1048575 bytes)").
        let words: Vec<String> = (0..200_000).map(|n| format!("w{n:07}")).collect();
        let doc = search_document("", &words.join(" "), "again");
        let bytes = tsvector_bytes(&doc);
        assert!(bytes <= MAX_TSVECTOR_BYTES, "{bytes}");
        assert!(bytes > MAX_TSVECTOR_BYTES - 20, "{bytes}");
        assert!(doc.starts_with("w0000000 w0000001"));
        // A repeated word costs nothing past its 255th position: all of it is kept.
        let repeated = search_document("", &"same ".repeat(300_000), "");
        assert_eq!(repeated.split(' ').count(), 300_000);
        // Repeats of known words still fit once new words no longer do.
        let doc = search_document("", &words.join(" "), &"w0000000 ".repeat(300));
        assert!(tsvector_bytes(&doc) <= MAX_TSVECTOR_BYTES);
    }

    #[test]
    fn queries_are_phrases_joined_by_and_with_a_prefix_last() {
        let cases: &[(&str, Option<&str>)] = &[
            ("invoice", Some("'invoice':*")),
            ("Invoice FRI", Some("'invoice' & 'fri':*")),
            (
                "billing@acme.example",
                Some("'billing' <-> 'acme' <-> 'example':*"),
            ),
            ("CAFÉ crème", Some("'cafe' & 'creme':*")),
            ("snake_case", Some("'snake' <-> 'case':*")),
            ("example -- ...", Some("'example'")),
            ("exam --", Some("'exam'")),
            ("-- exam", Some("'exam':*")),
            ("\"hello\" OR x*", Some("'hello' & 'or' & 'x':*")),
            (
                "it's (a) & b | !c <-> d:*",
                Some("'it' & 's' & 'a' & 'b' & 'c' & 'd':*"),
            ),
            ("東京", Some("'東京':*")),
            ("", None),
            ("  ", None),
            ("... -- @", None),
            ("!&|<->':*()", None),
        ];
        for (input, expected) in cases {
            assert_eq!(tsquery(input).as_deref(), *expected, "{input}");
        }
    }

    #[test]
    fn query_words_split_as_fts_query_splits() {
        for input in [
            "a b",
            "x@y.z  a_b-c",
            "it's \"x\"",
            "(a) & !b",
            "東京 タワー",
            "...",
        ] {
            let fts5_words = fts_query(input).map_or(0, |q| q.matches("\" \"").count() + 1);
            assert_eq!(query_words(input).count(), fts5_words, "{input}");
        }
    }

    #[test]
    fn no_input_escapes_its_quotes() {
        for input in ["a'b", "'' & x", "a\\'b", "x' | 'y"] {
            let query = tsquery(input).unwrap();
            let outside: String = query.split('\'').step_by(2).collect();
            assert!(
                outside.chars().all(|c| " &<->:*".contains(c)),
                "{input} -> {query}"
            );
        }
    }

    #[test]
    #[ignore = "prints the cases' documents and queries for checking against PostgreSQL"]
    fn print_cases_as_sql() {
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        for (i, (s, t, f)) in DOCS.iter().enumerate() {
            println!(
                "INSERT INTO d VALUES ({i}, to_tsvector('simple', {}));",
                lit(&search_document(s, t, f))
            );
        }
        for (query, expected) in SEARCHES {
            let q = tsquery(query).unwrap_or_default();
            println!(
                "SELECT {}, {}, array(SELECT i FROM d WHERE v @@ to_tsquery('simple', {}) ORDER BY i)::text;",
                lit(query),
                lit(&format!("{expected:?}")),
                lit(&q)
            );
        }
    }
}
