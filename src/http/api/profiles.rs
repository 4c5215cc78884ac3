//! `/api/profiles`: look up, audit, merge and erase profiles.

use super::{page_limit, query_param};
use crate::domain::identity::{self, IdentKey, IdentKind, Profile};
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::summary::Bounds;
use crate::domain::views::{profile_json, summary_json};
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use crate::store::ErasureReport;
use crate::store::{EventLog, StateStore};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/profiles", get(find))
        .route("/profiles/{id}", get(read).delete(erase))
        .route("/profiles/{id}/events", get(events))
        .route("/profiles/{id}/history", get(history))
        .route("/profiles/{id}/merge", post(merge))
}

#[derive(Deserialize)]
struct FindQuery {
    email: Option<String>,
    external_id: Option<String>,
    visitor_id: Option<String>,
}

/// The identifier a lookup asks for, normalised like events are (ASCII-only
/// trim and lowercasing: a Unicode lowercase would find `kim@…` for
/// `\u{212A}im@…`).
pub(crate) fn lookup_key(
    email: Option<&str>,
    external_id: Option<&str>,
    visitor_id: Option<&str>,
) -> Option<IdentKey> {
    let pick = |v: Option<&str>| {
        v.map(identity::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if let Some(x) = pick(external_id) {
        return Some(IdentKey::new(IdentKind::ExternalId, x));
    }
    if let Some(e) = pick(email) {
        return Some(IdentKey::new(
            IdentKind::Email,
            identity::lowercase_email(&e),
        ));
    }
    pick(visitor_id).map(|v| IdentKey::new(IdentKind::VisitorId, v))
}

async fn find(State(state): State<AppState>, Query(q): Query<FindQuery>) -> AppResult<Json<Value>> {
    let key = lookup_key(
        q.email.as_deref(),
        q.external_id.as_deref(),
        q.visitor_id.as_deref(),
    )
    .ok_or_else(|| AppError::BadRequest("give one of email, external_id or visitor_id".into()))?;
    let profile = state
        .store
        .profile_by(&key)?
        .ok_or_else(|| AppError::NotFound("no profile has this identifier".into()))?;
    Ok(Json(profile_json(&profile)))
}

pub(crate) fn parse_profile_id(id: &str) -> AppResult<ProfileId> {
    id.parse()
        .map_err(|_| AppError::NotFound(format!("no profile `{id}`")))
}

pub(crate) fn load_profile(state: &AppState, id: &str) -> AppResult<Profile> {
    let pid = parse_profile_id(id)?;
    state
        .store
        .profile(pid)?
        .ok_or_else(|| AppError::NotFound(format!("no profile `{id}` (it may have been erased)")))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    Ok(Json(profile_json(&load_profile(&state, &id)?)))
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
) -> AppResult<Json<Value>> {
    let profile = load_profile(&state, &id)?;
    let before = query_param(
        q.before,
        |b| b.parse::<EventId>().ok(),
        |b| format!("before `{b}` is not an event id"),
    )?;
    let limit = page_limit(q.limit, 50, 500);
    let ids = state.store.profile_events(profile.id, limit, before)?;
    let mut events = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(event) = state.store.event_summary(*id, Bounds::LIST)? {
            events.push(summary_json(&event));
        }
    }
    let next = if ids.len() == limit {
        ids.last().copied()
    } else {
        None
    };
    Ok(Json(json!({"events": events, "next": next})))
}

/// A page of history, newest first (default 50 lines, at most 500), with
/// runs of identical refusals folded (`count`, `first_seen`, `last_seen`);
/// `next` is the `before=` of the older page.
async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> AppResult<Json<Value>> {
    let pid = parse_profile_id(&id)?;
    let before = query_param(
        q.before,
        |b| b.parse::<uuid::Uuid>().ok(),
        |b| format!("before `{b}` is not a history line id"),
    )?;
    let limit = page_limit(q.limit, 50, 500);
    let store = state.store.clone();
    let page = tokio::task::spawn_blocking(move || store.profile_history_page(pid, limit, before))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    if page.history.is_empty() && before.is_none() {
        return Err(AppError::NotFound(format!("no profile `{id}`")));
    }
    Ok(Json(json!(page)))
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
) -> AppResult<Json<Value>> {
    let body: MergeBody = super::sources::parse_body(&body)?;
    let from = load_profile(&state, &id)?;
    let into = load_profile(&state, &body.into)?;
    match state.store.merge_profiles(from.id, into.id)? {
        Ok(profile) => Ok(Json(profile_json(&profile))),
        Err(reason) => Err(AppError::Conflict(reason)),
    }
}

/// Erases a profile and every copy of its personal data, answering what
/// was removed where (`ErasureReport`). It first waits for the processor to
/// commit what was received before (so nothing received earlier joins the
/// profile afterwards); a processor that does not catch up in time answers
/// 503 `processor_behind`, and the erasure can be sent again.
async fn erase(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<ErasureReport>> {
    let pid = parse_profile_id(&id)?;
    let (store, processor) = (state.store.clone(), state.processor.clone());
    let started = std::time::Instant::now();
    let erased = tokio::task::spawn_blocking(move || -> crate::store::StoreResult<_> {
        if !store.wait_processed(crate::store::ERASURE_CATCH_UP)? {
            return Ok(Err(()));
        }
        Ok(Ok(store.erase_everywhere(pid, |needles| {
            processor.redact_schemas(needles)
        })?))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    match erased {
        Err(()) => Err(AppError::Unavailable {
            code: "processor_behind",
            message: "the processor has not caught up with the events received before this erasure; send it again in a moment".into(),
        }),
        Ok(Some(report)) => {
            tracing::info!(
                profile = %pid,
                events = report.linked_events + report.other_events,
                errors = report.error_entries,
                ms = started.elapsed().as_millis() as u64,
                "profile erased"
            );
            Ok(Json(report))
        }
        Ok(None) => Err(AppError::NotFound(format!("no profile `{id}`"))),
    }
}
