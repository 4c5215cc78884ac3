//! The stylesheet and script, embedded: no front-end build chain, one binary.

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

/// Short enough that a deploy's new CSS shows up within minutes.
const CACHE: &str = "public, max-age=300";

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        JS,
    )
}
