//! `inlet migrate --to postgres://…`: moves an embedded installation into
//! an empty PostgreSQL database.
//!
//! What is copied: sources (with their token hashes and sealed signing
//! secrets: start the PostgreSQL nodes with the same secret key), every
//! mapping version in order, the identifier kinds, and every raw event with
//! its id and arrival time (an erased event as its scrubbed copy). The
//! events are queued for the processor, which rebuilds their states, the
//! learned schemas, the error log's processing entries and the profiles by
//! the current rules, in arrival order; the never-merge rules are copied, so
//! the rebuild keeps apart what support split. Not copied: manual merges
//! (the rebuild decides again; support redoes one), replay jobs, and the
//! request-path entries of the error log.

use super::{EventLog, PgOptions, StateStore, Store, StoreError, StoreResult};
use crate::domain::ids::EventId;
use crate::domain::model::RawEvent;
use std::path::Path;

/// What a migration copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    pub sources: u64,
    pub mapping_versions: u64,
    pub events: u64,
}

/// Events read and written per round trip.
const EVENTS_PER_BATCH: usize = 500;

/// Copies the embedded store in `data_dir` into the (empty) database of
/// `to`; `progress` hears the events copied so far.
pub fn embedded_to_postgres(
    data_dir: &Path,
    cache_mb: u64,
    to: &PgOptions,
    mut progress: impl FnMut(u64),
) -> StoreResult<MigrationReport> {
    let from = Store::open(data_dir, cache_mb)?;
    let target = Store::connect(to)?;
    let Store::Postgres(pg) = &target else {
        return Err(StoreError::Migrate("the target is not PostgreSQL".into()));
    };
    if !target.sources()?.is_empty() || target.stored_events()? > 0 {
        return Err(StoreError::Migrate(
            "the target database already holds sources or events; migrate into an empty database"
                .into(),
        ));
    }
    let mut report = MigrationReport::default();
    let config = from.identity_config();
    target.put_identity_kinds(&config.kinds)?;
    pg.import_never_merge(config.never.rules())?;
    let sources = from.sources()?;
    for source in &sources {
        target.put_source(source)?;
        report.sources += 1;
        for version in from.mapping_versions(source.id)? {
            target.save_mapping(source.id, &version.mapping, version.preset.clone())?;
            report.mapping_versions += 1;
        }
    }
    let mut ids: Vec<EventId> = Vec::new();
    for source in &sources {
        let mut after = None;
        loop {
            let page = from.source_event_ids(source.id, after, EVENTS_PER_BATCH)?;
            let Some(last) = page.last().copied() else {
                break;
            };
            after = Some(last);
            ids.extend(page);
        }
    }
    ids.extend(
        from.next_pending(None, usize::MAX)?
            .iter()
            .map(|logged| logged.raw.id),
    );
    // Arrival order: the processor rebuilds profiles in the order events came.
    ids.sort();
    ids.dedup();
    for chunk in ids.chunks(EVENTS_PER_BATCH) {
        let events: Vec<RawEvent> = chunk
            .iter()
            .map(|id| from.raw_event(*id))
            .collect::<StoreResult<Vec<Option<RawEvent>>>>()?
            .into_iter()
            .flatten()
            .collect();
        report.events += pg.import_events(&events)?;
        progress(report.events);
    }
    target.close()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::embedded_to_postgres;
    use crate::domain::model::{MappingSpec, RawEvent};
    use crate::domain::source::Source;
    use crate::store::{EventLog, PgOptions, StateStore, Store};
    use serde_json::json;

    #[test]
    fn an_embedded_installation_moves_into_an_empty_database_and_not_into_a_used_one() {
        let Some(url) = crate::store::postgres::testing::temp_database_url() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (source, token) = Source::create("Shop", None, None).unwrap();
        let sent = {
            let store = Store::open(dir.path(), 16).unwrap();
            store.put_source(&source).unwrap();
            let spec = MappingSpec::default();
            store.save_mapping(source.id, &spec, None).unwrap();
            store
                .save_mapping(source.id, &spec, Some("shop".into()))
                .unwrap();
            let mut sent = Vec::new();
            for i in 0..3 {
                let events = vec![RawEvent::received(source.id, json!({"n": i}))];
                sent.extend(
                    store
                        .append_events(events)
                        .unwrap()
                        .events
                        .iter()
                        .map(|e| e.id),
                );
            }
            store.flush_now().unwrap();
            store.close().unwrap();
            sent
        };
        let options = PgOptions::new(url);
        let report = embedded_to_postgres(dir.path(), 16, &options, |_| {}).unwrap();
        assert_eq!(
            (report.sources, report.mapping_versions, report.events),
            (1, 2, 3)
        );
        let moved = Store::connect(&options).unwrap();
        let hash = crate::domain::source::SecretHash::of(token.as_bytes());
        assert_eq!(moved.source_by_token(&hash).unwrap().unwrap().id, source.id);
        let versions = moved.mapping_versions(source.id).unwrap();
        assert_eq!(versions[1].preset.as_deref(), Some("shop"));
        let queued: Vec<_> = moved
            .next_pending(None, 10)
            .unwrap()
            .iter()
            .map(|l| l.raw.id)
            .collect();
        assert_eq!(queued, sent, "ids kept, in arrival order, queued");
        moved.close().unwrap();
        let again = embedded_to_postgres(dir.path(), 16, &options, |_| {});
        assert!(again.is_err(), "a database with sources is refused");
    }
}
