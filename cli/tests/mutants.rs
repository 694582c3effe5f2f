//! `pvgate conformance --mutants`: the mutation analysis of a tiny policy
//! against its vectors and a trace gives exactly the killed, survived and
//! score a reviewer works out by hand; `--min-score` gates; an
//! `--equivalent` list cannot go stale; two runs print the same report.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::pvgate;
use serde_json::Value;

const DIR: &str = "cli/tests/fixtures/mutants";
const POLICY: &str = "cli/tests/fixtures/mutants/tiny.toml";
const VECTORS: &str = "cli/tests/fixtures/mutants/tiny-vectors.toml";
const TRACE: &str = "cli/tests/fixtures/mutants/tiny-inject.trace.toml";

fn mutants(extra: &[&str]) -> common::Run {
    let mut args = vec!["conformance", "--mutants", POLICY];
    args.extend_from_slice(extra);
    args.push(VECTORS);
    pvgate(&args)
}

fn json(extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let run = mutants(&args);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    (run.code, v)
}

#[test]
fn vectors_and_a_trace_kill_what_they_see_and_the_rest_survive() {
    let run = mutants(&["--trace", TRACE]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert!(out.starts_with(&format!(
        "mutation analysis of {POLICY}: 28 mutants; suite: 2 cases in 1 vector file, 1 trace\n"
    )));
    assert!(out.contains("  killed by the build: 14\n    (drop-rule 2, flip-verdict 2, add-phase 6, drop-phase 2, drop-call 2)\n"), "{out}");
    assert!(out.contains("  killed by the suite: 9\n"), "{out}");
    assert!(out.contains("  survived:            5\n"), "{out}");
    // Survivors: one-line diffs naming file:line, the rule and the operator.
    let survivors: Vec<&str> = out
        .split("survivors (5):\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        survivors,
        [
            format!(
                "  {POLICY}:6 [policy]: cpuid-violations = filter → reject  [cpuid-violations]"
            ),
            format!("  {POLICY}:19 fin: vm = [protected] → [protected, normal]  [add-vm]"),
            format!("  {POLICY}:27 flags: vm = [protected] → [protected, normal]  [add-vm]"),
            format!("  {POLICY}:35 inject: vm = [protected] → [protected, normal]  [add-vm]"),
            format!("  {POLICY}:39 inject: allow-soft = false → true  [allow-soft]"),
        ]
    );
    assert!(
        out.contains("\nscore: 64.3% (9 killed of 14 built and not equivalent)\n"),
        "{out}"
    );
    assert!(out.contains("\ntime: "), "{out}");
    // Nothing but the report on stdout; no progress on a non-terminal.
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn without_the_trace_the_min_vector_mutants_survive() {
    let run = mutants(&[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("inject: min-vector = 32 → 31  [min-vector]")
    );
    assert!(
        run.stdout
            .contains("inject: min-vector = 32 → 33  [min-vector]")
    );
    assert!(
        run.stdout
            .contains("score: 28.6% (4 killed of 14 built and not equivalent)"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_has_the_counts_the_score_and_every_mutant() {
    let (code, v) = json(&["--trace", TRACE]);
    assert_eq!(code, 0);
    assert_eq!(v["policy"], POLICY);
    assert_eq!(v["mutants"], 28);
    assert_eq!(v["built"], 14);
    assert_eq!(v["killed_by_build"]["total"], 14);
    assert_eq!(v["killed_by_build"]["by_operator"]["add-phase"], 6);
    assert_eq!(v["killed"], 9);
    assert_eq!(v["equivalent"], 0);
    assert_eq!(v["survived"], 5);
    assert_eq!(v["score"], 64.3);
    assert_eq!(v["suite"]["traces"], 1);
    let survivors = v["survivors"].as_array().unwrap();
    assert_eq!(survivors.len(), 5);
    assert_eq!(
        survivors[4]["mutant"],
        format!("{POLICY}:39 inject: allow-soft = false → true")
    );
    assert_eq!(survivors[4]["operator"], "allow-soft");
    assert_eq!(survivors[4]["rule"]["name"], "inject");
    assert_eq!(survivors[4]["rule"]["line"], 32);
    // Killed mutants name what killed them; the build's, the error.
    let killed = v["killed_mutants"].as_array().unwrap();
    let below = killed
        .iter()
        .find(|k| k["mutant"] == format!("{POLICY}:38 inject: min-vector = 32 → 31"))
        .unwrap();
    assert!(
        below["killed_by"].as_str().unwrap().starts_with(&format!(
            "{TRACE}:14: protected setup `inject_irq` vector 0x1f: expected deny, got allow"
        )),
        "{below}"
    );
    let build = v["killed_by_build_mutants"].as_array().unwrap();
    let destroy = build
        .iter()
        .find(|k| k["mutant"] == format!("{POLICY}:10 run: call: drop vm_destroy"))
        .unwrap();
    assert!(
        destroy["error"]
            .as_str()
            .unwrap()
            .contains("no rule allows PV call `vm_destroy`"),
        "{destroy}"
    );
    let ops: Vec<&str> = v["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operator"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "cpuid-violations",
            "drop-rule",
            "flip-verdict",
            "add-vm",
            "add-phase",
            "drop-phase",
            "drop-call",
            "min-vector",
            "allow-soft"
        ]
    );
}

#[test]
fn min_score_gates_at_the_printed_precision() {
    for (min, code) in [("0", 0), ("64.3", 0), ("64.4", 1), ("100", 1)] {
        let run = mutants(&["--trace", TRACE, "--min-score", min]);
        assert_eq!(
            run.code, code,
            "--min-score {min}: {}{}",
            run.stdout, run.stderr
        );
        let verdict = if code == 0 { "reached" } else { "below it" };
        assert!(
            run.stdout.contains(&format!(": {verdict}\n")),
            "{}",
            run.stdout
        );
    }
    let (code, v) = json(&["--trace", TRACE, "--min-score", "95"]);
    assert_eq!(code, 1);
    assert_eq!(v["below_min_score"], true);
    assert_eq!(v["min_score"], 95.0);
    // Not a percentage; or given without --mutants.
    assert_eq!(mutants(&["--min-score", "101"]).code, 2);
    let run = pvgate(&["conformance", "--min-score", "50", POLICY, VECTORS]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn equivalent_mutants_leave_the_score_and_are_listed_with_their_reason() {
    let list = format!("{DIR}/equivalent.toml");
    let run = mutants(&["--trace", TRACE, "--equivalent", &list]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("  equivalent:          1\n"));
    assert!(run.stdout.contains(&format!(
        "equivalent (1):\n  {POLICY}:6 [policy]: cpuid-violations = filter → reject\n      tiny.toml allows no vcpu_after_set_cpuid"
    )));
    assert!(
        !run.stdout.contains("[cpuid-violations]\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("score: 69.2% (9 killed of 13 built and not equivalent)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_stale_equivalent_entry_is_an_input_error() {
    let list = format!("{DIR}/stale-equivalent.toml");
    let run = mutants(&["--trace", TRACE, "--equivalent", &list]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "{list}:6: no mutant `{POLICY}:99 gone: rule dropped` (stale entry"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn an_equivalent_entry_the_suite_kills_is_an_input_error() {
    let list = format!("{DIR}/killed-equivalent.toml");
    let run = mutants(&["--trace", TRACE, "--equivalent", &list]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("inject: rule dropped` is killed by the suite"),
        "{}",
        run.stderr
    );
}

#[test]
fn hostile_equivalent_files_are_input_errors() {
    let dir = std::env::temp_dir().join(format!("pvgate-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, wanted) in [
        (
            "unknown-key.toml",
            "[[equivalent]]\nmutant = \"x\"\nreason = \"r\"\nwhy = \"y\"\n",
            "unknown field `why`",
        ),
        (
            "empty-reason.toml",
            "[[equivalent]]\nmutant = \"x\"\nreason = \" \"\n",
            "has an empty `reason`",
        ),
        (
            "twice.toml",
            "[[equivalent]]\nmutant = \"x\"\nreason = \"r\"\n[[equivalent]]\nmutant = \"x\"\nreason = \"r\"\n",
            "is listed twice (first at line 1)",
        ),
        (
            "not-toml.toml",
            "[[equivalent",
            "not-toml.toml:1:13: unclosed array table",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let run = mutants(&["--equivalent", path.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{name}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(wanted), "{name}: {}", run.stderr);
    }
    let run = mutants(&["--equivalent", "no/such/file.toml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot read equivalent mutants"));
}

#[test]
fn two_runs_print_the_same_report_whatever_the_jobs() {
    let strip = |mut v: Value| {
        let obj = v.as_object_mut().unwrap();
        obj.remove("elapsed_seconds");
        obj.remove("jobs");
        v
    };
    let (_, a) = json(&["--trace", TRACE, "--jobs", "1"]);
    let (_, b) = json(&["--trace", TRACE, "--jobs", "3"]);
    let (_, c) = json(&["--trace", TRACE]);
    assert_eq!(strip(a.clone()), strip(b));
    assert_eq!(strip(a), strip(c));
    let human = |run: common::Run| -> String {
        run.stdout
            .lines()
            .filter(|l| !l.starts_with("time: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let x = human(mutants(&["--trace", TRACE, "--verbose"]));
    let y = human(mutants(&["--trace", TRACE, "--verbose", "--jobs", "2"]));
    assert_eq!(x, y);
    assert_eq!(mutants(&["--jobs", "0"]).code, 2);
}

#[test]
fn a_suite_that_fails_on_the_policy_itself_is_an_input_error() {
    let run = pvgate(&[
        "conformance",
        "--mutants",
        POLICY,
        "tests/conformance/pkvm-ia.toml",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "the suite fails on the policy `{POLICY}` itself: tests/conformance/pkvm-ia.toml:"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn the_shipped_policy_runs_with_the_shipped_vectors_and_traces() {
    let run = pvgate(&[
        "conformance",
        "--mutants",
        "--format",
        "json",
        "policy/default.toml",
        "--trace",
        "tests/data/traces/crosvm-boot-pvm.toml",
        "--trace",
        "tests/data/traces/pmu-hidden-pvm.toml",
        "tests/conformance/pkvm-ia.toml",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let total = v["mutants"].as_u64().unwrap();
    let parts = ["built", "killed", "survived"].map(|k| v[k].as_u64().unwrap());
    assert_eq!(parts[0], parts[1] + parts[2]);
    assert_eq!(
        total,
        parts[0] + v["killed_by_build"]["total"].as_u64().unwrap()
    );
    // Removing vm_destroy from the protected rules never builds.
    let build = v["killed_by_build_mutants"].as_array().unwrap();
    assert!(build.iter().any(|m| {
        m["mutant"]
            .as_str()
            .unwrap()
            .ends_with("pvm-destroy: rule dropped")
    }));
}
