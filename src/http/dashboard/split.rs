//! Undoing a wrong merge from the dashboard: the "Split" link beside a
//! `merge` line of a profile's history opens a confirmation (what will
//! happen, a reason, the CSRF token), whose POST splits and shows the
//! profiles after it. `/identity/never-merge` lists the pairs splits keep
//! apart, each with a remove button.

use super::csrf;
use super::display::{short_id, time};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::identity::{IdentKey, NeverMergeRule, SplitLine};
use crate::domain::ids::ProfileId;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::split::{SplitInput, SplitPreview, SplitReport};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

/// `email ada@example.com`.
fn key_text(key: &IdentKey) -> String {
    format!("{} {}", key.kind().as_str().replace('_', " "), key.value())
}

fn pair_text(a: &IdentKey, b: &IdentKey) -> String {
    format!("{} / {}", key_text(a), key_text(b))
}

/// A `split` history line as a sentence, and the other profiles it left.
pub fn history_text(line: &SplitLine, this: ProfileId) -> (String, Vec<Value>) {
    let pairs: Vec<String> = line.pairs.iter().map(|p| pair_text(&p.a, &p.b)).collect();
    let mut text = format!(
        "Split a merge apart (by {}); kept apart from now on: {}",
        line.by,
        pairs.join("; ")
    );
    if !line.reason.is_empty() {
        text.push_str(&format!(". Reason: {}", line.reason));
    }
    let others = line
        .profiles
        .iter()
        .filter(|id| **id != this)
        .map(|id| short_id(&id.to_string()))
        .collect();
    (text, others)
}

fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, AppError> {
    text.trim()
        .parse()
        .map_err(|_| AppError::bad_request(format!("`{text}` is not a {what} id")))
}

/// `?merge=`: the merge line to split.
#[derive(Deserialize)]
pub struct SplitQuery {
    #[serde(default)]
    merge: String,
}

fn preview_view(p: &SplitPreview) -> Value {
    json!({
        "profile_id": p.profile_id.to_string(),
        "merge_id": p.merge_id.to_string(),
        "time": time(&p.at),
        "event": p.event_id.map(|id| short_id(&id.to_string())),
        "survivor": short_id(&p.survivor.to_string()),
        "absorbed": p.absorbed.iter().map(|id| short_id(&id.to_string())).collect::<Vec<_>>(),
        "pairs": p.pairs.iter().map(|(a, b)| pair_text(a, b)).collect::<Vec<_>>(),
        "event_count": p.event_count,
    })
}

/// The confirmation: what the split will do, a reason, and the button.
pub async fn confirm(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(q): Query<SplitQuery>,
) -> PageResult {
    let profile: ProfileId = parse_id(&id, "profile")?;
    let merge = parse_id(&q.merge, "merge")?;
    let preview = state.services.split_preview(profile, merge).await?;
    let data = json!({
        "title": "Split a merge", "nav": "profiles", "csrf": session.csrf,
        "s": preview_view(&preview),
    });
    page(StatusCode::OK, "profile_split", &data)
}

#[derive(Deserialize)]
pub struct SplitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    merge: String,
    #[serde(default)]
    reason: String,
}

fn report_view(report: &SplitReport) -> Value {
    let profiles: Vec<Value> = report
        .profiles
        .iter()
        .map(|p| {
            json!({
                "id": p.id.to_string(),
                "identifiers": p.identifiers.iter().map(key_text).collect::<Vec<_>>(),
                "event_count": p.event_count,
            })
        })
        .collect();
    json!({
        "merge_id": report.merge_id.to_string(),
        "profiles": profiles,
        "rules": report.never_merge.iter().map(|r| pair_text(&r.a, &r.b)).collect::<Vec<_>>(),
    })
}

/// Splits, then shows the profiles after it.
pub async fn split(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<SplitForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let input = SplitInput {
        profile_id: parse_id(&id, "profile")?,
        merge_id: parse_id(&form.merge, "merge")?,
        by: "dashboard".into(),
        reason: form.reason,
    };
    let report = state.services.split_profile(input).await?;
    let data = json!({
        "title": "Merge split", "nav": "profiles", "csrf": session.csrf,
        "r": report_view(&report),
    });
    page(StatusCode::OK, "profile_split_done", &data)
}

fn rule_view(rule: &NeverMergeRule) -> Value {
    json!({
        "id": rule.id.to_string(),
        "pair": pair_text(&rule.a, &rule.b),
        "time": time(&rule.created_at),
        "by": rule.by,
        "reason": rule.reason,
        "split_of": rule.split_of.map(|m| short_id(&m.to_string())),
    })
}

/// Every never-merge rule, with a remove button each.
pub async fn rules(State(state): State<AppState>, session: Authed) -> PageResult {
    let rules = state.services.never_merge_rules().await?;
    let data = json!({
        "title": "Never-merge rules", "nav": "profiles", "csrf": session.csrf,
        "rules": rules.iter().map(rule_view).collect::<Vec<_>>(),
    });
    page(StatusCode::OK, "never_merge", &data)
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

/// Removes one rule and goes back to the list.
pub async fn remove(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let id = parse_id(&id, "rule")?;
    state.services.remove_never_merge(id).await?;
    Ok(Redirect::to("/identity/never-merge").into_response())
}
