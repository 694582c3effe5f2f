//! The hypercall ABI, modelled on pKVM-IA: RAX holds the call number,
//! RBX the handle, RCX/RDX/RSI/RDI/R8 the arguments; the status comes back
//! in RAX (0 or `-errno`) and up to four outputs in RBX/RCX/RDX/RSI.
//! This module is the wire format (call numbers, registers, the decoded
//! [`Request`]); decoding is [`crate::decode`], the entry
//! [`crate::Hyp::hypercall`].

use crate::call::Call;
use crate::guest::GuestCall;
use crate::vm::handle::{VcpuHandle, VmHandle};

/// `create_vm`: RBX = VM kind (0 protected, 1 normal); out 0 = VM handle.
pub const HC_CREATE_VM: u64 = 0x100;
/// `create_vcpu`: RBX = VM handle; out 0 = vCPU handle.
pub const HC_CREATE_VCPU: u64 = 0x101;
/// `destroy_vcpu`: RBX = vCPU handle (must be torn down).
pub const HC_DESTROY_VCPU: u64 = 0x102;
/// `free_vm`: RBX = VM handle (after `vm_destroy`).
pub const HC_FREE_VM: u64 = 0x103;
/// `audit_count`: RBX = PV call number (0 = unknown calls), RCX = effect;
/// out 0 = counter.
pub const HC_AUDIT_COUNT: u64 = 0x104;
/// `audit_event`: RBX = how far back (0 = newest); out 0 = sequence number,
/// out 1 = call | effect << 16 | has-rule << 24 | errno << 25 | rule << 32
/// ([`crate::AuditEvent::encode_word`]; errno 0 for ignore and filter),
/// out 2 = vCPU handle, out 3 = resource ([`crate::Resource::encode`]).
pub const HC_AUDIT_EVENT: u64 = 0x105;
/// `policy_digest`: out 0..3 = the SHA-256 digest, big-endian 8-byte words.
pub const HC_POLICY_DIGEST: u64 = 0x106;

/// `get_supported_cpuid`: RBX = VM kind; the shared buffer receives the
/// supported CPUID table for that kind (the CPU model's base with the
/// policy's forced values: sending it unchanged is always accepted); out 0
/// = entries. `-ENOSPC` when the buffer is shorter than the table.
pub const HC_GET_SUPPORTED_CPUID: u64 = 0x107;

/// `vm_finalize` (PV call 54): RBX = VM handle, RCX = the pvmfw load
/// address, or this value for "no pvmfw" (pKVM-IA's `INVALID_GPA`).
pub const PVMFW_NONE: u64 = u64::MAX;

/// Guest call `start_secondary` (not a host PV call; not decided by the
/// policy): RBX = the calling vCPU's handle (the vCPU that made the
/// VMCALL), RCX = the target's APIC ID (u32), RDX = its start address (a
/// 4 KiB page below 1 MiB). The status is 0 or `-errno`; no outputs.
pub const HC_GUEST_START_SECONDARY: u64 = 0x200;

/// The registers a hypercall reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct HypercallRegs {
    /// Call number.
    pub rax: u64,
    /// Handle (VM or vCPU), or first argument of management calls.
    pub rbx: u64,
    /// Argument 1.
    pub rcx: u64,
    /// Argument 2.
    pub rdx: u64,
    /// Argument 3.
    pub rsi: u64,
    /// Argument 4.
    pub rdi: u64,
    /// Argument 5.
    pub r8: u64,
}

/// What a hypercall returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct HypercallOut {
    /// RAX: 0 on success, `-errno` on failure.
    pub status: i64,
    /// RBX, RCX, RDX, RSI.
    pub out: [u64; 4],
}

/// A decoded hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A PV call on a vCPU.
    Pv {
        /// The vCPU.
        vcpu: VcpuHandle,
        /// The call.
        call: Call,
    },
    /// `vcpu_after_set_cpuid` with `count` entries of the shared buffer.
    SetCpuid {
        /// The vCPU.
        vcpu: VcpuHandle,
        /// Entries in the shared buffer.
        count: u64,
    },
    /// `vm_destroy`.
    VmDestroy(VmHandle),
    /// `vm_finalize`, with the pvmfw load address (`None`: [`PVMFW_NONE`]).
    VmFinalize {
        /// The VM.
        vm: VmHandle,
        /// The pvmfw load address.
        pvmfw: Option<u64>,
    },
    /// A guest call made on `caller`.
    Guest {
        /// The calling vCPU.
        caller: VcpuHandle,
        /// The call.
        call: GuestCall,
    },
    /// [`HC_CREATE_VM`] with the raw VM kind (checked when carried out).
    CreateVm(u64),
    /// [`HC_CREATE_VCPU`].
    CreateVcpu(VmHandle),
    /// [`HC_DESTROY_VCPU`].
    DestroyVcpu(VcpuHandle),
    /// [`HC_FREE_VM`].
    FreeVm(VmHandle),
    /// [`HC_AUDIT_COUNT`] with raw arguments (checked when carried out).
    AuditCount {
        /// The PV call number (0: unknown call numbers).
        call: u64,
        /// The effect number ([`crate::Effect`] order).
        effect: u64,
    },
    /// [`HC_AUDIT_EVENT`].
    AuditEvent {
        /// How far back (0 = newest).
        back: u64,
    },
    /// [`HC_POLICY_DIGEST`].
    PolicyDigest,
    /// [`HC_GET_SUPPORTED_CPUID`] with the raw VM kind.
    SupportedCpuid(u64),
}
