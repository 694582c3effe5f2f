//! Invariants: security requirements declared beside the rules (or in a
//! shared file a policy includes), as resolved data. They travel in the
//! IR (`Ir::invariants`, covered by the digest); `prove` checks them over
//! the IR's decided ranges.

use std::ops::Range;

use pvgate_gate::{Access, Phase, PvCall, Register, VmKind};

/// A CPUID feature an invariant names: its bits in one register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeatureBits {
    /// The registry name.
    pub name: String,
    /// The leaf.
    pub leaf: u32,
    /// The subleaf.
    pub subleaf: u32,
    /// The register.
    pub reg: Register,
    /// The feature's bits.
    pub mask: u32,
}

/// What an invariant checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InvariantCheck {
    /// No rule may allow or ignore these MSR accesses.
    ForbidMsr {
        /// The access.
        access: Access,
        /// The MSRs, as sorted inclusive ranges.
        ranges: Vec<(u32, u32)>,
    },
    /// No rule may allow or ignore these PV calls.
    ForbidPv {
        /// The calls.
        calls: Vec<PvCall>,
    },
    /// No rule may give the host control (`host` or `clear-only`) of these bits.
    ForbidCpuidControl {
        /// The features.
        features: Vec<FeatureBits>,
    },
    /// Each of these PV calls must be allowed.
    RequirePvAllowed {
        /// The calls.
        calls: Vec<PvCall>,
    },
}

/// A resolved invariant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Invariant {
    /// Its name.
    pub name: String,
    /// Why it must hold.
    pub reason: String,
    /// VM kinds it constrains.
    pub kinds: Vec<VmKind>,
    /// Phases it constrains.
    pub phases: Vec<Phase>,
    /// What it checks.
    pub check: InvariantCheck,
    /// The file it is declared in (the policy itself, or an included file).
    pub file: String,
    /// Whether `file` is an included file rather than the policy.
    pub included: bool,
    /// Whether it comes from the mandatory baseline (proven for every
    /// policy, not named by it).
    pub baseline: bool,
    /// 1-based line of its `[[invariant]]` header.
    pub line: u32,
    /// Span of its header in `file`.
    pub span: Range<usize>,
    /// For an included invariant: the `include` entry in the policy.
    pub include_span: Option<Range<usize>>,
}
