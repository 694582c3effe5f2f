//! One lint configuration, held by tests so it stays true:
//!
//! * every workspace crate inherits the workspace lints
//!   (`[lints] workspace = true` and nothing beside it);
//! * the no-panic list is stated once, as `[workspace.lints.clippy]` in
//!   the root `Cargo.toml`, every entry at `deny`, and no source file
//!   restates it (a `deny`/`forbid` of one of its lints);
//! * a no_std crate (its library root says `no_std`: gate, hyp, the image,
//!   the root `pvgate`) does not relax any of it at crate level.
//!
//! Each check is a function over plain text, attacked with an input that
//! breaks it (the `*_are_caught` tests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;
use common::{cargo_metadata, workspace_root};

/// No_std crates that still relax one lint of the list at crate level,
/// with the reason stated beside the `#![allow]`. Empty this as they are
/// fixed: the test fails when a listed relaxation is gone.
const KNOWN_RELAXED: &[(&str, &str)] = &[];

/// The crates that must be found as no_std, so a detection that finds
/// nothing cannot pass.
const MUST_BE_NO_STD: &[&str] = &["pvgate", "pvgate-gate", "pvgate-hyp", "pvgate-image"];

/// One workspace member: its name, manifest text and library root.
struct Member {
    name: String,
    manifest: String,
    lib_root: Option<PathBuf>,
}

fn members() -> Vec<Member> {
    let meta = cargo_metadata();
    meta["packages"]
        .as_array()
        .expect("`packages` is an array")
        .iter()
        .map(|p| {
            let manifest = p["manifest_path"].as_str().expect("a manifest path");
            let lib_root = p["targets"].as_array().into_iter().flatten().find_map(|t| {
                let kinds = t["kind"].as_array()?;
                kinds
                    .iter()
                    .any(|k| matches!(k.as_str(), Some("lib" | "rlib" | "staticlib")))
                    .then(|| PathBuf::from(t["src_path"].as_str().unwrap_or_default()))
            });
            Member {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                manifest: std::fs::read_to_string(manifest).expect("manifest reads"),
                lib_root,
            }
        })
        .collect()
}

/// Why a package manifest does not inherit exactly the workspace lints.
fn inherits_workspace_lints(manifest: &str) -> Result<(), String> {
    let doc: toml::Table = toml::from_str(manifest).map_err(|e| e.to_string())?;
    let Some(lints) = doc.get("lints").and_then(toml::Value::as_table) else {
        return Err(String::from("has no `[lints]` table"));
    };
    if lints.get("workspace").and_then(toml::Value::as_bool) != Some(true) {
        return Err(String::from("does not set `[lints] workspace = true`"));
    }
    if lints.len() != 1 {
        return Err(String::from(
            "states lints of its own beside `workspace = true`",
        ));
    }
    Ok(())
}

/// The no-panic list: `[workspace.lints.clippy]`, each entry at `deny`.
fn no_panic_list(root_manifest: &str) -> Result<BTreeSet<String>, String> {
    let doc: toml::Table = toml::from_str(root_manifest).map_err(|e| e.to_string())?;
    let table = doc
        .get("workspace")
        .and_then(|w| w.get("lints"))
        .and_then(|l| l.get("clippy"))
        .and_then(toml::Value::as_table)
        .ok_or("no `[workspace.lints.clippy]` table")?;
    let mut out = BTreeSet::new();
    for (lint, level) in table {
        let level = level
            .as_str()
            .or_else(|| level.get("level").and_then(toml::Value::as_str));
        if level != Some("deny") {
            return Err(format!("`clippy::{lint}` is at {level:?}, not `deny`"));
        }
        out.insert(lint.clone());
    }
    if out.is_empty() {
        return Err(String::from("`[workspace.lints.clippy]` is empty"));
    }
    Ok(out)
}

/// The crate-level inner attributes at the top of a crate root, each as
/// one string with whitespace removed (`#![cfg_attr(...)]` included).
fn crate_attributes(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(String, i32)> = None;
    for line in src.lines() {
        let t = line.trim();
        if let Some((mut text, mut depth)) = current.take() {
            text.extend(t.chars().filter(|c| !c.is_whitespace()));
            depth += bracket_depth(t);
            if depth > 0 {
                current = Some((text, depth));
            } else {
                out.push(text);
            }
            continue;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        if t.starts_with("#![") {
            let text: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            let depth = bracket_depth(t);
            if depth > 0 {
                current = Some((text, depth));
            } else {
                out.push(text);
            }
            continue;
        }
        break;
    }
    out
}

fn bracket_depth(s: &str) -> i32 {
    s.chars()
        .map(|c| match c {
            '[' | '(' => 1,
            ']' | ')' => -1,
            _ => 0,
        })
        .sum()
}

/// The lints of `list` that a crate root's attributes relax (`allow`,
/// `warn` or `expect`, also under `cfg_attr`, except `cfg_attr(test, ..)`,
/// which only concerns the crate's own unit-test build).
fn relaxed(src: &str, list: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for attr in crate_attributes(src) {
        if attr.starts_with("#![cfg_attr(test,") {
            continue;
        }
        if !["allow(", "warn(", "expect("]
            .iter()
            .any(|l| attr.contains(l))
        {
            continue;
        }
        for lint in list {
            if attr.contains(&format!("clippy::{lint}")) {
                out.insert(lint.clone());
            }
        }
    }
    out
}

/// Whether a crate root declares itself `no_std` (always or under a cfg).
fn is_no_std(src: &str) -> bool {
    crate_attributes(src)
        .iter()
        .any(|a| a == "#![no_std]" || (a.starts_with("#![cfg_attr(") && a.ends_with(",no_std)]")))
}

/// Lines of `src` that restate a lint of the list at `deny`/`forbid`.
fn restatements(src: &str, list: &BTreeSet<String>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut in_deny = false;
    for (n, line) in src.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        if code.contains("deny(") || code.contains("forbid(") {
            in_deny = true;
        }
        if in_deny && list.iter().any(|l| code.contains(&format!("clippy::{l}"))) {
            out.push(n + 1);
        }
        if in_deny && code.contains(')') && !code.trim_end().ends_with('(') {
            in_deny = code.matches('(').count() > code.matches(')').count();
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() && !matches!(name, "target" | ".git") && !name.starts_with('.') {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_crate_inherits_the_workspace_lints() {
    let members = members();
    assert!(members.len() >= 9, "only {} members", members.len());
    let problems: Vec<String> = members
        .iter()
        .filter_map(|m| {
            inherits_workspace_lints(&m.manifest)
                .err()
                .map(|e| format!("`{}` {e}", m.name))
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_no_panic_list_is_stated_once() {
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let list = no_panic_list(&root).unwrap();
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    assert!(files.len() > 50, "only {} source files", files.len());
    let mut problems = Vec::new();
    // This file's own fixtures restate lints on purpose.
    for f in files
        .iter()
        .filter(|f| !f.ends_with("review/tests/lint_config.rs"))
    {
        let src = std::fs::read_to_string(f).unwrap();
        for line in restatements(&src, &list) {
            problems.push(format!("{}:{line}", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "the no-panic list is restated (state it only in [workspace.lints.clippy]):\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_std_crates_keep_the_whole_no_panic_list() {
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let list = no_panic_list(&root).unwrap();
    let mut found = BTreeSet::new();
    let mut problems = Vec::new();
    for m in members() {
        let Some(lib) = &m.lib_root else { continue };
        let src = std::fs::read_to_string(lib).unwrap();
        if !is_no_std(&src) {
            continue;
        }
        found.insert(m.name.clone());
        if let Err(e) = inherits_workspace_lints(&m.manifest) {
            problems.push(format!("no_std `{}` {e}", m.name));
        }
        let known: BTreeSet<String> = KNOWN_RELAXED
            .iter()
            .filter(|(c, _)| *c == m.name)
            .map(|(_, l)| l.to_string())
            .collect();
        let relaxed = relaxed(&src, &list);
        for l in relaxed.difference(&known) {
            problems.push(format!(
                "no_std `{}` relaxes `clippy::{l}` in {}",
                m.name,
                lib.display()
            ));
        }
        for l in known.difference(&relaxed) {
            problems.push(format!(
                "`{}` no longer relaxes `clippy::{l}`: remove it from KNOWN_RELAXED",
                m.name
            ));
        }
    }
    for must in MUST_BE_NO_STD {
        if !found.contains(*must) {
            problems.push(format!("`{must}` was not found as a no_std crate"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn manifests_that_do_not_inherit_the_lints_are_caught() {
    let pkg = "[package]\nname = \"x\"\n";
    assert!(inherits_workspace_lints(&format!("{pkg}[lints]\nworkspace = true\n")).is_ok());
    for bad in [
        String::from(pkg),
        format!("{pkg}[lints.rust]\nmissing_docs = \"warn\"\n"),
        format!("{pkg}[lints]\nworkspace = false\n"),
        format!("{pkg}[lints]\nworkspace = true\n[lints.clippy]\npanic = \"allow\"\n"),
    ] {
        assert!(inherits_workspace_lints(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_weak_or_empty_workspace_table_is_caught() {
    let ok = "[workspace.lints.clippy]\npanic = \"deny\"\nindexing_slicing = { level = \"deny\", priority = 1 }\n";
    assert_eq!(no_panic_list(ok).unwrap().len(), 2);
    for bad in [
        "[workspace.lints.clippy]\npanic = \"warn\"\n",
        "[workspace.lints.clippy]\n",
        "[workspace.lints.rust]\nmissing_docs = \"warn\"\n",
    ] {
        assert!(no_panic_list(bad).is_err(), "{bad}");
    }
}

#[test]
fn relaxing_a_no_std_crate_is_caught_and_test_modules_are_not() {
    let list: BTreeSet<String> = ["panic", "indexing_slicing"].map(String::from).into();
    let root = |attrs: &str| {
        format!(
            "//! Docs.\n{attrs}\nuse core::fmt;\nmod tests {{\n    #![allow(clippy::panic)]\n}}\n"
        )
    };
    assert!(is_no_std(&root("#![no_std]")));
    assert!(is_no_std(&root("#![cfg_attr(not(test), no_std)]")));
    assert!(!is_no_std(&root("#![allow(dead_code)]")));
    assert!(
        relaxed(&root("#![no_std]"), &list).is_empty(),
        "a test module's allow is not crate level"
    );
    assert!(relaxed(&root("#![cfg_attr(test, allow(clippy::panic))]"), &list).is_empty());
    for (attrs, lint) in [
        ("#![no_std]\n#![allow(clippy::panic)]", "panic"),
        (
            "#![no_std]\n// why\n#![warn(\n    clippy::indexing_slicing,\n)]",
            "indexing_slicing",
        ),
        ("#![cfg_attr(not(test), allow(clippy::panic))]", "panic"),
        ("#![expect(clippy::indexing_slicing)]", "indexing_slicing"),
    ] {
        assert_eq!(
            relaxed(&root(attrs), &list),
            BTreeSet::from([lint.to_string()]),
            "{attrs}"
        );
    }
}

#[test]
fn restating_the_list_is_caught() {
    let list: BTreeSet<String> = ["panic", "indexing_slicing"].map(String::from).into();
    let src = "#![deny(\n    clippy::indexing_slicing,\n)]\n#![allow(clippy::panic)]\n#[deny(clippy::panic)]\nfn f() {}\n// deny(clippy::panic) in a comment\n";
    assert_eq!(restatements(src, &list), [2, 5]);
}
