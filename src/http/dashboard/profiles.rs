//! `/profiles`: find a profile by email, external id or visitor id, and one
//! profile's page: identities, traits, events across sources and the history
//! of creates, attaches, merges and refusals.

use super::csrf;
use super::display::{clipped, event_row, options, query, short_id, source_names, time};
use super::profile_graph;
use super::render::{page, PageError, PageResult};
use super::session::Authed;
use crate::domain::identity::{
    AuditChange, AuditEntry, AuditKind, IdentKey, IdentKind, Profile, Refusal,
};
use crate::domain::ids::{ProfileId, SourceId};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::graph::ProfileGraph;
use crate::service::profiles::{Page, SearchKind};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Events shown on a profile page.
const EVENTS: usize = 50;

/// What the search box looks for.
const KINDS: [(&str, &str); 4] = [
    ("any", "Any identifier"),
    ("email", "Email"),
    ("external_id", "External id"),
    ("visitor_id", "Visitor id"),
];

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    /// The list page to show: profiles older than this one.
    #[serde(default)]
    before: String,
    /// Set by the redirect after an erasure, to say it happened.
    #[serde(default)]
    erased: String,
}

/// Profiles per page of the list.
const LIST: usize = 50;

/// What a search box's `kind` asks for: a built-in, a team's kind by its
/// name, or any.
fn search_kind(kind: &str) -> SearchKind {
    match kind {
        "" | "any" => SearchKind::Any,
        other => IdentKind::parse(other).map_or(SearchKind::Any, SearchKind::Ident),
    }
}

/// The search box's kinds: any, the built-ins, then the team's own.
async fn search_options(state: &AppState, selected: &str) -> Result<Vec<Value>, PageError> {
    let defined = state.services.identity_kinds().await?.kinds;
    let own = defined.into_iter().filter(|k| !k.builtin).map(|k| {
        (
            k.name.as_str().to_string(),
            k.name.as_str().replace('_', " "),
        )
    });
    let items = KINDS
        .iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .chain(own);
    Ok(options(items, selected))
}

/// A profile's values of the team's kinds: `[{"kind", "values"}]`.
fn own_identifiers(profile: &Profile) -> Vec<Value> {
    profile
        .identifiers
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(kind, values)| {
            json!({
                "kind": kind.as_str(),
                "values": values.iter().map(|v| clipped(v)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The profile list, newest first, 50 a page, with a search box: an exact
/// identifier (or a profile id) redirects to its profile; anything else
/// lists the profiles with an identifier starting with it.
pub async fn search(
    State(state): State<AppState>,
    session: Authed,
    Query(search): Query<SearchQuery>,
) -> PageResult {
    let q = search.q.trim();
    let kind = search_kind(&search.kind);
    if !q.is_empty() && search.before.is_empty() {
        if let Some(id) = state.services.search_profile(q, kind.clone()).await? {
            return Ok(Redirect::to(&format!("/profiles/{id}")).into_response());
        }
    }
    let page_of = Page {
        limit: LIST,
        before: search.before.parse::<ProfileId>().ok(),
    };
    let found = state.services.list_profiles(q, kind, page_of).await?;
    let next_url = found.next.map(|next| {
        let pairs = [
            ("q", search.q.as_str()),
            ("kind", search.kind.as_str()),
            ("before", &next.to_string()),
        ];
        format!("/profiles?{}", query(&pairs))
    });
    let rows: Vec<Value> = found.profiles.iter().map(profile_row).collect();
    let data = json!({
        "title": "Profiles", "nav": "profiles", "csrf": session.csrf,
        "q": search.q,
        "kinds": search_options(&state, &search.kind).await?,
        "searched": !q.is_empty(),
        "profiles": rows,
        "next_url": next_url,
        "truncated": found.truncated,
        "erased": profile_id_in(&search.erased).map(|id| id.to_string()),
    });
    page(StatusCode::OK, "profiles", &data)
}

/// One row of the profile list: its first identifiers of each kind.
fn profile_row(profile: &Profile) -> Value {
    let first = |values: &[String]| values.first().map(|v| clipped(v));
    json!({
        "id": short_id(&profile.id.to_string()),
        "email": first(&profile.emails),
        "external_id": first(&profile.external_ids),
        "visitor_id": first(&profile.visitor_ids),
        "more": profile.emails.len() + profile.external_ids.len() + profile.visitor_ids.len() > 3,
        "own": own_identifiers(profile),
        "last_seen": time(&profile.last_seen),
        "last_at": profile.last_seen,
        "event_count": profile.event_count,
    })
}

/// One profile; an absorbed id shows its survivor with a note.
/// History lines per page of the profile page.
const HISTORY: usize = 50;

#[derive(Deserialize)]
pub struct ShowQuery {
    /// The history page to show: lines older than this one.
    #[serde(default)]
    history_before: String,
}

pub async fn show(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult {
    let pid: ProfileId = id
        .parse()
        .map_err(|_| AppError::not_found(format!("no profile `{id}`")))?;
    let history_page = Page {
        limit: HISTORY,
        before: q.history_before.parse::<uuid::Uuid>().ok(),
    };
    let found = state
        .services
        .profile_page(pid, EVENTS, history_page)
        .await?;
    let (profile, lines) = (found.profile, found.history);
    let names = source_names(&state).await?;
    let graph = state.services.profile_graph(profile.id).await?;
    let events: Vec<Value> = found
        .events
        .events
        .iter()
        .map(|event| event_row(event, &names))
        .collect();
    let history: Vec<Value> = lines
        .history
        .iter()
        .map(|line| {
            let mut row = history_row(&line.entry, &names, Some(&graph));
            if line.count > 1 {
                row["count"] = json!(line.count);
                row["first_time"] = json!(time(&line.first_seen));
            }
            row
        })
        .collect();
    let more_history = lines
        .next
        .map(|next| format!("/profiles/{}?history_before={next}", profile.id));
    let merged_into = (profile.id.to_string() != id).then(|| id.clone());
    let data = json!({
        "title": "Profile", "nav": "profiles", "csrf": session.csrf,
        "p": profile_view(&profile),
        "merged_into": merged_into,
        "events": events,
        "more_events": found.events.next.is_some(),
        "history": history,
        "more_history": more_history,
        "graph": profile_graph::section(&graph, &names),
    });
    page(StatusCode::OK, "profile", &data)
}

fn profile_view(profile: &Profile) -> Value {
    let list = |values: &[String]| values.iter().map(|v| clipped(v)).collect::<Vec<_>>();
    let traits: Vec<Value> = profile
        .traits
        .iter()
        .map(|(name, t)| {
            let value = match &t.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({
                "name": name,
                "value": clipped(&value),
                "time": time(&t.at),
                "at": t.at,
                "event": short_id(&t.event_id.to_string()),
            })
        })
        .collect();
    json!({
        "id": profile.id.to_string(),
        "external_ids": list(&profile.external_ids),
        "emails": list(&profile.emails),
        "visitor_ids": list(&profile.visitor_ids),
        "own": own_identifiers(profile),
        "traits": traits,
        "first_seen": time(&profile.first_seen),
        "last_seen": time(&profile.last_seen),
        "event_count": profile.event_count,
        "merged_from": profile.merged_from.iter().map(|id| short_id(&id.to_string())).collect::<Vec<_>>(),
        "created": time(&profile.created_at),
    })
}

/// `email ada@example.com, external id c-88`.
fn keys_text(keys: &[IdentKey]) -> String {
    keys.iter()
        .map(|k| format!("{} {}", k.kind().as_str().replace('_', " "), k.value()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One refused identifier as seen from the profile `this` (whose history
/// shows it), and the other profile it names, if any. A refusal that kept
/// two people apart (a limit-1 kind's conflict, a never-merge rule) reads
/// from either side: on the owner's profile its identifier "arrived with"
/// the event's strongest kept one (`with`, from the graph, when the event
/// is still stored) and went elsewhere; on the profile the event joined,
/// the event "arrived with" the other profile's identifier.
fn refusal_text(
    r: &Refusal,
    joined: Option<ProfileId>,
    this: ProfileId,
    with: Option<&IdentKey>,
) -> (String, Option<ProfileId>) {
    let key = IdentKey::new(r.kind.clone(), r.value.clone());
    match r.owner {
        Some(owner) => {
            let owned_here = owner == this;
            let text =
                profile_graph::refused_between(&key, &r.reason, owned_here, joined.is_some(), with);
            (text, if owned_here { joined } else { Some(owner) })
        }
        None => {
            let what = format!("{} `{}`", r.kind.as_str().replace('_', " "), r.value);
            (
                format!("{what} ({})", r.reason.code().replace('_', " ")),
                None,
            )
        }
    }
}

/// A history line's text and the profiles it links to.
fn history_text(entry: &AuditEntry, graph: Option<&ProfileGraph>) -> (String, Vec<Value>) {
    let (change, this) = (&entry.change, entry.profile_id);
    let profiles = |ids: &[ProfileId]| -> Vec<Value> {
        ids.iter().map(|id| short_id(&id.to_string())).collect()
    };
    match change {
        AuditChange::Create(d) => (
            format!("Created from {}", or_nothing(keys_text(&d.identifiers))),
            Vec::new(),
        ),
        AuditChange::Attach(d) => (
            format!("Added {}", or_nothing(keys_text(&d.added))),
            Vec::new(),
        ),
        AuditChange::Merge(d) => {
            let absorbed = profiles(&d.absorbed);
            let added = keys_text(&d.added);
            let mut text = format!("Merged {} other profile(s) into this one", absorbed.len());
            if !added.is_empty() {
                text.push_str(&format!(" and added {added}"));
            }
            (text, absorbed)
        }
        AuditChange::ManualMerge(d) => (
            "Merged 1 profile(s) in by hand".to_string(),
            profiles(&[d.from]),
        ),
        AuditChange::Refusal(d) => {
            let (texts, others): (Vec<String>, Vec<Option<ProfileId>>) = d
                .refusals
                .iter()
                .map(|r| {
                    let with = graph.zip(entry.event_id).and_then(|(g, event)| {
                        let key = IdentKey::new(r.kind.clone(), r.value.clone());
                        g.refusal(event, &key)?.arrived_with.as_ref()
                    });
                    refusal_text(r, d.joined, this, with)
                })
                .unzip();
            let mut linked: Vec<ProfileId> = Vec::new();
            for id in others.into_iter().flatten() {
                if !linked.contains(&id) {
                    linked.push(id);
                }
            }
            // A refusal between two people is a sentence of its own (it
            // says "was not joined"); others read "Refused email `x` (…)".
            let between = d.refusals.iter().all(|r| r.owner.is_some());
            let lead = if between { "" } else { "Refused " };
            (format!("{lead}{}", texts.join("; ")), profiles(&linked))
        }
        AuditChange::Erasure(d) => (
            format!(
                "Erased ({} identifiers, {} events)",
                d.identifiers, d.events
            ),
            Vec::new(),
        ),
        AuditChange::Split(d) => super::split::history_text(d, this),
        // What an erasure left: the kind's sentence with nothing in it, as
        // the untyped rendering showed it.
        AuditChange::Redacted(kind) => (
            match kind {
                AuditKind::Create => format!("Created from {}", or_nothing(String::new())),
                AuditKind::Attach => format!("Added {}", or_nothing(String::new())),
                AuditKind::Merge => "Merged 0 other profile(s) into this one".to_string(),
                AuditKind::ManualMerge => "Merged 1 profile(s) in by hand".to_string(),
                AuditKind::Refusal => "Refused ".to_string(),
                AuditKind::Erasure => "Erased (0 identifiers, 0 events)".to_string(),
                AuditKind::Split => "Split a merge apart".to_string(),
            },
            Vec::new(),
        ),
        AuditChange::Unknown { detail, .. } => (detail.to_string(), Vec::new()),
    }
}

/// One audit line as a sentence, with links to the profiles it names.
fn history_row(
    entry: &AuditEntry,
    names: &HashMap<SourceId, String>,
    graph: Option<&ProfileGraph>,
) -> Value {
    let (text, links) = history_text(entry, graph);
    let source = entry.change.source_id().map(|id| {
        json!({
            "id": id.to_string(),
            "name": names.get(&id).cloned().unwrap_or_else(|| "(deleted source)".into()),
        })
    });
    let badge = match AuditKind::parse(entry.kind()) {
        Some(AuditKind::Refusal | AuditKind::Erasure) => "failed",
        Some(AuditKind::Merge | AuditKind::ManualMerge) => "pending",
        _ => "resolved",
    };
    json!({
        "kind": entry.kind().replace('_', " "),
        "badge": badge,
        "time": time(&entry.at),
        "at": entry.at,
        "text": clipped(&text),
        "profiles": links,
        "source": source,
        "event": entry.event_id.map(|id| short_id(&id.to_string())),
        // A merge an event made can be split (the split page says whether
        // it still can).
        // (Filed under the merge's survivor, whose id leads to the live
        // profile.)
        "split": matches!(entry.change, AuditChange::Merge(_))
            .then(|| format!("/profiles/{}/split?merge={}", entry.profile_id, entry.id)),
    })
}

fn or_nothing(s: String) -> String {
    if s.is_empty() {
        "no identifiers".into()
    } else {
        s
    }
}

/// `?from=`: the profile to merge into this one, as typed on its page.
#[derive(Deserialize)]
pub struct MergeQuery {
    #[serde(default)]
    from: String,
}

#[derive(Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
}

fn profile_id_in(text: &str) -> Option<ProfileId> {
    text.trim().parse().ok()
}

/// The merge confirmation: both profiles side by side, and the POST that
/// merges `from` into this one. Without a valid `from` it asks for one.
pub async fn merge_confirm(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(q): Query<MergeQuery>,
) -> PageResult {
    let into = state.services.profile(parse_profile(&id)?).await?;
    let from = match profile_id_in(&q.from) {
        Some(from) => Some(state.services.profile(from).await?),
        None => None,
    };
    let same = from.as_ref().is_some_and(|f| f.id == into.id);
    let data = json!({
        "title": "Merge profiles", "nav": "profiles", "csrf": session.csrf,
        "into": profile_view(&into),
        "from": from.as_ref().map(profile_view),
        "typed": q.from,
        "bad_id": !q.from.trim().is_empty() && from.is_none(),
        "same": same,
    });
    page(StatusCode::OK, "profile_merge", &data)
}

/// Merges the confirmed profile into this one through the same service
/// call (and so the same `manual_merge` audit line) as
/// `POST /api/profiles/{id}/merge`, then shows the survivor (303).
pub async fn merge(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<MergeForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let into = parse_profile(&id)?;
    let from = profile_id_in(&form.from)
        .ok_or_else(|| AppError::not_found(format!("no profile `{}`", form.from)))?;
    let survivor = state.services.merge_profiles(from, into).await?;
    Ok(Redirect::to(&format!("/profiles/{}", survivor.id)).into_response())
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// What erasing a profile asks to be typed: its first email, or its id
/// when it has none.
fn erase_word(profile: &Profile) -> String {
    profile
        .emails
        .first()
        .cloned()
        .unwrap_or_else(|| profile.id.to_string())
}

/// Whether the typed confirmation names the profile (an email compared
/// as lookups compare it: trimmed, ASCII case ignored).
fn confirms(profile: &Profile, typed: &str) -> bool {
    let typed = crate::domain::identity::trim(typed);
    !typed.is_empty() && typed.eq_ignore_ascii_case(&erase_word(profile))
}

fn erase_page(session: &Authed, profile: &Profile, wrong: bool) -> PageResult {
    let data = json!({
        "title": "Erase profile", "nav": "profiles", "csrf": session.csrf,
        "p": profile_view(profile),
        "word": erase_word(profile),
        "word_is_email": !profile.emails.is_empty(),
        "wrong": wrong,
    });
    let status = if wrong {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(status, "profile_erase", &data)
}

/// The erasure confirmation: "type the profile's email to confirm".
pub async fn erase_confirm(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
) -> PageResult {
    let profile = state.services.profile(parse_profile(&id)?).await?;
    erase_page(&session, &profile, false)
}

/// Erases through the same service call (and audit) as
/// `DELETE /api/profiles/{id}` once the email typed matches, then goes to
/// the profile list (303). A wrong confirmation shows the form again.
pub async fn erase(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<EraseForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let profile = state.services.profile(parse_profile(&id)?).await?;
    if !confirms(&profile, &form.confirm) {
        return erase_page(&session, &profile, true);
    }
    state.services.erase_profile(profile.id).await?;
    Ok(Redirect::to(&format!("/profiles?erased={}", profile.id)).into_response())
}

fn parse_profile(id: &str) -> Result<ProfileId, AppError> {
    id.parse()
        .map_err(|_| AppError::not_found(format!("no profile `{id}`")))
}
