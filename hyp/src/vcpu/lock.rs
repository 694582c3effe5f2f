//! The one accessor that looks a vCPU up by handle (generation,
//! presence, liveness) and takes its lock ([`LockedVcpu`]); every call on a
//! vCPU goes through it.

use pvgate_gate::{Phase, Policy};

use crate::hypervisor::Hyp;
use crate::state::VcpuState;
use crate::vm::handle::VcpuHandle;
use crate::vm::slot::{VmMeta, VmSlot};

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Reads a vCPU's phase (the host may always know it: it is a function
    /// of the calls it made).
    pub fn phase(&self, vcpu: VcpuHandle) -> Option<Phase> {
        self.inspect(vcpu, |v| v.phase)
    }

    /// Runs `f` over a vCPU's state. For tests and diagnostics of the
    /// hypervisor itself: the host ABI has no such call.
    pub fn inspect<R>(&self, vcpu: VcpuHandle, f: impl FnOnce(&VcpuState) -> R) -> Option<R> {
        let locked = self.lock_vcpu(vcpu)?;
        Some(f(&locked.vcpu))
    }

    /// Looks a vCPU up by handle and takes its lock: `None` unless its VM
    /// is live, of the handle's generation, and has the vCPU, checked
    /// again under the lock (so no call acts on a vCPU of a freed or
    /// recreated VM). A vCPU of a destroyed VM is moved to `teardown`
    /// here, so `vm_destroy` never waits for a vCPU lock.
    #[inline(always)]
    pub(crate) fn lock_vcpu(&self, vcpu: VcpuHandle) -> Option<LockedVcpu<'_, VCPUS>> {
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot)?;
        let cell = slot_ref.vcpus.get(index)?;
        // Lock-free first look: a dead handle never touches a vCPU lock.
        slot_ref.holds(generation, index)?;
        let mut v = cell.lock();
        let meta = slot_ref.holds(generation, index)?;
        if meta.destroyed() {
            v.advance(Phase::Teardown);
        }
        Some(LockedVcpu {
            slot: slot_ref,
            generation,
            index,
            meta,
            vcpu: v,
        })
    }
}

/// A vCPU found by handle, its lock held, and what its VM's state word
/// said under that lock.
pub(crate) struct LockedVcpu<'a, const VCPUS: usize> {
    pub(crate) slot: &'a VmSlot<VCPUS>,
    pub(crate) generation: u32,
    pub(crate) index: usize,
    pub(crate) meta: VmMeta,
    pub(crate) vcpu: spin::MutexGuard<'a, VcpuState>,
}
