//! Every example runs as written: the lines after `Example:`/`Examples:`
//! in every subcommand's rendered `--help` (and the top-level one), and
//! every `cargo pvgate ...` line (or `$ cargo pvgate ...`) in the fenced
//! code blocks of README.md and docs/*.md, extracted here, never copied.
//!
//! Each runs in a scratch copy of the repository's inputs (so examples
//! that write files, `init --out policy/trusted.toml`, `> review.md`,
//! write there), with `>` redirections and `|` pipes done by the test and
//! globs expanded as a shell would. The expected exit code is the one the
//! example documents: a trailing `# exit N` comment, or the `(exit N)` line
//! of its output in a `$ ` block; 0 otherwise. The output a `$ ` block
//! shows must be what the command prints, byte for byte (a `[...` line
//! stands for lines the page cuts).
//!
//! Not run here, because another test runs them (checked below):
//! * `image` examples, which build the staticlib for minutes:
//!   image.rs `every_image_help_example_runs_as_written_and_none_builds_the_no_std_image`
//!   runs the `image --help` examples (README.md's and docs/image.md's
//!   first `image` command are the same line), and
//!   `the_documented_c_example_links_and_passes_against_the_strict_image`
//!   runs the `$OUT` block of docs/image.md;
//! * `digest --image target/pvgate-image/...`, which needs such a build:
//!   the image.rs tests read every library they build back with
//!   `digest --image`.
//!
//! Examples that name a git revision (`HEAD:path`, `--base HEAD`) run in
//! the repository itself (they only read it) and are skipped, saying so,
//! where the workspace is not a git checkout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Std test code: the two lints only a no_std crate needs (docs/design.md).
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{pvgate, root};

/// One example: where it comes from, the command line, its exit code.
#[derive(Debug)]
struct Example {
    from: String,
    line: String,
    code: i32,
    /// For a `$ ` command in the docs: the output shown under it (stdout,
    /// then stderr), where a `[...` line stands for lines cut.
    shown: Option<Vec<String>>,
}

/// The subcommands, from the top-level help.
fn subcommands() -> Vec<String> {
    let help = pvgate(&["--help"]).stdout;
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

/// Splits off a trailing `# comment` (outside quotes) and reads `# exit N`.
fn comment(line: &str) -> (String, Option<i32>) {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => {
                let note = line[i + 1..].trim();
                let code = note
                    .strip_prefix("exit ")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok());
                return (line[..i].trim_end().to_string(), code);
            }
            _ => {}
        }
        prev = c;
    }
    (line.trim_end().to_string(), None)
}

/// The examples of a rendered help text.
fn help_examples(cmd: &str, help: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_examples = false;
    let mut pending = String::new();
    for l in help.lines() {
        if l == "Example:" || l == "Examples:" {
            in_examples = true;
            continue;
        }
        if !in_examples {
            continue;
        }
        if !l.starts_with("  ") {
            in_examples = false;
            continue;
        }
        let text = l.trim();
        // clap wraps a line wider than the help (100 columns): the tail
        // would be lost and a truncated command run. Examples continue
        // with `\` instead.
        assert!(
            !pending.is_empty() || text.starts_with("cargo pvgate ") || text.starts_with('#'),
            "`{cmd} --help`: an example line wrapped by clap (write it with a `\\` continuation): `{text}`"
        );
        if let Some(head) = text.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let full = format!("{pending}{text}");
        pending.clear();
        if full.starts_with("cargo pvgate ") {
            let (line, code) = comment(&full);
            out.push(Example {
                from: format!("`{cmd} --help`"),
                line,
                code: code.unwrap_or(0),
                shown: None,
            });
        }
    }
    out
}

/// The `cargo pvgate` lines of the fenced code blocks of a markdown file.
fn doc_examples(file: &str) -> Vec<Example> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut out: Vec<Example> = Vec::new();
    let mut in_block = false;
    // Index in `out` of the `$ ` command whose output is being read.
    let mut shown: Option<usize> = None;
    // A line ending in `\` continues on the next (a shell continuation),
    // numbered by its first line.
    let mut joined: Vec<(usize, String)> = Vec::new();
    let mut continues = false;
    for (n, l) in text.lines().enumerate() {
        match (continues, joined.last_mut()) {
            (true, Some((_, prev))) => prev.push_str(l.trim_start()),
            _ => joined.push((n, l.to_string())),
        }
        continues = l.ends_with('\\') && !l.starts_with("```");
        if continues && let Some((_, last)) = joined.last_mut() {
            last.pop();
            if !last.ends_with(' ') {
                last.push(' ');
            }
        }
    }
    for (n, l) in &joined {
        let (n, l) = (*n, l.as_str());
        if l.starts_with("```") {
            in_block = !in_block;
            shown = None;
            continue;
        }
        if !in_block {
            continue;
        }
        let (prompt, body) = match l.strip_prefix("$ ") {
            Some(b) => (true, b),
            None => (false, l),
        };
        if let Some(exit) = l.strip_prefix("(exit ").and_then(|r| r.strip_suffix(')')) {
            if let Some(i) = shown {
                out[i].code = exit.parse().unwrap();
            }
            continue;
        }
        if prompt {
            shown = None;
        } else if let Some(i) = shown {
            out[i]
                .shown
                .get_or_insert_with(Vec::new)
                .push(l.to_string());
            continue;
        }
        if body.starts_with("cargo pvgate ") {
            let (line, code) = comment(body);
            out.push(Example {
                from: format!("{file}:{}", n + 1),
                line,
                code: code.unwrap_or(0),
                shown: None,
            });
            if prompt {
                shown = Some(out.len() - 1);
            }
        }
    }
    out
}

fn docs() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// Shell words: whitespace-separated, with '...' and "..." quoting.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// A word with `*` in its last component, expanded against `dir` as a
/// shell would (sorted; left as is when nothing matches).
fn glob(dir: &Path, word: &str) -> Vec<String> {
    if !word.contains('*') {
        return vec![word.to_string()];
    }
    let (parent, pattern) = word.rsplit_once('/').unwrap_or(("", word));
    let (pre, post) = pattern.split_once('*').unwrap();
    let mut hits: Vec<String> = std::fs::read_dir(dir.join(parent))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() >= pre.len() + post.len())
                .filter(|n| n.starts_with(pre) && n.ends_with(post))
                .map(|n| {
                    if parent.is_empty() {
                        n
                    } else {
                        format!("{parent}/{n}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    hits.sort();
    if hits.is_empty() {
        vec![word.to_string()]
    } else {
        hits
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A scratch copy of what the examples read: policies, traces, vectors,
/// the CLI's fixtures.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvgate-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["policy", "tests", "cli/tests"] {
        copy_dir(&root().join(d), &dir.join(d));
    }
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

fn is_git_checkout() -> bool {
    Command::new("git")
        .args(["rev-parse", "--verify", "HEAD"])
        .current_dir(root())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs one example; its exit code and what it printed.
fn run(dir: &Path, home: &Path, line: &str) -> (i32, String, String) {
    let rest = line.strip_prefix("cargo pvgate ").unwrap();
    let (cmd, pipe) = match rest.split_once(" | ") {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let (cmd, redirect) = match cmd.split_once(" > ") {
        Some((c, r)) => (c, Some(r.trim())),
        None => (cmd, None),
    };
    let args: Vec<String> = words(cmd)
        .into_iter()
        .map(|w| match w.strip_prefix("~/") {
            Some(p) => home.join(p).display().to_string(),
            None => w,
        })
        .flat_map(|w| glob(dir, &w))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(&args)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(target) = redirect {
        let path = match target.strip_prefix("~/") {
            Some(p) => home.join(p),
            None => dir.join(target),
        };
        // A redirection into a file the repository keeps (the schema)
        // must reproduce it.
        if let Ok(kept) = std::fs::read_to_string(root().join(target)) {
            assert_eq!(stdout, kept, "`{line}` does not reproduce {target}");
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out.stdout).unwrap();
    }
    if let Some(consumer) = pipe {
        let program = consumer.split_whitespace().next().unwrap();
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            println!("SKIPPED the `| {consumer}` of `{line}`: no `{program}` here");
        } else {
            let mut child = Command::new("sh")
                .args(["-c", consumer])
                .current_dir(dir)
                .env("MANPAGER", "cat")
                .env("PAGER", "cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(&out.stdout).unwrap();
            }
            let piped = child.wait_with_output().unwrap();
            assert!(
                piped.status.success(),
                "`{line}`: `{consumer}` failed: {}",
                String::from_utf8_lossy(&piped.stderr)
            );
        }
    }
    (code, stdout, stderr)
}

/// Whether `got` is the output a page shows, byte for byte; a `[...`
/// line in it stands for any lines (the page cut them).
fn same_output(shown: &[String], got: &str) -> Result<(), String> {
    let got: Vec<&str> = got.trim_end_matches('\n').split('\n').collect();
    let cut = shown
        .iter()
        .position(|l| l.trim_start().starts_with("[..."));
    let (head, tail) = match cut {
        Some(i) => (&shown[..i], &shown[i + 1..]),
        None => (shown, &[][..]),
    };
    let fits = |want: &[String], have: &[&str]| {
        want.len() == have.len() && want.iter().zip(have).all(|(w, h)| w == h)
    };
    if cut.is_none() {
        return if fits(head, &got) {
            Ok(())
        } else {
            Err("differs".into())
        };
    }
    if got.len() < head.len() + tail.len() {
        return Err("shorter than the lines shown".into());
    }
    if !fits(head, &got[..head.len()]) {
        return Err("the lines before the cut differ".into());
    }
    if !fits(tail, &got[got.len() - tail.len()..]) {
        return Err("the lines after the cut differ".into());
    }
    Ok(())
}

/// Every example, help first (top level, then each subcommand in the
/// order of the top-level help), then README.md, then docs/*.md.
fn examples() -> Vec<Example> {
    let mut all = help_examples("pvgate", &pvgate(&["--help"]).stdout);
    for cmd in subcommands() {
        all.extend(help_examples(&cmd, &pvgate(&[&cmd, "--help"]).stdout));
    }
    for file in docs() {
        all.extend(doc_examples(&file));
    }
    all
}

#[test]
fn every_subcommand_help_has_an_example() {
    let cmds = subcommands();
    assert!(cmds.len() >= 15, "{cmds:?}");
    for cmd in cmds {
        let help = pvgate(&[&cmd, "--help"]).stdout;
        let found = help_examples(&cmd, &help);
        assert!(
            found
                .iter()
                .any(|e| e.line.starts_with(&format!("cargo pvgate {cmd}"))),
            "`{cmd} --help` has no example of `{cmd}`:\n{help}"
        );
    }
}

#[test]
fn the_extraction_finds_the_examples_of_help_and_docs() {
    let all = examples();
    let from = |f: &str| all.iter().filter(|e| e.from.starts_with(f)).count();
    assert!(from("README.md") >= 2, "{all:#?}");
    // README.md's tour of the reviewer's loop: fmt (after editing), check,
    // lint, diff --base, conformance, in that order.
    let readme: Vec<&str> = all
        .iter()
        .filter(|e| e.from.starts_with("README.md"))
        .map(|e| e.line.as_str())
        .collect();
    let tour = ["fmt ", "check ", "lint ", "diff --base ", "conformance "];
    assert!(
        readme.windows(5).any(|w| w
            .iter()
            .zip(tour)
            .all(|(l, t)| l.starts_with(&format!("cargo pvgate {t}")))),
        "README.md has no five-line tour: {readme:#?}"
    );
    assert!(from("docs/reviewing.md") >= 10, "{all:#?}");
    assert!(from("docs/conformance.md") >= 3, "{all:#?}");
    // A continued line is one example; `(exit N)` and `# exit N` are read.
    assert!(
        all.iter()
            .any(|e| e.line.contains("--mutants") && e.line.contains("--trace"))
    );
    assert!(
        all.iter()
            .any(|e| e.from.starts_with("docs/reviewing.md") && e.code == 1)
    );
    let shown: Vec<&Vec<String>> = all.iter().filter_map(|e| e.shown.as_ref()).collect();
    assert!(shown.len() >= 10, "{all:#?}");
    assert!(
        shown
            .iter()
            .any(|o| o.iter().any(|l| l.trim_start().starts_with("[...")))
    );
    assert!(same_output(&["a".into(), "[...]".into(), "d".into()], "a\nb\nc\nd\n").is_ok());
    assert!(same_output(&["a".into(), "[...]".into(), "d".into()], "a\nb\n").is_err());
    assert!(same_output(&["a".into()], "a\nb\n").is_err());
    assert_eq!(
        comment("cargo pvgate x   # exit 1: why"),
        ("cargo pvgate x".into(), Some(1))
    );
    assert_eq!(
        comment("cargo pvgate x # note"),
        ("cargo pvgate x".into(), None)
    );
}

#[test]
fn every_example_in_help_and_docs_runs_as_written() {
    let dir = scratch();
    let home = dir.join("home");
    let git = is_git_checkout();
    let image_help = help_examples("image", &pvgate(&["image", "--help"]).stdout);
    let mut ran = 0;
    let mut failed = Vec::new();
    for e in examples() {
        let args = words(&e.line);
        let sub = args
            .iter()
            .skip(2)
            .scan(false, |value, w| {
                // Skip global options and their values (`--baseline FILE`).
                let this = if *value {
                    *value = false;
                    None
                } else if w.starts_with("--") {
                    *value = !w.contains('=') && w != "--help";
                    None
                } else {
                    Some(w.clone())
                };
                Some(this)
            })
            .flatten()
            .next()
            .unwrap_or_default();
        if sub == "image" {
            assert!(
                e.line.contains("$OUT") || image_help.iter().any(|h| h.line == e.line),
                "{}: `{}` is an image build no other test runs",
                e.from,
                e.line
            );
            continue;
        }
        if args.iter().any(|a| a == "--image") {
            continue; // needs a built image: image.rs reads its builds back
        }
        let needs_git = args.iter().any(|a| a.starts_with("HEAD") || a == "--base");
        if needs_git && !git {
            println!("SKIPPED `{}`: the workspace is not a git checkout", e.line);
            continue;
        }
        let cwd = if needs_git { root() } else { dir.clone() };
        let (code, stdout, stderr) = run(&cwd, &home, &e.line);
        if code != e.code {
            failed.push(format!(
                "{}: `{}` exits {code}, documented {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                e.from, e.line, e.code
            ));
        }
        if stderr.contains("deprecated") {
            failed.push(format!(
                "{}: `{}` uses a deprecated spelling: {stderr}",
                e.from, e.line
            ));
        }
        if let Some(shown) = &e.shown {
            let got = format!("{stdout}{stderr}");
            if let Err(why) = same_output(shown, &got) {
                failed.push(format!(
                    "{}: `{}` no longer prints what the page shows ({why}); it prints:\n{got}",
                    e.from, e.line
                ));
            }
        }
        ran += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    assert!(ran >= 40, "only {ran} examples ran");
}
