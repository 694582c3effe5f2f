//! Settings of the hypervisor that are not policy ([`HypConfig`]): what
//! the machine and the hypervisor build provide, which pKVM-IA reads from
//! hardware capabilities and its own configuration.

/// The pvmfw image size of [`HypConfig::DEFAULT`]: 2 MiB.
pub const PVMFW_DEFAULT_SIZE: u64 = 0x20_0000;
use pvgate_gate::VmKind;

/// Settings of the hypervisor that are not policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypConfig {
    /// Size in bytes of the protected-VM firmware (pvmfw) image the
    /// hypervisor holds; 0 = no firmware. `vm_finalize` with a pvmfw load
    /// address needs one, and the image must fit below 2^64 at that
    /// address (pKVM-IA `pkvm_vm_finalize`: `pvmfw_present`, `pvmfw_size`).
    pub pvmfw_size: u64,
    /// VMs have an in-kernel (hypervisor-emulated) local APIC. pKVM-IA's
    /// secondary start and `refresh_apicv_exec_ctrl` need one
    /// (`lapic_in_kernel`).
    pub in_kernel_lapic: bool,
    /// APIC virtualization (APICv) is enabled on this machine; without it
    /// `refresh_apicv_exec_ctrl` may not activate it.
    pub apicv_enabled: bool,
    /// A protected VM's local APIC is protected (the hypervisor, not the
    /// host, owns its state): TPR forced after reset, `hwapic_isr_update`
    /// limited, `protected_apic_has_interrupt` served. Normal VMs never
    /// have a protected APIC.
    pub protected_apic: bool,
    /// The machine has VMX TSC scaling; without it `write_tsc_multiplier`
    /// is not supported.
    pub tsc_scaling: bool,
}

impl HypConfig {
    /// The default: a 2 MiB pvmfw image; in-kernel APIC, APICv, a protected APIC for protected VMs
    /// and TSC scaling all present (a current Intel server).
    pub const DEFAULT: HypConfig = HypConfig {
        pvmfw_size: PVMFW_DEFAULT_SIZE,
        in_kernel_lapic: true,
        apicv_enabled: true,
        protected_apic: true,
        tsc_scaling: true,
    };
}

impl HypConfig {
    /// Whether a vCPU of a VM of `kind` has a protected APIC: a protected
    /// VM on a hypervisor configured with protected APICs (pKVM-IA's
    /// `guest_apic_protected`).
    pub const fn apic_protected(&self, kind: VmKind) -> bool {
        matches!(kind, VmKind::Protected) && self.protected_apic
    }

    /// Whether a new vCPU's APICv is active: an in-kernel local APIC on a
    /// machine with APICv enabled (pKVM-IA `setup_vcpu_lapic`).
    pub const fn apicv_active_at_creation(&self) -> bool {
        self.in_kernel_lapic && self.apicv_enabled
    }
}

impl Default for HypConfig {
    fn default() -> Self {
        HypConfig::DEFAULT
    }
}
