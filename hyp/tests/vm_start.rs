//! VM lifecycle as in pKVM-IA: `vm_finalize` (pKVM-IA `pkvm_vm_finalize`),
//! vCPUs created not runnable, `vcpu_run` of one that is not runnable
//! (-EPERM), the guest's `start_secondary` (pKVM-IA
//! `pkvm_start_secondary_vcpu`) with its checks, and the state each vCPU
//! enters with at its first run. Each test is an attack a hostile host or
//! guest could try; each failed before this was built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::abi::{HC_AUDIT_COUNT, HC_GUEST_START_SECONDARY, PVMFW_NONE};
use pvgate_hyp::error::{EBUSY, EFAULT, EINVAL, EOPNOTSUPP, EPERM};
use pvgate_hyp::{
    Call, CallError, Effect, GuestCall, GuestCallError, Hyp, HypConfig, HypercallRegs,
    PVMFW_DEFAULT_SIZE, RunState, VcpuHandle, VmHandle,
};

fn hyp_with(config: HypConfig) -> Box<SmallHyp<pvgate::CompiledPolicy>> {
    Box::new(Hyp::with_cpu(pvgate::POLICY, reference_cpu(), config))
}

/// A protected VM with `n` fresh vCPUs.
fn pvm<P: pvgate_gate::Policy>(h: &SmallHyp<P>, n: usize) -> (VmHandle, Vec<VcpuHandle>) {
    let vm = h.create_vm(VmKind::Protected).unwrap();
    let v = (0..n).map(|_| h.create_vcpu(vm).unwrap()).collect();
    (vm, v)
}

fn start(apic_id: u32, start_ip: u64) -> GuestCall {
    GuestCall::StartSecondary { apic_id, start_ip }
}

#[test]
fn a_protected_vcpu_does_not_run_before_it_is_started_and_a_normal_one_does() {
    let h = hyp(pvgate::POLICY);
    let (_, v) = pvm(&h, 2);
    for (i, &vcpu) in v.iter().enumerate() {
        assert_eq!(
            h.inspect(vcpu, |s| s.run_state),
            Some(RunState::Uninitialized)
        );
        let o = h.call(vcpu, Call::VcpuRun);
        assert_eq!(o.status(), -EPERM);
        assert_eq!(o.error, Some(CallError::NotStarted { index: i }));
        assert_eq!(o.effect, Effect::Invalid, "hyp's rule, not a policy denial");
        assert_eq!(h.phase(vcpu), Some(Phase::Setup), "nothing ran");
    }
    let msg = CallError::NotStarted { index: 1 }.to_string();
    assert!(
        msg.contains("vcpu 1") && msg.contains("start_secondary"),
        "{msg}"
    );
    let vm = h.create_vm(VmKind::Normal).unwrap();
    let n = h.create_vcpu(vm).unwrap();
    assert_eq!(h.inspect(n, |s| s.run_state), Some(RunState::Runnable));
    assert!(h.call(n, Call::VcpuRun).ok());
}

#[test]
fn vm_finalize_is_for_protected_vms_once_and_checks_the_pvmfw_address() {
    let h = hyp(pvgate::POLICY);
    let vm = h.create_vm(VmKind::Normal).unwrap();
    h.create_vcpu(vm).unwrap();
    let o = h.vm_finalize(vm, None);
    assert_eq!(
        (o.status(), o.error),
        (
            -EINVAL,
            Some(CallError::NotProtected {
                call: PvCall::VmFinalize
            })
        )
    );

    let (vm, v) = pvm(&h, 2);
    let size = PVMFW_DEFAULT_SIZE;
    let o = h.vm_finalize(vm, Some(u64::MAX - size + 1));
    assert_eq!(o.status(), -EINVAL, "{o:?}");
    assert!(matches!(o.error, Some(CallError::PvmfwOverflow { .. })));
    assert_eq!(
        h.inspect(v[0], |s| s.run_state),
        Some(RunState::Uninitialized),
        "nothing changed"
    );
    // The last address where the image fits is accepted (pKVM-IA asks
    // `U64_MAX - addr < size`, nothing more).
    assert!(h.vm_finalize(vm, Some(u64::MAX - size)).ok());
    let o = h.vm_finalize(vm, None);
    assert_eq!(
        (o.status(), o.error),
        (-EBUSY, Some(CallError::AlreadyFinalized))
    );
    assert_eq!(h.inspect(v[0], |s| s.run_state), Some(RunState::Runnable));
    assert_eq!(
        h.inspect(v[1], |s| s.run_state),
        Some(RunState::Uninitialized),
        "only the boot vcpu"
    );

    // No firmware in this hypervisor: a pvmfw address is -EINVAL.
    let h = hyp_with(HypConfig {
        pvmfw_size: 0,
        ..HypConfig::DEFAULT
    });
    let (vm, _) = pvm(&h, 1);
    let o = h.vm_finalize(vm, Some(0x7fe0_0000));
    assert_eq!(
        (o.status(), o.error),
        (-EINVAL, Some(CallError::NoPvmfw { addr: 0x7fe0_0000 }))
    );
    assert!(h.vm_finalize(vm, None).ok(), "without pvmfw it finalizes");

    // A VM without its boot vCPU cannot be finalized.
    let vm = h.create_vm(VmKind::Protected).unwrap();
    assert_eq!(h.vm_finalize(vm, None).error, Some(CallError::NoBootVcpu));
    assert_eq!(
        h.audit().counter(Some(PvCall::VmFinalize), Effect::Allow),
        1
    );
}

#[test]
fn the_host_cannot_start_a_secondary_and_the_guests_start_has_pkvm_ias_checks() {
    let h = hyp(pvgate::POLICY);
    let (vm, v) = pvm(&h, 3);
    // Before the boot vCPU runs, no guest call can come from it.
    assert_eq!(
        h.guest_call(v[0], start(1, 0x9f000)),
        Err(GuestCallError::CallerNotRunning { index: 0 })
    );
    assert!(h.vm_finalize(vm, None).ok());
    assert_eq!(
        h.call(v[1], Call::VcpuRun).status(),
        -EPERM,
        "the host cannot"
    );
    assert!(h.call(v[0], Call::VcpuRun).ok());
    let cases = [
        (
            start(1, 0x9f001),
            GuestCallError::StartIp { start_ip: 0x9f001 },
            EFAULT,
        ),
        (
            start(1, 0x10_0000),
            GuestCallError::StartIp {
                start_ip: 0x10_0000,
            },
            EFAULT,
        ),
        (
            start(1, 0x9f000 | 1 << 40),
            GuestCallError::StartIp {
                start_ip: 0x9f000 | 1 << 40,
            },
            EFAULT,
        ),
        (start(0, 0x9f000), GuestCallError::TargetIsBoot, EINVAL),
        (
            start(3, 0x9f000),
            GuestCallError::UnknownTarget { apic_id: 3 },
            EINVAL,
        ),
        (
            start(u32::MAX, 0x9f000),
            GuestCallError::UnknownTarget { apic_id: u32::MAX },
            EINVAL,
        ),
    ];
    for (call, error, errno) in cases {
        assert_eq!(h.guest_call(v[0], call), Err(error));
        assert_eq!(error.errno(), errno);
    }
    // The secondary is still not runnable after every refused start.
    assert_eq!(
        h.inspect(v[1], |s| s.run_state),
        Some(RunState::Uninitialized)
    );
    assert_eq!(h.guest_call(v[0], start(1, 0x9f000)), Ok(()));
    assert_eq!(
        h.guest_call(v[0], start(1, 0x9e000)),
        Err(GuestCallError::AlreadyStarted { apic_id: 1 })
    );
    assert_eq!(GuestCallError::AlreadyStarted { apic_id: 1 }.errno(), EBUSY);
    assert_eq!(
        h.inspect(v[1], |s| s.guest_sipi),
        Some(Some(0x9f)),
        "the first vector stays"
    );
    assert!(h.call(v[1], Call::VcpuRun).ok());
    // A started secondary may start another one.
    assert_eq!(h.guest_call(v[1], start(2, 0x8000)), Ok(()));
    assert_eq!(h.audit().guest_counter(start(0, 0), Effect::Allow), 2);
    assert_eq!(h.audit().guest_counter(start(0, 0), Effect::Invalid), 8);
    // A caller whose VM is being destroyed is not running any more.
    assert!(h.vm_destroy(vm).ok());
    assert_eq!(
        h.guest_call(v[0], start(2, 0x9f000)),
        Err(GuestCallError::CallerNotRunning { index: 0 })
    );
}

#[test]
fn start_secondary_needs_a_protected_vm_and_an_in_kernel_lapic() {
    let h = hyp(pvgate::POLICY);
    let vm = h.create_vm(VmKind::Normal).unwrap();
    let v: Vec<_> = (0..2).map(|_| h.create_vcpu(vm).unwrap()).collect();
    assert!(h.call(v[0], Call::VcpuRun).ok());
    assert_eq!(
        h.guest_call(v[0], start(1, 0x9f000)),
        Err(GuestCallError::NotProtected)
    );

    let h = hyp_with(HypConfig {
        in_kernel_lapic: false,
        ..HypConfig::DEFAULT
    });
    let (vm, v) = pvm(&h, 2);
    assert!(h.vm_finalize(vm, None).ok());
    assert!(h.call(v[0], Call::VcpuRun).ok());
    let e = h.guest_call(v[0], start(1, 0x9f000)).unwrap_err();
    assert_eq!(
        (e, e.errno()),
        (GuestCallError::NoInKernelLapic, EOPNOTSUPP)
    );
    assert_eq!(
        h.guest_call(VcpuHandle(7), start(1, 0x9f000)),
        Err(GuestCallError::BadHandle { handle: 7 })
    );
}

#[test]
fn a_started_secondary_enters_at_the_guests_vector_after_a_full_init() {
    let h = hyp(pvgate::POLICY);
    let (vm, v) = pvm(&h, 2);
    let s = v[1];
    // The host pre-configures the secondary as a hostile host would.
    for call in [
        Call::SetCr0(0xe005_0033),
        Call::SetCr4(0x20),
        Call::SetEfer(0x500),
        Call::SetRflags(0x102),
        Call::SetIdt(pvgate_hyp::DescTable {
            base: 0xdead_0000,
            limit: 0xfff,
        }),
        Call::SetGdt(pvgate_hyp::DescTable {
            base: 0xbeef_0000,
            limit: 0x7f,
        }),
    ] {
        assert!(h.call(s, call).ok(), "{call:?}");
    }
    assert!(h.call(s, Call::example(PvCall::LoadMmuPgd).unwrap()).ok());
    assert!(h.call(s, Call::example(PvCall::SetRegs).unwrap()).ok());
    let before = snapshot(&h, s);
    assert_ne!(before.mmu_root, 0);
    assert!(h.vm_finalize(vm, None).ok());
    assert!(h.call(v[0], Call::VcpuRun).ok());
    assert_eq!(h.guest_call(v[0], start(1, 0x9f000)), Ok(()));
    assert!(h.call(s, Call::VcpuRun).ok());
    let after = snapshot(&h, s);
    let want = pvgate_hyp::VcpuState::RESET;
    assert_eq!(
        after.cr0,
        0x6000_0010 & 0x6000_0000 | 0x10,
        "INIT keeps CD/NW as the host left them"
    );
    assert_eq!((after.cr4, after.efer, after.rflags), (0, 0, 0x2));
    assert_eq!((after.idt, after.gdt), (want.idt, want.gdt));
    assert_eq!(
        (after.mmu_root, after.mmu_level),
        (0, 0),
        "the page-table root is reset"
    );
    assert_eq!(after.dr7, 0x400);
    let cs = after.segment(pvgate_hyp::SegReg::Cs);
    assert_eq!(
        (cs.selector, cs.base, cs.limit, cs.ar),
        (0x9f00, 0x9f000, 0xffff, 0x9b)
    );
    assert_eq!(after.gpr(pvgate_hyp::Gpr::Rip), 0);
    for reg in pvgate_hyp::Gpr::ALL {
        if !matches!(reg, pvgate_hyp::Gpr::Rdx | pvgate_hyp::Gpr::Rip) {
            assert_eq!(after.gpr(reg), 0, "{reg:?}");
        }
    }
    assert_eq!(after.cr8, 1, "TPR 0x10 with a protected APIC");
    // INIT keeps the MSRs and the CPUID table.
    assert_eq!(after.cpuid, before.cpuid);
    assert_eq!(after.msr(0x277), before.msr(0x277));
}

#[test]
fn the_boot_vcpu_enters_pvmfw_or_the_host_seeded_registers_with_r15_zero() {
    let h = hyp(pvgate::POLICY);
    let (vm, v) = pvm(&h, 1);
    let w = pvgate_hyp::GprWrite::default()
        .with(pvgate_hyp::Gpr::Rsi, 0x7000)
        .with(pvgate_hyp::Gpr::R15, 6)
        .with(pvgate_hyp::Gpr::Rip, 0x1000);
    assert!(h.call(v[0], Call::SetRegs(w)).ok());
    assert!(h.call(v[0], Call::SetEfer(0x500)).ok());
    assert!(h.vm_finalize(vm, Some(0x7fe0_0000)).ok());
    assert!(h.call(v[0], Call::VcpuRun).ok());
    let s = snapshot(&h, v[0]);
    assert_eq!(
        s.gpr(pvgate_hyp::Gpr::Rip),
        0x7fe0_0000,
        "pvmfw's entry, not the host's RIP"
    );
    assert_eq!(s.gpr(pvgate_hyp::Gpr::Rsi), 0x7000, "host-seeded");
    assert_eq!(s.gpr(pvgate_hyp::Gpr::R15), 0);
    assert_eq!((s.cr0, s.cr4, s.efer, s.rflags), (0x11, 0, 0, 0x2));
    assert_eq!((s.idt.limit, s.gdt.limit), (0, 0));
    let cs = s.segment(pvgate_hyp::SegReg::Cs);
    assert_eq!((cs.base, cs.limit, cs.ar), (0, 0xffff_ffff, 0xc09b));

    // Without pvmfw the host chooses the entry (RIP), not R15.
    let (vm, v) = pvm(&h, 1);
    assert!(h.call(v[0], Call::SetRegs(w)).ok());
    assert!(h.vm_finalize(vm, None).ok());
    assert!(h.call(v[0], Call::VcpuRun).ok());
    let s = snapshot(&h, v[0]);
    assert_eq!(
        (s.gpr(pvgate_hyp::Gpr::Rip), s.gpr(pvgate_hyp::Gpr::R15)),
        (0x1000, 0)
    );
}

#[test]
fn tpr_is_forced_only_with_a_protected_apic() {
    let h = hyp_with(HypConfig {
        protected_apic: false,
        ..HypConfig::DEFAULT
    });
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert_eq!(h.inspect(v, |s| s.cr8), Some(0));
    let h = hyp(pvgate::POLICY);
    let (_, v) = pvm(&h, 1);
    assert_eq!(
        h.inspect(v[0], |s| s.cr8),
        Some(1),
        "from creation (a reset)"
    );
    let n = vcpu_in(&h, VmKind::Normal, Phase::Running);
    assert_eq!(
        h.inspect(n, |s| s.cr8),
        Some(0),
        "normal VMs have no protected APIC"
    );
}

#[test]
fn the_new_calls_through_the_hypercall_abi() {
    let h = hyp(pvgate::POLICY);
    let (vm, v) = pvm(&h, 2);
    let regs = |rax, rbx, rcx, rdx| HypercallRegs {
        rax,
        rbx,
        rcx,
        rdx,
        ..Default::default()
    };
    let hc = |r: HypercallRegs| h.hypercall(&r, &mut []);
    let fin = PvCall::VmFinalize.number();
    assert_eq!(fin, 54);
    assert_eq!(
        hc(regs(PvCall::VcpuRun.number(), v[0].0, 0, 0)).status,
        -EPERM
    );
    assert_eq!(
        hc(regs(fin, vm.0, u64::MAX - 1, 0)).status,
        -EINVAL,
        "overflow"
    );
    assert_eq!(hc(regs(fin, vm.0, PVMFW_NONE, 0)).status, 0);
    assert_eq!(hc(regs(fin, vm.0, PVMFW_NONE, 0)).status, -EBUSY);
    assert_eq!(
        h.inspect(v[0], |s| s.pvmfw_entry),
        Some(None),
        "PVMFW_NONE is no pvmfw"
    );
    assert_eq!(hc(regs(PvCall::VcpuRun.number(), v[0].0, 0, 0)).status, 0);
    let g = HC_GUEST_START_SECONDARY;
    assert_eq!(hc(regs(g, v[0].0, 1, 0x9f001)).status, -EFAULT);
    assert_eq!(
        hc(regs(g, v[0].0, 1 << 32 | 1, 0x9f000)).status,
        -EINVAL,
        "an APIC ID past 32 bits names no vcpu"
    );
    assert_eq!(hc(regs(g, v[0].0, 1, 0x9f000)).status, 0);
    assert_eq!(hc(regs(PvCall::VcpuRun.number(), v[1].0, 0, 0)).status, 0);
    // Guest calls are not PV calls: not counted as unknown calls.
    assert_eq!(
        hc(regs(HC_AUDIT_COUNT, 0, Effect::Invalid as u64, 0)).out[0],
        0
    );
}

#[test]
fn racing_finalizes_and_guest_starts_against_host_runs_start_each_vcpu_once() {
    use std::sync::Arc;
    for _ in 0..20 {
        let h: Arc<SmallHyp<pvgate::CompiledPolicy>> = Arc::from(hyp(pvgate::POLICY));
        let (vm, v) = pvm(&h, 4);
        // Four hosts finalize at once: exactly one succeeds, the others -EBUSY.
        let finals: Vec<i64> = (0..4)
            .map(|_| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || h.vm_finalize(vm, None).status())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(finals.iter().filter(|&&s| s == 0).count(), 1, "{finals:?}");
        assert!(finals.iter().all(|&s| s == 0 || s == -EBUSY), "{finals:?}");
        assert!(h.call(v[0], Call::VcpuRun).ok());
        // The host hammers the secondaries while the guest starts them.
        let runners: Vec<_> = v[1..]
            .iter()
            .map(|&s| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let o = h.call(s, Call::VcpuRun);
                        if o.ok() {
                            return true;
                        }
                        assert_eq!(o.status(), -EPERM, "{o:?}");
                    }
                    false
                })
            })
            .collect();
        let starts: Vec<_> = (1..4u32)
            .map(|id| {
                let h = Arc::clone(&h);
                let caller = v[0];
                std::thread::spawn(move || {
                    (0..2)
                        .map(|_| h.guest_call(caller, start(id, u64::from(id) << 12)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, t) in starts.into_iter().enumerate() {
            let r = t.join().unwrap();
            let id = i as u32 + 1;
            assert_eq!(
                r,
                [Ok(()), Err(GuestCallError::AlreadyStarted { apic_id: id })]
            );
        }
        for t in runners {
            let _ = t.join().unwrap();
        }
        for (i, &s) in v.iter().enumerate().skip(1) {
            if h.phase(s) == Some(Phase::Running) {
                let cs = h
                    .inspect(s, |st| st.segment(pvgate_hyp::SegReg::Cs))
                    .unwrap();
                assert_eq!(cs.base, (i as u64) << 12, "entered at the guest's vector");
            }
        }
    }
}
