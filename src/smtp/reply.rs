//! SMTP replies: a basic code, an enhanced status code (RFC 3463) and one or more text
//! lines, rendered as `code enhanced text` with `-` between the code and the text on
//! every line but the last. Only the greeting and the EHLO/HELO answer go without an
//! enhanced code, as RFC 2034 asks; every other reply the session sends carries one.

use std::fmt;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    /// Enhanced status code such as `5.1.1`; empty for greeting and EHLO.
    enhanced: &'static str,
    lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, EHLO, HELO).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: "",
            lines,
        }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> &'static str {
        self.enhanced
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form, CRLF after every line.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    // Replies the session and listener use in more than one place.

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }

    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.5.1", format!("Error: {text}"))
    }

    pub fn syntax(text: &str) -> Reply {
        Reply::new(501, "5.5.4", format!("Syntax: {text}"))
    }

    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Error: line too long")
    }

    pub fn bare_line_ending() -> Reply {
        Reply::new(500, "5.5.2", "Error: bare <CR> or <LF> received")
    }

    pub fn message_too_big() -> Reply {
        Reply::new(552, "5.3.4", "Error: message size exceeds fixed limit")
    }

    pub fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }

    pub fn shutting_down(hostname: &str) -> Reply {
        Reply::new(421, "4.3.0", format!("{hostname} Service shutting down"))
    }

    pub fn too_many_connections(hostname: &str) -> Reply {
        Reply::new(
            421,
            "4.7.0",
            format!("{hostname} Too many connections, try again later"),
        )
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            if self.enhanced.is_empty() {
                write!(f, "{}{sep}{line}\r\n", self.code)?;
            } else {
                write!(f, "{}{sep}{} {line}\r\n", self.code, self.enhanced)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_has_code_enhanced_and_text() {
        let reply = Reply::new(550, "5.1.1", "No such user");
        assert_eq!(reply.to_string(), "550 5.1.1 No such user\r\n");
    }

    #[test]
    fn multi_line_uses_dash_on_all_but_last() {
        let reply = Reply::plain(
            250,
            vec!["mx".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(
            reply.to_string(),
            "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
    }
}
