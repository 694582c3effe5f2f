//! `pvgate replay` run as the real binary: the shipped crosvm traces and
//! the policy examples' traces meet their expectations, an unmet
//! expectation exits 1 and names the call, an unusable trace exits 2 with
//! its location, and the JSON carries every call's effect and rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;

const DEFAULT: &str = "policy/default.toml";
const STRICT: &str = "policy/strict.toml";
const PVM: &str = "tests/data/traces/crosvm-boot-pvm.toml";
const NPVM: &str = "tests/data/traces/crosvm-boot-npvm.toml";
const REVIEW_THREAD: &str = "policy/examples/review-thread.toml";
const WRONG: &str = "cli/tests/traces/wrong-expectation.toml";
const MALFORMED: &str = "cli/tests/traces/malformed.toml";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn both_crosvm_boots_meet_every_expectation_under_the_default_policy() {
    let run = pvgate(&["replay", DEFAULT, PVM, NPVM]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "tests/data/traces/crosvm-boot-pvm.toml: 28 calls, 28 of 28 expectations met\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "tests/data/traces/crosvm-boot-npvm.toml: 35 calls, 35 of 35 expectations met\n"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("2 traces: every expectation met\n"));
    assert!(!run.stdout.contains("NOT MET"), "{}", run.stdout);
    // The deciding rule is named with its file:line:col.
    assert!(
        run.stdout
            .contains("rule `pvm-misc-enable-write` at policy/default.toml:112:1"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_example_traces_meet_every_expectation_under_the_review_thread_policy() {
    let mut traces: Vec<String> = std::fs::read_dir(common::root().join("policy/examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".trace.toml"))
        .map(|n| format!("policy/examples/{n}"))
        .collect();
    traces.sort();
    assert!(!traces.is_empty(), "policy/examples has traces");
    let mut args = vec!["replay", REVIEW_THREAD];
    args.extend(traces.iter().map(String::as_str));
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for t in &traces {
        assert!(
            run.stdout.contains(&format!("trace {t}: ")),
            "{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("NOT MET"), "{}", run.stdout);
}

#[test]
fn a_wrong_expectation_exits_1_and_names_the_call() {
    let run = pvgate(&["replay", DEFAULT, WRONG]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "#3  get_rflags   vcpu 0  deny     call  expected allow: NOT MET: got deny\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("call at cli/tests/traces/wrong-expectation.toml:20\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "wrong-expectation.toml: 4 calls, 2 of 3 expectations met; 1 NOT MET: #3 get_rflags (line 20)\n"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn one_failing_trace_among_passing_ones_still_exits_1() {
    let run = pvgate(&["replay", DEFAULT, PVM, WRONG]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .ends_with("2 traces: 1 with expectations not met\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_malformed_trace_exits_2_with_its_file_line_and_column() {
    let run = pvgate(&["replay", DEFAULT, MALFORMED]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("error: unknown pv call `set_rflag`\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("--> cli/tests/traces/malformed.toml:12:6\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("help: did you mean `set_rflags`?"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with("error: trace `cli/tests/traces/malformed.toml` is invalid (1 error)\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_malformed_trace_stops_the_run_before_any_replay() {
    let run = pvgate(&["replay", DEFAULT, PVM, MALFORMED]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn unusable_policies_missing_traces_and_bad_arguments_exit_2() {
    let bad_policy = pvgate(&["replay", "cli/tests/broken/unknown-msr-name.toml", PVM]);
    assert_eq!(bad_policy.code, 2);
    assert!(
        bad_policy
            .stderr
            .contains("--> cli/tests/broken/unknown-msr-name.toml:10:7"),
        "{}",
        bad_policy.stderr
    );
    let missing = pvgate(&["replay", DEFAULT, "cli/tests/traces/absent.toml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .starts_with("error: cannot read trace `cli/tests/traces/absent.toml`"),
        "{}",
        missing.stderr
    );
    assert_eq!(pvgate(&["replay", DEFAULT]).code, 2);
    assert_eq!(
        pvgate(&["replay", DEFAULT, "--cpu", "pentium", PVM]).code,
        2
    );
}

#[test]
fn json_has_every_calls_effect_rule_and_expectation() {
    let run = pvgate(&["replay", DEFAULT, "--format", "json", PVM, WRONG]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let v = json(&run.stdout);
    assert_eq!(v["policy"]["path"], DEFAULT);
    assert_eq!(v["policy"]["name"], "default");
    assert_eq!(v["all_met"], false);
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 2);

    let pvm = &traces[0];
    assert_eq!(pvm["trace"], PVM);
    assert_eq!(pvm["kind"], "protected");
    assert_eq!(pvm["cpu"], "reference");
    assert_eq!(pvm["all_met"], true);
    assert_eq!(pvm["summary"]["calls"], 28);
    assert_eq!(pvm["summary"]["not_met"], 0);
    let steps = pvm["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 28);
    for s in steps {
        // inject_irq while the guest has RFLAGS.IF = 0: allowed by the
        // policy, refused by the handler (-EBUSY, pKVM-IA pkvm_inject_irq).
        let busy = s["pv"] == "inject_irq";
        assert_eq!(s["effect"], if busy { "invalid" } else { "allow" }, "{s}");
        assert_eq!(s["status"], if busy { -16 } else { 0 }, "{s}");
        assert_eq!(s["met"], true, "{s}");
        assert!(s["rule"]["name"].is_string(), "{s}");
    }
    let misc = steps
        .iter()
        .find(|s| s["resource"] == "msr IA32_MISC_ENABLE (0x1a0)")
        .unwrap();
    assert_eq!(misc["pv"], "set_msr");
    assert_eq!(misc["expect"], "allow");
    assert_eq!(misc["rule"]["name"], "pvm-misc-enable-write");
    assert_eq!(misc["rule"]["verdict"], "allow");
    assert_eq!(misc["rule"]["location"], "policy/default.toml:112:1");
    assert_eq!(misc["location"], format!("{PVM}:{}", misc["line"]));

    let wrong = &traces[1];
    assert_eq!(wrong["all_met"], false);
    assert_eq!(wrong["summary"]["not_met"], 1);
    let call = &wrong["steps"][2];
    assert_eq!(call["pv"], "get_rflags");
    assert_eq!(call["effect"], "deny");
    assert_eq!(call["met"], false);
    assert_eq!(call["rule"], serde_json::Value::Null);
    assert_eq!(call["mismatches"][0], "got deny");
    assert_eq!(call["location"], format!("{WRONG}:20"));
    assert_eq!(wrong["steps"][3]["met"], serde_json::Value::Null);
}

#[test]
fn the_protected_boot_under_the_strict_policy_misses_the_tsc_offset_after_run() {
    let run = pvgate(&["replay", STRICT, "--format", "json", PVM]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let v = json(&run.stdout);
    let unmet: Vec<(String, String)> = v["traces"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["met"] == false)
        .map(|s| (s["pv"].to_string(), s["effect"].to_string()))
        .collect();
    // strict.toml drops default.toml's stopgap: the host may no longer
    // move a running pVM's TSC (the write after the first vcpu_run).
    assert_eq!(
        unmet,
        [("\"write_tsc_offset\"".to_string(), "\"deny\"".to_string())]
    );
    let human = pvgate(&["replay", STRICT, PVM]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains(
            "crosvm-boot-pvm.toml: 28 calls, 27 of 28 expectations met; 1 NOT MET: #27 write_tsc_offset (line 208)\n"
        ),
        "{}",
        human.stdout
    );
}

#[test]
fn the_cpu_model_can_be_chosen() {
    let run = pvgate(&[
        "replay",
        DEFAULT,
        "--cpu",
        "reference",
        "--format",
        "json",
        NPVM,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json(&run.stdout)["traces"][0]["cpu"], "reference");
}

#[test]
fn help_has_an_example() {
    let run = pvgate(&["replay", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains(
            "cargo pvgate replay policy/strict.toml tests/data/traces/crosvm-boot-pvm.toml"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn filtered_and_rejected_cpuid_bits_are_shown_with_carets_and_names() {
    let trace = "cli/tests/traces/cpuid-forbidden-edits.toml";
    let run = pvgate(&["replay", "policy/default.toml", trace]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("filtered CPUID.(EAX=0x1,ECX=0):ECX (VMX):"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("filtered CPUID.(EAX=0x7,ECX=0):EBX (SMEP):"),
        "{}",
        run.stdout
    );
    // One caret, under bit 5 (VMX) of the 32 bits shown.
    let vmx = run.stdout.split("(VMX):\n").nth(1).unwrap();
    let caret_line = vmx.lines().nth(2).unwrap();
    assert_eq!(caret_line.matches('^').count(), 1, "{caret_line}");
    let host_line = vmx.lines().next().unwrap();
    let bits_start = host_line.rfind("  ").unwrap() + 2;
    // 32 digits with an `_` every 4 (39 characters); bit 5 sits 5 digits
    // and one `_` left of the last character.
    assert_eq!(caret_line.find('^').unwrap(), bits_start + 38 - (5 + 5 / 4));

    let run = pvgate(&["replay", "policy/strict.toml", "--format", "json", trace]);
    assert_eq!(run.code, 1);
    let v = json(&run.stdout);
    let changes = &v["traces"][0]["steps"][0]["cpuid_changes"];
    assert_eq!(changes.as_array().unwrap().len(), 2, "{changes}");
    assert_eq!(changes[0]["reg"], "ecx");
    assert_eq!(changes[0]["leaf"], "0x1", "CPUID leaves are hex strings");
    let hex = |v: &serde_json::Value| {
        u32::from_str_radix(v.as_str().unwrap().strip_prefix("0x").unwrap(), 16).unwrap()
    };
    assert_eq!(
        hex(&changes[0]["proposed"]) ^ hex(&changes[0]["effective"]),
        1 << 5
    );
}
