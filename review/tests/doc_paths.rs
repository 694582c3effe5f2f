//! Every repository path a document names in backticks exists: the
//! README, `docs/*.md`, the committed `policy/*.review.md` files and every
//! other tracked Markdown file. A path that starts at a top-level entry of
//! the repository (`hyp/src/vm/slot.rs`, `policy/`) must exist from the
//! root; a shorter one (`vm/meta.rs`, `registry/hypervisor-cpuid.toml`)
//! must be the tail of some path in the tree. Placeholders (`<target>`,
//! `*.toml`, `NAME`, `OUT_DIR`), settings (`KEY=path`), absolute paths and
//! `..` examples are not repository paths and are skipped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file of the repository, relative to the root with `/`
/// separators: `git ls-files`, or outside a git checkout a walk that skips
/// `target/` and `.git/`.
fn repo_files() -> Vec<String> {
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
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
    }
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    walk(root, &p, out);
                }
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

/// The endings that make a backticked word a file path.
const EXTENSIONS: [&str; 12] = [
    ".rs", ".toml", ".md", ".sh", ".c", ".h", ".json", ".snap", ".yml", ".yaml", ".txt", ".py",
];

/// Whether `word`, the text between two backticks, names a repository
/// path (a file with a known extension, or a directory ending in `/`),
/// with a trailing `:line` dropped.
fn candidate(word: &str) -> Option<&str> {
    let word = match word.rsplit_once(':') {
        Some((p, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => p,
        _ => word,
    };
    let looks_like_path =
        word.contains('/') && (word.ends_with('/') || EXTENSIONS.iter().any(|e| word.ends_with(e)));
    let not_ours = word
        .chars()
        .any(|c| c.is_whitespace() || "<>*=$?{}[]|".contains(c))
        || word.starts_with('/')
        || word.starts_with("..")
        || word.contains("://")
        || word.starts_with('~');
    // An all-caps component is a placeholder (`NAME`, `OUT_DIR`), except
    // the conventional upper-case file names.
    let placeholder = word.split('/').any(|c| {
        let stem = c.split('.').next().unwrap_or("");
        stem.len() > 1
            && stem
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit())
            && !["README", "LICENSE", "CHANGELOG", "CONTRIBUTING"].contains(&stem)
    });
    (looks_like_path && !not_ours && !placeholder).then_some(word)
}

/// The code spans of `line`, in order: a run of backticks opens a span
/// that the next run of the same length closes (CommonMark), and the
/// span's content is trimmed of one space each side.
fn spans(line: &str) -> Vec<&str> {
    let run = |s: &str| s.chars().take_while(|c| *c == '`').count();
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(a) = rest.find('`') {
        let n = run(&rest[a..]);
        let body = &rest[a + n..];
        // The closing run: exactly `n` backticks.
        let mut k = 0;
        let close = loop {
            let Some(b) = body[k..].find('`') else {
                break None;
            };
            let m = run(&body[k + b..]);
            if m == n {
                break Some(k + b);
            }
            k += b + m;
        };
        let Some(b) = close else {
            rest = body;
            continue;
        };
        let inner = &body[..b];
        let inner = if n > 1 {
            inner.strip_prefix(' ').unwrap_or(inner)
        } else {
            inner
        };
        let inner = if n > 1 {
            inner.strip_suffix(' ').unwrap_or(inner)
        } else {
            inner
        };
        out.push(inner);
        rest = &body[b + n..];
    }
    out
}

/// Whether `line` opens or closes a fenced code block: three or more
/// backticks or tildes, at most three spaces in, and (for backticks) no
/// backtick after them, else it is an inline code span.
fn fence(line: &str) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let t = &line[indent..];
    indent <= 3
        && ["```", "~~~"].iter().any(|f| {
            t.starts_with(f) && {
                let c = f.chars().next().unwrap_or('`');
                let info = t.trim_start_matches(c);
                c != '`' || !info.contains('`')
            }
        })
}

/// The paths and directories of the repository, for lookups.
struct Tree {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
    top: BTreeSet<String>,
}

impl Tree {
    fn new(files: &[String]) -> Tree {
        let mut dirs = BTreeSet::new();
        let mut top = BTreeSet::new();
        for f in files {
            let parts: Vec<&str> = f.split('/').collect();
            top.insert(parts[0].to_string());
            for k in 1..parts.len() {
                dirs.insert(format!("{}/", parts[..k].join("/")));
            }
        }
        Tree {
            files: files.iter().cloned().collect(),
            dirs,
            top,
        }
    }

    fn exists(&self, p: &str) -> bool {
        self.files.contains(p) || self.dirs.contains(p)
    }

    /// Whether `p` names something of the tree: from the root when its
    /// first component is a top-level entry, else as the tail of a path.
    fn resolves(&self, p: &str) -> bool {
        let p = p.strip_prefix("./").unwrap_or(p);
        let first = p.split('/').next().unwrap_or("");
        if self.top.contains(first) {
            return self.exists(p);
        }
        let tail = format!("/{p}");
        self.files.iter().any(|f| f.ends_with(&tail))
            || self.dirs.iter().any(|d| d.ends_with(&tail))
    }
}

/// `path:line: word` for every backticked path of `text` that `tree`
/// does not hold; fenced code blocks are skipped.
fn missing(path: &str, text: &str, tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if fence(line) {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for word in spans(line).into_iter().filter_map(candidate) {
            if !tree.resolves(word) {
                out.push(format!("{path}:{}: `{word}`", i + 1));
            }
        }
    }
    out
}

#[test]
fn every_path_a_document_names_exists() {
    let files = repo_files();
    let tree = Tree::new(&files);
    let docs: Vec<&String> = files.iter().filter(|f| f.ends_with(".md")).collect();
    for must in [
        "README.md",
        "docs/threat-model.md",
        "policy/default.review.md",
    ] {
        assert!(docs.iter().any(|d| *d == must), "{must} not listed");
    }
    let mut bad = Vec::new();
    let mut checked = 0;
    for d in docs {
        let Ok(text) = std::fs::read_to_string(root().join(d)) else {
            continue; // tracked but deleted in the working tree
        };
        checked += text.lines().flat_map(spans).filter_map(candidate).count();
        bad.extend(missing(d, &text, &tree));
    }
    assert!(checked > 200, "only {checked} paths found");
    assert!(
        bad.is_empty(),
        "documents name paths this repository does not have:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_path_check_finds_stale_paths_and_skips_placeholders() {
    let files: Vec<String> = [
        "hyp/src/vm/wrap_tests.rs",
        "policy/registry/msrs.toml",
        "README.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tree = Tree::new(&files);
    let text = "\
ok `hyp/src/vm/wrap_tests.rs` and `policy/` and `registry/msrs.toml` and `vm/`
stale `hyp/src/hyp/wrap_tests.rs`, `policy/gone/` and `vm/gone.rs:12`
skipped `policy/NAME.review.md` `OUT_DIR/x.rs` `fuzz/<t>/` `policy/*.toml` `K=a/b.toml` `/etc/x.toml` `../x/y.toml` `*/`
not paths `a/b` `cargo test -p x` `x.rs`
``` `inline` span, not a fence ```, then ``a `vm/gone2.rs` b`` and `` policy/gone3/ ``
```
`hyp/in/a/fence.rs`
```
";
    let found = missing("d.md", text, &tree);
    assert_eq!(
        found,
        vec![
            "d.md:2: `hyp/src/hyp/wrap_tests.rs`",
            "d.md:2: `policy/gone/`",
            "d.md:2: `vm/gone.rs`",
            "d.md:5: `policy/gone3/`",
        ],
        "{found:#?}"
    );
}
