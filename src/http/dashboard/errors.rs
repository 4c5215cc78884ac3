//! `/errors`: the error log, newest first, filtered by source and stage.

use super::display::{clipped, options, query, short_id, source_names, source_options, time};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::model::{ErrorEntry, Level, Stage};
use crate::http::AppState;
use crate::service::errors::ErrorFilter;
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
    before: String,
}

pub async fn list(
    State(state): State<AppState>,
    session: Authed,
    Query(q): Query<ErrorQuery>,
) -> PageResult {
    let filter = ErrorFilter {
        source_id: q.source_id.parse().ok(),
        stage: Stage::parse(&q.stage),
        limit: PAGE,
        before: q.before.parse().ok(),
    };
    let filtered = filter.source_id.is_some() || filter.stage.is_some();
    let found = state.services.errors(filter).await?;
    let entries = found.errors;
    let names = source_names(&state).await?;
    let next_url = found.next.map(|next| {
        let before = next.to_string();
        format!(
            "/errors?{}",
            query(&[
                ("source_id", &q.source_id),
                ("stage", &q.stage),
                ("before", &before)
            ])
        )
    });
    let data = json!({
        "title": "Errors", "nav": "errors", "csrf": session.csrf,
        "errors": entries.iter().map(|e| row(e, &names)).collect::<Vec<_>>(),
        "sources": source_options(&names, &q.source_id),
        "stages": options(Stage::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().to_string())), &q.stage),
        "filtered": filtered,
        "next_url": next_url,
    });
    page(StatusCode::OK, "errors", &data)
}

fn row(entry: &ErrorEntry, names: &HashMap<crate::domain::ids::SourceId, String>) -> Value {
    let source = entry.source_id.map(|id| {
        json!({
            "id": id.to_string(),
            "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into()),
        })
    });
    json!({
        "time": time(&entry.at),
        "at": entry.at,
        "level": match entry.level { Level::Error => "error", Level::Warning => "warning" },
        "stage": entry.stage.as_str(),
        "code": entry.code,
        "message": clipped(&entry.message),
        "excerpt": entry.excerpt.as_deref().map(clipped),
        "source": source,
        "event": entry.event_id.map(|id| short_id(&id.to_string())),
    })
}
