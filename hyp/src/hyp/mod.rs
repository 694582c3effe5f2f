//! The hypervisor core: fixed-capacity VM and vCPU tables, the lifecycle,
//! and one handler per PV call, each asking the gate first. This module
//! only wires its parts together; each submodule has one job.

mod apic;
mod cpuid;
mod ctx;
mod dispatch;
mod events;
mod handle;
mod lifecycle;
mod mmu;
mod msr;
mod outcome;
mod regs;
mod resources;
mod run;
mod slot;
mod table;
#[cfg(test)]
mod wrap_tests;

pub use cpuid::supported_cpuid;
pub use handle::{VcpuHandle, VmHandle};
pub use outcome::Outcome;
pub use table::{Hyp, HypConfig};
