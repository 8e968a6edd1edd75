//! Mail-derived text made safe to show: names, subjects, bodies and file names come
//! from strangers, so before they reach a terminal (the CLI's tables) or a file system
//! (an attachment's download name) their control characters are made visible or
//! replaced. JSON output needs none of this: the serializer escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Text for one table cell or header line: every control character, line breaks and
/// tabs included, is shown escaped (`\x1b`, `\r`, `\n`), as are the bidirectional
/// overrides that reorder what the terminal shows.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// Text of several lines (a message body): line breaks and tabs stay, every other
/// control character is shown escaped.
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| !keep(c) && (c.is_control() || is_bidi_control(c));
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            shown.push(c);
            continue;
        }
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(shown, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(shown, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(shown)
}

/// The Unicode bidirectional embedding, override and isolate controls.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The name an attachment is saved under: the last path component of the sender's
/// name (never `../../x` or `C:\\x`), control and bidirectional-override characters
/// replaced, no leading dots; `attachment` when nothing is left. The JSON keeps the
/// original name (escaped by the serializer).
pub fn download_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "attachment".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escape_injection_is_shown_not_sent() {
        let subject = "Hi\x1b[2J\x1b]0;owned\x07\r\nfake row\u{202e}txt.exe";
        let shown = line(subject);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(
            shown,
            "Hi\\x1b[2J\\x1b]0;owned\\x07\\r\\nfake row\\u{202e}txt.exe"
        );
    }

    #[test]
    fn a_body_keeps_its_lines_but_not_its_escapes() {
        assert_eq!(block("a\n\tb\x1b[31m\r"), "a\n\tb\\x1b[31m\\r");
        assert!(matches!(block("plain\ntext"), Cow::Borrowed(_)));
    }

    #[test]
    fn c1_controls_and_del_are_escaped() {
        assert_eq!(line("a\u{9b}2Jb\u{7f}"), "a\\x9b2Jb\\x7f");
    }

    #[test]
    fn attachment_names_keep_only_their_last_component() {
        assert_eq!(download_name("../../../tmp/evil"), "evil");
        assert_eq!(download_name("C:\\Windows\\evil.exe"), "evil.exe");
        assert_eq!(
            download_name("a\r\nX-Evil: 1\x1b[2J.pdf"),
            "a__X-Evil: 1_[2J.pdf"
        );
        assert_eq!(download_name("../.."), "attachment");
        assert_eq!(download_name(".bashrc"), "bashrc");
        assert_eq!(download_name("invoice\u{202e}fdp.exe"), "invoice_fdp.exe");
        assert_eq!(download_name("Factuur 12.pdf"), "Factuur 12.pdf");
    }
}
