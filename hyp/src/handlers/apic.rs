//! Virtual APIC state the host reports: the CR8 intercept threshold,
//! APICv activity, the EOI exit bitmap, the highest in-service and
//! requested vectors, and the virtual APIC mode.

use pvgate_gate::{Policy, VmKind};

use super::ctx::Ctx;
use crate::args::{ApicMode, MaxIsr};
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::VcpuState;

/// The first vector that is not an architectural exception (SDM Vol. 3A
/// §6.3).
const FIRST_INTERRUPT_VECTOR: u8 = 32;

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

/// `refresh_apicv_exec_ctrl`: -EINVAL without an in-kernel local APIC,
/// or when asked to activate APICv that the machine has disabled
/// (pKVM-IA `pkvm_refresh_apicv_exec_ctrl`).
pub(crate) fn refresh_apicv_exec_ctrl<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    active: bool,
) -> Outcome {
    if !ctx.config.in_kernel_lapic {
        return ctx.fail(CallError::NoInKernelApic { call: ctx.call });
    }
    if active && !ctx.config.apicv_enabled {
        return ctx.fail(CallError::ApicvDisabled);
    }
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

/// `hwapic_isr_update` (pKVM-IA `pkvm_hwapic_isr_update`): -EOPNOTSUPP
/// without an in-kernel local APIC with APICv active; -1 (none) is
/// always accepted; a vector is -EPERM for a protected APIC (its ISR is
/// the hypervisor's) and, for a protected VM, below 32 (an exception
/// vector, as `inject_irq`).
pub(crate) fn hwapic_isr_update<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    max_isr: MaxIsr,
) -> Outcome {
    if !ctx.config.in_kernel_lapic || !v.irq.apicv_active {
        return ctx.fail(CallError::ApicvInactive);
    }
    if let Some(vector) = max_isr.vector() {
        if ctx.config.apic_protected(ctx.kind) {
            return ctx.fail(CallError::IsrProtected { max_isr: vector });
        }
        if ctx.kind == VmKind::Protected && vector < FIRST_INTERRUPT_VECTOR {
            return ctx.fail(CallError::IsrVectorTooLow { max_isr: vector });
        }
    }
    v.irq.max_isr = max_isr.raw();
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
