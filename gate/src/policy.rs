//! The trait a compiled policy implements, and the decisions made from it.

use crate::pv::PvCall;
use crate::rule::{Rule, RuleDetail, RuleId, ViolationMode};
use crate::support::CpuidSupport;
use crate::vocab::{Access, Phase, Verdict, VmKind};

/// A compiled policy: the generated const tables implement it, and so does
/// the codegen interpreter (the reference semantics). Lookups return the id
/// of the one rule that covers the input, or `None` (default deny).
pub trait Policy {
    /// The policy's name from its header.
    fn name(&self) -> &str;
    /// SHA-256 of the canonical IR: matches an image to its reviewed policy.
    fn digest(&self) -> [u8; 32];
    /// What the CPUID merge does with bits the host may not control.
    fn violation_mode(&self) -> ViolationMode;
    /// The rule covering an MSR access.
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId>;
    /// The verdict on an MSR access, without the rule: what
    /// [`decide_msr`]`(..).verdict` answers. The generated tables answer it
    /// from a 2-bit verdict map over KVM's MSR-bitmap regions (one load and
    /// a shift) where the policy is dense there; callers that need the rule
    /// (its value constraint, the audit record, `explain`) ask
    /// [`decide_msr`], a second lookup.
    #[inline]
    fn msr_verdict(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Verdict {
        decide_msr(self, kind, phase, access, index).verdict
    }
    /// The rule covering a CPUID leaf and subleaf.
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId>;
    /// The rule covering a PV call.
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId>;
    /// The rule with this id.
    fn rule(&self, id: RuleId) -> Option<Rule<'_>>;
    /// The hypervisor's supported-CPUID table (protected VMs' base mask,
    /// `policy/registry/hypervisor-cpuid.toml`), compiled with the policy.
    fn cpuid_support(&self) -> &[CpuidSupport];
}

/// A borrowed policy is a policy, so a hypervisor that owns its policy can
/// also run over one it borrows (the trace replay does).
impl<P: Policy + ?Sized> Policy for &P {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn digest(&self) -> [u8; 32] {
        (**self).digest()
    }
    fn violation_mode(&self) -> ViolationMode {
        (**self).violation_mode()
    }
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        (**self).msr_rule(kind, phase, access, index)
    }
    fn msr_verdict(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Verdict {
        (**self).msr_verdict(kind, phase, access, index)
    }
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        (**self).cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        (**self).pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        (**self).rule(id)
    }
    fn cpuid_support(&self) -> &[CpuidSupport] {
        (**self).cpuid_support()
    }
}

/// A verdict and the rule that decided it (`None`: default deny).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// What happens to the request.
    pub verdict: Verdict,
    /// The deciding rule; `None` when no rule matched.
    pub rule: Option<Rule<'a>>,
}

impl<'a> Decision<'a> {
    /// The default-deny decision: no rule matched.
    pub const DEFAULT_DENY: Decision<'static> = Decision {
        verdict: Verdict::Deny,
        rule: None,
    };

    /// What an `allow` grants: the deciding rule's constraint of the class
    /// `of` reads (`Rule::msr_constraint`, `Rule::pv_constraint`, ...).
    /// `None` for `deny`, `ignore`, and for an `allow` whose rule has no
    /// such constraint (a rule of another class): fail closed.
    #[inline]
    pub fn granted<C>(&self, of: impl FnOnce(&Rule<'a>) -> Option<C>) -> Option<C> {
        match (self.verdict, &self.rule) {
            (Verdict::Allow, Some(rule)) => of(rule),
            _ => None,
        }
    }

    /// Resolves a looked-up rule id; `class` says which rules the lookup
    /// may name. Fail closed: an id the rule table does not hold, a rule
    /// that carries another id than the one asked for, or a rule of another
    /// class (an MSR lookup naming a PV rule, ...) is a malformed table and
    /// denied, never allowed.
    fn resolve<P: Policy + ?Sized>(
        policy: &'a P,
        id: Option<RuleId>,
        class: fn(&RuleDetail) -> bool,
    ) -> Decision<'a> {
        let Some(id) = id else {
            return Decision::DEFAULT_DENY;
        };
        match policy.rule(id) {
            Some(rule) if rule.id == id && class(&rule.detail) => Decision {
                verdict: rule.verdict,
                rule: Some(rule),
            },
            _ => Decision::DEFAULT_DENY,
        }
    }
}

fn is_msr(d: &RuleDetail) -> bool {
    matches!(d, RuleDetail::Msr(_))
}

fn is_cpuid(d: &RuleDetail) -> bool {
    matches!(d, RuleDetail::Cpuid(_))
}

fn is_pv(d: &RuleDetail) -> bool {
    matches!(d, RuleDetail::Pv(_))
}

/// Decides an MSR access.
pub fn decide_msr<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    access: Access,
    index: u32,
) -> Decision<'_> {
    Decision::resolve(policy, policy.msr_rule(kind, phase, access, index), is_msr)
}

/// Decides whether the host may control a CPUID leaf and subleaf.
pub fn decide_cpuid<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    leaf: u32,
    subleaf: u32,
) -> Decision<'_> {
    Decision::resolve(
        policy,
        policy.cpuid_rule(kind, phase, leaf, subleaf),
        is_cpuid,
    )
}

/// Decides a PV call.
pub fn decide_pv<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    call: PvCall,
) -> Decision<'_> {
    Decision::resolve(policy, policy.pv_rule(kind, phase, call), is_pv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{MsrConstraint, PvConstraint, RegControl};

    const MSR_ALLOW: Rule<'static> = Rule {
        id: RuleId(0),
        name: "msr-allow",
        verdict: Verdict::Allow,
        reason: "a test rule.",
        line: 1,
        detail: RuleDetail::Msr(MsrConstraint::NONE),
    };
    const PV_ALLOW: Rule<'static> = Rule {
        id: RuleId(1),
        name: "pv-allow",
        verdict: Verdict::Allow,
        reason: "a test rule.",
        line: 2,
        detail: RuleDetail::Pv(PvConstraint::NONE),
    };
    const CPUID_ALLOW: Rule<'static> = Rule {
        id: RuleId(2),
        name: "cpuid-allow",
        verdict: Verdict::Allow,
        reason: "a test rule.",
        line: 3,
        detail: RuleDetail::Cpuid([RegControl::FIXED; 4]),
    };

    /// A malformed table: every lookup answers with the rule id `lookup`,
    /// whatever its class, and `rule(id)` answers from `rules` by position
    /// (so a rule can carry an id other than the one asked for).
    struct Malformed {
        lookup: RuleId,
        rules: [Rule<'static>; 3],
    }

    impl Policy for Malformed {
        fn name(&self) -> &str {
            "malformed"
        }
        fn digest(&self) -> [u8; 32] {
            [0; 32]
        }
        fn violation_mode(&self) -> ViolationMode {
            ViolationMode::Filter
        }
        fn msr_rule(&self, _: VmKind, _: Phase, _: Access, _: u32) -> Option<RuleId> {
            Some(self.lookup)
        }
        fn cpuid_rule(&self, _: VmKind, _: Phase, _: u32, _: u32) -> Option<RuleId> {
            Some(self.lookup)
        }
        fn pv_rule(&self, _: VmKind, _: Phase, _: PvCall) -> Option<RuleId> {
            Some(self.lookup)
        }
        fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
            self.rules.get(id.index()).copied()
        }
        fn cpuid_support(&self) -> &[CpuidSupport] {
            &[]
        }
    }

    fn pointing_at(id: u32) -> Malformed {
        Malformed {
            lookup: RuleId(id),
            rules: [MSR_ALLOW, PV_ALLOW, CPUID_ALLOW],
        }
    }

    const K: VmKind = VmKind::Protected;
    const P: Phase = Phase::Running;

    #[test]
    fn a_lookup_that_names_a_rule_of_another_class_is_denied() {
        // The PV table points at the MSR rule, the MSR table at the PV rule,
        // the CPUID table at the MSR rule: each is a malformed table.
        let p = pointing_at(0);
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!(d, Decision::DEFAULT_DENY, "pv lookup -> msr rule");
        let p = pointing_at(2);
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!(d, Decision::DEFAULT_DENY, "pv lookup -> cpuid rule");
        let p = pointing_at(1);
        let d = decide_msr(&p, K, P, Access::Write, 0x1a0);
        assert_eq!(d, Decision::DEFAULT_DENY, "msr lookup -> pv rule");
        // The verdict path (the trait's default) fails closed the same way.
        assert_eq!(p.msr_verdict(K, P, Access::Write, 0x1a0), Verdict::Deny);
        let p = pointing_at(2);
        let d = decide_msr(&p, K, P, Access::Write, 0x1a0);
        assert_eq!(d, Decision::DEFAULT_DENY, "msr lookup -> cpuid rule");
        let p = pointing_at(0);
        let d = decide_cpuid(&p, K, P, 1, 0);
        assert_eq!(d, Decision::DEFAULT_DENY, "cpuid lookup -> msr rule");
        let p = pointing_at(1);
        let d = decide_cpuid(&p, K, P, 1, 0);
        assert_eq!(d, Decision::DEFAULT_DENY, "cpuid lookup -> pv rule");
    }

    #[test]
    fn a_lookup_of_the_right_class_decides_by_its_rule() {
        let p = pointing_at(0);
        let d = decide_msr(&p, K, P, Access::Write, 0x1a0);
        assert_eq!((d.verdict, d.rule), (Verdict::Allow, Some(MSR_ALLOW)));
        assert_eq!(p.msr_verdict(K, P, Access::Write, 0x1a0), Verdict::Allow);
        let by_ref = <&Malformed as Policy>::msr_verdict(&&p, K, P, Access::Write, 0x1a0);
        assert_eq!(by_ref, Verdict::Allow);
        let p = pointing_at(1);
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!((d.verdict, d.rule), (Verdict::Allow, Some(PV_ALLOW)));
        let p = pointing_at(2);
        let d = decide_cpuid(&p, K, P, 1, 0);
        assert_eq!((d.verdict, d.rule), (Verdict::Allow, Some(CPUID_ALLOW)));
    }

    #[test]
    fn a_rule_id_with_no_rule_is_denied() {
        let p = pointing_at(3);
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!(d, Decision::DEFAULT_DENY);
        let p = pointing_at(u32::MAX);
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!(d, Decision::DEFAULT_DENY);
    }

    #[test]
    fn a_rule_that_carries_another_id_than_asked_is_denied() {
        // `rule(1)` answers a PV rule that says it is rule 7.
        let mut p = pointing_at(1);
        if let Some(r) = p.rules.get_mut(1) {
            r.id = RuleId(7);
        }
        let d = decide_pv(&p, K, P, PvCall::GetRflags);
        assert_eq!(d, Decision::DEFAULT_DENY);
    }
}
