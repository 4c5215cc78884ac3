//! `/errors`: the error log, grouped by source and code by default (a
//! count, first and last seen), or as the raw list newest first
//! (`view=list`); both filtered by source, stage, level and code.

use super::display::{clipped, options, query, short_id, source_names, source_options, time};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::ids::SourceId;
use crate::domain::model::{ErrorEntry, Level, Stage};
use crate::http::AppState;
use crate::service::errors::{level_named, ErrorFilter, ErrorGroup, ErrorGroups};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

const PAGE: usize = 50;

/// Unparseable values mean "any", as on the events page.
#[derive(Deserialize)]
pub struct ErrorQuery {
    #[serde(default)]
    source_id: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    code: String,
    /// `list`: every entry; anything else: the groups.
    #[serde(default)]
    view: String,
    #[serde(default)]
    before: String,
}

impl ErrorQuery {
    fn filter(&self) -> ErrorFilter {
        ErrorFilter {
            source_id: self.source_id.parse().ok(),
            stage: Stage::parse(&self.stage),
            level: level_named(&self.level),
            code: Some(self.code.clone()).filter(|c| !c.is_empty()),
            limit: PAGE,
            before: self.before.parse().ok(),
        }
    }

    fn is_list(&self) -> bool {
        self.view == "list"
    }

    /// This page's URL with `view` (and nothing else) changed.
    fn url_with_view(&self, view: &str) -> String {
        format!(
            "/errors?{}",
            query(&[
                ("source_id", &self.source_id),
                ("stage", &self.stage),
                ("level", &self.level),
                ("code", &self.code),
                ("view", view),
            ])
        )
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Authed,
    Query(q): Query<ErrorQuery>,
) -> PageResult {
    let filter = q.filter();
    let filtered = filter.source_id.is_some()
        || filter.stage.is_some()
        || filter.level.is_some()
        || filter.code.is_some();
    let names = source_names(&state).await?;
    let mut data = json!({
        "title": "Errors", "nav": "errors", "csrf": session.csrf,
        "sources": source_options(&names, &q.source_id),
        "stages": options(Stage::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().to_string())), &q.stage),
        "levels": options([("error", "Errors"), ("warning", "Warnings")].map(|(v, l)| (v.to_string(), l.to_string())), &q.level),
        "code": q.code,
        "filtered": filtered,
        "list": q.is_list(),
        "view": if q.is_list() { "list" } else { "groups" },
        "groups_url": q.url_with_view(""),
        "list_url": q.url_with_view("list"),
    });
    let view = if q.is_list() {
        list_view(&state, &q, filter, &names).await?
    } else {
        let groups = state.services.error_groups(filter).await?;
        groups_view(&groups, &q, &names)
    };
    if let (Some(data), Value::Object(view)) = (data.as_object_mut(), view) {
        data.extend(view);
    }
    page(StatusCode::OK, "errors", &data)
}

/// The raw entries, newest first, a page at a time.
async fn list_view(
    state: &AppState,
    q: &ErrorQuery,
    filter: ErrorFilter,
    names: &HashMap<SourceId, String>,
) -> Result<Value, super::render::PageError> {
    let found = state.services.errors(filter).await?;
    let next_url = found.next.map(|next| {
        let before = next.to_string();
        format!(
            "/errors?{}",
            query(&[
                ("source_id", &q.source_id),
                ("stage", &q.stage),
                ("level", &q.level),
                ("code", &q.code),
                ("view", "list"),
                ("before", &before)
            ])
        )
    });
    Ok(json!({
        "errors": found.errors.iter().map(|e| row(e, names)).collect::<Vec<_>>(),
        "next_url": next_url,
    }))
}

/// The groups, most recently seen first, each linking to its entries.
fn groups_view(groups: &ErrorGroups, q: &ErrorQuery, names: &HashMap<SourceId, String>) -> Value {
    let rows: Vec<Value> = groups
        .groups
        .iter()
        .map(|g| group_row(g, q, names))
        .collect();
    json!({
        "groups": rows,
        "read": groups.read,
        "complete": groups.complete,
        "omitted": groups.omitted,
    })
}

fn group_row(group: &ErrorGroup, q: &ErrorQuery, names: &HashMap<SourceId, String>) -> Value {
    let source_id = group.source_id.map(|id| id.to_string()).unwrap_or_default();
    let entries_url = format!(
        "/errors?{}",
        query(&[
            ("source_id", &source_id),
            ("stage", &q.stage),
            ("level", &q.level),
            ("code", &group.code),
            ("view", "list"),
        ])
    );
    json!({
        "source": source_view(group.source_id, names),
        "code": group.code,
        "stage": group.stage.as_str(),
        "level": level_name(group.level),
        "count": group.count,
        "first": time(&group.first_seen),
        "first_at": group.first_seen,
        "last": time(&group.last_seen),
        "last_at": group.last_seen,
        "message": clipped(&group.message),
        "entries_url": entries_url,
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn source_view(id: Option<SourceId>, names: &HashMap<SourceId, String>) -> Option<Value> {
    id.map(|id| {
        json!({
            "id": id.to_string(),
            "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into()),
        })
    })
}

fn row(entry: &ErrorEntry, names: &HashMap<SourceId, String>) -> Value {
    json!({
        "time": time(&entry.at),
        "at": entry.at,
        "level": level_name(entry.level),
        "stage": entry.stage.as_str(),
        "code": entry.code,
        "message": clipped(&entry.message),
        "excerpt": entry.excerpt.as_deref().map(clipped),
        "source": source_view(entry.source_id, names),
        "event": entry.event_id.map(|id| short_id(&id.to_string())),
    })
}
