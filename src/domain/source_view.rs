//! A source as the API and the dashboard show it: what it is, what it
//! requires, and its counts. Never its token or api-key value (both are
//! stored as hashes; a token appears once, in [`WithToken`]).
//!
//! It replaced `views::source_json`, which built the same shape by hand.

use crate::domain::counters::{CountsView, OldTokenUse};
use crate::domain::ids::SourceId;
use crate::domain::signature::VerifyView;
use crate::domain::source::{RateLimit, Source};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// `{"id", "name", "api_key": {"header"} | null, "records_path",
/// "created_at", "updated_at", "mapping_version", "blocked_values", "counts",
/// "verify"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceView {
    pub id: SourceId,
    pub name: String,
    pub api_key: Option<ApiKeyView>,
    pub records_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub mapping_version: Option<u32>,
    pub blocked_values: Vec<String>,
    pub counts: CountsView,
    /// Signature verification, if set: the scheme and when each secret
    /// was set, never a secret.
    pub verify: Option<VerifyView>,
    /// The start of the current webhook URL (`/hooks/abcd…`), to tell it
    /// apart from the old one; `None` for a source made before hints.
    pub url_hint: Option<String>,
    /// The URL the last rotation with a grace replaced; `None` if none.
    pub previous_url: Option<PreviousUrlView>,
    pub rate_limit: Option<RateLimit>,
}

/// The rotated-out URL: masked, when it stops, and who still uses it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviousUrlView {
    /// `/hooks/abcd…`: never the token.
    pub url_hint: String,
    pub rotated_at: DateTime<Utc>,
    /// From this instant it answers 404.
    pub stops_at: DateTime<Utc>,
    /// Still accepted now.
    pub active: bool,
    /// Requests on it since the rotation, and the last one.
    pub requests: u64,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn masked_path(hint: Option<&str>) -> String {
    format!("/hooks/{}…", hint.unwrap_or(""))
}

/// Which header must carry the api key; the value is never shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiKeyView {
    pub header: String,
}

impl SourceView {
    pub fn of(source: &Source, counts: CountsView) -> Self {
        Self {
            id: source.id,
            name: source.name.clone(),
            api_key: source.api_key.as_ref().map(|k| ApiKeyView {
                header: k.header.clone(),
            }),
            records_path: source.records_path.clone(),
            created_at: source.created_at,
            updated_at: source.updated_at,
            mapping_version: source.mapping_version,
            blocked_values: source.blocked_values.clone(),
            counts,
            verify: source.verify.as_ref().map(VerifyView::of),
            url_hint: source.token_hint.as_deref().map(|h| masked_path(Some(h))),
            previous_url: source.previous_token.as_ref().map(|old| PreviousUrlView {
                url_hint: masked_path(old.hint.as_deref()),
                rotated_at: old.rotated_at,
                stops_at: old.until,
                active: old.accepts_at(Utc::now()),
                requests: counts.old_token_requests,
                last_used_at: None,
            }),
            rate_limit: source.rate_limit,
        }
    }

    /// Adds when the old URL was last used (the counts have only how often).
    pub fn with_old_token(mut self, used: OldTokenUse) -> Self {
        if let Some(previous) = &mut self.previous_url {
            previous.last_used_at = used.last_used_at;
        }
        self
    }
}

/// A source right after its token was made (create or rotate): the view
/// plus the clear-text token and the hook path, shown this once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WithToken {
    #[serde(flatten)]
    pub source: SourceView,
    pub token: String,
    /// `/hooks/{token}`.
    pub webhook_path: String,
}

impl WithToken {
    pub fn new(source: SourceView, token: String) -> Self {
        let webhook_path = format!("/hooks/{token}");
        Self {
            source,
            token,
            webhook_path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::source::ApiKeyInput;
    use serde_json::json;

    /// The shape `views::source_json` had, field for field.
    #[test]
    fn the_view_keeps_the_api_shape() {
        let (mut source, token) = Source::create(
            "Shop",
            Some(ApiKeyInput {
                header: "x-api-key".into(),
                value: "secret-value".into(),
            }),
            Some("data.items".into()),
        )
        .expect("valid source");
        source.set_blocked_values(vec!["nobody".into()]);
        let counts = CountsView::default();
        let out = serde_json::to_value(WithToken::new(
            SourceView::of(&source, counts),
            token.clone(),
        ))
        .expect("serialisable");
        let expected = json!({
            "id": source.id,
            "name": "Shop",
            "api_key": {"header": "x-api-key"},
            "records_path": "data.items",
            "created_at": source.created_at,
            "updated_at": source.updated_at,
            "mapping_version": null,
            "blocked_values": ["nobody"],
            "counts": counts,
            "verify": null,
            "url_hint": format!("/hooks/{}…", &token[..4]),
            "previous_url": null,
            "rate_limit": null,
            "token": token,
            "webhook_path": format!("/hooks/{token}"),
        });
        assert_eq!(out, expected);
    }
}
