//! The learned schema of one source and the walk that updates it.
//!
//! Hot path: `Schema::observe` runs for every event. The path of each value
//! is built in one reusable buffer and looked up by `&str`, so a record whose
//! paths are all known allocates nothing but its drift list; examples are
//! only examined while a path has fewer than five.

use super::format::{self, Format};
use super::mask;
use super::path;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};

/// Deepest nesting walked; deeper values are counted in `truncated_depth`.
pub const MAX_DEPTH: usize = 16;
/// Most distinct paths kept per source; more are counted in `truncated_paths`.
pub const MAX_PATHS: usize = 1_000;
/// Distinct example values kept per path.
pub const MAX_EXAMPLES: usize = 5;
/// Example strings are cut to this many characters.
pub const MAX_EXAMPLE_CHARS: usize = 80;
/// Samples after which the schema counts as settled and changes are drift.
pub const SETTLED_AFTER: u64 = 20;
/// Drift entries kept (the most recent).
pub const MAX_DRIFT: usize = 50;
/// Values per path checked for repeats (see [`Distinct`]).
pub const DISTINCT_WINDOW: u32 = 20;

/// The JSON type of a value, as counted per path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    String,
    Number,
    Boolean,
    Null,
    Object,
    Array,
}

impl JsonType {
    pub const ALL: [JsonType; 6] = [
        JsonType::String,
        JsonType::Number,
        JsonType::Boolean,
        JsonType::Null,
        JsonType::Object,
        JsonType::Array,
    ];

    pub fn of(value: &Value) -> Self {
        match value {
            Value::String(_) => JsonType::String,
            Value::Number(_) => JsonType::Number,
            Value::Bool(_) => JsonType::Boolean,
            Value::Null => JsonType::Null,
            Value::Object(_) => JsonType::Object,
            Value::Array(_) => JsonType::Array,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }
}

/// What kind of change a drift entry reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    NewPath,
    TypeChange,
}

/// A change to a settled schema: worth a warning in the error log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub at: DateTime<Utc>,
    pub path: String,
    pub kind: DriftKind,
    /// For people: "new field of type string", "was string, now number".
    pub detail: String,
    /// The (masked, truncated) value that caused it; `None` for containers.
    pub example: Option<Value>,
}

/// Everything learned about one path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Values seen per JSON type (indexed like `JsonType::ALL`).
    pub types: [u64; 6],
    /// Records that had this path at least once.
    pub seen: u64,
    /// Values matching each format (indexed like `Format::ALL`).
    pub formats: [u64; 7],
    pub examples: Vec<Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Whether the key name marks values secret (decided once, on creation).
    #[serde(default)]
    pub secret_key: bool,
    /// The sample number that last counted toward `seen`: array paths occur
    /// several times per record but count once.
    #[serde(default)]
    last_sample: u64,
    /// Whether the path's values repeat across records (an old schema has
    /// none and starts counting when it loads).
    #[serde(default)]
    pub distinct: Distinct,
}

/// Whether the first [`DISTINCT_WINDOW`] string or number values of a path
/// (one per record) were all different: what tells a per-event id from a
/// per-user one. Bounded: hashes are kept only until the window is full or
/// a repeat is seen, then only the verdict stays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distinct {
    /// Values checked so far (at most the window).
    pub checked: u32,
    /// A value was seen twice among those checked.
    pub repeated: bool,
    /// Hashes of the values checked, while the check is still running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<u64>,
}

impl Distinct {
    /// Counts one record's value of the path.
    fn check(&mut self, value: &Value) {
        if self.repeated || self.checked >= DISTINCT_WINDOW {
            return;
        }
        let Some(hash) = scalar_hash(value) else {
            return;
        };
        self.checked += 1;
        if self.hashes.contains(&hash) {
            self.repeated = true;
            self.hashes = Vec::new();
        } else if self.checked >= DISTINCT_WINDOW {
            self.hashes = Vec::new();
        } else {
            self.hashes.push(hash);
        }
    }

    /// Drops the hashes kept so far; whether there were any.
    fn forget_values(&mut self) -> bool {
        let had = !self.hashes.is_empty();
        self.hashes = Vec::new();
        had
    }

    /// Every value checked was different (and at least one was checked).
    pub fn all_distinct(&self) -> bool {
        self.checked > 0 && !self.repeated
    }
}

/// A hash of a string or number value (type-tagged, so `"1"` and `1`
/// differ); `None` for other values, which are never ids. SipHash with
/// fixed keys: the same value hashes the same after a restart, which the
/// persisted, unfinished window relies on.
fn scalar_hash(value: &Value) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    match value {
        Value::String(s) => ('s', s.as_str()).hash(&mut h),
        Value::Number(n) => ('n', n.to_string()).hash(&mut h),
        _ => return None,
    }
    Some(h.finish())
}

impl FieldStats {
    fn new(path: &str, at: DateTime<Utc>) -> Self {
        let last_key = path::last_key(path);
        Self {
            types: [0; 6],
            seen: 0,
            formats: [0; 7],
            examples: Vec::new(),
            first_seen: at,
            last_seen: at,
            secret_key: mask::is_secret_key(last_key),
            last_sample: 0,
            distinct: Distinct::default(),
        }
    }

    /// Values of this path that were strings or numbers (formats apply to those).
    pub fn scalar_count(&self) -> u64 {
        self.types[JsonType::String as usize] + self.types[JsonType::Number as usize]
    }

    /// How many values matched `format`.
    pub fn format_count(&self, format: Format) -> u64 {
        self.formats[format.index()]
    }

    /// Formats held by at least half of the path's string/number values:
    /// one odd value should not label a field.
    pub fn main_formats(&self) -> Vec<Format> {
        let total = self.scalar_count();
        Format::ALL
            .into_iter()
            .filter(|f| {
                let n = self.format_count(*f);
                n > 0 && n * 2 >= total
            })
            .collect()
    }

    /// The type seen most often.
    pub fn main_type(&self) -> Option<JsonType> {
        JsonType::ALL
            .into_iter()
            .zip(self.types)
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n)
            .map(|(t, _)| t)
    }

    pub fn has_type(&self, t: JsonType) -> bool {
        self.types[t as usize] > 0
    }
}

/// The learned schema of one source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Records observed.
    pub samples: u64,
    pub fields: HashMap<String, FieldStats>,
    pub drift: VecDeque<Drift>,
    /// Values not recorded because the source already had `MAX_PATHS` paths.
    pub truncated_paths: u64,
    /// Values not walked because they were nested deeper than `MAX_DEPTH`.
    pub truncated_depth: u64,
}

/// State for one walk over one record.
struct Walk<'a> {
    path: &'a mut String,
    at: DateTime<Utc>,
    settled: bool,
    drifts: Vec<Drift>,
}

impl Schema {
    /// Folds one record into the schema; returns the drift it caused.
    pub fn observe(&mut self, record: &Value, at: DateTime<Utc>, buf: &mut String) -> Vec<Drift> {
        let settled = self.samples >= SETTLED_AFTER;
        self.samples += 1;
        buf.clear();
        let mut walk = Walk {
            path: buf,
            at,
            settled,
            drifts: Vec::new(),
        };
        self.walk_children(record, 0, false, &mut walk);
        for d in &walk.drifts {
            if self.drift.len() >= MAX_DRIFT {
                self.drift.pop_front();
            }
            self.drift.push_back(d.clone());
        }
        walk.drifts
    }

    /// Walks the members of an object or the elements of an array.
    fn walk_children(&mut self, value: &Value, depth: usize, parent_new: bool, w: &mut Walk<'_>) {
        match value {
            Value::Object(map) => self.walk_object(map, depth, parent_new, w),
            Value::Array(items) => {
                let len = w.path.len();
                w.path.push_str("[]");
                for item in items {
                    self.visit(item, depth + 1, parent_new, w);
                }
                w.path.truncate(len);
            }
            _ => {}
        }
    }

    fn walk_object(
        &mut self,
        map: &Map<String, Value>,
        depth: usize,
        parent_new: bool,
        w: &mut Walk<'_>,
    ) {
        let len = w.path.len();
        for (key, child) in map {
            path::push_key(w.path, key);
            self.visit(child, depth + 1, parent_new, w);
            w.path.truncate(len);
        }
    }

    /// Records one value at the path in the buffer, then descends.
    fn visit(&mut self, value: &Value, depth: usize, parent_new: bool, w: &mut Walk<'_>) {
        if depth > MAX_DEPTH {
            self.truncated_depth += 1;
            return;
        }
        let sample = self.samples;
        let full = self.fields.len() >= MAX_PATHS;
        let (is_new, secret) = match self.fields.get_mut(w.path.as_str()) {
            Some(stats) => {
                record_value(stats, value, sample, w);
                (false, stats.secret_key)
            }
            None if full => {
                self.truncated_paths += 1;
                return;
            }
            None => {
                let mut stats = FieldStats::new(w.path, w.at);
                record_value(&mut stats, value, sample, w);
                let secret = stats.secret_key;
                self.fields.insert(w.path.clone(), stats);
                (true, secret)
            }
        };
        // Only the topmost new path of a new subtree is reported as drift.
        if is_new && w.settled && !parent_new {
            let detail = format!("new field of type {}", JsonType::of(value).as_str());
            push_drift(w, DriftKind::NewPath, detail, value, secret);
        }
        self.walk_children(value, depth, parent_new || is_new, w);
    }

    /// Drops what holds a value `matches` says is erased personal data:
    /// examples, drift entries (their example or detail), and whole paths
    /// (an object keyed by emails makes the email a path). Returns how many
    /// were dropped; counts stay (they are statistics, not values).
    pub fn redact(&mut self, matches: &dyn Fn(&[u8]) -> bool) -> usize {
        let hit = |v: &Value| match v {
            Value::String(s) => matches(s.as_bytes()),
            other => matches(other.to_string().as_bytes()),
        };
        let paths = self.fields.len();
        self.fields.retain(|path, _| !matches(path.as_bytes()));
        let mut dropped = paths - self.fields.len();
        for stats in self.fields.values_mut() {
            let before = stats.examples.len();
            stats.examples.retain(|e| !hit(e));
            dropped += before - stats.examples.len();
        }
        let drifts = self.drift.len();
        self.drift
            .retain(|d| !matches(d.path.as_bytes()) && !matches(d.detail.as_bytes()));
        dropped += drifts - self.drift.len();
        for d in &mut self.drift {
            if d.example.as_ref().is_some_and(hit) {
                d.example = None;
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops the value hashes of every distinctness check still running
    /// (the verdicts stay): a hash of an erased email could confirm it, and
    /// hashes cannot be matched against what is erased. The checks go on
    /// with the values that come next. Returns whether any were dropped.
    pub fn forget_distinct_values(&mut self) -> bool {
        let mut forgot = false;
        for stats in self.fields.values_mut() {
            forgot |= stats.distinct.forget_values();
        }
        forgot
    }

    /// Every known path (unordered).
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields.keys().map(String::as_str)
    }

    /// Whether a schema path (`items[].sku`) has been seen.
    pub fn has_path(&self, path: &str) -> bool {
        self.fields.contains_key(path)
    }

    /// The JSON view the API serves, fields sorted by path.
    pub fn view(&self) -> Value {
        let mut paths: Vec<&String> = self.fields.keys().collect();
        paths.sort();
        let fields: Vec<Value> = paths
            .into_iter()
            .filter_map(|p| self.fields.get(p).map(|s| field_view(p, s)))
            .collect();
        json!({
            "samples": self.samples,
            "fields": fields,
            "drift": self.drift,
            "truncated": {"paths": self.truncated_paths, "depth": self.truncated_depth},
        })
    }
}

fn field_view(path: &str, s: &FieldStats) -> Value {
    let types: Map<String, Value> = JsonType::ALL
        .into_iter()
        .zip(s.types)
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.as_str().to_string(), json!(n)))
        .collect();
    let formats: Vec<&str> = s.main_formats().into_iter().map(Format::as_str).collect();
    json!({
        "path": path,
        "template": path::template_of(path),
        "types": types,
        "seen": s.seen,
        "formats": formats,
        "examples": s.examples,
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
    })
}

/// Updates counts, formats and examples of one path for one value.
fn record_value(stats: &mut FieldStats, value: &Value, sample: u64, w: &mut Walk<'_>) {
    let ty = JsonType::of(value);
    if w.settled && !stats.has_type(ty) && ty != JsonType::Null && stats.seen > 0 {
        let before = stats.main_type().map_or("nothing", JsonType::as_str);
        let detail = format!("was {before}, now also {}", ty.as_str());
        push_drift(w, DriftKind::TypeChange, detail, value, stats.secret_key);
    }
    stats.types[ty as usize] += 1;
    if stats.last_sample != sample {
        stats.last_sample = sample;
        stats.seen += 1;
        stats.distinct.check(value);
    }
    if w.at > stats.last_seen {
        stats.last_seen = w.at;
    }
    let fmt = match value {
        Value::String(s) => format::of_str(s),
        Value::Number(n) => n.as_f64().and_then(format::of_number),
        _ => None,
    };
    if let Some(f) = fmt {
        stats.formats[f.index()] += 1;
    }
    if stats.examples.len() < MAX_EXAMPLES && !already_example(&stats.examples, value) {
        if let Some(ex) = example_of(value, stats.secret_key) {
            if !stats.examples.contains(&ex) {
                stats.examples.push(ex);
            }
        }
    }
}

fn push_drift(w: &mut Walk<'_>, kind: DriftKind, detail: String, value: &Value, secret: bool) {
    if w.drifts.len() >= MAX_DRIFT {
        return;
    }
    w.drifts.push(Drift {
        at: w.at,
        path: w.path.clone(),
        kind,
        detail,
        example: example_of(value, secret),
    });
}

/// Cheap pre-check before building an example: repeated values (an event
/// type, a status) are the common case and must not allocate.
fn already_example(examples: &[Value], value: &Value) -> bool {
    match value {
        Value::String(s) => examples.iter().any(|e| e.as_str() == Some(s.as_str())),
        Value::Number(_) | Value::Bool(_) => examples.contains(value),
        _ => true,
    }
}

/// A scalar as shown to people: truncated, masked when it looks secret.
/// Containers and nulls have no example (their children do).
pub fn example_of(value: &Value, secret_key: bool) -> Option<Value> {
    match value {
        Value::String(s) if secret_key || mask::looks_secret(s) => {
            Some(Value::String(mask::mask(s)))
        }
        Value::String(s) => Some(Value::String(truncate(s))),
        Value::Number(_) if secret_key => Some(Value::String("…(masked)".into())),
        Value::Number(_) | Value::Bool(_) => Some(value.clone()),
        _ => None,
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
