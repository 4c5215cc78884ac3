//! The error log: what went wrong where, newest first.

use super::{ServiceResult, Services};
use crate::domain::ids::ErrorId;
use crate::domain::model::ErrorEntry;
use crate::store::StateStore;
use serde::Serialize;

/// The error log's filter (a store type today; re-exported so HTTP names
/// it through the service it goes to).
pub use crate::store::ErrorFilter;

/// A page of the error log: the API's `{"errors", "next"}`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorPage {
    pub errors: Vec<ErrorEntry>,
    /// `before=` of the next (older) page, after a full page.
    pub next: Option<ErrorId>,
}

impl Services {
    pub async fn errors(&self, filter: ErrorFilter) -> ServiceResult<ErrorPage> {
        let errors = self.store.errors_page(&filter)?;
        let next = if errors.len() == filter.limit {
            errors.last().map(|e| e.id)
        } else {
            None
        };
        Ok(ErrorPage { errors, next })
    }
}
