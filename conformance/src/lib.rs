//! Real compiled tables for the conformance tests: every shipped policy
//! and seeded random policies, each emitted in both lookup shapes.
//! `tests/` compares each against the codegen interpreter.
#![allow(clippy::all)]

use pvgate_gate::{Access, Phase, PvCall, Rule, RuleId, VmKind};

/// One generated table set and the policy text it came from.
pub struct Generated {
    /// Where the policy came from.
    pub name: &'static str,
    /// The lookup shape (`match` or `sorted`).
    pub shape: &'static str,
    /// The policy text.
    pub text: &'static str,
    /// The generated MSR lookup.
    pub msr_rule: fn(VmKind, Phase, Access, u32) -> Option<RuleId>,
    /// The generated CPUID lookup.
    pub cpuid_rule: fn(VmKind, Phase, u32, u32) -> Option<RuleId>,
    /// The generated PV lookup.
    pub pv_rule: fn(VmKind, Phase, PvCall) -> Option<RuleId>,
    /// The generated rule table.
    pub rules: &'static [Rule<'static>],
    /// The generated digest.
    pub digest: [u8; 32],
}

include!(concat!(env!("OUT_DIR"), "/generated.rs"));
