//! The page frame every signed-in page shares (sidebar with the inbox switcher, the
//! views and their counts, the agent and sign-out), times as people read them, and the
//! error page. Templates are maud: compiled, and every value is escaped.

pub mod conversation;
pub mod list;
pub mod mail_body;
pub mod sign_in;
pub mod words;

use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use super::csrf;
use super::i18n::Lang;
use super::session::SignedIn;
use super::{blocking, WebError, WebState};
use crate::inbox::sign_in::VIEW_COUNT_CAP;
use crate::store::View;

/// Views always shown; the rest sit under "More" (UI.md).
const MAIN_VIEWS: [View; 3] = [View::Unassigned, View::AssignedToMe, View::AllOpen];

/// The catalogue key of a view's name.
pub fn view_key(view: View) -> &'static str {
    match view {
        View::Unassigned => "view.unassigned",
        View::AssignedToMe => "view.assigned_to_me",
        View::AllOpen => "view.all_open",
        View::Email => "view.email",
        View::Closed => "view.closed",
        View::Sent => "view.sent",
        View::Spam => "view.spam",
        View::Filtered => "view.filtered",
        View::Trash => "view.trash",
    }
}

/// Where in the inbox a page is.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub inbox: Option<String>,
    pub view: Option<View>,
}

impl Place {
    /// The list URL of `view` in this place's inbox.
    pub fn view_url(&self, view: View) -> String {
        let mut url = format!("/?view={}", view.name());
        if let Some(inbox) = &self.inbox {
            url.push_str("&inbox=");
            url.push_str(&encode(inbox));
        }
        url
    }
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A whole page: `<head>`, then `body` inside the frame.
pub fn document(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · inboxgate" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body { (body) }
        }
    }
}

/// The signed-in frame: sidebar, then `main`.
pub async fn frame(
    state: &WebState,
    me: &SignedIn,
    place: &Place,
    title: &str,
    main: Markup,
) -> Result<Markup, WebError> {
    let side = sidebar(state, me, place).await?;
    let lang = me.lang;
    Ok(document(
        lang,
        title,
        html! {
            div.app data-live="/events" data-me=(me.session.email) {
                (side)
                main #main { (main) }
            }
            (shortcuts(lang))
        },
    ))
}

async fn sidebar(state: &WebState, me: &SignedIn, place: &Place) -> Result<Markup, WebError> {
    let lang = me.lang;
    let caller = me.caller();
    let inbox = place.inbox.clone();
    let (counts, inboxes, available) = blocking(state, move |s| {
        Ok((
            s.view_counts(&caller, inbox.as_deref())?,
            s.inboxes(&caller),
            s.me(&caller)?.1,
        ))
    })
    .await?;
    let count = |view: View| {
        let n = counts
            .iter()
            .find(|(v, _)| *v == view)
            .map_or(0, |(_, n)| *n);
        if n >= VIEW_COUNT_CAP {
            format!("{}+", VIEW_COUNT_CAP - 1)
        } else {
            n.to_string()
        }
    };
    let more_open = place.view.is_some_and(|v| !MAIN_VIEWS.contains(&v));
    let view_link = |view: View| {
        let current = place.view == Some(view);
        html! {
            li {
                a href=(place.view_url(view)) aria-current=[current.then_some("page")] {
                    span { (lang.t(view_key(view))) }
                    " "
                    span.count { (count(view)) }
                }
            }
        }
    };
    Ok(html! {
        nav.sidebar aria-label=(lang.t("views")) {
            @if inboxes.iter().any(|i| i.access == crate::inbox::access::InboxAccess::Member) {
                a.button.new-email href="/compose" { (lang.t("new_email")) }
            }
            form.switcher method="get" action="/" {
                label for="inbox-switch" { (lang.t("inbox")) }
                select #inbox-switch name="inbox" data-autosubmit {
                    option value="" selected[place.inbox.is_none()] { (lang.t("all_inboxes")) }
                    @for i in &inboxes {
                        option value=(i.name) selected[place.inbox.as_deref() == Some(i.name.as_str())] { (i.name) }
                    }
                }
                @if let Some(view) = place.view {
                    input type="hidden" name="view" value=(view.name());
                }
                noscript { button type="submit" { (lang.t("switch")) } }
            }
            ul.views {
                @for view in MAIN_VIEWS { (view_link(view)) }
            }
            details.more open[more_open] {
                summary { (lang.t("more")) }
                ul.views {
                    @for view in View::ALL.into_iter().filter(|v| !MAIN_VIEWS.contains(v)) {
                        (view_link(view))
                    }
                }
            }
            form.availability method="post" action="/availability" {
                (csrf::field(me))
                label for="availability" { (lang.t("availability")) }
                select #availability name="available" data-autosubmit {
                    option value="true" selected[available] { (lang.t("available")) }
                    option value="false" selected[!available] { (lang.t("away")) }
                }
                noscript { button type="submit" { (lang.t("apply")) } }
            }
            div.me {
                span.name { (me.name) }
                form method="post" action="/sign-out" {
                    (csrf::field(me))
                    button.link type="submit" { (lang.t("sign_out")) }
                }
            }
        }
    })
}

/// The `?` overlay listing the keyboard shortcuts.
fn shortcuts(lang: Lang) -> Markup {
    let keys: [(&str, &str); 9] = [
        ("j", "key.next"),
        ("k", "key.previous"),
        ("o", "key.open"),
        ("r", "key.reply"),
        ("c", "key.comment"),
        ("a", "key.assign"),
        ("e", "key.close"),
        ("/", "key.search"),
        ("?", "key.help"),
    ];
    html! {
        dialog #shortcuts aria-label=(lang.t("shortcuts")) {
            h2 { (lang.t("shortcuts")) }
            dl {
                @for (key, what) in keys {
                    dt { kbd { (key) } }
                    dd { (lang.t(what)) }
                }
            }
        }
    }
}

/// A time as people read it ("09:41", "yesterday", "12 Mar"), the full date on hover.
pub fn when(lang: Lang, at: i64, now: i64) -> Markup {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(at) else {
        return html! {};
    };
    let today = OffsetDateTime::from_unix_timestamp(now)
        .map(|n| n.date())
        .unwrap_or(t.date());
    let full = format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute());
    let short = if t.date() == today {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else if today.previous_day() == Some(t.date()) {
        lang.t("yesterday").to_string()
    } else {
        format!("{} {}", t.day(), month(lang, t.month() as usize))
    };
    html! { time datetime=(crate::inbox::json::rfc3339(at)) title=(full) { (short) } }
}

fn month(lang: Lang, number: usize) -> &'static str {
    const EN: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const NL: [&str; 12] = [
        "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
    ];
    const SV: [&str; 12] = [
        "jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
    ];
    let names = match lang {
        Lang::En => EN,
        Lang::Nl => NL,
        Lang::Sv => SV,
    };
    names[number.clamp(1, 12) - 1]
}

/// A small page for a failure.
pub fn error_page(lang: Lang, title: &str, detail: &str) -> Markup {
    document(
        lang,
        title,
        html! {
            main.error {
                h1 { (title) }
                @if !detail.is_empty() { p { (detail) } }
                p { a href="/" { (lang.t("back")) } }
            }
        },
    )
}
