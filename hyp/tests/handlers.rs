//! pKVM-IA's checks and return codes inside allowed calls (its
//! `pkvm_interrupt_allowed`, `pkvm_inject_irq`, `pkvm_inject_nmi`,
//! `pkvm_cancel_injection`, `pkvm_hwapic_isr_update`,
//! `pkvm_refresh_apicv_exec_ctrl`, `pkvm_protected_apic_has_interrupt`,
//! `pkvm_write_tsc_multiplier`, `pkvm_complete_emulated_msr`,
//! `kvm_vcpu_x86_setup_mce`), each tried as a hostile host would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::args::MaxIsr;
use pvgate_hyp::error::{EBUSY, EINVAL, EOPNOTSUPP, EPERM, errno_name};
use pvgate_hyp::state::{Busy, Delivered, Gpr};
use pvgate_hyp::{Call, CallError, Effect, Hyp, HypConfig, HypercallRegs, VcpuHandle};

type H = SmallHyp<pvgate::CompiledPolicy>;

fn hyp_with(config: HypConfig) -> Box<H> {
    Box::new(Hyp::with_cpu(pvgate::POLICY, reference_cpu(), config))
}

/// A vCPU of `kind` with RFLAGS.IF set, run once (so in `running`).
fn running_with_if(h: &H, kind: VmKind) -> VcpuHandle {
    let v = vcpu_in(h, kind, Phase::Setup);
    assert!(h.call(v, Call::SetRflags(0x202)).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    v
}

fn errno(h: &H, v: VcpuHandle, call: Call) -> i64 {
    -h.call(v, call).status()
}

const IRQ: Call = Call::InjectIrq {
    vector: 0x30,
    soft: false,
};
const ALLOWED_FOR_INJECTION: Call = Call::InterruptAllowed {
    for_injection: true,
};
const NMI_FOR_INJECTION: Call = Call::NmiAllowed {
    for_injection: true,
};

#[test]
fn inject_irq_with_rflags_if_clear_is_ebusy() {
    for kind in VmKind::ALL {
        let h = hyp(pvgate::POLICY);
        let v = vcpu_in(&h, kind, Phase::Running);
        let o = h.call(v, IRQ);
        assert_eq!(o.status(), -EBUSY, "{kind:?}: IF = 0 after reset");
        assert_eq!(
            o.error,
            Some(CallError::InjectionBusy {
                call: PvCall::InjectIrq,
                reason: Busy::InterruptsBlocked
            })
        );
        assert_eq!(snapshot(&h, v).irq.pending_irq, None);
        let o = h.call(
            v,
            Call::InterruptAllowed {
                for_injection: false,
            },
        );
        assert_eq!((o.status(), o.out[0]), (0, 0), "the guest cannot take it");
    }
}

#[test]
fn a_second_injection_before_the_entry_is_ebusy_and_the_entry_delivers_the_first() {
    let h = hyp(pvgate::POLICY);
    let v = running_with_if(&h, VmKind::Protected);
    assert!(h.call(v, IRQ).ok());
    assert_eq!(
        errno(&h, v, IRQ),
        EBUSY,
        "the first still needs reinjection"
    );
    assert_eq!(errno(&h, v, Call::InjectNmi), EBUSY);
    assert_eq!(errno(&h, v, ALLOWED_FOR_INJECTION), EBUSY);
    assert_eq!(errno(&h, v, NMI_FOR_INJECTION), EBUSY);
    // Not for injection, the answer is the guest's flags.
    let o = h.call(
        v,
        Call::InterruptAllowed {
            for_injection: false,
        },
    );
    assert_eq!((o.status(), o.out[0]), (0, 1));
    assert!(h.call(v, Call::VcpuRun).ok());
    let s = snapshot(&h, v);
    assert_eq!(s.irq.delivered.irq, Some((0x30, false)));
    assert!(!s.irq.needs_reinjection());
    let o = h.call(v, ALLOWED_FOR_INJECTION);
    assert_eq!((o.status(), o.out[0]), (0, 1));
    assert!(h.call(v, IRQ).ok());
}

#[test]
fn a_second_inject_nmi_while_one_is_pending_is_ebusy() {
    for kind in VmKind::ALL {
        let h = hyp(pvgate::POLICY);
        let v = vcpu_in(&h, kind, Phase::Running);
        assert!(h.call(v, Call::InjectNmi).ok(), "{kind:?}");
        let o = h.call(v, Call::InjectNmi);
        assert_eq!(o.status(), -EBUSY, "{kind:?}");
        assert_eq!(
            o.error,
            Some(CallError::InjectionBusy {
                call: PvCall::InjectNmi,
                reason: Busy::NeedsReinjection
            })
        );
        assert!(h.call(v, Call::VcpuRun).ok());
        assert!(snapshot(&h, v).irq.delivered.nmi);
        assert!(
            h.call(v, Call::InjectNmi).ok(),
            "delivered: a new one is fine"
        );
    }
    // Masked NMIs: the guest cannot take one.
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Normal, Phase::Running);
    assert!(h.call(v, Call::SetNmiMask(true)).ok());
    assert_eq!(
        h.call(v, Call::InjectNmi).error,
        Some(CallError::InjectionBusy {
            call: PvCall::InjectNmi,
            reason: Busy::NmiBlocked
        })
    );
}

#[test]
fn a_pending_exception_blocks_injection_for_a_normal_vm() {
    let h = hyp(pvgate::POLICY);
    let v = running_with_if(&h, VmKind::Normal);
    assert!(
        h.call(v, Call::example(PvCall::InjectException).unwrap())
            .ok()
    );
    for call in [
        IRQ,
        Call::InjectNmi,
        ALLOWED_FOR_INJECTION,
        NMI_FOR_INJECTION,
    ] {
        let o = h.call(v, call);
        assert_eq!(o.status(), -EBUSY, "{call:?}");
        assert!(matches!(
            o.error,
            Some(CallError::InjectionBusy {
                reason: Busy::ExceptionPending,
                ..
            })
        ));
    }
}

#[test]
fn the_policys_vector_checks_stay_eperm_once_the_guest_can_take_the_interrupt() {
    let h = hyp(pvgate::POLICY);
    let v = running_with_if(&h, VmKind::Protected);
    for call in [
        Call::InjectIrq {
            vector: 0x10,
            soft: false,
        },
        Call::InjectIrq {
            vector: 0x30,
            soft: true,
        },
    ] {
        assert_eq!(errno(&h, v, call), EPERM, "{call:?}");
    }
}

#[test]
fn inject_irq_if_allowed_is_busy_like_interrupt_allowed_and_otherwise_says_which() {
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Normal, Phase::Setup);
    let call = Call::InjectIrqIfAllowed {
        vector: 0x31,
        soft: false,
    };
    // IF = 0: not injected, a window instead.
    let o = h.call(v, call);
    assert_eq!((o.status(), o.out[0]), (0, 0));
    assert!(snapshot(&h, v).irq.irq_window);
    assert!(h.call(v, Call::SetRflags(0x202)).ok());
    let o = h.call(v, call);
    assert_eq!((o.status(), o.out[0]), (0, 1));
    // Now one needs reinjection: -EBUSY, as interrupt_allowed for injection.
    assert_eq!(errno(&h, v, call), EBUSY);
}

#[test]
fn cancel_injection_hands_a_pending_interrupt_and_nmi_back_to_the_host() {
    for kind in VmKind::ALL {
        let h = hyp(pvgate::POLICY);
        let v = running_with_if(&h, kind);
        assert!(h.call(v, IRQ).ok());
        let o = h.call(v, Call::CancelInjection);
        assert_eq!(o.out, [1 << 1, 0x30, 0, 0], "{kind:?}: interrupt 0x30 back");
        let s = snapshot(&h, v);
        assert_eq!(s.irq.pending_irq, None, "{kind:?}: not dropped silently");
        assert!(!s.irq.needs_reinjection());
        assert!(h.call(v, Call::InjectNmi).ok());
        let o = h.call(v, Call::CancelInjection);
        assert_eq!(o.out, [1, 0, 0, 0], "{kind:?}: the NMI back");
        assert!(!snapshot(&h, v).irq.pending_nmi);
        assert!(h.call(v, Call::VcpuRun).ok());
        assert_eq!(snapshot(&h, v).irq.delivered, Delivered::default());
        // Nothing queued: nothing back.
        assert_eq!(h.call(v, Call::CancelInjection).out, [0; 4]);
    }
}

#[test]
fn cancel_injection_hands_a_normal_vms_soft_interrupt_and_exception_back() {
    let h = hyp(pvgate::POLICY);
    let v = running_with_if(&h, VmKind::Normal);
    assert!(
        h.call(
            v,
            Call::InjectIrq {
                vector: 0x80,
                soft: true
            }
        )
        .ok()
    );
    let o = h.call(v, Call::CancelInjection);
    assert_eq!(o.out, [1 << 1, 0x80 | 1 << 8, 0, 0]);
    assert!(
        h.call(v, Call::example(PvCall::InjectException).unwrap())
            .ok()
    );
    let o = h.call(v, Call::CancelInjection);
    assert_eq!(o.out, [1 << 2, 0, 13 | 1 << 8, 0], "#GP(0) back");
    assert_eq!(snapshot(&h, v).irq.pending_exception, None);
}

#[test]
fn hwapic_isr_update_follows_pkvm_ia() {
    let h = hyp(pvgate::POLICY);
    let p = vcpu_in(&h, VmKind::Protected, Phase::Running);
    let n = vcpu_in(&h, VmKind::Normal, Phase::Running);
    let isr = |m: u64| Call::HwapicIsrUpdate {
        max_isr: MaxIsr::from_u64(m).unwrap(),
    };
    assert!(h.call(p, isr(u64::MAX)).ok(), "-1 always");
    let o = h.call(p, isr(0x30));
    assert_eq!(o.status(), -EPERM);
    assert_eq!(o.error, Some(CallError::IsrProtected { max_isr: 0x30 }));
    assert_eq!(o.effect, Effect::Deny);
    assert!(h.call(n, isr(0x10)).ok(), "a normal vm's isr is the host's");
    assert_eq!(snapshot(&h, n).irq.max_isr, 0x10);
    // A protected VM without a protected APIC: vectors from 32 on.
    let h = hyp_with(HypConfig {
        protected_apic: false,
        ..HypConfig::DEFAULT
    });
    let p = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert_eq!(
        h.call(p, isr(0x1f)).error,
        Some(CallError::IsrVectorTooLow { max_isr: 0x1f })
    );
    assert!(h.call(p, isr(0x20)).ok());
    // APICv inactive, or no in-kernel APIC: -EOPNOTSUPP.
    assert!(h.call(p, Call::RefreshApicvExecCtrl { active: false }).ok());
    assert_eq!(errno(&h, p, isr(u64::MAX)), EOPNOTSUPP);
    let h = hyp_with(HypConfig {
        in_kernel_lapic: false,
        ..HypConfig::DEFAULT
    });
    let n = vcpu_in(&h, VmKind::Normal, Phase::Running);
    assert_eq!(errno(&h, n, isr(0x30)), EOPNOTSUPP);
    // Neither a vector nor -1: refused at decoding.
    let r = HypercallRegs {
        rax: PvCall::HwapicIsrUpdate.number(),
        rbx: n.0,
        rcx: 0x100,
        ..HypercallRegs::default()
    };
    assert_eq!(h.hypercall(&r, &mut []).status, -EINVAL);
}

#[test]
fn refresh_apicv_exec_ctrl_needs_an_in_kernel_apic_and_enabled_apicv_to_activate() {
    let h = hyp_with(HypConfig {
        in_kernel_lapic: false,
        ..HypConfig::DEFAULT
    });
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert_eq!(
        errno(&h, v, Call::RefreshApicvExecCtrl { active: false }),
        EINVAL
    );
    let h = hyp_with(HypConfig {
        apicv_enabled: false,
        ..HypConfig::DEFAULT
    });
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert!(
        !snapshot(&h, v).irq.apicv_active,
        "never active at creation"
    );
    let o = h.call(v, Call::RefreshApicvExecCtrl { active: true });
    assert_eq!(o.error, Some(CallError::ApicvDisabled));
    assert_eq!(o.status(), -EINVAL);
    assert!(h.call(v, Call::RefreshApicvExecCtrl { active: false }).ok());
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert!(snapshot(&h, v).irq.apicv_active, "active from creation");
}

#[test]
fn protected_apic_has_interrupt_is_eopnotsupp_unless_the_apic_is_protected() {
    let h = hyp(pvgate::POLICY);
    let n = vcpu_in(&h, VmKind::Normal, Phase::Running);
    assert_eq!(errno(&h, n, Call::ProtectedApicHasInterrupt), EOPNOTSUPP);
    let p = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert!(h.call(p, Call::ProtectedApicHasInterrupt).ok());
    let h = hyp_with(HypConfig {
        protected_apic: false,
        ..HypConfig::DEFAULT
    });
    let p = vcpu_in(&h, VmKind::Protected, Phase::Running);
    let o = h.call(p, Call::ProtectedApicHasInterrupt);
    assert_eq!(o.error, Some(CallError::ApicNotProtected));
}

#[test]
fn write_tsc_multiplier_is_eopnotsupp_without_tsc_scaling() {
    let call = Call::example(PvCall::WriteTscMultiplier).unwrap();
    let h = hyp_with(HypConfig {
        tsc_scaling: false,
        ..HypConfig::DEFAULT
    });
    for kind in VmKind::ALL {
        let v = vcpu_in(&h, kind, Phase::Running);
        assert_eq!(errno(&h, v, call), EOPNOTSUPP, "{kind:?}");
        assert_eq!(snapshot(&h, v).tsc_multiplier, 1 << 48);
    }
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert!(h.call(v, call).ok());
}

#[test]
fn complete_emulated_msr_stores_the_error_for_a_pvm_and_is_eopnotsupp_for_a_normal_vm() {
    let h = hyp(pvgate::POLICY);
    let n = vcpu_in(&h, VmKind::Normal, Phase::Running);
    let o = h.call(n, Call::CompleteEmulatedMsr { error: 1 });
    assert_eq!(o.status(), -EOPNOTSUPP);
    assert_eq!(o.error, Some(CallError::HostCompletesEmulation));
    let p = running_with_if(&h, VmKind::Protected);
    let o = h.call(p, Call::CompleteEmulatedMsr { error: 1 });
    assert_eq!((o.status(), o.out), (0, [1, 0, 0, 0]));
    assert_eq!(snapshot(&h, p).emulated_msr_error, Some(1));
    // A stored failure blocks injection until the next entry.
    for call in [
        IRQ,
        Call::InjectNmi,
        ALLOWED_FOR_INJECTION,
        NMI_FOR_INJECTION,
    ] {
        let o = h.call(p, call);
        assert!(
            matches!(
                o.error,
                Some(CallError::InjectionBusy {
                    reason: Busy::MsrErrorPending,
                    ..
                })
            ),
            "{call:?}: {o:?}"
        );
    }
    assert!(h.call(p, Call::VcpuRun).ok());
    assert_eq!(snapshot(&h, p).emulated_msr_error, None, "cleared at entry");
    assert!(h.call(p, IRQ).ok());
}

#[test]
fn at_the_next_entry_a_failed_msr_emulation_injects_gp_and_a_good_one_skips_the_instruction() {
    let h = hyp(pvgate::POLICY);
    let p = running_with_if(&h, VmKind::Protected);
    let rip = snapshot(&h, p).gpr(Gpr::Rip);
    // Failure: #GP(0), RIP stays on the instruction.
    assert!(h.guest_msr_exit(p));
    assert!(h.call(p, Call::CompleteEmulatedMsr { error: -5 }).ok());
    assert!(h.call(p, Call::VcpuRun).ok());
    let s = snapshot(&h, p);
    assert_eq!(s.irq.delivered.exception, Some((13, Some(0))));
    assert_eq!(s.gpr(Gpr::Rip), rip);
    assert!(!s.msr_exit);
    // Success (0, or no call at all: pKVM-IA's host only reports
    // failures): RIP past the 2-byte RDMSR/WRMSR, nothing injected.
    for report in [Some(0), None] {
        let before = snapshot(&h, p).gpr(Gpr::Rip);
        assert!(h.guest_msr_exit(p));
        if let Some(error) = report {
            assert!(h.call(p, Call::CompleteEmulatedMsr { error }).ok());
        }
        assert!(h.call(p, Call::VcpuRun).ok());
        let s = snapshot(&h, p);
        assert_eq!(s.gpr(Gpr::Rip), before + 2, "{report:?}");
        assert_eq!(s.irq.delivered.exception, None);
    }
}

#[test]
fn a_hostile_host_cannot_skip_guest_instructions_or_inject_gp_without_an_msr_exit() {
    let h = hyp(pvgate::POLICY);
    let p = running_with_if(&h, VmKind::Protected);
    for error in [0, 1] {
        let rip = snapshot(&h, p).gpr(Gpr::Rip);
        assert!(h.call(p, Call::CompleteEmulatedMsr { error }).ok());
        assert!(h.call(p, Call::VcpuRun).ok());
        let s = snapshot(&h, p);
        assert_eq!(s.gpr(Gpr::Rip), rip, "error {error}");
        assert_eq!(s.irq.delivered.exception, None, "error {error}");
        assert_eq!(s.emulated_msr_error, None);
    }
    // An int sign-extended is the ABI; anything wider is refused.
    let r = |rcx| HypercallRegs {
        rax: PvCall::CompleteEmulatedMsr.number(),
        rbx: p.0,
        rcx,
        ..HypercallRegs::default()
    };
    assert_eq!(h.hypercall(&r(u64::MAX), &mut []).status, 0, "-1");
    assert_eq!(h.hypercall(&r(0xffff_ffff), &mut []).status, -EINVAL);
    assert_eq!(h.hypercall(&r(1 << 40), &mut []).status, -EINVAL);
}

#[test]
fn a_new_vcpu_has_32_machine_check_banks() {
    let h = hyp(pvgate::POLICY);
    for kind in VmKind::ALL {
        let v = vcpu_in(&h, kind, Phase::Setup);
        assert_eq!(snapshot(&h, v).mcg_cap, 32, "{kind:?}");
        assert!(h.call(v, Call::VcpuReset).ok() || kind == VmKind::Protected);
        assert_eq!(snapshot(&h, v).mcg_cap, 32, "{kind:?} after reset");
    }
}

/// Every call, on every VM kind and phase, on machines lacking each
/// feature: a failed call returns all-zero outputs, through `call` and
/// through the hypercall ABI, and its errno is in the audit.
#[test]
fn every_error_zeroes_the_outputs_and_names_its_errno_in_the_audit() {
    let configs = [
        HypConfig::DEFAULT,
        HypConfig {
            in_kernel_lapic: false,
            apicv_enabled: false,
            protected_apic: false,
            tsc_scaling: false,
            ..HypConfig::DEFAULT
        },
    ];
    let mut failures = 0;
    for config in configs {
        for kind in VmKind::ALL {
            for phase in Phase::ALL {
                for pv in PvCall::ALL {
                    let Some(call) = Call::example(pv) else {
                        continue;
                    };
                    let h = hyp_with(config);
                    let v = vcpu_in(&h, kind, phase);
                    // Queue an interrupt where possible, so calls that
                    // would report something have something to report.
                    let _ = h.call(v, IRQ);
                    let o = h.call(v, call);
                    if o.ok() {
                        continue;
                    }
                    failures += 1;
                    assert_eq!(o.out, [0; 4], "{pv:?} {kind:?} {phase:?}: {o:?}");
                    let ev = h.audit().recent(0).unwrap();
                    assert_eq!(ev.call, pv);
                    assert_eq!(ev.errno, o.error.unwrap().errno());
                    assert!(errno_name(ev.errno).is_some());
                    // The audit_event hypercall carries it in bits 31:25.
                    let r = HypercallRegs {
                        rax: pvgate_hyp::abi::HC_AUDIT_EVENT,
                        ..HypercallRegs::default()
                    };
                    let word = h.hypercall(&r, &mut []).out[1];
                    assert_eq!(((word >> 25) & 0x7f) as i64, ev.errno);
                }
            }
        }
    }
    assert!(failures > 100, "{failures}");
}
