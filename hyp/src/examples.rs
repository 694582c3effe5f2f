//! Test data: a [`Call`] with harmless, always-valid arguments for every
//! PV call, compiled only with the `examples` feature (the conformance
//! tests and trace replay use it; the image leaves it out).

use pvgate_gate::PvCall;

use crate::args::{
    ApicMode, ExceptionVector, InterruptShadow, MaxIsr, PageTableRoot, PagingLevel, TscMultiplier,
};
use crate::call::Call;
use crate::state::{DescTable, Gpr, GprWrite, SegReg, Segment};

impl Call {
    /// A call of this kind with harmless, always-valid arguments (used by
    /// conformance tests to ask every call once, and by trace replay for
    /// arguments a trace does not name); `None` for `vm_destroy`, `vm_finalize` and
    /// `vcpu_after_set_cpuid`, which are not a [`Call`]. Test data: only
    /// with the `examples` feature, never in the image.
    pub fn example(pv: PvCall) -> Option<Call> {
        Some(match pv {
            PvCall::EnableNmiWindow => Call::EnableNmiWindow,
            PvCall::EnableIrqWindow => Call::EnableIrqWindow,
            PvCall::InterruptAllowed => Call::InterruptAllowed {
                for_injection: false,
            },
            PvCall::NmiAllowed => Call::NmiAllowed {
                for_injection: false,
            },
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
            PvCall::HwapicIsrUpdate => Call::HwapicIsrUpdate {
                max_isr: MaxIsr::NONE,
            },
            PvCall::WriteTscOffset => Call::WriteTscOffset(0x1000),
            PvCall::WriteTscMultiplier => Call::WriteTscMultiplier(TscMultiplier::new(1 << 48)?),
            PvCall::SetupMce => Call::SetupMce { mcg_cap: 0x1 },
            PvCall::VcpuRun => Call::VcpuRun,
            PvCall::CompleteEmulatedMsr => Call::CompleteEmulatedMsr { error: 0 },
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
            PvCall::VmDestroy | PvCall::VmFinalize | PvCall::VcpuAfterSetCpuid => return None,
        })
    }
}
