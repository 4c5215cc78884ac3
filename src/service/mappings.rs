//! A source's mapping: the learned schema and samples it is written
//! against, the suggestion, saved versions, preview, save, and replay.
//!
//! Compiling a mapping at the limits takes up to a few hundred ms
//! (measured: docs/notes/templates.md), and a preview maps and resolves up
//! to 20 records, so save and preview run on the blocking pool
//! ([`off_async_threads`]), not on a request worker other senders share.

use super::identity_kinds::KINDS_URL;
use super::{ServiceError, ServiceResult, Services};
use crate::domain::counters::CountsView;
use crate::domain::events::EventFilter;
use crate::domain::identity::IdentKind;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::{presets, CompiledMapping};
use crate::domain::model::{EventStatus, MappingSpec, RawEvent};
use crate::domain::preview::{MappingWarning, PreviewResult, PREVIEW_MAX_SAMPLES};
use crate::domain::replay::{MappingVersion, ReplayJob, ReplayScope};
use crate::domain::schema_view::SchemaView;
use crate::domain::sniff::Suggestion;
use crate::domain::source::Source;
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Samples a preview without a payload runs over.
const PREVIEW_SAMPLES: usize = 5;

/// A mapping to save or preview: a spec, or a preset's by name.
#[derive(Clone, Debug)]
pub enum MappingInput {
    /// Boxed: a spec is ten times the size of a preset's name.
    Spec(Box<MappingSpec>),
    Preset(String),
}

/// A saved version, its warnings (slots that read nothing from the latest
/// samples, paths the schema has never seen), and the replay of `unmapped`
/// events that a source's first mapping starts:
/// `{...MappingVersion, "warnings", "replay"}`.
#[derive(Clone, Debug, Serialize)]
pub struct SavedMapping {
    #[serde(flatten)]
    pub saved: MappingVersion,
    pub warnings: Vec<MappingWarning>,
    pub replay: Option<ReplayJob>,
}

/// `{"current", "versions"}`: every version, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct MappingVersions {
    pub current: Option<u32>,
    pub versions: Vec<MappingVersion>,
}

/// `{"samples": [...]}`, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct Samples {
    pub samples: Vec<Sample>,
}

/// A stored record as the mapping sees it.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub event_id: EventId,
    pub received_at: DateTime<Utc>,
    pub record: Value,
    pub envelope: Option<Arc<Value>>,
}

/// `{"mapping", "reasons", "samples"}`: a first mapping guessed from the
/// schema, why each slot was picked, and how many records the schema saw.
#[derive(Clone, Debug, Serialize)]
pub struct SuggestedMapping {
    pub mapping: MappingSpec,
    pub reasons: BTreeMap<String, String>,
    pub samples: u64,
}

/// `{"presets": [...]}`, in display order.
#[derive(Clone, Debug, Serialize)]
pub struct PresetList {
    pub presets: &'static [presets::Preset],
}

/// What a preview runs: the mapping given (compiled, not saved; else the
/// saved one) over the payload given (exploded like a hook body; else the
/// latest stored records).
#[derive(Clone, Debug, Default)]
pub struct PreviewInput {
    pub mapping: Option<MappingInput>,
    /// A body as a sender would post it (payload: JSON by nature).
    pub payload: Option<Value>,
    /// Stored events of the source to run, by id, in this order (at most
    /// [`PREVIEW_MAX_SAMPLES`]); empty: not chosen.
    pub samples: Vec<String>,
    /// A pasted body (CSV, or JSON as text), decoded as a hook body.
    pub pasted: Option<PastedBody>,
}

/// Text pasted into a preview, read exactly as a hook body of
/// `content_type` would be (no content type: `text/plain`, so JSON when it
/// starts like JSON, else CSV), then exploded into records.
#[derive(Clone, Debug, Default)]
pub struct PastedBody {
    pub content_type: Option<String>,
    pub text: String,
}

/// A source's replay job and the counts it works through.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayProgress {
    pub replay: Option<ReplayJob>,
    pub counts: CountsView,
}

/// What to replay: `{"status", "since"}` (the API's body less `dry_run`,
/// or the dashboard's form), as sent: the service checks both.
#[derive(Clone, Debug, Default)]
pub struct ReplayRequest {
    /// `failed`, `unmapped`, `resolved` or `all`.
    pub status: String,
    /// An RFC 3339 time: only events received at or after it.
    pub since: Option<String>,
}

/// What a replay will do, said before it runs: the API's dry run
/// `{"would_touch", "status", "since", "version", "source_id", "source_name"}`.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayPlan {
    pub source_id: SourceId,
    pub source_name: String,
    pub status: ReplayScope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The current mapping version the events go through.
    pub version: u32,
    /// Events the replay re-runs.
    pub would_touch: u64,
}

/// A checked replay request.
struct ReplayTarget {
    source: Source,
    scope: ReplayScope,
    since: Option<DateTime<Utc>>,
    version: u32,
}

impl ReplayTarget {
    fn plan(self, would_touch: u64) -> ReplayPlan {
        ReplayPlan {
            source_id: self.source.id,
            source_name: self.source.name,
            status: self.scope,
            since: self.since,
            version: self.version,
            would_touch,
        }
    }
}

/// A replay's `since`: RFC 3339, said how when it is not.
fn parse_since(text: &str) -> ServiceResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ServiceError::BadRequest(format!(
                "since `{text}` is not an RFC 3339 time ({e}); send e.g. \"2026-01-31T09:00:00Z\""
            ))
        })
}

/// The refusal for a preset name that does not exist, listing those that do.
pub(crate) fn unknown_preset(name: &str) -> ServiceError {
    let known: Vec<&str> = presets::presets().iter().map(|p| p.name.as_str()).collect();
    ServiceError::BadRequest(format!(
        "unknown preset `{name}`; known presets: {}",
        known.join(", ")
    ))
}

impl MappingInput {
    /// The spec, and the preset's name when it came from one.
    fn resolve(self) -> ServiceResult<(MappingSpec, Option<String>)> {
        match self {
            MappingInput::Spec(spec) => Ok((*spec, None)),
            MappingInput::Preset(name) => {
                let preset = presets::preset(&name).ok_or_else(|| unknown_preset(&name))?;
                Ok((preset.mapping.clone(), Some(preset.name.clone())))
            }
        }
    }
}

/// Compiles a spec or refuses it with one message per field.
fn compile(spec: MappingSpec, version: u32) -> ServiceResult<CompiledMapping> {
    CompiledMapping::compile(spec, version).map_err(|e| ServiceError::Invalid {
        message: "the mapping is not valid; see `fields` for what to fix".into(),
        fields: e.fields,
        code: e.code,
    })
}

/// Runs `work` on the blocking pool (see the module doc).
pub(crate) async fn off_async_threads<T: Send + 'static>(
    work: impl FnOnce() -> ServiceResult<T> + Send + 'static,
) -> ServiceResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::Internal(format!("mapping work stopped: {e}")))?
}

impl Services {
    /// The learned schema; `None` while the source has seen nothing.
    pub async fn schema(&self, id: SourceId) -> ServiceResult<Option<SchemaView>> {
        let source = self.load_source(id)?;
        Ok(self
            .processor
            .schemas
            .snapshot(source.id)
            .map(|s| SchemaView::of(&s)))
    }

    /// The latest `limit` stored records, newest first.
    pub async fn samples(&self, id: SourceId, limit: usize) -> ServiceResult<Samples> {
        let source = self.load_source(id)?;
        let samples = self
            .latest_samples(&source, limit)?
            .into_iter()
            .map(|raw| Sample {
                event_id: raw.id,
                received_at: raw.received_at,
                record: raw.payload,
                envelope: raw.envelope,
            })
            .collect();
        Ok(Samples { samples })
    }

    /// A mapping guessed from the schema (from nothing while it is empty).
    pub async fn suggest_mapping(&self, id: SourceId) -> ServiceResult<SuggestedMapping> {
        let source = self.load_source(id)?;
        let schema = self
            .processor
            .schemas
            .snapshot(source.id)
            .unwrap_or_default();
        let Suggestion { mapping, reasons } = crate::domain::sniff::suggest(&schema, &source.name);
        Ok(SuggestedMapping {
            mapping,
            reasons,
            samples: schema.samples,
        })
    }

    /// The current version; `NotFound` saying where to start when none is saved.
    pub async fn current_mapping(&self, id: SourceId) -> ServiceResult<MappingVersion> {
        let source = self.load_source(id)?;
        source
            .mapping_version
            .map(|v| self.store.mapping_version(source.id, v))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "source `{}` has no mapping yet; PUT one, or start from GET /api/sources/{}/mapping/suggest",
                    source.name, source.id
                ))
            })
    }

    pub async fn mapping_versions(&self, id: SourceId) -> ServiceResult<MappingVersions> {
        let source = self.load_source(id)?;
        Ok(MappingVersions {
            current: source.mapping_version,
            versions: self.store.mapping_versions(source.id)?,
        })
    }

    /// The warnings of the current mapping over the latest samples (none
    /// when it has none, or when the saved one does not compile).
    pub async fn mapping_warnings(&self, id: SourceId) -> ServiceResult<Vec<MappingWarning>> {
        let source = self.load_source(id)?;
        match self.processor.mappings.current(&self.store, &source)? {
            Some(compiled) => {
                let mut warnings = self.saved_kind_warnings(&compiled)?;
                warnings.extend(self.warnings_over_samples(&source, &compiled)?);
                Ok(warnings)
            }
            None => Ok(Vec::new()),
        }
    }

    pub async fn presets(&self) -> PresetList {
        PresetList {
            presets: presets::presets(),
        }
    }

    /// Saves a new version and makes it current; the first version also
    /// maps every event that arrived before it (a replay of `unmapped`).
    pub async fn save_mapping(
        &self,
        id: SourceId,
        input: MappingInput,
    ) -> ServiceResult<SavedMapping> {
        let source = self.load_source(id)?;
        let (spec, preset) = input.resolve()?;
        let this = self.clone();
        off_async_threads(move || this.save_mapping_now(&source, spec, preset)).await
    }

    /// [`Self::save_mapping`] on the calling thread.
    pub(crate) fn save_mapping_now(
        &self,
        source: &Source,
        spec: MappingSpec,
        preset: Option<String>,
    ) -> ServiceResult<SavedMapping> {
        if let Some(preset) = preset.as_deref().and_then(presets::preset) {
            self.define_preset_kinds(&preset.kinds)?;
        }
        let checked = compile(spec, 0)?;
        let mut warnings = self.identifier_kind_warnings(&checked, &[])?;
        warnings.extend(self.warnings_over_samples(source, &checked)?);
        let saved = self.store.save_mapping(source.id, &checked.spec, preset)?;
        let compiled = compile(saved.mapping.clone(), saved.version)?;
        self.processor
            .mappings
            .install(source.id, Arc::new(compiled));
        let replay = match source.mapping_version {
            None => Some(
                self.processor
                    .start_replay(source.id, EventStatus::Unmapped)?,
            ),
            Some(_) => None,
        };
        self.new_events.notify_one();
        Ok(SavedMapping {
            saved,
            warnings,
            replay,
        })
    }

    /// What a mapping would make of some records, and what resolution would
    /// do with each; stores nothing.
    pub async fn preview_mapping(
        &self,
        id: SourceId,
        input: PreviewInput,
    ) -> ServiceResult<PreviewResult> {
        let source = self.load_source(id)?;
        let this = self.clone();
        off_async_threads(move || {
            let mapping = this.preview_mapping_of(&source, input.mapping)?;
            let records =
                this.preview_records_of(&source, input.payload, input.samples, input.pasted)?;
            Ok(this.processor.preview(&source, &mapping, &records)?)
        })
        .await
    }

    /// What a replay would do, without starting it (the API's dry run, the
    /// dashboard's confirmation): how many events it re-runs, of which
    /// source and scope, through which version.
    pub async fn replay_plan(
        &self,
        id: SourceId,
        request: ReplayRequest,
    ) -> ServiceResult<ReplayPlan> {
        let target = self.replay_target(id, &request)?;
        let this = self.clone();
        off_async_threads(move || {
            let would_touch =
                this.processor
                    .replay_count(target.source.id, target.scope, target.since)?;
            Ok(target.plan(would_touch))
        })
        .await
    }

    /// Starts (or restarts) a background replay of a source's `failed`,
    /// `unmapped` or `resolved` events, or `all` of them, received since a
    /// time or ever, through the current mapping version.
    pub async fn start_replay(
        &self,
        id: SourceId,
        request: ReplayRequest,
    ) -> ServiceResult<ReplayJob> {
        let target = self.replay_target(id, &request)?;
        let this = self.clone();
        let job = off_async_threads(move || {
            Ok(this.processor.start_replay_of(
                target.source.id,
                target.scope,
                target.since,
                Some(target.version),
            )?)
        })
        .await?;
        self.new_events.notify_one();
        Ok(job)
    }

    /// The source, scope, time bound and version a replay request names,
    /// or why it cannot run.
    fn replay_target(&self, id: SourceId, request: &ReplayRequest) -> ServiceResult<ReplayTarget> {
        let source = self.load_source(id)?;
        let status = request.status.trim();
        let scope = ReplayScope::parse(status).ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "status `{status}` cannot be replayed; use \"failed\", \"unmapped\", \"resolved\" or \"all\""
            ))
        })?;
        let since = match request.since.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_since(text)?),
        };
        let Some(version) = source.mapping_version else {
            return Err(ServiceError::Conflict(
                "save a mapping before replaying events".into(),
            ));
        };
        Ok(ReplayTarget {
            source,
            scope,
            since,
            version,
        })
    }

    /// The source's replay job (the last one) and its current counts.
    pub async fn replay_progress(&self, id: SourceId) -> ServiceResult<ReplayProgress> {
        let source = self.load_source(id)?;
        Ok(ReplayProgress {
            replay: self.store.replay(source.id)?,
            counts: self.counters.view(source.id),
        })
    }

    /// The latest raw events of a source, newest first.
    fn latest_samples(&self, source: &Source, limit: usize) -> ServiceResult<Vec<RawEvent>> {
        let (events, _) = self.store.events_page(&EventFilter {
            source_id: Some(source.id),
            limit,
            ..EventFilter::default()
        })?;
        Ok(events.into_iter().map(|e| e.raw).collect())
    }

    /// A saved mapping's warnings, over the samples a preview without a
    /// payload runs on.
    fn warnings_over_samples(
        &self,
        source: &Source,
        mapping: &CompiledMapping,
    ) -> ServiceResult<Vec<MappingWarning>> {
        let samples = self.latest_samples(source, PREVIEW_SAMPLES)?;
        Ok(self.processor.mapping_warnings(source, mapping, &samples))
    }

    /// The records a preview runs over: the payload, the chosen samples or
    /// the pasted body (at most one of them), else the latest samples.
    fn preview_records_of(
        &self,
        source: &Source,
        payload: Option<Value>,
        samples: Vec<String>,
        pasted: Option<PastedBody>,
    ) -> ServiceResult<Vec<RawEvent>> {
        let max_records = self.config.max_records;
        match (payload, samples.is_empty(), pasted) {
            (None, true, None) => self.latest_samples(source, PREVIEW_SAMPLES),
            (Some(payload), true, None) => preview_records(source, payload, max_records),
            (None, false, None) => self.chosen_samples(source, &samples),
            (None, true, Some(pasted)) => pasted_records(source, &pasted, max_records),
            _ => Err(ServiceError::BadRequest(
                "a preview runs over one of `samples` (event ids), `payload` or a pasted body; \
                 give only one"
                    .into(),
            )),
        }
    }

    /// The stored events named by id, each checked to be this source's.
    fn chosen_samples(&self, source: &Source, ids: &[String]) -> ServiceResult<Vec<RawEvent>> {
        if ids.len() > PREVIEW_MAX_SAMPLES {
            return Err(ServiceError::BadRequest(format!(
                "{} samples chosen; a preview runs at most {PREVIEW_MAX_SAMPLES}",
                ids.len()
            )));
        }
        ids.iter()
            .map(|text| {
                let id: EventId = text.trim().parse().map_err(|_| ServiceError::Invalid {
                    message: format!("sample `{text}` is not an event id"),
                    fields: BTreeMap::from([(
                        "samples".to_string(),
                        format!("`{text}` is not an event id"),
                    )]),
                    code: Some("invalid_sample"),
                })?;
                match self.store.event(id)? {
                    Some(stored) if stored.raw.source_id == source.id => Ok(stored.raw),
                    _ => Err(ServiceError::NotFound(format!(
                        "sample `{id}` is not an event of source `{}`; pick ids from \
                         GET /api/sources/{}/samples",
                        source.name, source.id
                    ))),
                }
            })
            .collect()
    }

    /// The mapping a preview runs: the one given (compiled, not saved),
    /// else the source's current one as already compiled for the pipeline.
    fn preview_mapping_of(
        &self,
        source: &Source,
        given: Option<MappingInput>,
    ) -> ServiceResult<Arc<CompiledMapping>> {
        if let Some(given) = given {
            let (spec, preset) = given.resolve()?;
            let compiled = compile(spec, 0)?;
            // A preset's own kinds are defined when it is saved, so its
            // preview does not refuse them beforehand.
            let defined_on_save = preset
                .as_deref()
                .and_then(presets::preset)
                .map_or(&[][..], |p| p.kinds.as_slice());
            self.identifier_kind_warnings(&compiled, defined_on_save)?;
            return Ok(Arc::new(compiled));
        }
        match self
            .processor
            .mappings
            .current_or_broken(&self.store, source)?
        {
            Some(Ok(mapping)) => Ok(mapping),
            Some(Err(broken)) => Err(ServiceError::Invalid {
                message: broken.reason.clone(),
                fields: BTreeMap::new(),
                code: Some(broken.code),
            }),
            None => Err(ServiceError::BadRequest(
                "no mapping given and the source has none saved yet".into(),
            )),
        }
    }

    /// A saved mapping's kind warnings: a saved mapping names no undefined
    /// kind unless data from before the check holds one, which is then
    /// said as a warning, not refused.
    fn saved_kind_warnings(&self, mapping: &CompiledMapping) -> ServiceResult<Vec<MappingWarning>> {
        match self.identifier_kind_warnings(mapping, &[]) {
            Ok(warnings) => Ok(warnings),
            Err(ServiceError::Invalid { fields, .. }) => Ok(fields
                .into_iter()
                .map(|(slot, message)| MappingWarning {
                    slot: Some(slot),
                    template: None,
                    message,
                    suggest: None,
                })
                .collect()),
            Err(e) => Err(e),
        }
    }

    /// The mapping's `identifiers` against the defined kinds: a kind nobody
    /// defined (and `defined_on_save` will not define) is refused
    /// `unknown_identifier_kind`, naming where to define it; a disabled
    /// one is a warning (its values are not used until it is enabled).
    fn identifier_kind_warnings(
        &self,
        mapping: &CompiledMapping,
        defined_on_save: &[presets::PresetKind],
    ) -> ServiceResult<Vec<MappingWarning>> {
        let config = self.store.identity_config();
        let mut undefined = BTreeMap::new();
        let mut warnings = Vec::new();
        for name in mapping.identifier_kinds() {
            let slot = format!("identifiers.{}", name.as_str());
            match config.kinds.spec(&IdentKind::Custom(name.clone())) {
                Some(spec) if !spec.enabled => warnings.push(MappingWarning {
                    template: mapping_identifier_template(mapping, name),
                    message: format!(
                        "identifier kind `{name}` is disabled: its values are not used until it is \
                         enabled (PATCH {KINDS_URL}/{name} {{\"enabled\": true}})",
                        name = name.as_str()
                    ),
                    slot: Some(slot),
                    suggest: None,
                }),
                Some(_) => {}
                None if defined_on_save.iter().any(|k| &k.name == name) => {}
                None => {
                    undefined.insert(
                        slot,
                        format!(
                            "no identifier kind is named `{name}`; define it first: POST {KINDS_URL} \
                             {{\"name\": \"{name}\"}} (or the dashboard's /identity/kinds page)",
                            name = name.as_str()
                        ),
                    );
                }
            }
        }
        if undefined.is_empty() {
            return Ok(warnings);
        }
        let names: Vec<&str> = undefined
            .keys()
            .map(|k| k.trim_start_matches("identifiers."))
            .collect();
        Err(ServiceError::Invalid {
            message: format!(
                "the mapping names identifier kinds that are not defined: {}; define them at {KINDS_URL}",
                names.join(", ")
            ),
            fields: undefined,
            code: Some("unknown_identifier_kind"),
        })
    }
}

/// A pasted body as records: decoded and exploded exactly as a hook body
/// (`service::ingest`), refused with the hook's code under `fields.payload`.
fn pasted_records(
    source: &Source,
    pasted: &PastedBody,
    max_records: usize,
) -> ServiceResult<Vec<RawEvent>> {
    use crate::domain::{decode, records};
    let refused = |code: &'static str, message: String| ServiceError::Invalid {
        message: format!("the pasted payload cannot be read: {message}"),
        fields: BTreeMap::from([("payload".to_string(), message)]),
        code: Some(code),
    };
    let bytes = pasted.text.as_bytes();
    let body = decode::body_format(Some(pasted.content_type.as_deref().unwrap_or("text/plain")))
        .and_then(|format| decode::decode_body(format, bytes))
        .map_err(|e| refused(e.code(), e.to_string()))?;
    let exploded = records::explode_body(
        body,
        source.records_path.as_deref(),
        records::Limits::records(max_records),
    )
    .map_err(|e| refused(e.code(), e.to_string()))?;
    Ok(stamped(records::raw_events(
        source.id,
        exploded,
        Map::new(),
    )))
}

/// Preview events are stored nowhere, so they get their ids here.
fn stamped(mut events: Vec<RawEvent>) -> Vec<RawEvent> {
    for event in &mut events {
        event.id = EventId::new();
    }
    events
}

/// A previewed body as records, exploded the way the hook path does (with
/// the source's records path), stamped now and stored nowhere.
// The hook path builds its `RawEvent`s the same way (`http::hooks::to_raw_events`);
// one shared constructor in `domain::records` is on its way (see docs/notes).
fn preview_records(
    source: &Source,
    body: Value,
    max_records: usize,
) -> ServiceResult<Vec<RawEvent>> {
    let exploded =
        crate::domain::records::explode(body, source.records_path.as_deref(), max_records)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
    Ok(stamped(crate::domain::records::raw_events(
        source.id,
        exploded,
        Map::new(),
    )))
}

/// The template a mapping's `identifiers` slot was written with.
fn mapping_identifier_template(
    mapping: &CompiledMapping,
    kind: &crate::domain::identity::KindName,
) -> Option<String> {
    mapping
        .spec
        .identifiers
        .as_ref()
        .and_then(|named| named.get(kind.as_str()))
        .cloned()
}
