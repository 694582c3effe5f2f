//! `pvgate conformance`: the pKVM-IA vectors pass on the default policy,
//! fail on the strict one exactly where strict drops pKVM-IA's stopgap or
//! narrows it (TSC after setup, MSR reads in setup), and unusable vector
//! files exit 2 with their location.

mod common;

use common::pvgate;

const VECTORS: &str = "tests/conformance/pkvm-ia.toml";

#[test]
fn the_default_policy_passes_the_pkvm_ia_vectors() {
    let run = pvgate(&["conformance", "policy/default.toml", VECTORS]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(": 188 cases, 188 passed, 0 failed"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
}

#[test]
fn strict_fails_exactly_where_it_drops_the_stopgap_or_narrows_pkvm_ia() {
    let run = pvgate(&["conformance", "policy/strict.toml", VECTORS]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let failures: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert_eq!(failures.len(), 23, "{}", run.stdout);
    assert!(failures[0].contains(
        "protected running `write_tsc_offset`: expected `allow`, got `deny` (no rule: default deny)"
    ));
    assert!(failures[1].contains("`write_tsc_multiplier`"));
    for f in &failures[2..10] {
        assert!(f.contains("expected `ignore`, got `deny` (rule `pvm-syscall-sysenter-denied` (policy/strict.toml:"), "{f}");
    }
    // pKVM-IA's get_msr reads any MSR before the first run; strict reads
    // back only the MSRs the host may write, and IA32_MTRRCAP.
    for f in &failures[10..16] {
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
    // The hyp cases see what the decision-only ones could not: strict
    // rejects a CPUID violation (-EPERM) where pKVM-IA filters it, and
    // each names the pKVM-IA function it follows.
    let hyp = &failures[16..];
    assert!(hyp.iter().all(|f| f.contains("; cite: ")), "{hyp:?}");
    assert!(
        hyp.iter().any(|f| f
            .contains("`vcpu_after_set_cpuid` CPUID.(EAX=0x1,ECX=0x0): expected `filter")
            && f.contains("got `deny (EPERM)")
            && f.contains("cite: pkvm_enforce_cpuid")),
        "{hyp:?}"
    );
    assert!(run.stdout.contains("188 cases, 165 passed, 23 failed"));
}

#[test]
fn verbose_lists_passing_cases_with_their_rule() {
    let run = pvgate(&["conformance", "--verbose", "policy/default.toml", VECTORS]);
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
        "policy/strict.toml",
        VECTORS,
    ]);
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let file = &v["files"][0];
    assert_eq!(file["passed"], 165);
    assert_eq!(file["failed"], 23);
    assert_eq!(file["cases"].as_array().unwrap().len(), 188);
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
        "policy/default.toml",
        "cli/tests/fixtures/conformance/malformed.toml",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("error: unknown key `expcet` in a [[case]]\n --> cli/tests/fixtures/conformance/malformed.toml:8:1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("help: did you mean `expect`?"),
        "{}",
        run.stderr
    );
    // The misspelt key is one mistake: no second "missing key `expect`".
    assert!(!run.stderr.contains("missing key"), "{}", run.stderr);
    let run = pvgate(&[
        "conformance",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/unknown-call.toml",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("error: unknown pv call `vcpu_runn`\n --> cli/tests/fixtures/conformance/unknown-call.toml:7:6"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `vcpu_run`?"),
        "{}",
        run.stderr
    );
}

const STRICT_VECTORS: &str = "tests/conformance/strict.toml";

/// A copy of the policy tree in a fresh temporary directory (so includes
/// resolve: the policy root is the nearest directory named `policy`), with
/// `file` replaced by `text`; returns the path of the edited policy.
#[allow(clippy::unwrap_used)] // a test helper: a setup failure fails the test
fn edited_policy(tag: &str, file: &str, edit: impl Fn(&str) -> String) -> String {
    let dir = std::env::temp_dir()
        .join(format!("pvgate-vectors-{tag}-{}", std::process::id()))
        .join("policy");
    let src = common::root().join("policy");
    for sub in ["invariants", "registry"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    let original = std::fs::read_to_string(src.join(file)).unwrap();
    let text = edit(&original);
    assert_ne!(text, original, "the edit changes the policy");
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    let check = pvgate(&["check", path.to_str().unwrap()]);
    assert_eq!(
        check.code, 0,
        "the edited policy passes check: {}",
        check.stderr
    );
    path.display().to_string()
}

fn failures(run: &common::Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect()
}

#[test]
fn injection_below_32_and_soft_interrupts_allowed_fail_the_vectors() {
    let policy = edited_policy("irq", "default.toml", |t| {
        t.replace(
            "min-vector = 32\nallow-soft = false",
            "min-vector = 0\nallow-soft = true",
        )
    });
    let run = pvgate(&["conformance", &policy, VECTORS]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let f = failures(&run);
    assert_eq!(f.len(), 2, "{}", run.stdout);
    assert!(
        f[0].contains("pkvm-ia.toml:")
            && f[0].contains("protected running `inject_irq` vector 0x1f: expected `errno EPERM`")
            && f[0].contains("cite: pkvm_inject_irq"),
        "{}",
        f[0]
    );
    assert!(f[1].contains("`inject_irq` vector 0x80"), "{}", f[1]);
}

#[test]
fn host_control_of_the_pmu_leaf_fails_the_vectors() {
    let policy = edited_policy("pmu", "default.toml", |t| {
        format!(
            "{t}\n[[cpuid]]\nname = \"pvm-pmu\"\nleaf = 0xA\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\n\
             eax = {{ host = 0xFFFFFFFF }}\nedx = {{ host = 0xFFFFFFFF }}\nreason = \"the host describes the PMU\"\n"
        )
    });
    let run = pvgate(&["conformance", &policy, VECTORS]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let f = failures(&run);
    assert!(!f.is_empty());
    assert!(
        f.iter().all(|l| l.contains("CPUID.(EAX=0xa,ECX=0)")
            && l.contains("expected `fixed`, got `host` (rule `pvm-pmu`")),
        "{}",
        run.stdout
    );
}

#[test]
fn strict_gaining_low_msr_reads_in_setup_fails_its_vectors() {
    let reads = |lo: &str, hi: &str, n: u8| {
        format!(
            "\n[[msr]]\nname = \"pvm-low-reads-{n}\"\nrange = [{lo}, {hi}]\nvm = [\"protected\"]\nphase = [\"setup\"]\n\
             access = [\"read\"]\nverdict = \"allow\"\nreason = \"reads of the low MSRs\"\n"
        )
    };
    // 0x0-0x1FF, around the two MSRs strict already reads (0xFE, 0x1A0).
    let policy = edited_policy("reads", "strict.toml", |t| {
        format!(
            "{t}{}{}{}",
            reads("0x0", "0xFD", 1),
            reads("0xFF", "0x19F", 2),
            reads("0x1A1", "0x1FF", 3)
        )
    });
    let run = pvgate(&["conformance", &policy, STRICT_VECTORS]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let f = failures(&run);
    assert!(
        f.iter().any(|l| l.contains(
            "strict.toml:15: protected setup read of MSR 0x0: expected `deny`, got `allow`"
        )),
        "{}",
        run.stdout
    );
    assert!(
        f.iter()
            .any(|l| l.contains("protected setup `get_msr` msr 0x1ff: expected `errno EPERM`")),
        "{}",
        run.stdout
    );
}

#[test]
fn the_strict_vectors_pass_on_strict_and_notice_the_default_policy() {
    let run = pvgate(&["conformance", "policy/strict.toml", STRICT_VECTORS]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("64 cases, 64 passed, 0 failed"),
        "{}",
        run.stdout
    );
    // The default policy filters CPUID violations where strict rejects them.
    let run = pvgate(&["conformance", "policy/default.toml", STRICT_VECTORS]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "protected setup `vcpu_after_set_cpuid` CPUID.(EAX=0x1,ECX=0x0): expected `deny, errno EPERM`, got `filter"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn three_mistakes_in_a_vector_file_are_three_located_errors() {
    let run = pvgate(&[
        "conformance",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/three-mistakes.toml",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn a_trace_with_two_unknown_keys_gets_both_errors() {
    for cmd in ["replay", "conformance"] {
        let run = pvgate(&[
            cmd,
            "policy/default.toml",
            "cli/tests/fixtures/conformance/two-unknown-keys.trace.toml",
        ]);
        assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr
                .contains("error: unknown key `valeu` in a [[call]]")
                && run.stderr.contains("help: did you mean `value`?"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("error: unknown key `expcet` in a [[call]]")
                && run.stderr.contains("help: did you mean `expect`?"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("is invalid (2 errors)"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn case_kinds_are_never_guessed() {
    let run = pvgate(&[
        "conformance",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/ambiguous.toml",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "ambiguous case: `access` makes it decision-only, but `errno` makes it a hyp case"
        ),
        "{}",
        run.stderr
    );
    // `filter` is hyp's word: a decision-only case cannot expect it.
    assert!(
        run.stderr.contains("unknown expectation `filter`")
            && run.stderr.contains("is decided by hyp"),
        "{}",
        run.stderr
    );
    // A hyp case without any expectation says nothing.
    assert!(
        run.stderr.contains("a case needs an expectation"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is invalid (3 errors)"),
        "{}",
        run.stderr
    );
}

#[test]
fn shipped_traces_are_vector_files_too() {
    let traces = [
        "tests/data/traces/crosvm-boot-pvm.toml",
        "tests/data/traces/crosvm-boot-npvm.toml",
        "tests/data/traces/pmu-hidden-pvm.toml",
        "tests/data/traces/pmu-npvm.toml",
        "tests/data/traces/pvm-secondary-start.toml",
        "tests/data/traces/npvm-start-secondary.toml",
    ];
    let mut args = vec!["conformance", "policy/default.toml", VECTORS];
    args.extend(traces);
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("tests/data/traces/crosvm-boot-pvm.toml: crosvm boots a protected VM (32-bit firmware entry, 1 vCPU): 28 cases, 28 passed, 0 failed"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_refused_driving_call_fails_the_case_naming_the_call() {
    let run = pvgate(&[
        "conformance",
        "policy/default.toml",
        "cli/tests/fixtures/conformance/driving.toml",
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("driving call `vcpu_run` (to reach running) was refused"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("preamble call #1 `set_msr`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("the vcpu is in `setup` at the call, not `running`"),
        "{}",
        run.stdout
    );
}

#[test]
fn json_names_the_case_kind_each_calls_rule_and_the_cite() {
    let run = pvgate(&[
        "conformance",
        "--format",
        "json",
        "policy/default.toml",
        STRICT_VECTORS,
    ]);
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cases = v["files"][0]["cases"].as_array().unwrap();
    let lstar = cases
        .iter()
        .find(|c| c["request"] == "protected setup `set_msr` msr IA32_LSTAR (0xc0000082)")
        .unwrap();
    assert_eq!(lstar["kind"], "hyp");
    assert_eq!(lstar["passed"], false);
    assert_eq!(lstar["cite"], "pkvm_set_msr");
    assert_eq!(lstar["expect"], "errno EPERM");
    let calls = lstar["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "setup: no driving calls");
    assert_eq!(calls[0]["rule"]["name"], "pvm-syscall-sysenter-stopgap");
    assert_eq!(calls[0]["rule"]["file"], "policy/default.toml");
    assert!(calls[0]["rule"]["line"].as_u64().unwrap() > 0);
    assert_eq!(cases[0]["kind"], "decision");
}
