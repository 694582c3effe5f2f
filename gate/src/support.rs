//! What the hypervisor supports in CPUID: the declared table
//! (`policy/registry/hypervisor-cpuid.toml`, compiled into every image)
//! that masks the hardware's CPUID into a protected VM's base, and the
//! merge that keeps every effective bit inside it whatever the host
//! proposes or the policy forces (fail closed: the supported mask wins).

use crate::cpuid::{CpuidMerge, Register, merge_register, supported_register};
use crate::rule::RegControl;
use crate::vocab::VmKind;

/// What the hypervisor supports in one CPUID output register.
///
/// The base a protected VM is built on is `(hardware & pass) | set`; no
/// effective bit outside `pass | set` survives the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RegSupport {
    /// Hardware bits passed through when the CPU has them.
    pub pass: u32,
    /// Bits the hypervisor sets itself, whatever the hardware says (its
    /// own leaves, the HYPERVISOR bit).
    pub set: u32,
}

impl RegSupport {
    /// Everything the hardware has, nothing added (a normal VM).
    pub const ALL: RegSupport = RegSupport {
        pass: u32::MAX,
        set: 0,
    };
    /// Nothing: the register reads as zero.
    pub const NONE: RegSupport = RegSupport { pass: 0, set: 0 };

    /// Every bit that may be 1 in an effective value.
    pub const fn allowed(self) -> u32 {
        self.pass | self.set
    }

    /// The supported base of a hardware value.
    pub const fn base(self, hardware: u32) -> u32 {
        (hardware & self.pass) | self.set
    }
}

/// One entry of the supported table: a leaf range, one subleaf or every
/// subleaf, and the four registers' support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuidSupport {
    /// First leaf.
    pub leaf_first: u32,
    /// Last leaf, inclusive.
    pub leaf_last: u32,
    /// The subleaf, or every subleaf.
    pub subleaf: Option<u32>,
    /// EAX, EBX, ECX, EDX.
    pub regs: [RegSupport; 4],
}

impl CpuidSupport {
    /// Whether the entry covers (leaf, subleaf).
    pub const fn covers(&self, leaf: u32, subleaf: u32) -> bool {
        self.leaf_first <= leaf
            && leaf <= self.leaf_last
            && match self.subleaf {
                Some(s) => s == subleaf,
                None => true,
            }
    }

    /// The support of one register.
    pub const fn reg(&self, reg: Register) -> RegSupport {
        let [eax, ebx, ecx, edx] = self.regs;
        match reg {
            Register::Eax => eax,
            Register::Ebx => ebx,
            Register::Ecx => ecx,
            Register::Edx => edx,
        }
    }
}

/// The support of (leaf, subleaf) in a table: the first entry covering it,
/// or nothing (a leaf the table does not list is not supported: fail
/// closed, as arm64 pKVM's unlisted ID registers read as zero).
pub fn support_in(table: &[CpuidSupport], leaf: u32, subleaf: u32) -> [RegSupport; 4] {
    table
        .iter()
        .find(|e| e.covers(leaf, subleaf))
        .map_or([RegSupport::NONE; 4], |e| e.regs)
}

/// The support a VM kind gets for (leaf, subleaf): a protected VM the
/// declared table's, a normal VM everything the hardware has (pKVM-IA
/// leaves a normal VM's CPUID to the host's KVM, which the host is trusted
/// to filter with its own supported CPUID).
pub fn support_for(
    table: &[CpuidSupport],
    kind: VmKind,
    leaf: u32,
    subleaf: u32,
) -> [RegSupport; 4] {
    match kind {
        VmKind::Protected => support_in(table, leaf, subleaf),
        VmKind::Normal => [RegSupport::ALL; 4],
    }
}

/// What the hypervisor offers as supported for one register: the
/// supported base of the hardware value with the policy's forced bits,
/// inside the supported mask. Proposing it unchanged is always accepted.
pub const fn offered_register(hardware: u32, c: RegControl, s: RegSupport) -> u32 {
    supported_register(s.base(hardware), c) & s.allowed()
}

/// Merges one register against the supported base: [`merge_register`]
/// over `s.base(hardware)`, then every bit outside `s.allowed()` cleared,
/// whatever the host proposed or the policy forces on. A bit the host set
/// outside the mask is a violation (filtered or rejected by the policy's
/// violation mode).
pub const fn merge_supported(hardware: u32, host: u32, c: RegControl, s: RegSupport) -> CpuidMerge {
    let m = merge_register(s.base(hardware), host, c);
    let effective = m.effective & s.allowed();
    CpuidMerge {
        effective,
        violations: effective ^ host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PMU_HIDDEN: CpuidSupport = CpuidSupport {
        leaf_first: 0xa,
        leaf_last: 0xa,
        subleaf: None,
        regs: [RegSupport::NONE; 4],
    };
    const LEAF1: CpuidSupport = CpuidSupport {
        leaf_first: 1,
        leaf_last: 1,
        subleaf: None,
        regs: [
            RegSupport::ALL,
            RegSupport::ALL,
            RegSupport {
                pass: !(1 << 5 | 1 << 15),
                set: 1 << 31,
            },
            RegSupport::ALL,
        ],
    };
    const HOST_ALL: RegControl = RegControl {
        host: u32::MAX,
        clear_only: 0,
        force_on: 0,
        force_off: 0,
    };

    #[test]
    fn the_host_cannot_re_enable_an_unsupported_bit() {
        let s = support_in(&[PMU_HIDDEN, LEAF1], 0xa, 0)[0];
        let m = merge_supported(0x0704_3004, 0x0704_3004, HOST_ALL, s);
        assert_eq!(m.effective, 0);
        assert_eq!(m.violations, 0x0704_3004);
        // VMX (bit 5) under host control stays clear; HYPERVISOR is set.
        let ecx = support_in(&[PMU_HIDDEN, LEAF1], 1, 0)[2];
        let m = merge_supported(1 << 5, 1 << 5, HOST_ALL, ecx);
        assert_eq!(m.effective, 0);
        assert_eq!(ecx.base(1 << 5 | 1), 1 << 31 | 1);
    }

    #[test]
    fn a_forced_on_unsupported_bit_stays_clear() {
        let c = RegControl {
            force_on: 1 << 15,
            ..RegControl::FIXED
        };
        let ecx = LEAF1.reg(Register::Ecx);
        assert_eq!(
            merge_supported(1 << 15, 1 << 15, c, ecx).effective & 1 << 15,
            0
        );
        assert_eq!(offered_register(1 << 15, c, ecx) & 1 << 15, 0);
    }

    #[test]
    fn an_unlisted_leaf_is_unsupported_for_protected_vms_only() {
        let t = [PMU_HIDDEN];
        assert_eq!(
            support_for(&t, VmKind::Protected, 7, 0),
            [RegSupport::NONE; 4]
        );
        assert_eq!(
            support_for(&t, VmKind::Normal, 0xa, 0),
            [RegSupport::ALL; 4]
        );
    }

    #[test]
    fn the_offered_value_is_always_accepted() {
        let c = RegControl {
            host: 1 << 31 | 1 << 24,
            clear_only: 1 << 13,
            force_on: 1 << 21 | 1 << 5,
            force_off: 1 << 3,
        };
        for hw in [0, u32::MAX, 0x7ffe_fbff] {
            let s = LEAF1.reg(Register::Ecx);
            let offered = offered_register(hw, c, s);
            let m = merge_supported(hw, offered, c, s);
            assert_eq!((m.effective, m.violations), (offered, 0), "hw {hw:#x}");
        }
    }
}
