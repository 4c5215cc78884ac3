//! The mapping preview: a dry run of mapping and identity resolution for
//! one stored event, storing nothing. It lives beside planning because it
//! must map and resolve exactly as the pipeline would.

use super::plan::{record_context, resolve_input};
use super::Processor;
use crate::domain::identity::Blocklist;
use crate::domain::mapping::CompiledMapping;
use crate::domain::model::RawEvent;
use crate::domain::source::Source;
use crate::store::StoreResult;

impl Processor {
    /// A dry run of mapping + resolution for the preview: stores nothing.
    pub fn preview(
        &self,
        source: &Source,
        mapping: &CompiledMapping,
        raw: &RawEvent,
    ) -> StoreResult<serde_json::Value> {
        let ctx = record_context(raw);
        let mapped = match mapping.apply(&ctx) {
            Ok(mapped) => mapped,
            Err(e) => {
                return Ok(
                    serde_json::json!({"event": null, "error": e.to_string(), "warnings": []}),
                )
            }
        };
        let event = mapped.event;
        let input = resolve_input(raw, source, &event);
        let blocklist = Blocklist::with_extra(&source.blocked_values);
        let outcome = self.store.resolve_preview(&input, &blocklist)?;
        let mut warnings = mapped.warnings;
        warnings.extend(mapped.clamped_timestamp);
        warnings.extend(outcome.refusals.iter().map(|r| r.warning()));
        Ok(serde_json::json!({
            "event": event,
            "resolution": outcome.summary(),
            "profile_id": outcome.profile_id,
            "warnings": warnings,
        }))
    }
}
