//! The mapping preview: a dry run of mapping and identity resolution for
//! a few stored events, storing nothing. It lives beside planning because it
//! must map and resolve exactly as the pipeline would.

use super::plan::{record_context, resolve_input};
use super::Processor;
use crate::domain::identity::Blocklist;
use crate::domain::mapping::CompiledMapping;
use crate::domain::model::RawEvent;
use crate::domain::preview::{
    mapping_warnings, MappingWarning, PreviewRecord, PreviewResolution, PreviewResult, RecordRef,
};
use crate::domain::source::Source;
use crate::store::StateStore;
use crate::store::StoreResult;

impl Processor {
    /// A dry run of mapping + resolution over `records`: stores nothing.
    /// The answer is bounded (see `domain::preview`): records past the
    /// budget are not mapped at all. Its warnings are [`Self::mapping_warnings`]
    /// over the same records.
    pub fn preview(
        &self,
        source: &Source,
        mapping: &CompiledMapping,
        records: &[RawEvent],
    ) -> StoreResult<PreviewResult> {
        let blocklist = Blocklist::with_extra(&source.blocked_values);
        let one = |raw: &RawEvent| -> StoreResult<PreviewRecord> {
            let record = RecordRef {
                id: raw.id,
                received_at: raw.received_at,
            };
            let mapped = match mapping.apply(&record_context(raw)) {
                Ok(mapped) => mapped,
                Err(e) => return Ok(PreviewRecord::not_mapped(record, e.to_string())),
            };
            let event = mapped.event;
            let input = resolve_input(raw, source, &event);
            let outcome = self.store.resolve_preview(&input, &blocklist)?;
            let mut warnings = mapped.warnings;
            warnings.extend(mapped.clamped_timestamp);
            warnings.extend(outcome.refusals.iter().map(|r| r.warning()));
            let resolution = PreviewResolution {
                resolution: outcome.summary(),
                profile_id: outcome.profile_id,
            };
            Ok(PreviewRecord::mapped(record, event, resolution, warnings))
        };
        let warnings = self.mapping_warnings(source, mapping, records);
        PreviewResult::bounded(records.len(), records.iter().map(one), warnings)
    }

    /// What a mapping deserves a warning for over these sample records:
    /// slots that read nothing from any of them, and paths the learned
    /// schema has never seen (see `domain::preview::mapping_warnings`).
    pub fn mapping_warnings(
        &self,
        source: &Source,
        mapping: &CompiledMapping,
        records: &[RawEvent],
    ) -> Vec<MappingWarning> {
        let samples: Vec<_> = records.iter().map(record_context).collect();
        let schema = self.schemas.snapshot(source.id);
        mapping_warnings(schema.as_ref(), mapping, &samples)
    }
}
