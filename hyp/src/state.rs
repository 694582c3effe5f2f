//! The protected vCPU state hyp owns: general registers, RIP, RFLAGS,
//! segments, descriptor tables, control registers, an MSR store, the
//! effective CPUID table, TSC scaling, MCE capability, FPU state size and
//! interrupt state. The register names and values are in
//! [`crate::registers`].

use heapless::Vec;
use pvgate_gate::Phase;

use crate::cpu::CpuidTable;
pub use crate::registers::{DescTable, GPR_COUNT, Gpr, GprWrite, SegReg, Segment};

/// How many MSRs a vCPU's MSR store holds.
pub const MSR_STORE_CAPACITY: usize = 64;

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

/// A vCPU's interrupt and event state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InterruptState {
    /// The vector queued for injection at the next entry.
    pub pending_irq: Option<u8>,
    /// Whether the queued interrupt is a software interrupt.
    pub pending_irq_soft: bool,
    /// An NMI is queued.
    pub pending_nmi: bool,
    /// An exception queued for injection (vector, error code).
    pub pending_exception: Option<(u8, Option<u32>)>,
    /// NMIs are blocked.
    pub nmi_mask: bool,
    /// Interrupt shadow (STI / MOV SS blocking), VMX encoding.
    pub interrupt_shadow: u8,
    /// The host asked for an exit when interrupts are allowed.
    pub irq_window: bool,
    /// The host asked for an exit when NMIs are allowed.
    pub nmi_window: bool,
    /// TPR threshold (update_cr8_intercept).
    pub tpr_threshold: u64,
    /// Highest in-service vector (hwapic_isr_update).
    pub max_isr: u64,
    /// Highest requested vector (hwapic_irr_update).
    pub max_irr: u64,
    /// EOI exit bitmap (256 bits).
    pub eoi_exitmap: [u64; 4],
    /// APICv is active.
    pub apicv_active: bool,
    /// Virtual APIC mode (set_virtual_apic_mode).
    pub apic_mode: u8,
    /// The last SIPI vector delivered.
    pub sipi_vector: Option<u8>,
}

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
    pub msrs: Vec<(u32, u64), MSR_STORE_CAPACITY>,
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
    /// The last complete_emulated_msr injected #GP.
    pub emulated_msr_error: bool,
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
            msrs: Vec::new(),
            cpuid: Vec::new(),
            cpuid_set: false,
            tsc_offset: 0,
            tsc_multiplier: 1 << 48,
            mcg_cap: 0,
            fpstate_size: 0,
            mmu_root: 0,
            mmu_level: 0,
            tlb_flushes: 0,
            emulated_msr_error: false,
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
    pub fn msr(&self, index: u32) -> Option<u64> {
        self.msrs.iter().find(|(i, _)| *i == index).map(|&(_, v)| v)
    }

    /// Stores an MSR value; `false` when the store is full.
    pub fn set_msr(&mut self, index: u32, value: u64) -> bool {
        if let Some(slot) = self.msrs.iter_mut().find(|(i, _)| *i == index) {
            slot.1 = value;
            return true;
        }
        self.msrs.push((index, value)).is_ok()
    }

    /// Moves the phase forward to `to`; never backwards.
    pub fn advance(&mut self, to: Phase) {
        if to > self.phase {
            self.phase = to;
        }
    }

    /// Whether an interrupt could be injected now (RFLAGS.IF set, no
    /// interrupt shadow, nothing already queued).
    pub fn interrupt_allowed(&self) -> bool {
        self.rflags & RFLAGS_IF != 0
            && self.irq.interrupt_shadow == 0
            && self.irq.pending_irq.is_none()
    }

    /// Whether an NMI could be injected now.
    pub fn nmi_allowed(&self) -> bool {
        !self.irq.nmi_mask && !self.irq.pending_nmi && self.irq.interrupt_shadow & 0x2 == 0
    }
}
