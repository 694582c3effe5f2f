//! The interpreter: the reference semantics. It answers every lookup by
//! scanning the resolved rules one by one (not the tabulated ranges the
//! emitter uses), so a mistake in tabulation or emission shows up as a
//! disagreement with the generated tables.

use pvgate_gate::{
    Access, CpuidSupport, Phase, Policy, PvCall, Rule, RuleId, ViolationMode, VmKind,
};

use crate::digest;
use crate::ir::{Ir, IrRule};

/// A policy evaluated at run time from its IR.
#[derive(Clone, Debug)]
pub struct Interpreter {
    ir: Ir,
    digest: [u8; 32],
    support: Vec<CpuidSupport>,
}

impl Interpreter {
    /// Interprets a compiled policy.
    pub fn new(ir: Ir) -> Interpreter {
        let digest = digest::digest(&ir);
        let support = ir.supported.iter().map(|e| e.support).collect();
        Interpreter {
            ir,
            digest,
            support,
        }
    }

    /// The IR being interpreted.
    pub fn ir(&self) -> &Ir {
        &self.ir
    }

    fn first(
        &self,
        kind: VmKind,
        phase: Phase,
        covers: impl Fn(&IrRule) -> bool,
    ) -> Option<RuleId> {
        self.ir
            .rules
            .iter()
            .find(|r| r.applies(kind, phase) && covers(r))
            .map(|r| r.id)
    }
}

impl Policy for Interpreter {
    fn name(&self) -> &str {
        &self.ir.name
    }

    fn digest(&self) -> [u8; 32] {
        self.digest
    }

    fn violation_mode(&self) -> ViolationMode {
        self.ir.violation_mode
    }

    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        self.first(kind, phase, |r| r.covers_msr(access, index))
    }

    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        self.first(kind, phase, |r| r.covers_cpuid(leaf, subleaf))
    }

    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        self.first(kind, phase, |r| r.covers_pv(call))
    }

    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.ir.rule(id).map(|r| Rule {
            id: r.id,
            name: &r.name,
            verdict: r.verdict,
            reason: &r.reason,
            line: r.line,
            detail: r.detail,
        })
    }

    fn cpuid_support(&self) -> &[CpuidSupport] {
        &self.support
    }
}
