//! `/profiles`: find a profile by email, external id or visitor id, and one
//! profile's page: identities, traits, events across sources and the history
//! of creates, attaches, merges and refusals.

use super::display::{clipped, event_row, options, short_id, source_names, time};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::identity::{AuditEntry, IdentKey, Profile};
use crate::domain::ids::SourceId;
use crate::domain::summary::Bounds;
use crate::http::api::profiles::{load_profile, lookup_key};
use crate::http::AppState;
use crate::store::StateStore;
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

/// The identifier keys a search tries, in order.
fn search_keys(q: &str, kind: &str) -> Vec<IdentKey> {
    let q = Some(q);
    let keys = match kind {
        "email" => vec![lookup_key(q, None, None)],
        "external_id" => vec![lookup_key(None, q, None)],
        "visitor_id" => vec![lookup_key(None, None, q)],
        _ => vec![
            lookup_key(None, q, None),
            lookup_key(q, None, None),
            lookup_key(None, None, q),
        ],
    };
    keys.into_iter().flatten().collect()
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
        for key in search_keys(q, &search.kind) {
            if let Some(profile) = state.store.profile_by(&key)? {
                return Ok(Redirect::to(&format!("/profiles/{}", profile.id)).into_response());
            }
        }
        // A profile id pasted into the box.
        if let Ok(profile) = load_profile(&state, q) {
            return Ok(Redirect::to(&format!("/profiles/{}", profile.id)).into_response());
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
    let profile = load_profile(&state, &id)?;
    let names = source_names(&state)?;
    let event_ids = state.store.profile_events(profile.id, EVENTS, None)?;
    let mut events = Vec::with_capacity(event_ids.len());
    for event_id in &event_ids {
        if let Some(event) = state.store.event_summary(*event_id, Bounds::LIST)? {
            events.push(event_row(&event, &names));
        }
    }
    let before = q.history_before.parse::<uuid::Uuid>().ok();
    let lines = state
        .store
        .profile_history_page(profile.id, HISTORY, before)?;
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
        "more_events": event_ids.len() == EVENTS,
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
fn keys_text(value: &Value) -> String {
    let keys: Vec<IdentKey> = serde_json::from_value(value.clone()).unwrap_or_default();
    keys.iter()
        .map(|k| format!("{} {}", k.kind().as_str().replace('_', " "), k.value()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One audit line as a sentence, with links to the profiles it names.
fn history_row(entry: &AuditEntry, names: &HashMap<SourceId, String>) -> Value {
    let d = &entry.detail;
    let profiles = |v: &Value| -> Vec<Value> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(short_id)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (text, links) = match entry.kind.as_str() {
        "create" => (
            format!("Created from {}", or_nothing(keys_text(&d["identifiers"]))),
            Vec::new(),
        ),
        "attach" => (
            format!("Added {}", or_nothing(keys_text(&d["added"]))),
            Vec::new(),
        ),
        "merge" => {
            let absorbed = profiles(&d["absorbed"]);
            let added = keys_text(&d["added"]);
            let mut text = format!("Merged {} other profile(s) into this one", absorbed.len());
            if !added.is_empty() {
                text.push_str(&format!(" and added {added}"));
            }
            (text, absorbed)
        }
        "manual_merge" => {
            let from = profiles(&d["from"]);
            let text = format!("Merged {} profile(s) in by hand", from.len().max(1));
            (text, from)
        }
        "refusal" => {
            let refusals: Vec<String> = d["refusals"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            format!(
                                "{} `{}` ({})",
                                r["kind"].as_str().unwrap_or("?").replace('_', " "),
                                r["value"].as_str().unwrap_or(""),
                                r["reason"].as_str().unwrap_or("?").replace('_', " "),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (format!("Refused {}", refusals.join("; ")), Vec::new())
        }
        "erasure" => (
            format!(
                "Erased ({} identifiers, {} events)",
                d["identifiers"].as_u64().unwrap_or(0),
                d["events"].as_u64().unwrap_or(0)
            ),
            Vec::new(),
        ),
        _ => (d.to_string(), Vec::new()),
    };
    let source = d["source_id"]
        .as_str()
        .and_then(|s| s.parse::<SourceId>().ok())
        .map(|id| {
            json!({
                "id": id.to_string(),
                "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into()),
            })
        });
    json!({
        "kind": entry.kind.replace('_', " "),
        "badge": match entry.kind.as_str() {
            "refusal" | "erasure" => "failed",
            "merge" | "manual_merge" => "pending",
            _ => "resolved",
        },
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
