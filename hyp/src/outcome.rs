//! What became of one PV call ([`Outcome`]): the ABI status and outputs,
//! and what the audit records.

use pvgate_gate::{Decision, PvCall, Rule, RuleId, Verdict};

use crate::audit::{Effect, Resource};
use crate::error::CallError;

/// What became of one PV call: the ABI status and outputs, and what the
/// audit records (effect, deciding rule, resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The call.
    pub call: PvCall,
    /// What became of it.
    pub effect: Effect,
    /// The rule that decided it (the resource rule for MSR/CPUID decisions);
    /// `None` for default deny and for errors before any decision.
    pub rule: Option<RuleId>,
    /// What the decision was about.
    pub resource: Resource,
    /// The error, when the call failed.
    pub error: Option<CallError>,
    /// Outputs (RBX, RCX, RDX, RSI in the ABI); zero on error.
    pub out: [u64; 4],
    /// For `vcpu_after_set_cpuid`: CPUID registers the hypervisor replaced.
    pub replaced: u32,
}

impl Outcome {
    #[inline]
    pub(crate) fn new(
        call: PvCall,
        effect: Effect,
        rule: Option<RuleId>,
        resource: Resource,
    ) -> Outcome {
        Outcome {
            call,
            effect,
            rule,
            resource,
            error: None,
            out: [0; 4],
            replaced: 0,
        }
    }

    #[inline]
    pub(crate) fn failed(
        call: PvCall,
        error: CallError,
        rule: Option<RuleId>,
        resource: Resource,
    ) -> Outcome {
        Outcome {
            error: Some(error),
            ..Outcome::new(call, error.effect(), rule, resource)
        }
    }

    /// The ABI status: 0 on success, `-errno` on failure.
    #[inline]
    pub fn status(&self) -> i64 {
        self.error.map_or(0, |e| e.errno().wrapping_neg())
    }

    /// Whether the call succeeded (allow, ignore or filter).
    #[inline]
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The one place a gate decision becomes an outcome. `Ok` with the
/// constraint `of` reads from the deciding rule when the call goes on
/// (`allow` with such a constraint); otherwise the finished outcome:
/// `ignore` succeeds without effect, and `deny`, default deny and an
/// `allow` whose rule has no such constraint (fail closed) fail with
/// `denied`. `resource` gives what the audit names (asked for only when
/// the call does not go on).
#[inline(always)]
pub(crate) fn decided<'a, C>(
    call: PvCall,
    d: &Decision<'a>,
    of: impl FnOnce(&Rule<'a>) -> Option<C>,
    resource: impl FnOnce() -> Resource,
    denied: impl FnOnce() -> CallError,
) -> Result<C, Outcome> {
    if let Some(c) = d.granted(of) {
        return Ok(c);
    }
    cold();
    let rule = d.rule.map(|r| r.id);
    Err(if d.verdict == Verdict::Ignore {
        Outcome::new(call, Effect::Ignore, rule, resource())
    } else {
        Outcome::failed(call, denied(), rule, resource())
    })
}

/// Marks the path that calls it as rarely taken, so the optimiser lays
/// out and allocates registers for the other path first.
#[cold]
#[inline(never)]
pub(crate) fn cold() {}
