//! Inlet: an identity-resolving webhook event pipeline.
//!
//! # Layout
//!
//! One request, end to end, and the module that owns each step:
//!
//! `/hooks/<token>` → authenticate (`source`) → decode (`ingest`) → explode
//! records (`records`) → durable log (`store`) → **202** → `processor`: sniff
//! schema (`sniff`) → map (`mapping`) → resolve identity (`identity`, atomic in
//! `store`) → events / profiles / error log → JSON API (`routes`) and dashboard.
//!
//! - `app`: `Application::build`: data-dir lock, admin token, store, flusher,
//!   processor, listener; graceful shutdown.
//! - `serve`: the accept loop: header/idle timeout, connection cap.
//! - `guard`: rate limit on failed admin-token attempts.
//!
//! Every bound on hostile input (sizes, nesting, time, connections,
//! guessing, reads) is listed in docs/security.md.
//! - `config`: typed settings, loaded once.
//! - `ids`, `model`: typed ids and the serde types every stage shares.
//! - `error`: `AppError`, the one place errors become HTTP answers.
//! - `counters`: per-source counts kept as numbers, persisted by the processor.
//! - `store`: the only module that imports sled: trees, the event log (raw
//!   events, not in sled; what a request's records share is logged once,
//!   `store::shared`) and group commit, the processor's queue and batch
//!   transaction, identity on sled, bounded views (`store::summary`), and
//!   erasure of every copy of a profile's values (`store::erasure`,
//!   `store::rewrite`).
//! - `excerpt`: bounded JSON excerpts, what lists show of a large payload
//!   (read through `store::summary`, which bounds every list and search).
//! - `views`: the JSON shapes of events, sources and profiles, shared by the
//!   API and the dashboard.
//! - `metrics`: Prometheus metrics (`GET /metrics`).
//! - `routes`: the only module that knows HTTP routing; one file per resource.
//! - `dashboard`: the HTML pages (login, events, errors, sources, profiles).

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod store;
