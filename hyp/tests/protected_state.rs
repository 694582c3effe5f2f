//! After a protected vCPU's first run, no protected state is readable or
//! writable through any getter or setter except what the policy allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Access, Phase, Policy, PvCall, Verdict, VmKind, decide_msr, decide_pv};
use pvgate_hyp::{Call, DescTable, Effect, Gpr, GprWrite, SegReg, Segment};

/// Gives the vCPU distinctive state in setup, then runs it.
fn running_pvm_with_secrets<P: Policy>(h: &SmallHyp<P>) -> pvgate_hyp::VcpuHandle {
    let v = vcpu_in(h, VmKind::Protected, Phase::Setup);
    let regs = GprWrite::default()
        .with(Gpr::Rax, 0x5ec7e7)
        .with(Gpr::Rsp, 0x8000)
        .with(Gpr::R15, 0xbad);
    for call in [
        Call::SetRegs(regs),
        Call::SetRflags(0x246),
        Call::SetSegment {
            seg: SegReg::Fs,
            segment: Segment {
                selector: 0x33,
                base: 0x7fff_0000,
                limit: 0xffff,
                ar: 0xc093,
            },
        },
        Call::SetGdt(DescTable {
            base: 0x1500,
            limit: 0x27,
        }),
        Call::SetIdt(DescTable {
            base: 0x1528,
            limit: 7,
        }),
        Call::SetMsr {
            index: 0x2ff,
            value: 0x806,
        },
        Call::SetCr0(0x8000_0011),
    ] {
        assert!(h.call(v, call).ok(), "{call:?}");
    }
    assert!(h.call(v, Call::VcpuRun).ok());
    v
}

#[test]
fn every_getter_and_setter_on_a_running_protected_vcpu_is_refused_or_policy_allowed() {
    let policy = interpreter("policy/default.toml");
    let h = hyp(interpreter("policy/default.toml"));
    let v = running_pvm_with_secrets(&h);
    let mut allowed = Vec::new();
    for pv in PvCall::ALL {
        let before = snapshot(&h, v);
        let o = match (pv, Call::example(pv)) {
            (PvCall::VcpuAfterSetCpuid, _) => {
                let mut table = before.cpuid.clone();
                h.vcpu_after_set_cpuid(v, &mut table)
            }
            (_, Some(call)) => h.call(v, call),
            (_, None) => continue,
        };
        let d = decide_pv(&policy, VmKind::Protected, Phase::Running, pv);
        let after = snapshot(&h, v);
        if d.verdict != Verdict::Allow {
            assert!(
                o.effect == Effect::Deny || o.effect == Effect::Ignore,
                "{pv:?}: {o:?}"
            );
            assert_eq!(o.out, [0; 4], "{} leaked outputs", pv.name());
            assert_eq!(after, before, "{} changed protected state", pv.name());
            continue;
        }
        allowed.push(pv.name());
        if pv.access() == Access::Read {
            let mask = d.rule.unwrap().pv_constraint().unwrap().read_mask;
            assert!(
                o.out.iter().all(|w| w & !mask == 0),
                "{} shows bits outside its read mask",
                pv.name()
            );
        }
        // Allowed calls never touch registers, segments, descriptor tables,
        // control registers, MSRs or CPUID of a running protected vCPU.
        assert_eq!(after.gprs, before.gprs, "{}", pv.name());
        assert_eq!(after.segments, before.segments, "{}", pv.name());
        assert_eq!(
            (after.gdt, after.idt),
            (before.gdt, before.idt),
            "{}",
            pv.name()
        );
        assert_eq!(
            (after.cr0, after.cr4, after.efer, after.rflags),
            (before.cr0, before.cr4, before.efer, before.rflags)
        );
        assert_eq!(after.msrs, before.msrs, "{}", pv.name());
        assert_eq!(after.cpuid, before.cpuid, "{}", pv.name());
    }
    // Exactly pKVM-IA's always-allowed calls (plus nothing else).
    let expected: Vec<&str> = PvCall::ALL
        .iter()
        .filter(|c| c.class() == pvgate_gate::PvClass::Always)
        .map(|c| c.name())
        .collect();
    assert_eq!(allowed, expected);
}

#[test]
fn no_msr_is_readable_or_writable_after_the_first_run() {
    let policy = interpreter("policy/default.toml");
    let h = hyp(interpreter("policy/default.toml"));
    let v = running_pvm_with_secrets(&h);
    let before = snapshot(&h, v);
    let indices = (0..0x3000u32)
        .chain(0xc000_0000..0xc000_0200)
        .chain([0x4b56_4d00, u32::MAX]);
    for index in indices {
        for access in Access::ALL {
            assert_eq!(
                decide_msr(&policy, VmKind::Protected, Phase::Running, access, index).verdict,
                Verdict::Deny
            );
        }
        let r = h.call(v, Call::GetMsr { index });
        assert_eq!((r.status(), r.out), (-1, [0; 4]), "get_msr {index:#x}");
        let w = h.call(v, Call::SetMsr { index, value: 0 });
        assert_eq!(w.status(), -1, "set_msr {index:#x}");
    }
    assert_eq!(snapshot(&h, v), before);
}

#[test]
fn the_first_run_forces_r15_the_entry_point_and_policy_forced_msr_bits() {
    let h = hyp(pvgate::POLICY);
    let v = running_pvm_with_secrets(&h);
    let s = snapshot(&h, v);
    assert_eq!(s.gpr(Gpr::R15), 0, "r15 is the hypervisor's");
    assert_eq!(s.gpr(Gpr::Rax), 0x5ec7e7, "other registers are the host's");
    assert_eq!(
        s.gpr(Gpr::Rip),
        0xfff0,
        "the hypervisor chooses the entry point"
    );
    // MISC_ENABLE was never written: its forced PEBS_UNAVAIL|BTS_UNAVAIL
    // still apply at first run.
    assert_eq!(s.msr(0x1a0), Some(0x1 | 1 << 11 | 1 << 12));
    // A normal VM's host is trusted: nothing is forced.
    let n = vcpu_in(&h, VmKind::Normal, Phase::Setup);
    assert!(
        h.call(
            n,
            Call::SetRegs(
                GprWrite::default()
                    .with(Gpr::R15, 7)
                    .with(Gpr::Rip, 0x200200)
            )
        )
        .ok()
    );
    assert!(h.call(n, Call::VcpuRun).ok());
    let s = snapshot(&h, n);
    assert_eq!(
        (s.gpr(Gpr::R15), s.gpr(Gpr::Rip), s.msr(0x1a0)),
        (7, 0x200200, Some(1))
    );
}

/// A proposal from the review thread, objected to there as a leak: let the
/// host see RFLAGS.IF of a running protected vCPU, and nothing else (a
/// test-only policy).
const READ_MASK_POLICY: &str = r#"
[policy]
name = "rflags-if-only"
description = "test"
format = 1
cpuid-violations = "filter"
[[pv]]
call = ["set_rflags", "vcpu_run"]
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
reason = "the test needs a running vCPU"
[[pv]]
call = "vm_finalize"
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
reason = "the host finalizes the VM so its boot vCPU can run"

[[pv]]
call = "get_rflags"
vm = ["protected"]
phase = ["running"]
verdict = "allow"
read-mask = 0x200
reason = "test: only RFLAGS.IF"
"#;

#[test]
fn a_getter_read_mask_shows_only_rflags_if() {
    // The review thread's IF-only proposal as a read mask: it breaks
    // the shipped baseline (no get_rflags after the first run), so this
    // test of the mask proves a small baseline of its own.
    let baseline = pvgate_codegen::Baseline::from_text(
        "test-baseline.toml",
        "[[invariant]]\nname = \"no-vcpu-reset\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\", \"teardown\"]\nforbid = \"pv-call\"\ncall = [\"vcpu_reset\"]\nreason = \"test baseline: pKVM-IA denies vcpu_reset on a protected vCPU\"\n",
    );
    let ir = pvgate_codegen::compile_with_baseline(
        READ_MASK_POLICY,
        pvgate_codegen::Registry::builtin(),
        &baseline,
    )
    .unwrap_or_else(|e| panic!("{}", e.render("read-mask policy", READ_MASK_POLICY)));
    let h = hyp(pvgate_codegen::Interpreter::new(ir));
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    assert!(h.call(v, Call::SetRflags(0x246)).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    let o = h.call(v, Call::GetRflags);
    assert_eq!(
        (o.status(), o.out[0]),
        (0, 0x200),
        "only RFLAGS.IF (bit 9) is visible"
    );
    assert_eq!(h.call(v, Call::SetRflags(0)).status(), -1);
}
