//! A decoded PV call on a vCPU, with its arguments.

use pvgate_gate::PvCall;

use crate::args::{
    ApicMode, ExceptionVector, InterruptShadow, MaxIsr, PageTableRoot, PagingLevel, TscMultiplier,
};
use crate::state::{DescTable, Gpr, GprWrite, SegReg, Segment};

/// One PV call on a vCPU (every call of docs/design.md §5 except the VM-level
/// `vm_destroy` and `vcpu_after_set_cpuid`, whose table has its own entry
/// point, [`crate::Hyp::vcpu_after_set_cpuid`]), with typed arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `enable_nmi_window`.
    EnableNmiWindow,
    /// `enable_irq_window`.
    EnableIrqWindow,
    /// `interrupt_allowed`: output 0 is 1 when the guest can take an
    /// interrupt; with `for_injection`, -EBUSY while an event needs
    /// reinjection, an exception or a failed MSR emulation is pending
    /// (pKVM-IA `pkvm_interrupt_allowed`).
    InterruptAllowed {
        /// The host asks in order to inject (KVM's `for_injection`).
        for_injection: bool,
    },
    /// `nmi_allowed`: output 0 is 1 when the guest can take an NMI; with
    /// `for_injection`, -EBUSY as for `interrupt_allowed` (pKVM-IA
    /// `pkvm_nmi_allowed`).
    NmiAllowed {
        /// The host asks in order to inject (KVM's `for_injection`).
        for_injection: bool,
    },
    /// `get_nmi_mask`: output 0 is the NMI mask.
    GetNmiMask,
    /// `inject_irq`.
    InjectIrq {
        /// The vector.
        vector: u8,
        /// A software interrupt (INTn).
        soft: bool,
    },
    /// `inject_nmi`.
    InjectNmi,
    /// `cancel_injection`.
    CancelInjection,
    /// `update_cr8_intercept`.
    UpdateCr8Intercept {
        /// TPR.
        tpr: u64,
        /// Highest requested vector.
        max_irr: u64,
    },
    /// `refresh_apicv_exec_ctrl`.
    RefreshApicvExecCtrl {
        /// APICv active.
        active: bool,
    },
    /// `load_eoi_exitmap`.
    LoadEoiExitmap {
        /// The 256-bit bitmap.
        bitmap: [u64; 4],
    },
    /// `hwapic_isr_update`.
    HwapicIsrUpdate {
        /// Highest in-service vector, or none (-1).
        max_isr: MaxIsr,
    },
    /// `write_tsc_offset`.
    WriteTscOffset(u64),
    /// `write_tsc_multiplier`.
    WriteTscMultiplier(TscMultiplier),
    /// `setup_mce`.
    SetupMce {
        /// IA32_MCG_CAP for the vCPU.
        mcg_cap: u64,
    },
    /// `vcpu_run`.
    VcpuRun,
    /// `complete_emulated_msr`: protected VMs only; output 0 is 1.
    CompleteEmulatedMsr {
        /// The host's emulation result (pKVM-IA's `int err`): 0 success
        /// (the next entry skips the instruction), otherwise the next entry
        /// injects #GP(0).
        error: i32,
    },
    /// `protected_apic_has_interrupt`: output 0 is 1 when an interrupt is queued.
    ProtectedApicHasInterrupt,
    /// `set_efer`.
    SetEfer(u64),
    /// `set_msr`.
    SetMsr {
        /// The MSR index.
        index: u32,
        /// The value.
        value: u64,
    },
    /// `get_msr`: output 0 is the value the host may see.
    GetMsr {
        /// The MSR index.
        index: u32,
    },
    /// `set_cr0`.
    SetCr0(u64),
    /// `set_cr4`.
    SetCr4(u64),
    /// `set_rflags`.
    SetRflags(u64),
    /// `get_rflags`: output 0.
    GetRflags,
    /// `set_segment`.
    SetSegment {
        /// Which segment.
        seg: SegReg,
        /// Its new value.
        segment: Segment,
    },
    /// `get_segment`: outputs selector, base, limit, access rights.
    GetSegment(SegReg),
    /// `get_segment_base`: output 0 is the base.
    GetSegmentBase(SegReg),
    /// `set_idt`.
    SetIdt(DescTable),
    /// `get_idt`: outputs base, limit.
    GetIdt,
    /// `set_gdt`.
    SetGdt(DescTable),
    /// `get_gdt`: outputs base, limit.
    GetGdt,
    /// `flush_tlb_all`.
    FlushTlbAll,
    /// `flush_tlb_current`.
    FlushTlbCurrent,
    /// `flush_tlb_gva`.
    FlushTlbGva {
        /// The guest virtual address.
        gva: u64,
    },
    /// `flush_tlb_guest`.
    FlushTlbGuest,
    /// `vcpu_add_fpstate`.
    VcpuAddFpstate {
        /// Size of the FPU state buffer in bytes.
        size: u64,
    },
    /// `load_mmu_pgd`.
    LoadMmuPgd {
        /// Page-table root (page aligned).
        root: PageTableRoot,
        /// Paging level (4 or 5).
        level: PagingLevel,
    },
    /// `set_regs`.
    SetRegs(GprWrite),
    /// `set_dr7`.
    SetDr7(u64),
    /// `cache_reg`: output 0 is the register.
    CacheReg(Gpr),
    /// `set_interrupt_shadow`.
    SetInterruptShadow(InterruptShadow),
    /// `get_interrupt_shadow`: output 0.
    GetInterruptShadow,
    /// `inject_exception`.
    InjectException {
        /// The exception vector (< 32).
        vector: ExceptionVector,
        /// The error code, if the exception has one.
        error_code: Option<u32>,
    },
    /// `set_nmi_mask`.
    SetNmiMask(bool),
    /// `update_exception_bitmap`.
    UpdateExceptionBitmap(u32),
    /// `vcpu_reset`.
    VcpuReset,
    /// `set_virtual_apic_mode`.
    SetVirtualApicMode(ApicMode),
    /// `hwapic_irr_update`.
    HwapicIrrUpdate {
        /// Highest requested vector.
        max_irr: u64,
    },
    /// `deliver_sipi_vector`.
    DeliverSipiVector {
        /// The SIPI vector (start page number).
        vector: u8,
    },
    /// `inject_irq_if_allowed`: output 0 is 1 when injected, 0 when the
    /// guest could not take it (an interrupt window is then requested).
    InjectIrqIfAllowed {
        /// The vector.
        vector: u8,
        /// A software interrupt.
        soft: bool,
    },
}

impl Call {
    /// The PV call this is.
    #[inline]
    pub const fn pv(&self) -> PvCall {
        match self {
            Call::EnableNmiWindow => PvCall::EnableNmiWindow,
            Call::EnableIrqWindow => PvCall::EnableIrqWindow,
            Call::InterruptAllowed { .. } => PvCall::InterruptAllowed,
            Call::NmiAllowed { .. } => PvCall::NmiAllowed,
            Call::GetNmiMask => PvCall::GetNmiMask,
            Call::InjectIrq { .. } => PvCall::InjectIrq,
            Call::InjectNmi => PvCall::InjectNmi,
            Call::CancelInjection => PvCall::CancelInjection,
            Call::UpdateCr8Intercept { .. } => PvCall::UpdateCr8Intercept,
            Call::RefreshApicvExecCtrl { .. } => PvCall::RefreshApicvExecCtrl,
            Call::LoadEoiExitmap { .. } => PvCall::LoadEoiExitmap,
            Call::HwapicIsrUpdate { .. } => PvCall::HwapicIsrUpdate,
            Call::WriteTscOffset(_) => PvCall::WriteTscOffset,
            Call::WriteTscMultiplier(_) => PvCall::WriteTscMultiplier,
            Call::SetupMce { .. } => PvCall::SetupMce,
            Call::VcpuRun => PvCall::VcpuRun,
            Call::CompleteEmulatedMsr { .. } => PvCall::CompleteEmulatedMsr,
            Call::ProtectedApicHasInterrupt => PvCall::ProtectedApicHasInterrupt,
            Call::SetEfer(_) => PvCall::SetEfer,
            Call::SetMsr { .. } => PvCall::SetMsr,
            Call::GetMsr { .. } => PvCall::GetMsr,
            Call::SetCr0(_) => PvCall::SetCr0,
            Call::SetCr4(_) => PvCall::SetCr4,
            Call::SetRflags(_) => PvCall::SetRflags,
            Call::GetRflags => PvCall::GetRflags,
            Call::SetSegment { .. } => PvCall::SetSegment,
            Call::GetSegment(_) => PvCall::GetSegment,
            Call::GetSegmentBase(_) => PvCall::GetSegmentBase,
            Call::SetIdt(_) => PvCall::SetIdt,
            Call::GetIdt => PvCall::GetIdt,
            Call::SetGdt(_) => PvCall::SetGdt,
            Call::GetGdt => PvCall::GetGdt,
            Call::FlushTlbAll => PvCall::FlushTlbAll,
            Call::FlushTlbCurrent => PvCall::FlushTlbCurrent,
            Call::FlushTlbGva { .. } => PvCall::FlushTlbGva,
            Call::FlushTlbGuest => PvCall::FlushTlbGuest,
            Call::VcpuAddFpstate { .. } => PvCall::VcpuAddFpstate,
            Call::LoadMmuPgd { .. } => PvCall::LoadMmuPgd,
            Call::SetRegs(_) => PvCall::SetRegs,
            Call::SetDr7(_) => PvCall::SetDr7,
            Call::CacheReg(_) => PvCall::CacheReg,
            Call::SetInterruptShadow(_) => PvCall::SetInterruptShadow,
            Call::GetInterruptShadow => PvCall::GetInterruptShadow,
            Call::InjectException { .. } => PvCall::InjectException,
            Call::SetNmiMask(_) => PvCall::SetNmiMask,
            Call::UpdateExceptionBitmap(_) => PvCall::UpdateExceptionBitmap,
            Call::VcpuReset => PvCall::VcpuReset,
            Call::SetVirtualApicMode(_) => PvCall::SetVirtualApicMode,
            Call::HwapicIrrUpdate { .. } => PvCall::HwapicIrrUpdate,
            Call::DeliverSipiVector { .. } => PvCall::DeliverSipiVector,
            Call::InjectIrqIfAllowed { .. } => PvCall::InjectIrqIfAllowed,
        }
    }

    /// The resource the call is about, named in the audit when the call is
    /// refused or ignored as a whole.
    #[inline]
    pub const fn resource(&self) -> crate::audit::Resource {
        use crate::audit::Resource;
        match *self {
            Call::SetMsr { index, .. } | Call::GetMsr { index } => Resource::Msr(index),
            Call::InjectIrq { vector, .. }
            | Call::InjectIrqIfAllowed { vector, .. }
            | Call::DeliverSipiVector { vector } => Resource::Vector(vector),
            _ => Resource::Call,
        }
    }
}
