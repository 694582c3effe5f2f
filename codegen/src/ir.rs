//! The normalised policy (IR): the rule table, and for each (kind, phase,
//! access) a sorted list of disjoint resource ranges with the id of the one
//! rule that decides them. The emitter, the digest, diff, explain and the
//! report all read this, never the raw TOML.

use std::collections::BTreeMap;
use std::ops::Range;

use pvgate_gate::{
    Access, CpuidSupport, Phase, PvCall, RuleDetail, RuleId, Verdict, ViolationMode, VmKind,
};

use crate::invariant::Invariant;

/// Which array a rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleClass {
    /// `[[msr]]`.
    Msr,
    /// `[[cpuid]]`.
    Cpuid,
    /// `[[pv]]`.
    Pv,
}

impl RuleClass {
    /// The array name in the policy file.
    pub const fn name(self) -> &'static str {
        match self {
            RuleClass::Msr => "msr",
            RuleClass::Cpuid => "cpuid",
            RuleClass::Pv => "pv",
        }
    }
}

/// What a rule selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resources {
    /// Inclusive MSR index ranges, and the accesses.
    Msr {
        /// Sorted, merged inclusive ranges.
        ranges: Vec<(u32, u32)>,
        /// The accesses the rule covers.
        accesses: Vec<Access>,
    },
    /// An inclusive leaf range and one subleaf (`None`: every subleaf).
    Cpuid {
        /// The leaves, inclusive.
        leaves: (u32, u32),
        /// The subleaf, or every subleaf.
        subleaf: Option<u32>,
    },
    /// PV calls.
    Pv {
        /// The calls, in ABI order.
        calls: Vec<PvCall>,
    },
}

/// Where the parts of a rule are in the policy text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RuleSpans {
    /// The whole rule table.
    pub rule: Range<usize>,
    /// The resource selector (`msr`, `range`, `leaf`, `call`).
    pub resource: Range<usize>,
    /// The `verdict` value.
    pub verdict: Range<usize>,
}

/// One resolved rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IrRule {
    /// Its id: its position in the rule table.
    pub id: RuleId,
    /// Its array.
    pub class: RuleClass,
    /// Its name (given, or derived from its resource).
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its reason.
    pub reason: String,
    /// 1-based line of its table header.
    pub line: u32,
    /// 1-based column of its table header.
    pub column: u32,
    /// VM kinds it applies to, sorted.
    pub kinds: Vec<VmKind>,
    /// Phases it applies to, sorted.
    pub phases: Vec<Phase>,
    /// What it selects.
    pub resources: Resources,
    /// Its constraints.
    pub detail: RuleDetail,
    /// Where its parts are.
    pub spans: RuleSpans,
}

impl IrRule {
    /// Whether the rule applies to (kind, phase).
    pub fn applies(&self, kind: VmKind, phase: Phase) -> bool {
        self.kinds.contains(&kind) && self.phases.contains(&phase)
    }

    /// Whether the rule covers an MSR access (for any kind and phase).
    pub fn covers_msr(&self, access: Access, index: u32) -> bool {
        match &self.resources {
            Resources::Msr { ranges, accesses } => {
                accesses.contains(&access)
                    && ranges.iter().any(|&(lo, hi)| lo <= index && index <= hi)
            }
            _ => false,
        }
    }

    /// Whether the rule covers a CPUID leaf and subleaf.
    pub fn covers_cpuid(&self, leaf: u32, subleaf: u32) -> bool {
        match &self.resources {
            Resources::Cpuid { leaves, subleaf: s } => {
                leaves.0 <= leaf && leaf <= leaves.1 && s.is_none_or(|s| s == subleaf)
            }
            _ => false,
        }
    }

    /// Whether the rule covers a PV call.
    pub fn covers_pv(&self, call: PvCall) -> bool {
        matches!(&self.resources, Resources::Pv { calls } if calls.contains(&call))
    }
}

/// A decided MSR range of one (kind, phase, access).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsrRange {
    /// First index.
    pub first: u32,
    /// Last index, inclusive.
    pub last: u32,
    /// The deciding rule.
    pub rule: RuleId,
}

/// A decided CPUID selector of one (kind, phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuidEntry {
    /// First leaf.
    pub leaf_first: u32,
    /// Last leaf, inclusive.
    pub leaf_last: u32,
    /// The subleaf, or every subleaf.
    pub subleaf: Option<u32>,
    /// The deciding rule.
    pub rule: RuleId,
}

/// Which baseline an IR was proven against (printed by `check`/`report`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaselineInfo {
    /// The file, as shown in messages.
    pub file: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// How many invariants it contributed.
    pub invariants: usize,
}

/// The normalised policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ir {
    /// The header's name.
    pub name: String,
    /// The header's description.
    pub description: String,
    /// The CPUID violation mode.
    pub violation_mode: ViolationMode,
    /// Every rule, by id.
    pub rules: Vec<IrRule>,
    /// Decided MSR ranges per (kind, phase, access), sorted and disjoint.
    pub msr: BTreeMap<(VmKind, Phase, Access), Vec<MsrRange>>,
    /// Decided CPUID selectors per (kind, phase), sorted and disjoint.
    pub cpuid: BTreeMap<(VmKind, Phase), Vec<CpuidEntry>>,
    /// Decided PV calls per (kind, phase), in ABI order.
    pub pv: BTreeMap<(VmKind, Phase), Vec<(PvCall, RuleId)>>,
    /// The invariants the rules satisfy: the mandatory baseline's, then
    /// the policy's own and those of the files it includes. They are
    /// proven, not emitted; the digest covers them.
    pub invariants: Vec<Invariant>,
    /// The invariant files the policy includes, as shown in messages.
    pub included: Vec<String>,
    /// The baseline proven (always one).
    pub baseline: BaselineInfo,
    /// The hypervisor's supported CPUID (`policy/registry/hypervisor-cpuid.toml`),
    /// the same for every policy: emitted with the tables, covered by the
    /// digest.
    pub supported: Vec<SupportEntry>,
}

impl Ir {
    /// The rule with this id.
    pub fn rule(&self, id: RuleId) -> Option<&IrRule> {
        self.rules.get(id.index())
    }

    /// Builds the per-key tables from resolved rules whose resources are
    /// known not to overlap (see `overlap`).
    pub(crate) fn tabulate(&mut self) {
        self.msr.clear();
        self.cpuid.clear();
        self.pv.clear();
        for rule in &self.rules {
            for &kind in &rule.kinds {
                for &phase in &rule.phases {
                    match &rule.resources {
                        Resources::Msr { ranges, accesses } => {
                            for &access in accesses {
                                let list = self.msr.entry((kind, phase, access)).or_default();
                                list.extend(ranges.iter().map(|&(first, last)| MsrRange {
                                    first,
                                    last,
                                    rule: rule.id,
                                }));
                            }
                        }
                        Resources::Cpuid { leaves, subleaf } => {
                            self.cpuid
                                .entry((kind, phase))
                                .or_default()
                                .push(CpuidEntry {
                                    leaf_first: leaves.0,
                                    leaf_last: leaves.1,
                                    subleaf: *subleaf,
                                    rule: rule.id,
                                });
                        }
                        Resources::Pv { calls } => {
                            let list = self.pv.entry((kind, phase)).or_default();
                            list.extend(calls.iter().map(|&c| (c, rule.id)));
                        }
                    }
                }
            }
        }
        for list in self.msr.values_mut() {
            list.sort();
            *list = merge_adjacent(list);
        }
        for list in self.cpuid.values_mut() {
            list.sort();
        }
        for list in self.pv.values_mut() {
            list.sort();
        }
    }
}

/// Merges ranges of the same rule that touch (0x174, 0x175, 0x176 → one).
fn merge_adjacent(sorted: &[MsrRange]) -> Vec<MsrRange> {
    let mut out: Vec<MsrRange> = Vec::with_capacity(sorted.len());
    for &r in sorted {
        match out.last_mut() {
            Some(prev) if prev.rule == r.rule && u64::from(prev.last) + 1 == u64::from(r.first) => {
                prev.last = r.last;
            }
            _ => out.push(r),
        }
    }
    out
}

/// One resolved entry and where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SupportEntry {
    /// What it supports.
    pub support: CpuidSupport,
    /// Why.
    pub reason: String,
    /// 1-based line of its `[[leaf]]` header.
    pub line: u32,
    /// The span of its leaf selector (for overlap errors).
    pub span: Range<usize>,
}
