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
use crate::outcome::{Outcome, cold, decided};
use crate::state::VcpuState;
use crate::vm::handle::VcpuHandle;

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// Makes one PV call on a vCPU (every call but the VM-level
    /// `vm_destroy` and `vcpu_after_set_cpuid`, which have their own).
    /// A failed call returns no outputs, whatever its handler computed
    /// (pKVM-IA's dispatcher zeroes its output block before every call).
    pub fn call(&self, vcpu: VcpuHandle, call: Call) -> Outcome {
        // One copy of the call path per call ([`Hyp::on`]): the call, its
        // audit resource and its handler are known there at compile time
        // (no second dispatch on the call, no lookups by a call number
        // held in a register). The arguments are read in place: `call`
        // is large (set_regs carries every register).
        macro_rules! on {
            (move |$ctx:ident, $v:ident| $exec:expr) => {
                self.on(
                    vcpu,
                    call.pv(),
                    call.resource(),
                    #[inline(always)]
                    move |$ctx, $v| $exec,
                )
            };
        }
        match &call {
            Call::EnableNmiWindow => on!(move |ctx, v| events::enable_nmi_window(ctx, v)),
            Call::EnableIrqWindow => on!(move |ctx, v| events::enable_irq_window(ctx, v)),
            Call::InterruptAllowed { for_injection } => {
                on!(move |ctx, v| events::interrupt_allowed(ctx, v, *for_injection))
            }
            Call::NmiAllowed { for_injection } => {
                on!(move |ctx, v| events::nmi_allowed(ctx, v, *for_injection))
            }
            Call::GetNmiMask => on!(move |ctx, v| events::get_nmi_mask(ctx, v)),
            Call::InjectIrq { vector, soft } => {
                on!(move |ctx, v| events::inject_irq(ctx, v, *vector, *soft))
            }
            Call::InjectIrqIfAllowed { vector, soft } => {
                on!(move |ctx, v| events::inject_irq_if_allowed(ctx, v, *vector, *soft))
            }
            Call::InjectNmi => on!(move |ctx, v| events::inject_nmi(ctx, v)),
            Call::CancelInjection => on!(move |ctx, v| delivery::cancel_injection(ctx, v)),
            Call::UpdateCr8Intercept { tpr, max_irr } => {
                on!(move |ctx, v| apic::update_cr8_intercept(ctx, v, *tpr, *max_irr))
            }
            Call::RefreshApicvExecCtrl { active } => {
                on!(move |ctx, v| apic::refresh_apicv_exec_ctrl(ctx, v, *active))
            }
            Call::LoadEoiExitmap { bitmap } => {
                on!(move |ctx, v| apic::load_eoi_exitmap(ctx, v, *bitmap))
            }
            Call::HwapicIsrUpdate { max_isr } => {
                on!(move |ctx, v| apic::hwapic_isr_update(ctx, v, *max_isr))
            }
            Call::HwapicIrrUpdate { max_irr } => {
                on!(move |ctx, v| apic::hwapic_irr_update(ctx, v, *max_irr))
            }
            Call::WriteTscOffset(x) => on!(move |ctx, v| resources::write_tsc_offset(ctx, v, *x)),
            Call::WriteTscMultiplier(x) => {
                on!(move |ctx, v| resources::write_tsc_multiplier(ctx, v, *x))
            }
            Call::SetupMce { mcg_cap } => on!(move |ctx, v| resources::setup_mce(ctx, v, *mcg_cap)),
            Call::VcpuRun => on!(move |ctx, v| run::vcpu_run(ctx, v)),
            Call::CompleteEmulatedMsr { error } => {
                on!(move |ctx, v| msr::complete_emulated_msr(ctx, v, *error))
            }
            Call::ProtectedApicHasInterrupt => {
                on!(move |ctx, v| events::protected_apic_has_interrupt(ctx, v))
            }
            Call::SetEfer(x) => on!(move |ctx, v| regs::set_efer(ctx, v, *x)),
            Call::SetMsr { index, value } => {
                on!(move |ctx, v| msr::set_msr(ctx, v, *index, *value))
            }
            Call::GetMsr { index } => on!(move |ctx, v| msr::get_msr(ctx, v, *index)),
            Call::SetCr0(x) => on!(move |ctx, v| regs::set_cr0(ctx, v, *x)),
            Call::SetCr4(x) => on!(move |ctx, v| regs::set_cr4(ctx, v, *x)),
            Call::SetRflags(x) => on!(move |ctx, v| regs::set_rflags(ctx, v, *x)),
            Call::GetRflags => on!(move |ctx, v| regs::get_rflags(ctx, v)),
            Call::SetSegment { seg, segment } => {
                on!(move |ctx, v| regs::set_segment_call(ctx, v, *seg, *segment))
            }
            Call::GetSegment(seg) => on!(move |ctx, v| regs::get_segment(ctx, v, *seg)),
            Call::GetSegmentBase(seg) => on!(move |ctx, v| regs::get_segment_base(ctx, v, *seg)),
            Call::SetIdt(t) => on!(move |ctx, v| regs::set_idt(ctx, v, *t)),
            Call::GetIdt => on!(move |ctx, v| regs::get_idt(ctx, v)),
            Call::SetGdt(t) => on!(move |ctx, v| regs::set_gdt(ctx, v, *t)),
            Call::GetGdt => on!(move |ctx, v| regs::get_gdt(ctx, v)),
            Call::FlushTlbAll
            | Call::FlushTlbCurrent
            | Call::FlushTlbGva { .. }
            | Call::FlushTlbGuest => on!(move |ctx, v| mmu::flush_tlb(ctx, v)),
            Call::VcpuAddFpstate { size } => {
                on!(move |ctx, v| resources::vcpu_add_fpstate(ctx, v, *size))
            }
            Call::LoadMmuPgd { root, level } => {
                on!(move |ctx, v| mmu::load_mmu_pgd(ctx, v, *root, *level))
            }
            Call::SetRegs(w) => on!(move |ctx, v| regs::set_regs(ctx, v, *w)),
            Call::SetDr7(x) => on!(move |ctx, v| regs::set_dr7(ctx, v, *x)),
            Call::CacheReg(reg) => on!(move |ctx, v| regs::cache_reg(ctx, v, *reg)),
            Call::SetInterruptShadow(x) => {
                on!(move |ctx, v| events::set_interrupt_shadow(ctx, v, *x))
            }
            Call::GetInterruptShadow => on!(move |ctx, v| events::get_interrupt_shadow(ctx, v)),
            Call::InjectException { vector, error_code } => {
                on!(move |ctx, v| events::inject_exception(ctx, v, *vector, *error_code))
            }
            Call::SetNmiMask(x) => on!(move |ctx, v| events::set_nmi_mask(ctx, v, *x)),
            Call::UpdateExceptionBitmap(x) => {
                on!(move |ctx, v| events::update_exception_bitmap(ctx, v, *x))
            }
            Call::VcpuReset => on!(move |ctx, v| run::vcpu_reset(ctx, v)),
            Call::SetVirtualApicMode(mode) => {
                on!(move |ctx, v| apic::set_virtual_apic_mode(ctx, v, *mode))
            }
            Call::DeliverSipiVector { vector } => {
                on!(move |ctx, v| events::deliver_sipi_vector(ctx, v, *vector))
            }
        }
    }

    /// The call path of one PV call: `pv` with `exec` its handler, and
    /// `resource` what the audit names if it is refused.
    #[inline(always)]
    fn on(
        &self,
        vcpu: VcpuHandle,
        pv: PvCall,
        resource: Resource,
        mut exec: impl FnMut(&Ctx<'_, P>, &mut VcpuState) -> Outcome,
    ) -> Outcome {
        let outcome = self.call_inner(
            vcpu,
            pv,
            || resource,
            #[inline(always)]
            |ctx, v| {
                // Zeroed where the handler's outcome is made (refusals
                // and bad handles are built with none): zeroing the
                // returned outcome instead kept it out of the caller's
                // slot (a copy of the whole `Outcome` per call).
                let mut o = exec(ctx, v);
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
