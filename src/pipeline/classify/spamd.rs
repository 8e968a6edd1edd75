//! C4: SpamAssassin's spamd as an optional external scanner (`[classification.spamd]`),
//! spoken to over TCP in the SPAMC/1.5 protocol with the `SYMBOLS` verb. The whole
//! exchange is bounded by the configured timeout and fails open: a scanner that is
//! down, slow or garbled adds nothing and never holds mail back.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Finding, Received, Verdict};
use crate::config::SpamdConfig;

/// Larger messages are not sent, as spamc does by default: spam is small, and a
/// scanner should not chew on attachments.
const MAX_SIZE: usize = 512 * 1024;
/// Rule names kept as reasons, at most.
const MAX_SYMBOLS: usize = 8;

/// `spamd:<score>/<threshold>` and `spamd:<RULE>` findings when spamd says spam;
/// nothing when it says ham, is skipped, or fails.
pub async fn findings(spamd: Option<&SpamdConfig>, message: &Received<'_>) -> Vec<Finding> {
    let Some(spamd) = spamd else {
        return Vec::new();
    };
    if message.raw.len() > MAX_SIZE {
        return Vec::new();
    }
    let report = match tokio::time::timeout(spamd.timeout, scan(spamd, message.raw)).await {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            tracing::warn!(address = %spamd.address, error = %e, "spamd scan failed; message accepted unscanned");
            return Vec::new();
        }
        Err(_) => {
            tracing::warn!(address = %spamd.address, timeout = ?spamd.timeout, "spamd timed out; message accepted unscanned");
            return Vec::new();
        }
    };
    if !report.spam {
        return Vec::new();
    }
    let mut found = vec![Finding::new(
        Verdict::Spam,
        format!("spamd:{}/{}", report.score, report.threshold),
    )];
    found.extend(
        report
            .symbols
            .into_iter()
            .take(MAX_SYMBOLS)
            .map(|rule| Finding::new(Verdict::Spam, format!("spamd:{rule}"))),
    );
    found
}

/// What spamd answered.
#[derive(Debug, PartialEq)]
struct Report {
    spam: bool,
    score: String,
    threshold: String,
    symbols: Vec<String>,
}

async fn scan(spamd: &SpamdConfig, raw: &[u8]) -> Result<Report, String> {
    let mut stream = TcpStream::connect(spamd.address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\n\r\n", raw.len());
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    stream
        .write_all(raw)
        .await
        .map_err(|e| format!("send: {e}"))?;
    stream.shutdown().await.map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    // A reply is a few hundred bytes; a runaway peer is cut off.
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    parse_reply(&String::from_utf8_lossy(&answer))
}

/// Parses `SPAMD/1.1 0 EX_OK`, the `Spam: True ; 7.2 / 5.0` header and the symbol line.
fn parse_reply(answer: &str) -> Result<Report, String> {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", first_line(answer)))?;
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    let mut words = status.split_whitespace();
    let (protocol, code) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if !protocol.starts_with("SPAMD/") || code != "0" {
        return Err(format!("spamd said {status:?}"));
    }
    let spam_header = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("spam"))
        .map(|(_, value)| value.trim())
        .ok_or("no Spam header")?;
    // `True ; 1000.0 / 5.0`
    let (flag, scores) = spam_header.split_once(';').ok_or("malformed Spam header")?;
    let (score, threshold) = scores.split_once('/').ok_or("malformed Spam header")?;
    let symbols = body
        .split([',', '\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Report {
        spam: matches!(flag.trim().to_ascii_lowercase().as_str(), "true" | "yes"),
        score: score.trim().to_string(),
        threshold: threshold.trim().to_string(),
        symbols,
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_and_ham_replies_parse() {
        let spam = "SPAMD/1.1 0 EX_OK\r\nContent-length: 22\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,NO_RECEIVED,NO_RELAYS";
        assert_eq!(
            parse_reply(spam),
            Ok(Report {
                spam: true,
                score: "1000.0".into(),
                threshold: "5.0".into(),
                symbols: vec!["GTUBE".into(), "NO_RECEIVED".into(), "NO_RELAYS".into()],
            })
        );
        let ham = "SPAMD/1.5 0 EX_OK\r\nSpam: False ; -0.1 / 5.0\r\n\r\n";
        assert_eq!(parse_reply(ham).map(|r| r.spam), Ok(false));
    }

    #[test]
    fn errors_and_garbage_are_errors() {
        assert!(parse_reply("SPAMD/1.0 76 Bad header line: x\r\n\r\n").is_err());
        assert!(parse_reply("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_reply("SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n").is_err());
        assert!(parse_reply("").is_err());
    }
}
