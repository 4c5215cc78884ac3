//! Turning stored things into what a template shows: shortened ids, times,
//! clipped untrusted strings. Templates only place values; every decision
//! about how to show one lives here, where it can be tested.

use crate::domain::ids::SourceId;
use crate::domain::views::EventView;
use crate::http::AppState;
use crate::service::ServiceResult;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Strings longer than this are cut in tables, with the whole value one
/// click away in a `<details>`.
pub const CLIP_CHARS: usize = 200;

/// An id as `{short, full}`: the short form fits a table column; the full one
/// goes in a `title` attribute. UUID v7 ids share their leading (time)
/// digits, so the *tail* is what tells two of them apart.
pub fn short_id(id: &str) -> Value {
    let tail: String = id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    json!({"short": format!("…{tail}"), "full": id})
}

/// A timestamp as shown: UTC, to the second.
pub fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An untrusted string as `{text, full, clipped}`.
pub fn clipped(value: &str) -> Value {
    let clipped = value.chars().count() > CLIP_CHARS;
    let text: String = if clipped {
        value.chars().take(CLIP_CHARS).chain(['…']).collect()
    } else {
        value.to_string()
    };
    json!({"text": text, "full": value, "clipped": clipped})
}

/// JSON for a `<pre>`; handlebars escapes it when placed.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Source names by id, read once per page.
pub async fn source_names(state: &AppState) -> ServiceResult<HashMap<SourceId, String>> {
    state.services.source_names().await
}

/// The source a row belongs to; a deleted source keeps its events.
fn source_name(names: &HashMap<SourceId, String>, id: SourceId) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| "(deleted source)".to_string())
}

/// One event as a list row: what the table shows of its view.
pub fn event_row(event: &EventView, names: &HashMap<SourceId, String>) -> Value {
    let who = event.mapped.who();
    let name = event.mapped.name.as_deref().map(clipped);
    json!({
        "id": short_id(&event.id.to_string()),
        "time": time(&event.received_at),
        "at": event.received_at,
        "source": source_name(names, event.source_id),
        "status": event.status,
        "name": name,
        "who": who.map(|(kind, v)| json!({"kind": kind.replace('_', " "), "value": clipped(v)})),
        "profile_id": event.profile_id.map(|id| short_id(&id.to_string())),
        // Resolved, but an identifier was refused: an amber badge and why.
        "identity_refused": event.identity_was_refused().then(|| event.identity_refused.join("; ")),
        "via_profile_id": event.via_profile_id.map(|id| short_id(&id.to_string())),
        // The mapped event's own timestamp; blank until it is mapped.
        "event_time": event.mapped.timestamp.as_ref().map(time),
        "event_at": event.mapped.timestamp,
    })
}

/// A query string from the non-empty pairs, for paging and filter links.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The source filter's options, by name.
pub fn source_options(names: &HashMap<SourceId, String>, selected: &str) -> Vec<Value> {
    let mut sorted: Vec<(String, String)> = names
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    sorted.sort_by_key(|(_, name)| name.to_lowercase());
    options(sorted, selected)
}

/// `{value, label, selected}` options for a `<select>`.
pub fn options<'a>(
    items: impl IntoIterator<Item = (String, String)> + 'a,
    selected: &str,
) -> Vec<Value> {
    items
        .into_iter()
        .map(
            |(value, label)| json!({"selected": value == selected, "value": value, "label": label}),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_clipped_with_the_whole_kept() {
        let long = "x".repeat(500);
        let v = clipped(&long);
        assert_eq!(v["clipped"], true);
        assert_eq!(v["text"].as_str().unwrap().chars().count(), CLIP_CHARS + 1);
        assert_eq!(v["full"].as_str().unwrap().len(), 500);
        assert_eq!(clipped("short")["clipped"], false);
    }

    #[test]
    fn ids_keep_their_distinguishing_tail() {
        let v = short_id("0190f2a4-0000-7000-8000-00000000abcd");
        assert_eq!(v["short"], "…0000abcd");
    }

    #[test]
    fn queries_skip_empty_values_and_encode() {
        assert_eq!(query(&[("q", "a b&c"), ("status", "")]), "q=a+b%26c");
    }
}
