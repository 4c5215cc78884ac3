//! Identity resolution on sled: one atomic transaction over the `ident`,
//! `profiles`, `redirects`, `profile_events` and `audit` trees, running the
//! pure rules of [`crate::domain::identity`].
//!
//! Value formats: `ident` and `redirects` hold the 16 profile-id bytes;
//! `audit` holds JSON; `profiles` holds the profile's JSON, then the open
//! link chunk (see `encode_profile`); `profile_events` is profile ‖ chunk
//! number → the event ids of a full chunk (see `link_key`).

use super::{decode, encode, Store, StoreError, StoreResult, Trees};
use crate::domain::identity::{
    self, AuditEntry, Blocklist, IdentKey, IdentityTxn, Outcome, Overlay, Profile, ResolveInput,
};
use crate::domain::ids::{EventId, ProfileId};
use crate::store::UnitError;
use sled::transaction::{
    ConflictableTransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::cell::RefCell;

use super::hot::{HotIdentities, Record, Staged};
use std::collections::HashMap;

/// The identity view's error inside a sled transaction: the seam's own
/// [`UnitError`], so the pipeline's resolve step names no sled type.
pub(super) type TxError = UnitError;

/// A sled operation inside the transaction: a conflict makes sled run the
/// unit again; a storage failure ends it.
impl From<UnabortableTransactionError> for UnitError {
    fn from(e: UnabortableTransactionError) -> Self {
        match e {
            UnabortableTransactionError::Conflict => UnitError::Conflict,
            UnabortableTransactionError::Storage(e) => UnitError::Store(StoreError::Sled(e)),
        }
    }
}

/// Back to sled at the transaction's edge: a conflict retries, a failure aborts.
impl From<UnitError> for ConflictableTransactionError<StoreError> {
    fn from(e: UnitError) -> Self {
        match e {
            UnitError::Conflict => ConflictableTransactionError::Conflict,
            UnitError::Store(e) => ConflictableTransactionError::Abort(e),
        }
    }
}

/// The identity trees inside one sled transaction, optionally read through
/// the hot-identity cache (only by a writer holding its lock, see `hot`).
pub(super) struct SledTxn<'a> {
    pub(super) ident: &'a TransactionalTree,
    pub(super) profiles: &'a TransactionalTree,
    pub(super) redirects: &'a TransactionalTree,
    pub(super) profile_events: &'a TransactionalTree,
    pub(super) audit: &'a TransactionalTree,
    pub(super) hot: Option<(&'a HotIdentities, &'a RefCell<Staged>)>,
    /// Profile writes of this run, applied by `finish`.
    pub(super) writes: RefCell<ProfileWrites>,
    /// The kinds and never-merge pairs, as when the transaction began.
    pub(super) config: std::sync::Arc<identity::IdentityConfig>,
}

/// The profile records a transaction run touches. A profile is written once
/// per run, by `finish`, whatever number of events it took: its JSON and its
/// open link chunk together.
#[derive(Default)]
pub(super) struct ProfileWrites {
    /// Open link chunks of the profiles read or written in this run.
    tails: HashMap<ProfileId, Vec<u8>>,
    /// Profiles put in this run, not yet written.
    dirty: HashMap<ProfileId, Profile>,
}

fn corrupt_id(tree: &'static str) -> StoreError {
    StoreError::Malformed {
        tree,
        what: "a profile id that is not 16 bytes",
    }
}

fn abort(e: StoreError) -> TxError {
    UnitError::Store(e)
}

/// Event links per full chunk: the open chunk in a profile's record moves to
/// `profile_events` when it holds this many.
const LINKS_PER_KEY: u64 = 64;

/// The `profile_events` key of a chunk closed at a profile's `n`th link
/// (0-based): profile ‖ chunk number. The value holds event ids, 16 bytes
/// each: 64 from a full chunk, fewer from a profile merged away or erased,
/// more where such a remainder met a full chunk under one key.
///
/// Why chunks: a new sled key costs ~5 µs and more when random; one key per
/// (profile, event) was the costliest write left per event. A profile's
/// `event_count` numbers its links, so chunk numbers grow with it (after a
/// merge the count jumps ahead, which only skips numbers).
fn link_key(profile: ProfileId, n: u64) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&profile.to_bytes());
    let chunk = u32::try_from(n / LINKS_PER_KEY).unwrap_or(u32::MAX);
    key[16..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The event ids held in a `profile_events` value or an open link chunk.
fn linked_ids(value: &[u8]) -> impl Iterator<Item = EventId> + '_ {
    value.chunks_exact(16).filter_map(EventId::from_slice)
}

/// A `profiles` value: the profile's JSON, a 0 byte (JSON never holds one
/// raw), then the open link chunk: the ids of the events linked since the
/// last full chunk went to `profile_events`.
///
/// Why in the profile's record: each event rewrites its profile anyway, and
/// a second key per event (the link chunk) was an eighth of all CPU under
/// load (measured A/B, docs/performance.md). A value written before this
/// format has no 0 byte and an empty open chunk.
fn encode_profile(profile: &Profile, tail: &[u8]) -> Vec<u8> {
    let mut value = encode(profile);
    value.reserve(1 + tail.len());
    value.push(0);
    value.extend_from_slice(tail);
    value
}

/// A `profiles` value back into the profile and its open link chunk.
fn decode_profile(value: &[u8]) -> StoreResult<Record> {
    let (json, tail) = match value.iter().position(|b| *b == 0) {
        Some(at) => (&value[..at], &value[at + 1..]),
        None => (value, &[][..]),
    };
    Ok((decode("profiles", json)?, tail.to_vec()))
}

impl<'a> SledTxn<'a> {
    pub(super) fn new(
        trees: (
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
            &'a TransactionalTree,
        ),
        hot: Option<(&'a HotIdentities, &'a RefCell<Staged>)>,
        config: std::sync::Arc<identity::IdentityConfig>,
    ) -> Self {
        let (ident, profiles, redirects, profile_events, audit) = trees;
        Self {
            ident,
            profiles,
            redirects,
            profile_events,
            audit,
            hot,
            writes: RefCell::default(),
            config,
        }
    }

    /// Writes the profiles this run put, each once with its open link
    /// chunk. Call it last in the transaction closure.
    pub(super) fn finish(&self) -> Result<(), TxError> {
        let ProfileWrites { tails, dirty } = self.writes.take();
        for (id, profile) in dirty {
            let tail = tails.get(&id).cloned().unwrap_or_default();
            self.profiles
                .insert(&id.to_bytes()[..], encode_profile(&profile, &tail))?;
            if let Some((_, staged)) = self.hot {
                staged
                    .borrow_mut()
                    .profiles
                    .insert(id, Some((profile, tail)));
            }
        }
        Ok(())
    }

    /// Removes a profile's record and what this run knows of it, without
    /// moving its open links anywhere: a split rebuilds its links.
    pub(super) fn drop_record(&self, id: ProfileId) -> Result<(), TxError> {
        let mut writes = self.writes.borrow_mut();
        writes.tails.remove(&id);
        writes.dirty.remove(&id);
        self.profiles.remove(&id.to_bytes()[..])?;
        Ok(())
    }

    /// Moves a profile's open link chunk (full, or the last of a profile
    /// being removed) into `profile_events`, appending to a chunk already
    /// under that key (a merge can make two chunks meet there).
    fn close_links(&self, profile: &Profile, tail: Vec<u8>) -> Result<(), TxError> {
        if tail.is_empty() {
            return Ok(());
        }
        let key = link_key(profile.id, profile.event_count.saturating_sub(1));
        let mut links = self
            .profile_events
            .get(key)?
            .map(|v| v.to_vec())
            .unwrap_or_default();
        links.extend_from_slice(&tail);
        self.profile_events.insert(&key[..], links)?;
        Ok(())
    }
}

impl IdentityTxn for SledTxn<'_> {
    type Error = TxError;

    fn ident_get(&self, key: &IdentKey) -> Result<Option<ProfileId>, TxError> {
        let bytes = key.to_key_bytes();
        if let Some((hot, staged)) = self.hot {
            if let Some(owner) = staged.borrow().ident.get(&bytes) {
                return Ok(*owner);
            }
            if let Some(owner) = hot.owner(&bytes) {
                return Ok(Some(owner));
            }
        }
        let owner = match self.ident.get(&bytes)? {
            Some(v) => Some(ProfileId::from_slice(&v).ok_or_else(|| abort(corrupt_id("ident")))?),
            None => None,
        };
        if let (Some((_, staged)), Some(owner)) = (self.hot, owner) {
            staged.borrow_mut().read_ident.insert(bytes, owner);
        }
        Ok(owner)
    }
    fn ident_put(&self, key: &IdentKey, profile: ProfileId) -> Result<(), TxError> {
        let bytes = key.to_key_bytes();
        self.ident
            .insert(bytes.as_slice(), &profile.to_bytes()[..])?;
        if let Some((_, staged)) = self.hot {
            staged.borrow_mut().ident.insert(bytes, Some(profile));
        }
        Ok(())
    }
    fn ident_remove(&self, key: &IdentKey) -> Result<(), TxError> {
        let bytes = key.to_key_bytes();
        self.ident.remove(bytes.as_slice())?;
        if let Some((_, staged)) = self.hot {
            staged.borrow_mut().ident.insert(bytes, None);
        }
        Ok(())
    }
    fn profile_get(&self, id: ProfileId) -> Result<Option<Profile>, TxError> {
        if let Some(profile) = self.writes.borrow().dirty.get(&id) {
            return Ok(Some(profile.clone()));
        }
        // While a run lasts, `staged.profiles` holds only its removals
        // (`finish` adds the writes): a removed profile must not come back
        // from the cache, and the transaction's own read answers `None`.
        let record = match self.hot {
            Some((hot, staged)) => match staged.borrow().profiles.get(&id) {
                Some(written) => written.clone(),
                None => hot.profile(id),
            },
            None => None,
        };
        let (record, from_sled) = match record {
            Some(record) => (Some(record), false),
            None => match self.profiles.get(id.to_bytes())? {
                Some(v) => (Some(decode_profile(&v).map_err(abort)?), true),
                None => (None, false),
            },
        };
        let Some((profile, tail)) = record else {
            return Ok(None);
        };
        if let (Some((_, staged)), true) = (self.hot, from_sled) {
            staged
                .borrow_mut()
                .read_profiles
                .insert(id, (profile.clone(), tail.clone()));
        }
        self.writes.borrow_mut().tails.entry(id).or_insert(tail);
        Ok(Some(profile))
    }
    fn profile_put(&self, profile: &Profile) -> Result<(), TxError> {
        // `finish` writes the open link chunk this run knows: make sure it
        // knows the stored one (the resolver reads before it writes, so this
        // reads only for a profile that is new).
        if !self.writes.borrow().tails.contains_key(&profile.id) {
            self.profile_get(profile.id)?;
        }
        self.writes
            .borrow_mut()
            .dirty
            .insert(profile.id, profile.clone());
        Ok(())
    }
    fn profile_remove(&self, id: ProfileId) -> Result<(), TxError> {
        // Its open links go to `profile_events` first, where listing the
        // events of whoever absorbed it (or erasing them) finds them.
        if let Some(profile) = self.profile_get(id)? {
            let tail = self.writes.borrow_mut().tails.remove(&id);
            self.close_links(&profile, tail.unwrap_or_default())?;
        }
        self.writes.borrow_mut().dirty.remove(&id);
        self.profiles.remove(&id.to_bytes()[..])?;
        if let Some((_, staged)) = self.hot {
            staged.borrow_mut().profiles.insert(id, None);
        }
        Ok(())
    }
    fn redirect_get(&self, from: ProfileId) -> Result<Option<ProfileId>, TxError> {
        match self.redirects.get(from.to_bytes())? {
            Some(v) => ProfileId::from_slice(&v)
                .map(Some)
                .ok_or_else(|| abort(corrupt_id("redirects"))),
            None => Ok(None),
        }
    }
    fn redirect_put(&self, from: ProfileId, to: ProfileId) -> Result<(), TxError> {
        self.redirects
            .insert(&from.to_bytes()[..], &to.to_bytes()[..])?;
        Ok(())
    }
    fn redirect_remove(&self, from: ProfileId) -> Result<(), TxError> {
        self.redirects.remove(&from.to_bytes()[..])?;
        Ok(())
    }
    fn audit_put(&self, entry: &AuditEntry) -> Result<(), TxError> {
        self.audit.insert(&entry.key_bytes()[..], encode(entry))?;
        Ok(())
    }
    fn link_event(&self, profile: &Profile, event: EventId) -> Result<(), TxError> {
        let full = {
            let mut writes = self.writes.borrow_mut();
            writes
                .dirty
                .entry(profile.id)
                .or_insert_with(|| profile.clone());
            let tail = writes.tails.entry(profile.id).or_default();
            tail.extend_from_slice(&event.to_bytes());
            (tail.len() >= LINKS_PER_KEY as usize * 16).then(|| std::mem::take(tail))
        };
        match full {
            Some(tail) => self.close_links(profile, tail),
            None => Ok(()),
        }
    }
    fn config(&self) -> &identity::IdentityConfig {
        &self.config
    }
}

/// The live trees, read-only: the base of a preview [`Overlay`]. Writes are
/// refused (the overlay never forwards them).
struct ReadView<'a>(&'a Trees, std::sync::Arc<identity::IdentityConfig>);

fn read_only() -> StoreError {
    StoreError::ReadOnly("the identity read view")
}

impl IdentityTxn for ReadView<'_> {
    type Error = StoreError;

    fn ident_get(&self, key: &IdentKey) -> StoreResult<Option<ProfileId>> {
        match self.0.ident.get(key.to_key_bytes())? {
            Some(v) => ProfileId::from_slice(&v)
                .map(Some)
                .ok_or_else(|| corrupt_id("ident")),
            None => Ok(None),
        }
    }
    fn ident_put(&self, _: &IdentKey, _: ProfileId) -> StoreResult<()> {
        Err(read_only())
    }
    fn ident_remove(&self, _: &IdentKey) -> StoreResult<()> {
        Err(read_only())
    }
    fn profile_get(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        match self.0.profiles.get(id.to_bytes())? {
            Some(v) => decode_profile(&v).map(|(profile, _)| Some(profile)),
            None => Ok(None),
        }
    }
    fn profile_put(&self, _: &Profile) -> StoreResult<()> {
        Err(read_only())
    }
    fn profile_remove(&self, _: ProfileId) -> StoreResult<()> {
        Err(read_only())
    }
    fn redirect_get(&self, from: ProfileId) -> StoreResult<Option<ProfileId>> {
        match self.0.redirects.get(from.to_bytes())? {
            Some(v) => ProfileId::from_slice(&v)
                .map(Some)
                .ok_or_else(|| corrupt_id("redirects")),
            None => Ok(None),
        }
    }
    fn redirect_put(&self, _: ProfileId, _: ProfileId) -> StoreResult<()> {
        Err(read_only())
    }
    fn redirect_remove(&self, _: ProfileId) -> StoreResult<()> {
        Err(read_only())
    }
    fn audit_put(&self, _: &AuditEntry) -> StoreResult<()> {
        Err(read_only())
    }
    fn link_event(&self, _: &Profile, _: EventId) -> StoreResult<()> {
        Err(read_only())
    }
    fn config(&self) -> &identity::IdentityConfig {
        &self.1
    }
}

impl Store {
    /// Runs `f`, which writes identities, in one transaction: it holds the
    /// identity writer lock, and the hot-identity cache is cleared after it
    /// (the write bypassed the cache).
    fn identity_write_txn<A>(
        &self,
        f: impl Fn(&SledTxn<'_>) -> Result<A, TxError>,
    ) -> StoreResult<A> {
        let _writer = self.hot.lock_writer()?;
        let result = self.identity_txn(f);
        self.hot.clear();
        result
    }

    /// Runs `f` in one serialisable transaction over the identity trees
    /// (sled retries it on conflict, so `f` must be pure apart from `txn`).
    fn identity_txn<A>(&self, f: impl Fn(&SledTxn<'_>) -> Result<A, TxError>) -> StoreResult<A> {
        let t = &self.trees;
        let config = self.identity_config();
        let trees = (
            &t.ident,
            &t.profiles,
            &t.redirects,
            &t.profile_events,
            &t.audit,
        );
        let _exclusive = super::sled_exclusive();
        trees
            .transaction(|(ident, profiles, redirects, profile_events, audit)| {
                let txn = SledTxn::new(
                    (ident, profiles, redirects, profile_events, audit),
                    None,
                    config.clone(),
                );
                let answer = f(&txn)?;
                txn.finish()?;
                Ok(answer)
            })
            .map_err(super::abort_reason)
    }

    /// Resolves one event atomically (tests and benches; the processor
    /// resolves inside its batch transaction).
    pub(super) fn resolve(
        &self,
        input: &ResolveInput,
        blocklist: &Blocklist,
    ) -> StoreResult<Outcome> {
        self.identity_write_txn(|txn| identity::resolve(txn, input, blocklist))
    }

    /// What `resolve` would do now, without writing anything.
    pub(super) fn resolve_preview(
        &self,
        input: &ResolveInput,
        blocklist: &Blocklist,
    ) -> StoreResult<Outcome> {
        let view = ReadView(&self.trees, self.identity_config());
        identity::resolve(&Overlay::new(&view), input, blocklist)
    }

    /// A profile by id; an absorbed id answers with its survivor.
    pub(super) fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        self.identity_txn(|txn| identity::canonical(txn, id))
    }

    /// The profile owning an identifier (give the normalised value).
    pub(super) fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>> {
        self.identity_txn(|txn| identity::lookup(txn, key))
    }

    /// A profile's events, newest first, including those of merged profiles;
    /// `before` pages (exclusive).
    pub(super) fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        let Some(profile) = self.profile(id)? else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        for pid in std::iter::once(profile.id).chain(profile.merged_from.iter().copied()) {
            events.extend(self.linked_events(pid, limit, before)?);
        }
        events.sort_unstable_by(|a, b| b.cmp(a));
        events.dedup();
        events.truncate(limit);
        Ok(events)
    }

    /// Up to `limit` events linked to exactly `pid` before `before`, newest
    /// first. Reads the open link chunk in its record and all its full
    /// chunks (64 ids each): links are in arrival order, which a replay
    /// makes differ from id order.
    fn linked_events(
        &self,
        pid: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        let open = match self.trees.profiles.get(pid.to_bytes())? {
            Some(value) => decode_profile(&value)?.1,
            None => Vec::new(),
        };
        let mut out: Vec<EventId> = linked_ids(&open).collect();
        for item in self.trees.profile_events.scan_prefix(pid.to_bytes()) {
            let (_, value) = item?;
            out.extend(linked_ids(&value));
        }
        out.retain(|e| before.is_none_or(|b| *e < b));
        out.sort_unstable_by(|a, b| b.cmp(a));
        out.truncate(limit);
        Ok(out)
    }

    /// The audit history of a profile and of every profile merged into it,
    /// oldest first. Works for an erased id too (its erasure line remains).
    pub(super) fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>> {
        let ids = match self.profile(id)? {
            Some(p) => std::iter::once(p.id).chain(p.merged_from).collect(),
            None => vec![id],
        };
        let mut entries = Vec::new();
        for pid in ids {
            for item in self.trees.audit.scan_prefix(pid.to_bytes()) {
                let (_, v) = item?;
                entries.push(decode::<AuditEntry>("audit", &v)?);
            }
        }
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }

    /// Support staff merge `from` into `into` (audited, no limits apply).
    /// The inner `Err` says why it was refused.
    pub(super) fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>> {
        self.identity_write_txn(|txn| identity::manual_merge(txn, from, into))
    }

    /// Erases a profile: the profile, its identifiers and redirects go in one
    /// transaction; then its event links are removed and the personal data
    /// in its audit lines and stored outcomes is redacted. Returns the event
    /// ids (newest first) so the caller can scrub the events themselves, or
    /// `None` when there is no such profile.
    ///
    /// After the transaction no event can join the erased ids any more, so
    /// the follow-up scans see a complete, stable list. A crash between the
    /// two steps leaves unreachable links and unredacted audit lines.
    pub(super) fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        let Some(ids) = self.identity_write_txn(|txn| identity::erase(txn, id))? else {
            return Ok(None);
        };
        let mut events = Vec::new();
        for pid in &ids {
            events.extend(self.unlink_events(*pid)?);
            self.redact_audit(*pid)?;
        }
        events.sort_unstable_by(|a, b| b.cmp(a));
        // An erasure is a legal obligation: make it durable before answering.
        self.flush_db()?;
        Ok(Some(events))
    }

    fn unlink_events(&self, pid: ProfileId) -> StoreResult<Vec<EventId>> {
        let mut events = Vec::new();
        for item in self.trees.profile_events.scan_prefix(pid.to_bytes()) {
            let (key, value) = item?;
            events.extend(linked_ids(&value));
            self.trees.profile_events.remove(key)?;
        }
        Ok(events)
    }

    /// Replaces the detail of every audit line of `pid` but the erasure one.
    fn redact_audit(&self, pid: ProfileId) -> StoreResult<()> {
        for item in self.trees.audit.scan_prefix(pid.to_bytes()) {
            let (key, v) = item?;
            let mut entry: AuditEntry = decode("audit", &v)?;
            // Which lines lose their detail is the domain's policy.
            if entry.redact() {
                self.trees.audit.insert(key, encode(&entry))?;
            }
        }
        Ok(())
    }
}

/// Identifier keys one search of the profile list reads at most.
pub const PROFILE_SEARCH_SCAN: usize = 10_000;

/// A page of the profile list, newest first (profile ids are UUID v7, so
/// their key order is creation order).
#[derive(Clone, Debug)]
pub struct ProfilesPage {
    pub profiles: Vec<Profile>,
    /// `before=` of the next (older) page; `None` on the last.
    pub next: Option<ProfileId>,
    /// A search stopped at `PROFILE_SEARCH_SCAN` identifiers: more
    /// profiles may match a longer prefix.
    pub truncated: bool,
}

impl Store {
    /// Live profiles newest first, older than `before`: all of them, or
    /// those owning an identifier that starts with one of `prefixes`
    /// (normalised values, a kind each). Reads `limit + 1` profiles for a
    /// listing; a search reads at most `PROFILE_SEARCH_SCAN` identifier
    /// keys, then the profiles of the page.
    pub(super) fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<ProfilesPage> {
        let limit = limit.max(1);
        if prefixes.is_empty() {
            return self.newest_profiles(limit, before);
        }
        let (owners, truncated) = self.owners_by_prefix(prefixes)?;
        let mut ids = owners
            .into_iter()
            .rev()
            .filter(|id| before.is_none_or(|b| *id < b));
        let mut page = ProfilesPage {
            profiles: Vec::new(),
            next: None,
            truncated,
        };
        for id in ids.by_ref() {
            if page.profiles.len() == limit {
                page.next = page.profiles.last().map(|p| p.id);
                break;
            }
            if let Some(profile) = self.profile(id)? {
                // An owner is live (absorbing repoints identifiers); a
                // redirect answering with another id would repeat it.
                if profile.id == id {
                    page.profiles.push(profile);
                }
            }
        }
        Ok(page)
    }

    fn newest_profiles(
        &self,
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<ProfilesPage> {
        let upper = before.map_or([0xff; 16], ProfileId::to_bytes);
        let mut page = ProfilesPage {
            profiles: Vec::new(),
            next: None,
            truncated: false,
        };
        for item in self.trees.profiles.range(..upper.to_vec()).rev() {
            let (_, value) = item?;
            if page.profiles.len() == limit {
                page.next = page.profiles.last().map(|p| p.id);
                break;
            }
            let (profile, _) = decode_profile(&value)?;
            page.profiles.push(profile);
        }
        Ok(page)
    }

    /// The owners of identifiers starting with any of `prefixes`, and
    /// whether the scan stopped at its bound.
    fn owners_by_prefix(
        &self,
        prefixes: &[IdentKey],
    ) -> StoreResult<(std::collections::BTreeSet<ProfileId>, bool)> {
        let mut owners = std::collections::BTreeSet::new();
        let mut scanned = 0;
        for prefix in prefixes {
            for item in self.trees.ident.scan_prefix(prefix.to_key_bytes()) {
                if scanned == PROFILE_SEARCH_SCAN {
                    return Ok((owners, true));
                }
                scanned += 1;
                let (_, value) = item?;
                owners.insert(ProfileId::from_slice(&value).ok_or_else(|| corrupt_id("ident"))?);
            }
        }
        Ok((owners, false))
    }
}

#[cfg(test)]
mod tests {
    //! Adapter tests: what is about sled (link chunks, the hot cache,
    //! concurrent writers, redirects on disk, erasure of stored records,
    //! previews writing nothing). The identity rules themselves are tested
    //! on the in-memory implementation (`domain::identity::rule_tests`).
    use super::*;
    use crate::domain::identity::rule_tests::{ids, input};
    use crate::domain::identity::IdentKind;

    fn run(store: &Store, x: Option<&str>, e: Option<&str>, v: Option<&str>) -> Outcome {
        store
            .resolve(&input(ids(x, e, v)), &Blocklist::default())
            .unwrap()
    }

    fn owner(store: &Store, key: IdentKey) -> Option<ProfileId> {
        store.profile_by(&key).unwrap().map(|p| p.id)
    }

    #[test]
    fn a_profiles_events_span_link_chunks_and_page_newest_first() {
        let store = Store::temporary().unwrap();
        let mut sent: Vec<EventId> = (0..150)
            .map(|_| {
                let i = input(ids(None, Some("busy@x.io"), None));
                store.resolve(&i, &Blocklist::default()).unwrap();
                i.event_id
            })
            .collect();
        sent.sort_unstable_by(|a, b| b.cmp(a));
        let p = store
            .profile_by(&IdentKey::new(IdentKind::Email, "busy@x.io"))
            .unwrap()
            .unwrap();
        assert_eq!(store.profile_events(p.id, 500, None).unwrap(), sent);
        let first = store.profile_events(p.id, 100, None).unwrap();
        let rest = store
            .profile_events(p.id, 100, first.last().copied())
            .unwrap();
        assert_eq!([first, rest].concat(), sent);
        // Two full chunks moved out; the last 22 links are in the record.
        assert_eq!(store.trees.profile_events.len(), 2);
        let record = store.trees.profiles.get(p.id.to_bytes()).unwrap().unwrap();
        assert_eq!(decode_profile(&record).unwrap().1.len(), 22 * 16);
    }

    #[test]
    fn a_merged_profiles_open_links_stay_listed_and_erasable() {
        let store = Store::temporary().unwrap();
        let mut sent = Vec::new();
        for (email, visitor) in [
            (None, Some("v1")),
            (None, Some("v1")),
            (Some("m@x.io"), None),
        ] {
            let i = input(ids(None, email, visitor));
            store.resolve(&i, &Blocklist::default()).unwrap();
            sent.push(i.event_id);
        }
        // This event joins the visitor's profile and the email's: a merge.
        let joining = input(ids(None, Some("m@x.io"), Some("v1")));
        let merged = store.resolve(&joining, &Blocklist::default()).unwrap();
        assert_eq!(merged.summary(), "merge");
        sent.push(joining.event_id);
        sent.sort_unstable_by(|a, b| b.cmp(a));
        let survivor = merged.profile_id.unwrap();
        assert_eq!(store.profile_events(survivor, 10, None).unwrap(), sent);
        // The absorbed profile's record is gone; its links moved to a chunk.
        assert_eq!(store.trees.profiles.len(), 1);
        assert_eq!(store.trees.profile_events.len(), 1);
        let mut erased = store.erase_profile(survivor).unwrap().unwrap();
        erased.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(erased, sent);
        assert!(store.trees.profile_events.is_empty());
    }

    #[test]
    fn a_profile_stored_before_open_link_chunks_reads_and_links_on() {
        let store = Store::temporary().unwrap();
        let first = run(&store, None, Some("old@x.io"), None)
            .profile_id
            .unwrap();
        // Rewrite its record as the previous format did: JSON alone (its
        // first link, kept in `profile_events` back then, is dropped here).
        let (profile, _) =
            decode_profile(&store.trees.profiles.get(first.to_bytes()).unwrap().unwrap()).unwrap();
        store
            .trees
            .profiles
            .insert(first.to_bytes(), encode(&profile))
            .unwrap();
        store.hot.clear();
        assert_eq!(store.profile(first).unwrap(), Some(profile));
        assert_eq!(
            run(&store, None, Some("old@x.io"), None).profile_id,
            Some(first)
        );
        assert_eq!(store.profile_events(first, 10, None).unwrap().len(), 1);
    }

    /// The sled side of two rule tests (`rule_tests`): a merged profile's
    /// events page newest first across both profiles' links, and both
    /// profiles' open link chunks survive a manual merge (the absorbed
    /// one's moves to a chunk, the survivor's stays in its record through
    /// support's write).
    #[test]
    fn merged_profiles_events_page_and_survive_a_manual_merge() {
        let store = Store::temporary().unwrap();
        let old = run(&store, None, None, Some("v1")).profile_id.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let young = run(&store, None, Some("e@x.io"), None).profile_id.unwrap();
        run(&store, None, Some("e@x.io"), Some("v1"));
        assert_eq!(store.profile_events(young, 10, None).unwrap().len(), 3);
        let page = store.profile_events(old, 2, None).unwrap();
        let rest = store.profile_events(old, 2, page.last().copied()).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(rest.len(), 1);
        assert!(page[0] > page[1] && page[1] > rest[0]);

        let a = run(&store, Some("x1"), None, None).profile_id.unwrap();
        let b = run(&store, Some("x2"), None, None).profile_id.unwrap();
        store.merge_profiles(a, b).unwrap().unwrap();
        assert_eq!(run(&store, Some("x1"), None, None).profile_id, Some(b));
        assert_eq!(store.profile_events(b, 10, None).unwrap().len(), 3);
        let history = store.profile_history(b).unwrap();
        assert!(history.iter().any(|h| h.kind() == "manual_merge"));
    }

    #[test]
    fn concurrent_resolvers_lose_nothing() {
        let store = Store::temporary().unwrap();
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let v = format!("v{i}");
                    run(&store, None, Some("shared@x.io"), Some(&v))
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let p = store
            .profile_by(&IdentKey::new(IdentKind::Email, "shared@x.io"))
            .unwrap()
            .unwrap();
        assert_eq!(p.visitor_ids.len(), 40);
        assert_eq!(p.event_count, 40);
        for i in 0..40 {
            assert_eq!(
                owner(&store, IdentKey::new(IdentKind::VisitorId, format!("v{i}"))),
                Some(p.id)
            );
        }
        assert_eq!(store.profile_events(p.id, 100, None).unwrap().len(), 40);
    }

    #[test]
    fn redirects_are_compressed() {
        let store = Store::temporary().unwrap();
        let a = run(&store, None, None, Some("a")).profile_id.unwrap();
        let b = run(&store, None, None, Some("b")).profile_id.unwrap();
        let c = run(&store, None, None, Some("c")).profile_id.unwrap();
        // b absorbed into a... then a into c would need c older; use manual merges.
        store.merge_profiles(b, a).unwrap().unwrap();
        store.merge_profiles(a, c).unwrap().unwrap();
        let raw = store.trees.redirects.get(b.to_bytes()).unwrap().unwrap();
        assert_eq!(ProfileId::from_slice(&raw), Some(c));
        assert_eq!(store.profile(b).unwrap().unwrap().id, c);
    }

    #[test]
    fn erasure_removes_everything_personal() {
        let store = Store::temporary().unwrap();
        let a = run(&store, None, Some("gone@x.io"), Some("v1"));
        run(&store, Some("x9"), Some("gone@x.io"), Some("v2"));
        let id = a.profile_id.unwrap();
        let events = store.erase_profile(id).unwrap().unwrap();
        assert_eq!(events.len(), 2);
        assert!(store.profile(id).unwrap().is_none());
        assert_eq!(
            owner(&store, IdentKey::new(IdentKind::Email, "gone@x.io")),
            None
        );
        assert_eq!(
            owner(&store, IdentKey::new(IdentKind::VisitorId, "v1")),
            None
        );
        assert!(store.profile_events(id, 10, None).unwrap().is_empty());
        let history = store.profile_history(id).unwrap();
        assert!(history.iter().any(|h| h.kind() == "erasure"));
        let text = serde_json::to_string(&history).unwrap();
        assert!(!text.contains("gone@x.io") && !text.contains("v1"));
        assert!(store.erase_profile(id).unwrap().is_none());
        // The identifier can start a new profile afterwards.
        assert_eq!(
            run(&store, None, Some("gone@x.io"), None).summary(),
            "create"
        );
    }

    #[test]
    fn preview_writes_nothing() {
        let store = Store::temporary().unwrap();
        run(&store, None, None, Some("v1"));
        run(&store, None, Some("e@x.io"), None);
        let probe = input(ids(None, Some("e@x.io"), Some("v1")));
        let preview = store
            .resolve_preview(&probe, &Blocklist::default())
            .unwrap();
        assert_eq!(preview.summary(), "merge");
        assert_ne!(
            owner(&store, IdentKey::new(IdentKind::VisitorId, "v1")),
            owner(&store, IdentKey::new(IdentKind::Email, "e@x.io"))
        );
        assert!(store
            .trees
            .profile_events
            .iter()
            .values()
            .all(|v| linked_ids(&v.unwrap()).all(|e| e != probe.event_id)));
        let fresh = input(ids(None, None, Some("new")));
        let preview = store
            .resolve_preview(&fresh, &Blocklist::default())
            .unwrap();
        assert_eq!(preview.summary(), "create");
        assert_eq!(
            owner(&store, IdentKey::new(IdentKind::VisitorId, "new")),
            None
        );
    }

    #[test]
    fn the_profile_list_pages_newest_first_and_searches_by_prefix() {
        let store = Store::temporary().unwrap();
        let made: Vec<ProfileId> = ["ada@x.org", "adam@x.org", "bob@x.org"]
            .iter()
            .map(|e| run(&store, None, Some(e), None).profile_id.unwrap())
            .collect();
        let first = store.profiles_page(&[], 2, None).unwrap();
        let ids: Vec<ProfileId> = first.profiles.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![made[2], made[1]]);
        assert_eq!(first.next, Some(made[1]));
        let rest = store.profiles_page(&[], 2, first.next).unwrap();
        assert_eq!(rest.profiles.len(), 1);
        assert_eq!(rest.next, None);

        let ada = [IdentKey::new(IdentKind::Email, "ada")];
        let found = store.profiles_page(&ada, 10, None).unwrap();
        let ids: Vec<ProfileId> = found.profiles.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![made[1], made[0]]);
        assert!(!found.truncated);
        let older = store.profiles_page(&ada, 1, None).unwrap();
        assert_eq!(older.next, Some(made[1]));
    }
}
