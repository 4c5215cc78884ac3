//! Record explosion: one decoded request body becomes one or more records.
//!
//! (Filled in by the records/sniffer issue; the skeleton keeps the contract.)

use serde_json::Value;

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
}

/// Turns a decoded body into records.
///
/// A top-level array explodes into its elements; `records_path` names the
/// array inside an object; otherwise the object is the one record.
pub fn explode(
    body: Value,
    records_path: Option<&str>,
    max_records: usize,
) -> Result<Exploded, RecordsError> {
    let _ = records_path;
    let records = match body {
        Value::Array(items) => items,
        other => vec![other],
    };
    if records.len() > max_records {
        return Err(RecordsError::TooMany {
            count: records.len(),
            limit: max_records,
        });
    }
    Ok(Exploded {
        envelope: None,
        records,
        not_mappable: None,
    })
}
