//! `get_msr` on a protected vCPU before its first run, through hyp and the
//! shipped policies. pKVM-IA reads any MSR then (`kvm_msr_read` in
//! `pkvm_vcpu_handle_host_hypercall`, no protected-VM filter), and
//! `policy/default.toml` does the same; `policy/strict.toml` lets the host
//! read back only the MSRs it may write, and IA32_MTRRCAP (crosvm reads it
//! before it writes the MTRRs). After the first run neither
//! allows any read (the baseline's `pvm-no-msr-read-after-setup`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Access, Phase, Policy, Verdict, VmKind, decide_msr};
use pvgate_hyp::{Call, CallError, Effect};

const MTRRCAP: u32 = 0xfe;
const MISC_ENABLE: u32 = 0x1a0;
const MTRR_PHYSBASE0: u32 = 0x200;
const MTRR_FIX4K_F8000: u32 = 0x26f;
const MTRR_DEF_TYPE: u32 = 0x2ff;
const PAT: u32 = 0x277;
const LSTAR: u32 = 0xc000_0082;

/// The indices swept: the architectural MSRs, the AMD/SYSCALL block, the
/// KVM paravirtual base and the two ends of the index space.
fn swept() -> impl Iterator<Item = u32> {
    (0..0x3000u32)
        .chain(0xc000_0000..0xc000_0200)
        .chain([0x4b56_4d00, u32::MAX])
}

/// The MSRs strict lets the host read in setup: the ones it may write,
/// and IA32_MTRRCAP.
fn strict_readable(index: u32) -> bool {
    index == MTRRCAP
        || index == MISC_ENABLE
        || (MTRR_PHYSBASE0..=MTRR_FIX4K_F8000).contains(&index)
        || index == MTRR_DEF_TYPE
}

/// Every swept `get_msr` in setup: status, effect and output, and what the
/// policy says, without changing the vCPU.
fn read_sweep<P: Policy, R: Policy>(
    h: &SmallHyp<P>,
    reference: &R,
    readable: impl Fn(u32) -> bool,
) {
    let v = vcpu_in(h, VmKind::Protected, Phase::Setup);
    let before = snapshot(h, v);
    for index in swept() {
        let d = decide_msr(
            reference,
            VmKind::Protected,
            Phase::Setup,
            Access::Read,
            index,
        );
        let o = h.call(v, Call::GetMsr { index });
        if readable(index) {
            assert_eq!(d.verdict, Verdict::Allow, "{index:#x}");
            assert_eq!(
                (o.status(), o.effect),
                (0, Effect::Allow),
                "{index:#x}: {o:?}"
            );
            let stored = before.msr(index).unwrap_or(0);
            assert_eq!(o.out, [stored, 0, 0, 0], "{index:#x}");
        } else {
            assert_eq!(d.verdict, Verdict::Deny, "{index:#x}");
            assert_eq!((o.status(), o.out), (-1, [0; 4]), "{index:#x}: {o:?}");
            assert!(
                matches!(
                    o.error,
                    Some(CallError::MsrDenied {
                        access: Access::Read,
                        phase: Phase::Setup,
                        ..
                    })
                ),
                "{index:#x}: {o:?}"
            );
        }
    }
    assert_eq!(snapshot(h, v), before, "a read changed the vCPU");
}

#[test]
fn the_default_policy_reads_any_msr_before_the_first_run_as_pkvm_ia() {
    let reference = interpreter("policy/default.toml");
    // Over the interpreter and over the image's const tables.
    read_sweep(&hyp(interpreter("policy/default.toml")), &reference, |_| {
        true
    });
    read_sweep(&hyp(pvgate::POLICY), &reference, |_| true);
    for index in [0, PAT, LSTAR, u32::MAX] {
        let d = decide_msr(
            &reference,
            VmKind::Protected,
            Phase::Setup,
            Access::Read,
            index,
        );
        assert_eq!(d.rule.unwrap().name, "pvm-setup-msr-reads", "{index:#x}");
    }
}

#[test]
fn the_strict_policy_reads_back_only_the_msrs_the_host_may_write_and_mtrrcap() {
    let reference = interpreter("policy/strict.toml");
    read_sweep(
        &hyp(interpreter("policy/strict.toml")),
        &reference,
        strict_readable,
    );
    // The readable set is exactly the writable one, and IA32_MTRRCAP.
    for index in swept() {
        let w = decide_msr(
            &reference,
            VmKind::Protected,
            Phase::Setup,
            Access::Write,
            index,
        );
        assert_eq!(
            w.verdict == Verdict::Allow || index == MTRRCAP,
            strict_readable(index),
            "{index:#x}"
        );
    }
}

#[test]
fn a_written_msr_reads_back_in_setup_and_no_msr_reads_after_the_first_run() {
    for path in ["policy/default.toml", "policy/strict.toml"] {
        let h = hyp(interpreter(path));
        let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
        let w = h.call(
            v,
            Call::SetMsr {
                index: MTRR_DEF_TYPE,
                value: 0x806,
            },
        );
        assert!(w.ok(), "{path}: {w:?}");
        let r = h.call(
            v,
            Call::GetMsr {
                index: MTRR_DEF_TYPE,
            },
        );
        assert_eq!((r.status(), r.out[0]), (0, 0x806), "{path}");
        assert!(h.call(v, Call::VcpuRun).ok(), "{path}");
        for index in swept() {
            let r = h.call(v, Call::GetMsr { index });
            assert_eq!((r.status(), r.out), (-1, [0; 4]), "{path}: {index:#x}");
        }
    }
}

#[test]
fn a_hostile_host_reading_in_setup_learns_nothing_it_keeps_after_the_first_run() {
    // The default policy lets the host read LSTAR in setup: the value is
    // the host's own (its write was ignored, so 0), never the guest's.
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let w = h.call(
        v,
        Call::SetMsr {
            index: LSTAR,
            value: 0xffff_ffff_8100_0000,
        },
    );
    assert_eq!((w.status(), w.effect), (0, Effect::Ignore), "{w:?}");
    let r = h.call(v, Call::GetMsr { index: LSTAR });
    assert_eq!(
        (r.status(), r.out[0]),
        (0, 0),
        "the ignored write is not read back"
    );
    assert!(h.call(v, Call::VcpuRun).ok());
    let r = h.call(v, Call::GetMsr { index: LSTAR });
    assert_eq!(
        (r.status(), r.out),
        (-1, [0; 4]),
        "the guest's LSTAR stays unread"
    );
}
