//! The layering drawn in `lib.rs` and docs/architecture.md, checked on the
//! source itself: each top-level module of `src/` may name only the modules
//! below it, only `store` names sled, and the JSON API and the dashboard
//! never name each other. A `use` that breaks a rule fails here with the
//! file and the line, before it can grow into a cycle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What each top-level module may import (besides itself).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("domain", &[][..]),
        ("config", &[][..]),
        ("store", &["domain"][..]),
        ("metrics", &["domain", "store"][..]),
        ("pipeline", &["domain", "store", "config", "metrics"][..]),
        ("service", &["domain", "store", "pipeline", "config"][..]),
        ("http", &["domain", "service", "config", "metrics"][..]),
        (
            "app",
            &[
                "domain", "store", "pipeline", "service", "http", "config", "metrics",
            ][..],
        ),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// Lines that name `crate::<module>`, outside comments.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.push((n + 1, name));
            }
            rest = tail;
        }
    }
    refs
}

/// Everything outside `#[cfg(test)]` modules: tests may reach across layers
/// to set a scene (a store built by hand for an adapter test).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed = allowed();
    let mut broken = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let may = allowed
            .get(module.as_str())
            .unwrap_or_else(|| panic!("{module}: a new top-level module needs a place in the layers (tests/layers.rs and docs/architecture.md)"));
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in crate_refs(without_tests(&text)) {
            if target != module
                && allowed.contains_key(target.as_str())
                && !may.contains(&target.as_str())
            {
                broken.push(format!(
                    "{}:{line}: {module} imports {target}",
                    file.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn only_the_store_names_sled() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        if module_of(&src, file).as_deref() == Some("store") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("sled::") {
                broken.push(format!("{}:{}", file.display(), n + 1));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "sled outside store:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_api_and_the_dashboard_never_import_each_other() {
    let http = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let pairs = [("api", "http::dashboard"), ("dashboard", "http::api")];
    let mut broken = Vec::new();
    for (dir, forbidden) in pairs {
        let mut files = Vec::new();
        rust_files(&http.join(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(forbidden) || (dir == "dashboard" && code.contains("super::api")) {
                    broken.push(format!("{}:{}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "api/dashboard cross imports:\n{}",
        broken.join("\n")
    );
}
