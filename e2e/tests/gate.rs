//! The gate half of the VMM without KVM: what `gate::through_hyp` hands to
//! KVM for the host's proposal (the CPU this runs on as the model).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use pvgate_e2e::{flags, gate, model, proposal};
use pvgate_gate::VmKind;
use pvgate_hyp::{CpuidEntry, Hyp, HypConfig};

fn hyp() -> Box<gate::GateHyp> {
    Box::new(Hyp::with_cpu(
        pvgate::POLICY,
        model::cpu_model().expect("CPU model"),
        HypConfig::DEFAULT,
    ))
}

/// A host proposal from the model's own leaves (no KVM needed).
fn host() -> Vec<CpuidEntry> {
    let cpu = model::cpu_model().unwrap();
    [(0, 0), (1, 0), (7, 0), (0x8000_0000, 0), (0x8000_0001, 0)]
        .into_iter()
        .map(|(l, s)| cpu.base_entry(l, s))
        .collect()
}

fn leaf(t: &[CpuidEntry], l: u32) -> CpuidEntry {
    *t.iter().find(|e| e.is(l, 0)).unwrap()
}

#[test]
fn a_protected_vcpu_gets_the_policys_cpu_and_the_boot_state() {
    let setups = proposal::setups(&host(), 1, 0x100_0000);
    let gated = gate::through_hyp(&hyp(), VmKind::Protected, &setups).unwrap();
    let held = &gated.vcpus[0];
    let l1 = leaf(&held.cpuid, 1);
    assert_eq!(l1.ecx & proposal::VMX, 0, "VMX forced off");
    assert_ne!(l1.ecx & proposal::X2APIC, 0);
    assert_ne!(l1.ecx & proposal::HYPERVISOR, 0);
    let pmu = held
        .cpuid
        .iter()
        .find(|e| e.is(0xa, 0))
        .map_or(0, |e| e.eax);
    assert_eq!(pmu & 0xff, 0, "no architectural PMU: {pmu:#x}");
    let expected = flags::expected(&held.cpuid);
    assert!(!expected.contains("vmx") && expected.contains("x2apic"));
    assert!(gated.replaced[0] > 0, "hyp filtered the proposal");
    // The registers hyp holds are the boot state asked for.
    let want = setups[0].regs.as_ref().unwrap();
    let got = held.regs.as_ref().unwrap();
    assert_eq!(got.segments[..7], want.segments[..7]);
    assert_eq!((got.gdt, got.idt, got.cr0), (want.gdt, want.idt, want.cr0));
    assert_eq!(got.gprs[16], 0x100_0000, "RIP at the PVH entry");
    assert_eq!(got.gprs[1], want.gprs[1], "RBX at the start info");
}

#[test]
fn a_protected_vcpu_never_gets_refused_or_ignored_msrs() {
    let mut setups = proposal::setups(&host(), 1, 0x100_0000);
    // A hostile host: LSTAR (ignored by the policy) and TSC_AUX (denied).
    setups[0].msrs.push((0xc000_0082, 0xffff_ffff_8100_0000));
    setups[0].msrs.push((0xc000_0103, 0x1234));
    let gated = gate::through_hyp(&hyp(), VmKind::Protected, &setups).unwrap();
    let held: Vec<u32> = gated.vcpus[0].msrs.iter().map(|m| m.0).collect();
    assert!(
        !held.contains(&0xc000_0082) && !held.contains(&0xc000_0103),
        "{held:x?}"
    );
    assert!(
        gated.refused_msrs.iter().any(|r| r.1 == 0xc000_0103),
        "{:x?}",
        gated.refused_msrs
    );
    assert!(held.contains(&0x2ff), "MTRR_DEF_TYPE kept");
}

#[test]
fn a_normal_vm_keeps_the_hosts_proposal_on_both_vcpus() {
    let setups = proposal::setups(&host(), 2, 0x100_0000);
    let gated = gate::through_hyp(&hyp(), VmKind::Normal, &setups).unwrap();
    for (i, (held, asked)) in gated.vcpus.iter().zip(&setups).enumerate() {
        // Every proposed entry as given (hyp adds the model's other
        // leaves as zeros).
        for e in &asked.cpuid {
            assert!(held.cpuid.contains(e), "vCPU {i}: {e:x?}");
        }
        assert_ne!(leaf(&held.cpuid, 1).ecx & proposal::VMX, 0);
    }
    assert!(
        gated.vcpus[1].regs.is_none(),
        "the secondary starts by SIPI"
    );
}
