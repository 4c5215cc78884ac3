//! A source's mapping: the learned schema and samples it is written
//! against, the suggestion, saved versions, preview, save, and replay.
//!
//! Compiling a mapping at the limits takes up to a few hundred ms
//! (measured: docs/notes/templates.md), and a preview maps and resolves up
//! to 20 records, so save and preview run on the blocking pool
//! ([`off_async_threads`]), not on a request worker other senders share.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::counters::CountsView;
use crate::domain::events::EventFilter;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::{presets, CompiledMapping};
use crate::domain::model::{EventStatus, MappingSpec, RawEvent};
use crate::domain::preview::{MappingWarning, PreviewResult};
use crate::domain::replay::{MappingVersion, ReplayJob};
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
}

/// A source's replay job and the counts it works through.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayProgress {
    pub replay: Option<ReplayJob>,
    pub counts: CountsView,
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
            Some(compiled) => self.warnings_over_samples(&source, &compiled),
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
        let checked = compile(spec, 0)?;
        let warnings = self.warnings_over_samples(source, &checked)?;
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
            let records = match input.payload {
                Some(payload) => preview_records(&source, payload, this.config.max_records)?,
                None => this.latest_samples(&source, PREVIEW_SAMPLES)?,
            };
            Ok(this.processor.preview(&source, &mapping, &records)?)
        })
        .await
    }

    /// Starts (or restarts) a background replay of `failed` or `unmapped` events.
    pub async fn start_replay(&self, id: SourceId, status: &str) -> ServiceResult<ReplayJob> {
        let source = self.load_source(id)?;
        let status = match EventStatus::parse(status) {
            Some(s @ (EventStatus::Failed | EventStatus::Unmapped)) => s,
            _ => {
                return Err(ServiceError::BadRequest(format!(
                    "status `{status}` cannot be replayed; use \"failed\" or \"unmapped\""
                )))
            }
        };
        if source.mapping_version.is_none() {
            return Err(ServiceError::Conflict(
                "save a mapping before replaying events".into(),
            ));
        }
        let job = self.processor.start_replay(source.id, status)?;
        self.new_events.notify_one();
        Ok(job)
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

    /// The mapping a preview runs: the one given (compiled, not saved),
    /// else the source's current one as already compiled for the pipeline.
    fn preview_mapping_of(
        &self,
        source: &Source,
        given: Option<MappingInput>,
    ) -> ServiceResult<Arc<CompiledMapping>> {
        if let Some(given) = given {
            let (spec, _) = given.resolve()?;
            return Ok(Arc::new(compile(spec, 0)?));
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
    // The same events the hook path builds; the preview stores nothing, so
    // it gives them ids itself.
    let mut events = crate::domain::records::raw_events(source.id, exploded, Map::new());
    for event in &mut events {
        event.id = EventId::new();
    }
    Ok(events)
}
