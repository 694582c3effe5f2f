//! Routing ([`Hyp::call`]): each PV call on a vCPU gets its own copy of
//! the call path ([`Hyp::on`], inlined), with its handler and the
//! resource the audit names.

use pvgate_gate::{Policy, PvCall};

use crate::audit::Resource;
use crate::call::Call;
use crate::handlers::ctx::Ctx;
use crate::handlers::{apic, delivery, events, mmu, msr, regs, resources, run};
use crate::hypervisor::Hyp;
use crate::outcome::Outcome;
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
}
