//! Dispatch: a PV call on a vCPU is looked up by handle, decided by the
//! gate (VM kind, the vCPU's phase, the call), routed to its handler when
//! allowed, and counted and recorded in the audit.

use pvgate_gate::{Phase, Policy, PvCall, Rule, decide_pv};

use super::lock::LockedVcpu;
use crate::audit::{Effect, Resource};
use crate::call::Call;
use crate::cpu::{CpuModel, CpuidTable};
use crate::error::CallError;
use crate::handlers::ctx::Ctx;
use crate::handlers::{apic, cpuid, delivery, events, mmu, msr, regs, resources, run};
use crate::hypervisor::Hyp;
use crate::outcome::{Outcome, decided};
use crate::state::VcpuState;
use crate::vm::handle::VcpuHandle;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Makes one PV call on a vCPU (every call but the VM-level
    /// `vm_destroy` and `vcpu_after_set_cpuid`, which have their own).
    /// A failed call returns no outputs, whatever its handler computed
    /// (pKVM-IA's dispatcher zeroes its output block before every call).
    pub fn call(&self, vcpu: VcpuHandle, call: Call) -> Outcome {
        let pv = call.pv();
        // `call` is large (set_regs carries every register): the handler
        // reads it in place rather than from a copy, and the resource the
        // audit names is read from it only when the call is refused.
        let call = &call;
        let outcome = self.call_inner(
            vcpu,
            pv,
            || call.resource(),
            #[inline(always)]
            |ctx, v| {
                // Zeroed where the handler's outcome is made (refusals
                // and bad handles are built with none): zeroing the
                // returned outcome instead kept it out of the caller's
                // slot (a copy of the whole `Outcome` per call).
                let mut o = execute(ctx, v, call);
                if !o.ok() {
                    o.out = [0; 4];
                }
                o
            },
        );
        self.account(pv, vcpu.0, &outcome);
        outcome
    }

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
    fn call_inner(
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

/// Carries out an allowed call: resource-level checks, then the change.
#[inline(always)]
fn execute<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, call: &Call) -> Outcome {
    match *call {
        Call::EnableNmiWindow => events::enable_nmi_window(ctx, v),
        Call::EnableIrqWindow => events::enable_irq_window(ctx, v),
        Call::InterruptAllowed { for_injection } => {
            events::interrupt_allowed(ctx, v, for_injection)
        }
        Call::NmiAllowed { for_injection } => events::nmi_allowed(ctx, v, for_injection),
        Call::GetNmiMask => events::get_nmi_mask(ctx, v),
        Call::InjectIrq { vector, soft } => events::inject_irq(ctx, v, vector, soft),
        Call::InjectIrqIfAllowed { vector, soft } => {
            events::inject_irq_if_allowed(ctx, v, vector, soft)
        }
        Call::InjectNmi => events::inject_nmi(ctx, v),
        Call::CancelInjection => delivery::cancel_injection(ctx, v),
        Call::UpdateCr8Intercept { tpr, max_irr } => {
            apic::update_cr8_intercept(ctx, v, tpr, max_irr)
        }
        Call::RefreshApicvExecCtrl { active } => apic::refresh_apicv_exec_ctrl(ctx, v, active),
        Call::LoadEoiExitmap { bitmap } => apic::load_eoi_exitmap(ctx, v, bitmap),
        Call::HwapicIsrUpdate { max_isr } => apic::hwapic_isr_update(ctx, v, max_isr),
        Call::HwapicIrrUpdate { max_irr } => apic::hwapic_irr_update(ctx, v, max_irr),
        Call::WriteTscOffset(x) => resources::write_tsc_offset(ctx, v, x),
        Call::WriteTscMultiplier(x) => resources::write_tsc_multiplier(ctx, v, x),
        Call::SetupMce { mcg_cap } => resources::setup_mce(ctx, v, mcg_cap),
        Call::VcpuRun => run::vcpu_run(ctx, v),
        Call::CompleteEmulatedMsr { error } => msr::complete_emulated_msr(ctx, v, error),
        Call::ProtectedApicHasInterrupt => events::protected_apic_has_interrupt(ctx, v),
        Call::SetEfer(x) => regs::set_efer(ctx, v, x),
        Call::SetMsr { index, value } => msr::set_msr(ctx, v, index, value),
        Call::GetMsr { index } => msr::get_msr(ctx, v, index),
        Call::SetCr0(x) => regs::set_cr0(ctx, v, x),
        Call::SetCr4(x) => regs::set_cr4(ctx, v, x),
        Call::SetRflags(x) => regs::set_rflags(ctx, v, x),
        Call::GetRflags => regs::get_rflags(ctx, v),
        Call::SetSegment { seg, segment } => regs::set_segment_call(ctx, v, seg, segment),
        Call::GetSegment(seg) => regs::get_segment(ctx, v, seg),
        Call::GetSegmentBase(seg) => regs::get_segment_base(ctx, v, seg),
        Call::SetIdt(t) => regs::set_idt(ctx, v, t),
        Call::GetIdt => regs::get_idt(ctx, v),
        Call::SetGdt(t) => regs::set_gdt(ctx, v, t),
        Call::GetGdt => regs::get_gdt(ctx, v),
        Call::FlushTlbAll
        | Call::FlushTlbCurrent
        | Call::FlushTlbGva { .. }
        | Call::FlushTlbGuest => mmu::flush_tlb(ctx, v),
        Call::VcpuAddFpstate { size } => resources::vcpu_add_fpstate(ctx, v, size),
        Call::LoadMmuPgd { root, level } => mmu::load_mmu_pgd(ctx, v, root, level),
        Call::SetRegs(w) => regs::set_regs(ctx, v, w),
        Call::SetDr7(x) => regs::set_dr7(ctx, v, x),
        Call::CacheReg(reg) => regs::cache_reg(ctx, v, reg),
        Call::SetInterruptShadow(x) => events::set_interrupt_shadow(ctx, v, x),
        Call::GetInterruptShadow => events::get_interrupt_shadow(ctx, v),
        Call::InjectException { vector, error_code } => {
            events::inject_exception(ctx, v, vector, error_code)
        }
        Call::SetNmiMask(x) => events::set_nmi_mask(ctx, v, x),
        Call::UpdateExceptionBitmap(x) => events::update_exception_bitmap(ctx, v, x),
        Call::VcpuReset => run::vcpu_reset(ctx, v),
        Call::SetVirtualApicMode(mode) => apic::set_virtual_apic_mode(ctx, v, mode),
        Call::DeliverSipiVector { vector } => events::deliver_sipi_vector(ctx, v, vector),
    }
}
