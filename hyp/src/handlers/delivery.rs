//! Where queued events go: back to the host on `cancel_injection`
//! (pKVM-IA `pkvm_cancel_injection`), or into the guest at entry.

use pvgate_gate::{Policy, VmKind};

use super::ctx::Ctx;
use crate::outcome::Outcome;
use crate::state::{Delivered, VcpuState};

/// `cancel_injection` output 0 bits: what went back to the host's queue.
pub const CANCELLED_NMI: u64 = 1 << 0;
/// An interrupt went back (output 1: vector | soft << 8).
pub const CANCELLED_IRQ: u64 = 1 << 1;
/// An exception went back (output 2: vector | has-error-code << 8 |
/// error code << 32); normal VMs only.
pub const CANCELLED_EXCEPTION: u64 = 1 << 2;

/// `cancel_injection`: hands the events waiting for the next entry back
/// to the host, which re-injects them later (pKVM-IA
/// `pkvm_cancel_injection`): an NMI and an interrupt always, except a
/// protected VM's software interrupt, and an exception only for a normal
/// VM. A protected VM's software interrupt and exception stay with the
/// hypervisor, which delivers them at the next entry (they keep needing
/// reinjection). Outputs: 0 = the `CANCELLED_*` bits, 1 = the interrupt
/// (vector | soft << 8), 2 = the exception (vector | has-error-code << 8
/// | error code << 32), zero where nothing went back.
pub(crate) fn cancel_injection<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    let protected = ctx.kind == VmKind::Protected;
    let (mut handed, mut irq, mut exception) = (0u64, 0u64, 0u64);
    if v.irq.pending_nmi {
        v.irq.pending_nmi = false;
        handed |= CANCELLED_NMI;
    }
    if let Some(vector) = v.irq.pending_irq {
        let soft = v.irq.pending_irq_soft;
        if !(protected && soft) {
            v.irq.pending_irq = None;
            v.irq.pending_irq_soft = false;
            handed |= CANCELLED_IRQ;
            irq = u64::from(vector) | u64::from(soft) << 8;
        }
    }
    if !protected && let Some((vector, code)) = v.irq.pending_exception {
        v.irq.pending_exception = None;
        handed |= CANCELLED_EXCEPTION;
        exception =
            u64::from(vector) | u64::from(code.is_some()) << 8 | u64::from(code.unwrap_or(0)) << 32;
    }
    Outcome {
        out: [handed, irq, exception, 0],
        ..ctx.ok()
    }
}

/// Entering the guest: what is queued is delivered (and recorded in
/// [`crate::state::InterruptState::delivered`]), and nothing needs
/// reinjection afterwards.
pub(crate) fn deliver_at_entry(v: &mut VcpuState) {
    v.irq.delivered = Delivered {
        irq: v
            .irq
            .pending_irq
            .map(|vector| (vector, v.irq.pending_irq_soft)),
        nmi: v.irq.pending_nmi,
        exception: v.irq.pending_exception,
    };
    v.irq.pending_irq = None;
    v.irq.pending_irq_soft = false;
    v.irq.pending_nmi = false;
    v.irq.pending_exception = None;
}
