//! Dispatch: a PV call on a vCPU is looked up by handle, decided by the
//! gate (VM kind, the vCPU's phase, the call), carried out by its handler
//! when allowed ([`super::route`] picks the handler), and counted and
//! recorded in the audit.

use pvgate_gate::{Phase, Policy, PvCall, Rule, decide_pv};

use super::lock::LockedVcpu;
use crate::audit::{Effect, Resource};
use crate::cpu::{CpuModel, CpuidTable};
use crate::error::CallError;
use crate::handlers::cpuid;
use crate::handlers::ctx::Ctx;
use crate::hypervisor::Hyp;
use crate::outcome::{Outcome, cold, decided};
use crate::state::VcpuState;
use crate::vm::handle::VcpuHandle;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// `vcpu_after_set_cpuid`: `table` is the host's proposal in, and the
    /// effective table (or, refused, the corrected one) out.
    pub fn vcpu_after_set_cpuid(&self, vcpu: VcpuHandle, table: &mut CpuidTable) -> Outcome {
        let pv = PvCall::VcpuAfterSetCpuid;
        let outcome = self.call_inner(
            vcpu,
            pv,
            || Resource::Call,
            |ctx, v| cpuid::set_cpuid(ctx, v, table, self.bases.get()),
        );
        self.account(pv, vcpu.0, &outcome);
        outcome
    }

    /// Counts the call's effect, and records it (with its errno) in the
    /// audit ring when the effect is one that is recorded.
    #[inline(always)]
    pub(crate) fn account(&self, call: PvCall, handle: u64, o: &Outcome) {
        self.audit.count(Some(call), o.effect);
        if o.effect.is_recorded() {
            cold();
            let errno = o.error.map_or(0, |e| e.errno());
            self.audit
                .record(call, handle, o.effect, o.resource, o.rule, errno);
        }
    }

    pub(crate) fn count_invalid(&self, call: Option<PvCall>) {
        self.audit.count(call, Effect::Invalid);
    }

    /// Looks the vCPU up, then decides and carries out the call (`exec`,
    /// run only when allowed); a first `vcpu_run` that lost the race
    /// with `vm_destroy` is undone and decided again in `teardown`.
    #[inline(always)]
    pub(super) fn call_inner(
        &self,
        vcpu: VcpuHandle,
        pv: PvCall,
        resource: impl Fn() -> Resource,
        mut exec: impl FnMut(&Ctx<'_, P>, &mut VcpuState) -> Outcome,
    ) -> Outcome {
        let Some(cpu) = self.cpu.get() else {
            return bad_handle(pv, vcpu);
        };
        let Some(mut locked) = self.lock_vcpu(vcpu) else {
            return bad_handle(pv, vcpu);
        };
        if pv == PvCall::VcpuRun {
            return self.run(cpu, locked, pv, &resource, &mut exec);
        }
        // Only `vcpu_run` moves a vCPU to `running` (`handlers::run`), so
        // no other call can have lost the race with `vm_destroy` that
        // [`Hyp::lost_first_run`] resolves.
        self.decide_and_execute(cpu, &mut locked, pv, &resource, &mut exec)
    }

    /// [`Hyp::call_inner`] for `vcpu_run`, the only call that moves a vCPU
    /// to `running`: its first run may have to be undone.
    #[inline(never)]
    fn run(
        &self,
        cpu: &CpuModel,
        mut locked: LockedVcpu<'_, VCPUS>,
        pv: PvCall,
        resource: &impl Fn() -> Resource,
        exec: &mut impl FnMut(&Ctx<'_, P>, &mut VcpuState) -> Outcome,
    ) -> Outcome {
        if locked.vcpu.phase == Phase::Setup {
            // The first run, the only one that may have to be undone (a
            // copy of the vCPU is kept for that, off the path of every
            // later run).
            return self.first_run(cpu, locked, pv, resource, exec);
        }
        let outcome = self.decide_and_execute(cpu, &mut locked, pv, resource, exec);
        if self.lost_first_run(&mut locked) {
            return self.decide_and_execute(cpu, &mut locked, pv, resource, exec);
        }
        outcome
    }

    /// [`Hyp::call_inner`] for a vCPU's first `vcpu_run`: decided and
    /// carried out on the vCPU, undone when `vm_destroy` came first.
    #[cold]
    #[inline(never)]
    fn first_run(
        &self,
        cpu: &CpuModel,
        mut locked: LockedVcpu<'_, VCPUS>,
        pv: PvCall,
        resource: &impl Fn() -> Resource,
        exec: &mut impl FnMut(&Ctx<'_, P>, &mut VcpuState) -> Outcome,
    ) -> Outcome {
        let before = locked.vcpu.clone();
        let outcome = self.decide_and_execute(cpu, &mut locked, pv, resource, exec);
        if self.lost_first_run(&mut locked) {
            *locked.vcpu = before;
            locked.vcpu.advance(Phase::Teardown);
            return self.decide_and_execute(cpu, &mut locked, pv, resource, exec);
        }
        outcome
    }

    /// Whether the call just made reached `running` while `vm_destroy`
    /// was recorded between its lookup and its first run (then the
    /// destroy comes first: the vCPU is moved to `teardown`, and the call
    /// must be decided again there, as if the run never happened). A
    /// first run that won the race is published here.
    #[inline(always)]
    fn lost_first_run(&self, locked: &mut LockedVcpu<'_, VCPUS>) -> bool {
        if locked.vcpu.phase == Phase::Running
            && !locked.meta.running()
            && !locked.slot.publish_running(locked.generation)
        {
            locked.vcpu.advance(Phase::Teardown);
            locked.meta.mark_destroyed();
            return true;
        }
        false
    }

    /// Asks the gate about `call` on a looked-up vCPU, and carries it out
    /// when allowed.
    #[inline(always)]
    fn decide_and_execute(
        &self,
        cpu: &CpuModel,
        locked: &mut LockedVcpu<'_, VCPUS>,
        pv: PvCall,
        resource: &impl Fn() -> Resource,
        exec: &mut impl FnMut(&Ctx<'_, P>, &mut VcpuState) -> Outcome,
    ) -> Outcome {
        let kind = locked.meta.kind();
        let v = &mut *locked.vcpu;
        let d = decide_pv(&self.policy, kind, v.phase, pv);
        let phase = v.phase;
        let denied = || CallError::Denied {
            call: pv,
            kind,
            phase,
        };
        let constraint = match decided(pv, &d, Rule::pv_constraint, resource, denied) {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let ctx = Ctx {
            policy: &self.policy,
            cpu,
            config: &self.config,
            kind,
            index: locked.index,
            call: pv,
            rule: d.rule.map(|r| r.id),
            constraint,
        };
        exec(&ctx, v)
    }
}

/// The outcome of a call on a handle that names no vCPU (or before the
/// CPU model is installed).
#[cold]
fn bad_handle(pv: PvCall, vcpu: VcpuHandle) -> Outcome {
    Outcome::failed(
        pv,
        CallError::BadHandle { handle: vcpu.0 },
        None,
        Resource::Call,
    )
}
