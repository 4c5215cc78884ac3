//! The JSON API under `/api`: one router per resource.

pub(crate) mod activity;
pub(crate) mod errors;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod mapping;
pub(crate) mod never_merge;
pub(crate) mod profiles;
pub(crate) mod sources;

pub(crate) use super::{page_limit, query_param};
