//! pvgate's gate: the vocabulary the generated policy tables speak, the
//! [`Policy`] trait they implement, and the decision logic that needs more
//! than a table lookup (MSR value constraints, the CPUID merge).
//!
//! `#![no_std]`, no allocation, no panics: every function is total and
//! returns an error value instead of panicking.
#![no_std]

pub mod cpuid;
pub mod lookup;
pub mod msr;
pub mod policy;
pub mod pv;
pub mod rule;
pub mod support;
pub mod vocab;

pub use cpuid::{CpuidMerge, Register, merge_register, supported_register};
pub use lookup::{PvRules, VerdictMap};
pub use msr::{MsrWriteError, check_msr_write, force_msr_bits, msr_read_view};
pub use policy::{Decision, Policy, decide_cpuid, decide_msr, decide_pv};
pub use pv::{PvCall, PvClass};
pub use rule::{
    BitMode, CpuidControls, MsrConstraint, PvConstraint, RegControl, Rule, RuleDetail, RuleId,
    ViolationMode,
};
pub use support::{
    CpuidSupport, RegSupport, merge_supported, offered_register, support_for, support_in,
};
pub use vocab::{Access, Phase, Verdict, VmKind};
