//! The validated trace: what `load`/`parse` produce and `replay` consumes.

use pvgate_gate::{PvCall, Register, VmKind};
use pvgate_hyp::{Call, GuestCall};

use crate::guest_state::GuestExpect;
use serde::Serialize;

/// The most vCPUs a trace may declare.
pub const MAX_TRACE_VCPUS: usize = 16;

/// What a trace expects of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Accepted as asked.
    Allow,
    /// Refused with an error.
    Deny,
    /// Reported as success, nothing changed.
    Ignore,
    /// Accepted with the hypervisor's values in place of some of the host's.
    Filter,
}

impl Expect {
    /// The name used in traces.
    pub const fn name(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Ignore => "ignore",
            Expect::Filter => "filter",
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Expect> {
        [Expect::Allow, Expect::Deny, Expect::Ignore, Expect::Filter]
            .into_iter()
            .find(|e| e.name() == s)
    }
}

/// A CPUID subleaf selector in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subleaf {
    /// One subleaf.
    One(u32),
    /// Every subleaf of the leaf present in the table.
    All,
}

impl Subleaf {
    pub(crate) fn matches(self, subleaf: u32) -> bool {
        match self {
            Subleaf::One(s) => s == subleaf,
            Subleaf::All => true,
        }
    }
}

/// How an edit changes a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditOp {
    /// OR these bits in.
    Set(u32),
    /// Clear these bits.
    Clear(u32),
    /// Replace the value.
    Value(u32),
}

/// One edit of the supported CPUID table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidEdit {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf(s).
    pub subleaf: Subleaf,
    /// The register.
    pub reg: Register,
    /// The change.
    pub op: EditOp,
}

/// A bit expectation on the effective CPUID table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidBits {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf(s).
    pub subleaf: Subleaf,
    /// The register.
    pub reg: Register,
    /// Bits that must be 1.
    pub set: u32,
    /// Bits that must be 0.
    pub clear: u32,
}

/// One call of a trace, validated.
#[derive(Clone, Debug)]
pub struct TraceCall {
    /// 1-based line of its `[[call]]` header.
    pub line: usize,
    /// The vCPU index (0 for the VM-level `vm_destroy` and `vm_finalize`;
    /// for a guest call, the calling vCPU).
    pub vcpu: usize,
    /// The host's PV call (`None` for a guest call).
    pub pv: Option<PvCall>,
    /// The guest's call (`guest = "start_secondary"`; `None` for a PV call).
    pub guest: Option<GuestCall>,
    /// For `vm_finalize`: the pvmfw load address.
    pub pvmfw: Option<u64>,
    /// The typed call (`None` for `vm_destroy`, `vm_finalize`,
    /// `vcpu_after_set_cpuid` and guest calls, which have their own entry
    /// points).
    pub call: Option<Call>,
    /// For `vcpu_after_set_cpuid`: edits of the supported table.
    pub cpuid_edits: Vec<CpuidEdit>,
    /// For `vcpu_after_set_cpuid`: bits the effective table must show.
    pub expect_effective: Vec<CpuidBits>,
    /// The expectation.
    pub expect: Option<Expect>,
    /// For getters: the value output 0 must have.
    pub expect_value: Option<u64>,
    /// The errno the call must fail with (`errno = "EPERM"`).
    pub errno: Option<i64>,
    /// What the hypervisor's copy of the vCPU must hold after the call.
    pub expect_guest: Vec<GuestExpect>,
    /// Free text.
    pub note: Option<String>,
}

/// A loaded trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where it came from (path or `<text>`).
    pub path: String,
    /// Its title.
    pub title: String,
    /// Where its facts came from.
    pub source: Option<String>,
    /// The CPU model named (`reference` when absent).
    pub cpu: String,
    /// The VM kind.
    pub kind: VmKind,
    /// How many vCPUs.
    pub vcpus: usize,
    /// The calls, in order.
    pub calls: Vec<TraceCall>,
}

impl TraceCall {
    /// The call's name: the PV call's, or the guest call's.
    pub fn name(&self) -> &'static str {
        match (self.pv, self.guest) {
            (Some(pv), _) => pv.name(),
            (None, Some(g)) => g.name(),
            (None, None) => "?",
        }
    }
}
