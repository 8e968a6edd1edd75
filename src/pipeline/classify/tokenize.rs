//! The token model's tokenizer (C4): what of a message the Bayes counts see. Words of
//! the subject and body with their case and `!` kept (scoring degenerates an unseen
//! `FREE!!` to `free`, as Graham and DSPAM do), word pairs, the sender's, Reply-To's and
//! Return-Path's domains, Received hosts, the mailer, Content-Type, charsets and the
//! MIME structure, URL hosts and paths, HTML structure (hidden text, image-only mail,
//! link text naming another host than its link) and the header/body features of
//! `content`, each a token the model weighs from training rather than points by hand.
//!
//! Changing what this produces makes stored counts stale: bump [`TOKENIZER_VERSION`],
//! and the store retrains from marked messages on the next training (`store::bayes`).

use std::collections::HashSet;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use crate::pipeline::parse::Inbound;

/// The version of the tokens below; stored with the counts (`bayes_totals.tokenizer`).
pub const TOKENIZER_VERSION: i64 = 2;

/// Body characters tokenized; the rest of a long message adds little but time.
const MAX_BODY_CHARS: usize = 20_000;
/// HTML bytes scanned for structure.
const MAX_HTML_BYTES: usize = 100_000;
/// Received fields read, topmost first (the later ones are the sender's own claims).
const MAX_RECEIVED: usize = 4;

/// Token groups, for measuring what each contributes (`INBOXGATE_TOKENS_WITHOUT=a,b`,
/// read by `scripts/measure-spam.py --without`; unset in normal use).
#[derive(Debug, Clone, Copy, Default)]
struct Without {
    headers: bool,
    urls: bool,
    html: bool,
    bigrams: bool,
    case: bool,
    features: bool,
}

fn without() -> Without {
    static WITHOUT: std::sync::OnceLock<Without> = std::sync::OnceLock::new();
    *WITHOUT.get_or_init(|| {
        let list = std::env::var("INBOXGATE_TOKENS_WITHOUT").unwrap_or_default();
        let has = |name: &str| list.split(',').any(|n| n.trim() == name);
        Without {
            headers: has("headers"),
            urls: has("urls"),
            html: has("html"),
            bigrams: has("bigrams"),
            case: has("case"),
            features: has("features"),
        }
    })
}

/// The distinct tokens of a received message: `raw` for its MIME structure and HTML,
/// `parsed` for everything else.
pub fn message_tokens(raw: &[u8], parsed: &Inbound) -> HashSet<String> {
    let off = without();
    let mut out = HashSet::new();
    text_tokens(&mut out, parsed, off);
    sender_tokens(&mut out, parsed);
    if !off.headers {
        header_tokens(&mut out, parsed);
    }
    let body: String = parsed.text.chars().take(MAX_BODY_CHARS).collect();
    if !off.urls {
        for url in urls(&body) {
            url_tokens(&mut out, url);
        }
    }
    if let Some(message) = MessageParser::default().parse(raw) {
        if !off.headers {
            mime_tokens(&mut out, &message);
        }
        if !off.html {
            for html in html_parts(&message) {
                html_tokens(&mut out, html, off.urls);
            }
        }
    }
    if !off.features {
        for name in super::content::feature_names(parsed) {
            out.insert(format!("feature:{name}"));
        }
    }
    out
}

fn text_tokens(out: &mut HashSet<String>, parsed: &Inbound, off: Without) {
    let subject: Vec<String> = words(&parsed.subject, off.case).collect();
    let body: String = parsed.text.chars().take(MAX_BODY_CHARS).collect();
    let body: Vec<String> = words(&body, off.case).collect();
    for word in &subject {
        out.insert(format!("subject:{word}"));
    }
    out.extend(body.iter().cloned());
    if !off.bigrams {
        for (prefix, list) in [("subject-pair:", &subject), ("pair:", &body)] {
            for pair in list.windows(2) {
                out.insert(format!(
                    "{prefix}{} {}",
                    pair[0].to_lowercase(),
                    pair[1].to_lowercase()
                ));
            }
        }
    }
}

fn sender_tokens(out: &mut HashSet<String>, parsed: &Inbound) {
    let Some(from) = &parsed.from else {
        out.insert("from:none".to_string());
        return;
    };
    let address = from.address.to_lowercase();
    if let Some((_, domain)) = address.split_once('@') {
        domain_tokens(out, "from-domain:", domain);
    }
    out.insert(format!("from:{address}"));
    for word in words(from.name.as_deref().unwrap_or(""), true) {
        out.insert(format!("from-name:{word}"));
    }
}

/// `prefix` + the host and its registrable-looking parent (the last two labels).
fn domain_tokens(out: &mut HashSet<String>, prefix: &str, host: &str) {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return;
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        out.insert(format!("{prefix}ip-address"));
        return;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() > 2 {
        out.insert(format!("{prefix}{}", labels[labels.len() - 2..].join(".")));
    }
    out.insert(format!("{prefix}{host}"));
}

/// Headers that a collector or our own server adds: they say nothing of the sender.
const IGNORED_HEADERS: &[&str] = &["delivered-to", "x-original-to", "x-spam", "x-virus"];

fn header_tokens(out: &mut HashSet<String>, parsed: &Inbound) {
    for (name, _) in &parsed.headers {
        if !IGNORED_HEADERS.iter().any(|i| name.starts_with(i)) && name.len() <= 40 {
            out.insert(format!("header:{name}"));
        }
    }
    for (header, prefix) in [
        ("reply-to", "reply-to-domain:"),
        ("return-path", "return-path-domain:"),
        ("message-id", "message-id-domain:"),
    ] {
        if let Some(domain) = parsed.header(header).and_then(address_domain) {
            domain_tokens(out, prefix, &domain);
        }
    }
    let from_domain = parsed
        .from
        .as_ref()
        .and_then(|f| f.address.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    if let (Some(reply), Some(from)) = (
        parsed.header("reply-to").and_then(address_domain),
        from_domain,
    ) {
        if reply != from {
            out.insert("reply-to:other-domain".to_string());
        }
    }
    for value in parsed.header_all("received").take(MAX_RECEIVED) {
        received_tokens(out, value);
    }
    for header in ["x-mailer", "user-agent"] {
        if let Some(mailer) = parsed.header(header) {
            let name: String = mailer
                .chars()
                .take_while(|c| !c.is_ascii_digit() && *c != '(' && *c != '[')
                .collect();
            out.insert(format!("mailer:{}", name.trim().to_lowercase()));
        }
    }
    if parsed.header("x-mailer").is_none() && parsed.header("user-agent").is_none() {
        out.insert("mailer:none".to_string());
    }
}

/// The domain of the first `local@domain` in a header value.
fn address_domain(value: &str) -> Option<String> {
    let at = value.find('@')?;
    let rest = &value[at + 1..];
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    let domain = rest[..end].trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// `from HOST (… [IP]) by HOST`: the hosts' domains and the sending address's /24.
fn received_tokens(out: &mut HashSet<String>, value: &str) {
    let lower = value.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    while let Some(word) = words.next() {
        if word == "from" || word == "by" {
            if let Some(host) = words.next() {
                let host =
                    host.trim_matches(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'));
                if host.contains('.') {
                    domain_tokens(out, "received:", host);
                }
            }
        }
    }
    if let Some(ip) = bracketed_ipv4(&lower) {
        let octets: Vec<&str> = ip.split('.').collect();
        out.insert(format!("received-ip:{}", octets[..3].join(".")));
    }
}

fn bracketed_ipv4(text: &str) -> Option<&str> {
    text.match_indices('[').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let ip = &rest[..rest.find(']')?];
        ip.parse::<std::net::Ipv4Addr>().is_ok().then_some(ip)
    })
}

/// Content-Type of the message and every part, charsets, transfer encodings, and the
/// structure as one token (`mime:multipart/alternative(text/plain,text/html)`).
fn mime_tokens(out: &mut HashSet<String>, message: &Message) {
    let mut structure = Vec::new();
    for (index, part) in message.parts.iter().enumerate().take(50) {
        let kind = part
            .content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_else(|| "text/plain".to_string());
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset")) {
            out.insert(format!("charset:{}", charset.to_ascii_lowercase()));
        }
        if let Some(encoding) = part.content_transfer_encoding() {
            out.insert(format!("encoding:{}", encoding.to_ascii_lowercase()));
        }
        if index == 0 {
            out.insert(format!("content-type:{kind}"));
        } else {
            out.insert(format!("part:{kind}"));
        }
        structure.push(kind);
    }
    if structure.len() > 1 {
        out.insert(format!(
            "mime:{}({})",
            structure[0],
            structure[1..].join(",")
        ));
    }
}

fn html_parts<'m>(message: &'m Message<'m>) -> impl Iterator<Item = &'m str> + 'm {
    message.parts.iter().filter_map(|part| match &part.body {
        PartType::Html(html) => Some(html.as_ref()),
        _ => None,
    })
}

/// Words with case and trailing `!` kept (`FREE!!`); 3 to 20 characters, longer runs
/// become a length token (SpamBayes's "skip"), so encoded blobs do not flood the model.
/// `fold` lower-cases them and drops the `!` (no degeneration needed then).
pub fn words(text: &str, fold: bool) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '$' || c == '\'' || c == '-' || c == '!'))
        .map(|w| {
            w.trim_start_matches(['!', '\'', '-'])
                .trim_end_matches(['\'', '-'])
        })
        .filter(|w| w.chars().filter(|c| *c != '!').count() >= 3)
        .map(move |w| {
            let n = w.chars().count();
            if n > 20 {
                format!("skip:{}", n / 10 * 10)
            } else if fold {
                w.trim_end_matches('!').to_lowercase()
            } else {
                // Runs of `!` count as one: `FREE!!!` and `FREE!!` are one token.
                let bare = w.trim_end_matches('!');
                if bare.len() < w.len() {
                    format!("{bare}!")
                } else {
                    w.to_string()
                }
            }
        })
}

/// Ways to see an unseen token as a known one, most specific first: without `!`, in
/// lower case, then without its `subject:` prefix (Graham's degeneration).
pub fn degenerations(token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, word) = match token.split_once(':') {
        Some((p @ "subject", w)) => (Some(p), w),
        Some(_) => return out,
        None => (None, token),
    };
    let bare = word.trim_end_matches('!');
    let lower = bare.to_lowercase();
    let mut variants = vec![bare.to_string(), lower.clone()];
    if word.ends_with('!') {
        variants.insert(1, format!("{lower}!"));
    }
    variants.dedup();
    for v in &variants {
        if v != word {
            out.push(match prefix {
                Some(p) => format!("{p}:{v}"),
                None => v.clone(),
            });
        }
    }
    if prefix.is_some() {
        out.push(word.to_string());
        out.extend(variants.into_iter().filter(|v| v != word));
    }
    out
}

/// URLs written in text: `scheme://…` up to a space, quote or bracket.
fn urls(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.match_indices("://").filter_map(move |(at, _)| {
        // The scheme: the ASCII letters before `://` (byte steps stay on char bounds).
        let start = at
            - text[..at]
                .bytes()
                .rev()
                .take_while(u8::is_ascii_alphabetic)
                .count();
        let rest = &text[at + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}".contains(c))
            .unwrap_or(rest.len());
        (end > 0).then(|| &text[start..at + 3 + end])
    })
}

/// The host of a URL (`scheme://[user@]host[:port]/…`), lower-cased.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn url_tokens(out: &mut HashSet<String>, url: &str) {
    let Some(host) = url_host(url) else {
        return;
    };
    domain_tokens(out, "url:", &host);
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        out.insert("url:user-in-host".to_string());
    }
    if authority.contains(':') {
        out.insert("url:port".to_string());
    }
    if rest.contains('%') {
        out.insert("url:escaped".to_string());
    }
    let path = &rest[authority.len()..];
    for segment in path
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| (2..=20).contains(&s.len()))
        .take(6)
    {
        out.insert(format!("url-path:{}", segment.to_ascii_lowercase()));
    }
}

/// HTML structure: tag names, hidden text, images with little text, links whose text
/// names another host than their target, and the URLs of links and images.
fn html_tokens(out: &mut HashSet<String>, html: &str, without_urls: bool) {
    let cut = html
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= MAX_HTML_BYTES)
        .unwrap_or(html.len());
    let lower = html[..cut].to_ascii_lowercase();
    let mut images = 0;
    let mut visible = String::new();
    let mut rest = lower.as_str();
    while let Some(open) = rest.find('<') {
        visible.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        let tag = &after[..close];
        rest = &after[close + 1..];
        if tag.starts_with("!--") {
            out.insert("html:comment".to_string());
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if name.is_empty() || name.len() > 12 {
            continue;
        }
        out.insert(format!("html-tag:{name}"));
        if hides_text(&name, tag) {
            out.insert("html:hidden-text".to_string());
        }
        if name == "img" {
            images += 1;
        }
        if !without_urls {
            for attr in ["href", "src"] {
                if let Some(url) = attribute(tag, attr) {
                    url_tokens(out, url);
                }
            }
        }
        if name == "a" && !tag.starts_with('/') {
            link_text_tokens(out, tag, rest);
        }
    }
    let words = visible.split_whitespace().filter(|w| w.len() > 2).count();
    if images > 0 && words < 30 {
        out.insert("html:image-only".to_string());
    }
    if images > 0 {
        out.insert(format!("html:images-{}", images.min(5)));
    }
}

/// Tags that hide their text: `display:none`, `visibility:hidden`, tiny fonts, white
/// text.
fn hides_text(name: &str, tag: &str) -> bool {
    let compact: String = tag.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("display:none")
        || compact.contains("visibility:hidden")
        || compact.contains("font-size:0")
        || compact.contains("font-size:1px")
        || (name == "font"
            && (compact.contains("size=\"1\"")
                || compact.contains("size=1")
                || compact.contains("color=\"#ffffff\"")
                || compact.contains("color=#ffffff")
                || compact.contains("color=\"white\"")
                || compact.contains("color=white")))
}

/// An attribute's value in a lower-cased tag, quoted or bare.
fn attribute<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let mut search = tag;
    loop {
        let at = search.find(name)?;
        let before_ok = at == 0 || !search.as_bytes()[at - 1].is_ascii_alphanumeric();
        let after = search[at + name.len()..].trim_start();
        search = &search[at + name.len()..];
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split_whitespace().next().unwrap_or(""),
        });
    }
}

/// `<a href="http://x.example">www.bank.example</a>`: the text names another host.
fn link_text_tokens(out: &mut HashSet<String>, tag: &str, after: &str) {
    let Some(target) = attribute(tag, "href").and_then(url_host) else {
        return;
    };
    let end = after.find("</a").unwrap_or(after.len());
    let text: String = after[..end].chars().take(300).collect();
    let text = text.trim();
    let named = if text.contains("://") {
        url_host(text)
    } else if text.starts_with("www.") && !text.contains(' ') {
        Some(text.split('/').next().unwrap_or(text).to_string())
    } else {
        None
    };
    if let Some(named) = named {
        if parent(&named) != parent(&target) {
            out.insert("html:link-text-other-host".to_string());
        }
    }
}

fn parent(host: &str) -> String {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::parse;

    fn of(raw: &str) -> HashSet<String> {
        message_tokens(raw.as_bytes(), &parse(raw.as_bytes()))
    }

    #[test]
    fn words_keep_case_and_one_bang_and_skip_blobs() {
        let w: Vec<String> = words(
            "FREE!!! money-back it's ab aaaaaaaaaaaaaaaaaaaaaaaaa",
            false,
        )
        .collect();
        assert_eq!(w, ["FREE!", "money-back", "it's", "skip:20"]);
        let folded: Vec<String> = words("FREE!!! Money", true).collect();
        assert_eq!(folded, ["free", "money"]);
    }

    #[test]
    fn degenerations_go_from_specific_to_general() {
        assert_eq!(degenerations("FREE!"), ["FREE", "free!", "free"]);
        assert_eq!(
            degenerations("subject:Free"),
            ["subject:free", "Free", "free"]
        );
        assert_eq!(degenerations("url:x.example"), Vec::<String>::new());
    }

    #[test]
    fn header_tokens_name_domains_hosts_mailer_and_structure() {
        let t = of("From: A <a@mail.shop.example>\r\nReply-To: b@other.example\r\n\
            Return-Path: <bounce@bulk.example>\r\nMessage-ID: <1@gen.example>\r\n\
            Received: from relay.isp.example (relay.isp.example [10.1.2.3]) by mx.us.example\r\n\
            X-Mailer: Microsoft Outlook Express 6.00\r\nSubject: Hi\r\n\
            Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain; charset=gb2312\r\n\r\nhello there\r\n--b\r\n\
            Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--b--\r\n");
        for expected in [
            "from-domain:shop.example",
            "from-domain:mail.shop.example",
            "reply-to-domain:other.example",
            "reply-to:other-domain",
            "return-path-domain:bulk.example",
            "message-id-domain:gen.example",
            "received:isp.example",
            "received:us.example",
            "received-ip:10.1.2",
            "mailer:microsoft outlook express",
            "content-type:multipart/alternative",
            "charset:gb2312",
            "encoding:base64",
            "mime:multipart/alternative(text/plain,text/html)",
            "header:x-mailer",
        ] {
            assert!(t.contains(expected), "{expected} not in {t:?}");
        }
    }

    #[test]
    fn url_tokens_name_hosts_parents_and_paths() {
        let mut t = HashSet::new();
        url_tokens(
            &mut t,
            "http://user@Clicks.Offers.example:8080/cgi-bin/track?id=%41",
        );
        for expected in [
            "url:clicks.offers.example",
            "url:offers.example",
            "url:user-in-host",
            "url:port",
            "url:escaped",
            "url-path:cgi",
            "url-path:track",
        ] {
            assert!(t.contains(expected), "{expected} not in {t:?}");
        }
        let mut t = HashSet::new();
        url_tokens(&mut t, "http://192.0.2.7/x");
        assert!(t.contains("url:ip-address"), "{t:?}");
    }

    #[test]
    fn html_tokens_find_hidden_text_images_and_lying_links() {
        let mut t = HashSet::new();
        html_tokens(
            &mut t,
            "<html><body><img src='http://img.example/a.gif'>\
             <div style='display: none'>grandma recipes</div>\
             <a href=\"http://phish.example/login\">www.bank.example</a></body></html>",
            false,
        );
        for expected in [
            "html:image-only",
            "html:hidden-text",
            "html:link-text-other-host",
            "html-tag:img",
            "url:img.example",
            "url:phish.example",
        ] {
            assert!(t.contains(expected), "{expected} not in {t:?}");
        }
        let mut honest = HashSet::new();
        html_tokens(
            &mut honest,
            "<p>Your order is on its way, see the tracking page for the details of the delivery today please</p>\
             <a href='https://www.shop.example/track'>www.shop.example/track</a>",
            false,
        );
        assert!(!honest.contains("html:link-text-other-host"), "{honest:?}");
        assert!(!honest.contains("html:image-only"), "{honest:?}");
        assert!(!honest.contains("html:hidden-text"), "{honest:?}");
    }

    #[test]
    fn body_pairs_and_subject_words_are_tokens() {
        let t = of("From: a@b.example\r\nSubject: Cheap Pills\r\n\r\nBuy cheap pills now\r\n");
        for expected in [
            "subject:Cheap",
            "subject-pair:cheap pills",
            "pair:buy cheap",
            "Buy",
            "from:a@b.example",
        ] {
            assert!(t.contains(expected), "{expected} not in {t:?}");
        }
    }

    #[test]
    fn multibyte_text_next_to_urls_and_links_does_not_panic() {
        let mut t = HashSet::new();
        for url in urls("ŷhttp://a.example/x ŷ://") {
            url_tokens(&mut t, url);
        }
        let long_link = format!("<a href='http://a.example'>{}</a>", "ŷ".repeat(400));
        html_tokens(&mut t, &long_link, false);
        assert!(t.contains("url:a.example"), "{t:?}");
    }
}
