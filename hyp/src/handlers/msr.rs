//! MSRs: `set_msr` and `get_msr` under the policy's per-MSR rules and
//! value masks, the bits forced at the first run, and
//! `complete_emulated_msr` with its completion at the next entry.

use pvgate_gate::{
    Access, Phase, Policy, Rule, VmKind, check_msr_write, decide_msr, force_msr_bits, msr_read_view,
};

use super::ctx::Ctx;
use crate::audit::{Effect, Resource};
use crate::error::CallError;
use crate::outcome::{Outcome, decided};
use crate::state::{Gpr, MSR_INSN_LEN, VECTOR_GP, VcpuState};

/// Policy-declared forced MSR bits, applied at the first run: every stored
/// MSR whose setup-phase write rule forces bits gets them, written by the
/// host or not.
pub(crate) fn force_first_run_bits<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) {
    for (index, value) in v.msrs.values_mut() {
        let d = decide_msr(ctx.policy, ctx.kind, Phase::Setup, Access::Write, index);
        // A rule of another class has no constraint: nothing is forced,
        // and the same decision denied the write that stored the value.
        if let Some(c) = d.granted(Rule::msr_constraint) {
            *value = force_msr_bits(c, *value);
        }
    }
}

/// `set_msr`: the write is decided per MSR, then checked against the rule's
/// value mask; the stored value is what the mask lets through.
#[inline(always)]
pub(crate) fn set_msr<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    index: u32,
    value: u64,
) -> Outcome {
    let resource = Resource::Msr(index);
    let d = decide_msr(ctx.policy, ctx.kind, v.phase, Access::Write, index);
    let rule = d.rule.map(|r| r.id);
    let phase = v.phase;
    let denied = || CallError::MsrDenied {
        index,
        access: Access::Write,
        phase,
    };
    let c = match decided(ctx.call, &d, Rule::msr_constraint, || resource, denied) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    match check_msr_write(c, value) {
        Err(e) => Outcome::failed(
            ctx.call,
            CallError::MsrValue {
                index,
                value,
                write_mask: e.write_mask,
                refused: e.refused,
            },
            rule,
            resource,
        ),
        Ok(stored) => {
            if v.set_msr(index, stored) {
                Outcome::new(ctx.call, Effect::Allow, rule, resource)
            } else {
                Outcome::failed(ctx.call, CallError::MsrStoreFull { index }, rule, resource)
            }
        }
    }
}

/// `get_msr`: the read is decided per MSR; the host sees the rule's read
/// view of the stored value, under the call's read mask.
pub(crate) fn get_msr<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState, index: u32) -> Outcome {
    let resource = Resource::Msr(index);
    let d = decide_msr(ctx.policy, ctx.kind, v.phase, Access::Read, index);
    let phase = v.phase;
    let denied = || CallError::MsrDenied {
        index,
        access: Access::Read,
        phase,
    };
    let c = match decided(ctx.call, &d, Rule::msr_constraint, || resource, denied) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    // An MSR the host never wrote reads as 0 (not a policy answer).
    let seen = msr_read_view(c, v.msr(index).unwrap_or(0)) & ctx.constraint.read_mask;
    Outcome {
        out: [seen, 0, 0, 0],
        ..Outcome::new(ctx.call, Effect::Allow, d.rule.map(|r| r.id), resource)
    }
}

/// `complete_emulated_msr` (pKVM-IA `pkvm_complete_emulated_msr`): a
/// normal VM's host completes the emulation itself (-EOPNOTSUPP); for a
/// protected VM the host's result is only stored, output 0 = 1, and the
/// next entry decides (see [`complete_at_entry`]). While a failed result
/// is stored, injection is -EBUSY.
pub(crate) fn complete_emulated_msr<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    error: i32,
) -> Outcome {
    if ctx.kind != VmKind::Protected {
        return ctx.fail(CallError::HostCompletesEmulation);
    }
    v.emulated_msr_error = Some(error);
    ctx.out([1, 0, 0, 0])
}

/// At a protected vCPU's entry, completes the guest's RDMSR/WRMSR exit
/// that the host emulated, as the hypervisor decides it and not the host:
/// the host's stored result nonzero injects #GP(0), otherwise (0, or no
/// result: pKVM-IA's host reports only failures) RIP moves past the
/// 2-byte instruction. Without such an exit a stored result has no
/// effect, so the host cannot skip guest instructions or inject #GP at
/// will. Either way the result and the exit are cleared.
pub(crate) fn complete_at_entry<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) {
    let error = v.emulated_msr_error.take();
    let exit = core::mem::replace(&mut v.msr_exit, false);
    if ctx.kind != VmKind::Protected || !exit {
        return;
    }
    match error {
        Some(e) if e != 0 => v.irq.pending_exception = Some((VECTOR_GP, Some(0))),
        _ => v.set_gpr(Gpr::Rip, v.gpr(Gpr::Rip).wrapping_add(MSR_INSN_LEN)),
    }
}
