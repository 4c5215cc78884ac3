//! The template mapper: a source's mapping turns a record into a `MappedEvent`.
//!
//! A mapping is compiled once per version ([`CompiledMapping::compile`]) and
//! then shared by every task that maps events of that source, so all the
//! expensive work (parsing templates, checking helpers, finding bare paths)
//! happens at save time, and a bad mapping is refused with one message per
//! field before any event is mapped with it.
//!
//! Submodules, one concept each: [`template`] classifies slots, [`path`]
//! reads values directly, [`helpers`] are the marketer-facing helpers,
//! [`timestamp`] parses event times, [`presets`] ships ready mappings,
//! [`limits`] bounds a template's size and nesting before handlebars parses
//! it, [`budget`] bounds what rendering one event may produce and run.

pub mod budget;
pub mod helpers;
pub mod limits;
mod path;
pub mod presets;
mod reach;
mod template;
pub mod template_errors;
mod timestamp;

#[cfg(test)]
mod exact_tests;
#[cfg(test)]
mod tests;

use crate::domain::identity::{self, IdentKind, KindName};
use crate::domain::model::{MappedEvent, MappingSpec, PropertiesSpec, RecordContext};
use handlebars::template::Template;
use handlebars::{Handlebars, JsonRender};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use template::Slot;

pub use path::{expression, template_path};
pub use reach::{EmptySlot, NearField};

/// Why one record could not be mapped; each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The event needs a name and this record gave none.
    #[error("event_name rendered empty: {hint}")]
    EmptyEventName { hint: String },
    /// Handlebars refused to render a slot for this record.
    #[error("`{field}` could not be rendered: {reason}; fix this template in the mapping")]
    Render { field: String, reason: String },
    /// A slot's render ran past a per-event bound (output bytes, iterations).
    #[error(
        "`{field}` could not be rendered: {reason}; the template makes too much of this record"
    )]
    Limit {
        field: String,
        reason: String,
        code: &'static str,
    },
}

impl MapError {
    /// The machine-readable code of the error-log entry.
    pub fn code(&self) -> &'static str {
        match self {
            MapError::EmptyEventName { .. } | MapError::Render { .. } => "map_failed",
            MapError::Limit { code, .. } => code,
        }
    }
}

/// Why a mapping does not compile: one message per field, and the code of
/// the first limit it broke (`template_too_deep`, `template_too_large`,
/// `mapping_too_large`), if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompileErrors {
    pub fields: BTreeMap<String, String>,
    pub code: Option<&'static str>,
}

impl std::fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// A mapped record plus what the marketer should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event: MappedEvent,
    /// E.g. an unparseable timestamp that fell back to `received_at`.
    pub warnings: Vec<String>,
    /// Set when the record's timestamp was too far past its arrival and the
    /// arrival time was kept instead (error-log code `timestamp_in_future`):
    /// apart from `warnings` so the error log can tell it by its code.
    pub clamped_timestamp: Option<String>,
}

/// How `properties` is produced.
#[derive(Debug, Clone)]
enum Props {
    None,
    /// `"*"`: the whole record.
    All,
    /// `["a.b", ...]`: output key and the segments to read.
    Paths(Vec<(String, Vec<String>)>),
    /// `{"out": "{{tmpl}}"}`.
    Templates(Vec<(String, Slot)>),
}

/// A validated mapping, ready to apply to any number of records.
///
/// Send + Sync: share it in an `Arc` across tasks.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub version: u32,
    pub spec: MappingSpec,
    registry: Handlebars<'static>,
    event_name: (String, Slot),
    visitor_id: Option<Slot>,
    email: Option<Slot>,
    external_id: Option<Slot>,
    /// A team's kinds (`identifiers`), in name order.
    identifiers: Vec<(KindName, Slot)>,
    event_id: Option<Slot>,
    timestamp: Option<(String, Slot)>,
    idempotency_key: Option<Slot>,
    properties: Props,
    traits: Vec<(String, Slot)>,
    paths: Vec<Vec<String>>,
    /// Whether a template reads `record.*`, so the context must carry it.
    record_alias: bool,
}

/// Collects slots and errors while compiling.
struct Compiler {
    registry: Handlebars<'static>,
    errors: BTreeMap<String, String>,
    code: Option<&'static str>,
    paths: Vec<Vec<String>>,
}

impl Compiler {
    fn new() -> Self {
        let mut registry = Handlebars::new();
        // Emails like `o'brien+x=y&z@example.org` must reach the profile unchanged.
        registry.register_escape_fn(handlebars::no_escape);
        registry.set_strict_mode(false);
        helpers::register(&mut registry);
        Self {
            registry,
            errors: BTreeMap::new(),
            code: None,
            paths: Vec::new(),
        }
    }

    /// Compiles a slot that is set and not blank.
    fn optional(&mut self, key: &str, source: Option<&String>) -> Option<Slot> {
        let source = source.filter(|s| !s.trim().is_empty())?;
        self.slot(key, source)
    }

    /// Classifies and compiles one slot; records an error under `key` on failure.
    fn slot(&mut self, key: &str, source: &str) -> Option<Slot> {
        if let Some(message) = template_errors::stray_close_message(key, source) {
            return self.fail(key, message);
        }
        if template::is_static(source) {
            return Some(Slot::Static(source.to_owned()));
        }
        let parsed = match Template::compile_with_name(source.trim(), key.to_owned()) {
            Ok(t) => t,
            Err(e) => {
                let message = template_errors::unreadable(key, source.trim(), e.pos());
                return self.fail(key, message);
            }
        };
        let analysis = template::analyse(&parsed);
        if let Some(name) = analysis.unknown_helpers.first() {
            let message = template_errors::unknown_helper(key, source.trim(), name);
            return self.fail(key, message);
        }
        if let Some(what) = analysis.unsupported.first() {
            return self.fail(
                key,
                format!("{what} are not supported in mappings: `{source}`"),
            );
        }
        self.paths.extend(analysis.paths);
        if let Some(segs) = template::bare_path(&parsed) {
            return Some(Slot::Bare(segs));
        }
        self.registry.register_template(key, parsed);
        budget::start_event();
        if let Err(e) = self.registry.render(key, &Value::Object(Map::new())) {
            self.registry.unregister_template(key);
            return self.fail(key, format!("`{source}` cannot render: {e}"));
        }
        Some(Slot::Template(key.to_owned()))
    }

    fn fail(&mut self, key: &str, message: String) -> Option<Slot> {
        self.errors.insert(key.to_owned(), message);
        None
    }

    /// A slot refused by a limit: its message, and the code if it is the first.
    fn refuse(&mut self, key: &str, refusal: limits::Refusal) -> Option<Slot> {
        self.code.get_or_insert(refusal.code);
        self.fail(key, refusal.message)
    }

    fn into_errors(self) -> CompileErrors {
        CompileErrors {
            fields: self.errors,
            code: self.code,
        }
    }

    /// Named templates (`properties` objects and `traits`), in key order.
    fn named(&mut self, prefix: &str, map: &BTreeMap<String, String>) -> Vec<(String, Slot)> {
        map.iter()
            .filter_map(|(out, source)| {
                let slot = self.slot(&format!("{prefix}.{out}"), source)?;
                Some((out.clone(), slot))
            })
            .collect()
    }

    /// The `identifiers` slots: each key must name a team's kind (a
    /// built-in has its own slot, so there is one way to map it).
    fn identifiers(&mut self, spec: Option<&BTreeMap<String, String>>) -> Vec<(KindName, Slot)> {
        let mut out = Vec::new();
        for (name, source) in spec.into_iter().flatten() {
            let key = format!("identifiers.{name}");
            let kind = match IdentKind::parse(name) {
                Ok(IdentKind::Custom(kind)) => kind,
                Ok(builtin) => {
                    self.fail(
                        &key,
                        format!("`{builtin}` has its own slot: map it as `\"{builtin}\": \"{source}\"`, not under identifiers"),
                    );
                    continue;
                }
                Err(e) => {
                    self.fail(&key, e.to_string());
                    continue;
                }
            };
            if source.trim().is_empty() {
                continue;
            }
            if let Some(slot) = self.slot(&key, source) {
                out.push((kind, slot));
            }
        }
        out
    }

    fn properties(&mut self, spec: Option<&PropertiesSpec>) -> Props {
        match spec {
            None => Props::None,
            Some(PropertiesSpec::All(s)) if s.trim() == "*" => Props::All,
            Some(PropertiesSpec::All(s)) => {
                self.fail(
                    "properties",
                    format!(
                        "`{s}` is not a properties mode: use \"*\" for the whole record, \
                         a list of paths, or an object of templates"
                    ),
                );
                Props::None
            }
            Some(PropertiesSpec::Paths(list)) => Props::Paths(self.path_list(list)),
            Some(PropertiesSpec::Templates(map)) => Props::Templates(self.named("properties", map)),
        }
    }

    fn path_list(&mut self, list: &[String]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .filter_map(|raw| {
                let Some(segs) = path::parse_segments(raw) else {
                    self.fail(
                        &format!("properties.{raw}"),
                        format!(
                            "`{raw}` is not a path: write it like `order.total` or `items.0.sku`"
                        ),
                    );
                    return None;
                };
                self.paths.push(segs.clone());
                Some((raw.trim().to_owned(), segs))
            })
            .collect()
    }
}

impl CompiledMapping {
    /// Validates and compiles.
    ///
    /// Errors: one message per field name (`event_name`, `email`,
    /// `properties.total`, `traits.plan`; "no identity at all" is under
    /// `identity`).
    pub fn compile(spec: MappingSpec, version: u32) -> Result<CompiledMapping, CompileErrors> {
        let mut c = Compiler::new();
        check_limits(&mut c, &spec);
        if !c.errors.is_empty() {
            return Err(c.into_errors());
        }
        let event_name = c.optional("event_name", spec.event_name.as_ref());
        if spec
            .event_name
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            c.fail(
                "event_name",
                "event_name is required: a static name like `Order Placed` or a template like `{{type}}`"
                    .to_owned(),
            );
        }
        let visitor_id = c.optional("visitor_id", spec.visitor_id.as_ref());
        let email = c.optional("email", spec.email.as_ref());
        let external_id = c.optional("external_id", spec.external_id.as_ref());
        let identifiers = c.identifiers(spec.identifiers.as_ref());
        let identity_set = [&spec.visitor_id, &spec.email, &spec.external_id]
            .iter()
            .any(|s| s.as_deref().is_some_and(|s| !s.trim().is_empty()))
            || !identifiers.is_empty();
        if !identity_set {
            c.fail(
                "identity",
                "map at least one of visitor_id, email or external_id (or a kind of your own under `identifiers`), so events can be joined to a profile"
                    .to_owned(),
            );
        }
        let event_id = c.optional("event_id", spec.event_id.as_ref());
        let timestamp = c.optional("timestamp", spec.timestamp.as_ref());
        let idempotency_key = c.optional("idempotency_key", spec.idempotency_key.as_ref());
        let properties = c.properties(spec.properties.as_ref());
        let traits = spec
            .traits
            .as_ref()
            .map(|t| c.named("traits", t))
            .unwrap_or_default();
        if !c.errors.is_empty() {
            return Err(c.into_errors());
        }
        let (Some(event_name), Some(name_src)) = (event_name, spec.event_name.clone()) else {
            return Err(c.into_errors());
        };
        let record_alias = c
            .paths
            .iter()
            .any(|p| p.first().is_some_and(|s| s == "record"));
        Ok(CompiledMapping {
            version,
            timestamp: timestamp
                .zip(spec.timestamp.clone())
                .map(|(s, src)| (src, s)),
            spec,
            registry: c.registry,
            event_name: (name_src, event_name),
            visitor_id,
            email,
            external_id,
            identifiers,
            event_id,
            idempotency_key,
            properties,
            traits,
            paths: c.paths,
            record_alias,
        })
    }

    /// Maps one record. Warnings are returned alongside.
    pub fn apply(&self, ctx: &RecordContext) -> Result<Mapped, MapError> {
        let view = View::start(self, ctx);
        let mut warnings = Vec::new();
        let mut clamped_timestamp = None;
        let name = view
            .text("event_name", &self.event_name.1)?
            .trim()
            .to_owned();
        if name.is_empty() {
            return Err(MapError::EmptyEventName {
                hint: self.empty_name_hint(),
            });
        }
        let event_id = view.identity("event_id", self.event_id.as_ref(), false)?;
        let idempotency_key = match &self.idempotency_key {
            Some(slot) => view.identity("idempotency_key", Some(slot), false)?,
            None => event_id.clone(),
        };
        let event = MappedEvent {
            name,
            visitor_id: view.identity("visitor_id", self.visitor_id.as_ref(), false)?,
            email: view.identity("email", self.email.as_ref(), true)?,
            external_id: view.identity("external_id", self.external_id.as_ref(), false)?,
            event_id,
            timestamp: view.timestamp(&mut warnings, &mut clamped_timestamp)?,
            properties: view.properties()?,
            traits: view.named(&self.traits, "traits")?,
            idempotency_key,
            mapping_version: self.version,
            identifiers: self.identifiers(&view)?,
        };
        Ok(Mapped {
            event,
            warnings,
            clamped_timestamp,
        })
    }

    /// The kinds the mapping's `identifiers` name (the service checks they
    /// are defined).
    pub fn identifier_kinds(&self) -> impl Iterator<Item = &KindName> {
        self.identifiers.iter().map(|(kind, _)| kind)
    }

    /// The `identifiers` values of one record, trimmed; empty ones left out.
    fn identifiers(&self, view: &View<'_>) -> Result<BTreeMap<KindName, String>, MapError> {
        let mut out = BTreeMap::new();
        for (kind, slot) in &self.identifiers {
            let field = format!("identifiers.{}", kind.as_str());
            if let Some(value) = view.identity(&field, Some(slot), false)? {
                out.insert(kind.clone(), value);
            }
        }
        Ok(out)
    }

    /// Every record path the templates read (e.g. `customer.email`,
    /// `items.0.sku`), sorted, for "path never seen" warnings.
    ///
    /// `envelope.*` and `headers.*` are left out (they are not record
    /// fields); `record.x` is reported as `x`.
    pub fn referenced_paths(&self) -> Vec<String> {
        self.referenced_segments()
            .iter()
            .map(|p| p.join("."))
            .collect()
    }

    /// [`Self::referenced_paths`] as segments, so a key with a dot in it
    /// (`[users.email]`) stays one segment; sorted, without duplicates.
    pub fn referenced_segments(&self) -> Vec<Vec<String>> {
        self.paths
            .iter()
            .filter(|p| !p.first().is_some_and(|s| s == "envelope" || s == "headers"))
            .map(|p| match p.split_first() {
                Some((first, rest)) if first == "record" => rest.to_vec(),
                _ => p.clone(),
            })
            .filter(|p| !p.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// What to tell the marketer when the event name is empty.
    fn empty_name_hint(&self) -> String {
        let (source, slot) = &self.event_name;
        match slot {
            Slot::Bare(_) => format!("`{}` is missing in this record", source.trim()),
            _ => format!(
                "`{}` produced nothing for this record; check the paths it reads exist, \
                 or add a fallback with `default`",
                source.trim()
            ),
        }
    }
}

/// Every template of a spec with the field it fills, for the limits
/// checked before anything is parsed.
fn template_slots(spec: &MappingSpec) -> Vec<(String, &str)> {
    let single = [
        ("event_name", &spec.event_name),
        ("visitor_id", &spec.visitor_id),
        ("email", &spec.email),
        ("external_id", &spec.external_id),
        ("event_id", &spec.event_id),
        ("timestamp", &spec.timestamp),
        ("idempotency_key", &spec.idempotency_key),
    ];
    let mut out: Vec<(String, &str)> = single
        .into_iter()
        .filter_map(|(key, s)| Some((key.to_owned(), s.as_deref()?)))
        .collect();
    if let Some(PropertiesSpec::Templates(map)) = &spec.properties {
        out.extend(
            map.iter()
                .map(|(k, v)| (format!("properties.{k}"), v.as_str())),
        );
    }
    if let Some(traits) = &spec.traits {
        out.extend(
            traits
                .iter()
                .map(|(k, v)| (format!("traits.{k}"), v.as_str())),
        );
    }
    if let Some(identifiers) = &spec.identifiers {
        out.extend(
            identifiers
                .iter()
                .map(|(k, v)| (format!("identifiers.{k}"), v.as_str())),
        );
    }
    out
}

/// Checks every template's nesting and size, then the mapping's total,
/// before handlebars parses any of them.
fn check_limits(c: &mut Compiler, spec: &MappingSpec) {
    let slots = template_slots(spec);
    for (key, source) in &slots {
        if let Err(refusal) = limits::check_template(source) {
            c.refuse(key, refusal);
        }
    }
    if !c.errors.is_empty() {
        return;
    }
    let total: usize = slots.iter().map(|(key, s)| key.len() + s.len()).sum();
    if let Err(refusal) = limits::check_mapping_size(total) {
        c.refuse("mapping", refusal);
    }
}

/// One record as the slots of one mapping see it.
struct View<'a> {
    mapping: &'a CompiledMapping,
    ctx: &'a RecordContext<'a>,
    /// The handlebars context, built only if a slot needs real rendering.
    hb: OnceLock<handlebars::Context>,
    /// Bytes this event's slots have rendered so far.
    rendered: Cell<usize>,
}

impl<'a> View<'a> {
    /// A view of one record, with the per-event render budget started.
    fn start(mapping: &'a CompiledMapping, ctx: &'a RecordContext<'a>) -> Self {
        budget::start_event();
        View {
            mapping,
            ctx,
            hb: OnceLock::new(),
            rendered: Cell::new(0),
        }
    }
}

impl View<'_> {
    /// The handlebars context: the record's fields at the top level plus
    /// the reserved `envelope`, `headers` (and `record` when read).
    fn hb_context(&self) -> &handlebars::Context {
        self.hb.get_or_init(|| {
            let ctx = self.ctx;
            let mut map = match ctx.record {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            map.insert(
                "envelope".into(),
                ctx.envelope.cloned().unwrap_or(Value::Null),
            );
            map.insert("headers".into(), Value::Object(ctx.headers.clone()));
            if self.mapping.record_alias || !ctx.record.is_object() {
                map.insert("record".into(), ctx.record.clone());
            }
            handlebars::Context::from(Value::Object(map))
        })
    }

    /// Renders a slot into a buffer bounded by what is left of the
    /// event's output budget, so a huge render stops at the limit.
    fn render(&self, field: &str, name: &str) -> Result<String, MapError> {
        let left = budget::MAX_EVENT_OUTPUT.saturating_sub(self.rendered.get());
        let limit = budget::MAX_SLOT_OUTPUT.min(left);
        let mut out = budget::BoundedOutput::new(limit);
        let rendered =
            self.mapping
                .registry
                .render_with_context_to_write(name, self.hb_context(), &mut out);
        match rendered {
            Ok(()) => {
                let text = out.into_string();
                self.rendered.set(self.rendered.get() + text.len());
                Ok(text)
            }
            Err(_) if out.overflowed => Err(MapError::Limit {
                field: field.to_owned(),
                reason: budget::too_large(limit),
                code: "output_too_large",
            }),
            Err(e) if e.to_string().contains(budget::ITERATIONS_MARK) => Err(MapError::Limit {
                field: field.to_owned(),
                reason: e.to_string(),
                code: "too_many_iterations",
            }),
            Err(e) => Err(MapError::Render {
                field: field.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// The slot's value with its JSON type when it is a bare path.
    fn value(&self, field: &str, slot: &Slot) -> Result<Option<Value>, MapError> {
        Ok(match slot {
            Slot::Static(s) => Some(Value::String(s.clone())),
            Slot::Bare(segs) => path::lookup(self.ctx, segs).cloned(),
            Slot::Template(name) => Some(Value::String(self.render(field, name)?)),
        })
    }

    /// The slot as text, the way handlebars prints values.
    fn text(&self, field: &str, slot: &Slot) -> Result<String, MapError> {
        Ok(match slot {
            Slot::Static(s) => s.clone(),
            Slot::Bare(segs) => path::lookup(self.ctx, segs)
                .map(JsonRender::render)
                .unwrap_or_default(),
            Slot::Template(name) => self.render(field, name)?,
        })
    }

    /// An identity slot: trimmed, `None` when empty; email lowercased. Both
    /// are the resolver's ASCII-only rules, so an odd space or a Kelvin sign
    /// reaches it unchanged and is refused or kept apart there.
    fn identity(
        &self,
        field: &str,
        slot: Option<&Slot>,
        lower: bool,
    ) -> Result<Option<String>, MapError> {
        let Some(slot) = slot else { return Ok(None) };
        let text = self.text(field, slot)?;
        let text = identity::trim(&text);
        Ok(match (text.is_empty(), lower) {
            (true, _) => None,
            (false, true) => Some(identity::lowercase_email(text)),
            (false, false) => Some(text.to_owned()),
        })
    }

    /// The event time: the slot's value, or the arrival time when it is
    /// missing, unreadable (a warning) or too far in the future (`clamped`),
    /// since "newest wins" would let a year-4000 event pin its traits forever.
    fn timestamp(
        &self,
        warnings: &mut Vec<String>,
        clamped: &mut Option<String>,
    ) -> Result<chrono::DateTime<chrono::Utc>, MapError> {
        let Some((source, slot)) = &self.mapping.timestamp else {
            return Ok(self.ctx.received_at);
        };
        let value = self.value("timestamp", slot)?.unwrap_or(Value::Null);
        if let Some(t) = timestamp::from_value(&value) {
            if timestamp::too_far_ahead(t, self.ctx.received_at) {
                *clamped = Some(timestamp::future_warning(t));
                return Ok(self.ctx.received_at);
            }
            return Ok(t);
        }
        let shown = value.render();
        warnings.push(if shown.trim().is_empty() {
            format!(
                "timestamp `{}` is missing in this record; kept received_at",
                source.trim()
            )
        } else {
            timestamp::warning(&shown)
        });
        Ok(self.ctx.received_at)
    }

    fn properties(&self) -> Result<Map<String, Value>, MapError> {
        Ok(match &self.mapping.properties {
            Props::None => Map::new(),
            Props::All => match self.ctx.record {
                Value::Object(m) => m.clone(),
                other => Map::from_iter([("value".to_owned(), other.clone())]),
            },
            Props::Paths(list) => list
                .iter()
                .filter_map(|(key, segs)| {
                    Some((key.clone(), path::lookup(self.ctx, segs)?.clone()))
                })
                .collect(),
            Props::Templates(list) => self.named(list, "properties")?,
        })
    }

    /// Named templates: bare paths keep their type, empty values are omitted.
    fn named(&self, list: &[(String, Slot)], prefix: &str) -> Result<Map<String, Value>, MapError> {
        let mut out = Map::new();
        for (key, slot) in list {
            let field = format!("{prefix}.{key}");
            match self.value(&field, slot)? {
                None => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => {
                    out.insert(key.clone(), v);
                }
            }
        }
        Ok(out)
    }
}
