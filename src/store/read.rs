//! Typed read queries for `inbox::Service` (CLI and HTTP API): conversation lists by view,
//! one conversation with its messages, raw messages.

use std::collections::HashSet;

use super::db::Dialect;
use super::db::Value as SqlValue;
use super::db::{params_from_iter, OptionalExtension, Row};
use crate::params;

use super::connection::Reader;
use super::error::StoreError;
use super::rows::{
    ContactRow, ConversationRow, MessageInConversation, MessageRow, TicketRow, TimelineEntry,
    TokenRow,
};

/// The agent views of SPEC F1, as the contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Unassigned,
    AssignedToMe,
    AllOpen,
    Email,
    Closed,
    Sent,
    Spam,
    Filtered,
    Trash,
}

impl View {
    pub const ALL: [View; 9] = [
        View::Unassigned,
        View::AssignedToMe,
        View::AllOpen,
        View::Email,
        View::Closed,
        View::Sent,
        View::Spam,
        View::Filtered,
        View::Trash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Unassigned => "unassigned",
            View::AssignedToMe => "assigned_to_me",
            View::AllOpen => "all_open",
            View::Email => "email",
            View::Closed => "closed",
            View::Sent => "sent",
            View::Spam => "spam",
            View::Filtered => "filtered",
            View::Trash => "trash",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The SQL condition selecting the view; `?` is the calling user's email when
    /// [`View::needs_user`].
    fn condition(self) -> &'static str {
        const INBOX: &str = "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL";
        match self {
            View::Unassigned => concat!(
                "c.status = 'open' AND c.assignee IS NULL AND ",
                "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL AND ",
                "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::AssignedToMe => concat!(
                "c.status = 'open' AND c.assignee = ? AND ",
                "c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL"
            ),
            View::AllOpen => concat!(
                "c.status = 'open' AND c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL AND ",
                "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::Email => INBOX,
            View::Closed => "c.status = 'closed' AND c.spam = 0 AND c.filtered = 0 AND c.trashed_at IS NULL",
            // Only conversations with outbound mail can be in Sent; that short list
            // comes from a partial index instead of probing every conversation.
            View::Sent => concat!(
                "c.trashed_at IS NULL AND c.id IN ",
                "(SELECT m.conversation_id FROM messages m WHERE m.direction = 'out') AND NOT EXISTS ",
                "(SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in')"
            ),
            View::Spam => "c.spam = 1 AND c.trashed_at IS NULL",
            View::Filtered => "c.filtered = 1 AND c.trashed_at IS NULL",
            View::Trash => "c.trashed_at IS NOT NULL",
        }
    }

    pub fn needs_user(self) -> bool {
        self == View::AssignedToMe
    }
}

/// Which assignee to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    Nobody,
    User(String),
}

/// List order by last activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
}

impl Sort {
    fn sql(self) -> &'static str {
        match self {
            Sort::Newest => "DESC",
            Sort::Oldest => "ASC",
        }
    }
}

/// Where the previous page ended (keyset pagination: stable under inserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub last_message_at: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.last_message_at, self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once('.')?;
        Some(Cursor {
            last_message_at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// What to list. Without a view, every conversation not in trash.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub inbox: Option<String>,
    /// Only these inboxes (the caller's visible ones); `None` means all.
    pub visible_inboxes: Option<Vec<String>>,
    pub view: Option<View>,
    /// The calling user (for `assigned_to_me`).
    pub user: Option<String>,
    pub limit: Option<u32>,
    pub status: Option<String>,
    /// Channel address.
    pub channel: Option<String>,
    /// Contact email.
    pub contact: Option<String>,
    pub assignee: Option<AssigneeFilter>,
    /// Last activity at or after / before (Unix seconds).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub hide_filtered: bool,
    /// `Some(false)` lists trash too when no view is given; `Some(true)` always hides it.
    pub hide_trash: Option<bool>,
    pub sort: Sort,
    pub cursor: Option<Cursor>,
    /// Full-text query over subject, body text and sender.
    pub search: Option<String>,
}

const CONVERSATION_COLUMNS: &str = "c.id, c.inbox, c.channel, c.subject, c.status, c.assignee,
     c.contact_id, ct.email, ct.name, c.spam, c.filtered, c.trashed_at, c.message_count,
     c.last_message_at,
     (SELECT COUNT(*) FROM participants p WHERE p.conversation_id = c.id),
     lm.direction, lm.subject, substr(lm.text, 1, 200),
     (SELECT substr(t.detail, 1, 200) FROM timeline t
       WHERE t.conversation_id = c.id AND t.action = 'comment' ORDER BY t.id DESC LIMIT 1),
     c.verdict, c.reasons, tk.id, tk.pipeline, tk.stage, tk.owner, tk.status";

/// Joins the conversation's ticket, if it has one (D4).
const TICKET_JOIN: &str = "LEFT JOIN tickets tk ON tk.conversation_id = c.id";

/// Joins the newest message of each listed conversation (for the F3 fields).
const LAST_MESSAGE_JOIN: &str = "LEFT JOIN messages lm ON lm.id =
     (SELECT m2.id FROM messages m2 WHERE m2.conversation_id = c.id ORDER BY m2.id DESC LIMIT 1)";

fn conversation_row(r: &Row) -> super::db::Result<ConversationRow> {
    let trashed_at: Option<i64> = r.get(11)?;
    Ok(ConversationRow {
        id: r.get(0)?,
        inbox: r.get(1)?,
        channel: r.get(2)?,
        subject: r.get(3)?,
        status: r.get(4)?,
        assignee: r.get(5)?,
        contact_id: r.get(6)?,
        contact_email: r.get(7)?,
        contact_name: r.get(8)?,
        spam: r.get(9)?,
        filtered: r.get(10)?,
        trashed: trashed_at.is_some(),
        trashed_at,
        message_count: r.get(12)?,
        last_message_at: r.get(13)?,
        participant_count: r.get(14)?,
        last_direction: r.get(15)?,
        last_subject: r.get(16)?,
        preview: r.get::<_, Option<String>>(17)?.unwrap_or_default(),
        comment_preview: r.get(18)?,
        verdict: r.get(19)?,
        reasons: json_list(&r.get::<_, String>(20)?),
        ticket: match r.get::<_, Option<i64>>(21)? {
            None => None,
            Some(id) => Some(TicketRow {
                id,
                pipeline: r.get(22)?,
                stage: r.get(23)?,
                owner: r.get(24)?,
                status: r.get(25)?,
            }),
        },
    })
}

/// Conditions and their parameters, built up filter by filter.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    params: Vec<SqlValue>,
}

impl Conditions {
    fn add(&mut self, sql: impl Into<String>, params: impl IntoIterator<Item = SqlValue>) {
        self.sql.push(sql.into());
        self.params.extend(params);
    }

    fn text(value: &str) -> SqlValue {
        SqlValue::Text(value.to_string())
    }

    /// `column = ?`, ignoring ASCII case as SQLite's NOCASE does (and its index does).
    fn nocase(column: &str, dialect: Dialect) -> String {
        match dialect {
            Dialect::Sqlite => format!("{column} = ? COLLATE NOCASE"),
            Dialect::Postgres => format!("lower({column}) = lower(?)"),
        }
    }
}

/// Which conversations a page is chosen among, besides the filter's own conditions.
#[derive(Debug, Clone, Copy)]
enum Among<'a> {
    /// Every conversation the filter selects.
    All,
    /// Those whose id is in this JSON array (SQLite's search hits).
    Ids(&'a str),
    /// Those with a message matching this `to_tsquery('simple', …)` text in
    /// PostgreSQL's index (see [`search_pg::tsquery`](super::search_pg::tsquery)).
    Matching(&'a str),
}

/// The filter's conditions (search aside: see [`Reader::conversations`]), limited to
/// the conversations `among` names.
fn list_conditions(filter: &ListFilter, among: Among, dialect: Dialect) -> Conditions {
    let mut c = Conditions::default();
    c.add("c.deleted = 0", []);
    match filter.view {
        Some(view) if view.needs_user() => {
            let user = filter.user.clone().unwrap_or_default();
            c.add(view.condition(), [SqlValue::Text(user)]);
        }
        Some(view) => c.add(view.condition(), []),
        None if filter.hide_trash == Some(false) => {}
        None => c.add("c.trashed_at IS NULL", []),
    }
    if filter.hide_trash == Some(true) {
        c.add("c.trashed_at IS NULL", []);
    }
    if filter.hide_filtered {
        c.add("c.filtered = 0", []);
    }
    if let Some(inbox) = &filter.inbox {
        c.add(
            Conditions::nocase("c.inbox", dialect),
            [Conditions::text(inbox)],
        );
    }
    if let Some(visible) = &filter.visible_inboxes {
        let marks = vec!["?"; visible.len()].join(", ");
        c.add(
            // `+` keeps this term from choosing the index: the activity-ordered walk
            // is what makes a page cheap.
            match dialect {
                Dialect::Sqlite => format!("+c.inbox IN ({marks})"),
                Dialect::Postgres => format!("c.inbox IN ({marks})"),
            },
            visible.iter().map(|v| Conditions::text(v)),
        );
    }
    if let Some(status) = &filter.status {
        c.add("c.status = ?", [Conditions::text(status)]);
    }
    if let Some(channel) = &filter.channel {
        c.add(
            Conditions::nocase("c.channel", dialect),
            [Conditions::text(channel)],
        );
    }
    if let Some(contact) = &filter.contact {
        c.add(
            "c.contact_id = (SELECT id FROM contacts WHERE email = lower(?))",
            [Conditions::text(contact)],
        );
    }
    match &filter.assignee {
        Some(AssigneeFilter::Nobody) => c.add("c.assignee IS NULL", []),
        Some(AssigneeFilter::User(email)) => c.add("c.assignee = ?", [Conditions::text(email)]),
        None => {}
    }
    if let Some(since) = filter.since {
        c.add("c.last_message_at >= ?", [SqlValue::Integer(since)]);
    }
    if let Some(until) = filter.until {
        c.add("c.last_message_at < ?", [SqlValue::Integer(until)]);
    }
    match among {
        Among::All => {}
        Among::Ids(ids) => c.add(
            "c.id IN (SELECT CAST(value AS INTEGER) FROM json_each(?))",
            [SqlValue::Text(ids.to_string())],
        ),
        // OFFSET 0 keeps the hits a set of their own, taken from the index once: not a
        // join the planner may turn into probing conversation by conversation.
        Among::Matching(query) => c.add(
            "c.id IN (SELECT s.conversation_id FROM messages_search s
                      WHERE s.doc @@ to_tsquery('simple', ?) OFFSET 0)",
            [SqlValue::Text(query.to_string())],
        ),
    }
    if let Some(cursor) = filter.cursor {
        let op = match filter.sort {
            Sort::Newest => "<",
            Sort::Oldest => ">",
        };
        c.add(
            format!("(c.last_message_at, c.id) {op} (?, ?)"),
            [
                SqlValue::Integer(cursor.last_message_at),
                SqlValue::Integer(cursor.id),
            ],
        );
    }
    c
}

/// Low bits of a `messages_fts` rowid: the message's ordinal in its conversation.
pub(super) const FTS_ORDINAL_BITS: u32 = 24;

/// How a search picks its page: see [`Reader::conversations`].
#[derive(Debug, Clone, Copy)]
struct SearchPlan {
    /// SQLite: searches with at most this many matching conversations pick their
    /// page among them.
    few_hits: usize,
    /// Conversations read (PostgreSQL: probed) per step when walking the list.
    walk_step: u32,
    /// PostgreSQL: the most conversations a page's walk is expected to probe; a
    /// search whose hits so far predict more takes the rest of its page from the
    /// index's hits.
    walk_budget: usize,
}

const SQLITE_PLAN: SearchPlan = SearchPlan {
    few_hits: 2000,
    walk_step: 500,
    walk_budget: 0,
};

const POSTGRES_PLAN: SearchPlan = SearchPlan {
    few_hits: 0,
    walk_step: 250,
    walk_budget: 4000,
};

/// `SELECT page_id, page_at … LIMIT ?` for the filter, with its parameters.
fn page_selection(filter: &ListFilter, among: Among, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let conditions = list_conditions(filter, among, dialect);
    let order = filter.sort.sql();
    let sql = format!(
        "SELECT c.id AS page_id, c.last_message_at AS page_at FROM conversations c
         WHERE {}
         ORDER BY c.last_message_at {order}, c.id {order} LIMIT ?",
        conditions.sql.join(" AND ")
    );
    let mut params = conditions.params;
    params.push(SqlValue::Integer(filter.limit.map_or(i64::MAX, i64::from)));
    (sql, params)
}

fn json_ids<'a>(ids: impl Iterator<Item = &'a i64>) -> String {
    let list: Vec<String> = ids.map(i64::to_string).collect();
    format!("[{}]", list.join(","))
}

/// Turns what a user typed into an FTS5 query: every word must match (as a prefix for
/// the last one), and FTS5 syntax in the input is taken literally, never interpreted.
pub fn fts_query(input: &str) -> Option<String> {
    let words: Vec<String> = input
        .split(|ch: char| !ch.is_alphanumeric() && ch != '@' && ch != '.' && ch != '_' && ch != '-')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .collect();
    if words.is_empty() {
        return None;
    }
    let mut query = words.join(" ");
    query.push('*');
    Some(query)
}

impl Reader {
    /// Conversations matching `filter`, newest (or oldest) activity first.
    ///
    /// A search first collects the matching conversation ids from the FTS index. Few
    /// hits: the page is picked among them. Many hits (a common word): walking the
    /// filtered conversations in activity order and keeping the hits fills a page
    /// after a few rows, where sorting tens of thousands of hits would not. PostgreSQL
    /// chooses between the same two ways without collecting the hits first: see
    /// [`Reader::search_ids_postgres`].
    pub fn conversations(&self, filter: &ListFilter) -> Result<Vec<ConversationRow>, StoreError> {
        let plan = match self.conn.dialect() {
            Dialect::Sqlite => SQLITE_PLAN,
            Dialect::Postgres => POSTGRES_PLAN,
        };
        self.conversations_planned(filter, plan)
    }

    /// How many conversations the filter selects (search, cursor and limit aside),
    /// counting no further than `cap`: a view's count in the web inbox's sidebar. The
    /// cap bounds the work (an exact count of a big view reads every row of it).
    pub fn count_conversations(&self, filter: &ListFilter, cap: i64) -> Result<i64, StoreError> {
        let unpaged = ListFilter {
            cursor: None,
            ..filter.clone()
        };
        let c = list_conditions(&unpaged, Among::All, self.conn.dialect());
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM conversations c WHERE {} LIMIT ?) AS capped",
            c.sql.join(" AND ")
        );
        let mut params = c.params;
        params.push(SqlValue::Integer(cap));
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))?)
    }

    fn conversations_planned(
        &self,
        filter: &ListFilter,
        plan: SearchPlan,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let SearchPlan {
            few_hits,
            walk_step,
            ..
        } = plan;
        let Some(input) = filter.search.as_deref() else {
            return self.page(filter, Among::All);
        };
        if self.conn.dialect() == Dialect::Postgres {
            return self.search_page_postgres(filter, input, plan);
        }
        let Some(hits) = self.search_hits(input)? else {
            return self.page(filter, Among::All);
        };
        if hits.len() <= few_hits {
            return self.page(filter, Among::Ids(&json_ids(hits.iter())));
        }
        let wanted = filter.limit.map_or(usize::MAX, |l| l as usize);
        let mut walk = ListFilter {
            search: None,
            limit: Some(walk_step),
            ..filter.clone()
        };
        let mut chosen = Vec::new();
        loop {
            let step = self.page_ids(&walk, Among::All)?;
            chosen.extend(step.iter().map(|c| c.id).filter(|id| hits.contains(id)));
            match step.last() {
                Some(&last) if step.len() == walk_step as usize && chosen.len() < wanted => {
                    walk.cursor = Some(last)
                }
                _ => break,
            }
        }
        chosen.truncate(wanted);
        self.page(filter, Among::Ids(&json_ids(chosen.iter())))
    }

    /// A search's page on PostgreSQL, chosen in the database without collecting every
    /// hit: see [`Reader::search_ids_postgres`].
    fn search_page_postgres(
        &self,
        filter: &ListFilter,
        input: &str,
        plan: SearchPlan,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let Some(query) = super::search_pg::tsquery(input) else {
            // Words without a letter or digit ("..."): FTS5 is asked and finds nothing.
            if fts_query(input).is_some() {
                return Ok(Vec::new());
            }
            return self.page(filter, Among::All);
        };
        let chosen = self.search_ids_postgres(filter, &query, plan)?;
        self.page(filter, Among::Ids(&json_ids(chosen.iter())))
    }

    /// The ids of a search's page on PostgreSQL, in list order. The list is walked in
    /// order, step by step, each conversation probed for a matching message (a common
    /// word fills a page after a few steps); once the hits seen so far say the page
    /// would take more than the plan's `walk_budget` probes (a rare word), the rest of the
    /// page is taken from the index's hits, joined to the list and sorted in the
    /// database. Probing costs a message's whole document, so neither way suits every
    /// word, and PostgreSQL's planner, which costs a probe as next to nothing, would
    /// walk the whole list for a rare one.
    fn search_ids_postgres(
        &self,
        filter: &ListFilter,
        query: &str,
        plan: SearchPlan,
    ) -> Result<Vec<i64>, StoreError> {
        let Some(wanted) = filter.limit.map(|l| l as usize) else {
            return self.matching_ids(filter, query);
        };
        let mut walk = ListFilter {
            search: None,
            limit: Some(plan.walk_step),
            ..filter.clone()
        };
        let (mut chosen, mut walked) = (Vec::new(), 0);
        loop {
            let step = self.probed_step(&walk, query)?;
            walked += step.len();
            chosen.extend(step.iter().filter(|(_, hit)| *hit).map(|(c, _)| c.id));
            if chosen.len() >= wanted || step.len() < plan.walk_step as usize {
                chosen.truncate(wanted);
                return Ok(chosen);
            }
            walk.cursor = step.last().map(|(c, _)| *c);
            if walked.saturating_mul(wanted) > plan.walk_budget.saturating_mul(chosen.len()) {
                let rest = ListFilter {
                    limit: Some((wanted - chosen.len()) as u32),
                    ..walk
                };
                chosen.extend(self.matching_ids(&rest, query)?);
                return Ok(chosen);
            }
        }
    }

    /// The next conversations of the list (`filter.limit` of them, search aside), each
    /// with whether one of its messages matches `query` in PostgreSQL's index.
    fn probed_step(
        &self,
        filter: &ListFilter,
        query: &str,
    ) -> Result<Vec<(Cursor, bool)>, StoreError> {
        let (selection, params) = page_selection(filter, Among::All, self.conn.dialect());
        let order = filter.sort.sql();
        // In the select list, the probe runs for each row of the step, by the
        // conversation's index entries, never as a join over every hit.
        let sql = format!(
            "SELECT walk.page_id, walk.page_at,
                    EXISTS (SELECT 1 FROM messages_search s WHERE s.conversation_id = walk.page_id
                              AND s.doc @@ to_tsquery('simple', ?))
             FROM ({selection}) walk
             ORDER BY walk.page_at {order}, walk.page_id {order}"
        );
        let params = std::iter::once(SqlValue::Text(query.to_string())).chain(params);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), |r| {
            let at = Cursor {
                id: r.get(0)?,
                last_message_at: r.get(1)?,
            };
            Ok((at, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ids of the list's conversations (`filter.limit` of them at most) with a
    /// message matching `query`, from the index's hits, in list order.
    fn matching_ids(&self, filter: &ListFilter, query: &str) -> Result<Vec<i64>, StoreError> {
        let page = self.page_ids(filter, Among::Matching(query))?;
        Ok(page.iter().map(|c| c.id).collect())
    }

    /// Ids of the conversations with a message matching what the user typed in the
    /// FTS5 index; `None` when it has no word to search for.
    fn search_hits(&self, input: &str) -> Result<Option<HashSet<i64>>, StoreError> {
        let Some(query) = fts_query(input) else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1")?;
        let rows = stmt.query_map([query], |r| r.get::<_, i64>(0))?;
        // The rowid carries the conversation id (see the schema).
        let hits = rows
            .map(|rowid| Ok(rowid? >> FTS_ORDINAL_BITS))
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(hits))
    }

    /// One page in list order, with the F3 columns.
    fn page(&self, filter: &ListFilter, among: Among) -> Result<Vec<ConversationRow>, StoreError> {
        let (selection, params) = page_selection(filter, among, self.conn.dialect());
        let order = filter.sort.sql();
        // The page is chosen on the conversations table alone (an index walk in
        // activity order that stops at the limit); the F3 columns, which cost a few
        // lookups each, are computed for the page's rows only.
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM ({selection}) page
             JOIN conversations c ON c.id = page.page_id
             JOIN contacts ct ON ct.id = c.contact_id
             {LAST_MESSAGE_JOIN} {TICKET_JOIN}
             ORDER BY page.page_at {order}, page.page_id {order}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params), conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ids (and activity) of one page in list order, among the conversations
    /// `among` names (the filter's search aside).
    fn page_ids(&self, filter: &ListFilter, among: Among) -> Result<Vec<Cursor>, StoreError> {
        let (selection, params) = page_selection(filter, among, self.conn.dialect());
        let mut stmt = self.conn.prepare_cached(&selection)?;
        let rows = stmt.query_map(params_from_iter(params), |r| {
            Ok(Cursor {
                id: r.get(0)?,
                last_message_at: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One conversation (not deleted).
    pub fn conversation(&self, id: i64) -> Result<Option<ConversationRow>, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c
             JOIN contacts ct ON ct.id = c.contact_id {LAST_MESSAGE_JOIN} {TICKET_JOIN}
             WHERE c.id = ?1 AND c.deleted = 0"
        );
        Ok(self
            .conn
            .query_row(&sql, [id], conversation_row)
            .optional()?)
    }

    /// The messages of a conversation, oldest first.
    pub fn messages(&self, conversation_id: i64) -> Result<Vec<MessageRow>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1
             ORDER BY received_at, id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([conversation_id], message_row)?;
        let mut messages: Vec<MessageRow> = rows.collect::<Result<_, _>>()?;
        for m in &mut messages {
            if m.direction == "out" {
                m.deliveries = self.deliveries(m.id)?;
            }
        }
        Ok(messages)
    }

    /// One message (with its deliveries when outbound) and the inbox of its (not
    /// deleted) conversation.
    pub fn message(&self, id: i64) -> Result<Option<MessageInConversation>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, c.id, c.inbox FROM messages
             JOIN conversations c ON c.id = messages.conversation_id
             WHERE messages.id = ?1 AND c.deleted = 0"
        );
        let found = self
            .conn
            .query_row(&sql, [id], |r| {
                Ok(MessageInConversation {
                    message: message_row(r)?,
                    conversation_id: r.get(MESSAGE_COLUMN_COUNT)?,
                    inbox: r.get(MESSAGE_COLUMN_COUNT + 1)?,
                })
            })
            .optional()?;
        let Some(mut found) = found else {
            return Ok(None);
        };
        if found.message.direction == "out" {
            found.message.deliveries = self.deliveries(found.message.id)?;
        }
        Ok(Some(found))
    }

    /// Who did what on a conversation, oldest first.
    pub fn timeline(&self, conversation_id: i64) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, actor, action, detail FROM timeline
             WHERE conversation_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([conversation_id], |r| {
            Ok(TimelineEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A contact by id, or by email when `key` is not a number.
    pub fn contact(&self, key: &str) -> Result<Option<ContactRow>, StoreError> {
        let id: Option<i64> = key.parse().ok();
        Ok(self
            .conn
            .query_row(
                "SELECT id, email, name, created_at, owner FROM contacts
                 WHERE id = ?1 OR email = lower(?2)",
                params![id, key],
                |r| {
                    Ok(ContactRow {
                        id: r.get(0)?,
                        email: r.get(1)?,
                        name: r.get(2)?,
                        created_at: r.get(3)?,
                        owner: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// An API token's user and stored hash, by the token's id.
    pub fn api_token(&self, id: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_email, hash FROM api_tokens WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// API tokens (never their hashes), oldest first; only `user`'s when given.
    pub fn api_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, user_email, created_at, last_used_at FROM api_tokens
             WHERE user_email = ?1 OR ?1 IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                user: r.get(1)?,
                created_at: r.get(2)?,
                last_used_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Blocked sender addresses with when and by whom.
    pub fn blocked_senders(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT address, blocked_at, blocked_by FROM blocked_senders ORDER BY address",
        )?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A user's availability as last set (F7); `None` when never set.
    pub fn availability(&self, email: &str) -> Result<Option<bool>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT available FROM user_status WHERE email = ?1",
                [email],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Conversations put in trash at or before `cutoff` and not yet deleted.
    pub fn trashed_before(&self, cutoff: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM conversations
             WHERE trashed_at IS NOT NULL AND trashed_at <= ?1 AND deleted = 0",
        )?;
        let rows = stmt.query_map([cutoff], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The whole stored message (RFC 5322, our Received header first).
    pub fn raw_message(&self, message_row: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.body FROM messages m JOIN raw_messages r ON r.id = m.raw_id
                 WHERE m.id = ?1",
                [message_row],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Number of stored messages (for checks and benchmarks).
    pub fn message_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", (), |r| r.get(0))?)
    }
}

const MESSAGE_COLUMNS: &str = "messages.id, direction, from_addr, from_name, to_json, cc_json,
     messages.subject, message_id, date, received_at, text, attachments_json,
     messages.verdict, messages.reasons, auth_results, spam_score, bounce_of, thread_reason";
/// How many columns `MESSAGE_COLUMNS` names.
const MESSAGE_COLUMN_COUNT: usize = 18;

fn message_row(r: &Row) -> super::db::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        direction: r.get(1)?,
        from: r.get(2)?,
        from_name: r.get(3)?,
        to: json_list(&r.get::<_, String>(4)?),
        cc: json_list(&r.get::<_, String>(5)?),
        subject: r.get(6)?,
        message_id: r.get(7)?,
        date: r.get(8)?,
        received_at: r.get(9)?,
        text: r.get(10)?,
        attachments: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        verdict: r.get(12)?,
        reasons: json_list(&r.get::<_, String>(13)?),
        auth_results: r.get(14)?,
        spam_score: r.get(15)?,
        bounce_of: r.get(16)?,
        thread_reason: r.get(17)?,
        deliveries: Vec::new(),
    })
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ingest::file as file_inbound;
    use crate::store::NewInbound;

    fn inbound(n: usize) -> NewInbound {
        let word = if n.is_multiple_of(3) {
            "kapot"
        } else {
            "vraag"
        };
        let from = format!("c{n}@klant.example");
        let raw = format!(
            "Message-ID: <s{n}@x>\r\nFrom: {from}\r\nSubject: Nummer {n}\r\n\r\nMijn {word} {n}\r\n"
        );
        crate::store::testkit::inbound(&raw, &from, 1000 + n as i64)
    }

    #[tokio::test]
    async fn both_search_plans_give_the_same_pages() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::testkit::fresh_store(dir.path());
        let (writer, _thread) = store.start_writer().expect("writer");
        writer
            .write(|conn| {
                for n in 0..40 {
                    file_inbound(conn, &inbound(n))?;
                }
                crate::store::search_index::index_all_pending(conn)?;
                Ok(())
            })
            .await
            .expect("filed");
        let reader = store.reader().expect("reader");
        // Conversation n + 1 is message n's, "kapot" when n is a multiple of 3.
        for (search, sort, limit, cursor, expected) in [
            (
                "kapot",
                Sort::Newest,
                Some(5),
                None,
                Some(&[40, 37, 34, 31, 28][..]),
            ),
            (
                "kapot",
                Sort::Oldest,
                Some(4),
                Some((1010, 11)),
                Some(&[13, 16, 19, 22]),
            ),
            ("vraag", Sort::Newest, None, None, None),
            ("nummer 7", Sort::Newest, Some(3), None, Some(&[8])),
        ] {
            let filter = ListFilter {
                search: Some(search.into()),
                sort,
                limit,
                cursor: cursor.map(|(at, id)| Cursor {
                    last_message_at: at,
                    id,
                }),
                ..ListFilter::default()
            };
            let ids = |few_hits, walk_budget| -> Vec<i64> {
                let plan = SearchPlan {
                    few_hits,
                    walk_step: 3,
                    walk_budget,
                };
                let rows = reader.conversations_planned(&filter, plan).expect("list");
                rows.iter().map(|c| c.id).collect()
            };
            // SQLite: all hits, then a walk. PostgreSQL: a step, then the index's hits
            // for the rest; a walk all the way.
            let direct = ids(usize::MAX, 0);
            assert!(!direct.is_empty(), "{search}");
            if let Some(expected) = expected {
                assert_eq!(direct, expected, "{search} {sort:?} {limit:?}");
            }
            assert_eq!(direct, ids(0, usize::MAX), "{search} {sort:?} {limit:?}");
            let chosen = reader.conversations(&filter).expect("list");
            assert_eq!(direct, chosen.iter().map(|c| c.id).collect::<Vec<_>>());
        }
        let kapot: Vec<i64> = reader
            .conversations(&ListFilter {
                search: Some("KAPOT".into()),
                ..ListFilter::default()
            })
            .expect("list")
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(kapot.len(), 14);
        assert!(kapot.windows(2).all(|w| w[0] > w[1]), "newest first");
    }

    #[tokio::test]
    async fn a_count_stops_at_its_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::testkit::fresh_store(dir.path());
        let (writer, _thread) = store.start_writer().expect("writer");
        writer
            .write(|conn| {
                for n in 0..12 {
                    file_inbound(conn, &inbound(n))?;
                }
                Ok(())
            })
            .await
            .expect("filed");
        let reader = store.reader().expect("reader");
        let open = ListFilter {
            view: Some(View::AllOpen),
            cursor: Some(Cursor {
                last_message_at: 1005,
                id: 6,
            }),
            ..ListFilter::default()
        };
        let count = |cap| reader.count_conversations(&open, cap).expect("count");
        assert_eq!(count(1000), 12, "all of them, the cursor aside");
        assert_eq!(count(12), 12);
        assert_eq!(count(5), 5, "no further than the cap");
    }
}
