//! A vCPU's lifecycle: `create_vcpu` (at architectural reset, in
//! `setup`, with the supported CPUID table) and `destroy_vcpu` (once
//! torn down).

use pvgate_gate::{Policy, VmKind};

use crate::error::{CreateVcpuError, ReleaseError};
use crate::handlers::cpuid::supported_cpuid;
use crate::handlers::entry::PROTECTED_APIC_CR8;
use crate::hypervisor::Hyp;
use crate::state::{Gpr, RESET_MSRS, RunState, VcpuState};
use crate::vm::handle::{VcpuHandle, VmHandle};

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Creates a vCPU in a VM, in phase `setup`, at architectural reset,
    /// with the supported CPUID table for the VM's kind. A protected VM's
    /// vCPU is created not runnable (pKVM-IA: UNINITIALIZED until
    /// `vm_finalize` or the guest starts it), with TPR 0x10 when its APIC
    /// is protected; a normal VM's is runnable (KVM).
    pub fn create_vcpu(&self, vm: VmHandle) -> Result<VcpuHandle, CreateVcpuError> {
        let bad = CreateVcpuError::BadHandle { handle: vm.0 };
        let locked = self.lock_vm(vm).ok_or(bad)?;
        let (slot_ref, generation) = (locked.slot, locked.generation);
        let meta = slot_ref.live(generation).ok_or(bad)?;
        if meta.destroyed() {
            return Err(CreateVcpuError::Destroyed { handle: vm.0 });
        }
        let present = slot_ref.present();
        let index = (0..VCPUS)
            .find(|i| present & (1u64 << i) == 0)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
        let cell = slot_ref
            .vcpus
            .get(index)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
        // No live handle names this vCPU: only calls that looked it up
        // before its last VM was freed can hold its lock, once each.
        let mut v = cell.lock();
        *v = VcpuState::RESET;
        if let Some(cpu) = self.cpu.get() {
            v.cpuid = supported_cpuid(&self.policy, cpu, meta.kind());
            // RDX at reset holds the processor signature (CPUID.1:EAX).
            v.set_gpr(Gpr::Rdx, u64::from(cpu.base_entry(1, 0).eax));
        }
        match meta.kind() {
            VmKind::Normal => v.run_state = RunState::Runnable,
            VmKind::Protected if self.config.protected_apic => v.cr8 = PROTECTED_APIC_CR8,
            VmKind::Protected => {}
        }
        v.irq.apicv_active = self.config.apicv_active_at_creation();
        for (index, value) in RESET_MSRS {
            v.set_msr(index, value);
        }
        slot_ref.add_vcpu(index);
        Ok(VcpuHandle::new(generation, locked.index, index))
    }

    /// Releases a torn-down vCPU's slot.
    pub fn destroy_vcpu(&self, vcpu: VcpuHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vcpu.0 };
        let locked_vm = self.lock_vm(vcpu.vm()).ok_or(bad)?;
        let locked = self.lock_vcpu(vcpu).ok_or(bad)?;
        // A vCPU is in `teardown` exactly when its VM was destroyed.
        if !locked.meta.destroyed() {
            return Err(ReleaseError::NotTornDown { handle: vcpu.0 });
        }
        locked_vm.slot.remove_vcpu(locked.index);
        Ok(())
    }
}
