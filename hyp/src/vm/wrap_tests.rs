//! The generation wrap (finding 9 of issue 8): a slot whose generation
//! would wrap is retired, so a dead handle never reaches a later VM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pvgate_gate::{Phase, VmKind};

use super::handle::VcpuHandle;
use crate::call::Call;
use crate::config::HypConfig;
use crate::cpu::{CpuModel, CpuidEntry};
use crate::error::CreateVmError;
use crate::hypervisor::Hyp;

fn hyp<const VMS: usize>() -> Hyp<pvgate::CompiledPolicy, VMS, 4> {
    // A small Intel CPU (leaves 0 and 1): the wrap rule needs a model to
    // make calls, not any particular feature.
    let leaf = |leaf, eax, ebx, ecx, edx| CpuidEntry {
        leaf,
        subleaf: 0,
        eax,
        ebx,
        ecx,
        edx,
    };
    let entries = [
        leaf(0, 1, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        leaf(1, 0x50657, 0, 0x21, 0x4080),
    ];
    let cpu = CpuModel::from_entries(&entries, 0).unwrap();
    Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT)
}

/// Creates a protected VM with one vCPU, destroys and frees it; returns
/// the (now dead) vCPU handle.
fn cycle<const VMS: usize>(h: &Hyp<pvgate::CompiledPolicy, VMS, 4>) -> VcpuHandle {
    let vm = h.create_vm(VmKind::Protected).unwrap();
    let v = h.create_vcpu(vm).unwrap();
    assert!(h.vm_destroy(vm).ok());
    h.free_vm(vm).unwrap();
    v
}

#[test]
fn a_slot_whose_generation_would_wrap_is_retired_and_dead_handles_stay_dead() {
    let h = hyp::<1>();
    let first = cycle(&h);
    assert_eq!(first.0 >> 32, 1, "the first VM of a slot is generation 1");
    // Skip to the last generation, as 2^32 - 2 more cycles would.
    h.skip_generations_for_test(0, u32::MAX - 1);
    let last = cycle(&h);
    assert_eq!(last.0 >> 32, u64::from(u32::MAX));
    // The next generation would wrap to the first VM's: the slot retires.
    assert_eq!(
        h.create_vm(VmKind::Protected),
        Err(CreateVmError::Full { capacity: 1 })
    );
    assert_eq!(
        h.create_vm(VmKind::Normal),
        Err(CreateVmError::Full { capacity: 1 })
    );
    for dead in [first, last] {
        assert!(!h.call(dead, Call::GetRflags).ok());
        assert_eq!(h.phase(dead), None);
    }
}

#[test]
fn creation_uses_the_other_slots_once_one_is_retired() {
    let h = hyp::<2>();
    h.skip_generations_for_test(0, u32::MAX - 1);
    let last = cycle(&h);
    assert_eq!(
        (last.0 >> 32, last.0 >> 16 & 0x7fff),
        (u64::from(u32::MAX), 0)
    );
    // Slot 0 is retired: VMs keep coming from slot 1.
    for _ in 0..3 {
        let vm = h.create_vm(VmKind::Protected).unwrap();
        assert_eq!(vm.0 & 0xffff, 1);
        let v = h.create_vcpu(vm).unwrap();
        assert_eq!(h.phase(v), Some(Phase::Setup));
        assert!(!h.call(last, Call::GetRflags).ok());
        assert!(h.vm_destroy(vm).ok());
        h.free_vm(vm).unwrap();
    }
    let _held = h.create_vm(VmKind::Normal).unwrap();
    assert_eq!(
        h.create_vm(VmKind::Normal),
        Err(CreateVmError::Full { capacity: 2 })
    );
}
