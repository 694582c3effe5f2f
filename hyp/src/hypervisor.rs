//! The hypervisor: [`Hyp`] itself (policy, CPU model, the VM table, each
//! VM slot with its vCPUs, audit), its construction and read-only
//! accessors. What it does lives with what it acts on: the VM lifecycle
//! in `vm/`, a vCPU's lookup, lifecycle and calls in `vcpu/`, the call
//! handlers in `handlers/`, the hypercall entry in `abi`.

use pvgate_gate::{Policy, VmKind};

use crate::audit::Audit;
use crate::config::HypConfig;
use crate::cpu::{CpuModel, CpuidTable};
use crate::handlers::cpuid::{SupportedBases, supported_cpuid};
use crate::vm::slot::VmSlot;

/// The hypervisor core, generic over the policy (the image's const tables,
/// or the codegen interpreter) with at most `VMS` VMs of at most `VCPUS`
/// vCPUs (`VCPUS <= 64`).
///
/// Locking: a PV call reads its VM's state word without a lock and takes
/// its vCPU's lock, nothing else; calls on different vCPUs never wait for
/// each other, calls on the same vCPU are serialised. Lifecycle writers
/// (`create_vcpu`, `destroy_vcpu`, `vm_destroy`, `free_vm`) serialise on
/// their VM's lifecycle lock, which no call takes; `create_vm` claims a
/// free slot with one compare-exchange. See `docs/hypervisor.md`,
/// "Concurrency and handles".
pub struct Hyp<P, const VMS: usize = 8, const VCPUS: usize = 8> {
    pub(crate) policy: P,
    pub(crate) config: HypConfig,
    pub(crate) cpu: spin::Once<CpuModel>,
    /// The supported base per VM kind, computed once the CPU model is
    /// installed (a function of the policy and the model, both fixed by
    /// then), so `vcpu_after_set_cpuid` does not rebuild it per call.
    pub(crate) bases: spin::Once<SupportedBases>,
    pub(crate) vms: [VmSlot<VCPUS>; VMS],
    pub(crate) audit: Audit,
}

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// A hypervisor with no VMs and no CPU model yet (see
    /// [`Hyp::install_cpu_model`]); `const`, so it can be a `static`.
    pub const fn new(policy: P, config: HypConfig) -> Self {
        const { assert!(VCPUS <= 64 && VCPUS > 0 && VMS <= 0x7fff) };
        Hyp {
            policy,
            config,
            cpu: spin::Once::new(),
            bases: spin::Once::new(),
            vms: [const { VmSlot::new() }; VMS],
            audit: Audit::new(),
        }
    }

    /// A hypervisor with its CPU model installed.
    pub fn with_cpu(policy: P, cpu: CpuModel, config: HypConfig) -> Self {
        let hyp = Hyp::new(policy, config);
        hyp.install_cpu_model(cpu);
        hyp
    }

    /// Installs the CPU model; only the first call has an effect. Returns
    /// whether this call installed it.
    pub fn install_cpu_model(&self, cpu: CpuModel) -> bool {
        let mut installed = false;
        let cpu = self.cpu.call_once(|| {
            installed = true;
            cpu
        });
        self.bases
            .call_once(|| SupportedBases::of(&self.policy, cpu));
        installed
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The CPU model, once installed.
    pub fn cpu_model(&self) -> Option<&CpuModel> {
        self.cpu.get()
    }

    /// The audit counters and ring.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The CPUID table offered as supported for a VM kind (empty before a
    /// CPU model is installed).
    pub fn supported_cpuid(&self, kind: VmKind) -> CpuidTable {
        match self.cpu.get() {
            Some(cpu) => supported_cpuid(&self.policy, cpu, kind),
            None => CpuidTable::new(),
        }
    }
}

#[cfg(test)]
impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Moves a free slot's generation forward to `generation`, as that
    /// many create/free cycles would (tests of the wrap rule only).
    pub(crate) fn skip_generations_for_test(&self, slot: usize, generation: u32) {
        assert!(self.vms[slot].skip_generations(generation));
    }
}
