//! The identity view a resolution runs against on PostgreSQL: an overlay
//! over one open transaction. Reads are served from what the transaction
//! already read or wrote; a miss asks the transaction (one query);
//! `prefetch` loads a resolution's identifiers with their profiles and
//! redirects in one round trip. Writes stay in memory until `flush`, which
//! writes them batched (one statement per table, `UNNEST` arrays).
//!
//! Caching reads for the whole transaction is safe because every writer of
//! these tables holds the identity lock (`IDENTITY_LOCK`) until it commits:
//! nothing else changes them while the view lives.

use super::Db;
use crate::domain::identity::{AuditEntry, IdentKey, IdentityConfig, IdentityTxn, Profile};
use crate::domain::ids::{EventId, ProfileId};
use crate::store::{StoreError, UnitError};
use sqlx::PgConnection;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// What the view knows: `None` values are known absences (read or removed).
#[derive(Default)]
struct Known {
    ident: HashMap<IdentKey, Option<ProfileId>>,
    profiles: HashMap<ProfileId, Option<Profile>>,
    redirects: HashMap<ProfileId, Option<ProfileId>>,
}

/// What the view wrote, not yet flushed (values are in `Known`).
#[derive(Default)]
struct Dirty {
    ident: Vec<IdentKey>,
    profiles: Vec<ProfileId>,
    redirects: Vec<ProfileId>,
    audit: Vec<AuditEntry>,
    links: Vec<(ProfileId, EventId)>,
}

pub(in crate::store::postgres) struct PgTxn<'c> {
    db: &'c Db,
    conn: RefCell<&'c mut PgConnection>,
    config: Arc<IdentityConfig>,
    known: RefCell<Known>,
    dirty: RefCell<Dirty>,
}

/// A database failure inside the unit: a unique violation (another writer
/// got there first, impossible under the lock) runs the unit again.
pub(in crate::store::postgres) fn unit_error(e: sqlx::Error) -> UnitError {
    let unique = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"));
    if unique {
        UnitError::Conflict
    } else {
        UnitError::Store(StoreError::from(e))
    }
}

fn malformed(what: &'static str) -> UnitError {
    UnitError::Store(StoreError::Malformed {
        tree: "profiles",
        what,
    })
}

fn decode_profile(json: &str) -> Result<Profile, UnitError> {
    serde_json::from_str(json).map_err(|_| malformed("a profile that is not valid JSON"))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, UnitError> {
    serde_json::to_string(value).map_err(|_| malformed("a value that cannot be written as JSON"))
}

/// Marks `key` dirty once (the value written is the latest in `Known`).
fn mark<K: PartialEq + Clone>(list: &mut Vec<K>, key: &K) {
    if !list.contains(key) {
        list.push(key.clone());
    }
}

impl<'c> PgTxn<'c> {
    pub(in crate::store::postgres) fn new(
        db: &'c Db,
        conn: &'c mut PgConnection,
        config: Arc<IdentityConfig>,
    ) -> Self {
        Self {
            db,
            conn: RefCell::new(conn),
            config,
            known: RefCell::default(),
            dirty: RefCell::default(),
        }
    }

    fn read_ident(&self, key: &IdentKey) -> Result<Option<ProfileId>, UnitError> {
        let mut conn = self.conn.borrow_mut();
        let owner: Option<Uuid> = self
            .db
            .block(
                sqlx::query_scalar(
                    "SELECT profile_id FROM identifiers WHERE kind = $1 AND value = $2",
                )
                .bind(key.kind.as_str())
                .bind(&key.value)
                .fetch_optional(&mut **conn),
            )
            .map_err(unit_error)?;
        Ok(owner.map(ProfileId))
    }

    fn read_profile(&self, id: ProfileId) -> Result<Option<Profile>, UnitError> {
        let mut conn = self.conn.borrow_mut();
        let doc: Option<String> = self
            .db
            .block(
                sqlx::query_scalar("SELECT doc::text FROM profiles WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut **conn),
            )
            .map_err(unit_error)?;
        doc.as_deref().map(decode_profile).transpose()
    }

    fn read_redirect(&self, from: ProfileId) -> Result<Option<ProfileId>, UnitError> {
        let mut conn = self.conn.borrow_mut();
        let to: Option<Uuid> = self
            .db
            .block(
                sqlx::query_scalar("SELECT to_id FROM redirects WHERE from_id = $1")
                    .bind(from.0)
                    .fetch_optional(&mut **conn),
            )
            .map_err(unit_error)?;
        Ok(to.map(ProfileId))
    }

    /// Writes everything buffered, one statement per table and kind of
    /// write. Call once, after the last resolution of the unit.
    pub(in crate::store::postgres) fn flush(&self) -> Result<(), UnitError> {
        let dirty = self.dirty.take();
        let known = self.known.borrow();
        let mut conn = self.conn.borrow_mut();
        let conn: &mut PgConnection = &mut conn;
        self.db
            .block(write_all(conn, &known, &dirty))
            .map_err(unit_error)
    }

    /// The view's connection, inside its transaction: for a writer whose
    /// unit changes other tables too (a split writes event states and
    /// rules). Release it before the next call on the view.
    pub(in crate::store::postgres) fn connection(
        &self,
    ) -> std::cell::RefMut<'_, &'c mut PgConnection> {
        self.conn.borrow_mut()
    }
}

/// The rows `dirty` names, split into writes and removals.
struct Rows {
    ident_put: (Vec<String>, Vec<String>, Vec<Uuid>),
    ident_gone: (Vec<String>, Vec<String>),
    profile_put: (Vec<Uuid>, Vec<String>),
    profile_gone: Vec<Uuid>,
    redirect_put: (Vec<Uuid>, Vec<Uuid>),
    redirect_gone: Vec<Uuid>,
    audit: (Vec<Uuid>, Vec<Uuid>, Vec<String>),
    links: (Vec<Uuid>, Vec<Uuid>),
}

fn rows(known: &Known, dirty: &Dirty) -> Result<Rows, serde_json::Error> {
    let mut r = Rows {
        ident_put: Default::default(),
        ident_gone: Default::default(),
        profile_put: Default::default(),
        profile_gone: Vec::new(),
        redirect_put: Default::default(),
        redirect_gone: Vec::new(),
        audit: Default::default(),
        links: Default::default(),
    };
    for key in &dirty.ident {
        match known.ident.get(key).copied().flatten() {
            Some(owner) => {
                r.ident_put.0.push(key.kind.as_str().to_owned());
                r.ident_put.1.push(key.value.clone());
                r.ident_put.2.push(owner.0);
            }
            None => {
                r.ident_gone.0.push(key.kind.as_str().to_owned());
                r.ident_gone.1.push(key.value.clone());
            }
        }
    }
    for id in &dirty.profiles {
        match known.profiles.get(id).and_then(Option::as_ref) {
            Some(profile) => {
                r.profile_put.0.push(id.0);
                r.profile_put.1.push(serde_json::to_string(profile)?);
            }
            None => r.profile_gone.push(id.0),
        }
    }
    for from in &dirty.redirects {
        match known.redirects.get(from).copied().flatten() {
            Some(to) => {
                r.redirect_put.0.push(from.0);
                r.redirect_put.1.push(to.0);
            }
            None => r.redirect_gone.push(from.0),
        }
    }
    for entry in &dirty.audit {
        r.audit.0.push(entry.profile_id.0);
        r.audit.1.push(entry.id);
        r.audit.2.push(serde_json::to_string(entry)?);
    }
    for (profile, event) in &dirty.links {
        r.links.0.push(profile.0);
        r.links.1.push(event.0);
    }
    Ok(r)
}

/// The batched writes of one flush. Removals go first: a key is either
/// removed or written in one flush (its latest value), never both.
async fn write_all(conn: &mut PgConnection, known: &Known, dirty: &Dirty) -> sqlx::Result<()> {
    let r = rows(known, dirty).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    if !r.ident_gone.0.is_empty() {
        sqlx::query(
            "DELETE FROM identifiers i USING UNNEST($1::text[], $2::text[]) AS g(kind, value)
             WHERE i.kind = g.kind AND i.value = g.value",
        )
        .bind(&r.ident_gone.0)
        .bind(&r.ident_gone.1)
        .execute(&mut *conn)
        .await?;
    }
    if !r.ident_put.0.is_empty() {
        // An upsert: the resolver read each identifier's owner under the
        // lock before deciding, so its write is the one truth.
        sqlx::query(
            "INSERT INTO identifiers (kind, value, profile_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[])
             ON CONFLICT (kind, value) DO UPDATE SET profile_id = EXCLUDED.profile_id",
        )
        .bind(&r.ident_put.0)
        .bind(&r.ident_put.1)
        .bind(&r.ident_put.2)
        .execute(&mut *conn)
        .await?;
    }
    if !r.profile_gone.is_empty() {
        sqlx::query("DELETE FROM profiles WHERE id = ANY($1)")
            .bind(&r.profile_gone)
            .execute(&mut *conn)
            .await?;
    }
    if !r.profile_put.0.is_empty() {
        sqlx::query(
            "INSERT INTO profiles (id, doc)
             SELECT id, doc::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS p(id, doc)
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(&r.profile_put.0)
        .bind(&r.profile_put.1)
        .execute(&mut *conn)
        .await?;
    }
    if !r.redirect_gone.is_empty() {
        sqlx::query("DELETE FROM redirects WHERE from_id = ANY($1)")
            .bind(&r.redirect_gone)
            .execute(&mut *conn)
            .await?;
    }
    if !r.redirect_put.0.is_empty() {
        sqlx::query(
            "INSERT INTO redirects (from_id, to_id)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[])
             ON CONFLICT (from_id) DO UPDATE SET to_id = EXCLUDED.to_id",
        )
        .bind(&r.redirect_put.0)
        .bind(&r.redirect_put.1)
        .execute(&mut *conn)
        .await?;
    }
    if !r.audit.0.is_empty() {
        sqlx::query(
            "INSERT INTO audit (profile_id, id, entry)
             SELECT p, i, e::jsonb FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS a(p, i, e)
             ON CONFLICT (profile_id, id) DO UPDATE SET entry = EXCLUDED.entry",
        )
        .bind(&r.audit.0)
        .bind(&r.audit.1)
        .bind(&r.audit.2)
        .execute(&mut *conn)
        .await?;
    }
    if !r.links.0.is_empty() {
        sqlx::query(
            "INSERT INTO profile_events (profile_id, event_id)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(&r.links.0)
        .bind(&r.links.1)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A prefetched identifier: kind, value, then its `Owner`.
type PrefetchRow = (String, String, Option<Uuid>, Option<String>, Option<Uuid>);
/// An identifier's owner, the owner's profile JSON and its redirect.
type Owner = (Option<Uuid>, Option<String>, Option<Uuid>);

impl IdentityTxn for PgTxn<'_> {
    type Error = UnitError;

    fn ident_get(&self, key: &IdentKey) -> Result<Option<ProfileId>, UnitError> {
        if let Some(owner) = self.known.borrow().ident.get(key) {
            return Ok(*owner);
        }
        let owner = self.read_ident(key)?;
        self.known.borrow_mut().ident.insert(key.clone(), owner);
        Ok(owner)
    }
    fn ident_put(&self, key: &IdentKey, profile: ProfileId) -> Result<(), UnitError> {
        self.known
            .borrow_mut()
            .ident
            .insert(key.clone(), Some(profile));
        mark(&mut self.dirty.borrow_mut().ident, key);
        Ok(())
    }
    fn ident_remove(&self, key: &IdentKey) -> Result<(), UnitError> {
        self.known.borrow_mut().ident.insert(key.clone(), None);
        mark(&mut self.dirty.borrow_mut().ident, key);
        Ok(())
    }
    fn profile_get(&self, id: ProfileId) -> Result<Option<Profile>, UnitError> {
        if let Some(profile) = self.known.borrow().profiles.get(&id) {
            return Ok(profile.clone());
        }
        let profile = self.read_profile(id)?;
        self.known.borrow_mut().profiles.insert(id, profile.clone());
        Ok(profile)
    }
    fn profile_put(&self, profile: &Profile) -> Result<(), UnitError> {
        self.known
            .borrow_mut()
            .profiles
            .insert(profile.id, Some(profile.clone()));
        mark(&mut self.dirty.borrow_mut().profiles, &profile.id);
        Ok(())
    }
    fn profile_remove(&self, id: ProfileId) -> Result<(), UnitError> {
        // Its links stay under its id: the survivor lists them through
        // `merged_from`, erasure and splits find them there.
        self.known.borrow_mut().profiles.insert(id, None);
        mark(&mut self.dirty.borrow_mut().profiles, &id);
        Ok(())
    }
    fn redirect_get(&self, from: ProfileId) -> Result<Option<ProfileId>, UnitError> {
        if let Some(to) = self.known.borrow().redirects.get(&from) {
            return Ok(*to);
        }
        let to = self.read_redirect(from)?;
        self.known.borrow_mut().redirects.insert(from, to);
        Ok(to)
    }
    fn redirect_put(&self, from: ProfileId, to: ProfileId) -> Result<(), UnitError> {
        self.known.borrow_mut().redirects.insert(from, Some(to));
        mark(&mut self.dirty.borrow_mut().redirects, &from);
        Ok(())
    }
    fn redirect_remove(&self, from: ProfileId) -> Result<(), UnitError> {
        self.known.borrow_mut().redirects.insert(from, None);
        mark(&mut self.dirty.borrow_mut().redirects, &from);
        Ok(())
    }
    fn audit_put(&self, entry: &AuditEntry) -> Result<(), UnitError> {
        encode(entry)?;
        self.dirty.borrow_mut().audit.push(entry.clone());
        Ok(())
    }
    fn link_event(&self, profile: &Profile, event: EventId) -> Result<(), UnitError> {
        self.dirty.borrow_mut().links.push((profile.id, event));
        Ok(())
    }
    fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Loads the identifiers not known yet, their owners' profiles and
    /// redirects, in one query.
    fn prefetch(&self, keys: &[IdentKey]) -> Result<(), UnitError> {
        let missing: Vec<&IdentKey> = {
            let known = self.known.borrow();
            keys.iter()
                .filter(|k| !known.ident.contains_key(*k))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let kinds: Vec<&str> = missing.iter().map(|k| k.kind.as_str()).collect();
        let values: Vec<&str> = missing.iter().map(|k| k.value.as_str()).collect();
        let found: Vec<PrefetchRow> = {
            let mut conn = self.conn.borrow_mut();
            self.db
                .block(
                    sqlx::query_as(
                        "SELECT k.kind, k.value, i.profile_id, p.doc::text, r.to_id
                         FROM UNNEST($1::text[], $2::text[]) AS k(kind, value)
                         LEFT JOIN identifiers i
                           ON i.kind = k.kind COLLATE \"C\" AND i.value = k.value COLLATE \"C\"
                         LEFT JOIN profiles p ON p.id = i.profile_id
                         LEFT JOIN redirects r ON r.from_id = i.profile_id",
                    )
                    .bind(&kinds)
                    .bind(&values)
                    .fetch_all(&mut **conn),
                )
                .map_err(unit_error)?
        };
        // Rows come back in no promised order: match them by key.
        let mut by_key: HashMap<(String, String), Owner> = found
            .into_iter()
            .map(|(kind, value, owner, doc, to)| ((kind, value), (owner, doc, to)))
            .collect();
        let mut known = self.known.borrow_mut();
        for key in missing {
            if known.ident.contains_key(key) {
                continue; // asked twice in one call
            }
            let row = by_key.remove(&(key.kind.as_str().to_owned(), key.value.clone()));
            let (owner, doc, to) = row.unwrap_or((None, None, None));
            let owner = owner.map(ProfileId);
            known.ident.insert(key.clone(), owner);
            let Some(owner) = owner else { continue };
            if let std::collections::hash_map::Entry::Vacant(slot) = known.profiles.entry(owner) {
                slot.insert(doc.as_deref().map(decode_profile).transpose()?);
            }
            known.redirects.entry(owner).or_insert(to.map(ProfileId));
        }
        Ok(())
    }
}
