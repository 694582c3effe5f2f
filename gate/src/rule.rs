//! A policy rule as the hypervisor sees it: its verdict, its reason, where
//! it came from, and the value constraints it carries.

use crate::vocab::Verdict;

/// A compact rule id: the rule's position in the policy's rule table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u32);

impl RuleId {
    /// The most rules a policy may hold: every id must fit the C ABI's
    /// `int32_t rule` of `struct pvgate_audit_event` (where -1 is default
    /// deny), so ids run from 0 to `i32::MAX - 1`.
    pub const MAX_RULES: usize = i32::MAX as usize;

    /// The rule's position in the rule table; `usize::MAX` (no rule) where
    /// a `u32` does not fit a `usize`, so a lookup by it fails closed.
    #[inline]
    pub fn index(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// What a policy does when the host proposes CPUID bits it may not control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ViolationMode {
    /// Silently take the hypervisor's value and count it (pKVM-IA).
    #[default]
    Filter,
    /// Fail the call and report the corrected table (SEV-SNP).
    Reject,
}

impl ViolationMode {
    /// The name used in policies (`filter`, `reject`).
    pub const fn name(self) -> &'static str {
        match self {
            ViolationMode::Filter => "filter",
            ViolationMode::Reject => "reject",
        }
    }
}

/// Value constraints of an MSR rule.
///
/// For a write: the host's value may only set bits in `write_mask` (any
/// other set bit refuses the write); afterwards the hypervisor sets
/// `force_on` and clears `force_off`. For a read: the host sees only the
/// bits in `read_mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsrConstraint {
    /// Bits the host may set in a written value.
    pub write_mask: u64,
    /// Bits the hypervisor sets after an allowed write.
    pub force_on: u64,
    /// Bits the hypervisor clears after an allowed write.
    pub force_off: u64,
    /// Bits a read shows the host.
    pub read_mask: u64,
}

impl MsrConstraint {
    /// No constraint: every bit may be written and read.
    pub const NONE: MsrConstraint = MsrConstraint {
        write_mask: u64::MAX,
        force_on: 0,
        force_off: 0,
        read_mask: u64::MAX,
    };
}

/// Per-bit control of one CPUID output register.
///
/// The four masks are disjoint; bits in none of them are `fixed` (the
/// hypervisor's base value is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RegControl {
    /// Bits whose value the host chooses.
    pub host: u32,
    /// Bits the host may clear in the base but never set.
    pub clear_only: u32,
    /// Bits forced to 1.
    pub force_on: u32,
    /// Bits forced to 0.
    pub force_off: u32,
}

impl RegControl {
    /// Everything fixed: the host controls nothing.
    pub const FIXED: RegControl = RegControl {
        host: 0,
        clear_only: 0,
        force_on: 0,
        force_off: 0,
    };

    /// Bits kept at the hypervisor's base value.
    pub const fn fixed(&self) -> u32 {
        !(self.host | self.clear_only | self.force_on | self.force_off)
    }
}

/// How one CPUID bit is controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitMode {
    /// The hypervisor's base value is kept.
    Fixed,
    /// The host's value is taken.
    Host,
    /// The host may clear the base value, never set it.
    ClearOnly,
    /// Always 1.
    ForceOn,
    /// Always 0.
    ForceOff,
}

impl BitMode {
    /// The mode's name in policies (`fixed`, `host`, `clear-only`, `force-on`, `force-off`).
    pub const fn name(self) -> &'static str {
        match self {
            BitMode::Fixed => "fixed",
            BitMode::Host => "host",
            BitMode::ClearOnly => "clear-only",
            BitMode::ForceOn => "force-on",
            BitMode::ForceOff => "force-off",
        }
    }
}

impl RegControl {
    /// The mode of one bit (0..=31); bits above 31 are `fixed`. Should the
    /// masks of a malformed control overlap, the mode is the one the merge
    /// applies: force-off, then force-on, then host, then clear-only.
    pub const fn mode_of(&self, bit: u32) -> BitMode {
        let m = match 1u32.checked_shl(bit) {
            Some(m) => m,
            None => return BitMode::Fixed,
        };
        if self.force_off & m != 0 {
            BitMode::ForceOff
        } else if self.force_on & m != 0 {
            BitMode::ForceOn
        } else if self.host & m != 0 {
            BitMode::Host
        } else if self.clear_only & m != 0 {
            BitMode::ClearOnly
        } else {
            BitMode::Fixed
        }
    }
}

/// CPUID controls of a rule for EAX, EBX, ECX, EDX (in that order).
pub type CpuidControls = [RegControl; 4];

/// Value checks a PV rule declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PvConstraint {
    /// For getters: bits of the returned value the host sees.
    pub read_mask: u64,
    /// For interrupt injection: the lowest vector the host may inject.
    pub min_vector: u8,
    /// For interrupt injection: whether software interrupts are allowed.
    pub allow_soft: bool,
}

impl PvConstraint {
    /// No constraint.
    pub const NONE: PvConstraint = PvConstraint {
        read_mask: u64::MAX,
        min_vector: 0,
        allow_soft: true,
    };
}

/// The class-specific part of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleDetail {
    /// An `[[msr]]` rule.
    Msr(MsrConstraint),
    /// A `[[cpuid]]` rule.
    Cpuid(CpuidControls),
    /// A `[[pv]]` rule.
    Pv(PvConstraint),
}

/// One rule of a compiled policy, as the rule table holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule<'a> {
    /// The rule's id (its index in the rule table).
    pub id: RuleId,
    /// The rule's name (given in the policy, or derived from its resource).
    pub name: &'a str,
    /// The rule's verdict.
    pub verdict: Verdict,
    /// Why the rule exists, with its source.
    pub reason: &'a str,
    /// The policy line the rule starts on (1-based).
    pub line: u32,
    /// The class-specific constraints.
    pub detail: RuleDetail,
}

impl Rule<'_> {
    /// The MSR constraint of an MSR rule; `None` for a rule of another
    /// class. Callers deny on `None` (fail closed): a malformed table never
    /// turns into "every bit allowed".
    pub const fn msr_constraint(&self) -> Option<MsrConstraint> {
        match self.detail {
            RuleDetail::Msr(c) => Some(c),
            RuleDetail::Cpuid(_) | RuleDetail::Pv(_) => None,
        }
    }

    /// The PV constraint of a PV rule; `None` for a rule of another class
    /// (callers deny on `None`).
    pub const fn pv_constraint(&self) -> Option<PvConstraint> {
        match self.detail {
            RuleDetail::Pv(c) => Some(c),
            RuleDetail::Msr(_) | RuleDetail::Cpuid(_) => None,
        }
    }

    /// The CPUID controls of a CPUID rule; everything fixed (the host
    /// controls no bit, the fail-closed value) for other rules.
    pub const fn cpuid_controls(&self) -> CpuidControls {
        match self.detail {
            RuleDetail::Cpuid(c) => c,
            RuleDetail::Msr(_) | RuleDetail::Pv(_) => [RegControl::FIXED; 4],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bit_reports_its_mode_and_unnamed_bits_are_fixed() {
        let c = RegControl {
            host: 1,
            clear_only: 2,
            force_on: 4,
            force_off: 8,
        };
        let modes: [BitMode; 5] = [0, 1, 2, 3, 4].map(|b| c.mode_of(b));
        assert_eq!(
            modes,
            [
                BitMode::Host,
                BitMode::ClearOnly,
                BitMode::ForceOn,
                BitMode::ForceOff,
                BitMode::Fixed
            ]
        );
        assert_eq!(c.mode_of(32), BitMode::Fixed);
        assert_eq!(c.mode_of(u32::MAX), BitMode::Fixed);
        assert_eq!(BitMode::ClearOnly.name(), "clear-only");
    }

    fn rule(detail: RuleDetail) -> Rule<'static> {
        Rule {
            id: RuleId(0),
            name: "r",
            verdict: Verdict::Allow,
            reason: "a test rule.",
            line: 1,
            detail,
        }
    }

    #[test]
    fn a_constraint_asked_of_another_class_is_none_never_everything_allowed() {
        let msr = rule(RuleDetail::Msr(MsrConstraint::NONE));
        let pv = rule(RuleDetail::Pv(PvConstraint::NONE));
        let cpuid = rule(RuleDetail::Cpuid([RegControl::FIXED; 4]));
        assert_eq!(msr.msr_constraint(), Some(MsrConstraint::NONE));
        assert_eq!(pv.pv_constraint(), Some(PvConstraint::NONE));
        assert_eq!(pv.msr_constraint(), None);
        assert_eq!(cpuid.msr_constraint(), None);
        assert_eq!(msr.pv_constraint(), None);
        assert_eq!(cpuid.pv_constraint(), None);
        // CPUID controls of another class give the host no bit.
        let host_bits = |r: Rule<'_>| {
            r.cpuid_controls()
                .iter()
                .map(|c| !c.fixed())
                .fold(0, |a, b| a | b)
        };
        assert_eq!(host_bits(msr), 0);
        assert_eq!(host_bits(pv), 0);
    }
}
