//! Which slots of a mapping give nothing for any of some records, and the
//! field the marketer probably meant: the check behind the preview's and
//! save's "no sample has a value for {{users.email}}" warnings.
//!
//! Run on the samples of a preview or a save (at most a few dozen records),
//! never on the processor path.

use super::template::{self, Slot};
use super::{path, CompiledMapping, View};
use crate::domain::identity;
use crate::domain::model::RecordContext;
use handlebars::template::Template;
use serde_json::Value;

/// The slots checked, in the order their warnings are listed: the event
/// name, the identifiers, then the slots whose emptiness changes what the
/// pipeline does (dedup, event time).
const CHECKED: [&str; 6] = [
    "event_name",
    "email",
    "external_id",
    "visitor_id",
    "event_id",
    "timestamp",
];

/// Fields walked per record when looking for a near field, and how deep.
const MAX_FIELDS_WALKED: usize = 2_000;
const MAX_DEPTH_WALKED: usize = 16;
/// Array elements walked per array (their shape is usually the same).
const MAX_ELEMENTS_WALKED: usize = 3;

/// A template slot that gave nothing for every record checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmptySlot {
    /// `email`, `event_name`, ...
    pub slot: &'static str,
    /// The slot's template as written.
    pub template: String,
    /// Record paths the template reads that no record had a value at
    /// (`record.` dropped; `envelope.*` and `headers.*` left out).
    pub missing: Vec<Vec<String>>,
    /// A field the records do have that a missing path probably meant.
    pub near: Option<NearField>,
}

/// `{{users.email}}` read `users` → `email`, the records have `users.email`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearField {
    /// The path the template reads.
    pub read: Vec<String>,
    /// The field the records have.
    pub seen: Vec<String>,
    /// The slot's template with the path replaced, when the path could be
    /// found in it as written.
    pub suggest: Option<String>,
}

impl CompiledMapping {
    /// The template slots (see [`CHECKED`]) that gave nothing, or only
    /// whitespace, for every one of `records`; none when there are no records.
    pub fn empty_slots(&self, records: &[RecordContext<'_>]) -> Vec<EmptySlot> {
        if records.is_empty() {
            return Vec::new();
        }
        CHECKED
            .iter()
            .filter_map(|slot| self.empty_slot(slot, records))
            .collect()
    }

    /// A checked slot's template as written and its compiled form, if set.
    fn checked_slot(&self, slot: &str) -> Option<(&str, &Slot)> {
        fn single<'a>(
            source: &'a Option<String>,
            compiled: &'a Option<Slot>,
        ) -> Option<(&'a str, &'a Slot)> {
            source.as_deref().zip(compiled.as_ref())
        }
        match slot {
            "event_name" => Some((self.event_name.0.as_str(), &self.event_name.1)),
            "email" => single(&self.spec.email, &self.email),
            "external_id" => single(&self.spec.external_id, &self.external_id),
            "visitor_id" => single(&self.spec.visitor_id, &self.visitor_id),
            "event_id" => single(&self.spec.event_id, &self.event_id),
            "timestamp" => self.timestamp.as_ref().map(|(s, slot)| (s.as_str(), slot)),
            _ => None,
        }
    }

    fn empty_slot(&self, slot: &'static str, records: &[RecordContext<'_>]) -> Option<EmptySlot> {
        let (source, compiled) = self.checked_slot(slot)?;
        if matches!(compiled, Slot::Static(_)) {
            return None;
        }
        if records
            .iter()
            .any(|ctx| self.has_value(slot, compiled, ctx))
        {
            return None;
        }
        let missing: Vec<Vec<String>> = record_paths(source)
            .into_iter()
            .filter(|p| records.iter().all(|ctx| !has_value_at(ctx.record, p)))
            .collect();
        let near = missing.iter().find_map(|read| {
            let seen = near_field(read, records)?;
            let suggest = replace_path(source, read, &seen);
            Some(NearField {
                read: read.clone(),
                seen,
                suggest,
            })
        });
        Some(EmptySlot {
            slot,
            template: source.trim().to_owned(),
            missing,
            near,
        })
    }

    /// Whether the slot gives some text for this record (a render error
    /// counts as none: the preview's results already show it).
    fn has_value(&self, field: &str, slot: &Slot, ctx: &RecordContext<'_>) -> bool {
        let view = View::start(self, ctx);
        view.text(field, slot)
            .is_ok_and(|text| !identity::trim(&text).is_empty())
    }
}

/// The record paths a template reads (`record.` dropped, request roots left out).
fn record_paths(source: &str) -> Vec<Vec<String>> {
    let Ok(parsed) = Template::compile(source.trim()) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for segs in template::analyse(&parsed).paths {
        let segs = match segs.split_first() {
            Some((root, _)) if root == "envelope" || root == "headers" => continue,
            Some((root, rest)) if root == "record" => rest.to_vec(),
            _ => segs,
        };
        if !segs.is_empty() && !out.contains(&segs) {
            out.push(segs);
        }
    }
    out
}

/// Whether `record` has a value other than null or blank text at `segs`.
fn has_value_at(record: &Value, segs: &[String]) -> bool {
    let mut value = record;
    for seg in segs {
        value = match value {
            Value::Object(map) => match map.get(seg) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match value {
        Value::Null => false,
        Value::String(s) => !identity::trim(s).is_empty(),
        _ => true,
    }
}

/// A field of the records whose name is the read path's once keys are
/// joined with dots (`users.email` the key for `users` → `email`), or once
/// case, `_`, `-` and spaces are ignored (`Customer.E-mail`). Exact joins win.
fn near_field(read: &[String], records: &[RecordContext<'_>]) -> Option<Vec<String>> {
    let dotted = read.join(".");
    let loose = loosen(&dotted);
    let mut fallback = None;
    for ctx in records {
        let mut fields = Vec::new();
        collect_fields(ctx.record, &mut Vec::new(), &mut fields);
        for field in fields {
            if field == read {
                continue;
            }
            let joined = field.join(".");
            if joined == dotted {
                return Some(field);
            }
            if fallback.is_none() && loosen(&joined) == loose {
                fallback = Some(field);
            }
        }
    }
    fallback
}

/// Every path of `value` holding a non-null value, bounded in count and depth.
fn collect_fields(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if out.len() >= MAX_FIELDS_WALKED || at.len() >= MAX_DEPTH_WALKED {
        return;
    }
    let children: Box<dyn Iterator<Item = (String, &Value)>> = match value {
        Value::Object(map) => Box::new(map.iter().map(|(k, v)| (k.clone(), v))),
        Value::Array(items) => Box::new(
            items
                .iter()
                .take(MAX_ELEMENTS_WALKED)
                .enumerate()
                .map(|(i, v)| (i.to_string(), v)),
        ),
        _ => return,
    };
    for (key, child) in children {
        at.push(key);
        if !child.is_null() {
            out.push(at.clone());
        }
        collect_fields(child, at, out);
        at.pop();
    }
}

fn loosen(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `source` with the path `read` (as [`path::template_path`] writes it)
/// replaced by the one for `seen`, where it stands as a whole path.
fn replace_path(source: &str, read: &[String], seen: &[String]) -> Option<String> {
    let written = path::template_path(read)?;
    let with = path::template_path(seen)?;
    let source = source.trim();
    let mut from = 0;
    while let Some(found) = source[from..].find(&written) {
        let start = from + found;
        let end = start + written.len();
        let before = source[..start].chars().next_back();
        let after = source[end..].chars().next();
        if !before.is_some_and(is_path_char) && !after.is_some_and(is_path_char) {
            return Some(format!("{}{with}{}", &source[..start], &source[end..]));
        }
        from = end;
    }
    None
}

/// A character that would make a match part of a longer path.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '[' | ']' | '$' | ':' | '@')
}
