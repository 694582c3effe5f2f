//! The shipped suite against the shipped policy: `policy/default.toml`
//! passes every pKVM-IA vector file (`tests/conformance/pkvm-ia*.toml`),
//! and its mutation score against those files and the crosvm boot traces,
//! less the mutants `tests/conformance/equivalent.toml` lists with their
//! reasons, is at least 95% (issue 11).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::pvgate;

/// Every pKVM-IA vector file, sorted: `tests/conformance/pkvm-ia*.toml`.
/// (`strict.toml` beside them is `policy/strict.toml`'s suite.)
fn pkvm_ia_files() -> Vec<String> {
    let dir = common::root().join("tests/conformance");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pkvm-ia") && n.ends_with(".toml"))
        .map(|n| format!("tests/conformance/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_default_policy_passes_every_pkvm_ia_vector_file_and_strict_its_own() {
    let files = pkvm_ia_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["conformance", "policy/default.toml"];
    args.extend(files.iter().map(String::as_str));
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for f in &files {
        assert!(
            run.stdout.contains(&format!("{f}: ")),
            "{f}: {}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    let run = pvgate(&[
        "conformance",
        "policy/strict.toml",
        "tests/conformance/strict.toml",
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn the_default_policy_scores_at_least_95_against_the_shipped_suite() {
    let files = pkvm_ia_files();
    let mut args = vec![
        "conformance",
        "--mutants",
        "--min-score",
        "95",
        "--equivalent",
        "tests/conformance/equivalent.toml",
        "policy/default.toml",
        "--trace",
        "tests/data/traces/crosvm-boot-pvm.toml",
        "--trace",
        "tests/data/traces/crosvm-boot-npvm.toml",
    ];
    args.extend(files.iter().map(String::as_str));
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("min-score: 95.0%: reached\n"),
        "{}",
        run.stdout
    );
    // `score: 100.0% (847 killed of 847 built and not equivalent)`
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("score: "))
        .unwrap_or_else(|| panic!("no score line: {}", run.stdout));
    let pct: f64 = line["score: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let counts: Vec<u64> = line
        .split(['(', ' '])
        .filter_map(|w| w.parse().ok())
        .collect();
    let [killed, built] = counts[..] else {
        panic!("{line}")
    };
    assert!(pct >= 95.0 && killed * 100 >= built * 95, "{line}");
    // Every listed equivalent mutant is one the run built and left alive,
    // or the run would have been an input error (exit 2) above.
    assert!(run.stdout.contains("equivalent"), "{}", run.stdout);
}

/// `--coverage` over the shipped suites lists no uncovered rule,
/// unbounded MSR range or uncovered invariant of either shipped policy.
#[test]
fn the_shipped_suites_cover_every_rule_range_and_invariant() {
    let files = pkvm_ia_files();
    let mut default = vec![
        "conformance",
        "--coverage",
        "policy/default.toml",
        "tests/data/traces/crosvm-boot-pvm.toml",
        "tests/data/traces/crosvm-boot-npvm.toml",
    ];
    default.extend(files.iter().map(String::as_str));
    let strict = [
        "conformance",
        "--coverage",
        "policy/strict.toml",
        "tests/conformance/strict.toml",
    ];
    for args in [default.as_slice(), strict.as_slice()] {
        let run = pvgate(args);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let report = run
            .stdout
            .split_once("coverage of ")
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no coverage report: {}", run.stdout));
        let first = report.lines().next().unwrap_or_default();
        // `N of N rules exercised, M of M invariants`.
        let numbers: Vec<&str> = first
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            numbers.len() >= 4 && numbers[0] == numbers[1] && numbers[2] == numbers[3],
            "{first}"
        );
        assert_eq!(report.lines().count(), 1, "gaps listed:\n{report}");
    }
}
