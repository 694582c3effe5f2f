//! Single-point mutants of a compiled policy, for measuring how much of a
//! policy a conformance suite pins down (`cargo pvgate conformance
//! --mutants`; after Martin and Xie's fault model for access-control
//! policies).
//!
//! Each mutant changes one thing of one rule (or the policy's
//! `cpuid-violations`) in the IR and is rebuilt exactly as the compiler
//! builds a policy ([`crate::rebuild`]: no two rules decide one input, the
//! tables re-tabulated, every invariant proven, the mandatory baseline's
//! included). A mutant the compiler or the baseline refuses is "killed by
//! the build"; the others are for the suite to kill.
//!
//! The operators ([`Operator`]), per rule, in this order:
//!
//! * `drop-rule`: the rule removed;
//! * `flip-verdict`: allow → deny, deny → allow, ignore → allow,
//!   ignore → deny, and allow → ignore for MSR rules. A rule that stops
//!   being `allow` loses its value constraints (the compiler accepts them
//!   on `allow` rules only);
//! * `add-vm`, `drop-vm`, `add-phase`, `drop-phase`, `add-access`,
//!   `drop-access` (MSR rules): one VM kind, phase or access added or
//!   removed (never the last one: that is `drop-rule`). Dropping an access
//!   also drops the constraints of that access (`write-mask`, `force-on`,
//!   `force-off` for writes, `read-mask` for reads);
//! * `drop-call`: one PV call removed from a rule with several;
//! * `move-bound`: each end of each MSR range (a single MSR is the range
//!   `i..=i`) and of a CPUID leaf range moved by one, where it stays a
//!   range;
//! * `drop-mask-bit`, `add-mask-bit`: one bit of an `allow` MSR rule's
//!   `write-mask`, `force-on` or `force-off` (rules with write access);
//! * `move-cpuid-bit`: one bit of an `allow` CPUID rule's register moved
//!   out of a control mode (`host`, `clear-only`, `force-on`, `force-off`)
//!   to fixed, or into one from wherever it is;
//! * `min-vector` (±1) and `allow-soft` (flipped) of an `allow` rule whose
//!   calls all inject interrupts;
//! * and once per policy, `cpuid-violations` (filter ↔ reject).
//!
//! Which bits: a bit is dropped from (moved out of) a mask for each set
//! bit, except that a mask with every bit set (an absent `write-mask`, a
//! CPUID `host = 0xFFFFFFFF`) drops only the candidate bits below. A bit
//! is added to (moved into) a mask for each candidate not already in it.
//! The candidates are: every bit the registry names for that MSR (for a
//! rule of a single MSR) or for that CPUID leaf, subleaf and register (for
//! a rule of a single leaf; subleaf 0 for every subleaf, as the compiler
//! resolves names; a multi-bit CPUID field such as `CLFLUSH_SIZE` by its
//! lowest bit), plus the lowest and the highest bit of the register that
//! the mask does not hold (that it holds, for a drop).
//!
//! A mutant that changes nothing (e.g. a range end moved onto another
//! range of the same rule) is not produced. The order is deterministic:
//! the policy-level mutant, then each rule in source order with its
//! operators in the order above.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, PvConstraint, RegControl, Register, RuleDetail, RuleId,
    Verdict, ViolationMode, VmKind,
};

use crate::diagnostic::{Diagnostic, ErrorKind, line_col};
use crate::ir::{Ir, IrRule, Resources, RuleClass};
use crate::registry::Registry;
use crate::{Compiled, PolicyErrors};

/// The kind of single-point change a mutant makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// The policy's `cpuid-violations` flipped (filter ↔ reject).
    CpuidViolations,
    /// A rule removed.
    DropRule,
    /// A rule's verdict changed.
    FlipVerdict,
    /// A VM kind added to a rule.
    AddVm,
    /// A VM kind removed from a rule.
    DropVm,
    /// A phase added to a rule.
    AddPhase,
    /// A phase removed from a rule.
    DropPhase,
    /// An access added to an MSR rule.
    AddAccess,
    /// An access removed from an MSR rule.
    DropAccess,
    /// A PV call removed from a rule with several.
    DropCall,
    /// An end of an MSR or CPUID leaf range moved by one.
    MoveBound,
    /// A bit removed from an MSR `write-mask`, `force-on` or `force-off`.
    DropMaskBit,
    /// A bit added to an MSR `write-mask`, `force-on` or `force-off`.
    AddMaskBit,
    /// A CPUID register bit moved into or out of a control mode.
    MoveCpuidBit,
    /// An injection rule's `min-vector` changed by one.
    MinVector,
    /// An injection rule's `allow-soft` flipped.
    AllowSoft,
}

impl Operator {
    /// Every operator, in report order.
    pub const ALL: [Operator; 16] = [
        Operator::CpuidViolations,
        Operator::DropRule,
        Operator::FlipVerdict,
        Operator::AddVm,
        Operator::DropVm,
        Operator::AddPhase,
        Operator::DropPhase,
        Operator::AddAccess,
        Operator::DropAccess,
        Operator::DropCall,
        Operator::MoveBound,
        Operator::DropMaskBit,
        Operator::AddMaskBit,
        Operator::MoveCpuidBit,
        Operator::MinVector,
        Operator::AllowSoft,
    ];

    /// The operator's name in reports (`drop-rule`, `flip-verdict`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Operator::CpuidViolations => "cpuid-violations",
            Operator::DropRule => "drop-rule",
            Operator::FlipVerdict => "flip-verdict",
            Operator::AddVm => "add-vm",
            Operator::DropVm => "drop-vm",
            Operator::AddPhase => "add-phase",
            Operator::DropPhase => "drop-phase",
            Operator::AddAccess => "add-access",
            Operator::DropAccess => "drop-access",
            Operator::DropCall => "drop-call",
            Operator::MoveBound => "move-bound",
            Operator::DropMaskBit => "drop-mask-bit",
            Operator::AddMaskBit => "add-mask-bit",
            Operator::MoveCpuidBit => "move-cpuid-bit",
            Operator::MinVector => "min-vector",
            Operator::AllowSoft => "allow-soft",
        }
    }
}

/// The rule a mutant touched, as it is in the original policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touched {
    /// Its id in the original policy.
    pub id: RuleId,
    /// Its name.
    pub name: String,
    /// 1-based line of its table header.
    pub line: u32,
}

/// One single-point mutant of a policy and what the compiler made of it.
#[derive(Clone, Debug)]
pub struct Mutant {
    /// A one-line policy diff, unique among a policy's mutants, usable as
    /// its id: `FILE:LINE RULE: CHANGE`, e.g.
    /// `policy/default.toml:36 pvm-inject-irq: min-vector = 32 → 31`
    /// (LINE: the line of the changed key, else of the rule's header).
    pub description: String,
    /// What kind of change it is.
    pub operator: Operator,
    /// The rule it changed (`None`: the policy header).
    pub rule: Option<Touched>,
    /// The mutant rebuilt as the compiler builds a policy, or why the
    /// compiler (or the baseline) refuses it: killed by the build.
    pub build: Result<Ir, PolicyErrors>,
}

impl Mutant {
    /// Whether the compiler or the baseline refused the mutant.
    pub fn killed_by_build(&self) -> bool {
        self.build.is_err()
    }

    /// The first reason the build refused it, one line (`None`: it built).
    pub fn build_error(&self) -> Option<&str> {
        let errors = self.build.as_ref().err()?;
        errors.diagnostics.first().map(|d| d.message.as_str())
    }
}

/// Every single-point mutant of a compiled policy, each rebuilt, in a
/// deterministic order (see the module documentation).
pub fn mutants(c: &Compiled, registry: &Registry) -> Vec<Mutant> {
    let mut g = Generator {
        c,
        registry,
        out: Vec::new(),
    };
    g.policy_level();
    for i in 0..c.ir.rules.len() {
        g.rule(i);
    }
    let path = &c.path;
    unique_descriptions(&mut g.out);
    g.out
        .into_iter()
        .map(|p| Mutant {
            description: p.description(path),
            operator: p.operator,
            rule: p.touched,
            build: p.ir,
        })
        .collect()
}

/// A mutant before its description is made unique.
struct Pending {
    /// The line of the changed key.
    line: u32,
    /// The rule's column, once two rules' descriptions collide.
    column: Option<u32>,
    /// The rule's name, or `[policy]`.
    head: String,
    /// The change, e.g. `min-vector = 32 → 31`.
    change: String,
    /// `#N` when descriptions still collide.
    nth: Option<usize>,
    /// The original rule's column (for disambiguation).
    rule_column: Option<u32>,
    operator: Operator,
    touched: Option<Touched>,
    ir: Result<Ir, PolicyErrors>,
}

impl Pending {
    fn description(&self, path: &str) -> String {
        let mut s = format!("{path}:{}", self.line);
        if let Some(c) = self.column {
            let _ = write!(s, ":{c}");
        }
        let _ = write!(s, " {}: {}", self.head, self.change);
        if let Some(n) = self.nth {
            let _ = write!(s, " #{n}");
        }
        s
    }
}

/// Where the changed key is, for the description's line.
#[derive(Clone, Copy)]
enum Key<'k> {
    Header,
    Verdict,
    Resource,
    Named(&'k str),
}

struct Generator<'a> {
    c: &'a Compiled,
    registry: &'a Registry,
    out: Vec<Pending>,
}

impl Generator<'_> {
    fn policy_level(&mut self) {
        let mut ir = self.c.ir.clone();
        let (from, to) = match ir.violation_mode {
            ViolationMode::Filter => (ViolationMode::Filter, ViolationMode::Reject),
            ViolationMode::Reject => (ViolationMode::Reject, ViolationMode::Filter),
        };
        ir.violation_mode = to;
        let text = &self.c.text;
        let header = key_line(text, 0, "[policy]");
        let line = header
            .and_then(|l| line_start(text, l))
            .and_then(|at| key_line(text, at, "cpuid-violations"))
            .or(header)
            .unwrap_or(1);
        self.out.push(Pending {
            line,
            column: None,
            head: String::from("[policy]"),
            change: format!("cpuid-violations = {} → {}", from.name(), to.name()),
            nth: None,
            rule_column: None,
            operator: Operator::CpuidViolations,
            touched: None,
            ir: crate::rebuild(ir, self.registry),
        });
    }

    /// Records a mutant that replaces rule `i` with `new` (`None`: drops it).
    fn push(
        &mut self,
        i: usize,
        operator: Operator,
        key: Key<'_>,
        change: String,
        new: Option<IrRule>,
    ) {
        let Some(old) = self.c.ir.rules.get(i) else {
            return;
        };
        if new.as_ref() == Some(old) {
            return;
        }
        let text = &self.c.text;
        let line = match key {
            Key::Header => None,
            Key::Verdict => Some(line_col(text, old.spans.verdict.start).0 as u32),
            Key::Resource => Some(line_col(text, old.spans.resource.start).0 as u32),
            Key::Named(k) => key_line(text, old.spans.rule.start, k),
        }
        .unwrap_or(old.line);
        let mut ir = self.c.ir.clone();
        let build = match new {
            Some(rule) => match well_formed(&rule) {
                Err(e) => Err(e),
                Ok(()) => {
                    ir.rules[i] = rule;
                    crate::rebuild(ir, self.registry)
                }
            },
            None => {
                ir.rules.remove(i);
                for (n, r) in ir.rules.iter_mut().enumerate() {
                    r.id = RuleId(n as u32);
                }
                crate::rebuild(ir, self.registry)
            }
        };
        self.out.push(Pending {
            line,
            column: None,
            head: old.name.clone(),
            change,
            nth: None,
            rule_column: Some(old.column),
            operator,
            touched: Some(Touched {
                id: old.id,
                name: old.name.clone(),
                line: old.line,
            }),
            ir: build,
        });
    }

    fn rule(&mut self, i: usize) {
        let r = self.c.ir.rules[i].clone();
        self.push(
            i,
            Operator::DropRule,
            Key::Header,
            String::from("rule dropped"),
            None,
        );
        self.flip_verdict(i, &r);
        self.lists(i, &r);
        if let Resources::Pv { calls } = &r.resources
            && calls.len() > 1
        {
            for (n, call) in calls.iter().enumerate() {
                let mut m = r.clone();
                let mut left = calls.clone();
                left.remove(n);
                m.resources = Resources::Pv { calls: left };
                self.push(
                    i,
                    Operator::DropCall,
                    Key::Resource,
                    format!("call: drop {}", call.name()),
                    Some(m),
                );
            }
        }
        self.bounds(i, &r);
        if r.verdict == Verdict::Allow {
            match r.detail {
                RuleDetail::Msr(c) => self.msr_masks(i, &r, c),
                RuleDetail::Cpuid(controls) => self.cpuid_bits(i, &r, controls),
                RuleDetail::Pv(c) => self.injection(i, &r, c),
            }
        }
    }

    fn flip_verdict(&mut self, i: usize, r: &IrRule) {
        let targets: &[Verdict] = match (r.verdict, r.class) {
            (Verdict::Allow, RuleClass::Msr) => &[Verdict::Deny, Verdict::Ignore],
            (Verdict::Allow, _) => &[Verdict::Deny],
            (Verdict::Deny, _) => &[Verdict::Allow],
            (Verdict::Ignore, _) => &[Verdict::Allow, Verdict::Deny],
        };
        for &to in targets {
            let mut m = r.clone();
            m.verdict = to;
            let mut change = format!("verdict = {} → {}", r.verdict.name(), to.name());
            if to != Verdict::Allow {
                m.detail = unconstrained(r.class);
                if m.detail != r.detail {
                    change.push_str(" (its value constraints dropped)");
                }
            }
            self.push(i, Operator::FlipVerdict, Key::Verdict, change, Some(m));
        }
    }

    /// VM kinds, phases and accesses: each added or removed.
    fn lists(&mut self, i: usize, r: &IrRule) {
        let show = |names: Vec<&str>| format!("[{}]", names.join(", "));
        for k in VmKind::ALL {
            let mut m = r.clone();
            let op = if r.kinds.contains(&k) {
                m.kinds.retain(|x| *x != k);
                Operator::DropVm
            } else {
                m.kinds.push(k);
                m.kinds.sort();
                Operator::AddVm
            };
            if m.kinds.is_empty() {
                continue;
            }
            let change = format!(
                "vm = {} → {}",
                show(r.kinds.iter().map(|k| k.name()).collect()),
                show(m.kinds.iter().map(|k| k.name()).collect())
            );
            self.push(i, op, Key::Named("vm"), change, Some(m));
        }
        for p in Phase::ALL {
            let mut m = r.clone();
            let op = if r.phases.contains(&p) {
                m.phases.retain(|x| *x != p);
                Operator::DropPhase
            } else {
                m.phases.push(p);
                m.phases.sort();
                Operator::AddPhase
            };
            if m.phases.is_empty() {
                continue;
            }
            let change = format!(
                "phase = {} → {}",
                show(r.phases.iter().map(|p| p.name()).collect()),
                show(m.phases.iter().map(|p| p.name()).collect())
            );
            self.push(i, op, Key::Named("phase"), change, Some(m));
        }
        let Resources::Msr { ranges, accesses } = &r.resources else {
            return;
        };
        for a in Access::ALL {
            let mut now = accesses.clone();
            let op = if accesses.contains(&a) {
                now.retain(|x| *x != a);
                Operator::DropAccess
            } else {
                now.push(a);
                now.sort();
                Operator::AddAccess
            };
            if now.is_empty() {
                continue;
            }
            let mut m = r.clone();
            let mut change = format!(
                "access = {} → {}",
                show(accesses.iter().map(|a| a.name()).collect()),
                show(now.iter().map(|a| a.name()).collect())
            );
            if op == Operator::DropAccess
                && let RuleDetail::Msr(c) = r.detail
            {
                let (kept, dropped) = without_access(c, a);
                if !dropped.is_empty() {
                    let _ = write!(change, " ({} dropped)", dropped.join(", "));
                }
                m.detail = RuleDetail::Msr(kept);
            }
            m.resources = Resources::Msr {
                ranges: ranges.clone(),
                accesses: now,
            };
            self.push(i, op, Key::Named("access"), change, Some(m));
        }
    }

    /// Each end of each range moved by one, where it stays a range.
    fn bounds(&mut self, i: usize, r: &IrRule) {
        let moves = |(first, last): (u32, u32)| {
            let mut out = Vec::new();
            if let Some(f) = first.checked_sub(1) {
                out.push((f, last));
            }
            if first < last {
                out.push((first + 1, last));
                out.push((first, last - 1));
            }
            if let Some(l) = last.checked_add(1) {
                out.push((first, l));
            }
            out
        };
        match &r.resources {
            Resources::Msr { ranges, accesses } => {
                for (n, &range) in ranges.iter().enumerate() {
                    for moved in moves(range) {
                        let mut now = ranges.clone();
                        now[n] = moved;
                        let mut m = r.clone();
                        m.resources = Resources::Msr {
                            ranges: merge(now),
                            accesses: accesses.clone(),
                        };
                        let change = format!("MSRs {} → {}", span(range), span(moved));
                        self.push(i, Operator::MoveBound, Key::Resource, change, Some(m));
                    }
                }
            }
            Resources::Cpuid { leaves, subleaf } => {
                for moved in moves(*leaves) {
                    let mut m = r.clone();
                    m.resources = Resources::Cpuid {
                        leaves: moved,
                        subleaf: *subleaf,
                    };
                    let change = format!("leaf {} → {}", span(*leaves), span(moved));
                    self.push(i, Operator::MoveBound, Key::Resource, change, Some(m));
                }
            }
            Resources::Pv { .. } => {}
        }
    }

    fn msr_masks(&mut self, i: usize, r: &IrRule, c: MsrConstraint) {
        let Resources::Msr { ranges, accesses } = &r.resources else {
            return;
        };
        if !accesses.contains(&Access::Write) {
            return;
        }
        let named: Vec<(u32, String)> = match ranges.as_slice() {
            [(a, b)] if a == b => self
                .registry
                .msr_by_index(*a)
                .map(|e| {
                    e.bits
                        .iter()
                        .filter(|b| b.bit < 64)
                        .map(|b| (u32::from(b.bit), b.name.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let fields: [(&str, u64); 3] = [
            ("write-mask", c.write_mask),
            ("force-on", c.force_on),
            ("force-off", c.force_off),
        ];
        for (key, mask) in fields {
            let set = |m: u64| {
                let mut n = c;
                match key {
                    "write-mask" => n.write_mask = m,
                    "force-on" => n.force_on = m,
                    _ => n.force_off = m,
                }
                let mut rule = r.clone();
                rule.detail = RuleDetail::Msr(n);
                rule
            };
            for bit in drop_candidates(mask, 64, &named) {
                let change = format!("{key}: drop {}", bit_name(bit, &named));
                let rule = set(mask & !(1u64 << bit));
                self.push(
                    i,
                    Operator::DropMaskBit,
                    Key::Named(key),
                    change,
                    Some(rule),
                );
            }
            for bit in add_candidates(mask, 64, &named) {
                let change = format!("{key}: add {}", bit_name(bit, &named));
                let rule = set(mask | 1u64 << bit);
                self.push(i, Operator::AddMaskBit, Key::Named(key), change, Some(rule));
            }
        }
    }

    fn cpuid_bits(&mut self, i: usize, r: &IrRule, controls: [RegControl; 4]) {
        let Resources::Cpuid { leaves, subleaf } = &r.resources else {
            return;
        };
        for reg in [Register::Eax, Register::Ebx, Register::Ecx, Register::Edx] {
            let named: Vec<(u32, String)> = if leaves.0 == leaves.1 {
                let mut v: Vec<(u32, String)> = self
                    .registry
                    .features_of(leaves.0, subleaf.unwrap_or(0), reg)
                    .filter(|f| f.mask() != 0)
                    .map(|f| (f.mask().trailing_zeros(), f.name.clone()))
                    .collect();
                v.sort();
                v.dedup_by_key(|(b, _)| *b);
                v
            } else {
                Vec::new()
            };
            let ctl = controls[reg as usize];
            let key = reg.name();
            let modes: [(&str, u32); 4] = [
                ("host", ctl.host),
                ("clear-only", ctl.clear_only),
                ("force-on", ctl.force_on),
                ("force-off", ctl.force_off),
            ];
            let moved = |bit: u32, into: Option<&str>| {
                let m = 1u32 << bit;
                let mut n = ctl;
                n.host &= !m;
                n.clear_only &= !m;
                n.force_on &= !m;
                n.force_off &= !m;
                match into {
                    Some("host") => n.host |= m,
                    Some("clear-only") => n.clear_only |= m,
                    Some("force-on") => n.force_on |= m,
                    Some(_) => n.force_off |= m,
                    None => {}
                }
                let mut all = controls;
                all[reg as usize] = n;
                let mut rule = r.clone();
                rule.detail = RuleDetail::Cpuid(all);
                rule
            };
            for (mode, mask) in modes {
                for bit in drop_candidates(u64::from(mask), 32, &named) {
                    let change = format!("{key} {}: {mode} → fixed", bit_name(bit, &named));
                    let rule = moved(bit, None);
                    self.push(
                        i,
                        Operator::MoveCpuidBit,
                        Key::Named(key),
                        change,
                        Some(rule),
                    );
                }
                for bit in add_candidates(u64::from(mask), 32, &named) {
                    let from = ctl.mode_of(bit).name();
                    let change = format!("{key} {}: {from} → {mode}", bit_name(bit, &named));
                    let rule = moved(bit, Some(mode));
                    self.push(
                        i,
                        Operator::MoveCpuidBit,
                        Key::Named(key),
                        change,
                        Some(rule),
                    );
                }
            }
        }
    }

    fn injection(&mut self, i: usize, r: &IrRule, c: PvConstraint) {
        let Resources::Pv { calls } = &r.resources else {
            return;
        };
        let injects = |c: &PvCall| matches!(c, PvCall::InjectIrq | PvCall::InjectIrqIfAllowed);
        if calls.is_empty() || !calls.iter().all(injects) {
            return;
        }
        let with = |n: PvConstraint| {
            let mut rule = r.clone();
            rule.detail = RuleDetail::Pv(n);
            rule
        };
        for v in [c.min_vector.checked_sub(1), c.min_vector.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let change = format!("min-vector = {} → {v}", c.min_vector);
            let rule = with(PvConstraint { min_vector: v, ..c });
            self.push(
                i,
                Operator::MinVector,
                Key::Named("min-vector"),
                change,
                Some(rule),
            );
        }
        let change = format!("allow-soft = {} → {}", c.allow_soft, !c.allow_soft);
        let rule = with(PvConstraint {
            allow_soft: !c.allow_soft,
            ..c
        });
        self.push(
            i,
            Operator::AllowSoft,
            Key::Named("allow-soft"),
            change,
            Some(rule),
        );
    }
}

/// The constraints a rule of this class has when it carries none (those
/// of every `deny` and `ignore` rule).
fn unconstrained(class: RuleClass) -> RuleDetail {
    match class {
        RuleClass::Msr => RuleDetail::Msr(MsrConstraint::NONE),
        RuleClass::Cpuid => RuleDetail::Cpuid([RegControl::FIXED; 4]),
        RuleClass::Pv => RuleDetail::Pv(PvConstraint::NONE),
    }
}

/// An MSR constraint without the keys of one access, and their names.
fn without_access(c: MsrConstraint, access: Access) -> (MsrConstraint, Vec<&'static str>) {
    let none = MsrConstraint::NONE;
    let mut kept = c;
    let mut dropped = Vec::new();
    match access {
        Access::Write => {
            for (key, now, default) in [
                ("write-mask", &mut kept.write_mask, none.write_mask),
                ("force-on", &mut kept.force_on, none.force_on),
                ("force-off", &mut kept.force_off, none.force_off),
            ] {
                if *now != default {
                    *now = default;
                    dropped.push(key);
                }
            }
        }
        Access::Read => {
            if kept.read_mask != none.read_mask {
                kept.read_mask = none.read_mask;
                dropped.push("read-mask");
            }
        }
    }
    (kept, dropped)
}

/// The rule-local checks of the compiler that a mutation can break (the
/// others hold by construction): an MSR bit forced both on and off.
fn well_formed(rule: &IrRule) -> Result<(), PolicyErrors> {
    if let RuleDetail::Msr(c) = rule.detail
        && c.force_on & c.force_off != 0
    {
        return Err(PolicyErrors {
            diagnostics: vec![Diagnostic::new(
                ErrorKind::BadMask,
                format!(
                    "bits {:#x} are forced both on and off (rule `{}`)",
                    c.force_on & c.force_off,
                    rule.name
                ),
                rule.spans.rule.clone(),
                "overlaps `force-on`",
            )],
        });
    }
    Ok(())
}

/// The bits a drop takes out of `mask`: each set bit, or for a mask with
/// every bit of the register set, the named bits and the lowest and
/// highest bit.
fn drop_candidates(mask: u64, width: u32, named: &[(u32, String)]) -> Vec<u32> {
    let full = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let held = |b: u32| mask & (1u64 << b) != 0;
    let mut out = BTreeSet::new();
    if mask & full == full {
        out.extend(named.iter().map(|(b, _)| *b).filter(|b| *b < width));
        out.insert(0);
        out.insert(width - 1);
    } else {
        out.extend((0..width).filter(|b| held(*b)));
    }
    out.into_iter().filter(|b| held(*b)).collect()
}

/// The bits an add puts into `mask`: the named bits it lacks, and the
/// lowest and the highest bit it lacks.
fn add_candidates(mask: u64, width: u32, named: &[(u32, String)]) -> Vec<u32> {
    let lacks = |b: u32| mask & (1u64 << b) == 0;
    let mut out: BTreeSet<u32> = named
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| *b < width && lacks(*b))
        .collect();
    out.extend((0..width).find(|b| lacks(*b)));
    out.extend((0..width).rev().find(|b| lacks(*b)));
    out.into_iter().collect()
}

/// `bit 3 (NAME)` or `bit 3`.
fn bit_name(bit: u32, named: &[(u32, String)]) -> String {
    match named.iter().find(|(b, _)| *b == bit) {
        Some((_, n)) => format!("bit {bit} ({n})"),
        None => format!("bit {bit}"),
    }
}

/// `0x1a0` or `0x0..=0x1ff`.
fn span((first, last): (u32, u32)) -> String {
    if first == last {
        format!("{first:#x}")
    } else {
        format!("{first:#x}..={last:#x}")
    }
}

/// Sorted inclusive ranges with touching or overlapping ones merged.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if u64::from(first) <= u64::from(prev.1) + 1 => {
                prev.1 = prev.1.max(last);
            }
            _ => out.push((first, last)),
        }
    }
    out
}

/// The 1-based line of the first line that assigns `key` (`key = ...`,
/// `key.x = ...`) in the table starting at `from` (up to the next table
/// header), or that starts with `key` when it is a table header.
fn key_line(text: &str, from: usize, key: &str) -> Option<u32> {
    let start = from.min(text.len());
    let body = text.get(start..)?;
    let mut offset = start;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && (key.starts_with('[') || rest.starts_with([' ', '\t', '=', '.']))
        {
            return Some(line_col(text, offset).0 as u32);
        }
        let header = trimmed.starts_with("[[")
            || (trimmed.starts_with('[')
                && trimmed
                    .chars()
                    .nth(1)
                    .is_some_and(|c| c.is_ascii_alphabetic()));
        if n > 0 && header && !key.starts_with('[') {
            return None;
        }
        offset += line.len();
    }
    None
}

/// The byte offset where 1-based line `line` starts.
fn line_start(text: &str, line: u32) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n')
        .nth(line as usize - 2)
        .map(|(i, _)| i + 1)
}

/// Makes every description unique: descriptions two rules share (rules on
/// one line) gain the rule's column; any left equal gain `#N`.
fn unique_descriptions(out: &mut [Pending]) {
    let key = |p: &Pending| p.description("");
    let mut count = BTreeMap::<String, usize>::new();
    for p in out.iter() {
        *count.entry(key(p)).or_default() += 1;
    }
    for p in out.iter_mut() {
        if count.get(&key(p)).copied().unwrap_or(0) > 1 {
            p.column = p.rule_column;
        }
    }
    count.clear();
    for p in out.iter() {
        *count.entry(key(p)).or_default() += 1;
    }
    let mut nth = BTreeMap::<String, usize>::new();
    for p in out.iter_mut() {
        if count.get(&key(p)).copied().unwrap_or(0) > 1 {
            let n = nth.entry(key(p)).or_default();
            *n += 1;
            p.nth = Some(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(line: u32, head: &str, change: &str, column: u32) -> Pending {
        Pending {
            line,
            column: None,
            head: head.to_string(),
            change: change.to_string(),
            nth: None,
            rule_column: Some(column),
            operator: Operator::DropRule,
            touched: None,
            ir: Err(PolicyErrors {
                diagnostics: Vec::new(),
            }),
        }
    }

    #[test]
    fn descriptions_two_rules_share_gain_the_column_then_a_count() {
        let mut out = vec![
            pending(7, "a", "rule dropped", 8),
            pending(7, "a", "rule dropped", 40),
            pending(7, "b", "rule dropped", 70),
            pending(9, "c", "x", 1),
            pending(9, "c", "x", 1),
        ];
        unique_descriptions(&mut out);
        let got: Vec<String> = out.iter().map(|p| p.description("p.toml")).collect();
        assert_eq!(
            got,
            [
                "p.toml:7:8 a: rule dropped",
                "p.toml:7:40 a: rule dropped",
                "p.toml:7 b: rule dropped",
                "p.toml:9:1 c: x #1",
                "p.toml:9:1 c: x #2",
            ]
        );
    }

    #[test]
    fn key_lines_stay_inside_their_table() {
        let text = "[[pv]]\nname = \"a\"\nmin-vector = 3\n\n[[pv]]\nname = \"b\"\n";
        assert_eq!(key_line(text, 0, "min-vector"), Some(3));
        let second = text.find("[[pv]]\nname = \"b\"").unwrap_or(0);
        assert_eq!(key_line(text, second, "min-vector"), None);
        assert_eq!(key_line(text, 0, "name"), Some(2));
        // `names = ` is not `name`.
        assert_eq!(key_line("[[pv]]\nnames = 1\n", 0, "name"), None);
        assert_eq!(
            line_start(text, 3),
            Some(text.find("min-vector").unwrap_or(0))
        );
    }

    #[test]
    fn candidates_follow_the_documented_bit_choice() {
        let named = vec![(3, String::from("N"))];
        assert_eq!(drop_candidates(0b1010, 32, &named), [1, 3]);
        assert_eq!(drop_candidates(0xFFFF_FFFF, 32, &named), [0, 3, 31]);
        assert_eq!(drop_candidates(u64::MAX, 64, &named), [0, 3, 63]);
        assert_eq!(add_candidates(0b1010, 32, &named), [0, 31]);
        assert_eq!(add_candidates(0b0001, 32, &named), [1, 3, 31]);
        assert_eq!(add_candidates(0xFFFF_FFFF, 32, &named), Vec::<u32>::new());
        assert_eq!(merge(vec![(5, 6), (1, 2), (3, 3)]), [(1, 3), (5, 6)]);
        assert_eq!(merge(vec![(5, 6), (1, 2), (3, 4)]), [(1, 6)]);
        assert_eq!(merge(vec![(0, u32::MAX), (7, 8)]), [(0, u32::MAX)]);
    }
}
