//! Setup-time vCPU resources: the TSC offset and multiplier, the machine
//! check capabilities (`setup_mce`, bounded by the CPU model), and the FPU
//! state buffer of a protected vCPU.

use pvgate_gate::{Policy, VmKind};

use super::ctx::Ctx;
use crate::args::TscMultiplier;
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::VcpuState;

/// `write_tsc_offset`.
pub(crate) fn write_tsc_offset<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.tsc_offset = x;
    ctx.ok()
}

/// `write_tsc_multiplier`: never zero.
pub(crate) fn write_tsc_multiplier<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    x: TscMultiplier,
) -> Outcome {
    v.tsc_multiplier = x.get();
    ctx.ok()
}

/// `setup_mce`: IA32_MCG_CAP with at least one and at most the model's
/// banks, and no capability flag the model lacks.
pub(crate) fn setup_mce<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, mcg_cap: u64) -> Outcome {
    let banks = mcg_cap & crate::cpu::MCG_BANK_COUNT;
    if banks == 0 || banks > ctx.cpu.mce_banks() {
        return ctx.fail(CallError::McgCapBanks {
            asked: banks,
            max: ctx.cpu.mce_banks(),
        });
    }
    let flags = mcg_cap & !(crate::cpu::MCG_BANK_COUNT | crate::cpu::MCG_EXT_CNT);
    let extra = flags & !ctx.cpu.mce_caps();
    if extra != 0 {
        return ctx.fail(CallError::McgCapFlags {
            asked: mcg_cap,
            extra,
        });
    }
    v.mcg_cap = mcg_cap;
    ctx.ok()
}

/// `vcpu_add_fpstate`: protected VMs only; the size covers the model's
/// XSAVE area (at least the 512-byte legacy area) and at most 64 KiB.
pub(crate) fn vcpu_add_fpstate<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    size: u64,
) -> Outcome {
    if ctx.kind != VmKind::Protected {
        return ctx.fail(CallError::NotProtected { call: ctx.call });
    }
    let min = u64::from(ctx.cpu.xsave_size).max(512);
    let max = 1 << 16;
    if size < min || size > max {
        return ctx.fail(CallError::FpstateSize { size, min, max });
    }
    v.fpstate_size = size;
    ctx.ok()
}
