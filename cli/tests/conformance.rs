//! `pvgate conformance`: the pKVM-IA vectors pass on the default policy,
//! fail on the strict one exactly where strict drops pKVM-IA's stopgap or
//! narrows it (TSC after setup, MSR reads in setup), and unusable vector
//! files exit 2 with their location.

mod common;

use common::pvgate;

const VECTORS: &str = "tests/conformance/pkvm-ia.toml";

#[test]
fn the_default_policy_passes_the_pkvm_ia_vectors() {
    let run = pvgate(&["conformance", "--policy", "policy/default.toml", VECTORS]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(": 160 cases, 160 passed, 0 failed"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
}

#[test]
fn strict_fails_exactly_where_it_drops_the_stopgap_or_narrows_pkvm_ia() {
    let run = pvgate(&["conformance", "--policy", "policy/strict.toml", VECTORS]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let failures: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert_eq!(failures.len(), 16, "{}", run.stdout);
    assert!(failures[0].contains(
        "protected running `write_tsc_offset`: expected `allow`, got `deny` (no rule: default deny)"
    ));
    assert!(failures[1].contains("`write_tsc_multiplier`"));
    for f in &failures[2..10] {
        assert!(f.contains("expected `ignore`, got `deny` (rule `pvm-syscall-sysenter-denied` (policy/strict.toml:"), "{f}");
    }
    // pKVM-IA's get_msr reads any MSR before the first run; strict reads
    // back only the MSRs the host may write, and IA32_MTRRCAP.
    for f in &failures[10..] {
        assert!(
            f.contains("protected setup read of MSR")
                && f.contains("expected `allow`, got `deny` (no rule: default deny)"),
            "{f}"
        );
    }
    assert!(
        failures[10].contains("IA32_PAT (0x277)"),
        "{}",
        failures[10]
    );
    assert!(run.stdout.contains("160 cases, 144 passed, 16 failed"));
}

#[test]
fn verbose_lists_passing_cases_with_their_rule() {
    let run = pvgate(&[
        "conformance",
        "--verbose",
        "--policy",
        "policy/default.toml",
        VECTORS,
    ]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("ok   tests/conformance/pkvm-ia.toml:742: protected setup write of MSR IA32_PAT (0x277): deny (no rule: default deny)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(
        "IA32_MISC_ENABLE (0x1a0): allow (rule `pvm-misc-enable-write` (policy/default.toml:"
    ));
}

#[test]
fn json_has_every_case() {
    let run = pvgate(&[
        "conformance",
        "--format",
        "json",
        "--policy",
        "policy/strict.toml",
        VECTORS,
    ]);
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let file = &v["files"][0];
    assert_eq!(file["passed"], 144);
    assert_eq!(file["failed"], 16);
    assert_eq!(file["cases"].as_array().unwrap().len(), 160);
    let first_failure = file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["passed"] == false)
        .unwrap();
    assert_eq!(first_failure["expect"], "allow");
    assert_eq!(first_failure["got"], "deny");
}

#[test]
fn unusable_vectors_exit_2_with_their_location() {
    let run = pvgate(&[
        "conformance",
        "--policy",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/malformed.toml",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cli/tests/fixtures/conformance/malformed.toml:8:1: unknown field `expcet`"),
        "{}",
        run.stderr
    );
    let run = pvgate(&[
        "conformance",
        "--policy",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/unknown-call.toml",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("unknown-call.toml:4: error: unknown PV call `vcpu_runn`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `vcpu_run`?"),
        "{}",
        run.stderr
    );
}
