//! The command line proves the protected-VM baseline for every policy:
//! the shipped one, or the one `--baseline` / `PVGATE_BASELINE` names; it
//! prints which one (file and SHA-256), and refuses an empty one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Run, pvgate, root};
use pvgate_codegen::{Baseline, digest};

const FIXTURE_BASELINE: &str = "cli/tests/fixtures/fixture-baseline.toml";

fn sha256_of(path: &str) -> String {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    digest::hex(&Baseline::from_text(path, &text).sha256())
}

fn pvgate_env(args: &[&str], baseline_env: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(args)
        .env("PVGATE_BASELINE", baseline_env)
        .current_dir(root())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch copy of the default policy without its include, with
/// `set_regs` allowed on a running protected vCPU.
fn no_include_breaking_policy() -> String {
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replace("include = [\"invariants/protected-baseline.toml\"]\n", "")
        .replace(
            "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\"]",
            "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]",
        );
    assert!(!text.contains("include ="));
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-include.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_fails_a_policy_that_leaves_out_the_baseline_and_breaks_it() {
    let policy = no_include_breaking_policy();
    let run = pvgate(&["check", &policy]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "invariant `pvm-running-state-sealed` (policy/invariants/protected-baseline.toml:"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("by rule `pvm-set-regs`"),
        "{}",
        run.stderr
    );
    // Every command that compiles a policy refuses it the same way.
    for cmd in [
        &["digest"][..],
        &["report"],
        &["lint"],
        &["emit", "--lang", "c"],
    ] {
        let mut args = cmd.to_vec();
        args.push(&policy);
        let run = pvgate(&args);
        assert_eq!(run.code, 2, "{cmd:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("pvm-running-state-sealed"),
            "{cmd:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn check_and_report_name_the_shipped_baseline_and_its_sha256() {
    let sha = sha256_of("policy/invariants/protected-baseline.toml");
    let run = pvgate(&["check", "policy/default.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "  baseline: policy/invariants/protected-baseline.toml (sha256 {sha}, 10 invariants)"
        )),
        "{}",
        run.stdout
    );
    let report = pvgate(&["report", "policy/default.toml"]);
    assert!(
        report.stdout.contains(&format!(
            "| baseline proven | `policy/invariants/protected-baseline.toml (sha256 {sha}, 10 invariants)` |"
        )),
        "{}",
        report.stdout
    );
}

#[test]
fn the_flag_and_the_environment_choose_another_baseline_the_flag_first() {
    let sha = sha256_of(FIXTURE_BASELINE);
    let expected = format!("  baseline: {FIXTURE_BASELINE} (sha256 {sha}, 1 invariant)");
    let flag = pvgate(&[
        "check",
        "--baseline",
        FIXTURE_BASELINE,
        "policy/default.toml",
    ]);
    assert!(
        flag.stdout.contains(&expected),
        "{}{}",
        flag.stdout,
        flag.stderr
    );
    let env = pvgate_env(&["check", "policy/default.toml"], FIXTURE_BASELINE);
    assert!(
        env.stdout.contains(&expected),
        "{}{}",
        env.stdout,
        env.stderr
    );
    let both = pvgate_env(
        &[
            "--baseline",
            FIXTURE_BASELINE,
            "check",
            "policy/default.toml",
        ],
        "no-such-baseline.toml",
    );
    assert!(
        both.stdout.contains(&expected),
        "{}{}",
        both.stdout,
        both.stderr
    );
    // The risky fixture passes its own small baseline, never the shipped one.
    assert_eq!(pvgate(&["check", "cli/tests/fixtures/risky.toml"]).code, 2);
    assert_eq!(
        pvgate(&[
            "--baseline",
            FIXTURE_BASELINE,
            "check",
            "cli/tests/fixtures/risky.toml"
        ])
        .code,
        0
    );
}

#[test]
fn an_empty_or_missing_baseline_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let empty = dir.join("empty-baseline.toml");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let run = pvgate(&["check", "--baseline", &empty, "policy/default.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(&format!("baseline `{empty}` has no invariant")),
        "{}",
        run.stderr
    );
    let run = pvgate_env(&["check", "policy/default.toml"], "no-such-baseline.toml");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cannot use baseline `no-such-baseline.toml`"),
        "{}",
        run.stderr
    );
}

#[test]
fn diff_shows_a_change_of_the_invariants_proven() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diff-invariants");
    std::fs::create_dir_all(&dir).unwrap();
    // Outside the policy tree the include would not resolve: drop it (the
    // baseline is proven anyway).
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replace("include = [\"invariants/protected-baseline.toml\"]\n", "");
    let old = dir.join("old.toml");
    let new = dir.join("new.toml");
    std::fs::write(&old, &text).unwrap();
    std::fs::write(
        &new,
        text + "\n[[invariant]]\nname = \"no-dr7-in-setup\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nforbid = \"pv-call\"\ncall = [\"set_dr7\"]\nreason = \"test: an invariant the rules already satisfy\"\n",
    )
    .unwrap();
    let (old, new) = (old.display().to_string(), new.display().to_string());
    let run = pvgate(&["diff", "--exit-code", &old, &new]);
    // The rules decide the same, but the digest moved: diff says why.
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("invariant `no-dr7-in-setup` ("),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("is now proven"), "{}", run.stdout);
    let back = pvgate(&["diff", &new, &old]);
    assert!(
        back.stdout.contains("is no longer proven"),
        "{}",
        back.stdout
    );
}
