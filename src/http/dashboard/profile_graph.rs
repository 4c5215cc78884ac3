//! The profile page's "How this profile was joined" section: the graph
//! (`service::graph`) drawn as a small server-side SVG, and the same facts
//! as lists, which are what a screen reader (or anyone without the
//! picture) reads.
//!
//! Profiles are boxes, laid out as a tree (each absorbed profile indented
//! under the one that absorbed it), with their identifiers as labels; each
//! merge is an edge labelled with its event, a link to `/events/{id}`.
//! Bounded so a profile with 100 merges and hundreds of visitor ids stays
//! readable: a few boxes and labels are drawn, "and N more" says what was
//! left out, and the lists below hold the rest.
//!
//! As in `charts`, the SVG is inserted unescaped, so every text in it goes
//! through `handlebars::html_escape` here (identifiers come from webhook
//! payloads), and colours are presentation attributes (the CSP refuses
//! inline `style`). The lists are plain data the template escapes.

use super::display::{clipped, short_id, time};
use crate::domain::identity::{IdentKey, IdentKind, RefusalReason};
use crate::domain::ids::{ProfileId, SourceId};
use crate::service::graph::{GraphEdge, GraphRefusal, MergeCause, ProfileGraph};
use handlebars::html_escape;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const BOX_W: f64 = 330.0;
/// Horizontal step per merge depth, and the deepest level indented.
const INDENT: f64 = 36.0;
const MAX_INDENT: usize = 5;
const HEAD_H: f64 = 24.0;
const LINE_H: f64 = 16.0;
const GAP: f64 = 16.0;
/// Profiles drawn, and identifier labels per profile box.
const DRAWN_PROFILES: usize = 10;
const LABELS_PER_BOX: usize = 3;
/// Characters of a label before it is cut with `…`.
const LABEL_CHARS: usize = 38;
/// Rows each list shows at most.
const LISTED_IDENTIFIERS: usize = 500;
const LISTED_MERGES: usize = 300;
const LISTED_REFUSALS: usize = 200;

/// `email ann@x.org`, kind names with spaces.
pub fn key_text(key: &IdentKey) -> String {
    format!("{} {}", kind_text(key.kind()), key.value())
}

fn kind_text(kind: &IdentKind) -> String {
    kind.as_str().replace('_', " ")
}

/// Cut to `LABEL_CHARS` characters (never inside one).
fn cut(text: &str) -> String {
    if text.chars().count() <= LABEL_CHARS {
        return text.to_string();
    }
    text.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
}

/// The section's template data: `svg` (trusted markup) and the lists.
pub fn section(graph: &ProfileGraph, names: &HashMap<SourceId, String>) -> Value {
    let source = |id: Option<SourceId>| {
        id.map(|id| {
            json!({"id": id.to_string(),
                   "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into())})
        })
    };
    let identifiers: Vec<Value> = graph
        .identifiers
        .iter()
        .take(LISTED_IDENTIFIERS)
        .map(|i| {
            json!({
                "kind": kind_text(i.key.kind()),
                "value": clipped(i.key.value()),
                "event": i.first.as_ref().map(|e| short_id(&e.event_id.to_string())),
                "time": i.first.as_ref().map(|e| time(&e.at)),
                "at": i.first.as_ref().map(|e| e.at),
                "source": source(i.first.as_ref().and_then(|e| e.source_id)),
                "via": i.via.map(|v| v.as_str().replace('_', " ")),
                "came_with": i.came_with.filter(|p| *p != graph.profile_id).map(|p| short_id(&p.to_string())),
            })
        })
        .collect();
    let merges: Vec<Value> = graph
        .edges
        .iter()
        .take(LISTED_MERGES)
        .map(|e| merge_row(e, graph.profile_id, &source))
        .collect();
    let refusals: Vec<Value> = graph
        .refusals
        .iter()
        .take(LISTED_REFUSALS)
        .map(|r| {
            json!({
                "text": clipped(&refusal_sentence(r)),
                "other": r.other.map(|p| short_id(&p.to_string())),
                "event": short_id(&r.event.event_id.to_string()),
                "time": time(&r.event.at),
                "at": r.event.at,
                "count": (r.count > 1).then_some(r.count),
            })
        })
        .collect();
    json!({
        "svg": svg(graph),
        "identifiers": identifiers,
        "more_identifiers": more(graph.identifiers.len(), LISTED_IDENTIFIERS),
        "merges": merges,
        "more_merges": more(graph.edges.len(), LISTED_MERGES),
        "refusals": refusals,
        "more_refusals": more(graph.refusals.len(), LISTED_REFUSALS),
        "unknown_first": graph.identifiers.iter().filter(|i| i.first.is_none()).count(),
        "history_complete": graph.history_complete,
    })
}

/// How many were left out of a list, `None` when none were.
fn more(total: usize, shown: usize) -> Option<usize> {
    (total > shown).then(|| total - shown)
}

fn merge_row(
    e: &GraphEdge,
    live: ProfileId,
    source: &impl Fn(Option<SourceId>) -> Option<Value>,
) -> Value {
    let (event, src) = match &e.cause {
        MergeCause::Event(ev) => (
            Some(short_id(&ev.event_id.to_string())),
            source(ev.source_id),
        ),
        MergeCause::Manual { .. } => (None, None),
    };
    let by = match &e.cause {
        MergeCause::Manual { by } => Some(by.clone().unwrap_or_else(|| "not recorded".into())),
        MergeCause::Event(_) => None,
    };
    json!({
        "time": time(&e.at),
        "at": e.at,
        "from": short_id(&e.from.to_string()),
        "into": short_id(&e.into.to_string()),
        "into_here": e.into == live,
        "event": event,
        "source": src,
        "manual_by": by,
        "joined": joined_text(e),
        "merge_id": e.merge_id.to_string(),
    })
}

/// `email ann@x.org (held by …1234) met external id 42 (held by …abcd)`.
fn joined_text(e: &GraphEdge) -> String {
    let Some(joined) = &e.joined_by else {
        return match e.cause {
            MergeCause::Manual { .. } => "merged by hand: no identifier joined them".into(),
            MergeCause::Event(_) => "which identifiers joined them was not recorded".into(),
        };
    };
    let side = |key: &Option<IdentKey>, id: ProfileId| match key {
        Some(k) => format!("{} (held by {})", key_text(k), tail(id)),
        None => format!("an identifier of {} (not recorded)", tail(id)),
    };
    format!(
        "the event carried {} and {}",
        side(&joined.into, e.into),
        side(&joined.from, e.from)
    )
}

/// The last 8 characters of an id, as `short_id` shows it.
fn tail(id: ProfileId) -> String {
    let s = id.to_string();
    let skip = s.chars().count().saturating_sub(8);
    format!("…{}", s.chars().skip(skip).collect::<String>())
}

/// One refusal told from this profile's side; the other profile and the
/// event are links beside it.
pub fn refusal_sentence(r: &GraphRefusal) -> String {
    refused_between(
        &IdentKey::new(r.key.kind().clone(), r.key.value()),
        &r.reason,
        r.owned_here,
        r.joined.is_some(),
        r.arrived_with.as_ref(),
    )
}

/// The sentence for an identifier refused because it would have joined
/// two people: `owned_here` when the identifier is this profile's and the
/// event went elsewhere (`went_somewhere`: it joined some profile), else
/// the event joined this profile and the identifier is another's.
/// `with`: the strongest identifier the event kept, when known.
pub fn refused_between(
    key: &IdentKey,
    reason: &RefusalReason,
    owned_here: bool,
    went_somewhere: bool,
    with: Option<&IdentKey>,
) -> String {
    let what = format!("{} `{}`", kind_text(key.kind()), key.value());
    let with = with.map(|k| format!("{} `{}`", kind_text(k.kind()), k.value()));
    let why = match reason {
        RefusalReason::NeverMerge => "a never-merge rule keeps the two apart".to_string(),
        RefusalReason::Conflict(kind) => format!("a profile holds one {}", kind_text(kind)),
        other => other.code().replace('_', " "),
    };
    let code = reason.code();
    match (owned_here, with) {
        (true, Some(with)) if went_somewhere => format!(
            "This profile's {what} arrived with {with}, which belongs to another profile; it was not joined ({why}: {code})"
        ),
        (true, _) if went_somewhere => format!(
            "This profile's {what} arrived on an event that joined another profile; it was not joined ({why}: {code})"
        ),
        (true, _) => format!(
            "This profile's {what} arrived on an event that joined no profile; it was not joined ({why}: {code})"
        ),
        (false, Some(with)) => format!(
            "{with} (this profile's) arrived with {what}, which belongs to another profile; it was not joined ({why}: {code})"
        ),
        (false, None) => format!(
            "An event of this profile arrived with {what}, which belongs to another profile; it was not joined ({why}: {code})"
        ),
    }
}

/// A profile box placed in the drawing.
struct Placed {
    id: ProfileId,
    x: f64,
    y: f64,
    h: f64,
    parent: Option<usize>,
}

/// The profiles in tree order (each after the one that absorbed it),
/// with their depth. A profile whose absorber is not in the graph hangs
/// off the live one; a loop in bad data is cut by `seen`.
fn tree_order(graph: &ProfileGraph) -> Vec<(ProfileId, usize, Option<ProfileId>)> {
    let ids: BTreeSet<ProfileId> = graph.nodes.iter().map(|n| n.profile_id).collect();
    let mut children: BTreeMap<ProfileId, Vec<ProfileId>> = BTreeMap::new();
    for node in graph.nodes.iter().filter(|n| !n.live) {
        let parent = graph
            .parent_of(node.profile_id)
            .filter(|p| ids.contains(p) && *p != node.profile_id)
            .unwrap_or(graph.profile_id);
        children.entry(parent).or_default().push(node.profile_id);
    }
    let mut out = Vec::with_capacity(ids.len());
    let mut seen = BTreeSet::new();
    let mut stack = vec![(graph.profile_id, 0usize, None)];
    while let Some((id, depth, parent)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        out.push((id, depth, parent));
        if let Some(kids) = children.get(&id) {
            for kid in kids.iter().rev() {
                stack.push((*kid, depth + 1, Some(id)));
            }
        }
    }
    // Unreachable through a loop: still listed, under the live profile.
    for node in &graph.nodes {
        if !seen.contains(&node.profile_id) {
            out.push((node.profile_id, 1, Some(graph.profile_id)));
        }
    }
    out
}

/// Each profile's identifier labels (those it came with; identifiers of
/// unknown origin go on the live profile), strongest first.
fn labels(graph: &ProfileGraph) -> BTreeMap<ProfileId, Vec<String>> {
    let mut out: BTreeMap<ProfileId, Vec<String>> = BTreeMap::new();
    for i in &graph.identifiers {
        let on = i.came_with.unwrap_or(graph.profile_id);
        let text = match i.first {
            Some(_) => key_text(&i.key),
            None => format!("{} (first event unknown)", key_text(&i.key)),
        };
        out.entry(on).or_default().push(text);
    }
    out
}

/// The graph as inline SVG markup.
pub fn svg(graph: &ProfileGraph) -> String {
    let order = tree_order(graph);
    let labels = labels(graph);
    let drawn = order.len().min(DRAWN_PROFILES);
    let mut placed: Vec<Placed> = Vec::with_capacity(drawn);
    let mut y = 8.0;
    for (id, depth, parent) in order.iter().take(drawn) {
        let count = labels.get(id).map_or(0, Vec::len);
        let lines = count.min(LABELS_PER_BOX) + usize::from(count > LABELS_PER_BOX);
        let h = HEAD_H + LINE_H * lines.max(1) as f64 + 6.0;
        let parent = parent.and_then(|p| placed.iter().position(|q| q.id == p));
        placed.push(Placed {
            id: *id,
            x: 8.0 + INDENT * (*depth).min(MAX_INDENT) as f64,
            y,
            h,
            parent,
        });
        y += h + GAP;
    }
    let left_out = order.len() - drawn;
    let height = y + if left_out > 0 { LINE_H } else { 0.0 };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart profile-graph" id="profile-graph-svg" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-labelledby="profile-graph-title" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(
        svg,
        r#"<title id="profile-graph-title">{}</title>"#,
        html_escape(&format!(
            "How profile {} was joined: {} profile(s), {} merge(s), {} identifier(s); the lists below say the same",
            graph.profile_id,
            graph.nodes.len(),
            graph.edges.len(),
            graph.identifiers.len()
        ))
    );
    for p in &placed {
        if let Some(parent) = p.parent.map(|i| &placed[i]) {
            edge(&mut svg, graph, parent, p);
        }
    }
    for p in &placed {
        node(
            &mut svg,
            graph,
            p,
            labels.get(&p.id).map_or(&[][..], Vec::as_slice),
        );
    }
    if left_out > 0 {
        let _ = write!(
            svg,
            r##"<text class="more" x="8" y="{:.1}" font-size="12" fill="#555">and {left_out} more profile(s), listed below</text>"##,
            y + 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn node(svg: &mut String, graph: &ProfileGraph, p: &Placed, labels: &[String]) {
    let live = p.id == graph.profile_id;
    let (stroke, fill) = if live {
        ("#1f8f4e", "#f1f8f4")
    } else {
        ("#7a8ca3", "#ffffff")
    };
    let head = if live {
        format!("profile {} (this one)", tail(p.id))
    } else {
        format!("profile {}", tail(p.id))
    };
    let _ = write!(
        svg,
        r##"<g class="node"><rect x="{x:.1}" y="{y:.1}" width="{BOX_W}" height="{h:.1}" rx="4" fill="{fill}" stroke="{stroke}"/><a href="/profiles/{id}"><text x="{tx:.1}" y="{ty:.1}" font-size="13" font-weight="bold" fill="#1a4f8b">{head}</text></a>"##,
        x = p.x,
        y = p.y,
        h = p.h,
        id = html_escape(&p.id.to_string()),
        tx = p.x + 8.0,
        ty = p.y + 17.0,
        head = html_escape(&head),
    );
    let mut lines: Vec<String> = labels.iter().take(LABELS_PER_BOX).map(|l| cut(l)).collect();
    if labels.len() > LABELS_PER_BOX {
        lines.push(format!("and {} more", labels.len() - LABELS_PER_BOX));
    }
    if lines.is_empty() {
        lines.push("no identifiers of its own".into());
    }
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<text class="ident" x="{:.1}" y="{:.1}" font-size="12" fill="#333">{}</text>"##,
            p.x + 12.0,
            p.y + HEAD_H + LINE_H * i as f64 + 10.0,
            html_escape(line)
        );
    }
    svg.push_str("</g>");
}

/// The elbow from the absorbing profile down to the absorbed one, and the
/// merge's label to the right of the absorbed box.
fn edge(svg: &mut String, graph: &ProfileGraph, parent: &Placed, child: &Placed) {
    let x = parent.x + 16.0;
    let mid = child.y + HEAD_H / 2.0;
    let _ = write!(
        svg,
        r##"<path class="merge" d="M{x:.1} {:.1} V{mid:.1} H{:.1}" fill="none" stroke="#1f8f4e" stroke-width="1.5"/>"##,
        parent.y + parent.h,
        child.x,
    );
    let merge = graph.edges.iter().rev().find(|e| e.from == child.id);
    let lx = child.x + BOX_W + 8.0;
    let ly = child.y + 15.0;
    match merge.map(|e| (&e.cause, e.at)) {
        Some((MergeCause::Event(ev), at)) => {
            let id = html_escape(&ev.event_id.to_string());
            let _ = write!(
                svg,
                r##"<a href="/events/{id}"><title>merged by event {id}</title><text class="merge-label" x="{lx:.1}" y="{ly:.1}" font-size="12" fill="#1a4f8b">merged by event {}</text></a><text x="{lx:.1}" y="{:.1}" font-size="11" fill="#555">{} UTC</text>"##,
                html_escape(&tail_of(&ev.event_id.to_string())),
                ly + LINE_H,
                html_escape(&time(&at)),
            );
        }
        Some((MergeCause::Manual { .. }, at)) => {
            let _ = write!(
                svg,
                r##"<text class="merge-label" x="{lx:.1}" y="{ly:.1}" font-size="12" fill="#555">merged by hand</text><text x="{lx:.1}" y="{:.1}" font-size="11" fill="#555">{} UTC</text>"##,
                ly + LINE_H,
                html_escape(&time(&at)),
            );
        }
        None => {
            let _ = write!(
                svg,
                r##"<text class="merge-label" x="{lx:.1}" y="{ly:.1}" font-size="12" fill="#555">merge not recorded</text>"##
            );
        }
    }
}

fn tail_of(id: &str) -> String {
    let skip = id.chars().count().saturating_sub(8);
    format!("…{}", id.chars().skip(skip).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::{GraphNode, IdentifierOrigin};

    fn graph_with(n_profiles: usize, n_ids: usize, value: &str) -> ProfileGraph {
        let live = ProfileId::new();
        let nodes = std::iter::once(GraphNode {
            profile_id: live,
            live: true,
            created: None,
        })
        .chain((1..n_profiles).map(|_| GraphNode {
            profile_id: ProfileId::new(),
            live: false,
            created: None,
        }))
        .collect();
        let identifiers = (0..n_ids)
            .map(|i| IdentifierOrigin {
                key: IdentKey::new(IdentKind::VisitorId, format!("{value}{i}")),
                first: None,
                came_with: None,
                via: None,
            })
            .collect();
        ProfileGraph {
            profile_id: live,
            nodes,
            edges: Vec::new(),
            identifiers,
            refusals: Vec::new(),
            history_complete: true,
        }
    }

    #[test]
    fn a_hostile_identifier_is_escaped_in_the_svg() {
        let drawn = svg(&graph_with(1, 1, "<script>alert(1)</script>"));
        assert!(!drawn.contains("<script>"), "{drawn}");
        assert!(drawn.contains("&lt;script&gt;"), "{drawn}");
    }

    #[test]
    fn many_profiles_and_identifiers_draw_a_bounded_picture() {
        let drawn = svg(&graph_with(101, 400, "v-"));
        assert_eq!(drawn.matches("<g class=\"node\">").count(), DRAWN_PROFILES);
        assert!(drawn.contains("and 91 more profile(s)"), "{drawn}");
        assert!(drawn.contains("and 397 more"), "{drawn}");
        assert!(drawn.len() < 20_000, "{} bytes", drawn.len());
    }

    #[test]
    fn refusal_sentences_read_from_either_side_for_any_kind() {
        let stripe = IdentKind::parse("stripe_customer_id").unwrap();
        let email = IdentKey::new(IdentKind::Email, "ann@x.org");
        let cus = IdentKey::new(stripe.clone(), "cus_B7");
        let reason = RefusalReason::Conflict(stripe);
        let on_ann = refused_between(&email, &reason, true, true, Some(&cus));
        assert_eq!(
            on_ann,
            "This profile's email `ann@x.org` arrived with stripe customer id `cus_B7`, which belongs to another profile; it was not joined (a profile holds one stripe customer id: stripe_customer_id_conflict)"
        );
        let on_b = refused_between(&email, &reason, false, true, Some(&cus));
        assert!(on_b.starts_with("stripe customer id `cus_B7` (this profile's) arrived with email `ann@x.org`, which belongs to another profile"), "{on_b}");
        let never = refused_between(&email, &RefusalReason::NeverMerge, true, true, Some(&cus));
        assert!(
            never.contains("a never-merge rule keeps the two apart"),
            "{never}"
        );
    }
}
