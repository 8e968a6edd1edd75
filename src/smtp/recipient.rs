//! Which addresses are ours: parsing of `MAIL FROM:` / `RCPT TO:` arguments and the
//! pure recipient decision [`resolve`].
//!
//! The server is never a relay. A recipient is accepted only when it is an active
//! channel address of this installation (case-insensitive, `local+tag@domain` reaching
//! `local@domain`, SPEC A7), or `postmaster@` one of our domains. Every address form
//! that could make a later hop route the mail elsewhere (source routes, `%` and `!`
//! hops, quoted local parts hiding those, double `@`, IP literals) is refused as a relay
//! attempt with `550 5.7.1` before the address is even looked up.

use crate::config::{ChannelStatus, Config};
use crate::pipeline::Target;

use super::reply::Reply;

/// The decision on one `RCPT TO` address; the reply says why when it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    Accept(Target),
    Reject(Reply),
}

/// The `BODY=` parameter of `MAIL FROM` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// A parsed `MAIL FROM:<path> params`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailFrom {
    /// Reverse path without brackets and source route; empty for the null sender `<>`.
    pub address: String,
    /// `SIZE=` as declared by the client.
    pub size: Option<u64>,
    pub body: Body,
    pub smtputf8: bool,
}

/// A parsed `RCPT TO:<path>`: the forward path as given, without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub address: String,
}

/// Parses the arguments of `MAIL` (everything after the verb, e.g. `FROM:<a@b> SIZE=10`).
pub fn parse_mail_from(args: &[u8]) -> Result<MailFrom, Reply> {
    let (path, params) = split_path(args, "FROM:", "MAIL FROM:<address>")?;
    let mut mail = MailFrom {
        address: strip_source_route(path).to_string(),
        ..MailFrom::default()
    };
    for param in params.split_ascii_whitespace() {
        apply_mail_param(&mut mail, param)?;
    }
    Ok(mail)
}

/// Parses the arguments of `RCPT` (e.g. `TO:<a@b>`). No RCPT parameters are supported.
pub fn parse_rcpt_to(args: &[u8]) -> Result<RcptTo, Reply> {
    let (path, params) = split_path(args, "TO:", "RCPT TO:<address>")?;
    if let Some(param) = params.split_ascii_whitespace().next() {
        return Err(unsupported_param(param));
    }
    if path.is_empty() {
        return Err(bad_address());
    }
    Ok(RcptTo {
        address: path.to_string(),
    })
}

/// Decides whether `rcpt` (with or without angle brackets) is one of our addresses.
pub fn resolve(config: &Config, rcpt: &str) -> RcptVerdict {
    match decide(config, rcpt) {
        Ok(target) => RcptVerdict::Accept(target),
        Err(reply) => RcptVerdict::Reject(reply),
    }
}

fn decide(config: &Config, rcpt: &str) -> Result<Target, Reply> {
    let rcpt = rcpt
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(rcpt);
    check_characters(rcpt)?;
    let address = Address::parse(rcpt)?;
    let Some(domain) = address.domain.as_deref() else {
        // RFC 5321 4.5.1: a bare `Postmaster` must be accepted.
        return match address.local.as_str() {
            "postmaster" => postmaster_target(config),
            _ => Err(bad_address()),
        };
    };
    if !is_our_domain(config, domain) {
        return Err(relay_denied());
    }
    let base = address.local.split_once('+').map_or("", |(base, _)| base);
    if address.local == "postmaster" || base == "postmaster" {
        return postmaster_target(config);
    }
    let exact = format!("{}@{domain}", address.local);
    let without_tag = format!("{base}@{domain}");
    let found = match channel_target(config, &exact) {
        None if !base.is_empty() => channel_target(config, &without_tag),
        found => found,
    };
    found.unwrap_or_else(|| Err(no_such_user()))
}

/// The target for a channel address, or `None` when no channel has that address.
fn channel_target(config: &Config, address: &str) -> Option<Result<Target, Reply>> {
    let (inbox, channel) = config
        .channels()
        .find(|(_, c)| c.address.eq_ignore_ascii_case(address))?;
    Some(match channel.status {
        ChannelStatus::On => Ok(Target {
            inbox: inbox.name.clone(),
            channel: channel.address.to_lowercase(),
        }),
        ChannelStatus::Off => Err(Reply::new(
            550,
            "5.2.1",
            "Recipient address rejected: mailbox disabled, not accepting messages",
        )),
    })
}

/// `postmaster@` goes to the configured postmaster inbox, through its first channel.
fn postmaster_target(config: &Config) -> Result<Target, Reply> {
    let inbox = config
        .inbox(&config.smtp.postmaster_inbox)
        .filter(|i| !i.channels.is_empty())
        .or_else(|| config.inboxes.iter().find(|i| !i.channels.is_empty()))
        .ok_or_else(|| Reply::new(550, "5.1.1", "Recipient address rejected: no postmaster"))?;
    Ok(Target {
        inbox: inbox.name.clone(),
        channel: inbox.channels[0].address.to_lowercase(),
    })
}

/// Our domains are the domains of all channel addresses, switched off or not.
fn is_our_domain(config: &Config, domain: &str) -> bool {
    config.channels().any(|(_, c)| {
        c.address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
    })
}

/// A recipient address split into lower-cased local part and domain.
#[derive(Debug)]
struct Address {
    local: String,
    domain: Option<String>,
}

impl Address {
    fn parse(rcpt: &str) -> Result<Address, Reply> {
        if rcpt.starts_with('@') {
            // Source route `@a,@b:user@d`: asks us to relay.
            return Err(relay_denied());
        }
        let (local, rest) = if rcpt.starts_with('"') {
            split_quoted_local(rcpt)?
        } else {
            split_plain_local(rcpt)?
        };
        let domain = match rest {
            None => None,
            Some(domain) => Some(parse_domain(domain)?),
        };
        Ok(Address {
            local: local.to_lowercase(),
            domain,
        })
    }
}

/// `"local"@domain`: the quoted part may not hide routing characters.
fn split_quoted_local(rcpt: &str) -> Result<(String, Option<&str>), Reply> {
    let mut local = String::new();
    let mut chars = rcpt.char_indices().skip(1);
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => local.push(chars.next().ok_or_else(bad_address)?.1),
            '"' => {
                end = Some(i);
                break;
            }
            c => local.push(c),
        }
    }
    let end = end.ok_or_else(bad_address)?;
    if local.contains(['@', '%', '!']) {
        return Err(relay_denied());
    }
    check_plain_local(&local)?;
    match &rcpt[end + 1..] {
        "" => Ok((local, None)),
        rest => match rest.strip_prefix('@') {
            Some(domain) if !domain.contains('@') => Ok((local, Some(domain))),
            Some(_) => Err(relay_denied()),
            None => Err(bad_address()),
        },
    }
}

fn split_plain_local(rcpt: &str) -> Result<(String, Option<&str>), Reply> {
    let (local, domain) = match rcpt.split_once('@') {
        Some((_, domain)) if domain.contains('@') => return Err(relay_denied()),
        Some((local, domain)) => (local, Some(domain)),
        None => (rcpt, None),
    };
    if local.contains(['%', '!']) {
        return Err(relay_denied());
    }
    check_plain_local(local)?;
    Ok((local.to_string(), domain))
}

/// An (unquoted) local part: non-empty, no specials or spaces.
fn check_plain_local(local: &str) -> Result<(), Reply> {
    let special = |c: char| c.is_whitespace() || "\"(),:;<>[\\]".contains(c);
    if local.is_empty() || local.contains(special) {
        return Err(bad_address());
    }
    Ok(())
}

/// A domain name (lower-cased, one trailing dot dropped); IP literals are refused.
fn parse_domain(domain: &str) -> Result<String, Reply> {
    if domain.starts_with('[') {
        return Err(relay_denied());
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii();
    if domain.is_empty()
        || domain.starts_with('.')
        || domain.contains("..")
        || !domain.chars().all(valid)
    {
        return Err(bad_address());
    }
    Ok(domain.to_lowercase())
}

/// Splits `FROM:<path> params` into the path (without brackets) and the parameters.
fn split_path<'a>(args: &'a [u8], keyword: &str, usage: &str) -> Result<(&'a str, &'a str), Reply> {
    let args = std::str::from_utf8(args).map_err(|_| bad_characters())?;
    let rest = args
        .get(..keyword.len())
        .filter(|k| k.eq_ignore_ascii_case(keyword))
        .map(|_| &args[keyword.len()..])
        .ok_or_else(|| Reply::syntax(usage))?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let inner = rest.strip_prefix('<').ok_or_else(|| Reply::syntax(usage))?;
    let close = closing_bracket(inner).ok_or_else(|| Reply::syntax(usage))?;
    let (path, params) = (&inner[..close], &inner[close + 1..]);
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(Reply::syntax(usage));
    }
    check_characters(path)?;
    check_lengths(path)?;
    Ok((path, params))
}

/// RFC 5321 4.5.3.1.3: a path is at most 256 octets "including the punctuation and
/// element separators", so with its two angle brackets the address between them has
/// at most 254 (a source route, where one is given, counts too).
const MAX_PATH: usize = 256;
/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets (quotes included).
const MAX_LOCAL_PART: usize = 64;

/// Refuses a path longer than RFC 5321 allows, or one whose local part is; the domain's
/// own limit (255 octets, 4.5.3.1.2) can never be reached inside a 256-octet path.
/// Octets, not characters: an SMTPUTF8 address counts its UTF-8 bytes.
fn check_lengths(path: &str) -> Result<(), Reply> {
    if path.len() + "<>".len() > MAX_PATH {
        return Err(too_long(format!("path longer than {MAX_PATH} octets")));
    }
    let mailbox = strip_source_route(path);
    let local = mailbox.rsplit_once('@').map_or(mailbox, |(local, _)| local);
    if local.len() > MAX_LOCAL_PART {
        return Err(too_long(format!(
            "local part longer than {MAX_LOCAL_PART} octets"
        )));
    }
    Ok(())
}

/// Index of the `>` closing a path, skipping quoted strings.
fn closing_bracket(inner: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `@a,@b:user@d` → `user@d`; source routes in a reverse path are ignored (RFC 5321 C).
fn strip_source_route(path: &str) -> &str {
    match path.strip_prefix('@') {
        Some(route) => route.split_once(':').map_or(path, |(_, mailbox)| mailbox),
        None => path,
    }
}

fn apply_mail_param(mail: &mut MailFrom, param: &str) -> Result<(), Reply> {
    let (key, value) = param.split_once('=').unwrap_or((param, ""));
    match key.to_ascii_uppercase().as_str() {
        "SIZE" => {
            let size = value
                .parse::<u64>()
                .map_err(|_| Reply::syntax("SIZE=<bytes>"))?;
            mail.size = Some(size);
        }
        "BODY" => {
            mail.body = match value.to_ascii_uppercase().as_str() {
                "7BIT" => Body::SevenBit,
                "8BITMIME" => Body::EightBitMime,
                _ => return Err(Reply::syntax("BODY=7BIT|8BITMIME")),
            }
        }
        "SMTPUTF8" if value.is_empty() && !param.contains('=') => mail.smtputf8 = true,
        _ => return Err(unsupported_param(param)),
    }
    Ok(())
}

/// Invalid characters (control characters) make an address unusable: 501 5.1.3.
fn check_characters(address: &str) -> Result<(), Reply> {
    if address.chars().any(char::is_control) {
        return Err(bad_characters());
    }
    Ok(())
}

fn unsupported_param(param: &str) -> Reply {
    let name = param.split('=').next().unwrap_or(param);
    Reply::new(555, "5.5.4", format!("Unsupported parameter {name}"))
}

fn bad_characters() -> Reply {
    Reply::new(501, "5.1.3", "Bad address syntax: invalid characters")
}

fn too_long(what: String) -> Reply {
    Reply::new(
        501,
        "5.1.3",
        format!("Bad address syntax: {what} (RFC 5321 4.5.3.1)"),
    )
}

fn bad_address() -> Reply {
    Reply::new(501, "5.1.3", "Bad address syntax")
}

fn no_such_user() -> Reply {
    Reply::new(
        550,
        "5.1.1",
        "Recipient address rejected: no such user here",
    )
}

fn relay_denied() -> Reply {
    Reply::new(550, "5.7.1", "Relay access denied")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::testkit::test_config;

    /// The verdict as a test table shows it: `inbox channel` or `code enhanced`.
    fn verdict(config: &Config, rcpt: &str) -> String {
        match resolve(config, rcpt) {
            RcptVerdict::Accept(t) => format!("{} {}", t.inbox, t.channel),
            RcptVerdict::Reject(r) => format!("{} {}", r.code(), r.enhanced()),
        }
    }

    /// Every recipient rule and trick: (address, expected verdict).
    #[test]
    fn recipient_table() {
        let config = test_config();
        let cases = [
            (
                "support@acme.hs-inbox.test",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "<support@acme.hs-inbox.test>",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "SUPPORT@Acme.HS-Inbox.Test",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "support+urgent@acme.hs-inbox.test",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "Support+Re+x@ACME.hs-inbox.test",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "\"support\"@acme.hs-inbox.test",
                "Support support@acme.hs-inbox.test",
            ),
            (
                "support@acme.hs-inbox.test.",
                "Support support@acme.hs-inbox.test",
            ),
            ("help@acme.example", "Support help@acme.example"),
            ("sales@acme.hs-inbox.test", "Sales sales@acme.hs-inbox.test"),
            // postmaster at any of our domains → the postmaster inbox (Sales here).
            (
                "postmaster@acme.hs-inbox.test",
                "Sales sales@acme.hs-inbox.test",
            ),
            ("PostMaster@ACME.EXAMPLE", "Sales sales@acme.hs-inbox.test"),
            ("Postmaster", "Sales sales@acme.hs-inbox.test"),
            ("postmaster@other.example", "550 5.7.1"),
            // Unknown local part at our domain; foreign domain.
            ("nobody@acme.hs-inbox.test", "550 5.1.1"),
            ("supportx@acme.hs-inbox.test", "550 5.1.1"),
            ("support@evil.example", "550 5.7.1"),
            ("support@hs-inbox.test", "550 5.7.1"),
            // Switched-off channel (with and without tag, any case).
            ("old@acme.example", "550 5.2.1"),
            ("OLD+x@acme.example", "550 5.2.1"),
            // Relay tricks.
            (
                "@relay.example,@acme.example:support@acme.hs-inbox.test",
                "550 5.7.1",
            ),
            ("@acme.hs-inbox.test:victim@evil.example", "550 5.7.1"),
            ("victim%evil.example@acme.hs-inbox.test", "550 5.7.1"),
            ("evil.example!victim@acme.hs-inbox.test", "550 5.7.1"),
            ("\"victim@evil.example\"@acme.hs-inbox.test", "550 5.7.1"),
            ("\"victim%evil.example\"@acme.hs-inbox.test", "550 5.7.1"),
            ("\"evil!victim\"@acme.hs-inbox.test", "550 5.7.1"),
            ("victim@evil.example@acme.hs-inbox.test", "550 5.7.1"),
            ("support@acme.hs-inbox.test@evil.example", "550 5.7.1"),
            ("support@[127.0.0.1]", "550 5.7.1"),
            ("support@[IPv6:::1]", "550 5.7.1"),
            // Syntax and characters.
            ("support\u{0}@acme.hs-inbox.test", "501 5.1.3"),
            ("sup\tport@acme.hs-inbox.test", "501 5.1.3"),
            ("support@acme.hs-inbox.test\u{7f}", "501 5.1.3"),
            ("support", "501 5.1.3"),
            ("@", "550 5.7.1"),
            ("support@", "501 5.1.3"),
            ("@acme.hs-inbox.test", "550 5.7.1"),
            ("sup port@acme.hs-inbox.test", "501 5.1.3"),
            ("\"unterminated@acme.hs-inbox.test", "501 5.1.3"),
        ];
        for (rcpt, expected) in cases {
            assert_eq!(verdict(&config, rcpt), expected, "RCPT TO:<{rcpt}>");
        }
    }

    #[test]
    fn mail_from_parses_path_and_params() {
        let mail = parse_mail_from(b"FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8").unwrap();
        assert_eq!(mail.address, "a@b.example");
        assert_eq!(mail.size, Some(1000));
        assert_eq!(mail.body, Body::EightBitMime);
        assert!(mail.smtputf8);

        let mail = parse_mail_from(b"from: <>").unwrap();
        assert_eq!(mail.address, "");
        let mail = parse_mail_from(b"FROM:<@hop.example:a@b.example> body=7bit").unwrap();
        assert_eq!(
            (mail.address.as_str(), mail.body),
            ("a@b.example", Body::SevenBit)
        );
        let mail = parse_mail_from(b"FROM:<\"a>b\"@c.example>").unwrap();
        assert_eq!(mail.address, "\"a>b\"@c.example");
    }

    #[test]
    fn mail_from_rejects_bad_syntax_and_params() {
        let code = |args: &[u8]| {
            parse_mail_from(args)
                .map(|_| ())
                .map_err(|r| (r.code(), r.enhanced()))
        };
        assert_eq!(code(b"FROM:a@b.example"), Err((501, "5.5.4")));
        assert_eq!(code(b"FROM:  <a@b.example>"), Err((501, "5.5.4")));
        assert_eq!(code(b"TO:<a@b.example>"), Err((501, "5.5.4")));
        assert_eq!(code(b"FROM:<a@b.example"), Err((501, "5.5.4")));
        assert_eq!(code(b"FROM:<a@b.example>SIZE=1"), Err((501, "5.5.4")));
        assert_eq!(code(b"FROM:<a@b.example> SIZE=big"), Err((501, "5.5.4")));
        assert_eq!(
            code(b"FROM:<a@b.example> BODY=BINARYMIME"),
            Err((501, "5.5.4"))
        );
        assert_eq!(code(b"FROM:<a@b.example> AUTH=<>"), Err((555, "5.5.4")));
        assert_eq!(
            code(b"FROM:<a@b.example> SMTPUTF8=yes"),
            Err((555, "5.5.4"))
        );
        assert_eq!(code(b"FROM:<a\xff@b.example>"), Err((501, "5.1.3")));
        assert_eq!(code(b"FROM:<a\x01@b.example>"), Err((501, "5.1.3")));
    }

    #[test]
    fn rcpt_to_parses_path_and_rejects_params() {
        assert_eq!(
            parse_rcpt_to(b"TO:<x@y.example>").unwrap().address,
            "x@y.example"
        );
        assert_eq!(
            parse_rcpt_to(b"to: <x@y.example>").unwrap().address,
            "x@y.example"
        );
        let err = |args: &[u8]| {
            parse_rcpt_to(args)
                .map(|_| ())
                .map_err(|r| (r.code(), r.enhanced()))
        };
        assert_eq!(err(b"TO:<x@y.example> NOTIFY=NEVER"), Err((555, "5.5.4")));
        assert_eq!(err(b"TO:<>"), Err((501, "5.1.3")));
        assert_eq!(err(b"TO:<x\xc3@y.example>"), Err((501, "5.1.3")));
        assert_eq!(err(b"TO:x@y.example"), Err((501, "5.5.4")));
    }
}
