//! Invariants: every baseline invariant has a policy that violates it and
//! fails to compile with a diagnostic naming the invariant and the
//! offending rule; the shipped policies satisfy theirs; and, for random
//! policies, the check passes exactly when a brute-force search with the
//! interpreter finds no input that breaks it.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // test and tool code: a panic is a failed run

use std::path::PathBuf;

use proptest::prelude::*;
use pvgate_codegen::sample::{SampleSize, random_policy};
use pvgate_codegen::{
    Diagnostic, ErrorKind, Interpreter, Registry, Resources, compile, compile_file,
};
use pvgate_gate::{Access, Phase, Policy, PvCall, Verdict, VmKind, decide_msr, decide_pv};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn default_text() -> String {
    std::fs::read_to_string(root().join("policy/default.toml")).unwrap()
}

/// The default policy with an extra rule, without its include: the
/// baseline is proven for every policy.
fn default_plus(extra: &str) -> String {
    default_text().replace("include = [\"invariants/protected-baseline.toml\"]\n", "") + extra
}

fn violations(text: &str) -> Vec<Diagnostic> {
    match compile(text) {
        Ok(_) => panic!("the policy compiled; expected an invariant violation"),
        Err(e) => {
            for d in &e.diagnostics {
                assert_eq!(
                    d.kind,
                    ErrorKind::InvariantViolated,
                    "unexpected error: {}",
                    d.message
                );
            }
            e.diagnostics
        }
    }
}

/// Asserts that `invariant` is reported, naming the baseline file and line
/// and the offending rule, with its primary span on that rule.
fn assert_violates(extra: &str, invariant: &str, rule_text: &str) {
    let text = default_plus(extra);
    let found = violations(&text);
    let d = found
        .iter()
        .find(|d| d.message.starts_with(&format!("invariant `{invariant}` (")))
        .unwrap_or_else(|| panic!("`{invariant}` not reported: {found:#?}"));
    assert!(
        d.message.contains("protected-baseline.toml:"),
        "{}",
        d.message
    );
    if !rule_text.is_empty() {
        assert!(d.message.contains("by rule `"), "{}", d.message);
        assert_eq!(
            &text[d.span.clone()],
            rule_text,
            "primary span is not the offending rule"
        );
    }
}

#[test]
fn shipped_policies_satisfy_the_baseline() {
    for name in ["policy/default.toml", "policy/strict.toml"] {
        let c = compile_file(root().join(name)).unwrap_or_else(|e| panic!("{}", e.render()));
        assert_eq!(c.ir.invariants.len(), 10, "{name}");
        assert!(c.ir.included[0].ends_with("invariants/protected-baseline.toml"));
    }
}

#[test]
fn sealed_running_state_is_enforced() {
    assert_violates(
        "\n[[pv]]\ncall = \"get_rflags\"\nvm = [\"protected\"]\nphase = [\"running\"]\nverdict = \"allow\"\nread-mask = 0x200\nreason = \"review: IF only\"\n",
        "pvm-running-state-sealed",
        "\"get_rflags\"",
    );
}

#[test]
fn msr_writes_after_setup_are_forbidden() {
    assert_violates(
        "\n[[msr]]\nmsr = \"IA32_TSC_AUX\"\nvm = [\"protected\"]\nphase = [\"running\"]\naccess = [\"write\"]\nverdict = \"ignore\"\nreason = \"a test rule\"\n",
        "pvm-no-msr-access-after-setup",
        "\"IA32_TSC_AUX\"",
    );
}

#[test]
fn msr_reads_after_setup_are_forbidden() {
    assert_violates(
        "\n[[msr]]\nmsr = \"IA32_TSC_AUX\"\nvm = [\"protected\"]\nphase = [\"teardown\"]\naccess = [\"read\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
        "pvm-no-msr-read-after-setup",
        "\"IA32_TSC_AUX\"",
    );
}

#[test]
fn command_msr_writes_are_forbidden_even_in_setup() {
    assert_violates(
        "\n[[msr]]\nmsr = \"IA32_FLUSH_CMD\"\nvm = [\"protected\"]\nphase = [\"setup\"]\naccess = [\"write\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
        "pvm-no-dangerous-msr-writes",
        "\"IA32_FLUSH_CMD\"",
    );
}

#[test]
fn security_cpuid_bits_stay_out_of_host_control() {
    let extra = "\n[[cpuid]]\nleaf = 7\nsubleaf = 0\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nebx = { clear-only = [\"SMEP\"] }\nreason = \"a test rule\"\n";
    assert_violates(extra, "pvm-no-host-controlled-security-cpuid", "7");
    let d = violations(&default_plus(extra)).remove(0);
    assert!(d.message.contains("`SMEP`"), "{}", d.message);
    assert!(d.message.contains("as `clear-only`"), "{}", d.message);
}

#[test]
fn configuration_calls_stay_setup_only() {
    assert_violates(
        "\n[[pv]]\ncall = \"set_cr0\"\nvm = [\"protected\"]\nphase = [\"running\"]\nverdict = \"ignore\"\nreason = \"a test rule\"\n",
        "pvm-configuration-calls-setup-only",
        "\"set_cr0\"",
    );
}

#[test]
fn state_calls_are_never_allowed() {
    assert_violates(
        "\n[[pv]]\ncall = \"set_dr7\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
        "pvm-never-state-calls",
        "\"set_dr7\"",
    );
}

#[test]
fn teardown_allows_only_lifecycle_calls() {
    assert_violates(
        "\n[[pv]]\ncall = \"vcpu_run\"\nvm = [\"protected\"]\nphase = [\"teardown\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
        "pvm-teardown-lifecycle-only",
        "\"vcpu_run\"",
    );
}

#[test]
fn a_missing_required_call_names_the_baseline() {
    let text = default_plus("").replacen("\"setup_mce\", \"vcpu_run\",", "\"setup_mce\",", 1);
    let found = violations(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let d = &found[0];
    assert!(
        d.message
            .starts_with("invariant `pvm-host-can-run-and-destroy` ("),
        "{}",
        d.message
    );
    assert!(
        d.message
            .ends_with("no rule allows PV call `vcpu_run` on protected VMs in `setup`"),
        "{}",
        d.message
    );
    assert_eq!(d.span, 0..0, "no rule and no include to point at");
    assert_eq!(
        d.label,
        "required by the baseline `policy/invariants/protected-baseline.toml`"
    );
}

#[test]
fn an_invariant_in_the_policy_itself_is_checked_and_located() {
    let text = default_plus(
        "\n[[invariant]]\nname = \"no-sysenter-writes\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nforbid = \"msr-write\"\nrange = [0x174, 0x176]\nreason = \"a test rule\"\n",
    );
    let found = violations(&text);
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert!(
        d.message.contains("by rule `pvm-syscall-sysenter-stopgap`"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("IA32_SYSENTER_CS (0x174) is `ignore`"),
        "{}",
        d.message
    );
    assert_eq!(d.related.last().unwrap().1, "invariant declared here");
}

#[test]
fn bad_invariants_are_located_errors() {
    let text = default_plus(
        "\n[[invariant]]\nname = \"x\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nforbid = \"msr-wirte\"\nreason = \"a test rule\"\n",
    );
    let e = compile(&text).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1);
    assert_eq!(
        e.diagnostics[0].message,
        "unknown `forbid` kind `msr-wirte`"
    );
    assert_eq!(
        e.diagnostics[0].help.as_deref(),
        Some("did you mean `msr-write`?")
    );
    let text = default_text().replace("invariants/protected-baseline.toml", "invariants/nope.toml");
    let e = compile(&text).unwrap_err();
    assert_eq!(e.diagnostics[0].kind, ErrorKind::Include);
    assert!(
        e.diagnostics[0]
            .message
            .starts_with("cannot include `invariants/nope.toml`: cannot read it: "),
        "{}",
        e.diagnostics[0].message
    );
}

// ---------------------------------------------------------------------------
// The check is neither too strict nor too lax.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Check {
    ForbidMsr(Access, u32, u32),
    ForbidPv(Vec<PvCall>),
    Security,
    RequirePv(Vec<PvCall>),
}

fn check() -> impl Strategy<Value = Check> {
    let calls = |n| proptest::sample::subsequence(&PvCall::ALL[..], 1..n);
    prop_oneof![
        (
            prop_oneof![Just(Access::Read), Just(Access::Write)],
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(a, x, y)| Check::ForbidMsr(a, x.min(y), x.max(y))),
        calls(6).prop_map(Check::ForbidPv),
        Just(Check::Security),
        calls(4).prop_map(Check::RequirePv),
    ]
}

fn subset<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = Vec<T>> {
    proptest::sample::subsequence(all, 1..=all.len())
}

fn names(items: impl IntoIterator<Item = String>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn invariant_toml(c: &Check, kinds: &[VmKind], phases: &[Phase]) -> String {
    let scope = format!(
        "vm = {}\nphase = {}\nreason = \"a property test\"\n",
        names(kinds.iter().map(|k| k.name().to_string())),
        names(phases.iter().map(|p| p.name().to_string()))
    );
    let body = match c {
        Check::ForbidMsr(a, lo, hi) => {
            format!(
                "forbid = \"msr-{}\"\nrange = [{lo:#x}, {hi:#x}]\n",
                a.name()
            )
        }
        Check::ForbidPv(calls) => format!(
            "forbid = \"pv-call\"\ncall = {}\n",
            names(calls.iter().map(|c| c.name().to_string()))
        ),
        Check::Security => {
            String::from("forbid = \"cpuid-host-control\"\nfeatures = \"security\"\n")
        }
        Check::RequirePv(calls) => {
            format!(
                "require = \"pv-allowed\"\ncall = {}\n",
                names(calls.iter().map(|c| c.name().to_string()))
            )
        }
    };
    format!("\n[[invariant]]\nname = \"property\"\n{body}{scope}")
}

/// Searches every input the invariant covers with the interpreter.
fn brute_force_breaks(interp: &Interpreter, c: &Check, kinds: &[VmKind], phases: &[Phase]) -> bool {
    let registry = Registry::builtin();
    for &kind in kinds {
        for &phase in phases {
            let broken = match c {
                Check::ForbidMsr(access, lo, hi) => {
                    // Decisions are constant between rule boundaries, so the
                    // boundaries and the selector's edges cover every piece.
                    let mut probes = vec![*lo, *hi];
                    for r in &interp.ir().rules {
                        if let Resources::Msr { ranges, .. } = &r.resources {
                            for &(f, l) in ranges {
                                probes.extend([f, l, l.wrapping_add(1), f.wrapping_sub(1)]);
                            }
                        }
                    }
                    probes.into_iter().filter(|i| lo <= i && i <= hi).any(|i| {
                        decide_msr(interp, kind, phase, *access, i).verdict != Verdict::Deny
                    })
                }
                Check::ForbidPv(calls) => calls
                    .iter()
                    .any(|&c| decide_pv(interp, kind, phase, c).verdict != Verdict::Deny),
                Check::RequirePv(calls) => calls
                    .iter()
                    .any(|&c| decide_pv(interp, kind, phase, c).verdict != Verdict::Allow),
                Check::Security => registry.features.iter().filter(|f| f.security).any(|f| {
                    let Some(id) = interp.cpuid_rule(kind, phase, f.leaf, f.subleaf) else {
                        return false;
                    };
                    let rule = interp.rule(id).unwrap();
                    let ctl = rule.cpuid_controls()[f.register().unwrap() as usize];
                    rule.verdict == Verdict::Allow && (ctl.host | ctl.clear_only) & f.mask() != 0
                }),
            };
            if broken {
                return true;
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_check_fails_exactly_when_an_input_breaks_the_invariant(
        seed in 0u64..10_000,
        c in check(),
        kinds in subset(&VmKind::ALL),
        phases in subset(&Phase::ALL),
    ) {
        let policy = random_policy(seed, SampleSize { msr_ranges: 1 + (seed % 40) as usize, cpuid_leaves: 1 + (seed % 12) as usize });
        // Sampled policies name leaves by number; add one that can break
        // the security invariant often.
        // (on normal VMs: on protected ones the baseline forbids it).
        let policy = policy + "\n[[cpuid]]\nleaf = 0x7\nsubleaf = 0\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nebx = { host = 0x80 }\nreason = \"a SMEP test rule\"\n";
        let Ok(ir) = compile(&policy) else {
            // Leaf 7 may already be taken by the sample: skip that case.
            return Ok(());
        };
        let interp = Interpreter::new(ir);
        let breaks = brute_force_breaks(&interp, &c, &kinds, &phases);
        let with = policy + &invariant_toml(&c, &kinds, &phases);
        let passes = match compile(&with) {
            Ok(_) => true,
            Err(e) => {
                prop_assert!(e.diagnostics.iter().all(|d| d.kind == ErrorKind::InvariantViolated), "{:?}", e.diagnostics);
                false
            }
        };
        prop_assert_eq!(passes, !breaks, "check {:?} kinds {:?} phases {:?}", c, kinds, phases);
    }
}

/// The property above is only meaningful if both outcomes occur: over a
/// fixed grid, some invariants pass and some fail, and each agrees with
/// the brute-force search.
#[test]
fn both_outcomes_occur_and_agree() {
    let (mut passed, mut failed) = (0, 0);
    for seed in 0..40u64 {
        let policy = random_policy(
            seed,
            SampleSize {
                msr_ranges: 10,
                cpuid_leaves: 3,
            },
        );
        let interp = Interpreter::new(compile(&policy).unwrap());
        let checks = [
            Check::ForbidMsr(Access::Write, 0x100, 0x300),
            Check::ForbidPv(vec![PvCall::VcpuRun, PvCall::SetMsr]),
            Check::RequirePv(vec![PvCall::InjectIrq]),
        ];
        for c in &checks {
            let (kinds, phases) = ([VmKind::Protected], [Phase::Running]);
            let breaks = brute_force_breaks(&interp, c, &kinds, &phases);
            let passes = compile(&(policy.clone() + &invariant_toml(c, &kinds, &phases))).is_ok();
            assert_eq!(passes, !breaks, "seed {seed} {c:?}");
            if passes { passed += 1 } else { failed += 1 }
        }
    }
    assert!(
        passed > 10 && failed > 10,
        "passed {passed}, failed {failed}"
    );
}
