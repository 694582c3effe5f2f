//! Which rules and invariants of a policy a conformance suite exercised.
//!
//! A suite run yields [`Hit`]s: one per decision a case asked for (the
//! request probed, and the rule that decided it, `None` for default deny).
//! [`coverage`] folds them over the compiled IR: a rule is *exercised* when
//! some hit was decided by it; an MSR rule's ranges are *bounded* when both
//! ends and one value just outside (where one exists) were probed in a
//! scope the rule applies to; an invariant is *exercised* when some probe
//! falls inside what it forbids or requires. Nothing here runs a case.

use pvgate_codegen::invariant::{Invariant, InvariantCheck};
use pvgate_codegen::{Ir, IrRule, Resources};
use pvgate_gate::{Access, Phase, PvCall, Register, RuleId, VmKind};

/// One request a case made of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A PV call.
    Pv {
        /// The VM kind.
        kind: VmKind,
        /// The phase.
        phase: Phase,
        /// The call.
        call: PvCall,
    },
    /// An MSR access.
    Msr {
        /// The VM kind.
        kind: VmKind,
        /// The phase.
        phase: Phase,
        /// Read or write.
        access: Access,
        /// The MSR index.
        index: u32,
    },
    /// A CPUID selector, optionally one register bit of it.
    Cpuid {
        /// The VM kind.
        kind: VmKind,
        /// The phase.
        phase: Phase,
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
        /// The register and bit asked about (`None`: the whole selector,
        /// as a proposed CPUID table asks).
        bit: Option<(Register, u32)>,
    },
}

impl Probe {
    /// The VM kind and phase of the request.
    pub const fn scope(&self) -> (VmKind, Phase) {
        match *self {
            Probe::Pv { kind, phase, .. }
            | Probe::Msr { kind, phase, .. }
            | Probe::Cpuid { kind, phase, .. } => (kind, phase),
        }
    }
}

/// One decision of a suite run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// What was asked.
    pub probe: Probe,
    /// The rule that decided it (`None`: no rule, default deny).
    pub rule: Option<RuleId>,
}

/// How one end of, or the outside of, an MSR range was probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Probed.
    Hit,
    /// Not probed.
    Missed,
    /// Does not exist (a range starting at 0 has no value below it).
    None,
}

impl Edge {
    fn of(exists: bool, hit: bool) -> Edge {
        match (exists, hit) {
            (false, _) => Edge::None,
            (true, true) => Edge::Hit,
            (true, false) => Edge::Missed,
        }
    }

    /// Whether this edge needs no more probing.
    pub const fn done(self) -> bool {
        !matches!(self, Edge::Missed)
    }
}

/// The boundary coverage of one inclusive MSR range of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeCoverage {
    /// The range's first index.
    pub lo: u32,
    /// The range's last index.
    pub hi: u32,
    /// `lo` probed.
    pub low: Edge,
    /// `hi` probed.
    pub high: Edge,
    /// `lo - 1` or `hi + 1` probed (either suffices).
    pub outside: Edge,
}

impl RangeCoverage {
    /// Whether both ends and one outside value were probed (where they
    /// exist).
    pub const fn bounded(&self) -> bool {
        self.low.done() && self.high.done() && self.outside.done()
    }
}

/// The coverage of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule.
    pub id: RuleId,
    /// Its name.
    pub name: String,
    /// Its line in the policy.
    pub line: u32,
    /// How many hits it decided.
    pub hits: usize,
    /// For an MSR rule: each range's boundaries (empty otherwise).
    pub ranges: Vec<RangeCoverage>,
}

impl RuleCoverage {
    /// Whether any hit was decided by the rule.
    pub const fn exercised(&self) -> bool {
        self.hits > 0
    }
}

/// The coverage of one invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantCoverage {
    /// Its name.
    pub name: String,
    /// The file it comes from, as shown in messages.
    pub file: String,
    /// Its line in that file.
    pub line: u32,
    /// How many probes fell inside it.
    pub hits: usize,
}

/// The coverage of a whole policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Every rule, by id.
    pub rules: Vec<RuleCoverage>,
    /// Every invariant, baseline first.
    pub invariants: Vec<InvariantCoverage>,
}

impl Coverage {
    /// The rules no hit exercised.
    pub fn uncovered_rules(&self) -> impl Iterator<Item = &RuleCoverage> {
        self.rules.iter().filter(|r| !r.exercised())
    }

    /// The invariants no probe fell inside.
    pub fn uncovered_invariants(&self) -> impl Iterator<Item = &InvariantCoverage> {
        self.invariants.iter().filter(|i| i.hits == 0)
    }
}

/// Folds `hits` over the policy `ir`.
pub fn coverage(ir: &Ir, hits: &[Hit]) -> Coverage {
    let rules = ir
        .rules
        .iter()
        .map(|rule| RuleCoverage {
            id: rule.id,
            name: rule.name.clone(),
            line: rule.line,
            hits: hits.iter().filter(|h| h.rule == Some(rule.id)).count(),
            ranges: range_coverage(rule, hits),
        })
        .collect();
    let invariants = ir
        .invariants
        .iter()
        .map(|inv| InvariantCoverage {
            name: inv.name.clone(),
            file: inv.file.clone(),
            line: inv.line,
            hits: hits.iter().filter(|h| inside(inv, &h.probe)).count(),
        })
        .collect();
    Coverage { rules, invariants }
}

/// The boundary coverage of an MSR rule's ranges (empty for other rules).
fn range_coverage(rule: &IrRule, hits: &[Hit]) -> Vec<RangeCoverage> {
    let Resources::Msr { ranges, accesses } = &rule.resources else {
        return Vec::new();
    };
    // The MSR indices probed in a scope and access the rule applies to.
    let probed: Vec<u32> = hits
        .iter()
        .filter_map(|h| match h.probe {
            Probe::Msr {
                kind,
                phase,
                access,
                index,
            } if rule.applies(kind, phase) && accesses.contains(&access) => Some(index),
            _ => None,
        })
        .collect();
    let hit = |i: Option<u32>| i.is_some_and(|i| probed.contains(&i));
    ranges
        .iter()
        .map(|&(lo, hi)| {
            let below = lo.checked_sub(1);
            let above = hi.checked_add(1);
            RangeCoverage {
                lo,
                hi,
                low: Edge::of(true, hit(Some(lo))),
                high: Edge::of(true, hit(Some(hi))),
                outside: Edge::of(below.is_some() || above.is_some(), hit(below) || hit(above)),
            }
        })
        .collect()
}

/// Whether `probe` asks about something `inv` forbids or requires.
fn inside(inv: &Invariant, probe: &Probe) -> bool {
    let (kind, phase) = probe.scope();
    if !inv.kinds.contains(&kind) || !inv.phases.contains(&phase) {
        return false;
    }
    match (&inv.check, *probe) {
        (
            InvariantCheck::ForbidMsr { access, ranges },
            Probe::Msr {
                access: a, index, ..
            },
        ) => *access == a && ranges.iter().any(|&(lo, hi)| lo <= index && index <= hi),
        (InvariantCheck::ForbidPv { calls }, Probe::Pv { call, .. })
        | (InvariantCheck::RequirePvAllowed { calls }, Probe::Pv { call, .. }) => {
            calls.contains(&call)
        }
        (
            InvariantCheck::ForbidCpuidControl { features },
            Probe::Cpuid {
                leaf, subleaf, bit, ..
            },
        ) => features.iter().any(|f| {
            f.leaf == leaf
                && f.subleaf == subleaf
                && bit.is_none_or(|(reg, b)| f.reg == reg && b < 32 && f.mask & (1u32 << b) != 0)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The shipped default policy, compiled from the workspace.
    fn default_ir() -> Ir {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/default.toml");
        pvgate_codegen::compile_file(path)
            .map_err(|e| e.render())
            .unwrap()
            .ir
    }

    fn rule_id(ir: &Ir, name: &str) -> RuleId {
        ir.rules.iter().find(|r| r.name == name).unwrap().id
    }

    fn msr(kind: VmKind, phase: Phase, access: Access, index: u32, rule: Option<RuleId>) -> Hit {
        Hit {
            probe: Probe::Msr {
                kind,
                phase,
                access,
                index,
            },
            rule,
        }
    }

    #[test]
    fn no_hits_leave_every_rule_and_invariant_uncovered() {
        let ir = default_ir();
        let c = coverage(&ir, &[]);
        assert_eq!(c.uncovered_rules().count(), ir.rules.len());
        assert_eq!(c.uncovered_invariants().count(), ir.invariants.len());
    }

    #[test]
    fn a_rule_is_exercised_by_the_hits_it_decided_only() {
        let ir = default_ir();
        let mtrr = rule_id(&ir, "pvm-mtrr-def-type");
        let hits = [msr(
            VmKind::Protected,
            Phase::Setup,
            Access::Write,
            0x2ff,
            Some(mtrr),
        )];
        let c = coverage(&ir, &hits);
        let uncovered: Vec<&str> = c.uncovered_rules().map(|r| r.name.as_str()).collect();
        assert!(!uncovered.contains(&"pvm-mtrr-def-type"));
        assert!(uncovered.contains(&"pvm-mtrr-ranges"));
        assert_eq!(uncovered.len(), ir.rules.len() - 1);
    }

    #[test]
    fn range_edges_need_both_ends_and_one_outside_value_in_scope() {
        let ir = default_ir();
        let id = rule_id(&ir, "pvm-mtrr-ranges");
        let rule = ir.rule(id).unwrap();
        let Resources::Msr { ranges, .. } = &rule.resources else {
            panic!("an MSR rule");
        };
        let (lo, hi) = ranges[0];
        let w = |index, kind, phase, access| msr(kind, phase, access, index, Some(id));
        use Access::{Read, Write};
        use Phase::{Running, Setup};
        use VmKind::{Normal, Protected};
        // Both ends, but the outside value only in a scope the rule does
        // not cover (running, normal VM, read): not bounded.
        let partial = [
            w(lo, Protected, Setup, Write),
            w(hi, Protected, Setup, Write),
            w(lo - 1, Protected, Running, Write),
            w(hi + 1, Normal, Setup, Write),
            w(hi + 1, Protected, Setup, Read),
        ];
        let c = coverage(&ir, &partial);
        let r = &c.rules[id.index()].ranges[0];
        assert_eq!(
            (r.low, r.high, r.outside),
            (Edge::Hit, Edge::Hit, Edge::Missed)
        );
        assert!(!r.bounded());
        let mut full = partial.to_vec();
        full.push(w(hi + 1, Protected, Setup, Write));
        let c = coverage(&ir, &full);
        assert!(c.rules[id.index()].ranges[0].bounded());
    }

    #[test]
    fn a_range_over_every_index_has_no_outside_value() {
        let ir = default_ir();
        let id = rule_id(&ir, "pvm-setup-msr-reads");
        let hits = [
            msr(VmKind::Protected, Phase::Setup, Access::Read, 0, Some(id)),
            msr(
                VmKind::Protected,
                Phase::Setup,
                Access::Read,
                u32::MAX,
                Some(id),
            ),
        ];
        let r = coverage(&ir, &hits).rules[id.index()].ranges[0];
        assert_eq!(r.outside, Edge::None);
        assert!(r.bounded());
    }

    #[test]
    fn an_invariant_is_exercised_by_a_probe_inside_its_scope_and_resource() {
        let ir = default_ir();
        let hits_of = |name: &str, probe: Probe| {
            coverage(&ir, &[Hit { probe, rule: None }])
                .invariants
                .iter()
                .find(|i| i.name == name)
                .unwrap()
                .hits
        };
        let read = |phase| Probe::Msr {
            kind: VmKind::Protected,
            phase,
            access: Access::Read,
            index: 0xc000_0082,
        };
        assert_eq!(
            hits_of("pvm-no-msr-read-after-setup", read(Phase::Running)),
            1
        );
        assert_eq!(
            hits_of("pvm-no-msr-read-after-setup", read(Phase::Setup)),
            0
        );
        let run = |kind| Probe::Pv {
            kind,
            phase: Phase::Running,
            call: PvCall::VcpuRun,
        };
        assert_eq!(
            hits_of("pvm-host-can-run-and-destroy", run(VmKind::Protected)),
            1
        );
        assert_eq!(
            hits_of("pvm-host-can-run-and-destroy", run(VmKind::Normal)),
            0
        );
        // SMEP is CPUID.(7,0):EBX bit 7; bit 6 is not a security feature.
        let smep = |bit| Probe::Cpuid {
            kind: VmKind::Protected,
            phase: Phase::Setup,
            leaf: 7,
            subleaf: 0,
            bit: Some((Register::Ebx, bit)),
        };
        let security = "pvm-no-host-controlled-security-cpuid";
        assert_eq!(hits_of(security, smep(7)), 1);
        assert_eq!(hits_of(security, smep(6)), 0);
        assert_eq!(hits_of(security, smep(40)), 0);
    }
}
