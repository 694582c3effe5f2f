//! Settings of the hypervisor that are not policy ([`HypConfig`]).

use crate::state::RESET_RIP;

/// Settings of the hypervisor that are not policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypConfig {
    /// RIP the boot vCPU (index 0) of a protected VM is given at first run:
    /// the hypervisor, not the VMM, chooses the firmware entry point.
    pub pvm_boot_rip: u64,
}

impl HypConfig {
    /// The default: the boot vCPU of a protected VM starts at the reset vector.
    pub const DEFAULT: HypConfig = HypConfig {
        pvm_boot_rip: RESET_RIP,
    };
}

impl Default for HypConfig {
    fn default() -> Self {
        HypConfig::DEFAULT
    }
}
