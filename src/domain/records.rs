//! Record explosion: one decoded request body becomes one or more records.
//!
//! Senders batch differently: some post a top-level array, some wrap the
//! rows in an object (`{"data": [...]}`, Looker's `attachment.data`), and
//! some put the rows in a *string* (Looker's JSON-string, CSV and TXT
//! formats). Exploding here, before the durable log, means every stored
//! event is one record and the rest of the pipeline never sees batches.
//!
//! Rules (see `docs/schema.md` for the user-facing version):
//! - a top-level array always explodes into its elements;
//! - `records_path` (dotted, e.g. `attachment.data`) names the value holding
//!   the records; the rest of the body becomes the `envelope`;
//! - a string at `records_path` is decoded by the sibling `mimetype` /
//!   `extension` keys, else by sniffing (JSON, CSV, tab-separated text);
//! - binary attachments (base64 PDF, XLSX, PNG...) are stored whole and
//!   flagged `not_mappable`, so nothing is lost and the error log says why.

use crate::domain::decode::{check_depth, Body, Refusal, RefusalKind, Table, MAX_DEPTH};
use crate::domain::ids::{EventId, RequestId, SourceId};
use crate::domain::model::{RawEvent, Stage};
use chrono::Utc;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The result of exploding one request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploded {
    /// The body outside the records (`None` when the body is the record).
    pub envelope: Option<Value>,
    /// One entry per event to store.
    pub records: Vec<Value>,
    /// Set when the body is stored as received but cannot be mapped
    /// (e.g. a base64 PDF attachment): a reason for the error log.
    pub not_mappable: Option<String>,
}

/// Why a body could not be exploded; each message says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordsError {
    #[error("{0}")]
    PathNotFound(String),
    #[error("{0}")]
    BadEmbedded(String),
    #[error("too many records: {count} in one request, the limit is {limit}; split the batch")]
    TooMany { count: usize, limit: usize },
    #[error("the body holds no records: {0}")]
    Empty(String),
    #[error(
        "records_path `{0}` holds JSON nested deeper than {MAX_DEPTH} levels; flatten the records"
    )]
    TooDeep(String),
    #[error(
        "split into records, this request would store about {estimated} bytes (each row repeats \
         the column names), {over} bytes over its limit of {limit}; send fewer rows per request \
         or shorter column names, or raise INLET_MAX_STORED_FACTOR",
        over = .estimated - .limit
    )]
    TooLarge { estimated: usize, limit: usize },
    /// A CSV body (`text/csv`, or `text/plain` that is not JSON) that cannot
    /// be read as a table: `code` names what to fix (`csv_ragged_row`,
    /// `csv_missing_header`, `csv_no_rows`, `not_csv`), the message where.
    #[error("{message}")]
    Csv { code: &'static str, message: String },
}

impl RecordsError {
    /// A stable machine-readable code for the sender and the error log.
    pub fn code(&self) -> &'static str {
        match self {
            RecordsError::TooMany { .. } => "too_many_records",
            RecordsError::TooLarge { .. } => "explosion_too_large",
            RecordsError::TooDeep(_) => "too_deep",
            RecordsError::Csv { code, .. } => code,
            RecordsError::PathNotFound(_)
            | RecordsError::BadEmbedded(_)
            | RecordsError::Empty(_) => "bad_records",
        }
    }

    /// The refusal the sender gets: 413 for a limit, 400 otherwise. Only a
    /// body that is wrong (not merely large) keeps an excerpt: the excerpt
    /// helps fix its shape, and a large one says nothing more than its size.
    pub fn refusal(self, body: &[u8]) -> Refusal {
        let code = self.code();
        match self {
            RecordsError::TooMany { .. } | RecordsError::TooLarge { .. } => Refusal::new(
                RefusalKind::TooLarge,
                Stage::Records,
                code,
                self.to_string(),
            ),
            _ => Refusal::new(
                RefusalKind::BadInput,
                Stage::Records,
                code,
                self.to_string(),
            )
            .with_excerpt(body),
        }
    }
}

/// One `RawEvent` per record of one request, in record order, received now
/// under one request id. What the records share (envelope, headers) is one
/// `Arc` for all of them: a 10,000-row request holds one copy.
///
/// The ids are left unassigned (nil): the store assigns them under its
/// append lock, so id order is commit order. A caller that stores nothing
/// (the mapping preview) gives each event an `EventId::new()` itself.
pub fn raw_events(
    source_id: SourceId,
    exploded: Exploded,
    headers: Map<String, Value>,
) -> Vec<RawEvent> {
    let request_id = RequestId::new();
    let received_at = Utc::now();
    let Exploded {
        records,
        envelope,
        not_mappable,
    } = exploded;
    let envelope = envelope.map(Arc::new);
    let headers = Arc::new(headers);
    records
        .into_iter()
        .map(|payload| RawEvent {
            id: EventId(uuid::Uuid::nil()),
            source_id,
            request_id,
            received_at,
            payload,
            envelope: envelope.clone(),
            headers: headers.clone(),
            not_mappable: not_mappable.clone(),
        })
        .collect()
}

/// What one request may explode into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most records.
    pub max_records: usize,
    /// Most bytes the records may take as stored JSON. Only CSV/TSV rows
    /// can grow past a small multiple of the body (each row object repeats
    /// the header names), so that is where it is checked, row by row,
    /// before the rows are built.
    pub max_record_bytes: usize,
}

impl Limits {
    /// At most `max_records`, with no bound on their size (previews).
    pub fn records(max_records: usize) -> Self {
        Limits {
            max_records,
            max_record_bytes: usize::MAX,
        }
    }
}

/// How many keys a "not found" message lists before eliding the rest.
const MAX_LISTED_KEYS: usize = 20;

/// Turns a decoded body into records.
///
/// A top-level array explodes into its elements; `records_path` names the
/// array (or embedded JSON/CSV/TSV string) inside an object; otherwise the
/// object is the one record. Never returns more than `max_records` records.
pub fn explode(
    body: Value,
    records_path: Option<&str>,
    max_records: usize,
) -> Result<Exploded, RecordsError> {
    explode_within(body, records_path, Limits::records(max_records))
}

/// Turns a decoded hook body into records within `limits`: a JSON value as
/// [`explode_within`] does, a CSV table one record per row. A table has no
/// envelope, so `records_path` does not apply to it.
pub fn explode_body(
    body: Body<'_>,
    records_path: Option<&str>,
    limits: Limits,
) -> Result<Exploded, RecordsError> {
    match body {
        Body::Value(value) => explode_within(value, records_path, limits),
        Body::Table(table) => explode_table(table, limits),
    }
}

/// A CSV body's rows as records: keys are the header cells (as written,
/// so Looker's `users.email` stays one dotted key), values strings, an
/// empty cell an empty string. Stricter than CSV embedded in JSON (which
/// keeps Looker's exports as they come): the sender wrote this CSV, so a
/// ragged row, a blank or data-looking header, or control characters are
/// refused naming the line, instead of guessed at.
pub fn explode_table(table: Table<'_>, limits: Limits) -> Result<Exploded, RecordsError> {
    refuse_control_characters(table.text)?;
    let records = decode_delimited(table.text, table.delimiter, Shape::Strict, limits)?;
    Ok(Exploded {
        envelope: None,
        records,
        not_mappable: None,
    })
}

/// As `explode`, within `limits` (the request path).
pub fn explode_within(
    body: Value,
    records_path: Option<&str>,
    limits: Limits,
) -> Result<Exploded, RecordsError> {
    let max_records = limits.max_records;
    let path = records_path.map(str::trim).filter(|p| !p.is_empty());
    let exploded = match (body, path) {
        (Value::Array(items), _) => top_level_array(items, max_records)?,
        (body, None) => Exploded {
            envelope: None,
            records: vec![body],
            not_mappable: None,
        },
        (body, Some(path)) => at_path(body, path, limits)?,
    };
    // One guard for every branch (a single object with `max_records == 0`).
    check_count(exploded.records.len(), max_records)?;
    Ok(exploded)
}

fn check_count(count: usize, limit: usize) -> Result<(), RecordsError> {
    if count > limit {
        return Err(RecordsError::TooMany { count, limit });
    }
    Ok(())
}

fn top_level_array(items: Vec<Value>, max: usize) -> Result<Exploded, RecordsError> {
    if items.is_empty() {
        return Err(RecordsError::Empty(
            "the body is an empty JSON array; send at least one record".into(),
        ));
    }
    check_count(items.len(), max)?;
    Ok(Exploded {
        envelope: None,
        records: items,
        not_mappable: None,
    })
}

/// Explodes the value found at a dotted `records_path`.
fn at_path(mut body: Value, path: &str, limits: Limits) -> Result<Exploded, RecordsError> {
    let max = limits.max_records;
    let segments: Vec<&str> = path.split('.').collect();
    let (parent_segs, last) = match segments.split_last() {
        Some((last, parent)) => (parent, *last),
        None => return Err(not_found(path, &[], &body)),
    };
    // Classify before taking the value out, so binary bodies stay whole.
    let kind = match locate(&body, path, &segments)? {
        Value::String(s) => Some(classify_string(s, sibling_hints(&body, parent_segs))),
        _ => None,
    };
    if let Some(Decoded::Binary(reason)) = kind {
        return Ok(Exploded {
            envelope: None,
            records: vec![body],
            not_mappable: Some(reason),
        });
    }
    let value = take_at(&mut body, parent_segs, last);
    let records = match (value, kind) {
        (Value::Array(items), _) => {
            if items.is_empty() {
                return Err(RecordsError::Empty(format!(
                    "records_path `{path}` holds an empty array; send at least one record"
                )));
            }
            check_count(items.len(), max)?;
            items
        }
        (Value::Object(map), _) => vec![Value::Object(map)],
        (Value::String(s), Some(kind)) => decode_string(&s, kind, path, limits)?,
        (Value::Null, _) => {
            return Err(RecordsError::Empty(format!(
                "records_path `{path}` is null; send an array of records there"
            )))
        }
        (other, _) => {
            return Err(RecordsError::BadEmbedded(format!(
                "records_path `{path}` holds a {}, not an array, object or string; \
                 point records_path at the array of records",
                type_name(&other)
            )))
        }
    };
    Ok(Exploded {
        envelope: Some(body),
        records,
        not_mappable: None,
    })
}

/// Walks `segments`; on a miss, says which keys exist where the walk stopped.
fn locate<'a>(body: &'a Value, path: &str, segments: &[&str]) -> Result<&'a Value, RecordsError> {
    let mut current = body;
    for (i, seg) in segments.iter().enumerate() {
        match child(current, seg) {
            Some(next) => current = next,
            None => return Err(not_found(path, &segments[..i], current)),
        }
    }
    Ok(current)
}

fn child<'a>(value: &'a Value, seg: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(map) => map.get_mut(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    }
}

/// Removes the records value so the envelope does not repeat it.
fn take_at(body: &mut Value, parent: &[&str], last: &str) -> Value {
    let mut current = body;
    for seg in parent {
        match child_mut(current, seg) {
            Some(next) => current = next,
            None => return Value::Null,
        }
    }
    match current {
        Value::Object(map) => map.remove(last).unwrap_or(Value::Null),
        // An index into an array: leave a null so later indices keep their place.
        other => child_mut(other, last)
            .map(Value::take)
            .unwrap_or(Value::Null),
    }
}

fn not_found(path: &str, walked: &[&str], at: &Value) -> RecordsError {
    let place = if walked.is_empty() {
        "top-level".to_string()
    } else {
        format!("under `{}` the", walked.join("."))
    };
    let detail = match at {
        Value::Object(map) if map.is_empty() => format!("{place} object is empty"),
        Value::Object(map) => format!("{place} keys are: {}", list_keys(map)),
        other => format!("{place} value is a {}, not an object", type_name(other)),
    };
    RecordsError::PathNotFound(format!(
        "records_path `{}` not found; {detail}. Fix the source's records_path or the sender's payload",
        truncate(path, 200)
    ))
}

fn list_keys(map: &Map<String, Value>) -> String {
    let mut keys: Vec<String> = map
        .keys()
        .take(MAX_LISTED_KEYS)
        .map(|k| truncate(k, 60))
        .collect();
    if map.len() > MAX_LISTED_KEYS {
        keys.push(format!("… ({} more)", map.len() - MAX_LISTED_KEYS));
    }
    keys.join(", ")
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `mimetype` and `extension` next to the records value (Looker's `attachment`).
struct Hints<'a> {
    mimetype: Option<&'a str>,
    extension: Option<&'a str>,
}

fn sibling_hints<'a>(body: &'a Value, parent: &[&str]) -> Hints<'a> {
    let mut current = body;
    for seg in parent {
        match child(current, seg) {
            Some(next) => current = next,
            None => break,
        }
    }
    let get = |key: &str| current.get(key).and_then(Value::as_str);
    Hints {
        mimetype: get("mimetype").or_else(|| get("mime_type")),
        extension: get("extension"),
    }
}

/// What a records string holds.
#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    Json,
    Delimited(u8),
    Binary(String),
}

fn classify_string(s: &str, hints: Hints<'_>) -> Decoded {
    if let Some(kind) = hints.mimetype.and_then(by_mimetype) {
        return kind;
    }
    if let Some(kind) = hints.extension.and_then(by_extension) {
        return kind;
    }
    sniff_string(s)
}

fn by_mimetype(mime: &str) -> Option<Decoded> {
    let lower = mime.trim().to_ascii_lowercase();
    let essence = lower.split(';').next().unwrap_or("").trim();
    if lower.contains("base64") {
        return Some(binary(ext_of_mime(essence)));
    }
    match essence {
        "application/json" | "text/json" => Some(Decoded::Json),
        "text/csv" | "application/csv" => Some(Decoded::Delimited(b',')),
        "text/plain" | "text/tab-separated-values" => Some(Decoded::Delimited(b'\t')),
        "text/html" => Some(binary("html")),
        e if e.ends_with("+json") => Some(Decoded::Json),
        e if e.starts_with("text/") => None,
        "" => None,
        e => Some(binary(ext_of_mime(e))),
    }
}

fn ext_of_mime(essence: &str) -> &str {
    match essence {
        "application/pdf" => "pdf",
        "image/png" => "png",
        e if e.contains("spreadsheetml") => "xlsx",
        e => e.rsplit('/').next().unwrap_or("binary"),
    }
}

fn by_extension(ext: &str) -> Option<Decoded> {
    match ext
        .trim()
        .trim_start_matches('.')
        .to_ascii_lowercase()
        .as_str()
    {
        "json" => Some(Decoded::Json),
        "csv" => Some(Decoded::Delimited(b',')),
        "txt" | "tsv" => Some(Decoded::Delimited(b'\t')),
        "" => None,
        other => Some(binary(&truncate(other, 16))),
    }
}

fn binary(what: &str) -> Decoded {
    Decoded::Binary(format!(
        "a base64 {what} attachment cannot be mapped; it is stored as received. \
         Ask the sender for JSON or CSV"
    ))
}

/// No hints: JSON if it parses, then delimited text, then base64-looking data.
fn sniff_string(s: &str) -> Decoded {
    let trimmed = s.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return Decoded::Json;
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if first_line.contains('\t') {
        return Decoded::Delimited(b'\t');
    }
    if looks_base64(trimmed) {
        return binary("binary");
    }
    Decoded::Delimited(b',')
}

fn looks_base64(s: &str) -> bool {
    s.len() >= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r'))
}

fn decode_string(
    s: &str,
    kind: Decoded,
    path: &str,
    limits: Limits,
) -> Result<Vec<Value>, RecordsError> {
    match kind {
        Decoded::Json => decode_json(s, path, limits.max_records),
        Decoded::Delimited(delimiter) => decode_delimited(
            s,
            refine_delimiter(s, delimiter),
            Shape::Embedded(path),
            limits,
        ),
        Decoded::Binary(reason) => Err(RecordsError::BadEmbedded(reason)),
    }
}

/// Embedded JSON is held to the body's depth limit (the parsed array or
/// object counts as the first level), so every later recursive walk over a
/// record is as safe as over a body.
fn decode_json(s: &str, path: &str, max: usize) -> Result<Vec<Value>, RecordsError> {
    let parsed: Value = serde_json::from_str(s).map_err(|e| {
        // serde_json stops at 128 levels; anything that deep is too deep here.
        if e.to_string().contains("recursion limit") {
            return RecordsError::TooDeep(truncate(path, 200));
        }
        RecordsError::BadEmbedded(format!(
            "records_path `{path}` holds a string that should be JSON but does not parse ({e}); \
             check the sender's export format"
        ))
    })?;
    check_depth(&parsed).map_err(|_| RecordsError::TooDeep(truncate(path, 200)))?;
    match parsed {
        Value::Array(items) if items.is_empty() => Err(RecordsError::Empty(format!(
            "records_path `{path}` holds an empty JSON array"
        ))),
        Value::Array(items) => {
            check_count(items.len(), max)?;
            Ok(items)
        }
        Value::Object(map) => Ok(vec![Value::Object(map)]),
        other => Err(RecordsError::BadEmbedded(format!(
            "records_path `{path}` holds a JSON {} string, not an array or object of records",
            type_name(&other)
        ))),
    }
}

/// `text/plain` usually means Looker's tab-separated export, but some
/// senders label CSV that way: a header line with commas and no tab is CSV.
fn refine_delimiter(s: &str, delimiter: u8) -> u8 {
    let header = s.trim_start().lines().next().unwrap_or("");
    if delimiter == b'\t' && !header.contains('\t') && header.contains(',') {
        b','
    } else {
        delimiter
    }
}

/// How strictly a table is read, and what its messages call it.
#[derive(Clone, Copy, Debug)]
enum Shape<'a> {
    /// A string at `records_path` inside a JSON body (Looker's exports):
    /// ragged rows and blank header cells are kept as they come.
    Embedded(&'a str),
    /// A whole CSV body: every row has the header's number of cells, and
    /// every header cell names a column.
    Strict,
}

impl Shape<'_> {
    fn is_strict(self) -> bool {
        matches!(self, Shape::Strict)
    }
}

/// CSV / TSV with a header row; every value stays a string (see docs/schema.md).
///
/// Each row's size as a stored JSON object is added up before the row is
/// built: past `limits.max_record_bytes` nothing more is built (what was is
/// dropped) and the rest is only measured, for the message. Memory stays
/// within the limit whatever the row count or header length.
fn decode_delimited(
    s: &str,
    delimiter: u8,
    shape: Shape<'_>,
    limits: Limits,
) -> Result<Vec<Value>, RecordsError> {
    let what = if delimiter == b'\t' {
        "tab-separated text"
    } else {
        "CSV"
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(s.as_bytes());
    let raw_headers = reader
        .headers()
        .map_err(|e| bad_delimited(shape, what, &e))?
        .clone();
    if shape.is_strict() {
        check_header(&raw_headers, what)?;
    }
    let headers = header_names(raw_headers.iter());
    let header_sizes: Vec<usize> = headers
        .iter()
        .map(String::as_str)
        .map(json_string_len)
        .collect();
    let mut records = Vec::new();
    let mut row = csv::StringRecord::new();
    let (mut count, mut estimated) = (0usize, 0usize);
    loop {
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(bad_delimited(shape, what, &e)),
        }
        if row.iter().all(str::is_empty) {
            continue;
        }
        count += 1;
        if shape.is_strict() && row.len() != headers.len() {
            return Err(ragged_row(&row, count, headers.len(), what));
        }
        estimated = estimated.saturating_add(row_json_len(&header_sizes, &row));
        if estimated > limits.max_record_bytes {
            // Refused below: free what was built, build nothing more.
            records = Vec::new();
        } else if count <= limits.max_records {
            // Past the count limit: keep counting for the message only.
            records.push(row_object(&headers, &row));
        }
    }
    check_count(count, limits.max_records)?;
    if estimated > limits.max_record_bytes {
        return Err(RecordsError::TooLarge {
            estimated,
            limit: limits.max_record_bytes,
        });
    }
    if records.is_empty() {
        return Err(match shape {
            Shape::Embedded(path) => RecordsError::Empty(format!(
                "records_path `{path}` holds {what} with a header row but no data rows"
            )),
            Shape::Strict => RecordsError::Csv {
                code: "csv_no_rows",
                message: format!(
                    "the {what} body has a header row but no data rows; send a header row \
                     (the column names), then one row per record"
                ),
            },
        });
    }
    Ok(records)
}

/// A CSV body's header row must name every column, and must not be a row
/// of data: an `@` is in an email, never in a column name.
fn check_header(header: &csv::StringRecord, what: &str) -> Result<(), RecordsError> {
    let missing = |message: String| RecordsError::Csv {
        code: "csv_missing_header",
        message,
    };
    if let Some(i) = header.iter().position(|h| h.trim().is_empty()) {
        return Err(missing(format!(
            "column {} of the {what} header row (line 1) is blank; the first row must name \
             every column (`email,name,plan`)",
            i + 1
        )));
    }
    if let Some(cell) = header.iter().find(|h| h.contains('@')) {
        return Err(missing(format!(
            "the first row of the {what} body looks like data (`{}`), not column names; add a \
             header row naming the columns (`email,name,plan`) before the first record",
            truncate(cell, 60)
        )));
    }
    Ok(())
}

/// The refusal for a data row whose number of cells is not the header's.
fn ragged_row(row: &csv::StringRecord, number: usize, columns: usize, what: &str) -> RecordsError {
    let line = row.position().map_or(number + 1, |p| p.line() as usize);
    let fix = if row.len() > columns {
        "quote cells that contain the delimiter (`\"Smith, Ann\"`) or remove the extra cells"
    } else {
        "add the missing cells (empty ones are fine: `a,,c`)"
    };
    RecordsError::Csv {
        code: "csv_ragged_row",
        message: format!(
            "row {number} of the {what} body (line {line}) has {} cells, but the header row has \
             {columns} columns; {fix}",
            row.len()
        ),
    }
}

/// Control characters (other than tab, CR and LF) never appear in CSV
/// text: a body holding them is binary, or not the export that was meant.
fn refuse_control_characters(text: &str) -> Result<(), RecordsError> {
    let Some(at) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    else {
        return Ok(());
    };
    let line = 1 + text[..at.0].bytes().filter(|b| *b == b'\n').count();
    Err(RecordsError::Csv {
        code: "not_csv",
        message: format!(
            "the body is not CSV text: line {line} holds the control character {}; send CSV \
             (a header row, then one row per record) or JSON",
            at.1.escape_unicode()
        ),
    })
}

/// Bytes `s` takes as a JSON string, quotes and escapes included (as
/// serde_json writes it: `\"`, `\\` and short escapes take 2, other control
/// characters 6).
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Bytes `row_object(headers, row)` takes as JSON, without building it
/// (an upper bound: a repeated extra column name would overwrite a key).
fn row_json_len(header_sizes: &[usize], row: &csv::StringRecord) -> usize {
    // The braces, less the comma the last field does not have.
    let mut total = 1usize;
    for (i, field) in row.iter().enumerate() {
        let name = header_sizes
            .get(i)
            .copied()
            .unwrap_or_else(|| json_string_len(&format!("column_{}", i + 1)));
        // `name:value` and the comma before the next.
        total += name + json_string_len(field) + 2;
    }
    total
}

fn bad_delimited(shape: Shape<'_>, what: &str, e: &csv::Error) -> RecordsError {
    match shape {
        Shape::Embedded(path) => RecordsError::BadEmbedded(format!(
            "records_path `{path}` holds {what} that cannot be read ({e}); check quoting in the export"
        )),
        Shape::Strict => RecordsError::Csv {
            code: "not_csv",
            message: format!("the body cannot be read as {what} ({e}); check its quoting"),
        },
    }
}

/// Header names made unique and non-empty, so no column overwrites another.
///
/// O(n) in the number of columns: a set of the names taken, and per base
/// name the next suffix to try. A generated `a_2` that a later real `a_2`
/// meets makes that one `a_2_2`; a name of the form `base_k` can be in the
/// way of one base at one suffix only, so all the retries together are at
/// most one per name taken (thousands of repeated names took tens of
/// seconds with the list search this replaces).
fn header_names<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    for (i, h) in raw.enumerate() {
        let base = match h.trim() {
            "" => format!("column_{}", i + 1),
            t => t.to_string(),
        };
        let name = if taken.contains(&base) {
            let n = next_suffix.entry(base.clone()).or_insert(2);
            loop {
                let candidate = format!("{base}_{n}");
                *n += 1;
                if !taken.contains(&candidate) {
                    break candidate;
                }
            }
        } else {
            base
        };
        taken.insert(name.clone());
        names.push(name);
    }
    names
}

fn row_object(headers: &[String], row: &csv::StringRecord) -> Value {
    let mut map = Map::with_capacity(row.len());
    for (i, field) in row.iter().enumerate() {
        let key = match headers.get(i) {
            Some(h) => h.clone(),
            None => format!("column_{}", i + 1),
        };
        map.insert(key, Value::String(field.to_string()));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ok(body: Value, path: Option<&str>) -> Exploded {
        explode(body, path, 1000).expect("explodes")
    }

    #[test]
    fn object_without_path_is_one_record() {
        let e = ok(json!({"a": 1}), None);
        assert_eq!(e.records, vec![json!({"a": 1})]);
        assert_eq!(e.envelope, None);
    }

    #[test]
    fn top_level_array_explodes_even_with_a_path() {
        let e = ok(json!([{"a": 1}, {"a": 2}]), Some("data"));
        assert_eq!(e.records.len(), 2);
        assert_eq!(e.envelope, None);
    }

    #[test]
    fn records_path_array_leaves_an_envelope() {
        let body = json!({"event": "x", "data": [{"a": 1}, {"a": 2}]});
        let e = ok(body, Some("data"));
        assert_eq!(e.records, vec![json!({"a": 1}), json!({"a": 2})]);
        assert_eq!(e.envelope, Some(json!({"event": "x"})));
    }

    #[test]
    fn missing_path_lists_the_keys_to_fix() {
        let err = explode(json!({"event": 1, "rows": []}), Some("data.rows"), 10).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("records_path `data.rows` not found"), "{msg}");
        assert!(msg.contains("top-level keys are: event, rows"), "{msg}");
    }

    #[test]
    fn nested_miss_names_the_level() {
        let err = explode(json!({"data": {"x": 1}}), Some("data.rows"), 10).unwrap_err();
        assert!(err.to_string().contains("under `data` the keys are: x"));
    }

    #[test]
    fn looker_inline_json() {
        let body = json!({
            "attachment": {"data": [{"Division": "Online", "Revenue": 7}]},
            "scheduled_plan": {"title": "Sales"}
        });
        let e = ok(body, Some("attachment.data"));
        assert_eq!(e.records, vec![json!({"Division": "Online", "Revenue": 7})]);
        let env = e.envelope.expect("envelope");
        assert_eq!(env["scheduled_plan"]["title"], "Sales");
        assert_eq!(env["attachment"], json!({}));
    }

    #[test]
    fn looker_json_string() {
        let body = json!({"attachment": {
            "data": "[{\"Division\": \"Online\", \"Revenue\": 7}]",
            "mimetype": "application/json", "extension": "json"}});
        let e = ok(body, Some("attachment.data"));
        assert_eq!(e.records, vec![json!({"Division": "Online", "Revenue": 7})]);
        assert_eq!(
            e.envelope.expect("env")["attachment"]["mimetype"],
            "application/json"
        );
    }

    #[test]
    fn looker_csv_with_quotes_commas_and_newlines() {
        let csv = "Division,Note,Revenue\n\"Brick + Mortar\",\"a, \"\"quoted\"\"\nline\",3828101\nOnline,plain,7184918\n";
        let body = json!({"attachment": {"data": csv, "mimetype": "text/csv", "extension": "csv"}});
        let e = ok(body, Some("attachment.data"));
        assert_eq!(e.records.len(), 2);
        assert_eq!(e.records[0]["Note"], "a, \"quoted\"\nline");
        assert_eq!(e.records[0]["Revenue"], "3828101");
        assert_eq!(e.records[1]["Division"], "Online");
    }

    #[test]
    fn looker_txt_is_tab_separated() {
        let body = json!({"attachment": {"data": "A\tB\n1\t2\n", "extension": "txt"}});
        let e = ok(body, Some("attachment.data"));
        assert_eq!(e.records, vec![json!({"A": "1", "B": "2"})]);
    }

    #[test]
    fn csv_labelled_text_plain_is_still_csv() {
        let body = json!({"a": {"data": "x,y\n1,2", "mimetype": "text/plain"}});
        let e = ok(body, Some("a.data"));
        assert_eq!(e.records, vec![json!({"x": "1", "y": "2"})]);
    }

    #[test]
    fn sniffed_csv_without_hints() {
        let e = ok(json!({"data": "a,b\n1,2\n3,4"}), Some("data"));
        assert_eq!(e.records.len(), 2);
    }

    #[test]
    fn duplicate_and_empty_headers_stay_distinct() {
        let e = ok(json!({"data": "a,a,\n1,2,3"}), Some("data"));
        assert_eq!(e.records[0], json!({"a": "1", "a_2": "2", "column_3": "3"}));
    }

    #[test]
    fn base64_pdf_is_stored_whole_and_flagged() {
        let body = json!({"attachment": {"data": "TG9va2VyIHJvY2tzIQ==",
            "mimetype": "application/pdf;base64", "extension": "pdf"}});
        let e = ok(body.clone(), Some("attachment.data"));
        assert_eq!(e.records, vec![body]);
        assert!(e.not_mappable.expect("reason").contains("pdf"));
        assert_eq!(e.envelope, None);
    }

    #[test]
    fn xlsx_by_extension_only() {
        let body = json!({"attachment": {"data": "UEsDBBQ=", "extension": "xlsx"}});
        let e = ok(body, Some("attachment.data"));
        assert!(e.not_mappable.expect("reason").contains("xlsx"));
    }

    #[test]
    fn too_many_is_refused_with_the_count() {
        let err = explode(json!([1, 2, 3]), None, 2).unwrap_err();
        assert_eq!(err, RecordsError::TooMany { count: 3, limit: 2 });
        let err = explode(json!({"d": "a\n1\n2\n3"}), Some("d"), 2).unwrap_err();
        assert_eq!(err, RecordsError::TooMany { count: 3, limit: 2 });
    }

    #[test]
    fn empty_arrays_are_refused() {
        assert!(matches!(
            explode(json!([]), None, 5),
            Err(RecordsError::Empty(_))
        ));
        assert!(matches!(
            explode(json!({"data": []}), Some("data"), 5),
            Err(RecordsError::Empty(_))
        ));
        assert!(matches!(
            explode(json!({"data": "a,b\n"}), Some("data"), 5),
            Err(RecordsError::Empty(_))
        ));
    }

    #[test]
    fn bad_embedded_json_says_so() {
        let err = explode(json!({"d": "[1,"}), Some("d"), 5).unwrap_err();
        assert!(matches!(err, RecordsError::BadEmbedded(_)));
    }

    #[test]
    fn scalar_at_path_is_bad_embedded() {
        let err = explode(json!({"d": 5}), Some("d"), 5).unwrap_err();
        assert!(err.to_string().contains("number"));
    }

    #[test]
    fn thousands_of_repeated_headers_get_distinct_names_quickly() {
        let names = header_names(["a"; 20_000].into_iter());
        assert_eq!(names[0], "a");
        assert_eq!(names[1], "a_2");
        assert_eq!(names[19_999], "a_20000");
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn a_real_column_named_like_a_generated_one_stays_distinct() {
        let names = header_names(["a", "a", "a_2", "a_2", "a", ""].into_iter());
        assert_eq!(names, ["a", "a_2", "a_2_2", "a_2_3", "a_3", "column_6"]);
    }

    #[test]
    fn deep_embedded_json_is_refused_as_too_deep() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        let err = explode(json!({ "d": deep }), Some("d"), 5).unwrap_err();
        assert!(matches!(err, RecordsError::TooDeep(_)), "{err:?}");
        // Past serde_json's own limit too.
        let deeper = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = explode(json!({ "d": deeper }), Some("d"), 5).unwrap_err();
        assert!(matches!(err, RecordsError::TooDeep(_)), "{err:?}");
        let fits = format!(
            "[{}{}]",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        assert!(explode(json!({ "d": fits }), Some("d"), 5).is_ok());
    }

    /// A long header repeated into every row object: refused from the
    /// estimate, and the estimate matches what would be stored.
    #[test]
    fn rows_that_would_outgrow_the_budget_are_refused_before_they_are_built() {
        let header: Vec<String> = (0..200)
            .map(|i| format!("a rather long column name {i}"))
            .collect();
        let mut csv = header.join(",");
        let row = format!("\n1{}", ",".repeat(199));
        for _ in 0..1_000 {
            csv.push_str(&row);
        }
        let body = json!({ "d": csv });
        let limits = Limits {
            max_records: 10_000,
            max_record_bytes: 16 * csv.len(),
        };
        match explode_within(body, Some("d"), limits).unwrap_err() {
            RecordsError::TooLarge { estimated, limit } => {
                assert_eq!(limit, 16 * csv.len());
                assert!(estimated > 1_000 * 200 * 30, "{estimated}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_row_estimate_is_the_stored_size() {
        let csv = "a,\"b \"\"q\"\"\",c\n1,\"x\ny\",\"\u{1}\"\n2,3,4,5\n";
        let e = ok(json!({ "d": csv }), Some("d"));
        let stored: usize = e
            .records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len())
            .sum();
        let limits = Limits {
            max_records: 10,
            max_record_bytes: stored,
        };
        assert!(explode_within(json!({ "d": csv }), Some("d"), limits).is_ok());
        let tight = Limits {
            max_record_bytes: stored - 1,
            ..limits
        };
        assert!(matches!(
            explode_within(json!({ "d": csv }), Some("d"), tight),
            Err(RecordsError::TooLarge { .. })
        ));
    }

    fn table(text: &str) -> Table<'_> {
        Table {
            text,
            delimiter: b',',
        }
    }

    fn csv_code(text: &str) -> (&'static str, String) {
        let err = explode_table(table(text), Limits::records(100)).unwrap_err();
        (err.code(), err.to_string())
    }

    #[test]
    fn a_csv_body_is_one_record_per_row_keyed_by_the_header() {
        let csv =
            "users.email,users.name,plan\r\na@b.org,Ann,\r\n\r\n\"c@d.org\",\"Lee, C\",pro\r\n";
        let e = explode_table(table(csv), Limits::records(100)).unwrap();
        assert_eq!(
            e.records,
            vec![
                json!({"users.email": "a@b.org", "users.name": "Ann", "plan": ""}),
                json!({"users.email": "c@d.org", "users.name": "Lee, C", "plan": "pro"}),
            ]
        );
        assert_eq!(e.envelope, None);
    }

    #[test]
    fn a_ragged_csv_row_is_refused_with_its_row_and_line() {
        let (code, msg) = csv_code("email,name\na@b.org,Ann\nc@d.org,Lee,extra\n");
        assert_eq!(code, "csv_ragged_row");
        assert!(msg.contains("row 2") && msg.contains("line 3"), "{msg}");
        assert!(
            msg.contains("3 cells") && msg.contains("2 columns"),
            "{msg}"
        );
        let (code, msg) = csv_code("email,name\na@b.org\n");
        assert_eq!(code, "csv_ragged_row");
        assert!(msg.contains("add the missing cells"), "{msg}");
    }

    #[test]
    fn a_csv_body_without_a_header_or_rows_is_refused_saying_what_to_add() {
        let (code, msg) = csv_code("a@b.org,Ann\nc@d.org,Lee\n");
        assert_eq!(code, "csv_missing_header");
        assert!(msg.contains("`a@b.org`"), "{msg}");
        let (code, msg) = csv_code("email,,plan\na,b,c\n");
        assert_eq!(code, "csv_missing_header");
        assert!(msg.contains("column 2"), "{msg}");
        assert_eq!(csv_code("email,name\n").0, "csv_no_rows");
        let (code, msg) = csv_code("email\nPK\u{3}\u{4}\n");
        assert_eq!(code, "not_csv");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn a_csv_body_is_held_to_the_record_limits() {
        let csv = "email\na\nb\nc\n";
        assert_eq!(
            explode_table(table(csv), Limits::records(2)).unwrap_err(),
            RecordsError::TooMany { count: 3, limit: 2 }
        );
        let tight = Limits {
            max_records: 10,
            max_record_bytes: csv.len(),
        };
        assert!(matches!(
            explode_table(table(csv), tight),
            Err(RecordsError::TooLarge { .. })
        ));
    }

    /// Worst cases measured for docs/performance.md (not a test of speed:
    /// `cargo test --lib records::tests::measure -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn measure_worst_cases() {
        use std::time::Instant;
        // The list search this replaced, for the before figure.
        fn quadratic(raw: &[&str]) -> Vec<String> {
            let mut names: Vec<String> = Vec::new();
            for h in raw {
                let mut name = h.to_string();
                let mut n = 2;
                while names.contains(&name) {
                    name = format!("{h}_{n}");
                    n += 1;
                }
                names.push(name);
            }
            names
        }
        for columns in [1_000usize, 2_000, 4_000] {
            let raw = vec!["a"; columns];
            let t = Instant::now();
            quadratic(&raw);
            println!("before: {columns} repeated names {:?}", t.elapsed());
        }
        for columns in [4_000usize, 100_000, 1_000_000] {
            let t = Instant::now();
            header_names(std::iter::repeat_n("a", columns));
            println!("after: {columns} repeated names {:?}", t.elapsed());
        }
        // A 5 MB CSV of repeated names and one row; and one refused by its budget.
        let header = vec!["a"; 1_250_000].join(",");
        let csv = format!("{header}\n{}", vec!["1"; 1_250_000].join(","));
        let t = Instant::now();
        let limits = Limits {
            max_records: 10_000,
            max_record_bytes: 16 * csv.len(),
        };
        let r = explode_within(json!({ "d": csv }), Some("d"), limits);
        println!(
            "5 MB CSV, 1.25M repeated names: {:?} ({})",
            t.elapsed(),
            r.is_ok()
        );
        let header: Vec<String> = (0..2_000)
            .map(|i| format!("a rather long column name {i}"))
            .collect();
        let mut csv = header.join(",");
        let row = format!("\n1{}", ",".repeat(1_999));
        while csv.len() < 5 << 20 {
            csv.push_str(&row);
        }
        let t = Instant::now();
        let limits = Limits {
            max_records: 10_000,
            max_record_bytes: 16 * csv.len(),
        };
        let r = explode_within(json!({ "d": csv }), Some("d"), limits);
        println!(
            "5 MB CSV exploding 2,600 rows x 2,000 columns: {:?} ({:?})",
            t.elapsed(),
            r.err()
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z,\\t\\n\"\\[\\]{}0-9 ]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-d.]{1,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_limit(
            body in arb_json(),
            path in proptest::option::of("[a-d.0-9]{0,8}"),
            max in 0usize..5,
        ) {
            if let Ok(e) = explode(body, path.as_deref(), max) {
                prop_assert!(e.records.len() <= max);
            }
        }
    }

    /// A CSV of `rows` rows under a header of `columns` names drawn from
    /// a few (so most repeat).
    fn arb_csv() -> impl Strategy<Value = String> {
        (
            prop::collection::vec("[ab]{1,2}(_[2-3])?", 1..300),
            0usize..3_000,
            "[0-9a-z\"]{0,3}",
        )
            .prop_map(|(columns, rows, cell)| {
                let mut csv = columns.join(",");
                for _ in 0..rows {
                    csv.push('\n');
                    csv.push_str(&cell);
                }
                csv
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Repeated headers and many rows: never a panic, unique names, and
        /// whatever is accepted is within the byte budget.
        #[test]
        fn csv_within_limits_or_refused(csv in arb_csv(), factor in 1usize..20) {
            let limits = Limits { max_records: 2_000, max_record_bytes: factor * csv.len() };
            match explode_within(json!({ "d": csv }), Some("d"), limits) {
                Ok(e) => {
                    let stored: usize = e.records.iter().map(|r| serde_json::to_vec(r).unwrap().len()).sum();
                    prop_assert!(stored <= limits.max_record_bytes);
                    prop_assert!(e.records.len() <= limits.max_records);
                }
                Err(err) => prop_assert!(matches!(
                    err,
                    RecordsError::TooLarge { .. } | RecordsError::TooMany { .. }
                        | RecordsError::Empty(_) | RecordsError::BadEmbedded(_)
                ), "{:?}", err),
            }
        }

        /// Any text as a CSV body: records within the limits with every
        /// header key, or a coded refusal; never a panic.
        #[test]
        fn csv_bodies_are_tables_or_coded_refusals(text in "[a-c@,\"\n\r\t\u{0}-\u{3} ]{0,200}", max in 0usize..5) {
            match explode_table(table(&text), Limits::records(max)) {
                Ok(e) => {
                    prop_assert!(e.records.len() <= max && !e.records.is_empty());
                    let width = e.records[0].as_object().map_or(0, Map::len);
                    for r in &e.records {
                        prop_assert_eq!(r.as_object().map_or(0, Map::len), width);
                    }
                }
                Err(err) => prop_assert!(matches!(
                    err.code(),
                    "csv_ragged_row" | "csv_missing_header" | "csv_no_rows" | "not_csv" | "too_many_records"
                ), "{:?}", err),
            }
        }

        /// Embedded JSON strings of any depth: refused past the limit,
        /// never a crash, and accepted records within `MAX_DEPTH`.
        #[test]
        fn deep_embedded_json_never_crashes(depth in 1usize..5_000, object in any::<bool>()) {
            let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
            let s = format!("[{}1{}]", open.repeat(depth), close.repeat(depth));
            match explode(json!({ "d": s }), Some("d"), 5) {
                Ok(e) => for r in &e.records { prop_assert!(check_depth(r).is_ok()) },
                Err(err) => prop_assert!(matches!(err, RecordsError::TooDeep(_)), "{:?}", err),
            }
        }
    }
}
