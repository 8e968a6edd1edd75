//! List parameters as both shells receive them (CLI flags, API query string), parsed
//! into the store's `ListFilter` in one place so both accept and refuse the same input.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::InboxError;
use crate::store::{AssigneeFilter, Cursor, ListFilter, Sort, View};

/// Every list parameter, as text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub view: Option<String>,
    pub inbox: Option<String>,
    /// `open` or `closed`.
    pub status: Option<String>,
    /// Channel address.
    pub channel: Option<String>,
    /// Contact email.
    pub contact: Option<String>,
    /// An agent's email, or `none` for unassigned.
    pub assignee: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (UTC): last activity at or after.
    pub since: Option<String>,
    /// RFC 3339 time or `YYYY-MM-DD` (UTC): last activity before.
    pub until: Option<String>,
    pub hide_filtered: Option<bool>,
    pub hide_trash: Option<bool>,
    /// `newest` (default) or `oldest`.
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Full-text search over subject, body text and sender.
    pub q: Option<String>,
}

impl ListParams {
    pub fn into_filter(self) -> Result<ListFilter, InboxError> {
        Ok(ListFilter {
            view: self.view.as_deref().map(view).transpose()?,
            inbox: self.inbox,
            status: self.status.as_deref().map(status).transpose()?,
            channel: self.channel.map(|c| c.to_lowercase()),
            contact: self.contact.map(|c| c.to_lowercase()),
            assignee: self.assignee.map(|a| match a.as_str() {
                "none" => AssigneeFilter::Nobody,
                email => AssigneeFilter::User(email.to_lowercase()),
            }),
            since: self
                .since
                .as_deref()
                .map(|t| time_arg("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| time_arg("until", t))
                .transpose()?,
            hide_filtered: self.hide_filtered.unwrap_or(false),
            hide_trash: self.hide_trash,
            sort: self
                .sort
                .as_deref()
                .map(sort)
                .transpose()?
                .unwrap_or_default(),
            cursor: self
                .cursor
                .as_deref()
                .map(|c| {
                    Cursor::decode(c).ok_or_else(|| {
                        InboxError::Invalid(format!("cursor: {c:?} is not a cursor"))
                    })
                })
                .transpose()?,
            limit: self.limit,
            search: self.q.filter(|q| !q.trim().is_empty()),
            user: None,
            visible_inboxes: None,
        })
    }
}

pub fn view(name: &str) -> Result<View, InboxError> {
    View::parse(name).ok_or_else(|| {
        let names: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
        InboxError::Invalid(format!(
            "view: unknown view {name:?} (views: {})",
            names.join(", ")
        ))
    })
}

fn status(text: &str) -> Result<String, InboxError> {
    match text {
        "open" | "closed" => Ok(text.to_string()),
        _ => Err(InboxError::Invalid(format!(
            "status: {text:?} is neither open nor closed"
        ))),
    }
}

fn sort(text: &str) -> Result<Sort, InboxError> {
    match text {
        "newest" => Ok(Sort::Newest),
        "oldest" => Ok(Sort::Oldest),
        _ => Err(InboxError::Invalid(format!(
            "sort: {text:?} is neither newest nor oldest"
        ))),
    }
}

/// RFC 3339, or a bare date meaning its midnight UTC.
fn time_arg(name: &str, text: &str) -> Result<i64, InboxError> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| {
            InboxError::Invalid(format!(
                "{name}: {text:?} is not an RFC 3339 time or YYYY-MM-DD date"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_or_name_the_one_at_fault() {
        let filter = ListParams {
            view: Some("closed".into()),
            assignee: Some("none".into()),
            since: Some("2026-11-01".into()),
            until: Some("2026-11-02T00:00:00Z".into()),
            sort: Some("oldest".into()),
            cursor: Some("1800000000.12".into()),
            ..ListParams::default()
        }
        .into_filter()
        .expect("valid");
        assert_eq!(filter.view, Some(View::Closed));
        assert_eq!(filter.assignee, Some(AssigneeFilter::Nobody));
        assert_eq!(filter.until.unwrap() - filter.since.unwrap(), 86_400);
        assert_eq!(filter.sort, Sort::Oldest);
        assert_eq!(filter.cursor.unwrap().id, 12);
        for (params, key) in [
            (
                ListParams {
                    view: Some("inbox".into()),
                    ..Default::default()
                },
                "view",
            ),
            (
                ListParams {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
                "since",
            ),
            (
                ListParams {
                    cursor: Some("x".into()),
                    ..Default::default()
                },
                "cursor",
            ),
            (
                ListParams {
                    status: Some("pending".into()),
                    ..Default::default()
                },
                "status",
            ),
        ] {
            let error = params.into_filter().expect_err(key).to_string();
            assert!(error.starts_with(key), "{error}");
        }
    }
}
