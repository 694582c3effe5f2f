//! A malformed policy table never turns into an allow: a lookup that names
//! a rule of another class, a rule id with no rule, or a rule carrying
//! another id than asked is denied by the hypervisor core (fail closed).
//! Each policy here wraps the shipped default and lies in one lookup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_codegen::Interpreter;
use pvgate_gate::{
    Access, Phase, Policy, PvCall, Rule, RuleId, ViolationMode, VmKind, decide_msr, decide_pv,
};
use pvgate_hyp::{Call, Effect, Gpr, GprWrite};

/// The default policy, except that the PV lookup of `pv_call` answers
/// `pv_answer` and the MSR lookup of `msr_index` answers `msr_answer`.
struct Lying {
    inner: Interpreter,
    pv_call: Option<(PvCall, RuleId)>,
    msr_index: Option<(u32, RuleId)>,
}

impl Policy for Lying {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn digest(&self) -> [u8; 32] {
        self.inner.digest()
    }
    fn violation_mode(&self) -> ViolationMode {
        self.inner.violation_mode()
    }
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        match self.msr_index {
            Some((i, id)) if i == index => Some(id),
            _ => self.inner.msr_rule(kind, phase, access, index),
        }
    }
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        self.inner.cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        match self.pv_call {
            Some((c, id)) if c == call => Some(id),
            _ => self.inner.pv_rule(kind, phase, call),
        }
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.inner.rule(id)
    }
    fn cpuid_support(&self) -> &[pvgate_gate::CpuidSupport] {
        self.inner.cpuid_support()
    }
}

fn default_policy() -> Interpreter {
    interpreter("policy/default.toml")
}

/// The default policy's MSR rule allowing a setup write of
/// IA32_MISC_ENABLE (0x1a0), and its PV rule allowing `inject_irq`.
fn allow_rules() -> (RuleId, RuleId) {
    let p = default_policy();
    let msr = decide_msr(&p, VmKind::Protected, Phase::Setup, Access::Write, 0x1a0);
    let pv = decide_pv(&p, VmKind::Protected, Phase::Running, PvCall::InjectIrq);
    (msr.rule.unwrap().id, pv.rule.unwrap().id)
}

fn lying(pv_call: Option<(PvCall, RuleId)>, msr_index: Option<(u32, RuleId)>) -> Lying {
    Lying {
        inner: default_policy(),
        pv_call,
        msr_index,
    }
}

#[test]
fn a_pv_lookup_naming_an_msr_rule_does_not_open_a_running_vcpus_registers() {
    let (msr_rule, _) = allow_rules();
    let h = hyp(lying(Some((PvCall::GetRflags, msr_rule)), None));
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    assert!(h.call(v, Call::SetRflags(0x246)).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    let o = h.call(v, Call::GetRflags);
    assert_eq!(o.effect, Effect::Deny, "{o:?}");
    assert_eq!(o.out, [0; 4]);
}

#[test]
fn an_msr_lookup_naming_a_pv_rule_does_not_drop_the_write_mask() {
    let (_, pv_rule) = allow_rules();
    let h = hyp(lying(None, Some((0x1a0, pv_rule))));
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let before = snapshot(&h, v).msr(0x1a0);
    // Bit 3 is outside IA32_MISC_ENABLE's write mask in the default policy.
    let o = h.call(
        v,
        Call::SetMsr {
            index: 0x1a0,
            value: 1 << 3,
        },
    );
    assert_eq!(o.effect, Effect::Deny, "{o:?}");
    assert_eq!(snapshot(&h, v).msr(0x1a0), before);
}

#[test]
fn an_injection_lookup_naming_an_msr_rule_does_not_drop_the_minimum_vector() {
    let (msr_rule, _) = allow_rules();
    let h = hyp(lying(Some((PvCall::InjectIrq, msr_rule)), None));
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    let o = h.call(
        v,
        Call::InjectIrq {
            vector: 3,
            soft: true,
        },
    );
    assert_eq!(o.effect, Effect::Deny, "{o:?}");
    assert_eq!(snapshot(&h, v).irq.pending_irq, None);
}

#[test]
fn a_lookup_naming_no_rule_is_denied() {
    let h = hyp(lying(Some((PvCall::SetRegs, RuleId(u32::MAX))), None));
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let o = h.call(v, Call::SetRegs(GprWrite::default().with(Gpr::Rip, 0x1000)));
    assert_eq!(o.effect, Effect::Deny, "{o:?}");
    assert_eq!(o.rule, None);
}
