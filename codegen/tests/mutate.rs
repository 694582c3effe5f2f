//! Single-point mutants (`pvgate_codegen::mutate`): each operator on a tiny
//! policy gives exactly the mutants documented, each rebuilt as the
//! compiler builds a policy (a mutant the baseline refuses is killed by
//! the build), with unique, deterministic descriptions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvgate_codegen::mutate::{Mutant, Operator, mutants};
use pvgate_codegen::{Compiled, Registry, compile, compile_file};

/// The calls and rules every policy needs to satisfy the shipped baseline.
const BASE: &str = r#"[policy]
name = "tiny"
description = "a tiny policy for mutation tests"
format = 1
cpuid-violations = "filter"

[[pv]]
name = "run"
call = ["vcpu_run", "vm_destroy"]
vm = ["protected"]
phase = ["setup", "running"]
verdict = "allow"
reason = "the baseline requires running and destroying protected VMs"

[[pv]]
name = "fin"
call = "vm_finalize"
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
reason = "the baseline requires finalizing protected VMs in setup"
"#;

fn compiled(extra: &str) -> Compiled {
    let text = format!("{BASE}{extra}");
    let ir = match compile(&text) {
        Ok(ir) => ir,
        Err(e) => panic!("{}", e.render("tiny.toml", &text)),
    };
    Compiled {
        path: String::from("tiny.toml"),
        text,
        ir,
    }
}

fn all(extra: &str) -> Vec<Mutant> {
    mutants(&compiled(extra), Registry::builtin())
}

/// The descriptions of one rule's mutants of one operator, without the
/// `tiny.toml:LINE ` prefix.
fn of(ms: &[Mutant], rule: &str, op: Operator) -> Vec<String> {
    ms.iter()
        .filter(|m| m.operator == op && m.rule.as_ref().is_some_and(|r| r.name == rule))
        .map(|m| {
            let (_, rest) = m.description.split_once(' ').unwrap();
            rest.to_string()
        })
        .collect()
}

fn find<'m>(ms: &'m [Mutant], suffix: &str) -> &'m Mutant {
    ms.iter()
        .find(|m| m.description.ends_with(suffix))
        .unwrap_or_else(|| panic!("no mutant ending `{suffix}`"))
}

#[test]
fn the_policy_level_mutant_comes_first_and_names_the_key_line() {
    let ms = all("");
    assert_eq!(ms[0].operator, Operator::CpuidViolations);
    assert_eq!(
        ms[0].description,
        "tiny.toml:5 [policy]: cpuid-violations = filter → reject"
    );
    assert!(ms[0].rule.is_none());
    let ir = ms[0].build.as_ref().unwrap();
    assert_eq!(ir.violation_mode, pvgate_gate::ViolationMode::Reject);
}

#[test]
fn dropping_a_rule_the_baseline_requires_is_killed_by_the_build() {
    let ms = all("");
    let dropped: Vec<&Mutant> = ms
        .iter()
        .filter(|m| m.operator == Operator::DropRule)
        .collect();
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[0].description, "tiny.toml:7 run: rule dropped");
    let why = dropped[0].build_error().unwrap();
    assert!(why.contains("pvm-host-can-run-and-destroy"), "{why}");
    assert!(why.contains("vcpu_run"), "{why}");
    assert!(dropped[1].build_error().unwrap().contains("vm_finalize"));
}

#[test]
fn removing_vm_destroy_from_the_protected_rules_is_killed_by_the_baseline() {
    let ms = all("");
    assert_eq!(
        of(&ms, "run", Operator::DropCall),
        ["run: call: drop vcpu_run", "run: call: drop vm_destroy"]
    );
    let m = find(&ms, "run: call: drop vm_destroy");
    let why = m.build_error().expect("killed by the build");
    assert!(
        why.contains("no rule allows PV call `vm_destroy` on protected VMs"),
        "{why}"
    );
    // Every way of taking vm_destroy away from a protected phase is refused.
    for suffix in [
        "run: rule dropped",
        "run: verdict = allow → deny",
        "run: phase = [setup, running] → [setup]",
        "run: phase = [setup, running] → [running]",
        "run: vm = [protected] → []",
    ] {
        if let Some(m) = ms.iter().find(|m| m.description.ends_with(suffix)) {
            assert!(m.killed_by_build(), "{suffix} built");
        }
    }
    // And on the shipped policy.
    let shipped = shipped();
    let ms = mutants(&shipped, Registry::builtin());
    let destroy: Vec<&Mutant> = ms
        .iter()
        .filter(|m| m.rule.as_ref().is_some_and(|r| r.name == "pvm-destroy"))
        .filter(|m| {
            matches!(m.operator, Operator::DropRule | Operator::FlipVerdict)
                || m.description.contains("→ [teardown]")
                || m.description.contains("→ [setup, teardown]")
                || m.description.contains("→ [running, teardown]")
        })
        .collect();
    assert_eq!(destroy.len(), 4, "{destroy:#?}");
    for m in destroy {
        assert!(m.killed_by_build(), "{} built", m.description);
    }
}

#[test]
fn verdicts_flip_as_documented_and_lose_their_constraints() {
    let ms = all(r#"
[[msr]]
name = "misc"
msr = "IA32_MISC_ENABLE"
vm = ["normal"]
phase = ["setup"]
access = ["write"]
verdict = "allow"
write-mask = ["FAST_STRING"]
reason = "a masked MSR write for the flip test"

[[msr]]
name = "star"
msr = "IA32_STAR"
vm = ["normal"]
phase = ["setup"]
access = ["write"]
verdict = "ignore"
reason = "an ignored MSR write for the flip test"

[[cpuid]]
name = "leaf"
leaf = 0x2
vm = ["normal"]
phase = ["setup"]
verdict = "deny"
reason = "a denied CPUID leaf for the flip test"
"#);
    assert_eq!(
        of(&ms, "misc", Operator::FlipVerdict),
        [
            "misc: verdict = allow → deny (its value constraints dropped)",
            "misc: verdict = allow → ignore (its value constraints dropped)",
        ]
    );
    assert_eq!(
        of(&ms, "star", Operator::FlipVerdict),
        [
            "star: verdict = ignore → allow",
            "star: verdict = ignore → deny"
        ]
    );
    assert_eq!(
        of(&ms, "leaf", Operator::FlipVerdict),
        ["leaf: verdict = deny → allow"]
    );
    assert_eq!(
        of(&ms, "run", Operator::FlipVerdict),
        ["run: verdict = allow → deny"]
    );
    let m = find(
        &ms,
        "misc: verdict = allow → deny (its value constraints dropped)",
    );
    let ir = m.build.as_ref().unwrap();
    let rule = ir.rules.iter().find(|r| r.name == "misc").unwrap();
    assert_eq!(rule.verdict, pvgate_gate::Verdict::Deny);
    assert_eq!(
        rule.detail,
        pvgate_gate::RuleDetail::Msr(pvgate_gate::MsrConstraint::NONE)
    );
    // The line is the verdict's.
    assert!(
        m.description.starts_with("tiny.toml:29 "),
        "{}",
        m.description
    );
}

#[test]
fn kinds_phases_and_accesses_are_added_and_dropped_one_at_a_time() {
    let ms = all(r#"
[[msr]]
name = "misc"
msr = "IA32_MISC_ENABLE"
vm = ["normal"]
phase = ["setup", "running"]
access = ["read", "write"]
verdict = "allow"
write-mask = ["FAST_STRING"]
reason = "a masked MSR write for the list test"
"#);
    assert_eq!(
        of(&ms, "misc", Operator::AddVm),
        ["misc: vm = [normal] → [protected, normal]"]
    );
    assert!(of(&ms, "misc", Operator::DropVm).is_empty());
    assert_eq!(
        of(&ms, "misc", Operator::DropPhase),
        [
            "misc: phase = [setup, running] → [running]",
            "misc: phase = [setup, running] → [setup]",
        ]
    );
    assert_eq!(
        of(&ms, "misc", Operator::AddPhase),
        ["misc: phase = [setup, running] → [setup, running, teardown]"]
    );
    assert_eq!(
        of(&ms, "misc", Operator::DropAccess),
        [
            "misc: access = [read, write] → [write]",
            "misc: access = [read, write] → [read] (write-mask dropped)",
        ]
    );
    assert!(of(&ms, "misc", Operator::AddAccess).is_empty());
    // Normal VMs may run and be destroyed: that mutant builds.
    let m = find(&ms, "run: vm = [protected] → [protected, normal]");
    assert!(!m.killed_by_build());
    // The protected MSR rule added is refused by the baseline.
    let m = find(&ms, "misc: vm = [normal] → [protected, normal]");
    let why = m.build_error().unwrap();
    assert!(why.contains("invariant"), "{why}");
}

#[test]
fn range_ends_move_by_one_where_they_stay_ranges() {
    let ms = all(r#"
[[msr]]
name = "some"
range = [0x10, 0x12]
vm = ["normal"]
phase = ["setup"]
access = ["read"]
verdict = "allow"
reason = "a small MSR range for the bound test"

[[msr]]
name = "one"
msr = ["IA32_STAR", "IA32_LSTAR"]
vm = ["normal"]
phase = ["setup"]
access = ["read"]
verdict = "allow"
reason = "two adjacent MSRs for the bound test"

[[msr]]
name = "every"
range = [0x0, 0xFFFFFFFF]
vm = ["normal"]
phase = ["running"]
access = ["read"]
verdict = "allow"
reason = "every MSR for the bound test"

[[cpuid]]
name = "leaves"
leaf = "all"
vm = ["normal"]
phase = ["setup"]
verdict = "deny"
reason = "every CPUID leaf for the bound test"
"#);
    assert_eq!(
        of(&ms, "some", Operator::MoveBound),
        [
            "some: MSRs 0x10..=0x12 → 0xf..=0x12",
            "some: MSRs 0x10..=0x12 → 0x11..=0x12",
            "some: MSRs 0x10..=0x12 → 0x10..=0x11",
            "some: MSRs 0x10..=0x12 → 0x10..=0x13",
        ]
    );
    // IA32_STAR and IA32_LSTAR are adjacent: one range of the IR.
    assert_eq!(
        of(&ms, "one", Operator::MoveBound),
        [
            "one: MSRs 0xc0000081..=0xc0000082 → 0xc0000080..=0xc0000082",
            "one: MSRs 0xc0000081..=0xc0000082 → 0xc0000082",
            "one: MSRs 0xc0000081..=0xc0000082 → 0xc0000081",
            "one: MSRs 0xc0000081..=0xc0000082 → 0xc0000081..=0xc0000083",
        ]
    );
    assert_eq!(
        of(&ms, "every", Operator::MoveBound),
        [
            "every: MSRs 0x0..=0xffffffff → 0x1..=0xffffffff",
            "every: MSRs 0x0..=0xffffffff → 0x0..=0xfffffffe",
        ]
    );
    assert_eq!(
        of(&ms, "leaves", Operator::MoveBound),
        [
            "leaves: leaf 0x0..=0xffffffff → 0x1..=0xffffffff",
            "leaves: leaf 0x0..=0xffffffff → 0x0..=0xfffffffe",
        ]
    );
}

#[test]
fn a_single_msr_moves_as_the_range_of_one_index() {
    let ms = all(r#"
[[msr]]
name = "pat"
msr = "IA32_PAT"
vm = ["normal"]
phase = ["setup"]
access = ["read"]
verdict = "deny"
reason = "one MSR for the single-index bound test"
"#);
    assert_eq!(
        of(&ms, "pat", Operator::MoveBound),
        [
            "pat: MSRs 0x277 → 0x276..=0x277",
            "pat: MSRs 0x277 → 0x277..=0x278",
        ]
    );
}

#[test]
fn mask_bits_are_dropped_each_and_added_from_the_registry_and_the_edges() {
    let ms = all(r#"
[[msr]]
name = "misc"
msr = "IA32_MISC_ENABLE"
vm = ["normal"]
phase = ["setup"]
access = ["write"]
verdict = "allow"
write-mask = ["FAST_STRING", "BTS_UNAVAIL"]
force-on = ["BTS_UNAVAIL"]
reason = "a masked MSR write for the mask test"

[[msr]]
name = "mtrr"
msr = "IA32_MTRR_DEF_TYPE"
vm = ["normal"]
phase = ["setup"]
access = ["write"]
verdict = "allow"
reason = "an unmasked MSR write for the mask test"
"#);
    let registry = Registry::builtin();
    let misc = registry.msr_by_name("IA32_MISC_ENABLE").unwrap();
    let named: Vec<u8> = misc.bits.iter().map(|b| b.bit).collect();
    assert!(named.contains(&0) && named.contains(&11));
    assert_eq!(
        of(&ms, "misc", Operator::DropMaskBit),
        [
            "misc: write-mask: drop bit 0 (FAST_STRING)",
            "misc: write-mask: drop bit 11 (BTS_UNAVAIL)",
            "misc: force-on: drop bit 11 (BTS_UNAVAIL)",
        ]
    );
    let adds = of(&ms, "misc", Operator::AddMaskBit);
    // write-mask: the named bits it lacks, and bit 1 and bit 63;
    // force-on and force-off alike.
    let expect_for = |held: &[u8]| {
        let mut bits: Vec<u8> = named
            .iter()
            .copied()
            .filter(|b| !held.contains(b))
            .collect();
        let lowest = (0..64).find(|b| !held.contains(b)).unwrap();
        bits.extend([lowest, 63]);
        bits.sort();
        bits.dedup();
        bits.len()
    };
    let count = |key: &str| adds.iter().filter(|a| a.contains(key)).count();
    assert_eq!(count("write-mask: add"), expect_for(&[0, 11]));
    assert_eq!(count("force-on: add"), expect_for(&[11]));
    assert_eq!(count("force-off: add"), expect_for(&[]));
    assert!(adds.contains(&String::from("misc: write-mask: add bit 63")));
    assert!(adds.contains(&String::from("misc: write-mask: add bit 1")) || named.contains(&1));
    // A bit forced on and off at once: the compiler refuses it.
    let m = find(&ms, "misc: force-off: add bit 11 (BTS_UNAVAIL)");
    assert!(
        m.build_error().unwrap().contains("forced both on and off"),
        "{:?}",
        m.build_error()
    );
    // An absent write-mask (every bit) drops only the named bits and the edges.
    let mtrr = registry.msr_by_name("IA32_MTRR_DEF_TYPE").unwrap();
    let mut expect: Vec<u8> = mtrr.bits.iter().map(|b| b.bit).collect();
    expect.extend([0, 63]);
    expect.sort();
    expect.dedup();
    assert_eq!(of(&ms, "mtrr", Operator::DropMaskBit).len(), expect.len());
    assert!(
        of(&ms, "mtrr", Operator::DropMaskBit)
            .contains(&String::from("mtrr: write-mask: drop bit 63"))
    );
}

#[test]
fn cpuid_bits_move_into_and_out_of_each_mode() {
    let ms = all(r#"
[[cpuid]]
name = "brand"
leaf = [0x80000002, 0x80000003]
vm = ["normal"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0x3 }
reason = "a leaf range without named bits for the CPUID test"
"#);
    let mut expect = vec![
        "brand: eax bit 0: host → fixed",
        "brand: eax bit 1: host → fixed",
        "brand: eax bit 2: fixed → host",
        "brand: eax bit 31: fixed → host",
    ];
    for mode in ["clear-only", "force-on", "force-off"] {
        expect.push(match mode {
            "clear-only" => "brand: eax bit 0: host → clear-only",
            "force-on" => "brand: eax bit 0: host → force-on",
            _ => "brand: eax bit 0: host → force-off",
        });
        expect.push(match mode {
            "clear-only" => "brand: eax bit 31: fixed → clear-only",
            "force-on" => "brand: eax bit 31: fixed → force-on",
            _ => "brand: eax bit 31: fixed → force-off",
        });
    }
    let got = of(&ms, "brand", Operator::MoveCpuidBit);
    assert_eq!(got[..10], expect[..]);
    // The other registers are all fixed: bit 0 and bit 31 into each mode.
    assert_eq!(got.len(), 10 + 3 * 8);
    assert_eq!(got[10], "brand: ebx bit 0: fixed → host");
    assert_eq!(got[11], "brand: ebx bit 31: fixed → host");
    // The mutant's masks stay disjoint: the bit left host.
    let m = find(&ms, "brand: eax bit 0: host → force-on");
    let ir = m.build.as_ref().unwrap();
    let rule = ir.rules.iter().find(|r| r.name == "brand").unwrap();
    let pvgate_gate::RuleDetail::Cpuid(c) = rule.detail else {
        panic!()
    };
    assert_eq!((c[0].host, c[0].force_on), (0x2, 0x1));
}

#[test]
fn a_cpuid_bit_the_baseline_protects_moved_to_the_host_is_killed_by_the_build() {
    let ms = all(r#"
[[cpuid]]
name = "leaf1"
leaf = 0x1
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
ecx = { force-off = ["VMX"] }
reason = "VMX hidden from a protected guest for the CPUID test"
"#);
    let m = find(&ms, "leaf1: ecx bit 5 (VMX): force-off → host");
    let why = m.build_error().expect("killed by the build");
    assert!(
        why.contains("pvm-no-host-controlled-security-cpuid"),
        "{why}"
    );
    assert!(!find(&ms, "leaf1: ecx bit 5 (VMX): force-off → fixed").killed_by_build());
    // Named bits are candidates: a registry feature of leaf 1 ECX.
    assert!(ms.iter().any(|m| {
        m.description
            .ends_with("leaf1: ecx bit 0 (SSE3): fixed → force-on")
    }));
}

#[test]
fn injection_rules_get_min_vector_and_allow_soft_mutants() {
    let ms = all(r#"
[[pv]]
name = "inject"
call = "inject_irq"
vm = ["protected"]
phase = ["setup", "running"]
verdict = "allow"
min-vector = 32
allow-soft = false
reason = "interrupt injection from vector 32 for the injection test"

[[pv]]
name = "inject-normal"
call = ["inject_irq", "inject_irq_if_allowed"]
vm = ["normal"]
phase = ["setup"]
verdict = "allow"
reason = "unconstrained injection for the injection test"
"#);
    assert_eq!(
        of(&ms, "inject", Operator::MinVector),
        [
            "inject: min-vector = 32 → 31",
            "inject: min-vector = 32 → 33"
        ]
    );
    assert_eq!(
        of(&ms, "inject", Operator::AllowSoft),
        ["inject: allow-soft = false → true"]
    );
    // min-vector 0 (absent) only goes up.
    assert_eq!(
        of(&ms, "inject-normal", Operator::MinVector),
        ["inject-normal: min-vector = 0 → 1"]
    );
    // Lines: the key's.
    assert!(
        find(&ms, "inject: min-vector = 32 → 31")
            .description
            .starts_with("tiny.toml:29 ")
    );
    // Rules of other calls get none.
    assert!(of(&ms, "run", Operator::MinVector).is_empty());
}

#[test]
fn rules_with_the_same_line_content_get_different_ids() {
    let ms = all(r#"
[[msr]]
msr = "IA32_STAR"
vm = ["normal"]
phase = ["setup"]
access = ["write"]
verdict = "deny"
reason = "the same text twice for the id test"

[[msr]]
msr = "IA32_STAR"
vm = ["normal"]
phase = ["running"]
access = ["write"]
verdict = "deny"
reason = "the same text twice for the id test"
"#);
    let star: Vec<&Mutant> = ms
        .iter()
        .filter(|m| m.rule.as_ref().is_some_and(|r| r.name == "IA32_STAR"))
        .collect();
    assert!(star.len() > 10);
    let mut ids: Vec<&str> = ms.iter().map(|m| m.description.as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "descriptions collide");
    assert!(
        ms.iter()
            .any(|m| m.description == "tiny.toml:23 IA32_STAR: rule dropped")
    );
    assert!(
        ms.iter()
            .any(|m| m.description == "tiny.toml:31 IA32_STAR: rule dropped")
    );
}

fn shipped() -> Compiled {
    std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    compile_file("policy/default.toml").unwrap()
}

#[test]
fn the_shipped_policy_mutants_are_unique_deterministic_and_rebuilt() {
    let c = shipped();
    let a = mutants(&c, Registry::builtin());
    let b = mutants(&c, Registry::builtin());
    assert!(a.len() > 500, "{}", a.len());
    let ids = |ms: &[Mutant]| -> Vec<String> { ms.iter().map(|m| m.description.clone()).collect() };
    assert_eq!(ids(&a), ids(&b));
    let mut unique = ids(&a);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), a.len(), "descriptions collide");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.build.as_ref().ok(), y.build.as_ref().ok());
        assert_eq!(x.build_error(), y.build_error());
    }
    // Every operator applies to the shipped policy.
    for op in Operator::ALL {
        // Every rule of the shipped policy names one VM kind.
        if op == Operator::DropVm {
            continue;
        }
        assert!(a.iter().any(|m| m.operator == op), "{}", op.name());
    }
    // The example of the documentation.
    assert!(a.iter().any(|m| m.description
        == "policy/default.toml:37 pvm-inject-irq: min-vector = 32 → 31"));
    // A built mutant differs from the policy; its tables are rebuilt.
    for m in &a {
        if let Ok(ir) = &m.build {
            assert_ne!(ir, &c.ir, "{} changes nothing", m.description);
        }
    }
}

#[test]
fn rebuilding_an_unchanged_policy_gives_the_compiled_ir() {
    let c = shipped();
    let mut ir = c.ir.clone();
    ir.msr.clear();
    ir.cpuid.clear();
    ir.pv.clear();
    let rebuilt = pvgate_codegen::rebuild(ir, Registry::builtin()).unwrap();
    assert_eq!(rebuilt, c.ir);
}
