//! A mail's HTML shown to an agent without ever running it or fetching from it.
//!
//! Three layers, each enough on its own against what the others miss:
//! 1. `sanitize` — ammonia with a mail-sized allow-list: no script, no event handler, no
//!    form, no `<style>`/`<link>`/`<base>`/`<meta>`/`<svg>`/`<math>`/embedded content;
//!    `style` attributes kept only for a list of layout properties and never with
//!    `url(`, `image`, escapes or comments in them; links `http`, `https`, `mailto` only,
//!    opened in a new tab without referrer. Remote images are blocked (kept only as
//!    `data-blocked-src`) until the agent shows them; `cid:` images point at a daemon URL
//!    the caller gives.
//! 2. `document` — the sanitized body is served as its own document with a CSP
//!    (`default-src 'none'`, images only from the daemon unless shown, `sandbox`) and
//!    `nosniff`, `no-referrer`, `no-store`.
//! 3. The page embeds that document in `<iframe sandbox>` without `allow-scripts`,
//!    `allow-forms` or `allow-same-origin` (`document::iframe_tag`).
//!
//! Shown images load from the agent's browser with the referrer stripped
//! (`referrerpolicy="no-referrer"` on the image, `Referrer-Policy: no-referrer` on the
//! document), not through a daemon proxy: a proxy would fetch mail-chosen URLs from
//! inside the network (the API on loopback, cloud metadata, intranet hosts), which
//! needs address filtering after DNS resolution and on every redirect, size and time
//! caps and content-type checks — a server-side request forgery surface the daemon
//! does not otherwise have — while what it hides (the agent's IP address and browser)
//! matters less than what showing already reveals: that the mail was opened.
//!
//! `quote` splits a plain-text body into new text, quoted history and signature, so the
//! page can fold the last two.

pub mod document;
pub mod quote;
pub mod sanitize;

pub use document::{
    body_response, iframe_tag, mail_document, CSP_BLOCKED, CSP_IMAGES_SHOWN, SANDBOX,
};
pub use quote::{split_quoted, Part, PartKind};
pub use sanitize::{sanitize, sanitize_mail, ImagePolicy, RemoteImages, Sanitized};
