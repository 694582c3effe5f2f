//! Virtual APIC state the host reports: the CR8 intercept threshold,
//! APICv activity, the EOI exit bitmap, the highest in-service and
//! requested vectors, and the virtual APIC mode.

use pvgate_gate::Policy;

use super::ctx::Ctx;
use crate::args::ApicMode;
use crate::outcome::Outcome;
use crate::state::VcpuState;

/// `update_cr8_intercept`.
pub(crate) fn update_cr8_intercept<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    tpr: u64,
    max_irr: u64,
) -> Outcome {
    v.irq.tpr_threshold = tpr;
    v.irq.max_irr = max_irr;
    ctx.ok()
}

/// `refresh_apicv_exec_ctrl`.
pub(crate) fn refresh_apicv_exec_ctrl<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    active: bool,
) -> Outcome {
    v.irq.apicv_active = active;
    ctx.ok()
}

/// `load_eoi_exitmap`.
pub(crate) fn load_eoi_exitmap<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    bitmap: [u64; 4],
) -> Outcome {
    v.irq.eoi_exitmap = bitmap;
    ctx.ok()
}

/// `hwapic_isr_update`.
pub(crate) fn hwapic_isr_update<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    max_isr: u64,
) -> Outcome {
    v.irq.max_isr = max_isr;
    ctx.ok()
}

/// `hwapic_irr_update`.
pub(crate) fn hwapic_irr_update<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    max_irr: u64,
) -> Outcome {
    v.irq.max_irr = max_irr;
    ctx.ok()
}

/// `set_virtual_apic_mode`: a mode is two bits.
pub(crate) fn set_virtual_apic_mode<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    mode: ApicMode,
) -> Outcome {
    v.irq.apic_mode = mode.get();
    ctx.ok()
}
