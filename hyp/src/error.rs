//! Errors, one enum per operation. Each message names the exact call, MSR,
//! CPUID location or bit, and each error maps to the errno the ABI returns.
//! Long because every rule a call can break is a variant here, and each
//! variant's errno and message sit in one match beside the others: a
//! reviewer checks the ABI's error surface in one place.

use core::fmt;

use pvgate_gate::{Access, Phase, PvCall, Register, VmKind};

use crate::audit::Effect;
use crate::state::{Busy, MAX_MCE_BANKS};

/// `-EPERM`: the policy refused the call.
pub const EPERM: i64 = 1;
/// `-EFAULT`: a shared buffer is too small for the count given.
pub const EFAULT: i64 = 14;
/// `-EBUSY`: the resource is in use (or not yet torn down).
pub const EBUSY: i64 = 16;
/// `-EINVAL`: unknown call, bad handle, bad argument or state.
pub const EINVAL: i64 = 22;
/// `-ENOSPC`: a fixed-capacity table is full.
pub const ENOSPC: i64 = 28;
/// `-ENOMEM`: a buffer the host gave is too small for what it must hold.
pub const ENOMEM: i64 = 12;
/// `-EOPNOTSUPP`: the call is not supported for this vCPU or machine.
pub const EOPNOTSUPP: i64 = 95;

/// Every errno the ABI returns, with its name, in one table: the audit,
/// the trace format (`errno = "EBUSY"`) and error messages name an errno
/// through it.
pub const ERRNOS: [(i64, &str); 7] = [
    (EPERM, "EPERM"),
    (ENOMEM, "ENOMEM"),
    (EFAULT, "EFAULT"),
    (EBUSY, "EBUSY"),
    (EINVAL, "EINVAL"),
    (ENOSPC, "ENOSPC"),
    (EOPNOTSUPP, "EOPNOTSUPP"),
];

// Every errno fits the audit's 7-bit field (`audit_event` output 1).
// Const evaluation checks these indices at compile time.
#[allow(clippy::indexing_slicing)]
const _: () = {
    let mut i = 0;
    while i < ERRNOS.len() {
        let errno = ERRNOS[i].0;
        assert!(errno > 0 && errno < 1 << crate::audit::AUDIT_ERRNO_BITS);
        i += 1;
    }
};

/// The name of an errno (`EPERM`, …), `None` for one the ABI never returns.
pub fn errno_name(errno: i64) -> Option<&'static str> {
    ERRNOS
        .iter()
        .find(|(n, _)| *n == errno)
        .map(|&(_, name)| name)
}

/// The errno a name (`EPERM`, …) stands for, `None` for an unknown name.
pub fn errno_from_name(name: &str) -> Option<i64> {
    ERRNOS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|&(errno, _)| errno)
}

/// Why a PV call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The ABI call number is not a PV call.
    UnknownCall {
        /// RAX as given.
        number: u64,
    },
    /// No live vCPU (or VM) has this handle.
    BadHandle {
        /// The handle as given.
        handle: u64,
    },
    /// An argument register is out of range for the call.
    BadArgument {
        /// The call.
        call: PvCall,
        /// What the argument is.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The policy denies the call for this VM kind and phase.
    Denied {
        /// The call.
        call: PvCall,
        /// The VM kind.
        kind: VmKind,
        /// The vCPU's phase.
        phase: Phase,
    },
    /// The policy denies this MSR access.
    MsrDenied {
        /// The MSR index.
        index: u32,
        /// Read or write.
        access: Access,
        /// The vCPU's phase.
        phase: Phase,
    },
    /// The written value sets bits outside the rule's write mask.
    MsrValue {
        /// The MSR index.
        index: u32,
        /// The value asked for.
        value: u64,
        /// The bits the host may set.
        write_mask: u64,
        /// The bits of `value` outside `write_mask`.
        refused: u64,
    },
    /// The vCPU's MSR store is full.
    MsrStoreFull {
        /// The MSR that did not fit.
        index: u32,
    },
    /// `reject` mode: the host asked for CPUID bits it may not control.
    CpuidRejected {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
        /// The register.
        reg: Register,
        /// The host's value.
        host: u32,
        /// The value the policy gives.
        effective: u32,
    },
    /// After the first run, a new CPUID table must equal the current one.
    CpuidChanged {
        /// The first leaf that differs.
        leaf: u32,
        /// Its subleaf.
        subleaf: u32,
    },
    /// The CPUID table (host entries plus base leaves) has too many entries.
    CpuidTooLarge {
        /// The number of entries asked for.
        count: u64,
    },
    /// The CPUID table lists a leaf/subleaf twice.
    CpuidDuplicate {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
    },
    /// The shared CPUID buffer is shorter than the count given.
    BufferTooSmall {
        /// The count given.
        count: u64,
        /// The buffer's length.
        len: usize,
    },
    /// An interrupt vector below the rule's minimum.
    VectorTooLow {
        /// The call.
        call: PvCall,
        /// The vector.
        vector: u8,
        /// The minimum the rule allows.
        min: u8,
    },
    /// A software interrupt the rule does not allow.
    SoftInterrupt {
        /// The call.
        call: PvCall,
        /// The vector.
        vector: u8,
    },
    /// The event cannot be injected now (pKVM-IA: `-EBUSY` from
    /// `pkvm_interrupt_allowed`/`pkvm_nmi_allowed` for injection).
    InjectionBusy {
        /// The call.
        call: PvCall,
        /// Why.
        reason: Busy,
    },
    /// A call that needs the hypervisor's in-kernel local APIC
    /// (`refresh_apicv_exec_ctrl`), made without one.
    NoInKernelApic {
        /// The call.
        call: PvCall,
    },
    /// `refresh_apicv_exec_ctrl` asked to activate APICv, which is
    /// disabled on this machine.
    ApicvDisabled,
    /// `hwapic_isr_update` without an in-kernel local APIC with APICv
    /// active.
    ApicvInactive,
    /// `hwapic_isr_update` on a protected APIC with a vector: its ISR is
    /// the hypervisor's, only -1 (none) is accepted.
    IsrProtected {
        /// The vector asked for.
        max_isr: u8,
    },
    /// `hwapic_isr_update` on a protected VM with an exception vector.
    IsrVectorTooLow {
        /// The vector asked for.
        max_isr: u8,
    },
    /// `protected_apic_has_interrupt` for a vCPU whose APIC is not
    /// protected.
    ApicNotProtected,
    /// `write_tsc_multiplier` on a machine without TSC scaling.
    NoTscScaling,
    /// `complete_emulated_msr` for a normal VM, whose host completes the
    /// emulation itself.
    HostCompletesEmulation,
    /// `vcpu_run` on a vCPU that cannot run (torn down).
    NotRunnable {
        /// The vCPU's phase.
        phase: Phase,
    },
    /// `vcpu_run` on a protected vCPU that is not runnable yet: the boot
    /// vCPU before `vm_finalize`, a secondary before the guest started it
    /// (pKVM-IA `pkvm_vcpu_run`: -EPERM unless `KVM_MP_STATE_RUNNABLE`).
    NotStarted {
        /// The vCPU's index in its VM (0 = the boot vCPU).
        index: usize,
    },
    /// `vm_finalize` on a VM already finalized.
    AlreadyFinalized,
    /// `vm_finalize` of a VM that has no boot vCPU (index 0) to make runnable.
    NoBootVcpu,
    /// `vm_finalize` with a pvmfw load address, but the hypervisor holds no
    /// pvmfw image.
    NoPvmfw {
        /// The load address asked for.
        addr: u64,
    },
    /// `vm_finalize`: the pvmfw image does not fit below 2^64 at the load
    /// address.
    PvmfwOverflow {
        /// The load address asked for.
        addr: u64,
        /// The image size.
        size: u64,
    },
    /// A call for protected VMs only, made for a normal VM.
    NotProtected {
        /// The call.
        call: PvCall,
    },
    /// The FPU state buffer is too small or too large.
    FpstateSize {
        /// The size given.
        size: u64,
        /// The smallest size accepted (the model's XSAVE area).
        min: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// MCG_CAP asks for no banks or more than [`MAX_MCE_BANKS`].
    McgCapBanks {
        /// Banks asked for.
        asked: u64,
    },
    /// MCG_CAP asks for capability flags beyond MCG_CTL_P | MCG_SER_P.
    McgCapFlags {
        /// The MCG_CAP asked for.
        asked: u64,
        /// The flags the hypervisor does not support.
        extra: u64,
    },
}

impl CallError {
    /// The errno the ABI returns (negated in the status).
    #[inline]
    pub const fn errno(&self) -> i64 {
        match self {
            CallError::Denied { .. }
            | CallError::MsrDenied { .. }
            | CallError::MsrValue { .. }
            | CallError::CpuidRejected { .. }
            | CallError::VectorTooLow { .. }
            | CallError::SoftInterrupt { .. }
            | CallError::IsrProtected { .. }
            | CallError::IsrVectorTooLow { .. } => EPERM,
            CallError::NotStarted { .. } => EPERM,
            CallError::InjectionBusy { .. } | CallError::AlreadyFinalized => EBUSY,
            CallError::ApicvInactive
            | CallError::ApicNotProtected
            | CallError::NoTscScaling
            | CallError::HostCompletesEmulation => EOPNOTSUPP,
            CallError::MsrStoreFull { .. } => ENOSPC,
            CallError::BufferTooSmall { .. } => EFAULT,
            CallError::UnknownCall { .. }
            | CallError::BadHandle { .. }
            | CallError::BadArgument { .. }
            | CallError::CpuidChanged { .. }
            | CallError::CpuidTooLarge { .. }
            | CallError::CpuidDuplicate { .. }
            | CallError::NotRunnable { .. }
            | CallError::NoBootVcpu
            | CallError::NoPvmfw { .. }
            | CallError::PvmfwOverflow { .. }
            | CallError::NotProtected { .. }
            | CallError::FpstateSize { .. }
            | CallError::McgCapBanks { .. }
            | CallError::McgCapFlags { .. }
            | CallError::NoInKernelApic { .. }
            | CallError::ApicvDisabled => EINVAL,
        }
    }

    /// Whether this is a policy refusal (`deny`) or a bad request (`invalid`).
    #[inline]
    pub const fn effect(&self) -> Effect {
        // A vCPU that is not started yet is hyp's rule, not the policy's.
        if self.errno() == EPERM && !matches!(self, CallError::NotStarted { .. }) {
            Effect::Deny
        } else {
            Effect::Invalid
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CallError::UnknownCall { number } => write!(f, "unknown pv call number {number:#x}"),
            CallError::BadHandle { handle } => {
                write!(f, "no live vcpu or vm has handle {handle:#x}")
            }
            CallError::BadArgument { call, what, value } => {
                write!(f, "`{}`: {what} {value:#x} is out of range", call.name())
            }
            CallError::Denied { call, kind, phase } => write!(
                f,
                "`{}` is denied for a {} vm in phase `{}`",
                call.name(),
                kind.name(),
                phase.name()
            ),
            CallError::MsrDenied {
                index,
                access,
                phase,
            } => write!(
                f,
                "{} of msr {index:#x} is denied in phase `{}`",
                access.name(),
                phase.name()
            ),
            CallError::MsrValue {
                index,
                value,
                write_mask,
                refused,
            } => write!(
                f,
                "write of {value:#x} to msr {index:#x} sets bits {refused:#x} outside the write mask {write_mask:#x}"
            ),
            CallError::MsrStoreFull { index } => {
                write!(
                    f,
                    "msr {index:#x} does not fit: the vcpu's msr store is full"
                )
            }
            CallError::CpuidRejected {
                leaf,
                subleaf,
                reg,
                host,
                effective,
            } => write!(
                f,
                "CPUID.(EAX={leaf:#x},ECX={subleaf:#x}):{} bits {:#x} are not the host's to choose (asked {host:#010x}, policy gives {effective:#010x})",
                reg_upper(reg),
                host ^ effective
            ),
            CallError::CpuidChanged { leaf, subleaf } => write!(
                f,
                "after the first run the cpuid table must equal the current one; CPUID.(EAX={leaf:#x},ECX={subleaf:#x}) differs"
            ),
            CallError::CpuidTooLarge { count } => write!(
                f,
                "cpuid table of {count} entries (with the base leaves) exceeds {} entries",
                crate::cpu::MAX_CPUID_ENTRIES
            ),
            CallError::CpuidDuplicate { leaf, subleaf } => write!(
                f,
                "cpuid table lists CPUID.(EAX={leaf:#x},ECX={subleaf:#x}) twice"
            ),
            CallError::BufferTooSmall { count, len } => write!(
                f,
                "`vcpu_after_set_cpuid`: count {count} exceeds the shared buffer of {len} entries"
            ),
            CallError::VectorTooLow { call, vector, min } => write!(
                f,
                "`{}`: vector {vector:#x} is below the policy's minimum {min:#x}",
                call.name()
            ),
            CallError::SoftInterrupt { call, vector } => write!(
                f,
                "`{}`: software interrupt {vector:#x} is not allowed by the policy",
                call.name()
            ),
            CallError::InjectionBusy { call, reason } => {
                write!(f, "`{}`: busy: {}", call.name(), reason.text())
            }
            CallError::NoInKernelApic { call } => {
                write!(f, "`{}` needs an in-kernel local apic", call.name())
            }
            CallError::ApicvDisabled => write!(
                f,
                "`refresh_apicv_exec_ctrl`: apicv is disabled and cannot be activated"
            ),
            CallError::ApicvInactive => write!(
                f,
                "`hwapic_isr_update` needs an in-kernel local apic with apicv active"
            ),
            CallError::IsrProtected { max_isr } => write!(
                f,
                "`hwapic_isr_update`: the protected apic's isr is the hypervisor's; only -1 is accepted, not vector {max_isr:#x}"
            ),
            CallError::IsrVectorTooLow { max_isr } => write!(
                f,
                "`hwapic_isr_update`: vector {max_isr:#x} is an exception vector (below 0x20)"
            ),
            CallError::ApicNotProtected => write!(
                f,
                "`protected_apic_has_interrupt`: the vcpu's local apic is not protected"
            ),
            CallError::NoTscScaling => {
                write!(f, "`write_tsc_multiplier`: the machine has no tsc scaling")
            }
            CallError::HostCompletesEmulation => write!(
                f,
                "`complete_emulated_msr`: a normal vm's host completes the emulation itself"
            ),
            CallError::NotRunnable { phase } => {
                write!(
                    f,
                    "`vcpu_run`: the vcpu is not runnable in phase `{}`",
                    phase.name()
                )
            }
            CallError::NotStarted { index: 0 } => write!(
                f,
                "`vcpu_run`: protected vcpu 0 (the boot vcpu) is not runnable: the vm is not finalized (`vm_finalize` first)"
            ),
            CallError::NotStarted { index } => write!(
                f,
                "`vcpu_run`: protected vcpu {index} is not runnable: the guest has not started it (`start_secondary`); the host cannot"
            ),
            CallError::AlreadyFinalized => write!(f, "`vm_finalize`: the vm is already finalized"),
            CallError::NoBootVcpu => write!(
                f,
                "`vm_finalize`: the vm has no boot vcpu (index 0) to make runnable"
            ),
            CallError::NoPvmfw { addr } => write!(
                f,
                "`vm_finalize`: pvmfw load address {addr:#x} given, but the hypervisor holds no pvmfw image"
            ),
            CallError::PvmfwOverflow { addr, size } => write!(
                f,
                "`vm_finalize`: a pvmfw image of {size:#x} bytes at {addr:#x} runs past 2^64"
            ),
            CallError::NotProtected { call } => {
                write!(f, "`{}` is for protected vms only", call.name())
            }
            CallError::FpstateSize { size, min, max } => write!(
                f,
                "`vcpu_add_fpstate`: size {size:#x} is outside {min:#x}..={max:#x}"
            ),
            CallError::McgCapBanks { asked } => write!(
                f,
                "`setup_mce`: IA32_MCG_CAP[7:0] asks for {asked} banks, outside 1..={MAX_MCE_BANKS}"
            ),
            CallError::McgCapFlags { asked, extra } => write!(
                f,
                "`setup_mce`: IA32_MCG_CAP {asked:#x} sets bits {extra:#x} beyond MCG_CTL_P | MCG_SER_P"
            ),
        }
    }
}

/// Why a guest call (a call the guest makes, not the host) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestCallError {
    /// No live vCPU has the caller's handle.
    BadHandle {
        /// The handle as given.
        handle: u64,
    },
    /// The caller is not a vCPU that is running (it has not run, or its VM
    /// is being destroyed): only a running guest makes guest calls.
    CallerNotRunning {
        /// The caller's index.
        index: usize,
    },
    /// `start_secondary` is for protected VMs only (pKVM-IA: -EINVAL).
    NotProtected,
    /// `start_secondary`: the start address is not a 4 KiB page below
    /// 1 MiB (`start_ip & !0xff000 != 0`; pKVM-IA: -EFAULT).
    StartIp {
        /// The start address asked for.
        start_ip: u64,
    },
    /// `start_secondary` of the boot vCPU (APIC ID 0), which only
    /// `vm_finalize` starts (pKVM-IA: -EINVAL).
    TargetIsBoot,
    /// `start_secondary` without an in-kernel local APIC (pKVM-IA:
    /// -EOPNOTSUPP).
    NoInKernelLapic,
    /// `start_secondary` of an APIC ID no vCPU of the VM has.
    UnknownTarget {
        /// The APIC ID asked for.
        apic_id: u32,
    },
    /// `start_secondary` of a vCPU that is not UNINITIALIZED any more
    /// (pKVM-IA: -EBUSY).
    AlreadyStarted {
        /// The APIC ID asked for.
        apic_id: u32,
    },
}

impl GuestCallError {
    /// The errno the guest gets (negated in the status).
    pub const fn errno(&self) -> i64 {
        match self {
            GuestCallError::CallerNotRunning { .. } => EPERM,
            GuestCallError::StartIp { .. } => EFAULT,
            GuestCallError::NoInKernelLapic => EOPNOTSUPP,
            GuestCallError::AlreadyStarted { .. } => EBUSY,
            GuestCallError::BadHandle { .. }
            | GuestCallError::NotProtected
            | GuestCallError::TargetIsBoot
            | GuestCallError::UnknownTarget { .. } => EINVAL,
        }
    }
}

impl fmt::Display for GuestCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GuestCallError::BadHandle { handle } => {
                write!(f, "`start_secondary`: no live vcpu has handle {handle:#x}")
            }
            GuestCallError::CallerNotRunning { index } => write!(
                f,
                "`start_secondary`: the caller, vcpu {index}, is not running"
            ),
            GuestCallError::NotProtected => {
                write!(f, "`start_secondary` is for protected vms only")
            }
            GuestCallError::StartIp { start_ip } => write!(
                f,
                "`start_secondary`: start address {start_ip:#x} is not a 4 KiB page below 1 MiB (bits {:#x} outside 0xff000)",
                start_ip & !0xff000
            ),
            GuestCallError::TargetIsBoot => write!(
                f,
                "`start_secondary`: APIC ID 0 is the boot vcpu, started by `vm_finalize`"
            ),
            GuestCallError::NoInKernelLapic => write!(
                f,
                "`start_secondary` needs an in-kernel local APIC, which this hypervisor does not have"
            ),
            GuestCallError::UnknownTarget { apic_id } => write!(
                f,
                "`start_secondary`: no vcpu of the vm has APIC ID {apic_id}"
            ),
            GuestCallError::AlreadyStarted { apic_id } => write!(
                f,
                "`start_secondary`: the vcpu with APIC ID {apic_id} is not UNINITIALIZED (already started)"
            ),
        }
    }
}

/// `EAX` … `EDX` (upper case, as in SDM CPUID locations).
pub const fn reg_upper(reg: Register) -> &'static str {
    match reg {
        Register::Eax => "EAX",
        Register::Ebx => "EBX",
        Register::Ecx => "ECX",
        Register::Edx => "EDX",
    }
}

/// Why `create_vm` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateVmError {
    /// The VM kind number is not `0` (protected) or `1` (normal).
    UnknownKind {
        /// The number given.
        raw: u64,
    },
    /// No CPU model has been installed.
    NoCpuModel,
    /// Every VM slot is in use.
    Full {
        /// The capacity.
        capacity: usize,
    },
}

impl CreateVmError {
    /// The errno the ABI returns.
    pub const fn errno(&self) -> i64 {
        match self {
            CreateVmError::UnknownKind { .. } | CreateVmError::NoCpuModel => EINVAL,
            CreateVmError::Full { .. } => ENOSPC,
        }
    }
}

impl fmt::Display for CreateVmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CreateVmError::UnknownKind { raw } => write!(
                f,
                "`create_vm`: vm kind {raw:#x} is neither 0 (protected) nor 1 (normal)"
            ),
            CreateVmError::NoCpuModel => write!(f, "`create_vm`: no cpu model is installed"),
            CreateVmError::Full { capacity } => {
                write!(f, "`create_vm`: all {capacity} vm slots are in use")
            }
        }
    }
}

/// Why `create_vcpu` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateVcpuError {
    /// No live VM has this handle.
    BadHandle {
        /// The handle given.
        handle: u64,
    },
    /// The VM is being destroyed.
    Destroyed {
        /// The VM handle.
        handle: u64,
    },
    /// The VM already has its maximum number of vCPUs.
    Full {
        /// The capacity.
        capacity: usize,
    },
}

impl CreateVcpuError {
    /// The errno the ABI returns.
    pub const fn errno(&self) -> i64 {
        match self {
            CreateVcpuError::BadHandle { .. } | CreateVcpuError::Destroyed { .. } => EINVAL,
            CreateVcpuError::Full { .. } => ENOSPC,
        }
    }
}

impl fmt::Display for CreateVcpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CreateVcpuError::BadHandle { handle } => {
                write!(f, "`create_vcpu`: no live vm has handle {handle:#x}")
            }
            CreateVcpuError::Destroyed { handle } => {
                write!(f, "`create_vcpu`: vm {handle:#x} is being destroyed")
            }
            CreateVcpuError::Full { capacity } => {
                write!(f, "`create_vcpu`: the vm already has {capacity} vcpus")
            }
        }
    }
}

/// Why releasing a VM or vCPU slot failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// No live VM or vCPU has this handle.
    BadHandle {
        /// The handle given.
        handle: u64,
    },
    /// The VM or vCPU is not torn down yet (call `vm_destroy` first).
    NotTornDown {
        /// The handle given.
        handle: u64,
    },
}

impl ReleaseError {
    /// The errno the ABI returns.
    pub const fn errno(&self) -> i64 {
        match self {
            ReleaseError::BadHandle { .. } => EINVAL,
            ReleaseError::NotTornDown { .. } => EBUSY,
        }
    }
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReleaseError::BadHandle { handle } => {
                write!(f, "no live vm or vcpu has handle {handle:#x}")
            }
            ReleaseError::NotTornDown { handle } => write!(
                f,
                "{handle:#x} is not torn down: `vm_destroy` must come first"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_has_one_name_and_back() {
        for (errno, name) in ERRNOS {
            assert_eq!(errno_name(errno), Some(name));
            assert_eq!(errno_from_name(name), Some(errno));
        }
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_from_name("eperm"), None);
        assert_eq!(errno_from_name("ENOENT"), None);
    }
}
