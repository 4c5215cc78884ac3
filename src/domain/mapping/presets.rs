//! Ready-made mappings for common senders, shipped inside the binary.
//!
//! The JSON files live in `mappings/` so marketers can read and copy them,
//! and are embedded with `include_str!` so the binary needs no files at run
//! time, whatever its working directory.

use crate::domain::identity::{KindName, Normalise};
use crate::domain::model::MappingSpec;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// One sender's preset: how to find its records and how to map them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub description: String,
    /// Where the records are inside the body (`None`: the body, or a top-level array).
    #[serde(default)]
    pub records_path: Option<String>,
    pub mapping: MappingSpec,
    /// The team kinds the mapping's `identifiers` name; creating a source
    /// from the preset defines those that are missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<PresetKind>,
    /// A realistic sample body, relative to the repository root (golden tests).
    pub fixture: String,
    /// The signature scheme the provider signs with: a source made from
    /// the preset verifies it, and asks for the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::domain::signature::SchemeName>,
}

/// A kind a preset needs, as it defines it when missing (an existing kind
/// of that name is kept as the team set it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetKind {
    pub name: KindName,
    pub limit: u32,
    pub normalise: Normalise,
}

/// The embedded preset files, in display order.
const SOURCES: [(&str, &str); 6] = [
    ("looker", include_str!("../../../mappings/looker.json")),
    ("segment", include_str!("../../../mappings/segment.json")),
    ("stripe", include_str!("../../../mappings/stripe.json")),
    (
        "shopify_order",
        include_str!("../../../mappings/shopify_order.json"),
    ),
    ("hubspot", include_str!("../../../mappings/hubspot.json")),
    (
        "github_push",
        include_str!("../../../mappings/github_push.json"),
    ),
];

static PRESETS: LazyLock<Vec<Preset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .filter_map(|(file, text)| match serde_json::from_str::<Preset>(text) {
            Ok(p) => Some(p),
            // Unreachable in a tested build (tests/presets.rs parses every file);
            // a broken preset is skipped rather than taking the server down.
            Err(e) => {
                tracing::error!(preset = file, error = %e, "embedded preset does not parse");
                None
            }
        })
        .collect()
});

/// Every preset, parsed once.
pub fn presets() -> &'static [Preset] {
    &PRESETS
}

/// The preset with this name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    presets().iter().find(|p| p.name == name)
}
