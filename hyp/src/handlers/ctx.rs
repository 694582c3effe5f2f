//! The context a vCPU call handler runs in ([`Ctx`]) and the outcomes it
//! builds from it.

use pvgate_gate::{Access, Policy, PvCall, PvConstraint, RuleId, VmKind};

use crate::audit::{Effect, Resource};
use crate::config::HypConfig;
use crate::cpu::CpuModel;
use crate::error::CallError;
use crate::outcome::Outcome;

/// What a vCPU handler needs besides the vCPU.
pub(crate) struct Ctx<'a, P> {
    pub(crate) policy: &'a P,
    pub(crate) cpu: &'a CpuModel,
    pub(crate) config: &'a HypConfig,
    pub(crate) kind: VmKind,
    pub(crate) index: usize,
    pub(crate) call: PvCall,
    pub(crate) rule: Option<RuleId>,
    /// The PV rule's constraint on the allowed call (read mask, vectors).
    pub(crate) constraint: PvConstraint,
}

impl<P: Policy> Ctx<'_, P> {
    pub(crate) fn ok(&self) -> Outcome {
        Outcome::new(self.call, Effect::Allow, self.rule, Resource::Call)
    }

    pub(crate) fn out(&self, out: [u64; 4]) -> Outcome {
        let mask = if self.call.access() == Access::Read {
            self.constraint.read_mask
        } else {
            u64::MAX
        };
        Outcome {
            out: out.map(|w| w & mask),
            ..self.ok()
        }
    }

    pub(crate) fn fail(&self, error: CallError) -> Outcome {
        Outcome::failed(self.call, error, self.rule, Resource::Call)
    }
}
