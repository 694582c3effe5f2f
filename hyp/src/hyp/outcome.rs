//! What became of one PV call ([`Outcome`]): the ABI status and outputs,
//! and what the audit records.

use pvgate_gate::{PvCall, RuleId};

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
    pub(super) fn new(
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

    pub(super) fn failed(
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
    pub fn status(&self) -> i64 {
        self.error.map_or(0, |e| e.errno().wrapping_neg())
    }

    /// Whether the call succeeded (allow, ignore or filter).
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}
