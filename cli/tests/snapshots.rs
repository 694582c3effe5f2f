//! Snapshots (insta) of the human renderings a reviewer reads: errors,
//! explain, diff, lint, report and replay. Accept changes with
//! `INSTA_UPDATE=always cargo test -p pvgate-cli --test snapshots`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;

fn both(args: &[&str]) -> String {
    let run = pvgate(args);
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

#[test]
fn error_unknown_msr_with_did_you_mean() {
    insta::assert_snapshot!(both(&["check", "cli/tests/broken/unknown-msr-name.toml"]));
}

#[test]
fn error_overlapping_rules_point_at_both() {
    insta::assert_snapshot!(both(&[
        "check",
        "cli/tests/broken/overlapping-msr-rules.toml"
    ]));
}

#[test]
fn error_toml_syntax() {
    insta::assert_snapshot!(both(&[
        "check",
        "cli/tests/broken/syntax-unclosed-string.toml"
    ]));
}

#[test]
fn error_cpuid_mask_wider_than_register() {
    insta::assert_snapshot!(both(&[
        "check",
        "cli/tests/broken/cpuid-mask-wider-than-register.toml"
    ]));
}

#[test]
fn explain_refused_msr_value() {
    insta::assert_snapshot!(both(&[
        "explain",
        "cli/tests/fixtures/review.toml",
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
    ]));
}

#[test]
fn explain_forced_msr_bits() {
    insta::assert_snapshot!(both(&[
        "explain",
        "cli/tests/fixtures/review.toml",
        "--vm",
        "protected",
        "--phase",
        "setup",
        "--msr",
        "IA32_MISC_ENABLE",
        "--access",
        "write",
        "--value",
        "0x1",
    ]));
}

#[test]
fn explain_default_deny_with_nearest_rules() {
    insta::assert_snapshot!(both(&[
        "explain",
        "cli/tests/fixtures/review.toml",
        "--vm",
        "protected",
        "--phase",
        "running",
        "--msr",
        "IA32_MISC_ENABLE",
        "--access",
        "write",
    ]));
}

#[test]
fn explain_pv_call() {
    insta::assert_snapshot!(both(&[
        "explain",
        "cli/tests/fixtures/review.toml",
        "--vm",
        "protected",
        "--phase",
        "running",
        "--pv",
        "write_tsc_offset",
    ]));
}

#[test]
fn explain_cpuid_register() {
    insta::assert_snapshot!(both(&[
        "explain",
        "cli/tests/fixtures/review.toml",
        "--vm",
        "protected",
        "--phase",
        "setup",
        "--cpuid",
        "0x1",
        "--reg",
        "ecx",
    ]));
}

#[test]
fn diff_reviewed_change() {
    insta::assert_snapshot!(both(&[
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "diff",
        "cli/tests/fixtures/review.toml",
        "cli/tests/fixtures/review-changed.toml"
    ]));
}

#[test]
fn diff_reordered_is_empty() {
    insta::assert_snapshot!(both(&[
        "diff",
        "cli/tests/fixtures/review.toml",
        "cli/tests/fixtures/review-reordered.toml"
    ]));
}

#[test]
fn lint_risky_policy() {
    insta::assert_snapshot!(both(&[
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "lint",
        "cli/tests/fixtures/risky.toml"
    ]));
}

#[test]
fn report_review_fixture() {
    insta::assert_snapshot!(both(&[
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "report",
        "cli/tests/fixtures/review-changed.toml"
    ]));
}

#[test]
fn replay_protected_crosvm_boot() {
    insta::assert_snapshot!(both(&[
        "replay",
        "policy/default.toml",
        "tests/data/traces/crosvm-boot-pvm.toml"
    ]));
}

#[test]
fn replay_malformed_trace() {
    insta::assert_snapshot!(both(&[
        "replay",
        "policy/default.toml",
        "cli/tests/traces/malformed.toml"
    ]));
}
