//! `GET /api/activity?window=minute|hour|day&source_id=...`: counts per
//! time bucket, the processor's lag, the error rate and top error codes.

use super::query_param;
use crate::domain::activity::Window;
use crate::http::error::AppResult;
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::activity::{ActivityQuery, ActivityView};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/activity", get(show))
}

#[derive(Deserialize)]
struct ShowQuery {
    window: Option<String>,
    source_id: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    Query(q): Query<ShowQuery>,
) -> AppResult<Json<ActivityView>> {
    let source = query_param(
        q.source_id,
        |s| s.parse().ok(),
        |s| format!("source_id `{s}` is not a source id"),
    )?;
    let window = query_param(q.window, Window::parse, |s| {
        format!("window `{s}` is not one of minute, hour, day")
    })?
    .unwrap_or(Window::Hour);
    let query = ActivityQuery { source, window };
    Ok(Json(state.services.activity(query).await?))
}
