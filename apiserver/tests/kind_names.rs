//! Kind-specific behaviour lives in the kind's strategy (`src/registry/<group>/<kind>/`). This
//! check fails when a served kind's name appears as a string literal anywhere else in the
//! apiserver or in skiff-common's non-test code (the patch schema table of common, which maps
//! kinds to their schemas for clients, excepted), so a `match kind { "Pod" => ... }` cannot
//! creep back into the generic code.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its test module(s): everything from the first `#[cfg(test)]` on.
fn non_test_code(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("readable source file");
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A kind folder: `src/registry/<group>/<kind>/...`.
fn in_kind_folder(src: &Path, path: &Path) -> bool {
    let rel = path.strip_prefix(src).expect("under src");
    let parts: Vec<_> = rel.components().collect();
    parts.len() >= 4 && parts[0].as_os_str() == "registry"
}

/// The served kinds, from the `kind: "..."` of the strategies' ResourceInfo statics.
fn served_kinds(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src.join("registry"), &mut files);
    let mut kinds = Vec::new();
    for f in files.iter().filter(|f| in_kind_folder(src, f)) {
        let text = non_test_code(f);
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("kind: \"") {
                if text.contains("pub static INFO: ResourceInfo") {
                    if let Some(kind) = rest.strip_suffix("\",") {
                        if !kinds.iter().any(|k| k == kind) {
                            kinds.push(kind.to_string());
                        }
                    }
                }
            }
        }
    }
    kinds
}

#[test]
fn kind_names_appear_only_in_their_strategies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let kinds = served_kinds(&src);
    assert!(
        kinds.len() >= 13 && kinds.iter().any(|k| k == "Pod"),
        "served kinds not found: {kinds:?}"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let common = root.join("../common/src");
    rust_files(&common, &mut files);
    let mut offences = Vec::new();
    for f in &files {
        if f.starts_with(&src) && in_kind_folder(&src, f) {
            continue;
        }
        if f.ends_with("strategic_merge/schema.rs") || f.ends_with("tests.rs") {
            continue;
        }
        let code = non_test_code(f);
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for kind in &kinds {
                if line.contains(&format!("\"{kind}\"")) {
                    offences.push(format!("{}:{}: \"{kind}\"", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "kind names matched as strings outside their strategy (move the behaviour into the \
         kind's strategy in src/registry/<group>/<kind>/):\n{}",
        offences.join("\n")
    );
}
