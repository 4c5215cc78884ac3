//! Inlet: an identity-resolving webhook event pipeline.
//!
//! # Layout
//!
//! One request, end to end, and the module that owns each step:
//!
//! `/hooks/<token>` (`http::hooks`) → authenticate (token, api key:
//! `domain::source`) → decode (`domain::decode`) → explode records
//! (`domain::records`) → durable log (`store`, the `EventLog` seam) →
//! **202** (all of it the use case `service::ingest`) → `pipeline`: sniff
//! (`domain::sniff`) and map (`domain::mapping`) in `pipeline::plan` →
//! resolve identity (`domain::identity`, called by `pipeline::commit` inside
//! the store's unit of work) → events / profiles / error log (`store`, the
//! `StateStore` seam) → `service::*` → the JSON API (`http::api`) and the
//! dashboard (`http::dashboard`).
//!
//! Layers, each importing only those after it in this list (checked on
//! the source by tests/layers.rs):
//!
//! - `app`: `Application::build`: data-dir lock (embedded only), admin
//!   token and secret key (shared through the store on PostgreSQL), store,
//!   pipeline, listener; graceful shutdown. Holds no logic.
//! - `http`: routes and pages, thin: extract, call a service, render.
//!   `http::error::AppError` is the one error type (every body `{"error",
//!   "code"}`); `serve` is the accept loop (timeouts, connection cap),
//!   `guard` the failed-admin-token limit. `api` and `dashboard` never
//!   import each other; the dashboard draws its charts as SVG itself
//!   (`dashboard::charts`).
//! - `service`: each use case once, typed in and out, failing with
//!   `ServiceError`; knows no HTTP (dashboard sessions too: `sessions`).
//! - `pipeline`: the background work, one file per job (plan, commit,
//!   replay, preview, retention, the mapping cache, the threads, and
//!   `takeover`: waiting while another node processes, and taking over),
//!   handed only the handles it needs.
//! - `store`: the storage seam (`EventLog`, `StateStore`: what each method
//!   promises is in docs/architecture.md), `Store` (an enum over the two
//!   backends), the embedded backend (`store::embedded`: event log, group
//!   commit, sled) and the PostgreSQL one (`store::postgres`: one file per
//!   concept, as the embedded backend's, plus `cluster`: the processing
//!   lease and LISTEN/NOTIFY between nodes), and what both backends share
//!   (`commit`: receipts; `split`: what a split reads first; `migrate`:
//!   embedded to PostgreSQL). The only module that imports sled or sqlx;
//!   decides no policy.
//! - `domain`: pure types and rules, no I/O: ids, the event model,
//!   sources, decode, records, sniff, mapping, identity rules (kinds and
//!   their priorities, never-merge pairs, the resolver, with an in-memory
//!   implementation), bounded views, search and redaction rules,
//!   the typed views both the API and the dashboard render, and the
//!   counters (`counters` totals, `activity` time buckets) the processor
//!   keeps and the home page charts.
//! - Beside the layers: `config` (typed settings, loaded once; imports
//!   nothing) and `metrics` (the Prometheus registry, filled by the
//!   pipeline and the hook route; reads `domain` counters and the store's
//!   flush statistics).
//!
//! Every bound on hostile input (sizes, nesting, time, connections,
//! guessing, reads) is listed in docs/security.md.

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod store;
