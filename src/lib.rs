//! The policy-specific image: the policy chosen at build time
//! (`PVGATE_POLICY`, default `policy/default.toml`) compiled by `build.rs`
//! into const tables, exposed through the gate's [`Policy`] trait.
//!
//! `#![no_std]` outside tests; no heap, no locks, no indirect calls.
#![cfg_attr(not(test), no_std)]

use pvgate_gate::{
    Access, CpuidSupport, Phase, Policy, PvCall, Rule, RuleId, Verdict, ViolationMode, VmKind,
};

/// The generated tables (`OUT_DIR/tables.rs`), made by `pvgate-codegen`.
pub mod tables {
    include!(concat!(env!("OUT_DIR"), "/tables.rs"));
}

pub use tables::{POLICY_DIGEST, POLICY_DIGEST_HEX, POLICY_NAME};

/// The policy compiled into this image.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompiledPolicy;

/// The image's policy.
pub const POLICY: CompiledPolicy = CompiledPolicy;

impl Policy for CompiledPolicy {
    fn name(&self) -> &str {
        tables::POLICY_NAME
    }

    fn digest(&self) -> [u8; 32] {
        tables::POLICY_DIGEST
    }

    fn violation_mode(&self) -> ViolationMode {
        tables::VIOLATION_MODE
    }

    #[inline]
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        tables::msr_rule(kind, phase, access, index)
    }

    #[inline]
    fn msr_verdict(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Verdict {
        tables::msr_verdict(kind, phase, access, index)
    }

    #[inline]
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        tables::cpuid_rule(kind, phase, leaf, subleaf)
    }

    #[inline]
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        tables::pv_rule(kind, phase, call)
    }

    #[inline]
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        tables::RULES.get(id.index()).copied()
    }

    #[inline]
    fn cpuid_support(&self) -> &[CpuidSupport] {
        &tables::CPUID_SUPPORT
    }
}
