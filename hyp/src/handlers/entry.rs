//! The state a protected vCPU enters with at its first run, which the
//! hypervisor chooses and the host cannot change (pKVM-IA `pkvm_vcpu_run`
//! at `!kvm_vcpu_has_run`): the pvmfw entry state of the boot vCPU, the
//! INIT + SIPI state of a secondary the guest started, and the forced
//! registers every protected vCPU gets.

use super::events::sipi_entry;
use super::regs::set_segment;
use crate::config::HypConfig;
use crate::registers::{DescTable, SegReg, Segment};
use crate::state::{CR0_ET, CR0_PE, Gpr, PROTECTED_APIC_CR8, RFLAGS_RESET, VcpuState};

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
/// full INIT ([`VcpuState::init`]), discarding whatever the host
/// pre-configured, then the guest's SIPI vector (CS selector = vector <<
/// 8, CS base = vector << 12, RIP 0). `signature` is CPUID.1:EAX (RDX
/// after INIT).
pub(crate) fn ap_entry(v: &mut VcpuState, vector: u8, signature: u64) {
    v.init(signature);
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
