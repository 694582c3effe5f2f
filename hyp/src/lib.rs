//! pvgate-hyp: the part of a protected-VM hypervisor that receives the
//! host's paravirtual (PV) calls and owns the protected vCPU state.
//!
//! Every PV call is decided by the gate first (VM kind, the vCPU's phase,
//! the call), then for MSR and CPUID calls again at the resource level
//! (MSR index and value mask, CPUID per-register control modes), and only
//! then carried out. The lifecycle phase is owned here and only moves
//! forward: `setup` at creation, `running` at the first successful
//! `vcpu_run`, `teardown` at `vm_destroy`.
//!
//! `#![no_std]`, no allocation, no panics: fixed-capacity tables
//! (`heapless`), a spin lock per vCPU, and total decoding of the ABI
//! ([`decode()`]). [`Hyp`] is generic over [`pvgate_gate::Policy`], so
//! the same code runs over the image's const tables and over the codegen
//! interpreter. `docs/hypervisor.md` documents the ABI.
#![no_std]

pub mod abi;
pub mod args;
pub mod audit;
pub mod call;
mod config;
pub mod cpu;
mod decode;
pub mod error;
#[cfg(feature = "examples")]
mod examples;
pub mod guest;
mod guest_call;
mod handlers;
mod hypercall;
mod hypervisor;
pub mod interrupts;
mod msr_store;
mod outcome;
pub mod registers;
pub mod state;
mod vcpu;
mod vm;

pub use abi::{HypercallOut, HypercallRegs, Request};
pub use audit::{AUDIT_RING_CAPACITY, Audit, AuditEvent, Effect, Resource};
pub use call::Call;
pub use config::{HypConfig, PVMFW_DEFAULT_SIZE};
pub use cpu::{CpuModel, CpuModelError, CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};
pub use decode::decode;
pub use error::{CallError, CreateVcpuError, CreateVmError, GuestCallError, ReleaseError};
pub use guest::GuestCall;
pub use handlers::cpuid::{supported_base, supported_cpuid};
pub use hypervisor::Hyp;
pub use outcome::Outcome;
pub use state::{DescTable, Gpr, GprWrite, RunState, SegReg, Segment, VcpuState};
pub use vm::handle::{VcpuHandle, VmHandle};
