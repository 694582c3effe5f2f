//! One CPUID entry (leaf, subleaf and its four output registers) and the
//! bounded table of them that vCPUs, VM kinds and the CPU model hold.

use heapless::Vec;
use pvgate_gate::Register;

/// How many entries a CPUID table holds (KVM's `KVM_MAX_CPUID_ENTRIES` is 256).
pub const MAX_CPUID_ENTRIES: usize = 256;

/// One CPUID leaf/subleaf and its four output registers, as in
/// `struct kvm_cpuid_entry2` (without the flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(C)]
pub struct CpuidEntry {
    /// CPUID input EAX (the leaf).
    pub leaf: u32,
    /// CPUID input ECX (the subleaf; 0 for leaves without subleaves).
    pub subleaf: u32,
    /// Output EAX.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
}

impl CpuidEntry {
    /// An entry with every output register zero.
    pub const fn zero(leaf: u32, subleaf: u32) -> CpuidEntry {
        CpuidEntry {
            leaf,
            subleaf,
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    }

    /// One output register.
    pub const fn reg(&self, r: Register) -> u32 {
        match r {
            Register::Eax => self.eax,
            Register::Ebx => self.ebx,
            Register::Ecx => self.ecx,
            Register::Edx => self.edx,
        }
    }

    /// Sets one output register.
    pub fn set_reg(&mut self, r: Register, value: u32) {
        match r {
            Register::Eax => self.eax = value,
            Register::Ebx => self.ebx = value,
            Register::Ecx => self.ecx = value,
            Register::Edx => self.edx = value,
        }
    }

    /// Whether this entry answers CPUID(leaf, subleaf).
    pub const fn is(&self, leaf: u32, subleaf: u32) -> bool {
        self.leaf == leaf && self.subleaf == subleaf
    }
}

/// A CPUID table of at most [`MAX_CPUID_ENTRIES`] entries.
pub type CpuidTable = Vec<CpuidEntry, MAX_CPUID_ENTRIES>;

/// The entry for (leaf, subleaf) in a table.
pub fn find_entry(table: &[CpuidEntry], leaf: u32, subleaf: u32) -> Option<&CpuidEntry> {
    table.iter().find(|e| e.is(leaf, subleaf))
}
