//! The CPUID merge: the effective table is built from the hypervisor's base
//! and the host's proposal under a rule's per-bit controls.

use crate::rule::RegControl;

/// A CPUID output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Register {
    /// EAX.
    Eax = 0,
    /// EBX.
    Ebx = 1,
    /// ECX.
    Ecx = 2,
    /// EDX.
    Edx = 3,
}

impl Register {
    /// The four registers, in output order.
    pub const ALL: [Register; 4] = [Register::Eax, Register::Ebx, Register::Ecx, Register::Edx];

    /// The register's name in policies (`eax` … `edx`).
    pub const fn name(self) -> &'static str {
        match self {
            Register::Eax => "eax",
            Register::Ebx => "ebx",
            Register::Ecx => "ecx",
            Register::Edx => "edx",
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Option<Register> {
        Register::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The outcome of merging one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidMerge {
    /// The value the guest will see.
    pub effective: u32,
    /// Bits where the host's proposal differs from `effective`: what the
    /// host asked for and may not have. Zero when the proposal is accepted.
    pub violations: u32,
}

/// What the hypervisor offers as supported: the base with the forced bits
/// applied. Proposing it unchanged is always accepted.
pub const fn supported_register(base: u32, c: RegControl) -> u32 {
    (base | c.force_on) & !c.force_off
}

/// Merges one register: fixed bits keep the base, host bits take the
/// host's value, clear-only bits take base AND host, forced bits are forced.
///
/// Fail closed on a malformed control whose masks overlap: force-off wins
/// over everything and force-on over the host's choice, as in
/// [`supported_register`] and [`RegControl::mode_of`].
pub const fn merge_register(base: u32, host: u32, c: RegControl) -> CpuidMerge {
    let effective =
        ((base & c.fixed()) | (host & c.host) | (base & host & c.clear_only) | c.force_on)
            & !c.force_off;
    CpuidMerge {
        effective,
        violations: effective ^ host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAF1_ECX: RegControl = RegControl {
        host: 1 << 31 | 1 << 24,
        clear_only: 1 << 13,
        force_on: 1 << 21,
        force_off: 1 << 5,
    };

    #[test]
    fn the_supported_value_is_always_accepted() {
        for base in [0, u32::MAX, 0x8120_2000, 0xf7f8_3203] {
            let offered = supported_register(base, LEAF1_ECX);
            let m = merge_register(base, offered, LEAF1_ECX);
            assert_eq!(m.violations, 0, "base {base:#x}");
            assert_eq!(m.effective, offered);
        }
    }

    #[test]
    fn host_bits_follow_the_host_and_fixed_bits_keep_the_base() {
        let base = 1 << 13 | 1 << 0;
        let m = merge_register(base, 1 << 31 | 1 << 21 | 1 << 13 | 1 << 0, LEAF1_ECX);
        assert_eq!(m.effective, 1 << 31 | 1 << 21 | 1 << 13 | 1 << 0);
        assert_eq!(m.violations, 0);
        // The host clears a fixed bit (bit 0): the base wins and it is reported.
        let m = merge_register(base, 1 << 21 | 1 << 13, LEAF1_ECX);
        assert_eq!(m.effective, 1 << 21 | 1 << 13 | 1);
        assert_eq!(m.violations, 1);
    }

    #[test]
    fn clear_only_bits_can_be_cleared_but_not_added() {
        let m = merge_register(0, 1 << 21 | 1 << 13, LEAF1_ECX);
        assert_eq!(m.effective, 1 << 21);
        assert_eq!(m.violations, 1 << 13);
        let m = merge_register(1 << 13, 1 << 21, LEAF1_ECX);
        assert_eq!(m.effective, 1 << 21);
        assert_eq!(m.violations, 0);
    }

    #[test]
    fn a_malformed_control_with_overlapping_masks_keeps_forced_bits_forced() {
        // Masks are disjoint in every table codegen emits; a table that is
        // not (bit 5 both host and force-off, bit 6 both host and
        // force-on, bit 7 both force-on and force-off) must not give the
        // host a bit the policy forces.
        let c = RegControl {
            host: 1 << 5 | 1 << 6,
            clear_only: 0,
            force_on: 1 << 6 | 1 << 7,
            force_off: 1 << 5 | 1 << 7,
        };
        let m = merge_register(u32::MAX, u32::MAX, c);
        assert_eq!(m.effective & (1 << 5 | 1 << 7), 0, "force-off wins");
        let m = merge_register(0, 0, c);
        assert_eq!(m.effective & (1 << 6), 1 << 6, "force-on wins over host");
        assert_eq!(supported_register(u32::MAX, c) & (1 << 5 | 1 << 7), 0);
        // The reported mode says the same as the merge.
        assert_eq!(c.mode_of(5), crate::rule::BitMode::ForceOff);
        assert_eq!(c.mode_of(6), crate::rule::BitMode::ForceOn);
        assert_eq!(c.mode_of(7), crate::rule::BitMode::ForceOff);
    }

    #[test]
    fn forced_bits_override_the_host() {
        let m = merge_register(1 << 5, 1 << 5, LEAF1_ECX);
        assert_eq!(m.effective, 1 << 21);
        assert_eq!(m.violations, 1 << 21 | 1 << 5);
    }
}
