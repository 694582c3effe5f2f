//! The VM and vCPU lifecycle: creating and releasing VMs and vCPUs,
//! `vm_destroy` (the move to `teardown`), and looking a vCPU up by handle.

use pvgate_gate::{Phase, Policy, PvCall, Rule, VmKind, decide_pv};

use super::cpuid::supported_cpuid;
use super::handle::{VcpuHandle, VmHandle};
use super::outcome::{Outcome, decided};
use super::slot::{Claim, VmMeta, VmSlot};
use super::table::Hyp;
use crate::audit::{Effect, Resource};
use crate::error::{CallError, CreateVcpuError, CreateVmError, ReleaseError};
use crate::state::{Gpr, RESET_MSRS, VcpuState};

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

    /// Creates a vCPU in a VM, in phase `setup`, at architectural reset,
    /// with the supported CPUID table for the VM's kind.
    pub fn create_vcpu(&self, vm: VmHandle) -> Result<VcpuHandle, CreateVcpuError> {
        let bad = CreateVcpuError::BadHandle { handle: vm.0 };
        let locked = self.lock_vm(vm).ok_or(bad)?;
        let (slot_ref, generation) = (locked.slot, locked.generation);
        let meta = slot_ref.live(generation).ok_or(bad)?;
        if meta.destroyed {
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
            v.cpuid = supported_cpuid(&self.policy, cpu, meta.kind);
            // RDX at reset holds the processor signature (CPUID.1:EAX).
            v.set_gpr(Gpr::Rdx, u64::from(cpu.base_entry(1, 0).eax));
        }
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
        if !locked.meta.destroyed {
            return Err(ReleaseError::NotTornDown { handle: vcpu.0 });
        }
        locked_vm.slot.remove_vcpu(locked.index);
        Ok(())
    }

    /// Releases a destroyed VM's slot (and its vCPUs'): its handles become
    /// invalid.
    pub fn free_vm(&self, vm: VmHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vm.0 };
        let locked = self.lock_vm(vm).ok_or(bad)?;
        let meta = locked.slot.live(locked.generation).ok_or(bad)?;
        if !meta.destroyed {
            return Err(ReleaseError::NotTornDown { handle: vm.0 });
        }
        locked.slot.release();
        Ok(())
    }

    /// The kind of a live VM.
    pub fn vm_kind(&self, vm: VmHandle) -> Option<VmKind> {
        let (slot, generation, _) = self.vm_slot(vm)?;
        Some(slot.live(generation)?.kind)
    }

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
    fn lock_vm(&self, vm: VmHandle) -> Option<LockedVm<'_, VCPUS>> {
        let (slot, generation, index) = self.vm_slot(vm)?;
        let guard = slot.lifecycle.lock();
        Some(LockedVm {
            slot,
            generation,
            index,
            _lifecycle: guard,
        })
    }

    /// Looks a vCPU up by handle and takes its lock: `None` unless its VM
    /// is live, of the handle's generation, and has the vCPU, checked
    /// again under the lock (so no call acts on a vCPU of a freed or
    /// recreated VM). A vCPU of a destroyed VM is moved to `teardown`
    /// here, so `vm_destroy` never waits for a vCPU lock.
    pub(super) fn lock_vcpu(&self, vcpu: VcpuHandle) -> Option<LockedVcpu<'_, VCPUS>> {
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot)?;
        let cell = slot_ref.vcpus.get(index)?;
        // Lock-free first look: a dead handle never touches a vCPU lock.
        slot_ref.holds(generation, index)?;
        let mut v = cell.lock();
        let meta = slot_ref.holds(generation, index)?;
        if meta.destroyed {
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
            let d = decide_pv(&self.policy, meta.kind, phase, call);
            let denied = || CallError::Denied {
                call,
                kind: meta.kind,
                phase,
            };
            if let Err(outcome) = decided(call, &d, Rule::pv_constraint, Resource::Call, denied) {
                return outcome;
            }
            // Every vCPU is in `teardown` from here: each one's next
            // lookup moves it there (see `lock_vcpu`).
            if !meta.destroyed && !slot_ref.destroy(meta, generation) {
                continue;
            }
            return Outcome::new(call, Effect::Allow, d.rule.map(|r| r.id), Resource::Call);
        }
    }
}

/// A vCPU found by handle, its lock held, and what its VM's state word
/// said under that lock.
pub(super) struct LockedVcpu<'a, const VCPUS: usize> {
    pub(super) slot: &'a VmSlot<VCPUS>,
    pub(super) generation: u32,
    pub(super) index: usize,
    pub(super) meta: VmMeta,
    pub(super) vcpu: spin::MutexGuard<'a, VcpuState>,
}

/// A VM slot found by handle, its lifecycle lock held.
struct LockedVm<'a, const VCPUS: usize> {
    slot: &'a VmSlot<VCPUS>,
    generation: u32,
    /// The slot's index in the VM table.
    index: usize,
    _lifecycle: spin::mutex::TicketMutexGuard<'a, ()>,
}
