//! Event injection: NMI and interrupt windows, the "allowed" queries
//! (with pKVM-IA's -EBUSY for injection), injecting interrupts (busy
//! first, then the call's minimum vector and soft-interrupt permission),
//! NMIs and exceptions (handing back and delivery: [`super::delivery`]),
//! the NMI mask, the interrupt shadow, the exception bitmap, and
//! SIPI delivery.

use pvgate_gate::Policy;

use super::ctx::Ctx;
use super::regs::set_segment;
use crate::args::{ExceptionVector, InterruptShadow};
use crate::audit::Resource;
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::{Busy, Gpr, SegReg, VcpuState};

/// `enable_nmi_window`.
pub(crate) fn enable_nmi_window<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    v.irq.nmi_window = true;
    ctx.ok()
}

/// `enable_irq_window`.
pub(crate) fn enable_irq_window<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    v.irq.irq_window = true;
    ctx.ok()
}

/// `interrupt_allowed`: output 0 is 1 when the guest can take an
/// interrupt. With `for_injection`, -EBUSY while an event needs
/// reinjection, an exception is pending or a failed MSR emulation is
/// pending (pKVM-IA `pkvm_interrupt_allowed`).
pub(crate) fn interrupt_allowed<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &VcpuState,
    for_injection: bool,
) -> Outcome {
    if for_injection && let Some(reason) = v.injection_busy() {
        return busy(ctx, reason);
    }
    ctx.out([u64::from(v.interrupt_allowed()), 0, 0, 0])
}

/// `nmi_allowed`: output 0 is 1 when the guest can take an NMI; with
/// `for_injection`, -EBUSY as for `interrupt_allowed` (pKVM-IA
/// `pkvm_nmi_allowed`).
pub(crate) fn nmi_allowed<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &VcpuState,
    for_injection: bool,
) -> Outcome {
    if for_injection && let Some(reason) = v.injection_busy() {
        return busy(ctx, reason);
    }
    ctx.out([u64::from(v.nmi_allowed()), 0, 0, 0])
}

/// `get_nmi_mask`: output 0 is the NMI mask.
pub(crate) fn get_nmi_mask<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    ctx.out([u64::from(v.irq.nmi_mask), 0, 0, 0])
}

/// `set_nmi_mask`.
pub(crate) fn set_nmi_mask<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: bool) -> Outcome {
    v.irq.nmi_mask = x;
    ctx.ok()
}

/// `inject_irq`: -EBUSY unless `interrupt_allowed` for injection says
/// yes (no event needing reinjection, no pending exception or MSR error,
/// RFLAGS.IF set, no shadow), then -EPERM for a vector or software
/// interrupt the policy's constraint refuses; pKVM-IA `pkvm_inject_irq`
/// checks in that order.
pub(crate) fn inject_irq<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    vector: u8,
    soft: bool,
) -> Outcome {
    let about = |o: Outcome| Outcome {
        resource: Resource::Vector(vector),
        ..o
    };
    if let Some(reason) = v.injection_busy() {
        return about(busy(ctx, reason));
    }
    if !v.interrupt_allowed() {
        return about(busy(ctx, Busy::InterruptsBlocked));
    }
    if let Err(o) = check_vector(ctx, vector, soft) {
        return o;
    }
    v.irq.pending_irq = Some(vector);
    v.irq.pending_irq_soft = soft;
    Outcome {
        resource: Resource::Vector(vector),
        ..ctx.ok()
    }
}

/// `inject_irq_if_allowed`: `interrupt_allowed` for injection and
/// `inject_irq` in one call. -EBUSY when injection is busy (as
/// `interrupt_allowed` for injection), -EPERM for a vector the policy
/// refuses (whether or not the guest could take it); otherwise output 0
/// is 1 when the interrupt was queued, or 0 when the guest blocks
/// interrupts (RFLAGS.IF = 0 or a shadow), in which case an interrupt
/// window is requested instead. Output 0 thus tells the host what
/// `interrupt_allowed` would have.
pub(crate) fn inject_irq_if_allowed<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    vector: u8,
    soft: bool,
) -> Outcome {
    if let Some(reason) = v.injection_busy() {
        return Outcome {
            resource: Resource::Vector(vector),
            ..busy(ctx, reason)
        };
    }
    if let Err(o) = check_vector(ctx, vector, soft) {
        return o;
    }
    let injected = v.interrupt_allowed();
    if injected {
        v.irq.pending_irq = Some(vector);
        v.irq.pending_irq_soft = soft;
    } else {
        // Not now: ask for an exit when the guest can take it.
        v.irq.irq_window = true;
    }
    Outcome {
        resource: Resource::Vector(vector),
        out: [u64::from(injected), 0, 0, 0],
        ..ctx.ok()
    }
}

/// `inject_nmi`: -EBUSY unless `nmi_allowed` for injection says yes (so a
/// second NMI while one waits for the guest is -EBUSY); pKVM-IA
/// `pkvm_inject_nmi`.
pub(crate) fn inject_nmi<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    if let Some(reason) = v.injection_busy() {
        return busy(ctx, reason);
    }
    if !v.nmi_allowed() {
        return busy(ctx, Busy::NmiBlocked);
    }
    v.irq.pending_nmi = true;
    ctx.ok()
}

/// `inject_exception`: the vector must be an exception (< 32).
pub(crate) fn inject_exception<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    vector: ExceptionVector,
    error_code: Option<u32>,
) -> Outcome {
    v.irq.pending_exception = Some((vector.get(), error_code));
    ctx.ok()
}

/// `protected_apic_has_interrupt`: -EOPNOTSUPP unless the vCPU has an
/// in-kernel, protected APIC (pKVM-IA
/// `pkvm_protected_apic_has_interrupt`); output 0 is 1 when an interrupt
/// is queued.
pub(crate) fn protected_apic_has_interrupt<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    if !ctx.config.in_kernel_lapic || !ctx.config.apic_protected(ctx.kind) {
        return ctx.fail(CallError::ApicNotProtected);
    }
    ctx.out([u64::from(v.irq.pending_irq.is_some()), 0, 0, 0])
}

/// `set_interrupt_shadow`: at most the two shadow bits (STI, MOV SS).
pub(crate) fn set_interrupt_shadow<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    x: InterruptShadow,
) -> Outcome {
    v.irq.interrupt_shadow = x.get();
    ctx.ok()
}

/// `get_interrupt_shadow`: output 0.
pub(crate) fn get_interrupt_shadow<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    ctx.out([u64::from(v.irq.interrupt_shadow), 0, 0, 0])
}

/// `update_exception_bitmap`.
pub(crate) fn update_exception_bitmap<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    x: u32,
) -> Outcome {
    v.exception_bitmap = x;
    ctx.ok()
}

/// `deliver_sipi_vector`: records the vector and moves the vCPU to its
/// real-mode entry.
pub(crate) fn deliver_sipi_vector<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    vector: u8,
) -> Outcome {
    v.irq.sipi_vector = Some(vector);
    sipi_entry(v, vector);
    Outcome {
        resource: Resource::Vector(vector),
        ..ctx.ok()
    }
}

/// Real-mode entry at the SIPI vector's page: CS.selector = vector << 8,
/// CS.base = vector << 12, RIP = 0.
pub(crate) fn sipi_entry(v: &mut VcpuState, vector: u8) {
    let mut cs = v.segment(SegReg::Cs);
    cs.selector = u16::from(vector) << 8;
    cs.base = u64::from(vector) << 12;
    set_segment(v, SegReg::Cs, cs);
    v.set_gpr(Gpr::Rip, 0);
}

/// -EBUSY for `ctx`'s call, naming why.
fn busy<P: Policy>(ctx: &Ctx<'_, P>, reason: Busy) -> Outcome {
    ctx.fail(CallError::InjectionBusy {
        call: ctx.call,
        reason,
    })
}

/// Checks an interrupt vector against the call's constraint: the minimum
/// vector, and whether software interrupts are allowed.
fn check_vector<P: Policy>(ctx: &Ctx<'_, P>, vector: u8, soft: bool) -> Result<(), Outcome> {
    let resource = Resource::Vector(vector);
    if vector < ctx.constraint.min_vector {
        return Err(Outcome::failed(
            ctx.call,
            CallError::VectorTooLow {
                call: ctx.call,
                vector,
                min: ctx.constraint.min_vector,
            },
            ctx.rule,
            resource,
        ));
    }
    if soft && !ctx.constraint.allow_soft {
        return Err(Outcome::failed(
            ctx.call,
            CallError::SoftInterrupt {
                call: ctx.call,
                vector,
            },
            ctx.rule,
            resource,
        ));
    }
    Ok(())
}
