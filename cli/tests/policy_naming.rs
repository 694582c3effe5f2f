//! One convention for naming the policy: every subcommand takes it first,
//! positionally. The old `--policy POLICY` of explain, replay, conformance
//! and image still works for one release: same output, plus a one-line
//! deprecation note on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;

const NOTE: &str = "note: `--policy` is deprecated and will be removed in the next release; \
                    name the policy first: `cargo pvgate ";

/// `(positional spelling, deprecated spelling, exit code of both)`.
fn pairs() -> Vec<(Vec<&'static str>, Vec<&'static str>, i32)> {
    let explain = [
        "--vm",
        "protected",
        "--phase",
        "setup",
        "--msr",
        "IA32_MISC_ENABLE",
        "--access",
        "write",
        "--value",
        "0x1809",
    ];
    let trace = "tests/data/traces/crosvm-boot-pvm.toml";
    let vectors = "tests/conformance/pkvm-ia.toml";
    let broken = "cli/tests/broken/unknown-msr-name.toml";
    let mut new_explain = vec!["explain", "policy/default.toml"];
    new_explain.extend(explain);
    let mut old_explain = vec!["explain", "--policy", "policy/default.toml"];
    old_explain.extend(explain);
    vec![
        (new_explain, old_explain, 0),
        (
            vec!["replay", "policy/default.toml", trace],
            vec!["replay", "--policy", "policy/default.toml", trace],
            0,
        ),
        (
            vec!["replay", "policy/strict.toml", "--format", "json", trace],
            vec![
                "replay",
                "--format",
                "json",
                trace,
                "--policy",
                "policy/strict.toml",
            ],
            1,
        ),
        (
            vec!["conformance", "policy/default.toml", vectors],
            vec!["conformance", "--policy", "policy/default.toml", vectors],
            0,
        ),
        // image refuses an invalid policy before building anything.
        (vec!["image", broken], vec!["image", "--policy", broken], 2),
    ]
}

#[test]
fn both_spellings_give_the_same_result_and_only_the_old_one_a_note() {
    for (new, old, code) in pairs() {
        let a = pvgate(&new);
        let b = pvgate(&old);
        assert_eq!(a.code, code, "{new:?}: {}", a.stderr);
        assert_eq!(b.code, code, "{old:?}: {}", b.stderr);
        assert_eq!(a.stdout, b.stdout, "{new:?} / {old:?}");
        assert!(!a.stderr.contains("deprecated"), "{new:?}: {}", a.stderr);
        let (note, rest) = b.stderr.split_once('\n').unwrap();
        assert!(note.starts_with(NOTE), "{old:?}: {}", b.stderr);
        assert!(
            note.contains(&format!("cargo pvgate {} POLICY", new[0])),
            "{note}"
        );
        assert_eq!(rest, a.stderr, "{old:?}: only the note is added");
    }
}

#[test]
fn every_policy_command_takes_the_policy_first_in_its_usage() {
    for cmd in [
        "check",
        "lint",
        "report",
        "digest",
        "emit",
        "explain",
        "replay",
        "conformance",
        "image",
    ] {
        let help = pvgate(&[cmd, "--help"]).stdout;
        let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(usage.contains("POLICY"), "{cmd}: {usage}");
        assert!(
            !help.contains("--policy"),
            "{cmd} --help still shows --policy"
        );
    }
}

#[test]
fn the_deprecated_spelling_still_needs_its_other_inputs() {
    let run = pvgate(&["replay", "--policy", "policy/default.toml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no trace given"), "{}", run.stderr);
    let run = pvgate(&["conformance", "--policy", "policy/default.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no vector file given"),
        "{}",
        run.stderr
    );
    let run = pvgate(&[
        "explain",
        "policy/default.toml",
        "--policy",
        "policy/strict.toml",
        "--vm",
        "protected",
        "--phase",
        "setup",
        "--pv",
        "get_rflags",
    ]);
    assert_eq!(run.code, 2, "two policies are refused: {}", run.stderr);
}
