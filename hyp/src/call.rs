//! A decoded PV call on a vCPU, with its arguments.

use pvgate_gate::PvCall;

use crate::args::{
    ApicMode, ExceptionVector, InterruptShadow, PageTableRoot, PagingLevel, TscMultiplier,
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
    /// `interrupt_allowed`: output 0 is 1 when an interrupt could be injected.
    InterruptAllowed,
    /// `nmi_allowed`: output 0 is 1 when an NMI could be injected.
    NmiAllowed,
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
        /// Highest in-service vector.
        max_isr: u64,
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
    /// `complete_emulated_msr`.
    CompleteEmulatedMsr {
        /// Inject #GP for the emulated access.
        error: bool,
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
    pub const fn pv(&self) -> PvCall {
        match self {
            Call::EnableNmiWindow => PvCall::EnableNmiWindow,
            Call::EnableIrqWindow => PvCall::EnableIrqWindow,
            Call::InterruptAllowed => PvCall::InterruptAllowed,
            Call::NmiAllowed => PvCall::NmiAllowed,
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

    /// A call of this kind with harmless, always-valid arguments (used by
    /// conformance tests to ask every call once, and by trace replay for
    /// arguments a trace does not name); `None` for `vm_destroy` and
    /// `vcpu_after_set_cpuid`, which are not a [`Call`]. Test data: only
    /// with the `examples` feature, never in the image.
    #[cfg(feature = "examples")]
    pub fn example(pv: PvCall) -> Option<Call> {
        Some(match pv {
            PvCall::EnableNmiWindow => Call::EnableNmiWindow,
            PvCall::EnableIrqWindow => Call::EnableIrqWindow,
            PvCall::InterruptAllowed => Call::InterruptAllowed,
            PvCall::NmiAllowed => Call::NmiAllowed,
            PvCall::GetNmiMask => Call::GetNmiMask,
            PvCall::InjectIrq => Call::InjectIrq {
                vector: 0x30,
                soft: false,
            },
            PvCall::InjectNmi => Call::InjectNmi,
            PvCall::CancelInjection => Call::CancelInjection,
            PvCall::UpdateCr8Intercept => Call::UpdateCr8Intercept { tpr: 0, max_irr: 0 },
            PvCall::RefreshApicvExecCtrl => Call::RefreshApicvExecCtrl { active: true },
            PvCall::LoadEoiExitmap => Call::LoadEoiExitmap {
                bitmap: [1, 0, 0, 0],
            },
            PvCall::HwapicIsrUpdate => Call::HwapicIsrUpdate { max_isr: 0x30 },
            PvCall::WriteTscOffset => Call::WriteTscOffset(0x1000),
            PvCall::WriteTscMultiplier => Call::WriteTscMultiplier(TscMultiplier::new(1 << 48)?),
            PvCall::SetupMce => Call::SetupMce { mcg_cap: 0x1 },
            PvCall::VcpuRun => Call::VcpuRun,
            PvCall::CompleteEmulatedMsr => Call::CompleteEmulatedMsr { error: false },
            PvCall::ProtectedApicHasInterrupt => Call::ProtectedApicHasInterrupt,
            PvCall::SetEfer => Call::SetEfer(0x500),
            PvCall::SetMsr => Call::SetMsr {
                index: 0x2ff,
                value: 0x806,
            },
            PvCall::GetMsr => Call::GetMsr { index: 0x2ff },
            PvCall::SetCr0 => Call::SetCr0(0x8000_0011),
            PvCall::SetCr4 => Call::SetCr4(0x20),
            PvCall::SetRflags => Call::SetRflags(0x202),
            PvCall::GetRflags => Call::GetRflags,
            PvCall::SetSegment => Call::SetSegment {
                seg: SegReg::Ds,
                segment: Segment {
                    selector: 0x18,
                    base: 0,
                    limit: 0xffff_ffff,
                    ar: 0xc093,
                },
            },
            PvCall::GetSegment => Call::GetSegment(SegReg::Cs),
            PvCall::GetSegmentBase => Call::GetSegmentBase(SegReg::Cs),
            PvCall::SetIdt => Call::SetIdt(DescTable {
                base: 0x1528,
                limit: 7,
            }),
            PvCall::GetIdt => Call::GetIdt,
            PvCall::SetGdt => Call::SetGdt(DescTable {
                base: 0x1500,
                limit: 0x27,
            }),
            PvCall::GetGdt => Call::GetGdt,
            PvCall::FlushTlbAll => Call::FlushTlbAll,
            PvCall::FlushTlbCurrent => Call::FlushTlbCurrent,
            PvCall::FlushTlbGva => Call::FlushTlbGva { gva: 0x1000 },
            PvCall::FlushTlbGuest => Call::FlushTlbGuest,
            PvCall::VcpuAddFpstate => Call::VcpuAddFpstate { size: 0x3000 },
            PvCall::LoadMmuPgd => Call::LoadMmuPgd {
                root: PageTableRoot::from_u64(0x9000)?,
                level: PagingLevel::Four,
            },
            PvCall::SetRegs => Call::SetRegs(GprWrite::default().with(Gpr::Rsp, 0x8000)),
            PvCall::SetDr7 => Call::SetDr7(0x401),
            PvCall::CacheReg => Call::CacheReg(Gpr::Rsp),
            PvCall::SetInterruptShadow => Call::SetInterruptShadow(InterruptShadow::from_u64(1)?),
            PvCall::GetInterruptShadow => Call::GetInterruptShadow,
            PvCall::InjectException => Call::InjectException {
                vector: ExceptionVector::from_u64(13)?,
                error_code: Some(0),
            },
            PvCall::SetNmiMask => Call::SetNmiMask(true),
            PvCall::UpdateExceptionBitmap => Call::UpdateExceptionBitmap(1 << 14),
            PvCall::VcpuReset => Call::VcpuReset,
            PvCall::SetVirtualApicMode => Call::SetVirtualApicMode(ApicMode::from_u64(2)?),
            PvCall::HwapicIrrUpdate => Call::HwapicIrrUpdate { max_irr: 0x30 },
            PvCall::DeliverSipiVector => Call::DeliverSipiVector { vector: 0x9 },
            PvCall::InjectIrqIfAllowed => Call::InjectIrqIfAllowed {
                vector: 0x31,
                soft: false,
            },
            PvCall::VmDestroy | PvCall::VcpuAfterSetCpuid => return None,
        })
    }
}
