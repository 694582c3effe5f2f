//! The protected vCPU state hyp owns: general registers, RIP, RFLAGS,
//! segments, descriptor tables, control registers, an MSR store, the
//! effective CPUID table, TSC scaling, MCE capability, FPU state size and
//! interrupt state ([`crate::interrupts`]). The register names and values are in
//! [`crate::registers`].
//!
//! Long because the vCPU's state and its architectural reset value
//! (`VcpuState::RESET`, SDM Vol. 3A Table 10-1) are one struct and one
//! const that a reviewer compares field by field.

use heapless::Vec;
use pvgate_gate::Phase;

use crate::cpu::CpuidTable;
pub use crate::interrupts::{Busy, Delivered, InterruptState};
pub use crate::registers::{DescTable, GPR_COUNT, Gpr, GprWrite, SegReg, Segment};

pub use crate::msr_store::{MSR_STORE_CAPACITY, MsrStore};

/// IA32_MISC_ENABLE.
pub const MSR_MISC_ENABLE: u32 = 0x1a0;
/// IA32_PAT.
pub const MSR_PAT: u32 = 0x277;
/// IA32_MTRR_DEF_TYPE.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;

/// MSRs every vCPU starts with, at their architectural reset values (SDM
/// Vol. 3 Table 10-1 / Vol. 4): they are in the store from creation so that
/// forced bits of the policy apply at first run even if the host never
/// writes them.
pub const RESET_MSRS: [(u32, u64); 3] = [
    (MSR_MISC_ENABLE, 0x1),
    (MSR_PAT, 0x0007_0406_0007_0406),
    (MSR_MTRR_DEF_TYPE, 0),
];

/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS at reset (only the reserved bit 1 set).
pub const RFLAGS_RESET: u64 = 0x2;
/// The reset vector's RIP (with CS.base 0xFFFF0000).
pub const RESET_RIP: u64 = 0xfff0;

/// Whether a vCPU may be entered (KVM's `mp_state`, as pKVM-IA uses it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RunState {
    /// Created, not started: a protected VM's vCPUs start here; only
    /// `vm_finalize` (the boot vCPU) or the guest's `start_secondary`
    /// make one runnable.
    #[default]
    Uninitialized,
    /// May be entered with `vcpu_run`.
    Runnable,
}

pub use crate::interrupts::SHADOW_MOV_SS;

/// IA32_MCG_CAP.MCG_CTL_P (bit 8): IA32_MCG_CTL is present (SDM Vol. 3B
/// §17.3.1.1).
pub const MCG_CTL_P: u64 = 1 << 8;
/// IA32_MCG_CAP.MCG_SER_P (bit 24): software error recovery is supported.
pub const MCG_SER_P: u64 = 1 << 24;
/// The capability flags a vCPU's IA32_MCG_CAP may carry: what pKVM-IA's
/// hypervisor supports (`kvm_caps.supported_mce_cap`, set in
/// `pkvm_x86_vendor_init`).
pub const MCG_SUPPORTED_FLAGS: u64 = MCG_CTL_P | MCG_SER_P;
/// The most machine-check banks a vCPU may have, and what it has at
/// creation (KVM's `KVM_MAX_MCE_BANKS`; pKVM-IA's vCPU creation sets
/// `mcg_cap = KVM_MAX_MCE_BANKS`).
pub const MAX_MCE_BANKS: u64 = 32;

/// The #GP vector (SDM Vol. 3A §6.15).
pub const VECTOR_GP: u8 = 13;
/// The length of RDMSR (0F 32) and WRMSR (0F 30) (SDM Vol. 2B): what the
/// hypervisor skips when it completes a successfully emulated access.
pub const MSR_INSN_LEN: u64 = 2;

/// Everything hyp keeps for one vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuState {
    /// Lifecycle phase: only moves forward.
    pub phase: Phase,
    /// Whether `vcpu_run` may enter it (a protected VM's vCPUs are
    /// created [`RunState::Uninitialized`]; a normal VM's runnable).
    pub run_state: RunState,
    /// For the boot vCPU of a protected VM finalized with firmware: the
    /// pvmfw load address, its entry point at the first run.
    pub pvmfw_entry: Option<u64>,
    /// The SIPI vector the guest chose when it started this vCPU
    /// (`start_secondary`); a protected secondary enters there.
    pub guest_sipi: Option<u8>,
    /// How many times the vCPU was entered.
    pub runs: u64,
    /// General registers and RIP, in [`Gpr`] order.
    pub gprs: [u64; GPR_COUNT],
    /// RFLAGS.
    pub rflags: u64,
    /// Segment registers, in [`SegReg`] order.
    pub segments: [Segment; 8],
    /// GDTR.
    pub gdt: DescTable,
    /// IDTR.
    pub idt: DescTable,
    /// CR0.
    pub cr0: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8: the task priority (TPR\[7:4\]).
    pub cr8: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// DR7.
    pub dr7: u64,
    /// The exception bitmap.
    pub exception_bitmap: u32,
    /// MSRs by index (at most [`MSR_STORE_CAPACITY`]).
    pub msrs: MsrStore,
    /// The effective CPUID table the guest sees.
    pub cpuid: CpuidTable,
    /// The host has installed a CPUID table.
    pub cpuid_set: bool,
    /// TSC offset.
    pub tsc_offset: u64,
    /// TSC multiplier.
    pub tsc_multiplier: u64,
    /// IA32_MCG_CAP given by setup_mce.
    pub mcg_cap: u64,
    /// Size of the FPU state buffer (vcpu_add_fpstate).
    pub fpstate_size: u64,
    /// Guest page-table root and level (load_mmu_pgd).
    pub mmu_root: u64,
    /// Guest paging level (4 or 5; 0 before load_mmu_pgd).
    pub mmu_level: u8,
    /// TLB flushes requested.
    pub tlb_flushes: u64,
    /// The guest's last exit was an RDMSR/WRMSR the host emulates
    /// (pKVM-IA forwards those, `pkvm_host_can_emulate_msr`): the next
    /// entry completes it, by skipping the instruction or injecting #GP.
    pub msr_exit: bool,
    /// The host's result for the emulated MSR access
    /// (`complete_emulated_msr`, protected VMs; 0 = success), until the
    /// next entry applies it (pKVM-IA `host_emulated_msr_err`).
    pub emulated_msr_error: Option<i32>,
    /// Interrupt and event state.
    pub irq: InterruptState,
}

impl VcpuState {
    /// A vCPU at architectural reset (SDM Vol. 3 Table 10-1), in `setup`.
    pub const RESET: VcpuState = {
        let data = Segment {
            selector: 0,
            base: 0,
            limit: 0xffff,
            ar: 0x93,
        };
        let mut gprs = [0; GPR_COUNT];
        // Const evaluation checks this index at compile time.
        #[allow(clippy::indexing_slicing)]
        {
            gprs[Gpr::Rip as usize] = RESET_RIP;
        }
        VcpuState {
            phase: Phase::Setup,
            run_state: RunState::Uninitialized,
            pvmfw_entry: None,
            guest_sipi: None,
            runs: 0,
            gprs,
            rflags: RFLAGS_RESET,
            segments: [
                Segment {
                    selector: 0xf000,
                    base: 0xffff_0000,
                    limit: 0xffff,
                    ar: 0x9b,
                },
                data,
                data,
                data,
                data,
                data,
                Segment {
                    selector: 0,
                    base: 0,
                    limit: 0xffff,
                    ar: 0x8b,
                },
                Segment {
                    selector: 0,
                    base: 0,
                    limit: 0xffff,
                    ar: 0x82,
                },
            ],
            gdt: DescTable {
                base: 0,
                limit: 0xffff,
            },
            idt: DescTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: 0x6000_0010,
            cr4: 0,
            cr8: 0,
            efer: 0,
            dr7: 0x400,
            exception_bitmap: 0,
            msrs: MsrStore::new(),
            cpuid: Vec::new(),
            cpuid_set: false,
            tsc_offset: 0,
            tsc_multiplier: 1 << 48,
            mcg_cap: MAX_MCE_BANKS,
            fpstate_size: 0,
            mmu_root: 0,
            mmu_level: 0,
            tlb_flushes: 0,
            msr_exit: false,
            emulated_msr_error: None,
            irq: InterruptState {
                pending_irq: None,
                pending_irq_soft: false,
                pending_nmi: false,
                pending_exception: None,
                nmi_mask: false,
                interrupt_shadow: 0,
                irq_window: false,
                nmi_window: false,
                tpr_threshold: 0,
                max_isr: 0,
                max_irr: 0,
                eoi_exitmap: [0; 4],
                apicv_active: false,
                apic_mode: 0,
                sipi_vector: None,
                delivered: Delivered {
                    irq: None,
                    nmi: false,
                    exception: None,
                },
            },
        }
    };

    /// One general register.
    pub fn gpr(&self, reg: Gpr) -> u64 {
        self.gprs.get(reg as usize).copied().unwrap_or(0)
    }

    /// Sets one general register.
    pub fn set_gpr(&mut self, reg: Gpr, value: u64) {
        if let Some(r) = self.gprs.get_mut(reg as usize) {
            *r = value;
        }
    }

    /// One segment register.
    pub fn segment(&self, seg: SegReg) -> Segment {
        self.segments.get(seg as usize).copied().unwrap_or_default()
    }

    /// The stored value of an MSR (`None` if never set).
    #[inline]
    pub fn msr(&self, index: u32) -> Option<u64> {
        self.msrs.get(index)
    }

    /// Stores an MSR value; `false` when the store is full.
    #[inline]
    pub fn set_msr(&mut self, index: u32, value: u64) -> bool {
        self.msrs.set(index, value)
    }

    /// Moves the phase forward to `to`; never backwards.
    pub fn advance(&mut self, to: Phase) {
        if to > self.phase {
            self.phase = to;
        }
    }

    /// Whether the guest can take an interrupt (RFLAGS.IF set, no
    /// interrupt shadow), as VMX's `interrupt_allowed` answers it.
    pub fn interrupt_allowed(&self) -> bool {
        self.rflags & RFLAGS_IF != 0 && self.irq.interrupt_shadow == 0
    }

    /// Whether the guest can take an NMI (not masked, no MOV SS shadow).
    pub fn nmi_allowed(&self) -> bool {
        !self.irq.nmi_mask && self.irq.interrupt_shadow & SHADOW_MOV_SS == 0
    }

    /// Why no event may be injected now, whatever the guest's flags
    /// (pKVM-IA `pkvm_event_injection_allowed`): an event needs
    /// reinjection, an exception is pending, or a failed MSR emulation is
    /// pending. `None` when injection may proceed to the guest's own
    /// interrupt or NMI blocking.
    pub fn injection_busy(&self) -> Option<Busy> {
        if self.irq.needs_reinjection() {
            Some(Busy::NeedsReinjection)
        } else if self.irq.pending_exception.is_some() {
            Some(Busy::ExceptionPending)
        } else if self.emulated_msr_error.is_some_and(|e| e != 0) {
            Some(Busy::MsrErrorPending)
        } else {
            None
        }
    }
}
