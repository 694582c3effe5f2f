//! `conformance --coverage`: which rules, MSR range boundaries and
//! invariants a suite exercised, with the uncovered ones at file:line.

#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::pvgate;

const POLICY: &str = "cli/tests/fixtures/coverage/policy.toml";
const PARTIAL: &str = "cli/tests/fixtures/coverage/partial.toml";
const BOUNDS: &str = "cli/tests/fixtures/coverage/bounds.toml";

fn json(files: &[&str]) -> serde_json::Value {
    let mut args = vec!["conformance", "--coverage", "--format", "json", POLICY];
    args.extend_from_slice(files);
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    v["coverage"].clone()
}

#[test]
fn uncovered_rules_and_unbounded_ranges_are_listed_with_file_and_line() {
    let run = pvgate(&["conformance", "--coverage", POLICY, PARTIAL]);
    assert_eq!(
        run.code, 0,
        "coverage gaps are reported, not failures: {}",
        run.stderr
    );
    let out = &run.stdout;
    assert!(out.contains("3 of 5 rules exercised"), "{out}");
    assert!(
        out.contains(&format!("uncovered rule `fin` ({POLICY}:17)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("uncovered rule `flags` ({POLICY}:25)")),
        "{out}"
    );
    assert!(!out.contains("uncovered rule `run`"), "{out}");
    assert!(!out.contains("uncovered rule `inject`"), "{out}");
    assert!(
        out.contains(&format!(
            "range of `mtrr` ({POLICY}:43) not bounded: 0x200..=0x20f: high end, one value outside"
        )),
        "{out}"
    );
    assert!(
        out.contains("uncovered invariant `pvm-host-can-finalize` (policy/invariants/protected-baseline.toml:"),
        "{out}"
    );
}

#[test]
fn both_ends_and_one_outside_value_bound_a_range() {
    let run = pvgate(&["conformance", "--coverage", POLICY, PARTIAL, BOUNDS]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("5 of 5 rules exercised"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("uncovered rule"), "{}", run.stdout);
    assert!(!run.stdout.contains("not bounded"), "{}", run.stdout);
    // The finalize call now falls inside the invariant that requires it.
    assert!(
        !run.stdout
            .contains("uncovered invariant `pvm-host-can-finalize`"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_gives_every_rule_range_and_invariant_with_hex_indices() {
    let c = json(&[PARTIAL]);
    assert_eq!(
        c["uncovered_rules"],
        serde_json::json!([format!("{POLICY}:17 fin"), format!("{POLICY}:25 flags")])
    );
    let rules = c["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 5);
    let mtrr = rules.iter().find(|r| r["name"] == "mtrr").expect("mtrr");
    assert_eq!(mtrr["hits"], 1);
    assert_eq!(mtrr["line"], 43);
    let range = &mtrr["ranges"][0];
    assert_eq!(range["lo"], "0x200");
    assert_eq!(range["hi"], "0x20f");
    assert_eq!(range["low"], "hit");
    assert_eq!(range["high"], "missed");
    assert_eq!(range["outside"], "missed");
    assert_eq!(range["bounded"], false);
    let invariants = c["invariants"].as_array().expect("invariants");
    assert_eq!(invariants.len(), 10);

    let c = json(&[PARTIAL, BOUNDS]);
    assert_eq!(c["uncovered_rules"], serde_json::json!([]));
    let mtrr = c["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == "mtrr")
        .cloned()
        .expect("mtrr");
    assert_eq!(mtrr["ranges"][0]["bounded"], true);
    // 0x200 and 0x20f; 0x210 is decided by no rule.
    assert_eq!(mtrr["hits"], 2);
}

#[test]
fn coverage_and_mutants_do_not_mix() {
    let run = pvgate(&["conformance", "--coverage", "--mutants", POLICY, PARTIAL]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--mutants"), "{}", run.stderr);
}
