//! The crosvm boot traces replayed through hyp with the shipped default
//! policy: every expectation must hold, with the image's const tables and
//! with the codegen interpreter alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::PathBuf;

use pvgate_codegen::Interpreter;
use pvgate_gate::Policy;
use pvgate_trace::{Replay, load, replay};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn interpreter(policy: &str) -> Interpreter {
    let compiled = pvgate_codegen::compile_file(root().join(policy)).expect("policy compiles");
    Interpreter::new(compiled.ir)
}

fn replay_file<P: Policy>(policy: &P, trace: &str) -> Replay {
    let t = load(root().join("tests/data/traces").join(trace)).expect("trace loads");
    replay(policy, &t).expect("trace replays")
}

fn assert_all_met(r: &Replay) {
    let failures: Vec<String> = r.failures().map(|s| s.to_string()).collect();
    assert!(failures.is_empty(), "{}: {}", r.trace, failures.join("\n"));
}

fn assert_every_call_expected(r: &Replay) {
    assert!(
        r.steps.iter().all(|s| s.met.is_some()),
        "every call of the shipped traces has an expectation"
    );
}

#[test]
fn the_protected_crosvm_boot_meets_every_expectation_under_the_default_policy() {
    for r in [
        replay_file(&interpreter("policy/default.toml"), "crosvm-boot-pvm.toml"),
        replay_file(&pvgate::POLICY, "crosvm-boot-pvm.toml"),
    ] {
        assert_all_met(&r);
        assert_every_call_expected(&r);
        assert_eq!(r.steps.len(), 28);
        // The MISC_ENABLE write is decided by its MSR rule, not the PV rule.
        let misc = r
            .steps
            .iter()
            .find(|s| s.resource.contains("0x1a0"))
            .unwrap();
        assert_eq!(misc.rule.as_ref().unwrap().name, "pvm-misc-enable-write");
    }
}

#[test]
fn the_normal_crosvm_boot_meets_every_expectation_under_the_default_policy() {
    for r in [
        replay_file(&interpreter("policy/default.toml"), "crosvm-boot-npvm.toml"),
        replay_file(&pvgate::POLICY, "crosvm-boot-npvm.toml"),
    ] {
        assert_all_met(&r);
        assert_every_call_expected(&r);
        assert!(r.steps.iter().all(|s| s.effect == "allow"));
    }
}

const VMX_TRACE: &str = r#"
format = "pvgate-trace/1"
title = "the host asks for nested virtualization and writes SYSENTER_CS"
[vm]
kind = "protected"

[[call]]
pv = "vcpu_after_set_cpuid"
[call.cpuid]
from = "supported"
edits = [{ leaf = 1, reg = "ecx", set = 0x20 }, { leaf = 1, reg = "ecx", clear = 0x00200000 }]
expect_effective = [{ leaf = 1, reg = "ecx", clear = 0x20 }, { leaf = 1, reg = "ecx", set = 0x00200000 }]

[[call]]
pv = "set_msr"
msr = "IA32_SYSENTER_CS"
value = 0x10

[[call]]
pv = "vm_finalize"
expect = "allow"

[[call]]
pv = "vcpu_run"
expect = "allow"

[[call]]
pv = "set_msr"
msr = "IA32_SYSENTER_CS"
value = 0x10
expect = "deny"
"#;

#[test]
fn default_filters_vmx_and_x2apic_and_ignores_sysenter_while_strict_rejects_both() {
    let trace = pvgate_trace::parse(VMX_TRACE, "<vmx>").unwrap();
    let r = replay(&interpreter("policy/default.toml"), &trace).unwrap();
    assert_all_met(&r);
    let cpuid = &r.steps[0];
    assert_eq!(cpuid.effect, "filter", "{cpuid}");
    assert_eq!(cpuid.resource, "CPUID.(EAX=0x1,ECX=0x0)");
    assert_eq!(cpuid.rule.as_ref().unwrap().name, "pvm-leaf1-topology");
    assert_eq!(
        cpuid.outcome.unwrap().replaced,
        1,
        "one register (leaf 1 ECX) replaced"
    );
    assert_eq!(r.steps[1].effect, "ignore");
    assert_eq!(
        r.steps[1].rule.as_ref().unwrap().name,
        "pvm-syscall-sysenter-stopgap"
    );

    let r = replay(&interpreter("policy/strict.toml"), &trace).unwrap();
    assert_all_met(&r); // the corrected table comes back either way
    assert_eq!(r.steps[0].effect, "deny", "{}", r.steps[0]);
    let msg = r.steps[0].error.as_deref().unwrap();
    assert!(
        msg.starts_with("CPUID.(EAX=0x1,ECX=0x0):ECX bits 0x200020"),
        "{msg}"
    );
    assert_eq!(r.steps[1].effect, "deny");
    assert_eq!(r.steps[1].status, -1);
}

#[test]
fn an_unmet_expectation_is_reported_with_the_reason() {
    let text = VMX_TRACE.replace(
        "value = 0x10\nexpect = \"deny\"",
        "value = 0x10\nexpect = \"allow\"",
    );
    let trace = pvgate_trace::parse(&text, "<vmx>").unwrap();
    let r = replay(&interpreter("policy/default.toml"), &trace).unwrap();
    assert!(!r.all_met());
    let failed: Vec<_> = r.failures().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].index, 5);
    assert_eq!(failed[0].mismatches, ["got deny"]);
    assert!(failed[0].to_string().contains("NOT MET"), "{}", failed[0]);
}

#[test]
fn malformed_traces_name_the_line_and_the_problem() {
    let bad = VMX_TRACE.replace(
        "msr = \"IA32_SYSENTER_CS\"\nvalue = 0x10\n\n",
        "msr = \"IA32_SYSENTER_CZ\"\nvalue = 0x10\n\n",
    );
    let err = pvgate_trace::parse(&bad, "<bad>").unwrap_err().to_string();
    assert_eq!(
        err,
        "<bad>:16:7: unknown msr `IA32_SYSENTER_CZ` (did you mean `IA32_SYSENTER_CS`?)"
    );
    let err = pvgate_trace::parse(
        &VMX_TRACE.replace("pvgate-trace/1", "pvgate-trace/9"),
        "<bad>",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(": format `pvgate-trace/9` is not `pvgate-trace/1`"),
        "{err}"
    );
    let err = pvgate_trace::parse(
        &VMX_TRACE.replace("pv = \"vcpu_run\"", "pv = \"vcpu_runn\""),
        "<bad>",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown pv call `vcpu_runn` (did you mean `vcpu_run`?)"),
        "{err}"
    );
    let err = pvgate_trace::parse(
        &VMX_TRACE.replace(
            "value = 0x10\n\n[[call]]\npv = \"vm_finalize\"",
            "valu = 0x10\n\n[[call]]\npv = \"vm_finalize\"",
        ),
        "<bad>",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("<bad>:17:1: unknown key `valu` in a [[call]] (did you mean `value`?)"),
        "{err}"
    );
}

#[test]
fn the_guest_starts_a_protected_secondary_and_it_enters_at_the_guests_vector_with_reset_state() {
    for r in [
        replay_file(
            &interpreter("policy/default.toml"),
            "pvm-secondary-start.toml",
        ),
        replay_file(&pvgate::POLICY, "pvm-secondary-start.toml"),
        replay_file(
            &interpreter("policy/default.toml"),
            "npvm-start-secondary.toml",
        ),
    ] {
        assert_all_met(&r);
        assert_every_call_expected(&r);
    }
    let r = replay_file(&pvgate::POLICY, "pvm-secondary-start.toml");
    // The host's run of the un-started secondary fails with -EPERM, and
    // the guest's own call has no host outcome.
    let first = r.steps.iter().find(|s| s.pv == "vcpu_run" && s.vcpu == 1);
    assert_eq!(first.map(|s| s.status), Some(-1));
    let start = r
        .steps
        .iter()
        .find(|s| s.pv == "start_secondary" && s.status == 0)
        .unwrap();
    assert!(start.outcome.is_none());
}

/// The secondary-start trace with one call's text replaced.
fn secondary_trace_with(from: &str, to: &str) -> String {
    let text =
        std::fs::read_to_string(root().join("tests/data/traces/pvm-secondary-start.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

#[test]
fn expect_guest_reports_a_wrong_value_and_errno_a_wrong_error() {
    let text = secondary_trace_with("cs_selector = 0x9f00", "cs_selector = 0x9e00");
    let t = pvgate_trace::parse(&text, "<t>").unwrap();
    let r = replay(&pvgate::POLICY, &t).unwrap();
    let failed: Vec<_> = r.failures().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].mismatches,
        ["guest cs_selector = 0x9f00, expected 0x9e00"]
    );
    let text = secondary_trace_with(
        "note = \"not a page: -EFAULT\"\nexpect = \"deny\"\nerrno = \"EFAULT\"",
        "note = \"not a page: -EFAULT\"\nexpect = \"deny\"\nerrno = \"EINVAL\"",
    );
    let r = replay(&pvgate::POLICY, &pvgate_trace::parse(&text, "<t>").unwrap()).unwrap();
    let failed: Vec<_> = r.failures().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].mismatches,
        ["errno EFAULT (14), expected EINVAL (22)"]
    );
}

#[test]
fn hostile_trace_files_for_the_additions_name_the_line_and_the_problem() {
    let cases = [
        (
            (
                "expect = \"deny\"\nerrno = \"EBUSY\"",
                "expect = \"allow\"\nerrno = \"EBUSY\"",
            ),
            "`errno` says the call fails, but `expect = \"allow\"` says it succeeds",
        ),
        (
            ("cs_selector = 0x9f00", "cs_sel = 0x9f00"),
            "unknown key `cs_sel`",
        ),
        (
            (
                "rflags = 0x2, cr0 = 0x10",
                "rflags = 0x2, \"msr.NOPE\" = 1, cr0 = 0x10",
            ),
            "unknown key `msr.NOPE`",
        ),
        (
            ("errno = \"EBUSY\"", "errno = \"EAGAIN\""),
            "errno `EAGAIN` is not one of",
        ),
        (
            ("guest = \"start_secondary\"", "guest = \"stop_secondary\""),
            "unknown guest call `stop_secondary`",
        ),
        (("apic_id = 0\n", ""), "`start_secondary` needs `apic_id`"),
        (
            (
                "pv = \"set_efer\"\nvalue = 0x500\nexpect",
                "pv = \"set_efer\"\npvmfw = 0x1000\nvalue = 0x500\nexpect",
            ),
            "`pvmfw` is for `vm_finalize` only",
        ),
    ];
    for ((from, to), want) in cases {
        let text = secondary_trace_with(from, to);
        let err = pvgate_trace::parse(&text, "<bad>").unwrap_err().to_string();
        assert!(err.starts_with("<bad>:"), "{err}");
        assert!(err.contains(want), "{to}: {err}");
    }
    // Both a host call and a guest call in one entry.
    let text = secondary_trace_with(
        "guest = \"start_secondary\"\nvcpu = 0\napic_id = 7",
        "guest = \"start_secondary\"\npv = \"vcpu_run\"\nvcpu = 0\napic_id = 7",
    );
    let err = pvgate_trace::parse(&text, "<bad>").unwrap_err().to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn the_pmu_is_hidden_from_a_protected_vm_and_the_host_cannot_re_enable_it() {
    for r in [
        replay_file(&interpreter("policy/default.toml"), "pmu-hidden-pvm.toml"),
        replay_file(&pvgate::POLICY, "pmu-hidden-pvm.toml"),
    ] {
        assert_all_met(&r);
        assert_every_call_expected(&r);
        assert_eq!(r.steps[0].effect, "filter", "{}", r.steps[0]);
    }
    // strict.toml rejects the proposal; the corrected table still has no PMU.
    let r = replay_file(&interpreter("policy/strict.toml"), "pmu-hidden-pvm.toml");
    assert_eq!(r.steps[0].effect, "deny", "{}", r.steps[0]);
    assert_eq!(
        r.failures().count(),
        1,
        "only the `filter` expectation differs (strict rejects); every expect_effective holds"
    );
}

const BUSY_TRACE: &str = r#"
format = "pvgate-trace/1"
title = "for_injection and the host's MSR emulation result"
[vm]
kind = "protected"
[[call]]
pv = "set_rflags"
value = 0x202
expect = "allow"
[[call]]
pv = "vm_finalize"
expect = "allow"
[[call]]
pv = "vcpu_run"
expect = "allow"
[[call]]
pv = "interrupt_allowed"
for_injection = true
expect_value = 1
[[call]]
pv = "complete_emulated_msr"
error = -5
expect_value = 1
[[call]]
pv = "interrupt_allowed"
for_injection = true
note = "-EBUSY: a failed msr emulation is pending"
expect = "deny"
[[call]]
pv = "nmi_allowed"
expect_value = 1
note = "not for injection: the guest's flags"
[[call]]
pv = "inject_irq"
vector = 0x30
expect = "deny"
"#;

#[test]
fn for_injection_and_the_emulation_error_replay_and_name_the_errno() {
    let p = interpreter("policy/default.toml");
    let trace = pvgate_trace::parse(BUSY_TRACE, "<busy>").unwrap();
    let r = replay(&p, &trace).unwrap();
    assert_all_met(&r);
    let busy = r.steps.last().unwrap();
    assert_eq!(busy.status, -16);
    assert!(busy.to_string().contains(": EBUSY: "), "{busy}");
    // `error` is an int.
    for bad in ["error = 0x80000000", "error = true"] {
        let text = BUSY_TRACE.replace("error = -5", bad);
        let err = pvgate_trace::parse(&text, "<bad>").unwrap_err().to_string();
        assert!(err.contains("`error`"), "{err}");
    }
}
