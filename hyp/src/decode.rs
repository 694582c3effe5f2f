//! Decoding the hypercall registers ([`decode`]): total, so any register
//! values give a request or an error, and each argument is checked once,
//! into its narrow type ([`crate::args`]).

use pvgate_gate::PvCall;

use crate::abi::{
    HC_AUDIT_COUNT, HC_AUDIT_EVENT, HC_CREATE_VCPU, HC_CREATE_VM, HC_DESTROY_VCPU, HC_FREE_VM,
    HC_GET_SUPPORTED_CPUID, HC_GUEST_START_SECONDARY, HC_POLICY_DIGEST, HypercallRegs, PVMFW_NONE,
    Request,
};
use crate::args::{
    ApicMode, ExceptionVector, InterruptShadow, MaxIsr, PageTableRoot, PagingLevel, TscMultiplier,
    emulation_result,
};
use crate::call::Call;
use crate::cpu::MAX_CPUID_ENTRIES;
use crate::error::CallError;
use crate::guest::GuestCall;
use crate::state::{DescTable, Gpr, GprWrite, SegReg, Segment};
use crate::vm::handle::{VcpuHandle, VmHandle};

fn arg<T: TryFrom<u64>>(call: PvCall, what: &'static str, value: u64) -> Result<T, CallError> {
    T::try_from(value).map_err(|_| CallError::BadArgument { call, what, value })
}

fn flag(call: PvCall, what: &'static str, value: u64) -> Result<bool, CallError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(CallError::BadArgument { call, what, value }),
    }
}

/// Decodes an argument into its narrow type (`from_u64`), or names it.
fn narrow<T>(
    call: PvCall,
    what: &'static str,
    value: u64,
    from_u64: fn(u64) -> Option<T>,
) -> Result<T, CallError> {
    from_u64(value).ok_or(CallError::BadArgument { call, what, value })
}

fn seg(call: PvCall, value: u64) -> Result<SegReg, CallError> {
    SegReg::from_u64(value).ok_or(CallError::BadArgument {
        call,
        what: "segment register",
        value,
    })
}

/// Decodes registers into a request. Total: never panics.
pub fn decode(r: &HypercallRegs) -> Result<Request, CallError> {
    match r.rax {
        HC_CREATE_VM => return Ok(Request::CreateVm(r.rbx)),
        HC_CREATE_VCPU => return Ok(Request::CreateVcpu(VmHandle(r.rbx))),
        HC_DESTROY_VCPU => return Ok(Request::DestroyVcpu(VcpuHandle(r.rbx))),
        HC_FREE_VM => return Ok(Request::FreeVm(VmHandle(r.rbx))),
        HC_AUDIT_COUNT => {
            return Ok(Request::AuditCount {
                call: r.rbx,
                effect: r.rcx,
            });
        }
        HC_AUDIT_EVENT => return Ok(Request::AuditEvent { back: r.rbx }),
        HC_POLICY_DIGEST => return Ok(Request::PolicyDigest),
        HC_GET_SUPPORTED_CPUID => return Ok(Request::SupportedCpuid(r.rbx)),
        HC_GUEST_START_SECONDARY => {
            // An APIC ID beyond 32 bits names no vCPU, as u32::MAX does
            // not: the call refuses it (-EINVAL, unknown target).
            let apic_id = u32::try_from(r.rcx).unwrap_or(u32::MAX);
            return Ok(Request::Guest {
                caller: VcpuHandle(r.rbx),
                call: GuestCall::StartSecondary {
                    apic_id,
                    start_ip: r.rdx,
                },
            });
        }
        _ => {}
    }
    let pv = PvCall::from_number(r.rax).ok_or(CallError::UnknownCall { number: r.rax })?;
    let vcpu = VcpuHandle(r.rbx);
    let (a, b, c, d, e) = (r.rcx, r.rdx, r.rsi, r.rdi, r.r8);
    let call = match pv {
        PvCall::VmDestroy => return Ok(Request::VmDestroy(VmHandle(r.rbx))),
        PvCall::VmFinalize => {
            return Ok(Request::VmFinalize {
                vm: VmHandle(r.rbx),
                pvmfw: (a != PVMFW_NONE).then_some(a),
            });
        }
        PvCall::VcpuAfterSetCpuid => {
            if a > MAX_CPUID_ENTRIES as u64 {
                return Err(CallError::CpuidTooLarge { count: a });
            }
            return Ok(Request::SetCpuid { vcpu, count: a });
        }
        PvCall::EnableNmiWindow => Call::EnableNmiWindow,
        PvCall::EnableIrqWindow => Call::EnableIrqWindow,
        PvCall::InterruptAllowed => Call::InterruptAllowed {
            for_injection: flag(pv, "for-injection flag", a)?,
        },
        PvCall::NmiAllowed => Call::NmiAllowed {
            for_injection: flag(pv, "for-injection flag", a)?,
        },
        PvCall::GetNmiMask => Call::GetNmiMask,
        PvCall::InjectIrq => Call::InjectIrq {
            vector: arg(pv, "vector", a)?,
            soft: flag(pv, "soft flag", b)?,
        },
        PvCall::InjectIrqIfAllowed => Call::InjectIrqIfAllowed {
            vector: arg(pv, "vector", a)?,
            soft: flag(pv, "soft flag", b)?,
        },
        PvCall::InjectNmi => Call::InjectNmi,
        PvCall::CancelInjection => Call::CancelInjection,
        PvCall::UpdateCr8Intercept => Call::UpdateCr8Intercept { tpr: a, max_irr: b },
        PvCall::RefreshApicvExecCtrl => Call::RefreshApicvExecCtrl {
            active: flag(pv, "apicv active flag", a)?,
        },
        PvCall::LoadEoiExitmap => Call::LoadEoiExitmap {
            bitmap: [a, b, c, d],
        },
        PvCall::HwapicIsrUpdate => Call::HwapicIsrUpdate {
            max_isr: narrow(pv, "max isr (a vector or -1)", a, MaxIsr::from_u64)?,
        },
        PvCall::HwapicIrrUpdate => Call::HwapicIrrUpdate { max_irr: a },
        PvCall::WriteTscOffset => Call::WriteTscOffset(a),
        PvCall::WriteTscMultiplier => {
            Call::WriteTscMultiplier(narrow(pv, "tsc multiplier", a, TscMultiplier::new)?)
        }
        PvCall::SetupMce => Call::SetupMce { mcg_cap: a },
        PvCall::VcpuRun => Call::VcpuRun,
        PvCall::CompleteEmulatedMsr => Call::CompleteEmulatedMsr {
            error: narrow(pv, "emulation result (an int)", a, emulation_result)?,
        },
        PvCall::ProtectedApicHasInterrupt => Call::ProtectedApicHasInterrupt,
        PvCall::SetEfer => Call::SetEfer(a),
        PvCall::SetMsr => Call::SetMsr {
            index: arg(pv, "msr index", a)?,
            value: b,
        },
        PvCall::GetMsr => Call::GetMsr {
            index: arg(pv, "msr index", a)?,
        },
        PvCall::SetCr0 => Call::SetCr0(a),
        PvCall::SetCr4 => Call::SetCr4(a),
        PvCall::SetRflags => Call::SetRflags(a),
        PvCall::GetRflags => Call::GetRflags,
        PvCall::SetSegment => Call::SetSegment {
            seg: seg(pv, a)?,
            segment: Segment {
                selector: arg(pv, "selector", b)?,
                base: c,
                limit: arg(pv, "limit", d)?,
                ar: arg(pv, "access rights", e)?,
            },
        },
        PvCall::GetSegment => Call::GetSegment(seg(pv, a)?),
        PvCall::GetSegmentBase => Call::GetSegmentBase(seg(pv, a)?),
        PvCall::SetIdt => Call::SetIdt(DescTable {
            base: a,
            limit: arg(pv, "idt limit", b)?,
        }),
        PvCall::GetIdt => Call::GetIdt,
        PvCall::SetGdt => Call::SetGdt(DescTable {
            base: a,
            limit: arg(pv, "gdt limit", b)?,
        }),
        PvCall::GetGdt => Call::GetGdt,
        PvCall::FlushTlbAll => Call::FlushTlbAll,
        PvCall::FlushTlbCurrent => Call::FlushTlbCurrent,
        PvCall::FlushTlbGva => Call::FlushTlbGva { gva: a },
        PvCall::FlushTlbGuest => Call::FlushTlbGuest,
        PvCall::VcpuAddFpstate => Call::VcpuAddFpstate { size: a },
        PvCall::LoadMmuPgd => Call::LoadMmuPgd {
            root: narrow(
                pv,
                "page-table root (not page aligned)",
                a,
                PageTableRoot::from_u64,
            )?,
            level: narrow(pv, "paging level", b, PagingLevel::from_u64)?,
        },
        PvCall::SetRegs => {
            // RCX = first register | count << 8 (1..=4); RDX, RSI, RDI, R8
            // the values of `count` consecutive registers.
            let first = a & 0xff;
            let count = a >> 8;
            if a >> 16 != 0
                || !(1..=4).contains(&count)
                || first.saturating_add(count) > Gpr::ALL.len() as u64
            {
                return Err(CallError::BadArgument {
                    call: pv,
                    what: "register window (first | count << 8)",
                    value: a,
                });
            }
            let mut w = GprWrite::default();
            for (i, value) in [b, c, d, e].into_iter().take(count as usize).enumerate() {
                if let Some(reg) = Gpr::from_u64(first.saturating_add(i as u64)) {
                    w = w.with(reg, value);
                }
            }
            Call::SetRegs(w)
        }
        PvCall::SetDr7 => Call::SetDr7(a),
        PvCall::CacheReg => Call::CacheReg(Gpr::from_u64(a).ok_or(CallError::BadArgument {
            call: pv,
            what: "register",
            value: a,
        })?),
        PvCall::SetInterruptShadow => Call::SetInterruptShadow(narrow(
            pv,
            "interrupt shadow",
            a,
            InterruptShadow::from_u64,
        )?),
        PvCall::GetInterruptShadow => Call::GetInterruptShadow,
        PvCall::InjectException => Call::InjectException {
            vector: narrow(pv, "exception vector", a, ExceptionVector::from_u64)?,
            error_code: if flag(pv, "has-error-code flag", b)? {
                Some(arg(pv, "error code", c)?)
            } else {
                None
            },
        },
        PvCall::SetNmiMask => Call::SetNmiMask(flag(pv, "nmi mask", a)?),
        PvCall::UpdateExceptionBitmap => {
            Call::UpdateExceptionBitmap(arg(pv, "exception bitmap", a)?)
        }
        PvCall::VcpuReset => Call::VcpuReset,
        PvCall::SetVirtualApicMode => {
            Call::SetVirtualApicMode(narrow(pv, "apic mode", a, ApicMode::from_u64)?)
        }
        PvCall::DeliverSipiVector => Call::DeliverSipiVector {
            vector: arg(pv, "sipi vector", a)?,
        },
    };
    Ok(Request::Pv { vcpu, call })
}
