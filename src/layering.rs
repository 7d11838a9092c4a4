//! The module layering of docs/architecture.md, checked: every top-level module may name
//! (through `crate::…`) only the modules listed below it, so no module imports one above it
//! and there is no import circle. A new module, or a new dependency between two, is added to
//! [`LAYERS`] and to the table in docs/architecture.md together.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module, lowest first, with the modules it may use.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("store", &[]),
    ("codec", &["domain", "store"]),
    ("metrics", &[]),
    ("json_text", &[]),
    ("sched", &[]),
    ("telemetry", &[]),
    ("tenant", &["domain", "store", "codec"]),
    ("identity", &[]),
    ("chaos", &["tenant"]),
    ("journal", &["chaos", "json_text"]),
    (
        "http",
        &[
            "domain",
            "tenant",
            "metrics",
            "identity",
            "chaos",
            "journal",
            "json_text",
        ],
    ),
    ("config", &["http", "identity", "chaos", "journal"]),
    (
        "app",
        &[
            "chaos", "config", "http", "identity", "journal", "metrics", "store", "tenant",
        ],
    ),
    (
        "cli",
        &[
            "app",
            "chaos",
            "codec",
            "config",
            "domain",
            "http",
            "identity",
            "journal",
            "sched",
            "store",
            "telemetry",
            "tenant",
        ],
    ),
];

/// Files that are not a module of their own.
const NOT_MODULES: &[&str] = &["lib", "main", "layering"];

/// The top-level module a source file belongs to: `src/http/auth.rs` → `http`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let first = relative.components().next().map_or_else(String::new, |c| {
        c.as_os_str().to_string_lossy().into_owned()
    });
    first.trim_end_matches(".rs").to_owned()
}

/// The modules a file names as `crate::name`, outside comments.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `userflows_emulator::crate` is not a thing; a preceding identifier character
            // means another word that ends in "crate".
            let before = code[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if NOT_MODULES.contains(&module.as_str()) {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == module) else {
            broken.push(format!(
                "{}: module '{module}' is not in LAYERS",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if used != module && !allowed.contains(&used.as_str()) {
                broken.push(format!("{}: {module} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn each_layer_uses_only_layers_below_it() {
    for (i, (name, allowed)) in LAYERS.iter().enumerate() {
        let below: Vec<&str> = LAYERS[..i].iter().map(|(n, _)| *n).collect();
        for used in *allowed {
            assert!(
                below.contains(used),
                "{name} may use {used}, which is not below it"
            );
        }
    }
}

#[test]
fn the_scanner_finds_crate_paths_in_code_only() {
    let text = "use crate::store::{A, B};\n//! see [`crate::http`]\nlet x = crate::codec::f(); // crate::app\nmycrate::tenant";
    let found: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(found, ["codec", "store"]);
}
