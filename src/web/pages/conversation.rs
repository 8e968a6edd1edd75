//! The conversation page (`/conversations/{id}`, 404 when the agent may not see it):
//! its messages oldest first with from/to/cc/date, text with quoted history folded,
//! attachments to download, deliveries, internal comments as tinted notes, the
//! activity timeline, classification with its reasons; the owner menu, status
//! actions, the reply editor (from-name and signature shown as sent) and the comment
//! box. A message's HTML is shown only in a sandboxed frame (`message_body`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::list::user_name;
use super::mail_body::sanitized_html;
use super::words;
use super::{frame, when, Place};
use crate::config::{Config, Inbox};
use crate::inbox::access::{inbox_access, InboxAccess};
use crate::inbox::json::TEXT_LIMIT;
use crate::inbox::service::ConversationDetail;
use crate::inbox::InboxError;
use crate::mail_html::{self, PartKind, RemoteImages};
use crate::outbound::compose;
use crate::store::Doing;
use crate::store::{ConversationRow, MessageRow, TimelineEntry};
use crate::web::csrf;
use crate::web::i18n::Lang;
use crate::web::session::SignedIn;
use crate::web::{blocking, WebError, WebState};

/// Everything the page shows, read in one go.
struct Loaded {
    detail: ConversationDetail,
    /// Message ids that have an HTML part, with the number of remote images blocked
    /// in it.
    with_html: Vec<(i64, usize)>,
    access: InboxAccess,
    /// The user the contact belongs to (D3), if any.
    contact_owner: Option<String>,
    /// The contact's other conversations the agent may see, newest first.
    earlier: Vec<ConversationRow>,
    /// The message asked for whole (`?whole=ID`), past `TEXT_LIMIT`.
    whole: Option<i64>,
    /// Who else is viewing or replying here now.
    present: Vec<(String, Doing)>,
}

/// How one message is shown on the page.
#[derive(Debug, Default, Clone, Copy)]
struct Shown {
    /// It has an HTML part, with this many remote images blocked in it.
    html: Option<usize>,
    /// Open (the newest message, or the one asked for whole); older ones are folded.
    open: bool,
    /// All of its text, past `TEXT_LIMIT`.
    whole: bool,
}

/// The conversation page's query: `whole=ID` shows that message's whole text.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    whole: Option<String>,
}

/// `GET /conversations/{id}`.
pub async fn page(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let whole = query.whole.and_then(|w| w.parse().ok());
    match render(&state, &me, &id, whole).await {
        Ok(page) => page.into_response(),
        Err(WebError::NotFound) => merged_away(&state, &me, &id).await,
        Err(e) => e.page(me.lang),
    }
}

/// A conversation merged into another leads on to it (a stale link, another agent's
/// open page); anything else not found stays 404.
async fn merged_away(state: &WebState, me: &SignedIn, id: &str) -> Response {
    let Ok(id) = parse_id(id) else {
        return WebError::NotFound.page(me.lang);
    };
    let caller = me.caller();
    match blocking(state, move |s| s.merged_into(&caller, id)).await {
        Ok(Some(target)) => Redirect::to(&format!("/conversations/{target}")).into_response(),
        Ok(None) => WebError::NotFound.page(me.lang),
        Err(e) => e.page(me.lang),
    }
}

pub fn parse_id(text: &str) -> Result<i64, WebError> {
    text.parse().map_err(|_| WebError::NotFound)
}

async fn render(
    state: &WebState,
    me: &SignedIn,
    id: &str,
    whole: Option<i64>,
) -> Result<Markup, WebError> {
    let id = parse_id(id)?;
    let caller = me.caller();
    let email = me.session.email.clone();
    let loaded = blocking(state, move |s| {
        let detail = s.show(&caller, id)?;
        let with_html = detail
            .messages
            .iter()
            .filter_map(|m| {
                let raw = s.raw_message(&caller, m.id).ok()?;
                let html = sanitized_html(&raw, RemoteImages::Blocked)?;
                Some((m.id, html.blocked_remote_images))
            })
            .collect();
        let access = s
            .inboxes(&caller)
            .into_iter()
            .find(|i| i.name == detail.conversation.inbox)
            .map_or(InboxAccess::None, |i| i.access);
        let (contact, conversations) = s
            .contact(&caller, &detail.conversation.contact_email)
            .map_or((None, Vec::new()), |(contact, list)| (Some(contact), list));
        let earlier = conversations
            .into_iter()
            .filter(|other| other.id != id)
            .collect();
        Ok(Loaded {
            detail,
            with_html,
            access,
            contact_owner: contact.and_then(|c| c.owner),
            earlier,
            whole,
            present: s.others_present(id, &email)?,
        })
    })
    .await?;
    if let Err(e) = state.service.mark_seen(&me.caller(), id).await {
        tracing::warn!(error = %e, conversation = id, "web: could not note the conversation as seen");
    }
    let config = state.service.config();
    let now = state.service.now();
    let c = &loaded.detail.conversation;
    let place = Place {
        inbox: Some(c.inbox.clone()),
        view: None,
    };
    let lang = me.lang;
    let can_act = loaded.access == InboxAccess::Member;
    let main = html! {
        article.thread data-live-region #thread {
            header.thread-head {
                p { a href=(format!("/?inbox={}", super::encode(&c.inbox))) { "← " (lang.t("back")) } }
                h1 { (subject(lang, c)) }
                p.meta {
                    (c.inbox) " · " (c.channel) " · "
                    span.badge { (lang.t(if c.status == "open" { "status.open" } else { "status.closed" })) }
                    (classification(lang, c))
                }
                @if can_act {
                    div.toolbar {
                        (assign_form(lang, me, &config, c))
                        (status_form(lang, me, c))
                        a.button href=(format!("/conversations/{}/forward", c.id)) { (lang.t("forward")) }
                        (more_menu(lang, me, &config, c, &loaded.earlier))
                    }
                } @else {
                    p.notice { (lang.t("view_only")) }
                }
            }
            p #live-note.notice role="status" hidden {
                (lang.t("live.note")) " "
                a href=(format!("/conversations/{}", c.id)) { (lang.t("live.show")) }
            }
            (items(lang, me, &config, &loaded, now))
            (activity(lang, &config, &loaded.detail.timeline, now))
            @if can_act {
                (reply_form(lang, me, &config, c, loaded.detail.messages.last().map_or(0, |m| m.id)))
                (comment_form(lang, me, c))
            }
        }
        (context(lang, me, &config, &loaded, now))
    };
    frame(state, me, &place, &c.subject, main).await
}

/// The right sidebar: the contact (name, address, owner), the ticket, and the
/// contact's other conversations the agent may see; each section folds.
fn context(lang: Lang, me: &SignedIn, config: &Config, loaded: &Loaded, now: i64) -> Markup {
    let c = &loaded.detail.conversation;
    let earlier = &loaded.earlier;
    html! {
        aside.context {
            (presence_line(lang, me, c.id, &loaded.present))
            details open {
                summary { h2 { (lang.t("contact")) } }
                p { (c.contact_name.clone().unwrap_or_default()) br; (c.contact_email) }
                @if let Some(owner) = &loaded.contact_owner {
                    p { (lang.t("contact_owner")) ": " (user_name(config, owner)) }
                }
            }
            @if let Some(ticket) = &c.ticket {
                details open {
                    summary { h2 { (lang.t("ticket")) } }
                    p { "#" (ticket.id) " · " (ticket.pipeline) " · " (ticket.stage) }
                    @if let Some(owner) = &ticket.owner {
                        p { (lang.t("ticket_owner")) ": " (user_name(config, owner)) }
                    }
                }
            }
            @if !earlier.is_empty() {
                details open {
                    summary { h2 { (lang.t("other_conversations")) } }
                    ul.earlier {
                        @for other in earlier.iter().take(MAX_OTHER_CONVERSATIONS) {
                            li {
                                a href=(format!("/conversations/{}", other.id)) { (subject(lang, other)) }
                                br;
                                span.meta {
                                    (when(lang, other.last_message_at, now)) " · "
                                    (lang.t(if other.status == "open" { "status.open" } else { "status.closed" }))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "Bob is viewing" / "Bob is replying": who else is here, kept current by the
/// script from the event stream's `presence` events (its texts carry `{name}`).
fn presence_line(lang: Lang, me: &SignedIn, id: i64, present: &[(String, Doing)]) -> Markup {
    let text = |name: &str, doing: Doing| {
        let key = match doing {
            Doing::Viewing => "presence.viewing",
            Doing::Replying => "presence.replying",
        };
        lang.t(key).replace("{name}", name)
    };
    html! {
        ul #presence.presence aria-live="polite"
            data-conversation=(id)
            data-events=(format!("/events?conversation={id}"))
            data-report=(format!("/conversations/{id}/presence"))
            data-csrf=(me.session.csrf)
            data-viewing=(lang.t("presence.viewing"))
            data-replying=(lang.t("presence.replying")) {
            @for (name, doing) in present {
                li class=(doing.name()) { (text(name, *doing)) }
            }
        }
    }
}

/// Most of a contact's other conversations listed beside a conversation.
const MAX_OTHER_CONVERSATIONS: usize = 10;

fn subject(lang: Lang, c: &ConversationRow) -> &str {
    if c.subject.trim().is_empty() {
        lang.t("no_subject")
    } else {
        &c.subject
    }
}

/// Why an inbound message is in this conversation: the threading rule that joined it,
/// or why it started one (`MessageRow::thread_reason`), behind "Why here?".
fn thread_note(lang: Lang, reason: Option<&str>) -> Markup {
    let key = match reason {
        Some("in_reply_to") => "thread.in_reply_to",
        Some("references") => "thread.references",
        Some("thread_index") => "thread.thread_index",
        Some("subject_and_contact") => "thread.subject_and_contact",
        Some("new") => "thread.new",
        Some("new:stranger_reply") => "thread.stranger_reply",
        Some("new:subject_changed") => "thread.subject_changed",
        Some("new:matched_conversation_gone") => "thread.conversation_gone",
        Some("split") => "thread.split",
        Some("merged") => "thread.merged",
        _ => return html! {},
    };
    html! {
        details.why.thread-reason {
            summary { (lang.t("why_here")) }
            p { (lang.t(key)) }
        }
    }
}

/// The badge of a verdict other than clean, with its reasons behind "why?".
fn verdict_badge(lang: Lang, verdict: &str, reasons: &[String]) -> Markup {
    let key = match verdict {
        "spam" => "badge.spam",
        "filtered" => "badge.filtered",
        "auto_reply" => "badge.auto_reply",
        "bulk" => "badge.bulk",
        "bounce" => "badge.bounce",
        "feedback" => "badge.feedback",
        _ => return html! {},
    };
    html! {
        " "
        span.badge.warn { (lang.t(key)) }
        @if !reasons.is_empty() {
            details.why {
                summary { (lang.t("why")) }
                ul { @for r in reasons { li { (lang.t(words::reason_key(r))) " " code { (r) } } } }
            }
        }
    }
}

fn classification(lang: Lang, c: &ConversationRow) -> Markup {
    let verdict = if c.spam {
        "spam"
    } else if c.filtered {
        "filtered"
    } else {
        c.verdict.as_str()
    };
    html! {
        (verdict_badge(lang, verdict, &c.reasons))
        @if c.trashed { " " span.badge.warn { (lang.t("badge.trashed")) } }
    }
}

fn assign_form(lang: Lang, me: &SignedIn, config: &Config, c: &ConversationRow) -> Markup {
    let inbox = config.inbox(&c.inbox);
    let members: Vec<_> = config
        .users
        .iter()
        .filter(|u| inbox.is_some_and(|i| inbox_access(config, &u.email, i).can_act()))
        .collect();
    let current = c.assignee.as_deref().unwrap_or("");
    html! {
        form.assign method="post" action=(format!("/conversations/{}/assign", c.id)) {
            (csrf::field(me))
            label for="assignee" { (lang.t("assignee")) }
            select #assignee name="assignee" data-autosubmit {
                option value="" selected[current.is_empty()] { (lang.t("nobody")) }
                @for u in members {
                    option value=(u.email) selected[u.email.eq_ignore_ascii_case(current)] { (u.name) }
                }
                (team_options(lang, config, inbox))
            }
            noscript { button type="submit" { (lang.t("assign")) } }
        }
    }
}

/// The teams with a member who may act in `inbox`, as `team:NAME` choices: the team's
/// member with the fewest open conversations takes it.
pub fn team_options(lang: Lang, config: &Config, inbox: Option<&Inbox>) -> Markup {
    let teams: Vec<_> = config
        .teams
        .iter()
        .filter(|t| match inbox {
            Some(i) => t
                .members
                .iter()
                .any(|m| inbox_access(config, m, i).can_act()),
            None => true,
        })
        .collect();
    html! {
        @if !teams.is_empty() {
            optgroup label=(lang.t("teams")) {
                @for t in teams { option value=(format!("team:{}", t.name)) { (t.name) } }
            }
        }
    }
}

fn status_form(lang: Lang, me: &SignedIn, c: &ConversationRow) -> Markup {
    let button = |action: &str, key: &'static str, shortcut: Option<&str>| {
        html! { button type="submit" name="action" value=(action) data-key=[shortcut] { (lang.t(key)) } }
    };
    let open_ticket = c.ticket.as_ref().is_some_and(|t| t.status == "open");
    html! {
        form.status method="post" action=(format!("/conversations/{}/act", c.id)) {
            (csrf::field(me))
            @if c.status == "open" { (button("close", "close", Some("e"))) } @else { (button("reopen", "reopen", None)) }
            @if c.status == "open" && open_ticket { (button("close_with_ticket", "close_with_ticket", None)) }
            @if c.spam { (button("not_spam", "not_spam", None)) } @else { (button("spam", "spam", None)) }
            @if c.trashed { (button("restore", "restore", None)) } @else { (button("trash", "trash", None)) }
        }
    }
}

/// The "More" menu (UI.md): block sender, move, merge, delete forever (from trash).
/// A plain `<details>`, so it opens without scripting; destructive actions (block
/// sender, delete forever, merge) are confirmed on a page of their own first. The
/// merge box suggests the contact's other conversations (`earlier`) by number.
fn more_menu(
    lang: Lang,
    me: &SignedIn,
    config: &Config,
    c: &ConversationRow,
    earlier: &[ConversationRow],
) -> Markup {
    let act = format!("/conversations/{}/act", c.id);
    let targets: Vec<&str> = config
        .inboxes
        .iter()
        .filter(|i| i.name != c.inbox && inbox_access(config, &me.session.email, i).can_act())
        .map(|i| i.name.as_str())
        .collect();
    html! {
        details.more-actions {
            summary { (lang.t("more")) }
            div.menu {
                form method="post" action=(act) {
                    (csrf::field(me))
                    button type="submit" name="action" value="block_sender" { (lang.t("block_sender")) }
                    @if c.trashed {
                        button.danger type="submit" name="action" value="delete" { (lang.t("delete_forever")) }
                    }
                }
                @if !targets.is_empty() {
                    form method="post" action=(format!("/conversations/{}/move", c.id)) {
                        (csrf::field(me))
                        label for="move-to" { (lang.t("move_to")) }
                        select #move-to name="inbox" {
                            @for name in &targets { option value=(name) { (name) } }
                        }
                        button type="submit" { (lang.t("move")) }
                    }
                }
                form method="post" action=(format!("/conversations/{}/merge", c.id)) {
                    (csrf::field(me))
                    label for="merge-into" { (lang.t("merge_into")) }
                    input #merge-into name="into" type="number" min="1" required placeholder="#" list="merge-candidates";
                    datalist #merge-candidates {
                        @for other in earlier.iter().filter(|o| !o.trashed).take(MAX_OTHER_CONVERSATIONS) {
                            option value=(other.id) { "#" (other.id) " " (subject(lang, other)) }
                        }
                    }
                    button type="submit" { (lang.t("merge")) }
                }
            }
        }
    }
}

/// The Split button of a message (when its conversation has more than one).
fn split_form(lang: Lang, me: &SignedIn, conversation: i64, message: i64) -> Markup {
    html! {
        form.split method="post" action=(format!("/conversations/{conversation}/split")) {
            (csrf::field(me))
            input type="hidden" name="message" value=(message);
            button type="submit" title=(lang.t("split.hint")) { (lang.t("split")) }
        }
    }
}

/// The page that asks once before a destructive action: what will happen, then the
/// form that does it (with `confirmed=1`) and a way back. Works without scripting.
pub struct Confirm<'a> {
    pub question: &'static str,
    /// What it applies to (a sender's address, the conversation merged into).
    pub subject: Markup,
    pub action: String,
    pub fields: Vec<(&'a str, String)>,
    pub button: &'static str,
}

pub async fn confirm_page(
    state: &WebState,
    me: &SignedIn,
    c: &ConversationRow,
    confirm: Confirm<'_>,
) -> Result<Markup, WebError> {
    let lang = me.lang;
    let place = Place {
        inbox: Some(c.inbox.clone()),
        view: None,
    };
    let main = html! {
        article.thread #thread {
            h1 { (subject(lang, c)) }
            div.confirm role="alertdialog" aria-labelledby="confirm-question" {
                p #confirm-question { strong { (lang.t(confirm.question)) } }
                (confirm.subject)
                form method="post" action=(confirm.action) {
                    (csrf::field(me))
                    @for (name, value) in &confirm.fields {
                        input type="hidden" name=(name) value=(value);
                    }
                    input type="hidden" name="confirmed" value="1";
                    button.danger type="submit" { (lang.t(confirm.button)) }
                    " "
                    a href=(format!("/conversations/{}", c.id)) { (lang.t("cancel")) }
                }
            }
        }
    };
    frame(state, me, &place, &c.subject, main).await
}

/// Messages and comments, oldest first.
fn items(lang: Lang, me: &SignedIn, config: &Config, loaded: &Loaded, now: i64) -> Markup {
    enum Item<'a> {
        Message(&'a MessageRow),
        Comment(&'a TimelineEntry),
    }
    let d = &loaded.detail;
    let mut list: Vec<(i64, Item)> = d
        .messages
        .iter()
        .map(|m| (m.received_at, Item::Message(m)))
        .chain(
            d.timeline
                .iter()
                .filter(|t| t.action == "comment")
                .map(|t| (t.at, Item::Comment(t))),
        )
        .collect();
    list.sort_by_key(|(at, _)| *at);
    let newest = d.messages.last().map(|m| m.id);
    let splittable = loaded.access == InboxAccess::Member && d.messages.len() > 1;
    let id = d.conversation.id;
    html! {
        @for (_, item) in &list {
            @match item {
                Item::Message(m) => {
                    @let whole = loaded.whole == Some(m.id);
                    @let shown = Shown {
                        html: loaded.with_html.iter().find(|(id, _)| *id == m.id).map(|&(_, blocked)| blocked),
                        open: whole || newest == Some(m.id),
                        whole,
                    };
                    (message(lang, id, m, shown, now, splittable.then(|| split_form(lang, me, id, m.id))))
                }
                Item::Comment(t) => {
                    aside.note {
                        p.who { (user_name(config, &t.actor)) " · " (when(lang, t.at, now)) " · " (lang.t("comment")) }
                        p.text { (t.detail.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn message(
    lang: Lang,
    conversation: i64,
    m: &MessageRow,
    shown: Shown,
    now: i64,
    tools: Option<Markup>,
) -> Markup {
    let from = match &m.from_name {
        Some(name) if !name.trim().is_empty() => format!("{name} <{}>", m.from),
        _ => m.from.clone(),
    };
    let base = format!("/conversations/{conversation}/messages/{}", m.id);
    html! {
        details.message.out[m.direction == "out"].in[m.direction != "out"] #(format!("m{}", m.id)) open[shown.open] {
            summary {
                span.from { (from) }
                " "
                (when(lang, m.date.unwrap_or(m.received_at), now))
            }
            dl.headers {
                dt { (lang.t("from")) } dd { (from) }
                dt { (lang.t("to")) } dd { (m.to.join(", ")) }
                @if !m.cc.is_empty() { dt { (lang.t("cc")) } dd { (m.cc.join(", ")) } }
                dt { (lang.t("date")) } dd { (when(lang, m.date.unwrap_or(m.received_at), now)) }
            }
            (verdict_badge(lang, &m.verdict, &m.reasons))
            (thread_note(lang, m.thread_reason.as_deref()))
            @if let Some(returned) = m.bounce_of {
                p.notice.bounce { a href=(format!("/messages/{returned}")) { (lang.t("bounce_of")) } }
            }
            (text_body(lang, &m.text, &format!("/conversations/{conversation}?whole={}#m{}", m.id, m.id), shown.whole))
            @if let Some(blocked) = shown.html {
                details.html {
                    summary { (lang.t("html_version")) }
                    @if blocked > 0 {
                        p.images {
                            (lang.t("images_blocked")) " "
                            a href=(format!("{base}/body?images=shown")) target=(format!("body-{}", m.id)) { (lang.t("show_images")) }
                        }
                    }
                    iframe name=(format!("body-{}", m.id)) sandbox=(mail_html::SANDBOX) referrerpolicy="no-referrer" loading="lazy" title=(lang.t("html_version")) src=(format!("{base}/body")) {}
                }
            }
            @if !m.attachments.is_empty() {
                ul.attachments aria-label=(lang.t("attachments")) {
                    @for (i, a) in m.attachments.iter().enumerate() {
                        li {
                            a href=(format!("{base}/attachments/{i}")) download { (crate::inbox::display::download_name(&a.filename)) }
                            " (" (a.content_type) ", " (size(a.size as u64)) ")"
                        }
                    }
                }
            }
            @if !m.deliveries.is_empty() {
                ul.deliveries aria-label=(lang.t("delivery")) {
                    @for d in &m.deliveries {
                        li { (d.recipient) ": " strong { (words::delivery_state(lang, &d.status)) } @if let Some(r) = &d.last_reply { " — " (r) } }
                    }
                }
            }
            @if let Some(tools) = tools { div.message-tools { (tools) } }
        }
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The message text with its quoted history and signature folded behind "…"
/// (`mail_html::split_quoted`); an interleaved reply keeps its own lines between the
/// folds. Text over `TEXT_LIMIT` is cut there (SPEC B8) unless `whole`, with a link to
/// `whole_url` that shows all of it.
fn text_body(lang: Lang, text: &str, whole_url: &str, whole: bool) -> Markup {
    let (text, truncated) = if whole {
        (text, false)
    } else {
        crate::inbox::json::truncate(text, TEXT_LIMIT)
    };
    let parts = mail_html::split_quoted(text.trim_end());
    html! {
        @if truncated {
            p.notice {
                (lang.t("truncated")) " "
                a href=(whole_url) { (lang.t("show_whole")) }
            }
        }
        @for part in parts {
            @if part.kind == PartKind::Text {
                pre.text { (part.text.trim_matches('\n')) }
            } @else {
                details.quoted {
                    summary { "… " span.sr { (lang.t("quoted")) } }
                    pre.text { (part.text.trim_end()) }
                }
            }
        }
    }
}

fn activity(lang: Lang, config: &Config, timeline: &[TimelineEntry], now: i64) -> Markup {
    let entries: Vec<&TimelineEntry> = timeline.iter().filter(|t| t.action != "comment").collect();
    if entries.is_empty() {
        return html! {};
    }
    html! {
        details.activity {
            summary { (lang.t("timeline")) " (" (entries.len()) ")" }
            ol {
                @for t in entries {
                    li {
                        (when(lang, t.at, now)) " · " (user_name(config, &t.actor)) " · "
                        (timeline_entry(lang, t))
                    }
                }
            }
        }
    }
}

/// A timeline entry in words: the action's name from the catalogue and its detail;
/// a split or merge links the other conversation (`to #43` → "split off into #43").
fn timeline_entry(lang: Lang, t: &TimelineEntry) -> Markup {
    let detail = t.detail.as_deref().unwrap_or_default();
    let other = |prefix: &str| {
        detail
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<i64>().ok())
    };
    let linked = match t.action.as_str() {
        "split" => other("to #")
            .map(|n| ("timeline.split_to", n))
            .or_else(|| other("from #").map(|n| ("timeline.split_from", n))),
        "merge" => other("from #")
            .map(|n| ("timeline.merged_from", n))
            .or_else(|| other("into #").map(|n| ("timeline.merged_into", n))),
        _ => None,
    };
    if let Some((key, n)) = linked {
        return html! { (lang.t(key)) " " a href=(format!("/conversations/{n}")) { "#" (n) } };
    }
    html! {
        (action_name(lang, &t.action))
        @if !detail.is_empty() { ": " (detail) }
    }
}

/// The catalogue's name of a timeline action; an unknown one as stored.
fn action_name(lang: Lang, action: &str) -> String {
    let key = match action {
        "assign" => "timeline.assign",
        "unassign" => "timeline.unassign",
        "close" => "timeline.close",
        "reopen" => "timeline.reopen",
        "move" => "timeline.move",
        "trash" => "timeline.trash",
        "restore" => "timeline.restore",
        "spam" => "timeline.spam",
        "not_spam" => "timeline.not_spam",
        "block_sender" => "timeline.block_sender",
        other => return other.to_string(),
    };
    lang.t(key).to_string()
}

fn reply_form(
    lang: Lang,
    me: &SignedIn,
    config: &Config,
    c: &ConversationRow,
    newest_seen: i64,
) -> Markup {
    let channel = config
        .inbox(&c.inbox)
        .and_then(|i| i.channels.iter().find(|ch| ch.address == c.channel));
    let from = channel.map(|ch| {
        format!(
            "{} <{}>",
            compose::from_name(&ch.from_name, &me.name),
            ch.address
        )
    });
    let signature = channel
        .and_then(|ch| ch.signature.as_deref())
        .map(|t| compose::signature(t, &me.name));
    html! {
        form.reply #reply-form method="post" action=(format!("/conversations/{}/reply", c.id)) enctype="multipart/form-data" {
            (csrf::field(me))
            input type="hidden" name="seen" value=(newest_seen);
            @if let Some(from) = &from {
                p.from-preview { (lang.t("sent_as")) ": " strong { (from) } }
            }
            details.recipients {
                summary { (lang.t("to")) " / " (lang.t("cc")) " / " (lang.t("bcc")) }
                label for="reply-to" { (lang.t("to")) }
                input #reply-to name="to" type="text" placeholder=(c.contact_email);
                label for="reply-cc" { (lang.t("cc")) }
                input #reply-cc name="cc" type="text";
                label for="reply-bcc" { (lang.t("bcc")) }
                input #reply-bcc name="bcc" type="text";
            }
            label for="reply" { (lang.t("reply")) }
            textarea #reply name="text" rows="6" required {}
            @if let Some(signature) = &signature {
                div.signature-preview {
                    span.label { (lang.t("signature")) }
                    pre { (signature) }
                }
            }
            label for="reply-files" { (lang.t("attach")) }
            input #reply-files name="files" type="file" multiple;
            button.primary type="submit" { (lang.t("send")) }
        }
    }
}

/// Shown instead of sending when messages came in after the reply box was opened:
/// the new messages, then the draft again with Send (which now sends).
pub async fn reply_after_new_mail(
    state: &WebState,
    me: &SignedIn,
    c: &ConversationRow,
    newer: &[MessageRow],
    draft: &Draft,
) -> Result<Markup, WebError> {
    let lang = me.lang;
    let now = state.service.now();
    let place = Place {
        inbox: Some(c.inbox.clone()),
        view: None,
    };
    let main = html! {
        article.thread #thread {
            h1 { (subject(lang, c)) }
            p.notice role="alert" { (lang.t("reply.newer")) }
            @for m in newer { (message(lang, c.id, m, Shown { open: true, ..Shown::default() }, now, None)) }
            form.reply method="post" action=(format!("/conversations/{}/reply", c.id)) enctype="multipart/form-data" {
                (csrf::field(me))
                input type="hidden" name="confirm" value="1";
                @for file in &draft.carried { input type="hidden" name="carried" value=(file); }
                @if !draft.file_names.is_empty() {
                    p.attached { (lang.t("attached")) ": " (draft.file_names.join(", ")) }
                }
                input type="hidden" name="to" value=(draft.to);
                input type="hidden" name="cc" value=(draft.cc);
                input type="hidden" name="bcc" value=(draft.bcc);
                label for="reply" { (lang.t("reply")) }
                textarea #reply name="text" rows="6" required { (draft.text) }
                button.primary type="submit" { (lang.t("send")) }
                a href=(format!("/conversations/{}", c.id)) { (lang.t("back")) }
            }
        }
    };
    frame(state, me, &place, &c.subject, main).await
}

/// A reply as typed, carried to the confirmation.
#[derive(Debug, Default)]
pub struct Draft {
    pub text: String,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    /// The files attached, carried as hidden fields (`web::compose::carry`).
    pub carried: Vec<String>,
    pub file_names: Vec<String>,
}

fn comment_form(lang: Lang, me: &SignedIn, c: &ConversationRow) -> Markup {
    html! {
        form.comment method="post" action=(format!("/conversations/{}/comment", c.id)) {
            (csrf::field(me))
            label for="comment" { (lang.t("comment")) }
            p.hint { (lang.t("internal_note")) }
            textarea #comment name="text" rows="3" required {}
            button type="submit" { (lang.t("add_comment")) }
        }
    }
}

/// `GET /conversations/{id}/messages/{message}/body`: what the message's frame shows.
pub async fn message_body(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path((id, message)): Path<(String, String)>,
    Query(query): Query<BodyQuery>,
) -> Response {
    let images = match query.images.as_deref() {
        Some("shown") => RemoteImages::Shown,
        _ => RemoteImages::Blocked,
    };
    let found = async {
        let (id, message) = (parse_id(&id)?, parse_id(&message)?);
        let caller = me.caller();
        blocking(&state, move |s| {
            let m = s.message(&caller, message)?;
            if m.conversation_id != id {
                return Err(InboxError::NotFound(format!("message {message}")));
            }
            let raw = s.raw_message(&caller, message)?;
            sanitized_html(&raw, images)
                .ok_or_else(|| InboxError::NotFound(format!("HTML of message {message}")))
        })
        .await
    }
    .await;
    match found {
        Ok(sanitized) => {
            let mut response = mail_html::body_response(&sanitized.html, images);
            response.headers_mut().insert(
                header::X_FRAME_OPTIONS,
                header::HeaderValue::from_static("SAMEORIGIN"),
            );
            response
        }
        Err(e) => e.page(me.lang),
    }
}

/// `GET /messages/{message}`: to the message in its conversation (a bounce links to
/// the message it returned, which is usually in another conversation).
pub async fn message_link(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path(message): Path<String>,
) -> Response {
    let found = async {
        let message = parse_id(&message)?;
        let caller = me.caller();
        let m = blocking(&state, move |s| s.message(&caller, message)).await?;
        Ok::<_, WebError>((m.conversation_id, message))
    }
    .await;
    match found {
        Ok((conversation, message)) => {
            Redirect::to(&format!("/conversations/{conversation}#m{message}")).into_response()
        }
        Err(e) => e.page(me.lang),
    }
}

/// The body route's query: `images=shown` once the agent asked for remote images.
#[derive(serde::Deserialize)]
pub struct BodyQuery {
    images: Option<String>,
}

/// `GET /conversations/{id}/messages/{message}/attachments/{index}`: a download, never
/// shown inline.
pub async fn attachment(
    State(state): State<Arc<WebState>>,
    me: SignedIn,
    Path((id, message, index)): Path<(String, String, String)>,
) -> Response {
    let found = async {
        let (id, message) = (parse_id(&id)?, parse_id(&message)?);
        let index: usize = index.parse().map_err(|_| WebError::NotFound)?;
        let caller = me.caller();
        blocking(&state, move |s| {
            let m = s.message(&caller, message)?;
            if m.conversation_id != id {
                return Err(InboxError::NotFound(format!("message {message}")));
            }
            s.attachment(&caller, message, index)
        })
        .await
    }
    .await;
    match found {
        Ok((info, bytes)) => {
            let name = crate::inbox::display::download_name(&info.filename);
            let content_type = if info.content_type.is_ascii() {
                info.content_type
            } else {
                "application/octet-stream".into()
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (
                        header::CONTENT_DISPOSITION,
                        crate::api::content_disposition(&name),
                    ),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => e.page(me.lang),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_history_and_signature_fold_and_new_text_stays_open() {
        let text = "Thanks!\n\nOn Mon, 1 Jan 2026, Jan wrote:\n> hello\n";
        let page = text_body(Lang::En, text, "/whole", false).into_string();
        assert!(
            page.starts_with("<pre class=\"text\">Thanks!</pre><details class=\"quoted\">"),
            "{page}"
        );
        assert!(
            page.contains("Jan wrote:\n&gt; hello</pre></details>"),
            "{page}"
        );
        let signed = text_body(Lang::En, "Hi\n-- \nBob\n", "/whole", false).into_string();
        assert!(
            signed.contains("<pre class=\"text\">Hi</pre><details"),
            "{signed}"
        );
        assert_eq!(
            text_body(Lang::En, "plain", "/whole", false).into_string(),
            "<pre class=\"text\">plain</pre>"
        );
    }
}
