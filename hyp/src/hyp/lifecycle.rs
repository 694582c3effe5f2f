//! The VM and vCPU lifecycle: creating and releasing VMs and vCPUs,
//! `vm_destroy` (the move to `teardown`), and looking a vCPU up by handle.

use pvgate_gate::{Phase, Policy, PvCall, Verdict, VmKind, decide_pv};

use super::cpuid::supported_cpuid;
use super::handle::{VcpuHandle, VmHandle};
use super::outcome::Outcome;
use super::table::Hyp;
use crate::audit::{Effect, Resource};
use crate::error::{CallError, CreateVcpuError, CreateVmError, ReleaseError};
use crate::state::{Gpr, RESET_MSRS, VcpuState};

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Creates a VM of a fixed kind.
    pub fn create_vm(&self, kind: VmKind) -> Result<VmHandle, CreateVmError> {
        if self.cpu.get().is_none() {
            return Err(CreateVmError::NoCpuModel);
        }
        for (slot, vm) in self.vms.iter().enumerate() {
            let Some(mut meta) = vm.meta.try_write() else {
                continue;
            };
            if meta.live {
                continue;
            }
            meta.generation = meta.generation.wrapping_add(1).max(1);
            meta.live = true;
            meta.kind = kind;
            meta.destroyed = false;
            meta.present = 0;
            return Ok(VmHandle::new(meta.generation, slot));
        }
        Err(CreateVmError::Full { capacity: VMS })
    }

    /// Creates a vCPU in a VM, in phase `setup`, at architectural reset,
    /// with the supported CPUID table for the VM's kind.
    pub fn create_vcpu(&self, vm: VmHandle) -> Result<VcpuHandle, CreateVcpuError> {
        let bad = CreateVcpuError::BadHandle { handle: vm.0 };
        let (generation, slot) = vm.split().ok_or(bad)?;
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return Err(bad);
        }
        if meta.destroyed {
            return Err(CreateVcpuError::Destroyed { handle: vm.0 });
        }
        let index = (0..VCPUS)
            .find(|i| meta.present & (1u64 << i) == 0)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
        let cell = slot_ref
            .vcpus
            .get(index)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
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
        meta.present |= 1u64 << index;
        Ok(VcpuHandle::new(meta.generation, slot, index))
    }

    /// Releases a torn-down vCPU's slot.
    pub fn destroy_vcpu(&self, vcpu: VcpuHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vcpu.0 };
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live
            || meta.generation != generation
            || index >= 64
            || meta.present & (1u64 << index) == 0
        {
            return Err(bad);
        }
        let cell = slot_ref.vcpus.get(index).ok_or(bad)?;
        if cell.lock().phase != Phase::Teardown {
            return Err(ReleaseError::NotTornDown { handle: vcpu.0 });
        }
        meta.present &= !(1u64 << index);
        Ok(())
    }

    /// Releases a destroyed VM's slot (and its vCPUs'): its handles become
    /// invalid.
    pub fn free_vm(&self, vm: VmHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vm.0 };
        let (generation, slot) = vm.split().ok_or(bad)?;
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return Err(bad);
        }
        if !meta.destroyed {
            return Err(ReleaseError::NotTornDown { handle: vm.0 });
        }
        meta.live = false;
        meta.present = 0;
        Ok(())
    }

    /// The kind of a live VM.
    pub fn vm_kind(&self, vm: VmHandle) -> Option<VmKind> {
        let (generation, slot) = vm.split()?;
        let meta = *self.vms.get(slot)?.meta.read();
        (meta.live && meta.generation == generation).then_some(meta.kind)
    }

    /// Reads a vCPU's phase (the host may always know it: it is a function
    /// of the calls it made).
    pub fn phase(&self, vcpu: VcpuHandle) -> Option<Phase> {
        self.inspect(vcpu, |v| v.phase)
    }

    /// Runs `f` over a vCPU's state. For tests and diagnostics of the
    /// hypervisor itself: the host ABI has no such call.
    pub fn inspect<R>(&self, vcpu: VcpuHandle, f: impl FnOnce(&VcpuState) -> R) -> Option<R> {
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot)?;
        let meta = slot_ref.meta.read();
        if !meta.live
            || meta.generation != generation
            || index >= 64
            || meta.present & (1u64 << index) == 0
        {
            return None;
        }
        let v = slot_ref.vcpus.get(index)?.lock();
        Some(f(&v))
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
        let Some((generation, slot)) = vm.split() else {
            return bad;
        };
        let Some(slot_ref) = self.vms.get(slot) else {
            return bad;
        };
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return bad;
        }
        let mut phase = Phase::Setup;
        for (i, cell) in slot_ref.vcpus.iter().enumerate() {
            if meta.present & (1u64 << i) != 0 {
                phase = phase.max(cell.lock().phase);
            }
        }
        if meta.destroyed {
            phase = Phase::Teardown;
        }
        let d = decide_pv(&self.policy, meta.kind, phase, call);
        let rule = d.rule.map(|r| r.id);
        match d.verdict {
            Verdict::Deny => Outcome::failed(
                call,
                CallError::Denied {
                    call,
                    kind: meta.kind,
                    phase,
                },
                rule,
                Resource::Call,
            ),
            Verdict::Ignore => Outcome::new(call, Effect::Ignore, rule, Resource::Call),
            Verdict::Allow => {
                meta.destroyed = true;
                for (i, cell) in slot_ref.vcpus.iter().enumerate() {
                    if meta.present & (1u64 << i) != 0 {
                        cell.lock().advance(Phase::Teardown);
                    }
                }
                Outcome::new(call, Effect::Allow, rule, Resource::Call)
            }
        }
    }
}
