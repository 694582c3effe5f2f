//! Lifecycle and value checks: phases only move forward, CPUID is frozen
//! after the first run, and the checks inside allowed calls hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::{Call, CallError, CpuidTable, Effect, ReleaseError};

#[test]
fn phases_only_move_forward_and_teardown_vcpus_cannot_run() {
    let h = hyp(pvgate::POLICY);
    for kind in VmKind::ALL {
        let v = vcpu_in(&h, kind, Phase::Setup);
        assert!(h.call(v, Call::VcpuRun).ok());
        assert_eq!(h.phase(v), Some(Phase::Running));
        // Nothing the host can call brings the vCPU back to setup.
        for pv in PvCall::ALL {
            if pv == PvCall::VcpuAfterSetCpuid {
                let _ = h.vcpu_after_set_cpuid(v, &mut CpuidTable::new());
            }
            if let Some(call) = Call::example(pv) {
                let _ = h.call(v, call);
                assert_eq!(
                    h.phase(v),
                    Some(Phase::Running),
                    "{} after {}",
                    kind.name(),
                    pv.name()
                );
            }
        }
        assert!(h.vm_destroy(v.vm()).ok());
        assert_eq!(h.phase(v), Some(Phase::Teardown));
        let o = h.call(v, Call::VcpuRun);
        assert!(!o.ok());
        if kind == VmKind::Normal {
            // The policy allows it; the vCPU is not runnable.
            assert_eq!(
                o.error,
                Some(CallError::NotRunnable {
                    phase: Phase::Teardown
                })
            );
        }
        assert_eq!(h.phase(v), Some(Phase::Teardown));
        assert_eq!(
            h.create_vcpu(v.vm()),
            Err(pvgate_hyp::CreateVcpuError::Destroyed { handle: v.vm().0 })
        );
        h.destroy_vcpu(v).unwrap();
        h.free_vm(v.vm()).unwrap();
        assert_eq!(h.phase(v), None, "a freed vm's handles are dead");
        assert_eq!(h.call(v, Call::VcpuRun).status(), -22);
    }
}

#[test]
fn a_vm_cannot_be_freed_before_vm_destroy() {
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert_eq!(
        h.free_vm(v.vm()),
        Err(ReleaseError::NotTornDown { handle: v.vm().0 })
    );
    assert_eq!(
        h.destroy_vcpu(v),
        Err(ReleaseError::NotTornDown { handle: v.0 })
    );
}

#[test]
fn after_the_first_run_a_cpuid_table_must_equal_the_current_one() {
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Normal, Phase::Setup);
    let mut t = h.supported_cpuid(VmKind::Normal);
    t.retain(|e| e.leaf != 0x80000006);
    assert!(h.vcpu_after_set_cpuid(v, &mut t).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    let mut same = snapshot(&h, v).cpuid;
    same.reverse(); // order does not matter
    assert_eq!(h.vcpu_after_set_cpuid(v, &mut same).effect, Effect::Allow);
    let mut changed = snapshot(&h, v).cpuid;
    changed[1].ecx ^= 1 << 5;
    let o = h.vcpu_after_set_cpuid(v, &mut changed);
    assert_eq!(
        o.error,
        Some(CallError::CpuidChanged {
            leaf: 1,
            subleaf: 0
        })
    );
    assert_eq!(
        o.error.unwrap().to_string(),
        "after the first run the cpuid table must equal the current one; CPUID.(EAX=0x1,ECX=0x0) differs"
    );
}

#[test]
fn protected_cpuid_gets_x2apic_forced_on_and_vmx_off_whatever_the_host_sends() {
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    // The reference CPU has VMX (bit 5); supported hides it.
    assert_ne!(reference_cpu().base_entry(1, 0).ecx & 1 << 5, 0);
    let supported = h.supported_cpuid(VmKind::Protected);
    let leaf1 = supported.iter().find(|e| e.leaf == 1).unwrap();
    assert_eq!(leaf1.ecx & (1 << 5 | 1 << 21), 1 << 21);
    let mut t = CpuidTable::new(); // an empty proposal: every base leaf as zeros
    let o = h.vcpu_after_set_cpuid(v, &mut t);
    assert_eq!(o.effect, Effect::Filter);
    assert!(o.replaced > 10, "{o:?}");
    let eff = snapshot(&h, v).cpuid;
    assert_eq!(eff.len(), supported.len());
    let leaf1 = eff.iter().find(|e| e.leaf == 1).unwrap();
    assert_eq!(leaf1.ecx & (1 << 5 | 1 << 21), 1 << 21);
    assert_eq!(
        eff.iter().find(|e| e.leaf == 7).unwrap().ebx,
        reference_cpu().base_entry(7, 0).ebx & !(1 << 2 | 1 << 12 | 1 << 14 | 1 << 15 | 1 << 25),
        "fixed leaves keep the supported base (the hardware's within KVM's \
         CPUID_7_0_EBX mask: no RDT, MPX or Intel PT; and no SGX)"
    );
}

#[test]
fn inject_irq_refuses_low_and_software_vectors_for_protected_vms_only() {
    let h = hyp(pvgate::POLICY);
    // RFLAGS.IF set, so the guest can take interrupts (else -EBUSY first).
    let running_with_if = |kind| {
        let v = vcpu_in(&h, kind, Phase::Setup);
        assert!(h.call(v, Call::SetRflags(0x202)).ok());
        assert!(h.call(v, Call::VcpuRun).ok());
        v
    };
    let p = running_with_if(VmKind::Protected);
    let o = h.call(
        p,
        Call::InjectIrq {
            vector: 31,
            soft: false,
        },
    );
    assert_eq!(
        o.error,
        Some(CallError::VectorTooLow {
            call: PvCall::InjectIrq,
            vector: 31,
            min: 32
        })
    );
    assert_eq!(
        o.error.unwrap().to_string(),
        "`inject_irq`: vector 0x1f is below the policy's minimum 0x20"
    );
    let o = h.call(
        p,
        Call::InjectIrq {
            vector: 0x80,
            soft: true,
        },
    );
    assert_eq!(o.status(), -1);
    assert!(
        h.call(
            p,
            Call::InjectIrq {
                vector: 32,
                soft: false
            }
        )
        .ok()
    );
    assert_eq!(
        h.call(
            p,
            Call::InjectIrq {
                vector: 33,
                soft: false
            }
        )
        .status(),
        -16,
        "busy: one is queued"
    );
    let n = running_with_if(VmKind::Normal);
    assert!(
        h.call(
            n,
            Call::InjectIrq {
                vector: 3,
                soft: true
            }
        )
        .ok()
    );
}

#[test]
fn vcpu_add_fpstate_is_protected_only_and_setup_mce_is_bounded_as_pkvm_ia_bounds_it() {
    let h = hyp(pvgate::POLICY);
    let n = vcpu_in(&h, VmKind::Normal, Phase::Setup);
    let o = h.call(n, Call::VcpuAddFpstate { size: 0x3000 });
    assert_eq!(
        (o.status(), o.error),
        (
            -22,
            Some(CallError::NotProtected {
                call: PvCall::VcpuAddFpstate
            })
        )
    );
    let p = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    assert!(h.call(p, Call::VcpuAddFpstate { size: 0x3000 }).ok());
    assert_eq!(
        h.call(p, Call::VcpuAddFpstate { size: 0x100 }).status(),
        -22,
        "smaller than the xsave area"
    );
    // pKVM-IA (`kvm_vcpu_x86_setup_mce`): 1..=32 banks, flags within
    // MCG_CTL_P | MCG_SER_P, whatever the machine's own MCG_CAP (the
    // reference model has 20 banks; 21 is still fine).
    assert!(h.call(p, Call::SetupMce { mcg_cap: 0x15 }).ok());
    assert!(
        h.call(
            p,
            Call::SetupMce {
                mcg_cap: 0x0100_0114
            }
        )
        .ok()
    );
    for (asked, banks) in [(0x21, 0x21), (0x0100_0100, 0)] {
        let o = h.call(p, Call::SetupMce { mcg_cap: asked });
        assert_eq!(o.error, Some(CallError::McgCapBanks { asked: banks }));
        assert_eq!(o.status(), -22);
    }
    // CMCI_P (bit 10) is the machine's, not a flag pKVM-IA supports.
    let o = h.call(
        p,
        Call::SetupMce {
            mcg_cap: 1 << 10 | 4,
        },
    );
    assert_eq!(
        o.error,
        Some(CallError::McgCapFlags {
            asked: 0x404,
            extra: 0x400
        })
    );
    assert_eq!(
        o.error.unwrap().to_string(),
        "`setup_mce`: IA32_MCG_CAP 0x404 sets bits 0x400 beyond MCG_CTL_P | MCG_SER_P"
    );
    assert_eq!(snapshot(&h, p).mcg_cap, 0x0100_0114);
}

#[test]
fn misc_enable_takes_only_its_masked_bits_and_forces_the_rest() {
    let h = hyp(pvgate::POLICY);
    let p = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    assert!(
        h.call(
            p,
            Call::SetMsr {
                index: 0x1a0,
                value: 1
            }
        )
        .ok()
    );
    assert_eq!(snapshot(&h, p).msr(0x1a0), Some(0x1801));
    let o = h.call(
        p,
        Call::SetMsr {
            index: 0x1a0,
            value: 1 << 3 | 1,
        },
    );
    assert_eq!(
        o.error.unwrap().to_string(),
        "write of 0x9 to msr 0x1a0 sets bits 0x8 outside the write mask 0x1801"
    );
    let o = h.call(
        p,
        Call::SetMsr {
            index: 0x10b,
            value: 1,
        },
    );
    assert_eq!(
        (o.status(), o.rule),
        (-1, None),
        "IA32_FLUSH_CMD: default deny"
    );
    assert_eq!(
        o.error.unwrap().to_string(),
        "write of msr 0x10b is denied in phase `setup`"
    );
}

/// Attacks on the frozen CPUID table after the first run: an empty table,
/// a table with an extra leaf, and one that repeats an entry with other
/// values must all be refused, and the vCPU's table must stay as it was.
#[test]
fn after_the_first_run_no_shape_of_table_slips_past_the_equality_check() {
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Normal, Phase::Setup);
    let mut t = h.supported_cpuid(VmKind::Normal);
    assert!(h.vcpu_after_set_cpuid(v, &mut t).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    let current = snapshot(&h, v).cpuid;
    assert!(current.len() > 2);

    let mut empty = CpuidTable::new();
    assert!(!h.vcpu_after_set_cpuid(v, &mut empty).ok(), "empty table");

    let mut extra = current.clone();
    let mut new_leaf = extra[0];
    new_leaf.leaf = 0x4000_00ff;
    if extra.push(new_leaf).is_ok() {
        assert!(!h.vcpu_after_set_cpuid(v, &mut extra).ok(), "extra leaf");
    }

    let mut repeated = current.clone();
    let mut twin = repeated[1];
    twin.ecx ^= 1 << 5;
    let last = repeated.len() - 1;
    repeated[last] = twin; // entry 1 twice, once changed; one entry dropped
    assert!(
        !h.vcpu_after_set_cpuid(v, &mut repeated).ok(),
        "repeated entry"
    );

    let mut shuffled_twin = current.clone();
    if shuffled_twin.push(twin).is_ok() {
        assert!(
            !h.vcpu_after_set_cpuid(v, &mut shuffled_twin).ok(),
            "the whole table plus a changed copy of one entry"
        );
    }
    assert_eq!(snapshot(&h, v).cpuid, current, "the table did not change");
}
