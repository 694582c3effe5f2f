//! Setup-time vCPU resources: the TSC offset and multiplier, the machine
//! check capabilities (`setup_mce`, bounded as pKVM-IA bounds them), and
//! the FPU state buffer of a protected vCPU.

use pvgate_gate::{Policy, VmKind};

use super::ctx::Ctx;
use crate::args::TscMultiplier;
use crate::cpu::{MCG_BANK_COUNT, MCG_EXT_CNT};
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::{MAX_MCE_BANKS, MCG_SUPPORTED_FLAGS, VcpuState};

/// `write_tsc_offset`.
pub(crate) fn write_tsc_offset<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.tsc_offset = x;
    ctx.ok()
}

/// `write_tsc_multiplier`: never zero; -EOPNOTSUPP on a machine without
/// TSC scaling (pKVM-IA `pkvm_write_tsc_multiplier`).
pub(crate) fn write_tsc_multiplier<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    x: TscMultiplier,
) -> Outcome {
    if !ctx.config.tsc_scaling {
        return ctx.fail(CallError::NoTscScaling);
    }
    v.tsc_multiplier = x.get();
    ctx.ok()
}

/// `setup_mce` (pKVM-IA's dispatcher calls KVM's
/// `kvm_vcpu_x86_setup_mce`): IA32_MCG_CAP with 1..=32 banks (bits 7:0)
/// and no capability flag beyond MCG_CTL_P | MCG_SER_P (the count
/// MCG_EXT_CNT, bits 23:16, is not a flag), else -EINVAL. The CPU
/// model's own MCG_CAP does not bound it: the vCPU's banks are emulated
/// in hypervisor memory, not the machine's, and pKVM-IA bounds them by
/// `KVM_MAX_MCE_BANKS` and its supported flags only.
pub(crate) fn setup_mce<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, mcg_cap: u64) -> Outcome {
    let banks = mcg_cap & MCG_BANK_COUNT;
    if banks == 0 || banks > MAX_MCE_BANKS {
        return ctx.fail(CallError::McgCapBanks { asked: banks });
    }
    let extra = mcg_cap & !(MCG_BANK_COUNT | MCG_EXT_CNT | MCG_SUPPORTED_FLAGS);
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
