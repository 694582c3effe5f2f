//! The PV calls a host makes to the hypervisor (docs/design.md §5), their ABI
//! numbers, and pKVM-IA's classes for protected VMs.

use crate::vocab::Access;

/// pKVM-IA's (v6.18) class of a PV call for a protected VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PvClass {
    /// Allowed in every phase before teardown (pKVM-IA's 18 calls).
    Always,
    /// Allowed only before the vCPU's first run.
    Setup,
    /// Never allowed for a protected VM.
    Denied,
    /// Outside pKVM-IA v6.18's access switch: `inject_irq_if_allowed`
    /// (proposed in the review thread, deferred by pKVM-IA) and
    /// `deliver_sipi_vector` (pKVM-IA's, for normal VMs only).
    Proposed,
    /// VM lifecycle (`vm_finalize`, `vm_destroy`).
    Lifecycle,
}

/// One PV call. The discriminant is the ABI call number (RAX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum PvCall {
    /// `enable_nmi_window`: Request an exit when the guest can take an NMI.
    EnableNmiWindow = 1,
    /// `enable_irq_window`: Request an exit when the guest can take an interrupt.
    EnableIrqWindow = 2,
    /// `interrupt_allowed`: Ask whether the guest can take an interrupt now (reveals RFLAGS.IF).
    InterruptAllowed = 3,
    /// `nmi_allowed`: Ask whether the guest can take an NMI now.
    NmiAllowed = 4,
    /// `get_nmi_mask`: Read the vCPU's NMI mask.
    GetNmiMask = 5,
    /// `inject_irq`: Inject an external interrupt vector.
    InjectIrq = 6,
    /// `inject_nmi`: Inject an NMI.
    InjectNmi = 7,
    /// `cancel_injection`: Cancel a pending injection.
    CancelInjection = 8,
    /// `update_cr8_intercept`: Update the TPR threshold.
    UpdateCr8Intercept = 9,
    /// `refresh_apicv_exec_ctrl`: Refresh APICv execution controls.
    RefreshApicvExecCtrl = 10,
    /// `load_eoi_exitmap`: Load the EOI exit bitmap.
    LoadEoiExitmap = 11,
    /// `hwapic_isr_update`: Update the virtual APIC's in-service register.
    HwapicIsrUpdate = 12,
    /// `write_tsc_offset`: Write the TSC offset.
    WriteTscOffset = 13,
    /// `write_tsc_multiplier`: Write the TSC multiplier.
    WriteTscMultiplier = 14,
    /// `setup_mce`: Set the vCPU's MCG_CAP.
    SetupMce = 15,
    /// `vcpu_run`: Enter the vCPU; the first run moves it from `setup` to `running`.
    VcpuRun = 16,
    /// `complete_emulated_msr`: Complete a guest MSR access the host emulated.
    CompleteEmulatedMsr = 17,
    /// `protected_apic_has_interrupt`: Ask whether the protected APIC has a pending interrupt.
    ProtectedApicHasInterrupt = 18,
    /// `set_efer`: Write IA32_EFER.
    SetEfer = 19,
    /// `set_msr`: Write one MSR (decided again per MSR index and value).
    SetMsr = 20,
    /// `get_msr`: Read one MSR (decided again per MSR index).
    GetMsr = 21,
    /// `set_cr0`: Write CR0.
    SetCr0 = 22,
    /// `set_cr4`: Write CR4.
    SetCr4 = 23,
    /// `set_rflags`: Write RFLAGS.
    SetRflags = 24,
    /// `get_rflags`: Read RFLAGS.
    GetRflags = 25,
    /// `set_segment`: Write one segment register (selector, base, limit, access rights).
    SetSegment = 26,
    /// `get_segment`: Read one segment register.
    GetSegment = 27,
    /// `get_segment_base`: Read one segment register's base.
    GetSegmentBase = 28,
    /// `set_idt`: Write the IDT base and limit.
    SetIdt = 29,
    /// `get_idt`: Read the IDT base and limit.
    GetIdt = 30,
    /// `set_gdt`: Write the GDT base and limit.
    SetGdt = 31,
    /// `get_gdt`: Read the GDT base and limit.
    GetGdt = 32,
    /// `flush_tlb_all`: Flush all of the vCPU's TLB entries.
    FlushTlbAll = 33,
    /// `flush_tlb_current`: Flush the current context's TLB entries.
    FlushTlbCurrent = 34,
    /// `flush_tlb_gva`: Flush one guest virtual address.
    FlushTlbGva = 35,
    /// `flush_tlb_guest`: Flush the guest's TLB entries.
    FlushTlbGuest = 36,
    /// `vcpu_after_set_cpuid`: Install the vCPU's CPUID table (merged with the base under the policy).
    VcpuAfterSetCpuid = 37,
    /// `vcpu_add_fpstate`: Give a protected vCPU its FPU state buffer (protected VMs only).
    VcpuAddFpstate = 38,
    /// `load_mmu_pgd`: Load the root of the guest's page tables.
    LoadMmuPgd = 39,
    /// `set_regs`: Write the general registers, RIP and RSP (pKVM-IA copies them at first run).
    SetRegs = 40,
    /// `set_dr7`: Write DR7.
    SetDr7 = 41,
    /// `cache_reg`: Read a general register into KVM's cache.
    CacheReg = 42,
    /// `set_interrupt_shadow`: Write the interrupt shadow.
    SetInterruptShadow = 43,
    /// `get_interrupt_shadow`: Read the interrupt shadow.
    GetInterruptShadow = 44,
    /// `inject_exception`: Inject an exception.
    InjectException = 45,
    /// `set_nmi_mask`: Write the NMI mask.
    SetNmiMask = 46,
    /// `update_exception_bitmap`: Update the exception bitmap.
    UpdateExceptionBitmap = 47,
    /// `vcpu_reset`: Reset the vCPU.
    VcpuReset = 48,
    /// `set_virtual_apic_mode`: Switch the virtual APIC mode.
    SetVirtualApicMode = 49,
    /// `hwapic_irr_update`: Update the virtual APIC's request register.
    HwapicIrrUpdate = 50,
    /// `deliver_sipi_vector`: Deliver a SIPI vector to a vCPU (pKVM-IA: normal VMs only; a protected guest starts its own secondaries).
    DeliverSipiVector = 51,
    /// `inject_irq_if_allowed`: Check that the guest can take an interrupt and inject it in one call; reports whether it injected.
    InjectIrqIfAllowed = 52,
    /// `vm_destroy`: Destroy the VM: every vCPU moves to `teardown`.
    VmDestroy = 53,
    /// `vm_finalize`: Finalize a protected VM: its boot vCPU becomes runnable (pKVM-IA `pkvm_vm_finalize`).
    VmFinalize = 54,
}

impl PvCall {
    /// Every PV call, in ABI-number order.
    pub const ALL: [PvCall; 54] = [
        PvCall::EnableNmiWindow,
        PvCall::EnableIrqWindow,
        PvCall::InterruptAllowed,
        PvCall::NmiAllowed,
        PvCall::GetNmiMask,
        PvCall::InjectIrq,
        PvCall::InjectNmi,
        PvCall::CancelInjection,
        PvCall::UpdateCr8Intercept,
        PvCall::RefreshApicvExecCtrl,
        PvCall::LoadEoiExitmap,
        PvCall::HwapicIsrUpdate,
        PvCall::WriteTscOffset,
        PvCall::WriteTscMultiplier,
        PvCall::SetupMce,
        PvCall::VcpuRun,
        PvCall::CompleteEmulatedMsr,
        PvCall::ProtectedApicHasInterrupt,
        PvCall::SetEfer,
        PvCall::SetMsr,
        PvCall::GetMsr,
        PvCall::SetCr0,
        PvCall::SetCr4,
        PvCall::SetRflags,
        PvCall::GetRflags,
        PvCall::SetSegment,
        PvCall::GetSegment,
        PvCall::GetSegmentBase,
        PvCall::SetIdt,
        PvCall::GetIdt,
        PvCall::SetGdt,
        PvCall::GetGdt,
        PvCall::FlushTlbAll,
        PvCall::FlushTlbCurrent,
        PvCall::FlushTlbGva,
        PvCall::FlushTlbGuest,
        PvCall::VcpuAfterSetCpuid,
        PvCall::VcpuAddFpstate,
        PvCall::LoadMmuPgd,
        PvCall::SetRegs,
        PvCall::SetDr7,
        PvCall::CacheReg,
        PvCall::SetInterruptShadow,
        PvCall::GetInterruptShadow,
        PvCall::InjectException,
        PvCall::SetNmiMask,
        PvCall::UpdateExceptionBitmap,
        PvCall::VcpuReset,
        PvCall::SetVirtualApicMode,
        PvCall::HwapicIrrUpdate,
        PvCall::DeliverSipiVector,
        PvCall::InjectIrqIfAllowed,
        PvCall::VmDestroy,
        PvCall::VmFinalize,
    ];

    /// The call's name in policies and traces.
    pub const fn name(self) -> &'static str {
        match self {
            PvCall::EnableNmiWindow => "enable_nmi_window",
            PvCall::EnableIrqWindow => "enable_irq_window",
            PvCall::InterruptAllowed => "interrupt_allowed",
            PvCall::NmiAllowed => "nmi_allowed",
            PvCall::GetNmiMask => "get_nmi_mask",
            PvCall::InjectIrq => "inject_irq",
            PvCall::InjectNmi => "inject_nmi",
            PvCall::CancelInjection => "cancel_injection",
            PvCall::UpdateCr8Intercept => "update_cr8_intercept",
            PvCall::RefreshApicvExecCtrl => "refresh_apicv_exec_ctrl",
            PvCall::LoadEoiExitmap => "load_eoi_exitmap",
            PvCall::HwapicIsrUpdate => "hwapic_isr_update",
            PvCall::WriteTscOffset => "write_tsc_offset",
            PvCall::WriteTscMultiplier => "write_tsc_multiplier",
            PvCall::SetupMce => "setup_mce",
            PvCall::VcpuRun => "vcpu_run",
            PvCall::CompleteEmulatedMsr => "complete_emulated_msr",
            PvCall::ProtectedApicHasInterrupt => "protected_apic_has_interrupt",
            PvCall::SetEfer => "set_efer",
            PvCall::SetMsr => "set_msr",
            PvCall::GetMsr => "get_msr",
            PvCall::SetCr0 => "set_cr0",
            PvCall::SetCr4 => "set_cr4",
            PvCall::SetRflags => "set_rflags",
            PvCall::GetRflags => "get_rflags",
            PvCall::SetSegment => "set_segment",
            PvCall::GetSegment => "get_segment",
            PvCall::GetSegmentBase => "get_segment_base",
            PvCall::SetIdt => "set_idt",
            PvCall::GetIdt => "get_idt",
            PvCall::SetGdt => "set_gdt",
            PvCall::GetGdt => "get_gdt",
            PvCall::FlushTlbAll => "flush_tlb_all",
            PvCall::FlushTlbCurrent => "flush_tlb_current",
            PvCall::FlushTlbGva => "flush_tlb_gva",
            PvCall::FlushTlbGuest => "flush_tlb_guest",
            PvCall::VcpuAfterSetCpuid => "vcpu_after_set_cpuid",
            PvCall::VcpuAddFpstate => "vcpu_add_fpstate",
            PvCall::LoadMmuPgd => "load_mmu_pgd",
            PvCall::SetRegs => "set_regs",
            PvCall::SetDr7 => "set_dr7",
            PvCall::CacheReg => "cache_reg",
            PvCall::SetInterruptShadow => "set_interrupt_shadow",
            PvCall::GetInterruptShadow => "get_interrupt_shadow",
            PvCall::InjectException => "inject_exception",
            PvCall::SetNmiMask => "set_nmi_mask",
            PvCall::UpdateExceptionBitmap => "update_exception_bitmap",
            PvCall::VcpuReset => "vcpu_reset",
            PvCall::SetVirtualApicMode => "set_virtual_apic_mode",
            PvCall::HwapicIrrUpdate => "hwapic_irr_update",
            PvCall::DeliverSipiVector => "deliver_sipi_vector",
            PvCall::InjectIrqIfAllowed => "inject_irq_if_allowed",
            PvCall::VmDestroy => "vm_destroy",
            PvCall::VmFinalize => "vm_finalize",
        }
    }

    /// pKVM-IA's class of this call for a protected VM.
    pub const fn class(self) -> PvClass {
        match self {
            PvCall::EnableNmiWindow
            | PvCall::EnableIrqWindow
            | PvCall::InterruptAllowed
            | PvCall::NmiAllowed
            | PvCall::GetNmiMask
            | PvCall::InjectIrq
            | PvCall::InjectNmi
            | PvCall::CancelInjection
            | PvCall::UpdateCr8Intercept
            | PvCall::RefreshApicvExecCtrl
            | PvCall::LoadEoiExitmap
            | PvCall::HwapicIsrUpdate
            | PvCall::WriteTscOffset
            | PvCall::WriteTscMultiplier
            | PvCall::SetupMce
            | PvCall::VcpuRun
            | PvCall::CompleteEmulatedMsr
            | PvCall::ProtectedApicHasInterrupt => PvClass::Always,
            PvCall::SetEfer
            | PvCall::SetMsr
            | PvCall::GetMsr
            | PvCall::SetCr0
            | PvCall::SetCr4
            | PvCall::SetRflags
            | PvCall::GetRflags
            | PvCall::SetSegment
            | PvCall::GetSegment
            | PvCall::GetSegmentBase
            | PvCall::SetIdt
            | PvCall::GetIdt
            | PvCall::SetGdt
            | PvCall::GetGdt
            | PvCall::FlushTlbAll
            | PvCall::FlushTlbCurrent
            | PvCall::FlushTlbGva
            | PvCall::FlushTlbGuest
            | PvCall::VcpuAfterSetCpuid
            | PvCall::VcpuAddFpstate
            | PvCall::LoadMmuPgd
            | PvCall::SetRegs => PvClass::Setup,
            PvCall::SetDr7
            | PvCall::CacheReg
            | PvCall::SetInterruptShadow
            | PvCall::GetInterruptShadow
            | PvCall::InjectException
            | PvCall::SetNmiMask
            | PvCall::UpdateExceptionBitmap
            | PvCall::VcpuReset
            | PvCall::SetVirtualApicMode
            | PvCall::HwapicIrrUpdate => PvClass::Denied,
            PvCall::DeliverSipiVector | PvCall::InjectIrqIfAllowed => PvClass::Proposed,
            PvCall::VmDestroy | PvCall::VmFinalize => PvClass::Lifecycle,
        }
    }

    /// Whether the call reads vCPU state (a getter) or writes/acts (a setter).
    pub const fn access(self) -> Access {
        match self {
            PvCall::InterruptAllowed
            | PvCall::NmiAllowed
            | PvCall::GetNmiMask
            | PvCall::ProtectedApicHasInterrupt
            | PvCall::GetMsr
            | PvCall::GetRflags
            | PvCall::GetSegment
            | PvCall::GetSegmentBase
            | PvCall::GetIdt
            | PvCall::GetGdt
            | PvCall::CacheReg
            | PvCall::GetInterruptShadow => Access::Read,
            _ => Access::Write,
        }
    }

    /// The ABI call number (the value the host puts in RAX).
    pub const fn number(self) -> u64 {
        self as u16 as u64
    }

    /// Decodes an ABI call number; `None` for an unknown call (fail closed).
    pub const fn from_number(raw: u64) -> Option<PvCall> {
        // Call numbers start at 1: 0 wraps to u64::MAX, which no index has.
        let index = raw.wrapping_sub(1);
        if index >= PvCall::ALL.len() as u64 {
            return None;
        }
        // `get` is not const yet: split at `index` and take the first.
        match PvCall::ALL.split_at_checked(index as usize) {
            Some((_, [call, ..])) => Some(*call),
            _ => None,
        }
    }

    /// Parses a policy or trace name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<PvCall> {
        PvCall::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_fail_closed() {
        for call in PvCall::ALL {
            assert_eq!(PvCall::from_number(call.number()), Some(call));
            assert_eq!(PvCall::from_name(call.name()), Some(call));
        }
        assert_eq!(PvCall::from_number(0), None);
        assert_eq!(PvCall::from_number(PvCall::ALL.len() as u64 + 1), None);
        assert_eq!(PvCall::from_number(u64::MAX), None);
    }

    #[test]
    fn pkvm_ia_has_eighteen_always_allowed_calls() {
        let always = PvCall::ALL
            .iter()
            .filter(|c| c.class() == PvClass::Always)
            .count();
        assert_eq!(always, 18);
    }
}
