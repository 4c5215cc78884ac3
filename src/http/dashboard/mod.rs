//! The dashboard: server-rendered HTML pages for people, next to the JSON API
//! for programs. Pages work with JavaScript off; `app.js` only adds the live
//! tail, copy buttons and delete confirmations.
//!
//! - `session`, `csrf`: login, the session cookie and form tokens.
//! - `render`: the handlebars registry (strict, escaping on) and error pages.
//! - `display`: how values are shown (clipped, shortened, pretty-printed).
//! - `charts`: the SVG charts (home page bars, sources' sparklines).
//! - one file per page group: `home`, `login`, `events`, `stream`, `errors`,
//!   `sources` (with `mapping`: the source page's mapping section),
//!   `profiles`, `kinds` (identifier kinds); `assets` serves the embedded CSS and JS.

mod assets;
mod charts;
mod csrf;
mod display;
mod errors;
mod events;
mod home;
mod kinds;
mod login;
mod mapping;
mod profile_graph;
mod profiles;
mod render;
mod replay;
pub mod session;
mod sources;
mod split;
mod stream;

use crate::http::AppState;
use axum::routing::{get, post};
use axum::Router;

pub use session::Sessions;

/// Every dashboard route. All but `/login` and `/static/*` need a session.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/events", get(events::list))
        .route("/events/stream", get(stream::tail))
        .route("/events/{id}", get(events::detail))
        .route("/errors", get(errors::list))
        .route("/sources", get(sources::list).post(sources::create))
        .route("/sources/{id}", get(mapping::show))
        .route("/sources/{id}/mapping", post(mapping::save))
        .route("/sources/{id}/mapping/preview", post(mapping::preview))
        .route("/sources/{id}/replay", post(mapping::replay))
        .route("/sources/{id}/replay.json", get(mapping::replay_json))
        .route("/sources/{id}/replay/confirm", get(replay::confirm))
        .route("/events/{id}/retry", post(events::retry))
        .route("/sources/{id}/rotate", post(sources::rotate))
        .route("/sources/{id}/delete", post(sources::delete))
        .route("/sources/{id}/api-key", post(sources::api_key))
        .route("/sources/{id}/verify", post(sources::verify))
        .route("/sources/{id}/test-event", post(sources::test_event))
        .route("/profiles", get(profiles::search))
        .route("/profiles/{id}", get(profiles::show))
        .route(
            "/profiles/{id}/merge",
            get(profiles::merge_confirm).post(profiles::merge),
        )
        .route(
            "/profiles/{id}/erase",
            get(profiles::erase_confirm).post(profiles::erase),
        )
        .route("/identity/kinds", get(kinds::show).post(kinds::create))
        .route("/identity/kinds/{name}", post(kinds::update))
        .route("/identity/kinds/{name}/enabled", post(kinds::set_enabled))
        .route("/identity/kinds/{name}/delete", post(kinds::delete))
        .route(
            "/profiles/{id}/split",
            get(split::confirm).post(split::split),
        )
        .route("/identity/never-merge", get(split::rules))
        .route("/identity/never-merge/{id}/remove", post(split::remove))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/session", get(login::alive))
        .route("/static/app.css", get(assets::css))
        .route("/static/app.js", get(assets::js))
        .route("/static/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
}

pub use render::{error_pages_keep_the_nav, not_found_page};

/// Was the request made over https (as a reverse proxy reports it)?
fn is_https(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
