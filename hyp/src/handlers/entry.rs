//! The state a protected vCPU enters with at its first run, which the
//! hypervisor chooses and the host cannot change (pKVM-IA `pkvm_vcpu_run`
//! at `!kvm_vcpu_has_run`): the pvmfw entry state of the boot vCPU, the
//! INIT + SIPI state of a secondary the guest started, and the forced
//! registers every protected vCPU gets.

use super::events::sipi_entry;
use super::regs::set_segment;
use crate::config::HypConfig;
use crate::registers::{DescTable, SegReg, Segment};
use crate::state::{Gpr, RFLAGS_RESET, VcpuState};

/// CR0.ET (bit 4): set at every reset.
pub(crate) const CR0_ET: u64 = 1 << 4;
/// CR0.PE (bit 0): protected mode.
pub(crate) const CR0_PE: u64 = 1;
/// CR0.NW | CR0.CD (bits 29, 30): kept by INIT (SDM Vol. 3A Table 10-1).
pub(crate) const CR0_CD_NW: u64 = 0x6000_0000;
/// CR8 (TPR\[7:4\]) a protected APIC's vCPU gets after every reset: TPR 0x10
/// masks vectors 16–31 until the guest sets its own (pKVM-IA).
pub(crate) const PROTECTED_APIC_CR8: u64 = 1;

/// A flat 4 GiB 32-bit code segment (VMX access rights: type 0xB, S, P,
/// D/B, G).
const FLAT_CODE: Segment = Segment {
    selector: 0,
    base: 0,
    limit: 0xffff_ffff,
    ar: 0xc09b,
};
/// A flat 4 GiB 32-bit data segment (type 0x3, S, P, D/B, G).
const FLAT_DATA: Segment = Segment {
    selector: 0,
    base: 0,
    limit: 0xffff_ffff,
    ar: 0xc093,
};
/// A present busy 32-bit TSS of limit 0 (type 0xB, P).
const NULL_TSS: Segment = Segment {
    selector: 0,
    base: 0,
    limit: 0,
    ar: 0x8b,
};
/// An unusable LDTR (VMX access rights bit 16).
const UNUSABLE: Segment = Segment {
    selector: 0,
    base: 0,
    limit: 0,
    ar: 1 << 16,
};
/// An invalid descriptor table: base 0, limit 0.
const INVALID_TABLE: DescTable = DescTable { base: 0, limit: 0 };

/// The boot vCPU of a VM finalized with firmware (pKVM-IA
/// `pkvm_vcpu_pvmfw_entry_init`): RIP = the pvmfw load address; RFLAGS and
/// CR4 at reset; CR0 = PE | ET (32-bit protected mode, paging off); EFER
/// 0; flat 4 GiB CS and data segments; a null TSS and an unusable LDT;
/// GDTR and IDTR invalid (base 0, limit 0), so an early exception before
/// pvmfw installs its own IDT is a triple fault and a segment reload a
/// #GP. The general registers but RIP stay as the host seeded them.
pub(crate) fn pvmfw_entry(v: &mut VcpuState, load_addr: u64) {
    v.set_gpr(Gpr::Rip, load_addr);
    v.rflags = RFLAGS_RESET;
    v.cr4 = 0;
    v.cr0 = CR0_PE | CR0_ET;
    v.efer = 0;
    set_segment(v, SegReg::Cs, FLAT_CODE);
    for seg in [SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs, SegReg::Ss] {
        set_segment(v, seg, FLAT_DATA);
    }
    set_segment(v, SegReg::Tr, NULL_TSS);
    set_segment(v, SegReg::Ldtr, UNUSABLE);
    v.gdt = INVALID_TABLE;
    v.idt = INVALID_TABLE;
}

/// A secondary the guest started (pKVM-IA `pkvm_vcpu_ap_entry_init`): a
/// full INIT ([`init`]), discarding whatever the host
/// pre-configured, then the guest's SIPI vector (CS selector = vector <<
/// 8, CS base = vector << 12, RIP 0). `signature` is CPUID.1:EAX (RDX
/// after INIT).
pub(crate) fn ap_entry(v: &mut VcpuState, vector: u8, signature: u64) {
    init(v, signature);
    sipi_entry(v, vector);
}

/// What every protected vCPU gets at its first run, whichever its entry:
/// R15 = 0 (pKVM-IA reserves it for itself), and TPR 0x10 (CR8 = 1) when
/// its APIC is protected.
pub(crate) fn force_protected(v: &mut VcpuState, config: &HypConfig) {
    v.set_gpr(Gpr::R15, 0);
    force_protected_tpr(v, config);
}

/// After any reset of a vCPU with a protected APIC, TPR = 0x10 (CR8 = 1):
/// the host cannot push exception vectors 16–31 through posted interrupts
/// before the guest sets its own TPR (pKVM-IA).
pub(crate) fn force_protected_tpr(v: &mut VcpuState, config: &HypConfig) {
    if config.protected_apic {
        v.cr8 = PROTECTED_APIC_CR8;
    }
}

/// INIT (SDM Vol. 3A §10.1, Table 10-1, the INIT column): general
/// registers 0 but RDX = `signature` (CPUID.1:EAX), RIP 0xFFF0, RFLAGS
/// 0x2, CS 0xF000/0xFFFF0000 and the other segments at reset, GDTR and
/// IDTR base 0 limit 0xFFFF, CR0 = ET with CD and NW kept, CR3 (the
/// page-table root and level), CR4, CR8 and EFER 0, DR7 0x400, nothing
/// queued, no interrupt shadow, NMIs unmasked. INIT keeps what the SDM
/// says it keeps: MSRs (MTRRs, PAT, MISC_ENABLE), the x87/SSE state
/// (here its buffer size), the TSC (offset and multiplier), the
/// machine-check banks (MCG_CAP); and the hypervisor's own records
/// (phase, run count, run state, CPUID table, exception bitmap, the
/// guest's SIPI vector, the APIC's setup).
pub(crate) fn init(v: &mut VcpuState, signature: u64) {
    let keep = core::mem::replace(v, VcpuState::RESET);
    v.phase = keep.phase;
    v.runs = keep.runs;
    v.run_state = keep.run_state;
    v.pvmfw_entry = keep.pvmfw_entry;
    v.guest_sipi = keep.guest_sipi;
    v.cr0 = CR0_ET | (keep.cr0 & CR0_CD_NW);
    v.exception_bitmap = keep.exception_bitmap;
    v.msrs = keep.msrs;
    v.cpuid = keep.cpuid;
    v.cpuid_set = keep.cpuid_set;
    v.tsc_offset = keep.tsc_offset;
    v.tsc_multiplier = keep.tsc_multiplier;
    v.mcg_cap = keep.mcg_cap;
    v.fpstate_size = keep.fpstate_size;
    v.irq.tpr_threshold = keep.irq.tpr_threshold;
    v.irq.eoi_exitmap = keep.irq.eoi_exitmap;
    v.irq.apicv_active = keep.irq.apicv_active;
    v.irq.apic_mode = keep.irq.apic_mode;
    v.set_gpr(Gpr::Rdx, signature);
}
