//! The repository stands alone: no tracked file refers to documents
//! outside it, and every `design.md §N` citation names a section that
//! `docs/design.md` has.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every tracked file (`git ls-files`), or, outside a git checkout, every
/// file under the root except `target/` and `.git/`; never this file,
/// whose tests spell the forms they look for.
fn tracked_files() -> Vec<PathBuf> {
    let this = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/self_contained.rs");
    let this = this.canonicalize().unwrap_or(this);
    all_files()
        .into_iter()
        .filter(|f| f.canonicalize().map_or(true, |c| c != this))
        .collect()
}

fn all_files() -> Vec<PathBuf> {
    let root = root();
    if let Ok(out) = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        && out.status.success()
    {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

/// The outside references no file may contain. Built at run time so this
/// file does not name them.
fn forbidden() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["DES", "IGN.md"].concat(),
        ["/work", "/shared"].concat(),
    ]
}

/// Lines of `text` that contain one of `needles`, as `path:line: text`.
fn hits(path: &str, text: &str, needles: &[String]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| needles.iter().any(|n| l.contains(n.as_str())))
        .map(|(i, l)| format!("{path}:{}: {}", i + 1, l.trim()))
        .collect()
}

#[test]
fn no_tracked_file_refers_to_documents_outside_the_repository() {
    let files = tracked_files();
    assert!(files.len() > 100, "only {} files listed", files.len());
    let needles = forbidden();
    let mut found = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue; // tracked but deleted in the working tree
        };
        let text = String::from_utf8_lossy(&bytes);
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        found.extend(hits(&rel, &text, &needles));
    }
    assert!(
        found.is_empty(),
        "files refer to documents outside the repository (cite docs/design.md §N or another docs/ page):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_outside_reference_check_finds_each_form() {
    let needles = forbidden();
    // The example is built from the needles, so this file names none.
    let text = format!(
        "a\nsee {}/traces\nb {} §5\n{}/x\ndocs/design.md §5\n",
        needles[0], needles[1], needles[2]
    );
    let h = hits("x.rs", &text, &needles);
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h[0].starts_with("x.rs:2:"), "{h:?}");
}

/// The section numbers `docs/design.md` has (`## N. Title`).
fn design_sections() -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("docs/design.md")).expect("docs/design.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

/// The `N` of every `design.md §N` in `text`.
fn cited_sections(text: &str) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(k) = rest.find("design.md §") {
        rest = &rest[k + "design.md §".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        out.push(digits.parse().ok());
    }
    out
}

#[test]
fn every_design_citation_names_a_section_that_exists() {
    let sections = design_sections();
    assert!(sections.len() >= 10, "{sections:?}");
    let mut bad = Vec::new();
    let mut cited = 0;
    for f in tracked_files() {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for n in cited_sections(&text) {
            cited += 1;
            if !n.is_some_and(|n| sections.contains(&n)) {
                bad.push(format!("{}: §{n:?}", f.display()));
            }
        }
    }
    assert!(cited > 20, "only {cited} citations found");
    assert!(
        bad.is_empty(),
        "citations of missing sections:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        cited_sections("docs/design.md §5 and [design.md §12](design.md) and design.md §x"),
        vec![Some(5), Some(12), None]
    );
}
