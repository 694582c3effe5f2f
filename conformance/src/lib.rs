//! Real compiled tables for the conformance tests: every shipped policy
//! and seeded random policies, each emitted in every MSR lookup shape
//! (`match`, `sorted`, `bitmap`, and `auto`: the emitter's pick), plus
//! the 10,000-rule `sample::large_policy` in the picked shape.
//! `tests/` compares each against the codegen interpreter.
#![allow(clippy::all)]

use pvgate_gate::{Access, Phase, PvCall, Rule, RuleId, Verdict, VmKind};

/// One generated table set and the policy text it came from.
pub struct Generated {
    /// Where the policy came from.
    pub name: &'static str,
    /// The lookup shape (`match`, `sorted`, `bitmap` or `auto`).
    pub shape: &'static str,
    /// The policy text.
    pub text: &'static str,
    /// The generated MSR lookup.
    pub msr_rule: fn(VmKind, Phase, Access, u32) -> Option<RuleId>,
    /// The generated MSR verdict lookup (the fast path).
    pub msr_verdict: fn(VmKind, Phase, Access, u32) -> Verdict,
    /// The generated CPUID lookup.
    pub cpuid_rule: fn(VmKind, Phase, u32, u32) -> Option<RuleId>,
    /// The generated PV lookup.
    pub pv_rule: fn(VmKind, Phase, PvCall) -> Option<RuleId>,
    /// The generated rule table.
    pub rules: &'static [Rule<'static>],
    /// The generated digest.
    pub digest: [u8; 32],
}

/// The MSR indices crosvm writes at boot (docs/design.md §6), plus indices the
/// default policy denies (FLUSH_CMD, PRED_CMD, TSC_DEADLINE, PAT, a
/// nonsense index): the mix the benchmarks decide.
pub const MSR_PROBES: [u32; 16] = [
    0x10,
    0x174,
    0x176,
    0x1a0,
    0x200,
    0x201,
    0x203,
    0x2ff,
    0xc000_0081,
    0xc000_0084,
    0xc000_0102,
    0x10b,
    0x49,
    0x6e0,
    0x277,
    0xdead_beef,
];

include!(concat!(env!("OUT_DIR"), "/generated.rs"));
