//! Running and resetting a vCPU: `vcpu_run` (and, at the first run, the
//! state the hypervisor forces and the move from `setup` to `running`),
//! and `vcpu_reset`.

use pvgate_gate::{Phase, Policy, VmKind};

use super::ctx::Ctx;
use super::delivery::deliver_at_entry;
use super::events::sipi_entry;
use super::msr::{complete_at_entry, force_first_run_bits};
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::{Gpr, VcpuState};

/// `vcpu_run`: refused in `teardown`; the first run forces state and
/// moves the vCPU to `running`; entering the guest delivers what was
/// queued.
pub(crate) fn vcpu_run<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    if v.phase == Phase::Teardown {
        return ctx.fail(CallError::NotRunnable { phase: v.phase });
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
    v.irq.apicv_active = keep.irq.apicv_active;
    v.set_gpr(Gpr::Rdx, u64::from(ctx.cpu.base_entry(1, 0).eax));
    ctx.ok()
}

/// State forced at the first run, overriding what the host set.
fn first_run<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) {
    if ctx.kind == VmKind::Protected {
        // R15 is reserved for the hypervisor (pKVM-IA).
        v.set_gpr(Gpr::R15, 0);
        if ctx.index == 0 {
            // The hypervisor chooses the firmware entry point.
            v.set_gpr(Gpr::Rip, ctx.config.pvm_boot_rip);
        } else {
            // Secondaries start from reset and wait for their SIPI.
            let keep_rdx = v.gpr(Gpr::Rdx);
            v.gprs = VcpuState::RESET.gprs;
            v.segments = VcpuState::RESET.segments;
            v.set_gpr(Gpr::Rdx, keep_rdx);
            if let Some(vector) = v.irq.sipi_vector {
                sipi_entry(v, vector);
            }
        }
    }
    // Policy-declared forced MSR bits.
    force_first_run_bits(ctx, v);
    v.advance(Phase::Running);
}
