//! `/`: the home page. Events received, resolved and failed over time for
//! every source or one (`source_id`), over a window (`window`: the last
//! hour by minute, the last day by hour, the last 30 days by day), with the
//! processor's lag, the error rate and the top error codes. The chart is
//! SVG drawn on the server (`charts`), so it needs no JavaScript.

use super::charts;
use super::display::{query, source_names, source_options};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::activity::Window;
use crate::http::AppState;
use crate::service::activity::{ActivityQuery, ActivityView};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// Unparseable values mean the default (all sources, the last day), as the
/// other pages' filters do.
#[derive(Deserialize)]
pub struct HomeQuery {
    #[serde(default)]
    window: String,
    #[serde(default)]
    source_id: String,
}

pub async fn show(
    State(state): State<AppState>,
    session: Authed,
    Query(q): Query<HomeQuery>,
) -> PageResult {
    let window = Window::parse(&q.window).unwrap_or(Window::Hour);
    let source = q.source_id.parse().ok();
    let view = state
        .services
        .activity(ActivityQuery { source, window })
        .await?;
    let names = source_names(&state).await?;
    let source_id = source.map(|s| s.to_string()).unwrap_or_default();
    let data = json!({
        "title": "Home", "nav": "home", "csrf": session.csrf,
        "chart": charts::bars(&view.buckets, window),
        "windows": window_links(window, &source_id),
        "window": window.as_str(),
        "sources": source_options(&names, &source_id),
        "source_name": source.and_then(|s| names.get(&s).cloned()),
        "totals": view.totals,
        "error_rate": percent(view.error_rate),
        "lag": lag(&view),
        "codes": codes(&view, &source_id),
    });
    page(StatusCode::OK, "home", &data)
}

/// The window switch: a link per window, keeping the source.
fn window_links(current: Window, source_id: &str) -> Vec<Value> {
    Window::ALL
        .iter()
        .map(|w| {
            let label = match w {
                Window::Minute => "Last hour",
                Window::Hour => "Last day",
                Window::Day => "Last 30 days",
            };
            json!({
                "label": label,
                "href": format!("/?{}", query(&[("window", w.as_str()), ("source_id", source_id)])),
                "current": *w == current,
                "window": w.as_str(),
            })
        })
        .collect()
}

fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "—".into(),
    }
}

fn lag(view: &ActivityView) -> Value {
    json!({
        "pending": view.lag.pending,
        "oldest": view.lag.oldest_pending_seconds.map(seconds),
    })
}

/// A wait as people say it: "42 s", "3 min", "2 h".
fn seconds(s: i64) -> String {
    match s {
        ..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3_600),
    }
}

/// The top codes, each linking to the error log filtered by it (and the
/// source shown).
fn codes(view: &ActivityView, source_id: &str) -> Vec<Value> {
    view.top_codes
        .iter()
        .map(|c| {
            json!({
                "code": c.code,
                "count": c.count,
                "href": format!("/errors?{}", query(&[("code", &c.code), ("source_id", source_id)])),
            })
        })
        .collect()
}
