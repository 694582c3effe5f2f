//! What the diff reports: one reviewer-facing change, typed.

use std::fmt;

use pvgate_codegen::{Ir, IrRule};
use pvgate_gate::{Access, Phase, PvCall, RuleDetail, RuleId, Verdict, ViolationMode, VmKind};

/// What part of the policy a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// The `[policy]` header.
    Header,
    /// `[[msr]]`.
    Msr,
    /// `[[cpuid]]`.
    Cpuid,
    /// `[[pv]]`.
    Pv,
    /// Rule names and reasons whose decisions did not change.
    Wording,
}

impl Section {
    /// The heading a reviewer sees.
    pub const fn title(self) -> &'static str {
        match self {
            Section::Header => "policy header",
            Section::Msr => "MSRs",
            Section::Cpuid => "CPUID",
            Section::Pv => "PV calls",
            Section::Wording => "rule names and reasons (decisions unchanged)",
        }
    }
}

/// A CPUID selector: leaves, and a subleaf or every (other) subleaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuidSel {
    /// First and last leaf, inclusive.
    pub leaves: (u32, u32),
    /// One subleaf, or `None`: every subleaf not decided separately.
    pub subleaf: Option<u32>,
    /// With `subleaf: None`: some subleaves of these leaves are decided separately.
    pub others: bool,
}

/// The resource a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Res {
    /// MSRs `first..=last`.
    Msr(u32, u32),
    /// CPUID leaves (and subleaf).
    Cpuid(CpuidSel),
    /// One PV call.
    Pv(PvCall),
}

/// A `[policy]` header field that is free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderField {
    /// `name`.
    Name,
    /// `description`.
    Description,
}

impl HeaderField {
    /// The TOML key.
    pub const fn name(self) -> &'static str {
        match self {
            HeaderField::Name => "name",
            HeaderField::Description => "description",
        }
    }
}

/// What a change is about, as data (the JSON form renders it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeData {
    /// A rule's name or reason changed; its decisions did not.
    Wording,
    /// `cpuid-violations` changed.
    ViolationMode {
        /// Before.
        old: ViolationMode,
        /// After.
        new: ViolationMode,
    },
    /// The policy's name or description changed.
    Header {
        /// Which field.
        field: HeaderField,
        /// Before.
        old: String,
        /// After.
        new: String,
    },
    /// An invariant is proven by one policy and not the other (the set of
    /// invariants proven is part of the digest).
    Invariant {
        /// Its canonical form (`codegen::digest::canonical_invariant`).
        canonical: String,
        /// Whether the new policy proves it (else only the old one does).
        now_proven: bool,
    },
    /// Decisions changed: the same way for every resource and scope listed.
    Decisions {
        /// The MSR access (`None` for CPUID and PV calls).
        access: Option<Access>,
        /// The (VM kind, phase) pairs where it changed.
        scopes: Vec<(VmKind, Phase)>,
        /// The resources it changed for.
        resources: Vec<Res>,
        /// The verdict before.
        old: Verdict,
        /// The verdict after.
        new: Verdict,
    },
}

/// A rule by name and place; shown as ``rule `name` at path:line:column``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's name.
    pub name: String,
    /// The policy file, as given.
    pub path: String,
    /// 1-based line of the rule's table.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl RuleRef {
    /// The rule `r` of the policy at `path`.
    pub fn new(path: &str, r: &IrRule) -> RuleRef {
        RuleRef {
            name: r.name.clone(),
            path: path.to_string(),
            line: r.line,
            column: r.column,
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule `{}` at {}:{}:{}",
            self.name, self.path, self.line, self.column
        )
    }
}

/// One reviewer-facing change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its section.
    pub section: Section,
    /// One sentence.
    pub summary: String,
    /// Value drawings and other detail lines.
    pub details: Vec<String>,
    /// The deciding rule in OLD (`None`: default deny, or a header change).
    pub old_rule: Option<RuleRef>,
    /// The deciding rule in NEW.
    pub new_rule: Option<RuleRef>,
    /// The resources, scopes and verdicts, as data.
    pub data: ChangeData,
}

/// The effective decision content: what a change compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Eff {
    /// The verdict (`deny` when no rule decides).
    pub(super) verdict: Verdict,
    /// The rule's value constraint or CPUID control (`None` for deny).
    pub(super) detail: Option<RuleDetail>,
}

/// What rule `id` (or default deny) decides.
pub(super) fn eff(ir: &Ir, id: Option<RuleId>) -> Eff {
    match id.and_then(|id| ir.rule(id)) {
        Some(r) if r.verdict != Verdict::Deny => Eff {
            verdict: r.verdict,
            detail: Some(r.detail),
        },
        _ => Eff {
            verdict: Verdict::Deny,
            detail: None,
        },
    }
}
