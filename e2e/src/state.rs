//! The vCPU state the VMM sets, in hyp's types ([`VcpuSetup`]), and its
//! translation into KVM's (`kvm_cpuid_entry2`, `kvm_msr_entry`,
//! `kvm_regs`, `kvm_sregs`).

use kvm_bindings::{
    KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2, kvm_regs, kvm_segment, kvm_sregs,
};
use pvgate_hyp::{CpuidEntry, DescTable, Gpr, Segment, VcpuState};

use crate::boot;

/// The register state of a vCPU that the VMM sets (the boot vCPU only: a
/// secondary gets its registers from INIT/SIPI in KVM's LAPIC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registers {
    /// General registers and RIP, in [`Gpr`] order.
    pub gprs: [u64; 17],
    /// RFLAGS.
    pub rflags: u64,
    /// Segments, in `SegReg` order (CS DS ES FS GS SS TR LDTR).
    pub segments: [Segment; 8],
    /// GDTR.
    pub gdt: DescTable,
    /// IDTR.
    pub idt: DescTable,
    /// CR0.
    pub cr0: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

/// Everything the VMM sets on one vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuSetup {
    /// The CPUID table.
    pub cpuid: Vec<CpuidEntry>,
    /// MSRs, ascending by index.
    pub msrs: Vec<(u32, u64)>,
    /// Registers, for the boot vCPU.
    pub regs: Option<Registers>,
}

/// CR0.PE | CR0.ET: protected mode, no paging (the boot protocol's entry).
pub const BOOT_CR0: u64 = 0x11;

/// The boot vCPU's registers at the kernel's PVH entry `entry`: 32-bit
/// protected mode with flat code and data segments, paging off, EBX at the
/// start-info structure, interrupts off. LDTR keeps its reset value.
pub fn boot_registers(entry: u64) -> Registers {
    let reset = VcpuState::RESET;
    let code = Segment {
        selector: boot::BOOT_CS,
        base: 0,
        limit: 0xffff_ffff,
        ar: 0xc09b,
    };
    let data = Segment {
        selector: boot::BOOT_DS,
        ..code
    };
    let data = Segment { ar: 0xc093, ..data };
    let tss = Segment {
        selector: boot::BOOT_TSS,
        base: 0,
        limit: 0xfffff,
        ar: 0x808b,
    };
    let mut gprs = [0; 17];
    gprs[Gpr::Rip as usize] = entry;
    gprs[Gpr::Rbx as usize] = boot::START_INFO;
    Registers {
        gprs,
        rflags: 0x2,
        segments: [code, data, data, data, data, data, tss, reset.segments[7]],
        gdt: DescTable {
            base: boot::GDT_ADDR,
            limit: (boot::GDT.len() * 8 - 1) as u16,
        },
        idt: DescTable {
            base: boot::IDT_ADDR,
            limit: 7,
        },
        cr0: BOOT_CR0,
        cr4: 0,
        efer: 0,
    }
}

/// hyp's CPUID entries as KVM's. Whether the subleaf matters comes from
/// KVM's supported table for the same leaf.
pub fn kvm_cpuid(table: &[CpuidEntry], supported: &[kvm_cpuid_entry2]) -> Vec<kvm_cpuid_entry2> {
    table
        .iter()
        .map(|e| {
            let significant = e.subleaf != 0
                || supported.iter().any(|s| {
                    s.function == e.leaf && s.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0
                });
            kvm_cpuid_entry2 {
                function: e.leaf,
                index: e.subleaf,
                flags: if significant {
                    KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                } else {
                    0
                },
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
                ..Default::default()
            }
        })
        .collect()
}

/// KVM's CPUID entries as hyp's.
pub fn from_kvm_cpuid(table: &[kvm_cpuid_entry2]) -> Vec<CpuidEntry> {
    table
        .iter()
        .map(|e| CpuidEntry {
            leaf: e.function,
            subleaf: e.index,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        })
        .collect()
}

/// A segment in VMX access-rights form as a `kvm_segment`.
pub fn kvm_segment_of(s: &Segment) -> kvm_segment {
    let ar = s.ar;
    let bit = |n: u32| ((ar >> n) & 1) as u8;
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: (ar & 0xf) as u8,
        s: bit(4),
        dpl: ((ar >> 5) & 3) as u8,
        present: bit(7),
        avl: bit(12),
        l: bit(13),
        db: bit(14),
        g: bit(15),
        unusable: bit(16),
        padding: 0,
    }
}

/// `regs` as `kvm_regs`.
pub fn kvm_regs_of(r: &Registers) -> kvm_regs {
    let g = |reg: Gpr| r.gprs[reg as usize];
    kvm_regs {
        rax: g(Gpr::Rax),
        rbx: g(Gpr::Rbx),
        rcx: g(Gpr::Rcx),
        rdx: g(Gpr::Rdx),
        rsi: g(Gpr::Rsi),
        rdi: g(Gpr::Rdi),
        rsp: g(Gpr::Rsp),
        rbp: g(Gpr::Rbp),
        r8: g(Gpr::R8),
        r9: g(Gpr::R9),
        r10: g(Gpr::R10),
        r11: g(Gpr::R11),
        r12: g(Gpr::R12),
        r13: g(Gpr::R13),
        r14: g(Gpr::R14),
        r15: g(Gpr::R15),
        rip: g(Gpr::Rip),
        rflags: r.rflags,
    }
}

/// `regs`'s segments, descriptor tables and control registers written
/// over `sregs` (KVM's, for what hyp does not hold: CR2, CR3, CR8, the
/// APIC base, the pending-interrupt bitmap).
pub fn kvm_sregs_of(r: &Registers, mut sregs: kvm_sregs) -> kvm_sregs {
    let [cs, ds, es, fs, gs, ss, tr, ldt] = &r.segments;
    sregs.cs = kvm_segment_of(cs);
    sregs.ds = kvm_segment_of(ds);
    sregs.es = kvm_segment_of(es);
    sregs.fs = kvm_segment_of(fs);
    sregs.gs = kvm_segment_of(gs);
    sregs.ss = kvm_segment_of(ss);
    sregs.tr = kvm_segment_of(tr);
    sregs.ldt = kvm_segment_of(ldt);
    sregs.gdt.base = r.gdt.base;
    sregs.gdt.limit = r.gdt.limit;
    sregs.idt.base = r.idt.base;
    sregs.idt.limit = r.idt.limit;
    sregs.cr0 = r.cr0;
    sregs.cr4 = r.cr4;
    sregs.efer = r.efer;
    sregs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_access_rights_become_kvm_segment_fields() {
        let cs = kvm_segment_of(&Segment {
            selector: 0x10,
            base: 0,
            limit: 0xffff_ffff,
            ar: 0xc09b,
        });
        assert_eq!((cs.type_, cs.s, cs.dpl, cs.present), (0xb, 1, 0, 1));
        assert_eq!((cs.avl, cs.l, cs.db, cs.g, cs.unusable), (0, 0, 1, 1, 0));
        let unusable = kvm_segment_of(&Segment {
            ar: 1 << 16,
            ..Segment::default()
        });
        assert_eq!(unusable.unusable, 1);
    }

    #[test]
    fn boot_registers_follow_the_boot_protocol() {
        let r = boot_registers(0x100_0000);
        let k = kvm_regs_of(&r);
        assert_eq!((k.rip, k.rbx, k.rflags), (0x100_0000, 0x6000, 2));
        assert_eq!(r.segments[0].selector, 0x10);
        assert_eq!(r.segments[5].selector, 0x18);
        assert_eq!(r.gdt.limit, 39);
    }
}
