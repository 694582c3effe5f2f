//! Guest calls: what a guest asks of the hypervisor itself, on a vCPU it
//! runs (a VMCALL exit of the guest, not a host PV call). The gate does
//! not decide them — the host's policy has no say over what a protected
//! guest asks — hyp's own rules do, as pKVM-IA's guest hypercall handlers.
//! The one guest call is `start_secondary` (pKVM-IA
//! `pkvm_start_secondary_vcpu`): a protected guest starts its own
//! secondary vCPUs; the host cannot.
//!
//! APIC IDs: a vCPU's APIC ID is its index in its VM (vCPU 0, the boot
//! vCPU, has APIC ID 0), as crosvm numbers them.

use pvgate_gate::{Phase, Policy, VmKind};

use crate::audit::Effect;
use crate::error::GuestCallError;
pub use crate::guest_call::{GuestCall, START_IP_MASK};
use crate::hypervisor::Hyp;
use crate::state::RunState;
use crate::vm::handle::VcpuHandle;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Carries out a guest call made on `caller` (a vCPU that is running),
    /// and counts it in the audit's guest counters.
    pub fn guest_call(&self, caller: VcpuHandle, call: GuestCall) -> Result<(), GuestCallError> {
        let result = match call {
            GuestCall::StartSecondary { apic_id, start_ip } => {
                self.start_secondary(caller, apic_id, start_ip)
            }
        };
        let effect = if result.is_ok() {
            Effect::Allow
        } else {
            Effect::Invalid
        };
        self.audit.count_guest(call, effect);
        result
    }

    /// `start_secondary`, with pKVM-IA `pkvm_start_secondary_vcpu`'s
    /// checks: a protected VM (-EINVAL), a start address that is a 4 KiB
    /// page below 1 MiB (-EFAULT), not the boot vCPU (-EINVAL), an
    /// in-kernel local APIC (-EOPNOTSUPP), a vCPU with that APIC ID
    /// (-EINVAL) that is still UNINITIALIZED (-EBUSY). Then the target
    /// keeps the SIPI vector and becomes runnable. The caller's lock is
    /// released before the target's is taken: never two vCPU locks.
    fn start_secondary(
        &self,
        caller: VcpuHandle,
        apic_id: u32,
        start_ip: u64,
    ) -> Result<(), GuestCallError> {
        {
            let locked = self
                .lock_vcpu(caller)
                .ok_or(GuestCallError::BadHandle { handle: caller.0 })?;
            if locked.meta.kind() != VmKind::Protected {
                return Err(GuestCallError::NotProtected);
            }
            if locked.vcpu.phase != Phase::Running {
                return Err(GuestCallError::CallerNotRunning {
                    index: locked.index,
                });
            }
        }
        if start_ip & !START_IP_MASK != 0 {
            return Err(GuestCallError::StartIp { start_ip });
        }
        if apic_id == 0 {
            return Err(GuestCallError::TargetIsBoot);
        }
        if !self.config.in_kernel_lapic {
            return Err(GuestCallError::NoInKernelLapic);
        }
        let unknown = GuestCallError::UnknownTarget { apic_id };
        let index = usize::try_from(apic_id)
            .ok()
            .filter(|&i| i < VCPUS)
            .ok_or(unknown)?;
        let mut target = self.lock_vcpu(caller.sibling(index)).ok_or(unknown)?;
        if target.vcpu.run_state != RunState::Uninitialized {
            return Err(GuestCallError::AlreadyStarted { apic_id });
        }
        // Bits 19:12 only (checked above): the vector fits a byte.
        target.vcpu.guest_sipi = Some((start_ip >> 12) as u8);
        target.vcpu.run_state = RunState::Runnable;
        Ok(())
    }
}
