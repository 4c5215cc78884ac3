//! The mapping section of a source page: the learned schema, the mapping
//! editor (pre-filled with the current mapping or the suggestion), preview,
//! save, version history and replay.
//!
//! Everything here calls the same use cases as the JSON API
//! (`service::mappings`); this file only turns forms into a `MappingSpec`
//! and results into what the template shows.
//!
//! Form syntax, one input per slot plus two textareas:
//! - `properties`: `*` (the whole record); or one path per line (or
//!   comma-separated) to keep those fields; or `name = {{template}}` lines.
//! - `traits`: `name = {{template}}` lines.
//! - `identifiers`: `kind = {{template}}` lines, one per team kind.

use super::csrf;
use super::display::{clipped, pretty, short_id, time};
use super::render::{PageError, PageResult};
use super::session::Authed;
use super::sources::{failed, load, page_source_id, source_page, SourcePage};
use crate::domain::model::{MappingSpec, PropertiesSpec};
use crate::domain::preview::{Clipped, PreviewResult};
use crate::domain::replay::ReplayJob;
use crate::domain::schema_view::SchemaView;
use crate::domain::sniff::DriftKind;
use crate::domain::source_view::SourceView;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::mappings::{MappingInput, PastedBody, PreviewInput, ReplayProgress};
use crate::service::ServiceError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The single-template slots, in the order the editor shows them.
pub const SLOTS: [(&str, &str, &str); 7] = [
    (
        "event_name",
        "Event name",
        "required: a static name like Order placed, or {{type}}",
    ),
    (
        "visitor_id",
        "Visitor id",
        "anonymous id, e.g. {{anonymous_id}}",
    ),
    ("email", "Email", "e.g. {{customer.email}}"),
    (
        "external_id",
        "External id",
        "your user id, e.g. {{user_id}}",
    ),
    (
        "event_id",
        "Event id",
        "unique per event; used to drop redeliveries",
    ),
    (
        "timestamp",
        "Timestamp",
        "when it happened; defaults to arrival time",
    ),
    (
        "idempotency_key",
        "Idempotency key",
        "optional; defaults to the event id",
    ),
];

/// Examples shown per schema field, and their length.
const EXAMPLES: usize = 3;
const EXAMPLE_CHARS: usize = 60;

/// The editor's fields as typed (or as filled from a mapping).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MappingForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub event_name: String,
    #[serde(default)]
    pub visitor_id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub event_id: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub idempotency_key: String,
    #[serde(default)]
    pub properties: String,
    #[serde(default)]
    pub traits: String,
    /// `kind = {{template}}` lines: the mapping's `identifiers`, so a form
    /// save keeps the team's kinds it maps.
    #[serde(default)]
    pub identifiers: String,
}

impl MappingForm {
    fn slot(&self, name: &str) -> &str {
        match name {
            "event_name" => &self.event_name,
            "visitor_id" => &self.visitor_id,
            "email" => &self.email,
            "external_id" => &self.external_id,
            "event_id" => &self.event_id,
            "timestamp" => &self.timestamp,
            "idempotency_key" => &self.idempotency_key,
            _ => "",
        }
    }

    /// The form showing a saved or suggested mapping.
    pub fn from_spec(spec: &MappingSpec) -> Self {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let properties = match &spec.properties {
            None => String::new(),
            Some(PropertiesSpec::All(all)) => all.clone(),
            Some(PropertiesSpec::Paths(paths)) => paths.join("\n"),
            Some(PropertiesSpec::Templates(named)) => lines(named),
        };
        MappingForm {
            csrf: String::new(),
            event_name: s(&spec.event_name),
            visitor_id: s(&spec.visitor_id),
            email: s(&spec.email),
            external_id: s(&spec.external_id),
            event_id: s(&spec.event_id),
            timestamp: s(&spec.timestamp),
            idempotency_key: s(&spec.idempotency_key),
            properties,
            traits: spec.traits.as_ref().map(lines).unwrap_or_default(),
            identifiers: spec.identifiers.as_ref().map(lines).unwrap_or_default(),
        }
    }

    /// The spec the form describes, or per-field messages for what cannot
    /// be read (template errors are found later, by `compile`).
    pub fn to_spec(&self) -> Result<MappingSpec, BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        let opt = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let properties = match parse_properties(&self.properties) {
            Ok(p) => p,
            Err(e) => {
                errors.insert("properties".to_string(), e);
                None
            }
        };
        let traits = match parse_named(&self.traits) {
            Ok(t) => Some(t).filter(|t| !t.is_empty()),
            Err(e) => {
                errors.insert("traits".to_string(), e);
                None
            }
        };
        let identifiers = match parse_named(&self.identifiers) {
            Ok(named) => Some(named).filter(|named| !named.is_empty()),
            Err(e) => {
                errors.insert("identifiers".to_string(), e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(MappingSpec {
            event_name: opt(&self.event_name),
            visitor_id: opt(&self.visitor_id),
            email: opt(&self.email),
            external_id: opt(&self.external_id),
            event_id: opt(&self.event_id),
            timestamp: opt(&self.timestamp),
            properties,
            traits,
            idempotency_key: opt(&self.idempotency_key),
            identifiers,
        })
    }
}

/// `name = template` lines.
fn lines(named: &BTreeMap<String, String>) -> String {
    named
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `*`, paths (lines or commas), or `name = {{template}}` lines.
fn parse_properties(text: &str) -> Result<Option<PropertiesSpec>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text == "*" {
        return Ok(Some(PropertiesSpec::All("*".into())));
    }
    if text.contains('=') {
        return parse_named(text).map(|t| Some(PropertiesSpec::Templates(t)));
    }
    let paths: Vec<String> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Some(PropertiesSpec::Paths(paths)))
}

/// `name = {{template}}`, one per line; blank lines are skipped.
fn parse_named(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, template)) = line.split_once('=') else {
            return Err(format!(
                "line {}: write `name = {{{{template}}}}` (`{}` has no `=`)",
                n + 1,
                line.chars().take(40).collect::<String>()
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("line {}: the name before `=` is empty", n + 1));
        }
        out.insert(name.to_string(), template.trim().to_string());
    }
    Ok(out)
}

/// What the editor shows, beyond the default (current mapping or suggestion).
#[derive(Default)]
pub struct Editor {
    /// Filled from this form instead of the saved mapping.
    pub form: Option<MappingForm>,
    /// Fill with the suggestion even when a mapping is saved.
    pub suggest: bool,
    /// Fill with this saved version.
    pub from_version: Option<u32>,
    pub errors: BTreeMap<String, String>,
    pub preview: Option<Value>,
    /// Just saved this version.
    pub saved: Option<u32>,
    /// The preview input as last posted (sample picker and pasted payload).
    pub preview_input: PreviewChoice,
}

/// What the preview ran over, to show it again: the event ids ticked, or
/// the pasted text and its type.
#[derive(Clone, Debug, Default)]
pub struct PreviewChoice {
    pub picked: Vec<String>,
    pub pasted: String,
    pub paste_type: String,
}

/// Recent events offered in the preview's sample picker.
const PICKER_SAMPLES: usize = 10;
/// Characters of a record shown beside its checkbox.
const PICKER_SUMMARY_CHARS: usize = 90;

/// The sample picker and paste box of the preview (`picker` in the
/// section's context): the latest events, each ticked if it was picked.
async fn picker(
    state: &AppState,
    source: &SourceView,
    choice: &PreviewChoice,
) -> Result<Value, PageError> {
    let recent = state
        .services
        .samples(source.id, PICKER_SAMPLES)
        .await
        .map_err(failed)?;
    let samples: Vec<Value> = recent
        .samples
        .iter()
        .map(|s| {
            let id = s.event_id.to_string();
            let summary: String = s
                .record
                .to_string()
                .chars()
                .take(PICKER_SUMMARY_CHARS)
                .collect();
            json!({
                "id": id,
                "short": short_id(&id),
                "received": time(&s.received_at),
                "summary": summary,
                "checked": choice.picked.contains(&id),
            })
        })
        .collect();
    Ok(json!({
        "samples": samples,
        "pasted": choice.pasted,
        "open": !choice.picked.is_empty() || !choice.pasted.is_empty(),
        "types": [
            {"value": "", "label": "JSON or CSV (read as text/plain)", "selected": choice.paste_type.is_empty()},
            {"value": "text/csv", "label": "CSV", "selected": choice.paste_type == "text/csv"},
            {"value": "application/json", "label": "JSON", "selected": choice.paste_type == "application/json"},
        ],
    }))
}

/// The `mapping` context of the `mapping_section` partial.
pub async fn section(
    state: &AppState,
    session: &Authed,
    source: &SourceView,
    editor: Editor,
) -> Result<Value, PageError> {
    let services = &state.services;
    let schema = services.schema(source.id).await.map_err(failed)?;
    let samples = schema.as_ref().map_or(0, |s| s.samples);
    let suggestion = services.suggest_mapping(source.id).await.map_err(failed)?;
    let versions = services
        .mapping_versions(source.id)
        .await
        .map_err(failed)?
        .versions;
    let current = source
        .mapping_version
        .and_then(|v| versions.iter().find(|m| m.version == v));
    let picked = editor
        .from_version
        .and_then(|v| versions.iter().find(|m| m.version == v));

    let (form, origin, reasons) = match (&editor.form, picked, current) {
        (Some(form), _, _) => (form.clone(), "typed".to_string(), None),
        (None, Some(v), _) => (
            MappingForm::from_spec(&v.mapping),
            format!("version {}", v.version),
            None,
        ),
        (None, None, Some(v)) if !editor.suggest => (
            MappingForm::from_spec(&v.mapping),
            format!("current (version {})", v.version),
            None,
        ),
        _ => (
            MappingForm::from_spec(&suggestion.mapping),
            "suggestion".to_string(),
            Some(&suggestion.reasons),
        ),
    };
    let mut errors = editor.errors.clone();
    let mut take = |prefix: &str| -> Vec<String> {
        let keys: Vec<String> = errors
            .keys()
            .filter(|k| *k == prefix || k.starts_with(&format!("{prefix}.")))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| errors.remove(&k).map(|m| (k, m)))
            .map(|(k, m)| if k == prefix { m } else { format!("{k}: {m}") })
            .collect()
    };
    let reason = |slot: &str| reasons.and_then(|r| r.get(slot)).cloned();
    let slots: Vec<Value> = SLOTS
        .iter()
        .map(|(name, label, help)| {
            json!({
                "name": name, "label": label, "help": help,
                "value": form.slot(name),
                "reason": reason(name),
                "error": take(name).join("; "),
            })
        })
        .collect();
    let properties = json!({"value": form.properties, "reason": reason("properties"), "error": take("properties").join("; ")});
    let traits = json!({"value": form.traits, "error": take("traits").join("; ")});
    let identity_error = take("identity").join("; ");
    let identifiers = json!({"value": form.identifiers, "error": take("identifiers").join("; ")});
    let other_errors: Vec<String> = errors.iter().map(|(k, m)| format!("{k}: {m}")).collect();

    let saved_notice = match editor.saved {
        Some(version) => {
            let warnings = services.mapping_warnings(source.id).await.map_err(failed)?;
            json!({"version": version, "warnings": warnings})
        }
        None => Value::Null,
    };

    let mut history: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "created": time(&v.created_at),
                "at": v.created_at,
                "preset": v.preset,
                "current": Some(v.version) == source.mapping_version,
                "json": pretty(&json!(v.mapping)),
            })
        })
        .collect();
    history.reverse();

    let progress = services.replay_progress(source.id).await.map_err(failed)?;
    Ok(json!({
        "source_id": source.id.to_string(),
        "mapping_version": source.mapping_version,
        "csrf": session.csrf,
        "schema": schema.as_ref().map(schema_view),
        "samples": samples,
        "origin": origin,
        "is_suggestion": reasons.is_some(),
        "has_mapping": source.mapping_version.is_some(),
        "slots": slots,
        "properties": properties,
        "traits": traits,
        "identifiers": identifiers,
        "identity_error": identity_error,
        "other_errors": other_errors,
        "has_errors": !editor.errors.is_empty(),
        "preview": editor.preview,
        "picker": picker(state, source, &editor.preview_input).await?,
        "saved": saved_notice,
        "versions": history,
        "replay": progress.replay.as_ref().map(replay_view),
        "counts": replay_counts(&progress),
    }))
}

/// The counts a replay works through, for the page and its poll.
fn replay_counts(progress: &ReplayProgress) -> Value {
    json!({
        "failed": progress.counts.failed,
        "unmapped": progress.counts.unmapped,
        "resolved": progress.counts.resolved,
    })
}

/// The schema as table rows.
fn schema_view(view: &SchemaView) -> Value {
    let samples = view.samples;
    let fields: Vec<Value> = view
        .fields
        .iter()
        .map(|f| {
            let types: Vec<String> = f.types.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            let examples: Vec<Value> = f
                .examples
                .iter()
                .take(EXAMPLES)
                .map(|e| {
                    let text = match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    example(&text)
                })
                .collect();
            json!({
                "path": f.path,
                "template": f.template,
                "types": types.join(", "),
                "present": percent(f.seen, samples),
                "formats": f.formats.join(", "),
                "examples": examples,
            })
        })
        .collect();
    let drift: Vec<Value> = view
        .drift
        .iter()
        .rev()
        .map(|d| {
            let kind = match d.kind {
                DriftKind::NewPath => "new path",
                DriftKind::TypeChange => "type change",
            };
            json!({
                "path": d.path,
                "kind": kind,
                "detail": d.detail,
                "at": d.at,
            })
        })
        .collect();
    json!({"samples": samples, "fields": fields, "drift_count": drift.len(), "drift": drift, "truncated": view.truncated})
}

/// An example value cut for a table cell.
fn example(text: &str) -> Value {
    let cut = text.chars().count() > EXAMPLE_CHARS;
    let shown: String = if cut {
        text.chars().take(EXAMPLE_CHARS).chain(['…']).collect()
    } else {
        text.to_string()
    };
    json!({"text": shown, "full": text, "clipped": cut})
}

/// `seen / samples` as a percentage with one decimal.
pub fn percent(seen: u64, samples: u64) -> String {
    if samples == 0 {
        return "—".into();
    }
    format!("{:.1}%", seen as f64 * 100.0 / samples as f64)
}

/// A replay job as the page and `replay.json` show it.
pub fn replay_view(job: &ReplayJob) -> Value {
    let finished = job.finished_at.is_some();
    let what = job.status.as_str();
    // " (received since …, through version 2)"
    let mut bounds = Vec::new();
    if let Some(since) = &job.since {
        bounds.push(format!("received since {} UTC", time(since)));
    }
    if let Some(version) = job.version {
        bounds.push(format!("through version {version}"));
    }
    let detail = if bounds.is_empty() {
        String::new()
    } else {
        format!(" ({})", bounds.join(", "))
    };
    let text = if finished {
        format!(
            "Replay of {what} events finished: {} of {} re-run{detail}.",
            job.done, job.total
        )
    } else {
        format!(
            "Replaying {what} events: {} of {} done{detail}…",
            job.done, job.total
        )
    };
    json!({
        "status": job.status.as_str(),
        "done": job.done,
        "total": job.total,
        "finished": finished,
        "started": time(&job.started_at),
        "finished_at": job.finished_at.as_ref().map(time),
        "text": text,
    })
}

/// A clipped part as JSON: the object, or its size marker (a string).
fn part_json(part: &Clipped) -> Value {
    match part {
        Clipped::Whole(map) => Value::Object(map.clone()),
        Clipped::Marker(marker) => Value::String(marker.clone()),
    }
}

/// The preview answer as the page shows it.
fn preview_view(preview: &PreviewResult) -> Value {
    let results: Vec<Value> = preview
        .results
        .iter()
        .map(|r| {
            let mapped = r.event.as_ref().map(|event| {
                let field = |v: &Option<String>| v.as_deref().map(clipped);
                json!({
                    "name": clipped(&event.name),
                    "email": field(&event.email),
                    "external_id": field(&event.external_id),
                    "visitor_id": field(&event.visitor_id),
                    "event_id": field(&event.event_id),
                    "timestamp": format!("{} UTC", time(&event.timestamp)),
                    "properties": pretty(&part_json(&event.properties)),
                    // A traits marker (clipped) is not shown, as an empty object is not.
                    "traits": event.traits.whole().filter(|t| !t.is_empty()).map(|t| pretty(&Value::Object(t.clone()))),
                })
            });
            let resolution = r.resolution.as_ref().map_or("", |x| x.resolution.as_str());
            json!({
                "event": short_id(&r.record.id.to_string()),
                "received": time(&r.record.received_at),
                "mapped": mapped,
                "error": r.error,
                "resolution": resolution,
                "refused": resolution.starts_with("refused"),
                "profile": r.resolution.as_ref().and_then(|x| x.profile_id).map(|p| short_id(&p.to_string())),
                "warnings": r.warnings,
            })
        })
        .collect();
    json!({"results": results, "warnings": preview.warnings})
}

/// The fields of an invalid mapping, or the failure as a page error.
fn invalid_fields(e: ServiceError) -> Result<BTreeMap<String, String>, PageError> {
    match e {
        ServiceError::Invalid { fields, .. } => Ok(fields),
        ServiceError::BadRequest(message) => Ok(BTreeMap::from([("mapping".to_string(), message)])),
        other => Err(failed(other)),
    }
}

async fn with_editor(
    state: &AppState,
    session: &Authed,
    source: &SourceView,
    status: StatusCode,
    editor: Editor,
) -> PageResult {
    source_page(
        state,
        session,
        source,
        SourcePage {
            status,
            editor,
            ..SourcePage::default()
        },
    )
    .await
}

/// The common start of preview and save: the CSRF check, the source, and the
/// typed form as a mapping — or, when the form does not parse, the page again
/// with its errors (the inner `Err`).
async fn read_form(
    state: &AppState,
    session: &Authed,
    id: &str,
    form: MappingForm,
) -> Result<Result<(SourceView, Editor, MappingSpec), Response>, PageError> {
    csrf::check(session, &form.csrf)?;
    let source = load(state, page_source_id(id)?).await?;
    let mut editor = Editor {
        form: Some(form.clone()),
        ..Editor::default()
    };
    match form.to_spec() {
        Ok(spec) => Ok(Ok((source, editor, spec))),
        Err(errors) => {
            editor.errors = errors;
            with_editor(state, session, &source, StatusCode::BAD_REQUEST, editor)
                .await
                .map(Err)
        }
    }
}

/// The preview's form: the editor's fields, plus what to run it over
/// (checkboxes named `sample:<event id>`, or a pasted payload).
#[derive(Deserialize)]
pub struct PreviewForm {
    #[serde(flatten)]
    mapping: MappingForm,
    #[serde(default)]
    paste: String,
    #[serde(default)]
    paste_type: String,
    /// Every other field: the ticked `sample:<id>` boxes among them.
    #[serde(flatten)]
    other: BTreeMap<String, String>,
}

impl PreviewForm {
    fn choice(&self) -> PreviewChoice {
        PreviewChoice {
            picked: self
                .other
                .keys()
                .filter_map(|k| k.strip_prefix("sample:"))
                .map(str::to_string)
                .collect(),
            pasted: self.paste.clone(),
            paste_type: self.paste_type.clone(),
        }
    }
}

impl PreviewChoice {
    /// What the service runs over: the pasted text if any, else the
    /// picked events (none picked: the latest ones).
    fn input(&self, spec: MappingSpec) -> PreviewInput {
        let pasted = (!self.pasted.trim().is_empty()).then(|| PastedBody {
            content_type: Some(self.paste_type.clone()).filter(|t| !t.is_empty()),
            text: self.pasted.clone(),
        });
        PreviewInput {
            mapping: Some(MappingInput::Spec(Box::new(spec))),
            payload: None,
            samples: if pasted.is_some() {
                Vec::new()
            } else {
                self.picked.clone()
            },
            pasted,
        }
    }
}

/// `POST /sources/{id}/mapping/preview`: the page again, with what the typed
/// mapping makes of the chosen samples, the pasted payload or the latest
/// samples. Stores nothing.
pub async fn preview(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<PreviewForm>,
) -> PageResult {
    let choice = form.choice();
    let (source, mut editor, spec) = match read_form(&state, &session, &id, form.mapping).await? {
        Ok(parts) => parts,
        Err(page) => return Ok(page),
    };
    let input = choice.input(spec);
    editor.preview_input = choice;
    match state.services.preview_mapping(source.id, input).await {
        Ok(result) => {
            editor.preview = Some(preview_view(&result));
            with_editor(&state, &session, &source, StatusCode::OK, editor).await
        }
        // A picked event gone since the page was drawn (retention): say so by the picker.
        Err(ServiceError::NotFound(message)) => {
            editor.errors = BTreeMap::from([("samples".to_string(), message)]);
            with_editor(&state, &session, &source, StatusCode::NOT_FOUND, editor).await
        }
        Err(e) => {
            editor.errors = invalid_fields(e)?;
            with_editor(&state, &session, &source, StatusCode::BAD_REQUEST, editor).await
        }
    }
}

/// `POST /sources/{id}/mapping`: saves a new version, then back to the page
/// (which shows the success and the unseen-path warnings).
pub async fn save(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<MappingForm>,
) -> PageResult {
    let (source, mut editor, spec) = match read_form(&state, &session, &id, form).await? {
        Ok(parts) => parts,
        Err(page) => return Ok(page),
    };
    match state
        .services
        .save_mapping(source.id, MappingInput::Spec(Box::new(spec)))
        .await
    {
        Ok(saved) => {
            let version = saved.saved.version;
            tracing::info!(source = %source.id, version, "mapping saved from the dashboard");
            Ok(
                Redirect::to(&format!("/sources/{}?saved={version}#mapping", source.id))
                    .into_response(),
            )
        }
        Err(e) => {
            editor.errors = invalid_fields(e)?;
            with_editor(&state, &session, &source, StatusCode::BAD_REQUEST, editor).await
        }
    }
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    /// From the confirmation page: only events received since then.
    #[serde(default)]
    since: String,
}

/// `POST /sources/{id}/replay`: starts a replay, then back to the page.
pub async fn replay(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<ReplayForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let source = load(&state, page_source_id(&id)?).await?;
    let request = crate::service::mappings::ReplayRequest {
        status: form.status.clone(),
        since: super::replay::form_since(&form.since),
    };
    match state.services.start_replay(source.id, request).await {
        Ok(_) => Ok(Redirect::to(&format!("/sources/{}#replay", source.id)).into_response()),
        // Nothing to replay yet, or not a status that can be: the page again, saying why.
        Err(e @ (ServiceError::Conflict(_) | ServiceError::BadRequest(_))) => {
            let e = AppError::from(e);
            source_page(
                &state,
                &session,
                &source,
                SourcePage {
                    status: e.status(),
                    error: Some(e.to_string()),
                    ..SourcePage::default()
                },
            )
            .await
        }
        Err(e) => Err(failed(e)),
    }
}

/// `GET /sources/{id}/replay.json`: the replay progress, for the page's poll.
pub async fn replay_json(
    State(state): State<AppState>,
    _session: Authed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = page_source_id(&id)?;
    let progress = state.services.replay_progress(id).await.map_err(failed)?;
    Ok(Json(json!({
        "replay": progress.replay.as_ref().map(replay_view),
        "counts": replay_counts(&progress),
    }))
    .into_response())
}

#[derive(Default, Deserialize)]
pub struct ShowQuery {
    /// `1`: fill the editor with the suggestion.
    #[serde(default)]
    pub suggest: String,
    /// Fill the editor with this saved version.
    #[serde(default)]
    pub version: String,
    /// Just saved this version (after the redirect).
    #[serde(default)]
    pub saved: String,
}

impl ShowQuery {
    pub fn editor(&self) -> Editor {
        Editor {
            suggest: !self.suggest.is_empty() && self.suggest != "0",
            from_version: self.version.parse().ok(),
            saved: self.saved.parse().ok(),
            ..Editor::default()
        }
    }
}

/// `GET /sources/{id}` with the editor options from the query.
pub async fn show(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let source = load(&state, page_source_id(&id)?).await?;
    with_editor(&state, &session, &source, StatusCode::OK, q.editor()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax_round_trips() {
        assert_eq!(
            parse_properties("*").unwrap(),
            Some(PropertiesSpec::All("*".into()))
        );
        assert_eq!(
            parse_properties("a, b.c\nd").unwrap(),
            Some(PropertiesSpec::Paths(vec![
                "a".into(),
                "b.c".into(),
                "d".into()
            ]))
        );
        let named = parse_properties("total = {{total_price}}\n\nlabel={{name}}").unwrap();
        let Some(PropertiesSpec::Templates(t)) = named else {
            panic!("templates expected")
        };
        assert_eq!(t["total"], "{{total_price}}");
        assert_eq!(t["label"], "{{name}}");
        assert!(parse_properties("a = {{a}}\nb").is_err());
        assert_eq!(parse_properties("  ").unwrap(), None);
    }

    #[test]
    fn a_spec_survives_the_form() {
        let spec = MappingSpec {
            event_name: Some("Order placed".into()),
            email: Some("{{customer.email}}".into()),
            properties: Some(PropertiesSpec::Templates(BTreeMap::from([(
                "total".into(),
                "{{total_price}}".into(),
            )]))),
            traits: Some(BTreeMap::from([("plan".into(), "{{plan}}".into())])),
            identifiers: Some(BTreeMap::from([(
                "stripe_customer_id".into(),
                "{{data.object.customer}}".into(),
            )])),
            ..MappingSpec::default()
        };
        assert_eq!(MappingForm::from_spec(&spec).to_spec().unwrap(), spec);
    }

    #[test]
    fn trait_lines_need_an_equals_sign() {
        let form = MappingForm {
            traits: "plan {{plan}}".into(),
            ..MappingForm::default()
        };
        let errors = form.to_spec().unwrap_err();
        assert!(errors["traits"].contains("line 1"));
    }

    #[test]
    fn percent_has_one_decimal() {
        assert_eq!(percent(49, 50), "98.0%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "—");
    }
}
