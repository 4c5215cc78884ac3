//! `/profiles`: placeholders until the identity module lands; the routes and
//! nav exist now so links from events already work.

use super::display::query;
use super::render::{page, PageResult};
use super::session::Authed;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// Search form (email / external id / visitor id). The `profiles` template
/// expects `q` and `profiles` (an empty list until identity lands).
pub async fn search(session: Authed, Query(search): Query<SearchQuery>) -> PageResult {
    let data = json!({
        "title": "Profiles", "nav": "profiles", "csrf": session.csrf,
        "events_url": format!("/?{}", query(&[("q", &search.q)])),
        "q": search.q, "profiles": [],
    });
    page(StatusCode::OK, "profiles", &data)
}

/// One profile. The `profile` template expects `id` and `profile` (null
/// until identity lands).
pub async fn show(session: Authed, Path(id): Path<String>) -> PageResult {
    let data = json!({
        "title": "Profile", "nav": "profiles", "csrf": session.csrf,
        "events_url": format!("/?{}", query(&[("q", &id)])),
        "id": id, "profile": null,
    });
    page(StatusCode::OK, "profile", &data)
}
