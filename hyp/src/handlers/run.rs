//! Running and resetting a vCPU: `vcpu_run` (and, at the first run, the
//! state the hypervisor forces and the move from `setup` to `running`),
//! and `vcpu_reset`.

use pvgate_gate::{Phase, Policy, VmKind};

use super::ctx::Ctx;
use super::delivery::deliver_at_entry;
use super::entry::{ap_entry, force_protected, force_protected_tpr, init, pvmfw_entry};
use super::msr::{complete_at_entry, force_first_run_bits};
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::{Gpr, RunState, VcpuState};

/// `vcpu_run`: refused in `teardown`, and for a protected vCPU that is
/// not runnable (-EPERM, pKVM-IA `pkvm_vcpu_run`); the first run forces
/// state and moves the vCPU to `running`; entering the guest delivers
/// what was queued.
pub(crate) fn vcpu_run<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    if v.phase == Phase::Teardown {
        return ctx.fail(CallError::NotRunnable { phase: v.phase });
    }
    if ctx.kind == VmKind::Protected && v.run_state != RunState::Runnable {
        return ctx.fail(CallError::NotStarted { index: ctx.index });
    }
    if v.phase == Phase::Setup {
        first_run(ctx, v);
    }
    v.runs = v.runs.wrapping_add(1);
    // The hypervisor completes an emulated MSR access, then entering the
    // guest delivers what was queued.
    complete_at_entry(ctx, v);
    deliver_at_entry(v);
    ctx.ok()
}

/// `vcpu_reset`: architectural state back to reset.
pub(crate) fn vcpu_reset<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    // Architectural state back to reset; the phase, the CPUID
    // table, MSRs and setup-time resources stay.
    let keep = v.clone();
    *v = VcpuState::RESET;
    v.phase = keep.phase;
    v.runs = keep.runs;
    v.msrs = keep.msrs;
    v.cpuid = keep.cpuid;
    v.cpuid_set = keep.cpuid_set;
    v.mcg_cap = keep.mcg_cap;
    v.fpstate_size = keep.fpstate_size;
    v.tsc_offset = keep.tsc_offset;
    v.tsc_multiplier = keep.tsc_multiplier;
    v.run_state = keep.run_state;
    v.pvmfw_entry = keep.pvmfw_entry;
    v.guest_sipi = keep.guest_sipi;
    v.irq.apicv_active = keep.irq.apicv_active;
    v.set_gpr(Gpr::Rdx, u64::from(ctx.cpu.base_entry(1, 0).eax));
    if ctx.kind == VmKind::Protected {
        force_protected_tpr(v, ctx.config);
    }
    ctx.ok()
}

/// State forced at the first run, overriding what the host set (pKVM-IA
/// `pkvm_vcpu_run`, docs/hypervisor.md "Forced at first run"): a
/// protected boot vCPU finalized with firmware enters pvmfw; one without
/// keeps the registers the host seeded (RIP included); a secondary enters
/// at its guest-chosen SIPI vector after a full INIT; then R15 = 0 and,
/// with a protected APIC, TPR 0x10. Every VM kind: the policy's forced MSR
/// bits.
fn first_run<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) {
    if ctx.kind == VmKind::Protected {
        let signature = u64::from(ctx.cpu.base_entry(1, 0).eax);
        match (ctx.index, v.pvmfw_entry, v.guest_sipi) {
            (0, Some(load_addr), _) => pvmfw_entry(v, load_addr),
            (0, None, _) => {}
            (_, _, Some(vector)) => ap_entry(v, vector, signature),
            // Not reached: only the guest's `start_secondary` makes a
            // secondary runnable, and it sets the vector. Fail closed.
            (_, _, None) => init(v, signature),
        }
        force_protected(v, ctx.config);
    }
    // Policy-declared forced MSR bits.
    force_first_run_bits(ctx, v);
    v.advance(Phase::Running);
}
