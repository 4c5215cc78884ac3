//! `/api/profiles`: list, look up, audit, merge and erase profiles.

use super::{page_limit, query_param};
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::views::ProfileView;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::profiles::{
    ErasureReport, HistoryPage, Page, ProfileEvents, ProfileLookup, SearchKind,
};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/profiles", get(find))
        .route("/profiles/{id}", get(read).delete(erase))
        .route("/profiles/{id}/events", get(events))
        .route("/profiles/{id}/history", get(history))
        .route("/profiles/{id}/merge", post(merge))
        .route("/profiles/{id}/graph", get(graph))
        .route("/profiles/{id}/split", post(split))
}

#[derive(Deserialize)]
struct FindQuery {
    email: Option<String>,
    external_id: Option<String>,
    visitor_id: Option<String>,
    /// Any kind, a team's own included: `kind=stripe_customer_id&value=cus_A42`.
    kind: Option<String>,
    value: Option<String>,
    /// A listing's search: an identifier prefix or a profile id.
    q: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

impl FindQuery {
    /// Any lookup parameter given (even empty) asks for one profile, as
    /// before the listing existed.
    fn is_lookup(&self) -> bool {
        self.email.is_some()
            || self.external_id.is_some()
            || self.visitor_id.is_some()
            || self.kind.is_some()
    }
}

/// A page of the profile list: `{"profiles", "next", "truncated"}`.
#[derive(Serialize)]
struct ProfileListPage {
    profiles: Vec<ProfileView>,
    next: Option<ProfileId>,
    truncated: bool,
}

/// With `email`, `external_id`, `visitor_id` or `kind`+`value`: the profile owning that
/// identifier, normalised and checked like events' identifiers (a value
/// no event could have stored answers 404, saying why). Without: a page
/// of profiles, newest first (`limit` default 50, at most 500; `before`),
/// those with an identifier starting with `q` when given.
async fn find(State(state): State<AppState>, Query(q): Query<FindQuery>) -> AppResult<Response> {
    if !q.is_lookup() {
        return Ok(Json(list(&state, q).await?).into_response());
    }
    let lookup = ProfileLookup {
        external_id: q.external_id,
        email: q.email,
        visitor_id: q.visitor_id,
        kind: q.kind,
        value: q.value,
    };
    let profile = state.services.find_profile(lookup).await?;
    Ok(Json(ProfileView::of(profile)).into_response())
}

async fn list(state: &AppState, q: FindQuery) -> AppResult<ProfileListPage> {
    let before = query_param(
        q.before,
        |b| b.parse::<ProfileId>().ok(),
        |b| format!("before `{b}` is not a profile id"),
    )?;
    let page = Page {
        limit: page_limit(q.limit, 50, 500),
        before,
    };
    let search = q.q.unwrap_or_default();
    let found = state
        .services
        .list_profiles(&search, SearchKind::Any, page)
        .await?;
    Ok(ProfileListPage {
        profiles: found.profiles.into_iter().map(ProfileView::of).collect(),
        next: found.next,
        truncated: found.truncated,
    })
}

fn parse_profile_id(id: &str) -> AppResult<ProfileId> {
    id.parse()
        .map_err(|_| AppError::not_found(format!("no profile `{id}`")))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<ProfileView>> {
    let profile = state.services.profile(parse_profile_id(&id)?).await?;
    Ok(Json(ProfileView::of(profile)))
}

/// `?limit=&before=` of a paged list (a profile's events, its history).
#[derive(Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    before: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Json<ProfileEvents>> {
    let pid = parse_profile_id(&id)?;
    let before = query_param(
        q.before,
        |b| b.parse::<EventId>().ok(),
        |b| format!("before `{b}` is not an event id"),
    )?;
    let page = Page {
        limit: page_limit(q.limit, 50, 500),
        before,
    };
    Ok(Json(state.services.profile_events(pid, page).await?))
}

/// A page of history, newest first (default 50 lines, at most 500), with
/// runs of identical refusals folded (`count`, `first_seen`, `last_seen`);
/// `next` is the `before=` of the older page.
async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Json<HistoryPage>> {
    let pid = parse_profile_id(&id)?;
    let before = query_param(
        q.before,
        |b| b.parse::<uuid::Uuid>().ok(),
        |b| format!("before `{b}` is not a history line id"),
    )?;
    let page = Page {
        limit: page_limit(q.limit, 50, 500),
        before,
    };
    Ok(Json(state.services.profile_history(pid, page).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    into: String,
}

async fn merge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<ProfileView>> {
    let body: MergeBody = super::sources::parse_body(&body)?;
    let from = parse_profile_id(&id)?;
    let into = parse_profile_id(&body.into)?;
    let profile = state.services.merge_profiles(from, into).await?;
    Ok(Json(ProfileView::of(profile)))
}

/// Erases a profile and every copy of its personal data, answering what
/// was removed where (`ErasureReport`); 503 `processor_behind` when the
/// pipeline has not caught up with what was received before.
async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<ErasureReport>> {
    let pid = parse_profile_id(&id)?;
    Ok(Json(state.services.erase_profile(pid).await?))
}

/// How the profile was joined: `{profile_id, nodes, edges, identifiers,
/// refusals, history_complete}` (see docs/api.md). An absorbed id answers
/// the live profile's graph; an unknown one is 404.
async fn graph(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<crate::service::graph::ProfileGraph>> {
    let pid = parse_profile_id(&id)?;
    Ok(Json(state.services.profile_graph(pid).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitBody {
    merge_id: String,
    #[serde(default)]
    reason: String,
}

/// Undoes one merge (`merge_id`: the `id` of a `merge` line of the
/// profile's history); answers the profiles after it and the never-merge
/// rules it made. 400 for ids that do not parse, 404 for an unknown
/// profile or merge, 409 (with a code) for a merge that cannot be split.
async fn split(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<crate::service::split::SplitReport>> {
    let body: SplitBody = super::sources::parse_body(&body)?;
    let profile_id = id
        .parse()
        .map_err(|_| AppError::bad_request(format!("`{id}` is not a profile id")))?;
    let merge_id = body.merge_id.parse().map_err(|_| {
        AppError::bad_request(format!(
            "merge_id `{}` is not the id of a history line (a UUID)",
            body.merge_id
        ))
    })?;
    let input = crate::service::split::SplitInput {
        profile_id,
        merge_id,
        by: "api".into(),
        reason: body.reason,
    };
    Ok(Json(state.services.split_profile(input).await?))
}
