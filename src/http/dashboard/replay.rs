//! `GET /sources/{id}/replay/confirm`: what a replay will do, said before
//! it runs ("This re-maps N resolved events of <source> received since <t>
//! through version V"), with the button that starts it (a POST to
//! `/sources/{id}/replay`, which redirects back to the source page).
//!
//! The count comes from the same use case as the API's dry run
//! (`Services::replay_plan`), so both say the same number.

use super::display::time;
use super::render::{page, PageResult};
use super::session::Authed;
use super::sources::{failed, page_source_id};
use crate::domain::replay::ReplayScope;
use crate::http::AppState;
use crate::service::mappings::{ReplayPlan, ReplayRequest};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// The source page's replay form (a GET, so the confirmation is a page a
/// reload only shows again).
#[derive(Deserialize)]
pub struct ReplayQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
}

pub async fn confirm(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(query): Query<ReplayQuery>,
) -> PageResult {
    let source_id = page_source_id(&id)?;
    let since = form_since(&query.since);
    let request = ReplayRequest {
        status: query.status.clone(),
        since: since.clone(),
    };
    let plan = state
        .services
        .replay_plan(source_id, request)
        .await
        .map_err(failed)?;
    let data = json!({
        "title": "Replay", "nav": "sources", "csrf": session.csrf,
        "source_id": plan.source_id.to_string(),
        "status": plan.status.as_str(),
        "since": since,
        "summary": summary(&plan),
        "would_touch": plan.would_touch,
        "resolved": matches!(plan.status, ReplayScope::Resolved | ReplayScope::All),
    });
    page(StatusCode::OK, "replay_confirm", &data)
}

/// The sentence the confirmation shows.
pub fn summary(plan: &ReplayPlan) -> String {
    let scope = match plan.status.as_str() {
        "all" => "failed, unmapped and resolved".to_string(),
        other => other.to_string(),
    };
    let since = plan
        .since
        .as_ref()
        .map(|t| format!(" received since {} UTC", time(t)))
        .unwrap_or_default();
    let noun = if plan.would_touch == 1 {
        "event"
    } else {
        "events"
    };
    format!(
        "This re-maps {} {scope} {noun} of {}{since} through version {}.",
        plan.would_touch, plan.source_name, plan.version
    )
}

/// A `since` as the form sends it: empty is none; a browser's
/// `datetime-local` value (`2026-01-31T09:00`, no zone) is taken as UTC,
/// which is what the page's times are in; anything else goes to the
/// service as typed (RFC 3339), which says what is wrong with it.
pub fn form_since(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let local = |format: &str| chrono::NaiveDateTime::parse_from_str(text, format).ok();
    match local("%Y-%m-%dT%H:%M").or_else(|| local("%Y-%m-%dT%H:%M:%S")) {
        Some(naive) => Some(naive.and_utc().to_rfc3339()),
        None => Some(text.to_string()),
    }
}
