//! The trait a compiled policy implements, and the decisions made from it.

use crate::pv::PvCall;
use crate::rule::{Rule, RuleId, ViolationMode};
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
    /// The rule covering a CPUID leaf and subleaf.
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId>;
    /// The rule covering a PV call.
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId>;
    /// The rule with this id.
    fn rule(&self, id: RuleId) -> Option<Rule<'_>>;
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
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        (**self).cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        (**self).pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        (**self).rule(id)
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

    /// Resolves a looked-up rule id. An id the rule table does not hold is
    /// denied (fail closed), never allowed.
    fn resolve<P: Policy + ?Sized>(policy: &'a P, id: Option<RuleId>) -> Decision<'a> {
        match id.and_then(|id| policy.rule(id)) {
            Some(rule) => Decision {
                verdict: rule.verdict,
                rule: Some(rule),
            },
            None => Decision::DEFAULT_DENY,
        }
    }
}

/// Decides an MSR access.
pub fn decide_msr<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    access: Access,
    index: u32,
) -> Decision<'_> {
    Decision::resolve(policy, policy.msr_rule(kind, phase, access, index))
}

/// Decides whether the host may control a CPUID leaf and subleaf.
pub fn decide_cpuid<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    leaf: u32,
    subleaf: u32,
) -> Decision<'_> {
    Decision::resolve(policy, policy.cpuid_rule(kind, phase, leaf, subleaf))
}

/// Decides a PV call.
pub fn decide_pv<P: Policy + ?Sized>(
    policy: &P,
    kind: VmKind,
    phase: Phase,
    call: PvCall,
) -> Decision<'_> {
    Decision::resolve(policy, policy.pv_rule(kind, phase, call))
}
