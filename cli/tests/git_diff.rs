//! `diff` over git revisions: `REV:path` and `--base REV` read the policy
//! and its includes from the revision (not from the working copy), in a
//! scratch repository made by each test; git's failures are input errors
//! (exit 2) with a clear message. (The `diff --help` examples run as
//! written in examples.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, pvgate, root};

/// A scratch git repository, removed on drop.
struct Repo(PathBuf);

impl Repo {
    fn new(name: &str) -> Repo {
        let dir =
            std::env::temp_dir().join(format!("pvgate-git-diff-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo(dir);
        repo.git(&["init", "-q"]);
        repo
    }

    fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=pvgate test",
                "-c",
                "user.email=test@pvgate.invalid",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Copies the workspace file `from` to `to` in the scratch repository.
    fn put(&self, from: &str, to: &str) {
        let dest = self.0.join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(root().join(from), dest).unwrap();
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn pvgate(&self, args: &[&str]) -> Run {
        run_in(&self.0, args)
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the pvgate binary runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    run
}

fn both(run: &Run) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// A repository whose `policy/p.toml` was the default policy at HEAD~1 and
/// is the strict one at HEAD; both include `invariants/protected-baseline.toml`.
fn default_then_strict(name: &str) -> Repo {
    let repo = Repo::new(name);
    repo.put("policy/default.toml", "policy/p.toml");
    repo.put("policy/schema.json", "policy/schema.json");
    repo.put(
        "policy/invariants/protected-baseline.toml",
        "policy/invariants/protected-baseline.toml",
    );
    repo.commit("default");
    repo.put("policy/strict.toml", "policy/p.toml");
    repo.commit("strict");
    repo
}

#[test]
fn includes_are_read_from_the_revision_not_the_working_copy() {
    let repo = default_then_strict("includes");
    // Break the working copy's included file: only the revisions compile.
    std::fs::write(
        repo.0.join("policy/invariants/protected-baseline.toml"),
        "not toml [",
    )
    .unwrap();
    let run = repo.pvgate(&[
        "diff",
        "--exit-code",
        "HEAD~1:policy/p.toml",
        "HEAD:policy/p.toml",
    ]);
    assert_eq!(run.code, 1, "{}", both(&run));
    assert!(
        run.stdout
            .starts_with("HEAD~1:policy/p.toml -> HEAD:policy/p.toml: "),
        "{}",
        run.stdout
    );
    // The digests are those of the shipped files.
    let old = pvgate(&["digest", "policy/default.toml"]).stdout;
    let new = pvgate(&["digest", "policy/strict.toml"]).stdout;
    assert!(
        run.stdout.contains(&format!("  old digest {}", old.trim())),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("  new digest {}", new.trim())),
        "{}",
        run.stdout
    );
    // The working copy's broken include is seen where the working copy is read.
    let run = repo.pvgate(&["diff", "--base", "HEAD", "policy/p.toml"]);
    assert_eq!(run.code, 2, "{}", both(&run));
    assert!(
        run.stderr.contains("protected-baseline.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn base_compares_the_file_at_the_revision_with_the_working_copy() {
    let repo = default_then_strict("base");
    let base = repo.pvgate(&["diff", "--base", "HEAD~1", "--exit-code", "policy/p.toml"]);
    let explicit = repo.pvgate(&[
        "diff",
        "--exit-code",
        "HEAD~1:policy/p.toml",
        "policy/p.toml",
    ]);
    assert_eq!(base.code, 1, "{}", both(&base));
    assert_eq!(base.stdout, explicit.stdout);
    let same = repo.pvgate(&["diff", "--base", "HEAD", "--exit-code", "policy/p.toml"]);
    assert_eq!(same.code, 0, "{}", both(&same));
    assert!(
        same.stdout
            .starts_with("no semantic difference: HEAD:policy/p.toml and policy/p.toml")
    );
    // From a subdirectory: the working file is found relative to it, and
    // `./` in REV:path starts there too, as in git.
    let sub = run_in(
        &repo.0.join("policy"),
        &["diff", "--base", "HEAD~1", "--exit-code", "p.toml"],
    );
    assert_eq!(sub.code, 1, "{}", both(&sub));
    let dotted = run_in(
        &repo.0.join("policy"),
        &[
            "diff",
            "--exit-code",
            "HEAD~1:./p.toml",
            "HEAD:policy/p.toml",
        ],
    );
    assert_eq!(dotted.code, 1, "{}", both(&dotted));
    assert!(
        dotted
            .stdout
            .starts_with("HEAD~1:policy/p.toml -> HEAD:policy/p.toml")
    );
}

#[test]
fn a_reviewed_change_between_revisions_reads_as_between_files() {
    let repo = Repo::new("snapshot");
    repo.put("cli/tests/fixtures/review.toml", "policy/review.toml");
    repo.put("cli/tests/fixtures/fixture-baseline.toml", "baseline.toml");
    repo.commit("review");
    repo.put(
        "cli/tests/fixtures/review-changed.toml",
        "policy/review.toml",
    );
    let run = repo.pvgate(&[
        "--baseline",
        "baseline.toml",
        "diff",
        "--base",
        "HEAD",
        "policy/review.toml",
    ]);
    assert_eq!(run.code, 0, "{}", both(&run));
    // The same changes as the diff of the two files, named by revision.
    let files = pvgate(&[
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "diff",
        "cli/tests/fixtures/review.toml",
        "cli/tests/fixtures/review-changed.toml",
    ]);
    let renamed = files
        .stdout
        .replace("cli/tests/fixtures/review.toml", "HEAD:policy/review.toml")
        .replace(
            "cli/tests/fixtures/review-changed.toml",
            "policy/review.toml",
        );
    assert_eq!(run.stdout, renamed);
    insta::assert_snapshot!(both(&run));
}

#[test]
fn git_failures_are_input_errors_with_clear_messages() {
    let repo = default_then_strict("errors");
    let unknown = repo.pvgate(&["diff", "no-such-rev:policy/p.toml", "policy/p.toml"]);
    let missing = repo.pvgate(&["diff", "HEAD~1:policy/missing.toml", "policy/p.toml"]);
    let base_missing = repo.pvgate(&["diff", "--base", "nope", "policy/p.toml"]);
    let outside = repo.pvgate(&["diff", "HEAD:../x.toml", "policy/p.toml"]);
    let dir = repo.pvgate(&["diff", "HEAD:policy", "policy/p.toml"]);
    insta::assert_snapshot!(format!(
        "{}\n{}\n{}\n{}\n{}",
        both(&unknown),
        both(&missing),
        both(&base_missing),
        both(&outside),
        both(&dir)
    ));
    // Not a repository at all.
    let plain = std::env::temp_dir().join(format!("pvgate-git-diff-plain-{}", std::process::id()));
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::copy(root().join("policy/strict.toml"), plain.join("p.toml")).unwrap();
    let not_repo = run_in(&plain, &["diff", "--base", "HEAD", "p.toml"]);
    let rev = run_in(&plain, &["diff", "HEAD:p.toml", "p.toml"]);
    let _ = std::fs::remove_dir_all(&plain);
    for run in [not_repo, rev] {
        if run.stderr.contains("lies outside") {
            // temp_dir() is inside some repository: nothing to check here.
            continue;
        }
        assert_eq!(run.code, 2, "{}", both(&run));
        assert!(
            run.stderr.starts_with(
                "error: not in a git repository, so `REV:path` and `--base` cannot be read"
            ),
            "{}",
            run.stderr
        );
    }
}
