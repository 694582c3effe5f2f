//! Totality: random register values into the ABI decoder and the hypercall
//! entry, and random call sequences; no panic, and the invariants hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use proptest::prelude::*;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::abi::{HC_CREATE_VCPU, HC_CREATE_VM, HC_GET_SUPPORTED_CPUID};
use pvgate_hyp::{CpuidEntry, Effect, HypercallRegs, decode};

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..64,
        Just(u64::MAX),
        Just(0x1a0),
        Just(0x2ff),
        (0u64..0x110),
    ]
}

fn regs() -> impl Strategy<Value = HypercallRegs> {
    (
        prop_oneof![0u64..0x110, 0x900u64..0x910, any::<u64>()],
        interesting_u64(),
        interesting_u64(),
        interesting_u64(),
        interesting_u64(),
        interesting_u64(),
        interesting_u64(),
    )
        .prop_map(|(rax, rbx, rcx, rdx, rsi, rdi, r8)| HypercallRegs {
            rax,
            rbx,
            rcx,
            rdx,
            rsi,
            rdi,
            r8,
        })
}

const ERRNOS: [i64; 6] = [0, -1, -14, -16, -22, -28];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn decoding_any_registers_gives_a_request_or_an_error(r in regs()) {
        match decode(&r) {
            Ok(_) => {}
            Err(e) => prop_assert!(ERRNOS.contains(&-e.errno())),
        }
    }

    #[test]
    fn random_hypercalls_never_panic_and_errors_leak_nothing(
        calls in proptest::collection::vec((regs(), any::<bool>(), 0usize..3), 1..40)
    ) {
        let h = hyp(pvgate::POLICY);
        let mut shared = vec![CpuidEntry::default(); 8];
        let vm = h.hypercall(&HypercallRegs { rax: HC_CREATE_VM, ..Default::default() }, &mut shared);
        prop_assert_eq!(vm.status, 0);
        let vcpu = h.hypercall(&HypercallRegs { rax: HC_CREATE_VCPU, rbx: vm.out[0], ..Default::default() }, &mut shared);
        prop_assert_eq!(vcpu.status, 0);
        let mut pv_calls = 0u64;
        let mut last_phase = Phase::Setup;
        for (mut r, use_live_handle, which) in calls {
            if use_live_handle {
                r.rbx = if which == 0 { vm.out[0] } else { vcpu.out[0] };
            }
            let o = h.hypercall(&r, &mut shared);
            prop_assert!(ERRNOS.contains(&o.status), "{:?} -> {:?}", r, o);
            let is_cpuid = r.rax == PvCall::VcpuAfterSetCpuid.number();
            if o.status != 0 && !is_cpuid {
                prop_assert_eq!(o.out, [0; 4], "an error leaked outputs: {:?}", r);
            }
            // Everything but the management calls is counted (unknown
            // numbers under call 0).
            if !(HC_CREATE_VM..=HC_GET_SUPPORTED_CPUID).contains(&r.rax) {
                pv_calls += 1;
            }
            let vh = pvgate_hyp::VcpuHandle(vcpu.out[0]);
            if let Some(p) = h.phase(vh) {
                prop_assert!(p >= last_phase, "phase went back");
                last_phase = p;
            }
        }
        // Every PV-range hypercall is counted exactly once.
        let mut counted = 0;
        for slot in std::iter::once(None).chain(PvCall::ALL.into_iter().map(Some)) {
            for e in Effect::ALL {
                counted += h.audit().counter(slot, e);
            }
        }
        prop_assert_eq!(counted, pv_calls);
    }

    #[test]
    fn random_call_sequences_keep_a_running_protected_vcpu_sealed(
        seq in proptest::collection::vec((0usize..PvCall::ALL.len(), interesting_u64(), interesting_u64()), 1..60)
    ) {
        let h = hyp(pvgate::POLICY);
        let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
        let sealed = |s: &pvgate_hyp::VcpuState| ((s.gprs, s.rflags, s.segments, s.gdt, s.idt, s.cr0, s.cr4, s.efer), (s.msrs.clone(), s.cpuid.clone(), s.dr7, s.irq.nmi_mask, s.irq.interrupt_shadow));
        let before = sealed(&snapshot(&h, v));
        let mut shared = vec![CpuidEntry::default(); 4];
        for (i, a, b) in seq {
            let r = HypercallRegs { rax: PvCall::ALL[i].number(), rbx: v.0, rcx: a, rdx: b, ..Default::default() };
            let _ = h.hypercall(&r, &mut shared);
            prop_assert_eq!(h.phase(v), Some(Phase::Running));
        }
        prop_assert_eq!(sealed(&snapshot(&h, v)), before);
    }
}
