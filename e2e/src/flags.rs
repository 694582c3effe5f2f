//! The CPUID bits the test checks, each with the `/proc/cpuinfo` flag
//! Linux derives from it (`arch/x86/include/asm/cpufeatures.h`; the
//! flag name is the feature's lower-case name, or its `/* "name" */`).
//! For each, the guest must show the flag exactly when the expected CPUID
//! table has the bit: no more, no less.

use std::collections::BTreeSet;

use pvgate_hyp::CpuidEntry;

/// A CPUID register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// One checked bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bit {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf.
    pub subleaf: u32,
    /// The register.
    pub reg: Reg,
    /// The bit number.
    pub bit: u32,
    /// The `/proc/cpuinfo` flag.
    pub flag: &'static str,
    /// Why it is checked.
    pub why: &'static str,
}

const fn bit(leaf: u32, reg: Reg, bit: u32, flag: &'static str, why: &'static str) -> Bit {
    Bit {
        leaf,
        subleaf: 0,
        reg,
        bit,
        flag,
        why,
    }
}

/// The checked bits.
pub const CHECKED: &[Bit] = &[
    bit(
        1,
        Reg::Ecx,
        5,
        "vmx",
        "forced off by the policy (no nested virtualization)",
    ),
    bit(1, Reg::Ecx, 21, "x2apic", "forced on by the policy"),
    bit(1, Reg::Ecx, 31, "hypervisor", "the host's (crosvm sets it)"),
    bit(
        1,
        Reg::Ecx,
        24,
        "tsc_deadline_timer",
        "the host's (crosvm sets it)",
    ),
    bit(1, Reg::Ecx, 13, "cx16", "fixed: the CPU model's"),
    bit(1, Reg::Ecx, 17, "pcid", "fixed: the CPU model's"),
    bit(1, Reg::Ecx, 30, "rdrand", "fixed: the CPU model's"),
    bit(7, Reg::Ebx, 0, "fsgsbase", "fixed: the CPU model's"),
    bit(7, Reg::Ebx, 7, "smep", "security: the CPU model's"),
    bit(7, Reg::Ebx, 9, "erms", "fixed: the CPU model's"),
    bit(7, Reg::Ebx, 10, "invpcid", "fixed: the CPU model's"),
    bit(7, Reg::Ebx, 20, "smap", "security: the CPU model's"),
    bit(7, Reg::Ecx, 2, "umip", "security: the CPU model's"),
    bit(0x8000_0001, Reg::Ecx, 2, "svm", "fixed: the CPU model's"),
    bit(0x8000_0001, Reg::Edx, 20, "nx", "security: the CPU model's"),
    bit(
        0x8000_0001,
        Reg::Edx,
        26,
        "pdpe1gb",
        "fixed: the CPU model's",
    ),
    bit(
        0x8000_0001,
        Reg::Edx,
        27,
        "rdtscp",
        "fixed: the CPU model's",
    ),
];

impl Bit {
    /// Whether `table` has this bit set (a missing leaf has none).
    pub fn in_table(&self, table: &[CpuidEntry]) -> bool {
        table
            .iter()
            .find(|e| e.leaf == self.leaf && e.subleaf == self.subleaf)
            .is_some_and(|e| {
                let r = match self.reg {
                    Reg::Eax => e.eax,
                    Reg::Ebx => e.ebx,
                    Reg::Ecx => e.ecx,
                    Reg::Edx => e.edx,
                };
                r >> self.bit & 1 == 1
            })
    }
}

/// The checked flags `table` says the guest must show.
pub fn expected(table: &[CpuidEntry]) -> BTreeSet<&'static str> {
    CHECKED
        .iter()
        .filter(|b| b.in_table(table))
        .map(|b| b.flag)
        .collect()
}

/// The checked flags the guest shows.
pub fn seen(flags: &BTreeSet<String>) -> BTreeSet<&'static str> {
    CHECKED
        .iter()
        .filter(|b| flags.contains(b.flag))
        .map(|b| b.flag)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_reads_the_named_bits() {
        let table = [
            CpuidEntry {
                leaf: 1,
                subleaf: 0,
                eax: 0,
                ebx: 0,
                ecx: (1 << 5) | (1 << 31),
                edx: 0,
            },
            CpuidEntry {
                leaf: 0x8000_0001,
                subleaf: 0,
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 1 << 20,
            },
        ];
        let e = expected(&table);
        assert_eq!(e, BTreeSet::from(["vmx", "hypervisor", "nx"]));
        let guest: BTreeSet<String> = ["vmx", "fpu", "smep"].map(String::from).into();
        assert_eq!(seen(&guest), BTreeSet::from(["vmx", "smep"]));
    }

    #[test]
    fn every_flag_is_checked_once() {
        let names: BTreeSet<_> = CHECKED.iter().map(|b| b.flag).collect();
        assert_eq!(names.len(), CHECKED.len());
    }
}
