//! The context a vCPU call handler runs in ([`Ctx`]) and the outcomes it
//! builds from it.

use pvgate_gate::{Access, Policy, PvCall, PvConstraint, RuleId, VmKind};

use super::outcome::Outcome;
use super::table::HypConfig;
use crate::audit::{Effect, Resource};
use crate::cpu::CpuModel;
use crate::error::CallError;

/// What a vCPU handler needs besides the vCPU.
pub(super) struct Ctx<'a, P> {
    pub(super) policy: &'a P,
    pub(super) cpu: &'a CpuModel,
    pub(super) config: HypConfig,
    pub(super) kind: VmKind,
    pub(super) index: usize,
    pub(super) call: PvCall,
    pub(super) rule: Option<RuleId>,
    pub(super) pc: PvConstraint,
}

impl<P: Policy> Ctx<'_, P> {
    pub(super) fn ok(&self) -> Outcome {
        Outcome::new(self.call, Effect::Allow, self.rule, Resource::Call)
    }

    pub(super) fn out(&self, out: [u64; 4]) -> Outcome {
        let mask = if self.call.access() == Access::Read {
            self.pc.read_mask
        } else {
            u64::MAX
        };
        Outcome {
            out: out.map(|w| w & mask),
            ..self.ok()
        }
    }

    pub(super) fn fail(&self, error: CallError) -> Outcome {
        Outcome::failed(self.call, error, self.rule, Resource::Call)
    }
}
