//! Lookups the generated tables use: the binary search of large policies
//! and the 2-bit verdict maps over KVM's dense MSR-bitmap regions.

use crate::pv::PvCall;
use crate::rule::{Rule, RuleDetail, RuleId};
use crate::vocab::Verdict;

/// First MSR of KVM's low MSR-bitmap region (0x0–0x1FFF).
pub const MSR_LOW_BASE: u32 = 0;
/// First MSR of KVM's high MSR-bitmap region (0xC0000000–0xC0001FFF).
pub const MSR_HIGH_BASE: u32 = 0xc000_0000;
/// MSRs in each of KVM's two MSR-bitmap regions.
pub const MSR_REGION_LEN: u32 = 0x2000;
/// MSRs per word of a verdict map: 2 bits each.
pub const MSRS_PER_WORD: u32 = 32;

/// A 2-bit verdict map over a prefix of one of KVM's MSR-bitmap regions,
/// starting at MSR `BASE`: MSR `BASE + n` is bits `2 * (n % 32)` and up
/// of `words[n / 32]`, 0 deny, 1 allow, 2 ignore ([`Verdict::from_bits`]).
/// `BASE` is a const parameter so that the offset and the bounds check
/// fold into the caller's window check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictMap<const BASE: u32, const WORDS: usize> {
    /// 32 MSRs per word.
    pub words: [u64; WORDS],
}

impl<const BASE: u32, const WORDS: usize> VerdictMap<BASE, WORDS> {
    /// The verdict the map holds for MSR `index`: one load and a shift.
    /// An index outside the map is denied (callers match the covered
    /// window first, so that is only a fail-closed fallback).
    #[inline]
    pub fn verdict(&self, index: u32) -> Verdict {
        let offset = index.wrapping_sub(BASE);
        let word = self
            .words
            .get((offset / MSRS_PER_WORD) as usize)
            .copied()
            .unwrap_or(0);
        // `wrapping_shr` shifts by its argument mod 64: 2 * (offset % 32).
        Verdict::from_bits(word.wrapping_shr(offset.wrapping_mul(2)))
    }
}

/// Slots of a [`PvRules`] table: slot 0 (no call has ABI number 0) and
/// one per [`PvCall`], whose numbers run from 1 to `PvCall::ALL.len()`.
pub const PV_RULE_SLOTS: usize = PvCall::ALL.len() + 1;

/// The rule of every PV call for one VM kind and phase, indexed by the
/// call's ABI number (`None`: default deny): a PV lookup is one load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvRules(pub [Option<RuleId>; PV_RULE_SLOTS]);

impl PvRules {
    /// The rule the table holds for `call`. Every call number is below
    /// [`PV_RULE_SLOTS`], so the bounds check folds away; were it not, the
    /// call would be denied (fail closed).
    #[inline]
    pub const fn rule(&self, call: PvCall) -> Option<RuleId> {
        // `get` is not const yet: split at the call's number and take the first.
        match self.0.split_at_checked(call as usize) {
            Some((_, [rule, ..])) => *rule,
            _ => None,
        }
    }
}

/// Binary search over sorted, disjoint, inclusive `(first, last, rule)`
/// ranges; the rule whose range holds `index`, or `None`.
pub const fn find_range(table: &[(u32, u32, RuleId)], index: u32) -> Option<RuleId> {
    let mut lo = 0;
    let mut hi = table.len();
    while lo < hi {
        // lo < hi <= table.len(): neither operation can wrap.
        let mid = lo.wrapping_add(hi.wrapping_sub(lo) >> 1);
        // `get` is not const yet: split at `mid` and take the first.
        let Some((_, from_mid)) = table.split_at_checked(mid) else {
            return None;
        };
        let Some(&(first, last, rule)) = from_mid.first() else {
            return None;
        };
        if index < first {
            hi = mid;
        } else if index > last {
            lo = mid.wrapping_add(1);
        } else {
            return Some(rule);
        }
    }
    None
}

/// The verdict of the MSR rule a lookup found in a rule table, decided as
/// [`crate::decide_msr`] decides it: deny when there is no rule, when the
/// table holds no rule with that id at that position, or when the rule is
/// not an MSR rule (a malformed table fails closed).
#[inline]
pub fn msr_rule_verdict(rules: &[Rule<'_>], rule: Option<RuleId>) -> Verdict {
    let Some(id) = rule else {
        return Verdict::Deny;
    };
    match rules.get(id.index()) {
        Some(r) if r.id == id && matches!(r.detail, RuleDetail::Msr(_)) => r.verdict,
        _ => Verdict::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pv_rule_table_has_one_slot_per_call_number() {
        // Each call's rule is its own slot: tag slot n with rule n.
        let mut slots = [None; PV_RULE_SLOTS];
        for (n, slot) in slots.iter_mut().enumerate() {
            *slot = Some(RuleId(u32::try_from(n).unwrap_or(u32::MAX)));
        }
        let table = PvRules(slots);
        for (i, call) in PvCall::ALL.into_iter().enumerate() {
            // The emitted tables list `PvCall::ALL` after slot 0.
            assert_eq!(call as usize, i + 1, "{call:?}");
            assert!((call as usize) < PV_RULE_SLOTS, "{call:?}");
            assert_eq!(table.rule(call), Some(RuleId(call as u32)), "{call:?}");
        }
        let none = PvRules([None; PV_RULE_SLOTS]);
        assert!(PvCall::ALL.iter().all(|&c| none.rule(c).is_none()));
    }

    #[test]
    fn finds_every_boundary_and_nothing_between() {
        let t = [
            (0, 0, RuleId(0)),
            (5, 9, RuleId(1)),
            (u32::MAX, u32::MAX, RuleId(2)),
        ];
        assert_eq!(find_range(&t, 0), Some(RuleId(0)));
        assert_eq!(find_range(&t, 1), None);
        assert_eq!(find_range(&t, 4), None);
        assert_eq!(find_range(&t, 5), Some(RuleId(1)));
        assert_eq!(find_range(&t, 9), Some(RuleId(1)));
        assert_eq!(find_range(&t, 10), None);
        assert_eq!(find_range(&t, u32::MAX - 1), None);
        assert_eq!(find_range(&t, u32::MAX), Some(RuleId(2)));
        assert_eq!(find_range(&[], 7), None);
    }

    #[test]
    fn a_verdict_map_answers_two_bits_per_msr_and_denies_past_its_end() {
        // MSR base+0 allow, +1 ignore, +31 allow, +32 ignore, +33 the unused
        // code 3 (deny), +63 ignore; everything else deny.
        let base = MSR_HIGH_BASE;
        let map = VerdictMap::<MSR_HIGH_BASE, 2> {
            words: [1 | 2 << 2 | 1 << 62, 2 | 3 << 2 | 2 << 62],
        };
        let want = |off: u32| match off {
            0 | 31 => Verdict::Allow,
            1 | 32 | 63 => Verdict::Ignore,
            _ => Verdict::Deny,
        };
        for off in 0..80 {
            assert_eq!(map.verdict(base + off), want(off), "+{off}");
        }
        assert_eq!(map.verdict(base - 1), Verdict::Deny);
        assert_eq!(map.verdict(u32::MAX), Verdict::Deny);
        let empty = VerdictMap::<MSR_LOW_BASE, 0> { words: [] };
        assert_eq!(empty.verdict(0), Verdict::Deny);
    }

    #[test]
    fn a_rule_verdict_is_the_msr_rules_or_deny() {
        use crate::rule::{MsrConstraint, PvConstraint};
        let rule = |id, verdict, detail| Rule {
            id: RuleId(id),
            name: "r",
            verdict,
            reason: "a test rule.",
            line: 1,
            detail,
        };
        let rules = [
            rule(0, Verdict::Ignore, RuleDetail::Msr(MsrConstraint::NONE)),
            rule(1, Verdict::Allow, RuleDetail::Msr(MsrConstraint::NONE)),
            rule(2, Verdict::Allow, RuleDetail::Pv(PvConstraint::NONE)),
            rule(7, Verdict::Allow, RuleDetail::Msr(MsrConstraint::NONE)),
        ];
        assert_eq!(msr_rule_verdict(&rules, Some(RuleId(0))), Verdict::Ignore);
        assert_eq!(msr_rule_verdict(&rules, Some(RuleId(1))), Verdict::Allow);
        // Another class, another id at that position, no such rule, none.
        assert_eq!(msr_rule_verdict(&rules, Some(RuleId(2))), Verdict::Deny);
        assert_eq!(msr_rule_verdict(&rules, Some(RuleId(3))), Verdict::Deny);
        assert_eq!(msr_rule_verdict(&rules, Some(RuleId(4))), Verdict::Deny);
        assert_eq!(msr_rule_verdict(&rules, None), Verdict::Deny);
    }

    #[test]
    fn verdicts_round_trip_through_their_bits() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_bits(v as u64), v);
        }
        assert_eq!(Verdict::from_bits(3), Verdict::Deny);
    }
}
