//! Charts drawn on the server as inline SVG, from the time-bucket counts:
//! the home page's bars and the sources list's sparklines. No chart
//! library and nothing fetched at run time; the SVG is part of the page, so
//! it shows with JavaScript off, and each bucket's `<title>` is its
//! tooltip (and what a screen reader reads).
//!
//! The SVG is inserted unescaped into the page, so every text in it goes
//! through `handlebars::html_escape` here (today they are numbers and
//! times, which need none; escaping anyway keeps that true when a label
//! one day holds a source name). Colours are presentation attributes, not
//! `style`, which the pages' CSP (`style-src 'self'`) would refuse.

use crate::domain::activity::{BucketView, Window};
use handlebars::html_escape;
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
/// Room for the y labels on the left and the x labels below.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// The three series a bar group shows, with their colours.
const SERIES: [(&str, &str); 3] = [
    ("received", "#7a8ca3"),
    ("resolved", "#1f8f4e"),
    ("failed", "#c0392b"),
];

fn values(b: &BucketView) -> [u64; 3] {
    [b.received, b.resolved, b.failed]
}

/// A bar chart: one group per bucket (received, resolved, failed side by
/// side), a y axis from 0 to a round maximum, and a time label every few
/// buckets.
pub fn bars(buckets: &[BucketView], window: Window) -> String {
    let max = nice_max(buckets.iter().flat_map(values).max().unwrap_or(0));
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.8 / SERIES.len() as f64).max(1.0);
    let y_of = |v: u64| TOP + plot_h - plot_h * v as f64 / max as f64;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" id="activity-chart" data-window="{window}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="activity-chart-title" xmlns="http://www.w3.org/2000/svg">"#,
        window = window.as_str(),
    );
    let _ = write!(
        svg,
        r#"<title id="activity-chart-title">{}</title>"#,
        html_escape(&summary(buckets, window))
    );
    axis(&mut svg, max, y_of);
    for (i, b) in buckets.iter().enumerate() {
        let x0 = LEFT + slot * i as f64;
        let _ = write!(
            svg,
            r#"<g class="bucket"><title>{}</title><rect class="hover" x="{x0:.1}" y="{TOP}" width="{slot:.1}" height="{plot_h:.1}" fill="transparent"/>"#,
            html_escape(&tooltip(b, window))
        );
        for (k, ((name, colour), v)) in SERIES.iter().zip(values(b)).enumerate() {
            if v == 0 {
                continue;
            }
            let x = x0 + slot * 0.1 + bar * k as f64;
            let y = y_of(v);
            let _ = write!(
                svg,
                r#"<rect class="bar {name}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"/>"#,
                h = TOP + plot_h - y,
            );
        }
        svg.push_str("</g>");
    }
    x_labels(&mut svg, buckets, window, slot);
    svg.push_str("</svg>");
    svg
}

/// The y axis: 0, half and the maximum, with light grid lines.
fn axis(svg: &mut String, max: u64, y_of: impl Fn(u64) -> f64) {
    for v in [0, max / 2, max] {
        let y = y_of(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{WIDTH}" y2="{y:.1}" stroke="#e3e7ec"/><text class="axis" x="{x:.1}" y="{ty:.1}" text-anchor="end" font-size="11" fill="#5b6675">{label}</text>"##,
            x = LEFT - 6.0,
            ty = y + 4.0,
            label = html_escape(&v.to_string()),
        );
    }
}

/// About six time labels along the bottom.
fn x_labels(svg: &mut String, buckets: &[BucketView], window: Window, slot: f64) {
    let every = (buckets.len() / 6).max(1);
    for (i, b) in buckets.iter().enumerate().step_by(every) {
        let _ = write!(
            svg,
            r##"<text class="axis" x="{x:.1}" y="{y:.1}" font-size="11" fill="#5b6675">{label}</text>"##,
            x = LEFT + slot * i as f64,
            y = HEIGHT - 6.0,
            label = html_escape(&label(b, window)),
        );
    }
}

/// A bucket's time as the axis shows it (UTC).
fn label(b: &BucketView, window: Window) -> String {
    let format = match window {
        Window::Minute | Window::Hour => "%H:%M",
        Window::Day => "%b %d",
    };
    b.start.format(format).to_string()
}

fn tooltip(b: &BucketView, window: Window) -> String {
    let when = match window {
        Window::Minute | Window::Hour => b.start.format("%Y-%m-%d %H:%M UTC"),
        Window::Day => b.start.format("%Y-%m-%d"),
    };
    format!(
        "{when}: received {}, resolved {}, failed {}, unmapped {}, duplicate {}",
        b.received, b.resolved, b.failed, b.unmapped, b.duplicate
    )
}

fn summary(buckets: &[BucketView], window: Window) -> String {
    let [received, resolved, failed] = buckets.iter().map(values).fold([0; 3], |acc, v| {
        [acc[0] + v[0], acc[1] + v[1], acc[2] + v[2]]
    });
    let span = match window {
        Window::Minute => "the last hour, by minute",
        Window::Hour => "the last day, by hour",
        Window::Day => "the last 30 days, by day",
    };
    format!("Events over {span}: received {received}, resolved {resolved}, failed {failed}")
}

/// The smallest of 1, 2, 5 × 10ⁿ (at least 4) not below `max`, so the axis
/// reads in round numbers.
fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let candidate = (m * step).max(4);
            if candidate >= max {
                return candidate;
            }
        }
        step = step.saturating_mul(10);
        if step == u64::MAX {
            return max;
        }
    }
}

const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 24.0;

/// A sparkline: received and failed per bucket as two lines, on one scale.
pub fn sparkline(buckets: &[BucketView]) -> String {
    let max = buckets
        .iter()
        .map(|b| b.received.max(b.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let step = SPARK_W / (buckets.len().max(2) - 1) as f64;
    let points = |value: fn(&BucketView) -> u64| {
        let mut out = String::new();
        for (i, b) in buckets.iter().enumerate() {
            let y = SPARK_H - 1.0 - (SPARK_H - 2.0) * value(b) as f64 / max as f64;
            let _ = write!(out, "{:.1},{y:.1} ", step * i as f64);
        }
        out
    };
    let received: u64 = buckets.iter().map(|b| b.received).sum();
    let failed: u64 = buckets.iter().map(|b| b.failed).sum();
    let title = format!("Last 24 hours: received {received}, failed {failed}");
    format!(
        r##"<svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" height="{SPARK_H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{title}</title><polyline class="received" points="{r}" fill="none" stroke="#7a8ca3" stroke-width="1.5"/><polyline class="failed" points="{f}" fill="none" stroke="#c0392b" stroke-width="1.5"/></svg>"##,
        title = html_escape(&title),
        r = points(|b| b.received),
        f = points(|b| b.failed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn bucket(minute: i64, received: u64, failed: u64) -> BucketView {
        BucketView {
            start: Utc.timestamp_opt(1_800_000_000 + minute * 60, 0).unwrap(),
            received,
            resolved: received - failed,
            failed,
            unmapped: 0,
            duplicate: 0,
        }
    }

    #[test]
    fn bars_draw_one_group_per_bucket_with_its_counts_in_the_title() {
        let buckets = vec![bucket(0, 0, 0), bucket(1, 7, 2)];
        let svg = bars(&buckets, Window::Minute);
        assert_eq!(svg.matches(r#"<g class="bucket">"#).count(), 2);
        assert!(svg.contains("received 7, resolved 5, failed 2"), "{svg}");
        assert_eq!(svg.matches(r#"class="bar "#).count(), 3);
        assert!(svg.contains(r#"class="bar failed""#));
        assert!(!svg.contains("style="), "the CSP refuses inline styles");
    }

    #[test]
    fn the_axis_rounds_up_to_a_readable_maximum() {
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(201), 500);
    }

    #[test]
    fn a_sparkline_says_its_totals() {
        let svg = sparkline(&[bucket(0, 3, 1), bucket(1, 2, 0)]);
        assert!(svg.contains("<title>Last 24 hours: received 5, failed 1</title>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
