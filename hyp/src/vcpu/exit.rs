//! Guest exits the hypervisor forwards to the host and completes itself
//! at the next entry: an RDMSR/WRMSR of an MSR the host emulates.

use pvgate_gate::Policy;

use crate::hypervisor::Hyp;
use crate::vm::handle::VcpuHandle;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// The guest executed RDMSR or WRMSR on an MSR the host emulates, and
    /// the vCPU exited to the host (pKVM-IA forwards such exits,
    /// `pkvm_host_can_emulate_msr`). The next `vcpu_run` of a protected
    /// vCPU completes the access: #GP(0) if the host reported a failure
    /// with `complete_emulated_msr`, else RIP moves past the instruction.
    /// pvgate runs no guest code: tests and replays stand in for the guest
    /// with this call. `false` for a handle of no live vCPU.
    pub fn guest_msr_exit(&self, vcpu: VcpuHandle) -> bool {
        match self.lock_vcpu(vcpu) {
            Some(mut locked) => {
                locked.vcpu.msr_exit = true;
                true
            }
            None => false,
        }
    }
}
