//! `/profiles`: find a profile by email, external id or visitor id, and one
//! profile's page: identities, traits, events across sources and the history
//! of creates, attaches, merges and refusals.

use super::display::{clipped, event_row, options, short_id, source_names, time};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::identity::{AuditChange, AuditEntry, AuditKind, IdentKey, IdentKind, Profile};
use crate::domain::ids::{ProfileId, SourceId};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::profiles::{Page, SearchKind};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Events shown on a profile page.
const EVENTS: usize = 50;

/// What the search box looks for.
const KINDS: [(&str, &str); 4] = [
    ("any", "Any identifier"),
    ("email", "Email"),
    ("external_id", "External id"),
    ("visitor_id", "Visitor id"),
];

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
}

/// What a search box's `kind` asks for.
fn search_kind(kind: &str) -> SearchKind {
    match kind {
        "email" => SearchKind::Ident(IdentKind::Email),
        "external_id" => SearchKind::Ident(IdentKind::ExternalId),
        "visitor_id" => SearchKind::Ident(IdentKind::VisitorId),
        _ => SearchKind::Any,
    }
}

/// The search form; a hit redirects to the profile, a miss says so.
pub async fn search(
    State(state): State<AppState>,
    session: Authed,
    Query(search): Query<SearchQuery>,
) -> PageResult {
    let q = search.q.trim();
    let mut searched = false;
    if !q.is_empty() {
        searched = true;
        let found = state
            .services
            .search_profile(q, search_kind(&search.kind))
            .await?;
        if let Some(id) = found {
            return Ok(Redirect::to(&format!("/profiles/{id}")).into_response());
        }
    }
    let data = json!({
        "title": "Profiles", "nav": "profiles", "csrf": session.csrf,
        "q": search.q,
        "kinds": options(KINDS.iter().map(|(v, l)| (v.to_string(), l.to_string())), &search.kind),
        "searched": searched,
    });
    page(StatusCode::OK, "profiles", &data)
}

/// One profile; an absorbed id shows its survivor with a note.
/// History lines per page of the profile page.
const HISTORY: usize = 50;

#[derive(Deserialize)]
pub struct ShowQuery {
    /// The history page to show: lines older than this one.
    #[serde(default)]
    history_before: String,
}

pub async fn show(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let pid: ProfileId = id
        .parse()
        .map_err(|_| AppError::not_found(format!("no profile `{id}`")))?;
    let history_page = Page {
        limit: HISTORY,
        before: q.history_before.parse::<uuid::Uuid>().ok(),
    };
    let found = state
        .services
        .profile_page(pid, EVENTS, history_page)
        .await?;
    let (profile, lines) = (found.profile, found.history);
    let names = source_names(&state).await?;
    let events: Vec<Value> = found
        .events
        .events
        .iter()
        .map(|event| event_row(event, &names))
        .collect();
    let history: Vec<Value> = lines
        .history
        .iter()
        .map(|line| {
            let mut row = history_row(&line.entry, &names);
            if line.count > 1 {
                row["count"] = json!(line.count);
                row["first_time"] = json!(time(&line.first_seen));
            }
            row
        })
        .collect();
    let more_history = lines
        .next
        .map(|next| format!("/profiles/{}?history_before={next}", profile.id));
    let merged_into = (profile.id.to_string() != id).then(|| id.clone());
    let data = json!({
        "title": "Profile", "nav": "profiles", "csrf": session.csrf,
        "p": profile_view(&profile),
        "merged_into": merged_into,
        "events": events,
        "more_events": found.events.next.is_some(),
        "history": history,
        "more_history": more_history,
    });
    page(StatusCode::OK, "profile", &data)
}

fn profile_view(profile: &Profile) -> Value {
    let list = |values: &[String]| values.iter().map(|v| clipped(v)).collect::<Vec<_>>();
    let traits: Vec<Value> = profile
        .traits
        .iter()
        .map(|(name, t)| {
            let value = match &t.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({
                "name": name,
                "value": clipped(&value),
                "time": time(&t.at),
                "at": t.at,
                "event": short_id(&t.event_id.to_string()),
            })
        })
        .collect();
    json!({
        "id": profile.id.to_string(),
        "external_ids": list(&profile.external_ids),
        "emails": list(&profile.emails),
        "visitor_ids": list(&profile.visitor_ids),
        "traits": traits,
        "first_seen": time(&profile.first_seen),
        "last_seen": time(&profile.last_seen),
        "event_count": profile.event_count,
        "merged_from": profile.merged_from.iter().map(|id| short_id(&id.to_string())).collect::<Vec<_>>(),
        "created": time(&profile.created_at),
    })
}

/// `email ada@example.com, external id c-88`.
fn keys_text(keys: &[IdentKey]) -> String {
    keys.iter()
        .map(|k| format!("{} {}", k.kind().as_str().replace('_', " "), k.value()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A history line's text and the profiles it links to.
fn history_text(change: &AuditChange) -> (String, Vec<Value>) {
    let profiles = |ids: &[ProfileId]| -> Vec<Value> {
        ids.iter().map(|id| short_id(&id.to_string())).collect()
    };
    match change {
        AuditChange::Create(d) => (
            format!("Created from {}", or_nothing(keys_text(&d.identifiers))),
            Vec::new(),
        ),
        AuditChange::Attach(d) => (
            format!("Added {}", or_nothing(keys_text(&d.added))),
            Vec::new(),
        ),
        AuditChange::Merge(d) => {
            let absorbed = profiles(&d.absorbed);
            let added = keys_text(&d.added);
            let mut text = format!("Merged {} other profile(s) into this one", absorbed.len());
            if !added.is_empty() {
                text.push_str(&format!(" and added {added}"));
            }
            (text, absorbed)
        }
        AuditChange::ManualMerge(d) => (
            "Merged 1 profile(s) in by hand".to_string(),
            profiles(&[d.from]),
        ),
        AuditChange::Refusal(d) => {
            let refusals: Vec<String> = d
                .refusals
                .iter()
                .map(|r| {
                    format!(
                        "{} `{}` ({})",
                        r.kind.as_str().replace('_', " "),
                        r.value,
                        r.reason.as_str().replace('_', " "),
                    )
                })
                .collect();
            (format!("Refused {}", refusals.join("; ")), Vec::new())
        }
        AuditChange::Erasure(d) => (
            format!(
                "Erased ({} identifiers, {} events)",
                d.identifiers, d.events
            ),
            Vec::new(),
        ),
        // What an erasure left: the kind's sentence with nothing in it, as
        // the untyped rendering showed it.
        AuditChange::Redacted(kind) => (
            match kind {
                AuditKind::Create => format!("Created from {}", or_nothing(String::new())),
                AuditKind::Attach => format!("Added {}", or_nothing(String::new())),
                AuditKind::Merge => "Merged 0 other profile(s) into this one".to_string(),
                AuditKind::ManualMerge => "Merged 1 profile(s) in by hand".to_string(),
                AuditKind::Refusal => "Refused ".to_string(),
                AuditKind::Erasure => "Erased (0 identifiers, 0 events)".to_string(),
            },
            Vec::new(),
        ),
        AuditChange::Unknown { detail, .. } => (detail.to_string(), Vec::new()),
    }
}

/// One audit line as a sentence, with links to the profiles it names.
fn history_row(entry: &AuditEntry, names: &HashMap<SourceId, String>) -> Value {
    let (text, links) = history_text(&entry.change);
    let source = entry.change.source_id().map(|id| {
        json!({
            "id": id.to_string(),
            "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into()),
        })
    });
    let badge = match AuditKind::parse(entry.kind()) {
        Some(AuditKind::Refusal | AuditKind::Erasure) => "failed",
        Some(AuditKind::Merge | AuditKind::ManualMerge) => "pending",
        _ => "resolved",
    };
    json!({
        "kind": entry.kind().replace('_', " "),
        "badge": badge,
        "time": time(&entry.at),
        "at": entry.at,
        "text": clipped(&text),
        "profiles": links,
        "source": source,
        "event": entry.event_id.map(|id| short_id(&id.to_string())),
    })
}

fn or_nothing(s: String) -> String {
    if s.is_empty() {
        "no identifiers".into()
    } else {
        s
    }
}
