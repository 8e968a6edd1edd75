//! The list page (`GET /`): a view's conversations with the F3 columns (contact,
//! participants, reply indicator, subject with preview, time, assignee), search,
//! sort, pages, and bulk close / trash / assign.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, frame, view_key, when, Place};
use crate::config::Config;
use crate::inbox::query::ListParams;
use crate::store::{ConversationRow, View};
use crate::web::csrf;
use crate::web::i18n::Lang;
use crate::web::session::SignedIn;
use crate::web::{blocking, WebError, WebState};

/// Conversations per page.
pub const PAGE_SIZE: u32 = 50;

/// The list page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    inbox: Option<String>,
    view: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    // Search filters (F2); empty fields mean "any".
    status: Option<String>,
    contact: Option<String>,
    assignee: Option<String>,
    since: Option<String>,
    until: Option<String>,
    hide_filtered: Option<String>,
    hide_trash: Option<String>,
    /// What the last bulk action did ("3 changed, 1 refused").
    done: Option<u32>,
    refused: Option<u32>,
}

impl ListQuery {
    /// The filters that are set, as query pairs.
    fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("status", &self.status),
            ("contact", &self.contact),
            ("assignee", &self.assignee),
            ("since", &self.since),
            ("until", &self.until),
            ("hide_filtered", &self.hide_filtered),
            ("hide_trash", &self.hide_trash),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        })
        .collect()
    }

    fn filter(&self, name: &str) -> Option<&str> {
        self.filters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// `GET /`.
pub async fn page(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return WebError::NotFound.page(me.lang);
    };
    match render(&state, &me, query).await {
        Ok(page) => page.into_response(),
        Err(e) => e.page(me.lang),
    }
}

async fn render(state: &WebState, me: &SignedIn, query: ListQuery) -> Result<Markup, WebError> {
    let lang = me.lang;
    let search = query.q.clone().filter(|q| !q.trim().is_empty());
    let filtering = search.is_some() || !query.filters().is_empty();
    let inbox = query.inbox.clone().filter(|i| !i.is_empty());
    let view = match query.view.as_deref() {
        Some(name) => Some(View::parse(name).ok_or(WebError::NotFound)?),
        None if filtering => None,
        None => Some(View::AllOpen),
    };
    let params = ListParams {
        view: view.map(|v| v.name().to_string()),
        inbox: inbox.clone(),
        sort: query.sort.clone(),
        cursor: query.cursor.clone(),
        q: search.clone(),
        limit: Some(PAGE_SIZE),
        status: query.filter("status").map(str::to_string),
        contact: query.filter("contact").map(str::to_string),
        assignee: query.filter("assignee").map(str::to_string),
        since: query.filter("since").map(str::to_string),
        until: query.filter("until").map(str::to_string),
        hide_filtered: query.filter("hide_filtered").map(|_| true),
        hide_trash: query.filter("hide_trash").map(|_| true),
        ..ListParams::default()
    };
    let filter = params.into_filter()?;
    let caller = me.caller();
    let (page, unseen) = blocking(state, move |s| {
        let page = s.list(&caller, filter)?;
        let unseen = s.unseen(&caller, &page.conversations)?;
        Ok((page, unseen))
    })
    .await?;
    let place = Place { inbox, view };
    let config = state.service.config();
    let now = state.service.now();
    let title = view.map_or(lang.t("search"), |v| lang.t(view_key(v)));
    let main = html! {
        header.list-head {
            h1 { (title) }
            (search_form(lang, &place, search.as_deref(), &query, &config))
            (sort_form(lang, &place, &query))
        }
        @if let Some(done) = query.done {
            p.notice role="status" {
                (done) " " (lang.t("bulk.done"))
                @if let Some(refused) = query.refused.filter(|r| *r > 0) {
                    ", " (refused) " " (lang.t("bulk.refused"))
                }
            }
        }
        section #list data-live-region {
            (rows(lang, me, &config, &page.conversations, &unseen, now, &list_url(&place, search.as_deref(), &query, query.cursor.as_deref())))
            nav.pages {
                @if query.cursor.is_some() {
                    a href=(list_url(&place, search.as_deref(), &query, None)) { (lang.t("first_page")) }
                }
                @if let Some(next) = &page.next_cursor {
                    a rel="next" href=(list_url(&place, search.as_deref(), &query, Some(next))) { (lang.t("next_page")) }
                }
            }
        }
    };
    frame(state, me, &place, title, main).await
}

/// The list URL for a place, search, sort and page.
fn list_url(place: &Place, q: Option<&str>, query: &ListQuery, cursor: Option<&str>) -> String {
    let sort = query.sort.as_deref();
    let mut parts = Vec::new();
    if let Some(view) = place.view {
        parts.push(format!("view={}", view.name()));
    }
    for (name, value) in query.filters() {
        parts.push(format!("{name}={}", encode(value)));
    }
    for (name, value) in [
        ("inbox", place.inbox.as_deref()),
        ("q", q),
        ("sort", sort),
        ("cursor", cursor),
    ] {
        if let Some(value) = value {
            parts.push(format!("{name}={}", encode(value)));
        }
    }
    format!("/?{}", parts.join("&"))
}

fn hidden_place(place: &Place) -> Markup {
    html! {
        @if let Some(inbox) = &place.inbox { input type="hidden" name="inbox" value=(inbox); }
        @if let Some(view) = place.view { input type="hidden" name="view" value=(view.name()); }
    }
}

fn search_form(
    lang: Lang,
    place: &Place,
    q: Option<&str>,
    query: &ListQuery,
    config: &Config,
) -> Markup {
    let status = query.filter("status").unwrap_or("");
    let assignee = query.filter("assignee").unwrap_or("");
    html! {
        form.search method="get" action="/" role="search" {
            @if let Some(inbox) = &place.inbox { input type="hidden" name="inbox" value=(inbox); }
            label for="q" { (lang.t("search")) }
            input #q type="search" name="q" value=[q];
            @if q.is_some() || !query.filters().is_empty() {
                a href=(place.view_url(place.view.unwrap_or(View::AllOpen))) { (lang.t("leave_search")) }
            }
            details.filters open[!query.filters().is_empty()] {
                summary { (lang.t("filters")) }
                div.filter-grid {
                    label for="f-status" { (lang.t("filter.status")) }
                    select #f-status name="status" {
                        option value="" { (lang.t("filter.any")) }
                        option value="open" selected[status == "open"] { (lang.t("status.open")) }
                        option value="closed" selected[status == "closed"] { (lang.t("status.closed")) }
                    }
                    label for="f-contact" { (lang.t("col.contact")) }
                    input #f-contact type="email" name="contact" value=[query.filter("contact")];
                    label for="f-assignee" { (lang.t("col.assignee")) }
                    select #f-assignee name="assignee" {
                        option value="" { (lang.t("filter.any")) }
                        option value="none" selected[assignee == "none"] { (lang.t("nobody")) }
                        @for u in &config.users {
                            option value=(u.email) selected[assignee.eq_ignore_ascii_case(&u.email)] { (u.name) }
                        }
                    }
                    label for="f-since" { (lang.t("filter.since")) }
                    input #f-since type="date" name="since" value=[query.filter("since")];
                    label for="f-until" { (lang.t("filter.until")) }
                    input #f-until type="date" name="until" value=[query.filter("until")];
                    span {}
                    label { input type="checkbox" name="hide_filtered" checked[query.filter("hide_filtered").is_some()]; " " (lang.t("filter.hide_filtered")) }
                    span {}
                    label { input type="checkbox" name="hide_trash" checked[query.filter("hide_trash").is_some()]; " " (lang.t("filter.hide_trash")) }
                }
                button type="submit" { (lang.t("search")) }
            }
        }
    }
}

fn sort_form(lang: Lang, place: &Place, query: &ListQuery) -> Markup {
    let oldest = query.sort.as_deref() == Some("oldest");
    html! {
        form.sort method="get" action="/" {
            (hidden_place(place))
            @if let Some(q) = &query.q { input type="hidden" name="q" value=(q); }
            @for (name, value) in query.filters() { input type="hidden" name=(name) value=(value); }
            label for="sort" { (lang.t("sort")) }
            select #sort name="sort" data-autosubmit {
                option value="newest" selected[!oldest] { (lang.t("sort.newest")) }
                option value="oldest" selected[oldest] { (lang.t("sort.oldest")) }
            }
            noscript { button type="submit" { (lang.t("apply")) } }
        }
    }
}

/// A user's display name, or the address when they are no longer configured.
pub fn user_name(config: &Config, email: &str) -> String {
    config
        .user(email)
        .map_or_else(|| email.to_string(), |u| u.name.clone())
}

fn rows(
    lang: Lang,
    me: &SignedIn,
    config: &Config,
    conversations: &[ConversationRow],
    unseen: &HashSet<i64>,
    now: i64,
    back: &str,
) -> Markup {
    if conversations.is_empty() {
        return html! { p.empty { (lang.t("empty")) } };
    }
    html! {
        form #bulk method="post" action="/bulk" {
            (csrf::field(me))
            input type="hidden" name="back" value=(back);
            div.bulk {
                button type="submit" name="action" value="close" { (lang.t("bulk.close")) }
                button type="submit" name="action" value="trash" { (lang.t("bulk.trash")) }
                label for="bulk-assignee" { (lang.t("bulk.assign")) }
                select #bulk-assignee name="assignee" {
                    @for user in &config.users { option value=(user.email) { (user.name) } }
                    (super::conversation::team_options(lang, config, None))
                }
                button type="submit" name="action" value="assign" { (lang.t("bulk.assign_button")) }
            }
            table.conversations {
                thead {
                    tr {
                        th scope="col" { span.sr { (lang.t("col.select")) } }
                        th scope="col" { (lang.t("col.contact")) }
                        th scope="col" { span.sr { (lang.t("replied")) } }
                        th scope="col" { (lang.t("col.subject")) }
                        th scope="col" { (lang.t("col.time")) }
                        th scope="col" { (lang.t("col.assignee")) }
                    }
                }
                tbody {
                    @for c in conversations { (row(lang, me, config, c, unseen.contains(&c.id), now)) }
                }
            }
        }
    }
}

/// One conversation of the list; `unseen`: it has messages the agent has not opened
/// (bold, and said so to screen readers).
fn row(
    lang: Lang,
    me: &SignedIn,
    config: &Config,
    c: &ConversationRow,
    unseen: bool,
    now: i64,
) -> Markup {
    let contact = c
        .contact_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| c.contact_email.clone());
    let mine = c
        .assignee
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case(&me.session.email));
    let replied = c.last_direction.as_deref() == Some("out");
    let subject = if c.subject.trim().is_empty() {
        lang.t("no_subject")
    } else {
        c.subject.as_str()
    };
    html! {
        tr.mine[mine].unseen[unseen] data-id=(c.id) {
            td { input type="checkbox" name="id" value=(c.id) aria-label=(format!("{} {}", lang.t("col.select"), subject)); }
            td.contact title=(c.contact_email) {
                (contact)
                @if c.participant_count > 1 {
                    " " span.participants title=(format!("{} {}", c.participant_count, lang.t("participants"))) { "(" (c.participant_count) ")" }
                }
            }
            td.indicator {
                @if replied {
                    span title=(lang.t("replied")) aria-label=(lang.t("replied")) { "↩" }
                }
            }
            td.subject {
                a href=(format!("/conversations/{}", c.id)) { (subject) }
                @if unseen { " " span.sr { "(" (lang.t("unseen")) ")" } }
                @if c.status == "closed" { " " span.badge { (lang.t("status.closed")) } }
                div.preview {
                    @if let Some(comment) = &c.comment_preview {
                        span.comment { (lang.t("comment_prefix")) " " (first_line(comment)) }
                    } @else {
                        (first_line(new_text(&c.preview)))
                    }
                }
            }
            td.time { (when(lang, c.last_message_at, now)) }
            td.assignee {
                @match &c.assignee {
                    Some(a) => { (user_name(config, a)) @if mine { " ✓" } }
                    None => span.none { "—" },
                }
            }
        }
    }
}

/// The preview's own words: its first run of new text, without quoted history.
fn new_text(preview: &str) -> &str {
    crate::mail_html::split_quoted(preview)
        .into_iter()
        .find(|part| part.kind == crate::mail_html::PartKind::Text && !part.text.trim().is_empty())
        .map_or("", |part| part.text)
}

/// The start of a text as one line.
fn first_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(140) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
