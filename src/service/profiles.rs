//! Profiles: lookup by identifier or id, a profile's events and history,
//! manual merge and erasure.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::identity::{self, Blocklist, IdentKey, IdentKind, KindSet, Profile, Refusal};
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::summary::Bounds;
use crate::domain::views::EventView;
use crate::store::{EventLog, StateStore};

/// What an erasure removed and a page of history (store types today;
/// re-exported so HTTP names them through the service that answers them).
pub use crate::store::ErasureReport;
pub use crate::store::{HistoryLine, HistoryPage};
use serde::Serialize;

/// A lookup by identifier: the first given of external id, email and
/// visitor id (in that order, the priority order) is used, then `kind` +
/// `value` (any kind, a team's own included).
#[derive(Clone, Debug, Default)]
pub struct ProfileLookup {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub visitor_id: Option<String>,
    pub kind: Option<String>,
    pub value: Option<String>,
}

/// What a dashboard search box looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKind {
    /// Each identifier kind in priority order, then a profile id.
    Any,
    Ident(IdentKind),
}

impl SearchKind {
    /// The identifier kinds searched, in priority order.
    fn kinds(&self, set: &KindSet) -> Vec<IdentKind> {
        match self {
            SearchKind::Ident(kind) => vec![kind.clone()],
            SearchKind::Any => set.all().iter().map(|s| s.name.clone()).collect(),
        }
    }
}

/// A page of a profile's events, newest first: the API's `{"events", "next"}`.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileEvents {
    pub events: Vec<EventView>,
    /// `before=` of the next page, after a full page.
    pub next: Option<EventId>,
}

/// `limit` and `before` of a paged list.
#[derive(Clone, Copy, Debug)]
pub struct Page<C> {
    pub limit: usize,
    pub before: Option<C>,
}

/// What a profile page shows.
#[derive(Clone, Debug)]
pub struct ProfilePage {
    pub profile: Profile,
    pub events: ProfileEvents,
    pub history: HistoryPage,
}

/// The key an identifier is stored under, normalised and checked exactly
/// as an event's identifiers are (`identity::normalise` with the built-in
/// blocklist): `Ok(None)` for an empty value, `Err` for one no event could
/// have stored.
fn ident_key(kind: IdentKind, value: &str, kinds: &KindSet) -> Result<Option<IdentKey>, Refusal> {
    match identity::normalise_one(&kind, value, kinds, &Blocklist::default()) {
        Ok(clean) => Ok(clean.map(|v| IdentKey::new(kind, v))),
        Err(reason) => Err(Refusal::new(kind, identity::trim(value), reason)),
    }
}

/// A lookup of a value no event could have stored: `NotFound` (as before
/// the check, and as the API's clients and tests expect), saying why.
fn refused(refusal: Refusal) -> ServiceError {
    ServiceError::NotFound(format!(
        "no profile has this identifier: {} `{}` is refused as an identifier ({})",
        refusal.kind.as_str(),
        refusal.value,
        refusal.reason.code()
    ))
}

/// A page of the profile list, newest first.
#[derive(Clone, Debug)]
pub struct ProfileList {
    pub profiles: Vec<Profile>,
    /// `before=` of the next (older) page.
    pub next: Option<ProfileId>,
    /// The search stopped at its bound (`store::PROFILE_SEARCH_SCAN`
    /// identifiers): a longer prefix finds the rest.
    pub truncated: bool,
}

/// The identifier-key prefixes a search box's text stands for, normalised
/// as events' identifiers are (trimmed; an email lowercased, ASCII only):
/// one per kind asked. Not checked as whole identifiers are, since a
/// prefix (`ada@`) is rarely a valid one.
fn search_prefixes(q: &str, kind: &SearchKind, set: &KindSet) -> Vec<IdentKey> {
    let q = identity::trim(q);
    if q.is_empty() {
        return Vec::new();
    }
    kind.kinds(set)
        .into_iter()
        .map(|kind| match set.spec(&kind).map(|s| s.normalise) {
            Some(identity::Normalise::Email | identity::Normalise::Lowercase) => {
                IdentKey::new(kind, identity::lowercase_email(q))
            }
            _ => IdentKey::new(kind, q),
        })
        .collect()
}

fn no_profile(id: ProfileId) -> ServiceError {
    ServiceError::NotFound(format!("no profile `{id}` (it may have been erased)"))
}

impl Services {
    /// The profile owning an identifier. A value no event could have
    /// stored (refused by `identity::normalise`: blocked placeholder,
    /// invalid email, invisible characters, too long) is `NotFound` with
    /// the refusal's reason in the message.
    pub async fn find_profile(&self, lookup: ProfileLookup) -> ServiceResult<Profile> {
        let config = self.store.identity_config();
        let by_kind = match (lookup.kind, lookup.value) {
            (Some(kind), value) => {
                let kind = IdentKind::parse(kind.trim())
                    .ok()
                    .filter(|k| config.kinds.spec(k).is_some())
                    .ok_or_else(|| {
                        ServiceError::BadRequest(format!(
                            "no identifier kind is named `{}`: GET /api/identity/kinds lists them",
                            kind.trim()
                        ))
                    })?;
                let value = value.ok_or_else(|| {
                    ServiceError::BadRequest("`kind=` needs a `value=` to look up".into())
                })?;
                Some((kind, value))
            }
            (None, _) => None,
        };
        let asked = [
            (IdentKind::ExternalId, lookup.external_id),
            (IdentKind::Email, lookup.email),
            (IdentKind::VisitorId, lookup.visitor_id),
        ]
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value?)))
        .chain(by_kind);
        let mut key = None;
        for (kind, value) in asked {
            if let Some(k) = ident_key(kind, &value, &config.kinds).map_err(refused)? {
                key = Some(k);
                break;
            }
        }
        let key = key.ok_or_else(|| {
            ServiceError::BadRequest(
                "give one of email, external_id or visitor_id, or kind= and value=".into(),
            )
        })?;
        self.store
            .profile_by(&key)?
            .ok_or_else(|| ServiceError::NotFound("no profile has this identifier".into()))
    }

    /// A search box's hit: the first profile owning `q` as an identifier of
    /// the kinds asked (a kind `q` cannot be is skipped), else, for `Any`,
    /// the profile whose id `q` is. `None` when nothing matches.
    pub async fn search_profile(
        &self,
        q: &str,
        kind: SearchKind,
    ) -> ServiceResult<Option<ProfileId>> {
        let config = self.store.identity_config();
        for kind in kind.kinds(&config.kinds) {
            let Ok(Some(key)) = ident_key(kind, q, &config.kinds) else {
                continue;
            };
            if let Some(profile) = self.store.profile_by(&key)? {
                return Ok(Some(profile.id));
            }
        }
        // A profile id pasted into the box.
        match q.trim().parse::<ProfileId>() {
            Ok(id) => Ok(self.store.profile(id)?.map(|p| p.id)),
            Err(_) => Ok(None),
        }
    }

    /// A page of profiles, newest first: all of them, or (with a search)
    /// those owning an identifier that starts with `q` (normalised), or the
    /// one profile whose id `q` is. Bounded (see `ProfileList::truncated`).
    pub async fn list_profiles(
        &self,
        q: &str,
        kind: SearchKind,
        page: Page<ProfileId>,
    ) -> ServiceResult<ProfileList> {
        let config = self.store.identity_config();
        if kind == SearchKind::Any {
            if let Ok(id) = identity::trim(q).parse::<ProfileId>() {
                let profiles = match page.before {
                    None => self.store.profile(id)?.into_iter().collect(),
                    Some(_) => Vec::new(),
                };
                return Ok(ProfileList {
                    profiles,
                    next: None,
                    truncated: false,
                });
            }
        }
        let prefixes = search_prefixes(q, &kind, &config.kinds);
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            store.profiles_page(&prefixes, page.limit, page.before)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(ProfileList {
            profiles: found.profiles,
            next: found.next,
            truncated: found.truncated,
        })
    }

    /// A profile by id; an absorbed id gives its survivor.
    pub async fn profile(&self, id: ProfileId) -> ServiceResult<Profile> {
        self.store.profile(id)?.ok_or_else(|| no_profile(id))
    }

    /// A page of a profile's events (and those of profiles merged into it),
    /// as list views.
    pub async fn profile_events(
        &self,
        id: ProfileId,
        page: Page<EventId>,
    ) -> ServiceResult<ProfileEvents> {
        let profile = self.profile(id).await?;
        self.events_of(&profile, page)
    }

    fn events_of(&self, profile: &Profile, page: Page<EventId>) -> ServiceResult<ProfileEvents> {
        let ids = self
            .store
            .profile_events(profile.id, page.limit, page.before)?;
        let mut events = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(event) = self.store.event_summary(*id, Bounds::LIST)? {
                // Events of a profile merged into this one name this one.
                events.push(EventView::of(event).under_live_profile(profile.id));
            }
        }
        let next = if ids.len() == page.limit {
            ids.last().copied()
        } else {
            None
        };
        Ok(ProfileEvents { events, next })
    }

    /// A page of history, newest first, with runs of identical refusals
    /// folded. Works for an erased profile too (its erasure line and the
    /// redacted lines remain); no line at all means no such profile.
    pub async fn profile_history(
        &self,
        id: ProfileId,
        page: Page<uuid::Uuid>,
    ) -> ServiceResult<HistoryPage> {
        let store = self.store.clone();
        let history = tokio::task::spawn_blocking(move || {
            store.profile_history_page(id, page.limit, page.before)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        if history.history.is_empty() && page.before.is_none() {
            return Err(ServiceError::NotFound(format!("no profile `{id}`")));
        }
        Ok(history)
    }

    /// A profile with its first page of events and a page of its history.
    pub async fn profile_page(
        &self,
        id: ProfileId,
        events: usize,
        history: Page<uuid::Uuid>,
    ) -> ServiceResult<ProfilePage> {
        let profile = self.profile(id).await?;
        let events = self.events_of(
            &profile,
            Page {
                limit: events,
                before: None,
            },
        )?;
        let history = self
            .store
            .profile_history_page(profile.id, history.limit, history.before)?;
        Ok(ProfilePage {
            profile,
            events,
            history,
        })
    }

    /// Merges `from` into `into` by hand (either may be an absorbed id).
    /// A refusal (the same profile twice) is a `Conflict`.
    pub async fn merge_profiles(&self, from: ProfileId, into: ProfileId) -> ServiceResult<Profile> {
        let from = self.profile(from).await?;
        let into = self.profile(into).await?;
        self.store
            .merge_profiles(from.id, into.id)?
            .map_err(ServiceError::Conflict)
    }

    /// Erases a profile and every copy of its personal data, answering what
    /// was removed where. It first waits for the pipeline to commit what was
    /// received before (so nothing received earlier joins the profile
    /// afterwards); a pipeline that does not catch up in time is
    /// `Unavailable` (`processor_behind`), and the erasure can be sent
    /// again. Learned schemas are redacted through the processor, which
    /// owns their cache.
    pub async fn erase_profile(&self, id: ProfileId) -> ServiceResult<ErasureReport> {
        let (store, processor) = (self.store.clone(), self.processor.clone());
        let started = std::time::Instant::now();
        let erased = tokio::task::spawn_blocking(move || -> crate::store::StoreResult<_> {
            if !store.wait_processed(crate::store::ERASURE_CATCH_UP)? {
                return Ok(Err(()));
            }
            Ok(Ok(store.erase_everywhere(id, |needles| {
                processor.redact_schemas(needles)
            })?))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        match erased {
            Err(()) => Err(ServiceError::Unavailable {
                code: "processor_behind",
                message: "the processor has not caught up with the events received before this erasure; send it again in a moment".into(),
            }),
            Ok(Some(report)) => {
                tracing::info!(
                    profile = %id,
                    events = report.linked_events + report.other_events,
                    errors = report.error_entries,
                    ms = started.elapsed().as_millis() as u64,
                    "profile erased"
                );
                Ok(report)
            }
            Ok(None) => Err(ServiceError::NotFound(format!("no profile `{id}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_normalise_like_events() {
        let key = ident_key(IdentKind::Email, "  Ada@Example.COM ", &KindSet::default()).unwrap();
        assert_eq!(
            key,
            Some(IdentKey::new(IdentKind::Email, "ada@example.com"))
        );
        assert_eq!(
            ident_key(IdentKind::VisitorId, "   ", &KindSet::default()).unwrap(),
            None
        );
        // Refused as events refuse them: never stored, so never found.
        assert!(ident_key(IdentKind::Email, "not-an-email", &KindSet::default()).is_err());
        assert!(ident_key(IdentKind::VisitorId, "null", &KindSet::default()).is_err());
        assert!(ident_key(IdentKind::ExternalId, "a\u{200B}b", &KindSet::default()).is_err());
        // ASCII-only lowercasing: the Kelvin sign stays distinct.
        let kelvin = ident_key(IdentKind::Email, "\u{212A}im@x.org", &KindSet::default()).unwrap();
        assert_ne!(kelvin, Some(IdentKey::new(IdentKind::Email, "kim@x.org")));
    }
}
