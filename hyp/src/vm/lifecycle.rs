//! A VM's lifecycle: `create_vm`, `vm_finalize` (a protected VM's boot
//! vCPU becomes runnable) and `vm_destroy` (the move to `teardown`), both
//! decided by the gate, `free_vm`, and the one accessor that
//! looks a VM up by handle and takes its lifecycle lock ([`LockedVm`]).

use pvgate_gate::{Policy, PvCall, Rule, VmKind, decide_pv};

use super::handle::{VcpuHandle, VmHandle};
use super::slot::{Claim, VmSlot};
use crate::audit::{Effect, Resource};
use crate::error::{CallError, CreateVmError, ReleaseError};
use crate::hypervisor::Hyp;
use crate::outcome::{Outcome, decided};
use crate::state::RunState;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Creates a VM of a fixed kind in the first free slot; "full" only
    /// when every slot is live or retired (a slot retires when its
    /// generation is spent, so no handle ever names two VMs).
    pub fn create_vm(&self, kind: VmKind) -> Result<VmHandle, CreateVmError> {
        if self.cpu.get().is_none() {
            return Err(CreateVmError::NoCpuModel);
        }
        for (slot, vm) in self.vms.iter().enumerate() {
            if let Claim::Created(generation) = vm.claim(kind) {
                return Ok(VmHandle::new(generation, slot));
            }
        }
        Err(CreateVmError::Full { capacity: VMS })
    }

    /// Releases a destroyed VM's slot (and its vCPUs'): its handles become
    /// invalid.
    pub fn free_vm(&self, vm: VmHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vm.0 };
        let locked = self.lock_vm(vm).ok_or(bad)?;
        let meta = locked.slot.live(locked.generation).ok_or(bad)?;
        if !meta.destroyed() {
            return Err(ReleaseError::NotTornDown { handle: vm.0 });
        }
        locked.slot.release();
        Ok(())
    }

    /// The kind of a live VM.
    pub fn vm_kind(&self, vm: VmHandle) -> Option<VmKind> {
        let (slot, generation, _) = self.vm_slot(vm)?;
        Some(slot.live(generation)?.kind())
    }

    /// The slot and generation a VM handle names, when the slot exists
    /// (whether the VM is live is for the caller to read from the slot).
    fn vm_slot(&self, vm: VmHandle) -> Option<(&VmSlot<VCPUS>, u32, usize)> {
        let (generation, index) = vm.split()?;
        Some((self.vms.get(index)?, generation, index))
    }

    /// Looks a VM up by handle and takes its lifecycle lock (serialising
    /// `create_vcpu`, `destroy_vcpu`, `free_vm` and `vm_destroy` on it).
    /// The handle's generation is checked by the caller against the state
    /// word it reads under the lock.
    pub(crate) fn lock_vm(&self, vm: VmHandle) -> Option<LockedVm<'_, VCPUS>> {
        let (slot, generation, index) = self.vm_slot(vm)?;
        let guard = slot.lifecycle.lock();
        Some(LockedVm {
            slot,
            generation,
            index,
            _lifecycle: guard,
        })
    }

    /// `vm_destroy`: asks the gate (kind, the VM's most advanced vCPU
    /// phase), then moves every vCPU of the VM to `teardown`.
    pub fn vm_destroy(&self, vm: VmHandle) -> Outcome {
        let call = PvCall::VmDestroy;
        let outcome = self.vm_destroy_inner(vm);
        self.account(call, vm.0, &outcome);
        outcome
    }

    fn vm_destroy_inner(&self, vm: VmHandle) -> Outcome {
        let call = PvCall::VmDestroy;
        let bad = Outcome::failed(
            call,
            CallError::BadHandle { handle: vm.0 },
            None,
            Resource::Call,
        );
        let Some(locked) = self.lock_vm(vm) else {
            return bad;
        };
        let (slot_ref, generation) = (locked.slot, locked.generation);
        // Decided on one reading of the state word and recorded with a
        // compare-exchange on it; the word moves under us at most once (a
        // vCPU's first run), so this loop runs at most twice.
        loop {
            let Some(meta) = slot_ref.live(generation) else {
                return bad;
            };
            let phase = meta.phase();
            let d = decide_pv(&self.policy, meta.kind(), phase, call);
            let denied = || CallError::Denied {
                call,
                kind: meta.kind(),
                phase,
            };
            if let Err(outcome) = decided(call, &d, Rule::pv_constraint, || Resource::Call, denied)
            {
                return outcome;
            }
            // Every vCPU is in `teardown` from here: each one's next
            // lookup moves it there (see `lock_vcpu`).
            if !meta.destroyed() && !slot_ref.destroy(meta, generation) {
                continue;
            }
            return Outcome::new(call, Effect::Allow, d.rule.map(|r| r.id), Resource::Call);
        }
    }
}

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// `vm_finalize`: asks the gate (kind, the VM's most advanced vCPU
    /// phase), then, as pKVM-IA `pkvm_vm_finalize`: protected VMs only
    /// (-EINVAL), once (-EBUSY); a pvmfw load address needs a pvmfw image
    /// that fits below 2^64 there (`!pvmfw_present || U64_MAX - addr <
    /// pvmfw_size` is -EINVAL; pKVM-IA asks no alignment); then the boot
    /// vCPU (index 0) becomes runnable and the VM is marked finalized.
    /// Serialised with the other lifecycle writers on the VM's lifecycle
    /// lock; takes the boot vCPU's lock under it, as `create_vcpu` does.
    pub fn vm_finalize(&self, vm: VmHandle, pvmfw: Option<u64>) -> Outcome {
        let call = PvCall::VmFinalize;
        let outcome = self.vm_finalize_inner(vm, pvmfw);
        self.account(call, vm.0, &outcome);
        outcome
    }

    fn vm_finalize_inner(&self, vm: VmHandle, pvmfw: Option<u64>) -> Outcome {
        let call = PvCall::VmFinalize;
        let bad = Outcome::failed(
            call,
            CallError::BadHandle { handle: vm.0 },
            None,
            Resource::Call,
        );
        let Some(locked) = self.lock_vm(vm) else {
            return bad;
        };
        let Some(meta) = locked.slot.live(locked.generation) else {
            return bad;
        };
        let phase = meta.phase();
        let d = decide_pv(&self.policy, meta.kind(), phase, call);
        let denied = || CallError::Denied {
            call,
            kind: meta.kind(),
            phase,
        };
        if let Err(outcome) = decided(call, &d, Rule::pv_constraint, || Resource::Call, denied) {
            return outcome;
        }
        let rule = d.rule.map(|r| r.id);
        let fail = |error| Outcome::failed(call, error, rule, Resource::Call);
        if meta.kind() != VmKind::Protected {
            return fail(CallError::NotProtected { call });
        }
        if meta.finalized() {
            return fail(CallError::AlreadyFinalized);
        }
        if let Some(addr) = pvmfw {
            let size = self.config.pvmfw_size;
            if size == 0 {
                return fail(CallError::NoPvmfw { addr });
            }
            // pKVM-IA's `U64_MAX - addr < pvmfw_size`: U64_MAX - addr is !addr.
            if !addr < size {
                return fail(CallError::PvmfwOverflow { addr, size });
            }
        }
        let boot = VcpuHandle::new(locked.generation, locked.index, 0);
        let Some(mut bsp) = self.lock_vcpu(boot) else {
            return fail(CallError::NoBootVcpu);
        };
        // Recorded first, under the lifecycle lock: nothing else can
        // finalize, destroy or free the VM meanwhile.
        if !locked.slot.finalize(locked.generation) {
            return bad;
        }
        bsp.vcpu.pvmfw_entry = pvmfw;
        bsp.vcpu.run_state = RunState::Runnable;
        Outcome::new(call, Effect::Allow, rule, Resource::Call)
    }
}

/// A VM slot found by handle, its lifecycle lock held.
pub(crate) struct LockedVm<'a, const VCPUS: usize> {
    pub(crate) slot: &'a VmSlot<VCPUS>,
    pub(crate) generation: u32,
    /// The slot's index in the VM table.
    pub(crate) index: usize,
    _lifecycle: spin::mutex::TicketMutexGuard<'a, ()>,
}
