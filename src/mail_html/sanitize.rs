//! Mail HTML reduced to formatting that cannot run, submit or fetch anything.
//!
//! ammonia parses the mail the way a browser does (html5ever) and keeps only the
//! allow-lists below; what it cannot express — the image policy — is a second pass over
//! ammonia's own serialization, which is canonical: every literal `<` in it opens a tag
//! (text and attribute values escape `<`, `>`, `&` and, in values, `"`), every
//! attribute is `name="value"`, comments are gone. So `<img` there is always an image
//! element and its attributes parse exactly.
//!
//! Styles: `<style>` elements are dropped with their content (ammonia cannot filter a
//! stylesheet's selectors); `style` attributes keep only `STYLE_PROPERTIES`, and a
//! declaration mentioning `url`, `image` (`image-set`, `-webkit-image-set`), `expression`,
//! `@`, `src`, `attr(`, `var(`, `env(`, a backslash escape or a comment is dropped
//! before ammonia normalizes the rest. No CSS of a mail can name a resource.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::url::Url;
use ammonia::{Builder, UrlRelative};

/// Whether a message's remote images load: blocked until the agent asks, per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteImages {
    /// Remote images become placeholders (alt text, `data-blocked-src`); nothing fetched.
    Blocked,
    /// Remote `http`/`https` images keep their `src`, with `referrerpolicy="no-referrer"`.
    Shown,
}

/// How images of one message are shown: remote ones blocked or shown, and where a
/// `cid:` image (a part of the message itself) is served from.
pub struct ImagePolicy<'a> {
    /// Remote images blocked or shown.
    pub remote: RemoteImages,
    cid_url: CidUrl<'a>,
}

/// Content-ID → the URL its part is served at (`None`: no such part).
type CidUrl<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl<'a> ImagePolicy<'a> {
    /// A policy whose `cid:` images are served at `cid_url(content_id)` (for example
    /// `/conversations/{id}/messages/{mid}/cid/{content-id}`); `None` drops the image
    /// (no such part), leaving its alt text. The content id is percent-decoded, without
    /// angle brackets.
    pub fn new(remote: RemoteImages, cid_url: impl Fn(&str) -> Option<String> + 'a) -> Self {
        ImagePolicy {
            remote,
            cid_url: Box::new(cid_url),
        }
    }

    /// Remote images blocked, `cid:` images dropped: the strictest policy.
    pub fn blocked() -> ImagePolicy<'static> {
        ImagePolicy::new(RemoteImages::Blocked, |_| None)
    }
}

/// A sanitized mail body and what the agent may want to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    /// The body's HTML fragment, safe to serve with `document::body_response`.
    pub html: String,
    /// Remote images replaced by placeholders: when non-zero, offer "show images".
    pub blocked_remote_images: usize,
}

/// The mail's HTML with only safe formatting left, images per `policy`.
pub fn sanitize(html: &str, policy: &ImagePolicy) -> String {
    sanitize_mail(html, policy).html
}

/// Like `sanitize`, also counting the remote images it blocked.
pub fn sanitize_mail(html: &str, policy: &ImagePolicy) -> Sanitized {
    let clean = MAIL_SANITIZER.clean(html).to_string();
    let (html, blocked_remote_images) = images::apply(&clean, policy);
    Sanitized {
        html,
        blocked_remote_images,
    }
}

/// Elements a mail may use: text formatting, lists, tables, images. Everything else is
/// unwrapped (its text kept) or, for `CONTENT_DROPPED`, removed with its content.
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "address",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "main",
    "mark",
    "nav",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "section",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Elements removed together with everything inside them.
const CONTENT_DROPPED: &[&str] = &["script", "style", "template", "title", "noscript"];

/// Attributes allowed on every kept element.
const GENERIC_ATTRIBUTES: &[&str] = &["title", "dir", "lang", "align", "valign", "style"];

/// Attributes allowed per element (URLs checked separately).
const TAG_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href", "hreflang"]),
    (
        "img",
        &[
            "src", "alt", "width", "height", "border", "hspace", "vspace",
        ],
    ),
    ("font", &["color", "face", "size"]),
    (
        "table",
        &[
            "width",
            "height",
            "border",
            "cellpadding",
            "cellspacing",
            "bgcolor",
            "summary",
        ],
    ),
    (
        "td",
        &[
            "width", "height", "bgcolor", "colspan", "rowspan", "nowrap", "headers", "scope",
        ],
    ),
    (
        "th",
        &[
            "width", "height", "bgcolor", "colspan", "rowspan", "nowrap", "headers", "scope",
            "abbr",
        ],
    ),
    ("tr", &["bgcolor", "height"]),
    ("col", &["span", "width"]),
    ("colgroup", &["span", "width"]),
    ("ol", &["start", "type", "reversed"]),
    ("ul", &["type"]),
    ("li", &["value", "type"]),
    ("hr", &["width", "size", "noshade", "color"]),
    ("blockquote", &["cite"]),
    ("q", &["cite"]),
    ("del", &["datetime"]),
    ("ins", &["datetime"]),
    ("time", &["datetime"]),
    ("details", &["open"]),
    ("abbr", &["title"]),
];

/// CSS properties a `style` attribute keeps: colours, fonts, text, box and table
/// layout. None of them can take a resource once `url(` and `image` are refused.
const STYLE_PROPERTIES: &[&str] = &[
    "background",
    "background-color",
    "border",
    "border-bottom",
    "border-bottom-color",
    "border-bottom-style",
    "border-bottom-width",
    "border-collapse",
    "border-color",
    "border-left",
    "border-left-color",
    "border-left-style",
    "border-left-width",
    "border-radius",
    "border-right",
    "border-right-color",
    "border-right-style",
    "border-right-width",
    "border-spacing",
    "border-style",
    "border-top",
    "border-top-color",
    "border-top-style",
    "border-top-width",
    "border-width",
    "color",
    "direction",
    "display",
    "float",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-variant",
    "font-weight",
    "height",
    "letter-spacing",
    "line-height",
    "list-style-type",
    "margin",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "margin-top",
    "max-height",
    "max-width",
    "min-height",
    "min-width",
    "padding",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "padding-top",
    "table-layout",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "width",
    "word-break",
    "word-spacing",
    "word-wrap",
];

/// Substrings (ASCII case-insensitive) that drop a CSS declaration whatever its
/// property: every way CSS names a resource, an escape that could spell one, a comment
/// that could split one.
const STYLE_FORBIDDEN: &[&str] = &[
    "url",
    "image",
    "expression",
    "@",
    "src",
    "\\",
    "/*",
    "*/",
    "attr(",
    "var(",
    "env(",
    "element(",
    "cross-fade",
    "paint(",
    "binding",
    "behavior",
    "javascript",
    "<",
    ">",
];

/// `rel` of every link: no `window.opener`, no referrer, no ranking for the sender.
const LINK_REL: &str = "noopener noreferrer nofollow";

static MAIL_SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let tag_attributes: HashMap<&str, HashSet<&str>> = TAG_ATTRIBUTES
        .iter()
        .map(|(tag, attributes)| (*tag, attributes.iter().copied().collect()))
        .collect();
    let mut builder = Builder::empty();
    builder
        .tags(TAGS.iter().copied().collect())
        .clean_content_tags(CONTENT_DROPPED.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .tag_attributes(tag_attributes)
        .url_schemes(["http", "https", "mailto", "cid"].into_iter().collect())
        .url_relative(UrlRelative::Deny)
        .link_rel(Some(LINK_REL))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .attribute_filter(filter_attribute);
    builder
});

/// Per-attribute rules ammonia's allow-lists cannot say: which URL scheme fits which
/// attribute, and the resource-free subset of a `style`.
fn filter_attribute<'v>(element: &str, attribute: &str, value: &'v str) -> Option<Cow<'v, str>> {
    match (element, attribute) {
        ("a", "href") => scheme_in(value, &["http", "https", "mailto"]).then_some(value.into()),
        ("img", "src") => scheme_in(value, &["http", "https", "cid"]).then_some(value.into()),
        (_, "cite") => scheme_in(value, &["http", "https"]).then_some(value.into()),
        (_, "style") => Some(resource_free_style(value))
            .filter(|style| !style.trim().is_empty())
            .map(Cow::Owned),
        _ => Some(value.into()),
    }
}

/// Whether `url` parses (as browsers parse it) with one of `schemes`.
fn scheme_in(url: &str, schemes: &[&str]) -> bool {
    Url::parse(url).is_ok_and(|url| schemes.contains(&url.scheme()))
}

/// The declarations of a `style` attribute that contain nothing in `STYLE_FORBIDDEN`.
/// Splitting at every `;` (even one inside a string) can only cut a declaration into
/// pieces each checked on its own, and ammonia drops a broken piece afterwards.
fn resource_free_style(style: &str) -> String {
    style
        .split(';')
        .filter(|declaration| {
            let lower = declaration.to_ascii_lowercase();
            !lower.contains('\0') && !STYLE_FORBIDDEN.iter().any(|word| lower.contains(word))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The image pass over ammonia's canonical output.
mod images {
    use super::{ImagePolicy, RemoteImages, Url};

    /// Every `<img …>` of `clean` rewritten per `policy`; the count of remote images
    /// blocked.
    pub(super) fn apply(clean: &str, policy: &ImagePolicy) -> (String, usize) {
        let mut out = String::with_capacity(clean.len() + 64);
        let mut blocked = 0;
        let mut rest = clean;
        while let Some(start) = find_img_tag(rest) {
            out.push_str(&rest[..start]);
            let after = &rest[start + "<img".len()..];
            // The serializer always closes the tag, and `>` is escaped in values.
            let Some(end) = after.find('>') else {
                return (out, blocked);
            };
            if let Some(attributes) = parse_attributes(&after[..end]) {
                let (img, was_blocked) = rewrite_img(&attributes, policy);
                out.push_str(&img);
                blocked += usize::from(was_blocked);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        (out, blocked)
    }

    fn find_img_tag(html: &str) -> Option<usize> {
        let mut from = 0;
        while let Some(found) = html[from..].find("<img") {
            let at = from + found;
            match html.as_bytes().get(at + 4) {
                Some(b' ' | b'>' | b'/') => return Some(at),
                _ => from = at + 4,
            }
        }
        None
    }

    /// ` name="value"` pairs (values still escaped); `None` if the text is not in the
    /// serializer's form, and then the image is left out entirely.
    fn parse_attributes(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut attributes = Vec::new();
        let mut rest = text.trim_end_matches('/');
        loop {
            rest = rest
                .strip_prefix(' ')
                .or_else(|| rest.is_empty().then_some(rest))?;
            if rest.is_empty() {
                return Some(attributes);
            }
            let (name, after_name) = rest.split_once("=\"")?;
            let (value, after_value) = after_name.split_once('"')?;
            if name.is_empty() || name.contains([' ', '"', '<', '>']) {
                return None;
            }
            attributes.push((name, value));
            rest = after_value;
        }
    }

    /// One image element per policy, and whether a remote image was blocked.
    fn rewrite_img(attributes: &[(&str, &str)], policy: &ImagePolicy) -> (String, bool) {
        let mut img = String::from("<img");
        let mut blocked = false;
        for &(name, value) in attributes {
            if name != "src" {
                push_attribute(&mut img, name, value);
                continue;
            }
            match image_source(&unescape(value)) {
                Source::ContentId(content_id) => {
                    if let Some(url) = (policy.cid_url)(&content_id) {
                        push_attribute(&mut img, "src", &escape(&url));
                    }
                }
                Source::Remote if policy.remote == RemoteImages::Shown => {
                    push_attribute(&mut img, "src", value);
                    push_attribute(&mut img, "referrerpolicy", "no-referrer");
                }
                Source::Remote => {
                    push_attribute(&mut img, "data-blocked-src", value);
                    blocked = true;
                }
                Source::Other => {}
            }
        }
        img.push('>');
        (img, blocked)
    }

    enum Source {
        ContentId(String),
        Remote,
        Other,
    }

    fn image_source(src: &str) -> Source {
        match Url::parse(src) {
            Ok(url) if url.scheme() == "cid" => Source::ContentId(content_id(url.path())),
            Ok(url) if matches!(url.scheme(), "http" | "https") => Source::Remote,
            _ => Source::Other,
        }
    }

    /// RFC 2392: a `cid:` URL is the percent-encoded Content-ID without `<>`.
    fn content_id(path: &str) -> String {
        let bytes = path.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(byte)) => {
                    decoded.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        let id = String::from_utf8_lossy(&decoded);
        id.trim_start_matches('<').trim_end_matches('>').to_owned()
    }

    fn push_attribute(img: &mut String, name: &str, escaped_value: &str) {
        img.push(' ');
        img.push_str(name);
        img.push_str("=\"");
        img.push_str(escaped_value);
        img.push('"');
    }

    /// Attribute-value escaping as html5ever's serializer does it.
    pub(super) fn escape(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\u{a0}' => out.push_str("&nbsp;"),
                c => out.push(c),
            }
        }
        out
    }

    /// The inverse of `escape` (the serializer writes no other references).
    pub(super) fn unescape(value: &str) -> String {
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&")
    }
}

#[cfg(test)]
mod tests;
