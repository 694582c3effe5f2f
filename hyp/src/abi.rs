//! The hypercall ABI, modelled on pKVM-IA: RAX holds the call number,
//! RBX the handle, RCX/RDX/RSI/RDI/R8 the arguments; the status comes back
//! in RAX (0 or `-errno`) and up to four outputs in RBX/RCX/RDX/RSI.
//! Decoding is total: any register values give a request or an error.
//! Outputs are zeroed before dispatch, so an error leaks nothing.

use pvgate_gate::{Policy, PvCall, VmKind};

use crate::args::{
    ApicMode, ExceptionVector, InterruptShadow, PageTableRoot, PagingLevel, TscMultiplier,
};
use crate::audit::Effect;
use crate::call::Call;
use crate::cpu::{CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};
use crate::error::{CallError, CreateVmError, EFAULT, EINVAL, ENOSPC};
use crate::hyp::{Hyp, VcpuHandle, VmHandle};
use crate::state::{DescTable, Gpr, GprWrite, SegReg, Segment};

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
/// out 1 = call | effect << 16 | has-rule << 24 | rule << 32, out 2 = vCPU
/// handle, out 3 = resource ([`crate::Resource::encode`]).
pub const HC_AUDIT_EVENT: u64 = 0x105;
/// `policy_digest`: out 0..3 = the SHA-256 digest, big-endian 8-byte words.
pub const HC_POLICY_DIGEST: u64 = 0x106;

/// `get_supported_cpuid`: RBX = VM kind; the shared buffer receives the
/// supported CPUID table for that kind (the CPU model's base with the
/// policy's forced values: sending it unchanged is always accepted); out 0
/// = entries. `-ENOSPC` when the buffer is shorter than the table.
pub const HC_GET_SUPPORTED_CPUID: u64 = 0x107;

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
        /// The effect number ([`Effect`] order).
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
        _ => {}
    }
    let pv = PvCall::from_number(r.rax).ok_or(CallError::UnknownCall { number: r.rax })?;
    let vcpu = VcpuHandle(r.rbx);
    let (a, b, c, d, e) = (r.rcx, r.rdx, r.rsi, r.rdi, r.r8);
    let call = match pv {
        PvCall::VmDestroy => return Ok(Request::VmDestroy(VmHandle(r.rbx))),
        PvCall::VcpuAfterSetCpuid => {
            if a > MAX_CPUID_ENTRIES as u64 {
                return Err(CallError::CpuidTooLarge { count: a });
            }
            return Ok(Request::SetCpuid { vcpu, count: a });
        }
        PvCall::EnableNmiWindow => Call::EnableNmiWindow,
        PvCall::EnableIrqWindow => Call::EnableIrqWindow,
        PvCall::InterruptAllowed => Call::InterruptAllowed,
        PvCall::NmiAllowed => Call::NmiAllowed,
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
        PvCall::HwapicIsrUpdate => Call::HwapicIsrUpdate { max_isr: a },
        PvCall::HwapicIrrUpdate => Call::HwapicIrrUpdate { max_irr: a },
        PvCall::WriteTscOffset => Call::WriteTscOffset(a),
        PvCall::WriteTscMultiplier => {
            Call::WriteTscMultiplier(narrow(pv, "tsc multiplier", a, TscMultiplier::new)?)
        }
        PvCall::SetupMce => Call::SetupMce { mcg_cap: a },
        PvCall::VcpuRun => Call::VcpuRun,
        PvCall::CompleteEmulatedMsr => Call::CompleteEmulatedMsr {
            error: flag(pv, "error flag", a)?,
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

/// The call a decode error belongs to, for the audit counters.
fn error_call(r: &HypercallRegs) -> Option<PvCall> {
    PvCall::from_number(r.rax)
}

fn fail(errno: i64) -> HypercallOut {
    HypercallOut {
        status: errno.wrapping_neg(),
        out: [0; 4],
    }
}

fn done(out: [u64; 4]) -> HypercallOut {
    HypercallOut { status: 0, out }
}

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// The hypercall entry: decodes the registers and dispatches. `shared`
    /// is the host's shared CPUID buffer (read for `vcpu_after_set_cpuid`,
    /// then overwritten with the effective or corrected table).
    pub fn hypercall(&self, regs: &HypercallRegs, shared: &mut [CpuidEntry]) -> HypercallOut {
        let request = match decode(regs) {
            Ok(r) => r,
            Err(e) => {
                // Management calls are not PV calls: no counter of their own;
                // unknown numbers count under call 0.
                if !(HC_CREATE_VM..=HC_GET_SUPPORTED_CPUID).contains(&regs.rax) {
                    self.count_invalid(error_call(regs));
                }
                return fail(e.errno());
            }
        };
        match request {
            Request::Pv { vcpu, call } => {
                let o = self.call(vcpu, call);
                HypercallOut {
                    status: o.status(),
                    out: if o.ok() { o.out } else { [0; 4] },
                }
            }
            Request::SetCpuid { vcpu, count } => {
                let n = usize::try_from(count).unwrap_or(usize::MAX);
                let Some(proposal) = shared.get(..n) else {
                    self.count_invalid(Some(PvCall::VcpuAfterSetCpuid));
                    return fail(EFAULT);
                };
                // Copy first: the host cannot change the table under us.
                let mut table = CpuidTable::new();
                for e in proposal {
                    if table.push(*e).is_err() {
                        self.count_invalid(Some(PvCall::VcpuAfterSetCpuid));
                        return fail(EINVAL);
                    }
                }
                let o = self.vcpu_after_set_cpuid(vcpu, &mut table);
                // A filtered or rejected table goes back so the host sees
                // what the policy gives; the report is in the outputs.
                for (dst, src) in shared.iter_mut().zip(table.iter()) {
                    *dst = *src;
                }
                HypercallOut {
                    status: o.status(),
                    out: o.out,
                }
            }
            Request::VmDestroy(vm) => {
                let o = self.vm_destroy(vm);
                HypercallOut {
                    status: o.status(),
                    out: [0; 4],
                }
            }
            Request::CreateVm(raw) => match VmKind::from_u64(raw)
                .ok_or(CreateVmError::UnknownKind { raw })
                .and_then(|kind| self.create_vm(kind))
            {
                Ok(h) => done([h.0, 0, 0, 0]),
                Err(e) => fail(e.errno()),
            },
            Request::CreateVcpu(vm) => match self.create_vcpu(vm) {
                Ok(h) => done([h.0, 0, 0, 0]),
                Err(e) => fail(e.errno()),
            },
            Request::DestroyVcpu(vcpu) => match self.destroy_vcpu(vcpu) {
                Ok(()) => done([0; 4]),
                Err(e) => fail(e.errno()),
            },
            Request::FreeVm(vm) => match self.free_vm(vm) {
                Ok(()) => done([0; 4]),
                Err(e) => fail(e.errno()),
            },
            Request::AuditCount { call, effect } => {
                let call = match call {
                    0 => Some(None),
                    n => PvCall::from_number(n).map(Some),
                };
                match (call, Effect::from_u64(effect)) {
                    (Some(call), Some(effect)) => {
                        done([self.audit().counter(call, effect), 0, 0, 0])
                    }
                    _ => fail(EINVAL),
                }
            }
            Request::AuditEvent { back } => match self.audit().recent(back) {
                Some(ev) => done([
                    ev.seq,
                    ev.call.number()
                        | (ev.effect as u64) << 16
                        | u64::from(ev.rule.is_some()) << 24
                        | ev.rule.map_or(0, |r| u64::from(r.0)) << 32,
                    ev.vcpu,
                    ev.resource.encode(),
                ]),
                None => fail(EINVAL),
            },
            Request::SupportedCpuid(raw) => {
                let Some(kind) = VmKind::from_u64(raw) else {
                    return fail(EINVAL);
                };
                let table = self.supported_cpuid(kind);
                let Some(dst) = shared.get_mut(..table.len()) else {
                    return fail(ENOSPC);
                };
                dst.copy_from_slice(&table);
                done([table.len() as u64, 0, 0, 0])
            }
            Request::PolicyDigest => {
                let d = self.policy().digest();
                let mut out = [0u64; 4];
                for (word, chunk) in out.iter_mut().zip(d.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    *word = u64::from_be_bytes(b);
                }
                done(out)
            }
        }
    }
}
