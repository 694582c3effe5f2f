//! `pvgate diff OLD NEW`: the exact semantic difference between two
//! policies, computed from their IR tables: every (VM kind, phase, access,
//! resource range) whose verdict, value constraint or CPUID control
//! changed, worded for a reviewer, with both rule locations. Reordering,
//! comments and formatting give an empty diff.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::ir::{CpuidEntry, MsrRange};
use pvgate_codegen::{Compiled, Ir, IrRule, Registry, digest};
use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, PvConstraint, RegControl, Register, RuleDetail, RuleId,
    Verdict, ViolationMode, VmKind,
};
use serde_json::{Value, json};

use crate::Format;
use crate::bits::two_values;
use crate::describe::{self, join_and};
use crate::error::{CliError, Outcome};
use crate::load;

/// Show the semantic difference between two policies.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate diff policy/default.toml policy/strict.toml\n  git show HEAD:policy/default.toml > /tmp/old.toml && cargo pvgate diff --exit-code /tmp/old.toml policy/default.toml"
)]
pub struct Args {
    /// The policy before the change.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The policy after the change.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Exit 1 when the policies differ.
    #[arg(long)]
    pub exit_code: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

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
    const fn title(self) -> &'static str {
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
struct CpuidSel {
    leaves: (u32, u32),
    subleaf: Option<u32>,
    /// With `subleaf: None`: some subleaves of these leaves are decided separately.
    others: bool,
}

/// The resource a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Res {
    Msr(u32, u32),
    Cpuid(CpuidSel),
    Pv(PvCall),
}

/// One (resource, rule pair) change before grouping by scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Raw {
    section: Section,
    access: Option<Access>,
    res: Res,
    old: Option<RuleId>,
    new: Option<RuleId>,
}

/// One reviewer-facing change.
#[derive(Clone, Debug)]
pub struct Change {
    /// Its section.
    pub section: Section,
    /// One sentence.
    pub summary: String,
    /// Value drawings and other detail lines.
    pub details: Vec<String>,
    /// Where the deciding rule was in OLD (`None`: default deny / header).
    pub old_rule: Option<String>,
    /// Where the deciding rule is in NEW.
    pub new_rule: Option<String>,
    /// JSON form of the resources and scopes.
    pub data: Value,
}

/// The effective decision content: what a change compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Eff {
    verdict: Verdict,
    detail: Option<RuleDetail>,
}

fn eff(ir: &Ir, id: Option<RuleId>) -> Eff {
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

/// Runs `diff`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let old = load::policy(&args.old)?;
    let new = load::policy(&args.new)?;
    let changes = diff(&old, &new, Registry::builtin());
    match args.format {
        Format::Human => print!("{}", render(&old, &new, &changes)),
        Format::Json => {
            let v = json!({
                "old": {"path": old.path, "digest": digest::hex(&digest::digest(&old.ir))},
                "new": {"path": new.path, "digest": digest::hex(&digest::digest(&new.ir))},
                "changes": changes.iter().map(|c| json!({
                    "section": format!("{:?}", c.section).to_ascii_lowercase(),
                    "summary": c.summary,
                    "details": c.details,
                    "old_rule": c.old_rule,
                    "new_rule": c.new_rule,
                    "data": c.data,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Ok(if args.exit_code && !changes.is_empty() {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Every semantic change from `old` to `new`, grouped for a reviewer.
pub fn diff(old: &Compiled, new: &Compiled, registry: &Registry) -> Vec<Change> {
    let mut out = header(&old.ir, &new.ir);
    let mut raw: BTreeMap<Raw, Vec<(VmKind, Phase)>> = BTreeMap::new();
    let mut wording: BTreeSet<(RuleId, RuleId)> = BTreeSet::new();
    let mut record = |section, access, res, o: Option<RuleId>, n: Option<RuleId>, scope| {
        if eff(&old.ir, o) != eff(&new.ir, n) {
            raw.entry(Raw {
                section,
                access,
                res,
                old: o,
                new: n,
            })
            .or_default()
            .push(scope);
        } else if let (Some(o), Some(n)) = (o, n) {
            wording.insert((o, n));
        }
    };
    msr_walk(&old.ir, &new.ir, &mut record);
    cpuid_walk(&old.ir, &new.ir, &mut record);
    pv_walk(&old.ir, &new.ir, &mut record);

    // Group resources that changed the same way in the same scopes.
    type GroupKey = (
        Section,
        Option<Access>,
        Option<RuleId>,
        Option<RuleId>,
        Vec<(VmKind, Phase)>,
    );
    let mut groups: BTreeMap<GroupKey, Vec<Res>> = BTreeMap::new();
    for (r, mut scopes) in raw {
        scopes.sort();
        scopes.dedup();
        groups
            .entry((r.section, r.access, r.old, r.new, scopes))
            .or_default()
            .push(r.res);
    }
    for ((section, access, o, n, scopes), res) in groups {
        out.extend(describe_change(
            old, new, registry, section, access, o, n, &scopes, &res,
        ));
    }
    for (o, n) in wording {
        let (Some(a), Some(b)) = (old.ir.rule(o), new.ir.rule(n)) else {
            continue;
        };
        if a.name == b.name && a.reason == b.reason {
            continue;
        }
        let mut details = Vec::new();
        if a.name != b.name {
            details.push(format!("name: `{}` -> `{}`", a.name, b.name));
        }
        if a.reason != b.reason {
            details.push(format!("old reason: {}", a.reason));
            details.push(format!("new reason: {}", b.reason));
        }
        out.push(Change {
            section: Section::Wording,
            summary: if a.name == b.name {
                format!("rule `{}` has a new reason", b.name)
            } else {
                format!(
                    "some decisions of rule `{}` now come from rule `{}` (same decisions, new name{})",
                    a.name,
                    b.name,
                    if a.reason == b.reason { "" } else { " and reason" }
                )
            },
            details,
            old_rule: Some(describe::rule_ref(&old.path, a)),
            new_rule: Some(describe::rule_ref(&new.path, b)),
            data: json!({}),
        });
    }
    out.sort_by_key(|c| c.section);
    out
}

fn header(old: &Ir, new: &Ir) -> Vec<Change> {
    let mut out = Vec::new();
    if old.violation_mode != new.violation_mode {
        let word = |m: ViolationMode| match m {
            ViolationMode::Filter => {
                "filtered (the hypervisor's value is taken silently and counted)"
            }
            ViolationMode::Reject => {
                "rejected (the call fails and the corrected table is reported)"
            }
        };
        out.push(Change {
            section: Section::Header,
            summary: format!("host CPUID proposals outside its control are now {}; they were {}", word(new.violation_mode), match old.violation_mode { ViolationMode::Filter => "filtered", ViolationMode::Reject => "rejected" }),
            details: Vec::new(),
            old_rule: None,
            new_rule: None,
            data: json!({"cpuid_violations": {"old": old.violation_mode.name(), "new": new.violation_mode.name()}}),
        });
    }
    // The invariants proven are part of the digest: a change to them is a
    // change a reviewer must see, even when no decision moves.
    let proven = |ir: &Ir| -> BTreeMap<String, String> {
        ir.invariants
            .iter()
            .map(|i| {
                (
                    digest::canonical_invariant(i),
                    format!("`{}` ({}:{})", i.name, i.file, i.line),
                )
            })
            .collect()
    };
    let (was, now) = (proven(old), proven(new));
    for (line, shown) in &now {
        if !was.contains_key(line) {
            out.push(Change {
                section: Section::Header,
                summary: format!("invariant {shown} is now proven"),
                details: Vec::new(),
                old_rule: None,
                new_rule: None,
                data: json!({"invariant": {"new": line}}),
            });
        }
    }
    for (line, shown) in &was {
        if !now.contains_key(line) {
            out.push(Change {
                section: Section::Header,
                summary: format!("invariant {shown} is no longer proven"),
                details: Vec::new(),
                old_rule: None,
                new_rule: None,
                data: json!({"invariant": {"old": line}}),
            });
        }
    }
    for (what, a, b) in [
        ("name", &old.name, &new.name),
        ("description", &old.description, &new.description),
    ] {
        if a != b {
            out.push(Change {
                section: Section::Header,
                summary: format!("the policy {what} changed from `{a}` to `{b}`"),
                details: Vec::new(),
                old_rule: None,
                new_rule: None,
                data: json!({what: {"old": a, "new": b}}),
            });
        }
    }
    out
}

type Record<'a> =
    dyn FnMut(Section, Option<Access>, Res, Option<RuleId>, Option<RuleId>, (VmKind, Phase)) + 'a;

fn msr_at(list: &[MsrRange], i: u32) -> Option<RuleId> {
    list.iter()
        .find(|r| r.first <= i && i <= r.last)
        .map(|r| r.rule)
}

fn msr_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    let keys: BTreeSet<_> = old.msr.keys().chain(new.msr.keys()).copied().collect();
    for key @ (kind, phase, access) in keys {
        let a = old.msr.get(&key).map_or(&[][..], Vec::as_slice);
        let b = new.msr.get(&key).map_or(&[][..], Vec::as_slice);
        let mut points: Vec<u64> = vec![0];
        for r in a.iter().chain(b) {
            points.push(u64::from(r.first));
            points.push(u64::from(r.last) + 1);
        }
        points.retain(|&p| p <= u64::from(u32::MAX));
        points.sort_unstable();
        points.dedup();
        // Coalesce adjacent intervals decided by the same pair of rules.
        let mut pending: Option<(u32, u32, Option<RuleId>, Option<RuleId>)> = None;
        let flush = |p: Option<(u32, u32, Option<RuleId>, Option<RuleId>)>,
                     record: &mut Record<'_>| {
            if let Some((f, l, o, n)) = p {
                record(
                    Section::Msr,
                    Some(access),
                    Res::Msr(f, l),
                    o,
                    n,
                    (kind, phase),
                );
            }
        };
        for (i, &p) in points.iter().enumerate() {
            let first = p as u32;
            let last = points.get(i + 1).map_or(u32::MAX, |&n| (n - 1) as u32);
            let (o, n) = (msr_at(a, first), msr_at(b, first));
            match &mut pending {
                Some((_, l, po, pn))
                    if *po == o && *pn == n && u64::from(*l) + 1 == u64::from(first) =>
                {
                    *l = last
                }
                _ => {
                    flush(pending.take(), record);
                    pending = Some((first, last, o, n));
                }
            }
        }
        flush(pending, record);
    }
}

fn cpuid_at(list: &[CpuidEntry], leaf: u32, sub: Option<u32>) -> Option<RuleId> {
    list.iter()
        .find(|e| {
            e.leaf_first <= leaf
                && leaf <= e.leaf_last
                && match sub {
                    Some(s) => e.subleaf.is_none_or(|x| x == s),
                    None => e.subleaf.is_none(),
                }
        })
        .map(|e| e.rule)
}

/// A run of CPUID leaves: (subleaf class, other subleaves, old rule, new rule).
type RunKey = (Option<u32>, bool, Option<RuleId>, Option<RuleId>);

fn cpuid_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    let keys: BTreeSet<_> = old.cpuid.keys().chain(new.cpuid.keys()).copied().collect();
    for key @ (kind, phase) in keys {
        let a = old.cpuid.get(&key).map_or(&[][..], Vec::as_slice);
        let b = new.cpuid.get(&key).map_or(&[][..], Vec::as_slice);
        let mut points: Vec<u64> = vec![0];
        for e in a.iter().chain(b) {
            points.push(u64::from(e.leaf_first));
            points.push(u64::from(e.leaf_last) + 1);
        }
        points.retain(|&p| p <= u64::from(u32::MAX));
        points.sort_unstable();
        points.dedup();
        let mut pending: BTreeMap<RunKey, (u32, u32)> = BTreeMap::new();
        let mut done: Vec<(CpuidSel, Option<RuleId>, Option<RuleId>)> = Vec::new();
        for (i, &p) in points.iter().enumerate() {
            let first = p as u32;
            let last = points.get(i + 1).map_or(u32::MAX, |&n| (n - 1) as u32);
            let specifics: BTreeSet<u32> = a
                .iter()
                .chain(b)
                .filter(|e| e.leaf_first <= first && first <= e.leaf_last)
                .filter_map(|e| e.subleaf)
                .collect();
            let mut seen = BTreeSet::new();
            let classes = specifics
                .iter()
                .map(|&s| (Some(s), false))
                .chain(std::iter::once((None, !specifics.is_empty())));
            for (sub, others) in classes {
                let (o, n) = (cpuid_at(a, first, sub), cpuid_at(b, first, sub));
                let k = (sub, others, o, n);
                seen.insert(k);
                match pending.get_mut(&k) {
                    Some((_, l)) if u64::from(*l) + 1 == u64::from(first) => *l = last,
                    _ => {
                        if let Some((f, l)) = pending.insert(k, (first, last)) {
                            done.push((
                                CpuidSel {
                                    leaves: (f, l),
                                    subleaf: sub,
                                    others,
                                },
                                o,
                                n,
                            ));
                        }
                    }
                }
            }
            // Runs that did not continue into this interval are complete.
            let ended: Vec<_> = pending
                .keys()
                .filter(|k| !seen.contains(*k))
                .copied()
                .collect();
            for k in ended {
                if let Some((f, l)) = pending.remove(&k) {
                    done.push((
                        CpuidSel {
                            leaves: (f, l),
                            subleaf: k.0,
                            others: k.1,
                        },
                        k.2,
                        k.3,
                    ));
                }
            }
        }
        for (k, (f, l)) in pending {
            done.push((
                CpuidSel {
                    leaves: (f, l),
                    subleaf: k.0,
                    others: k.1,
                },
                k.2,
                k.3,
            ));
        }
        for (sel, o, n) in done {
            record(Section::Cpuid, None, Res::Cpuid(sel), o, n, (kind, phase));
        }
    }
}

fn pv_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            let find = |ir: &Ir, call| {
                ir.pv
                    .get(&(kind, phase))
                    .and_then(|l| l.iter().find(|(c, _)| *c == call))
                    .map(|(_, id)| *id)
            };
            for call in PvCall::ALL {
                record(
                    Section::Pv,
                    None,
                    Res::Pv(call),
                    find(old, call),
                    find(new, call),
                    (kind, phase),
                );
            }
        }
    }
}

fn res_name(registry: &Registry, r: &Res) -> String {
    match *r {
        Res::Msr(f, l) => describe::msr_range(registry, f, l),
        Res::Pv(c) => format!("`{}`", c.name()),
        Res::Cpuid(s) => cpuid_sel(&s),
    }
}

fn cpuid_sel(s: &CpuidSel) -> String {
    let base = describe::cpuid_leaf(s.leaves, s.subleaf);
    if s.others {
        format!("{base} (other subleaves)")
    } else {
        base
    }
}

fn res_json(r: &Res) -> Value {
    match *r {
        Res::Msr(f, l) => json!({"msr": [format!("{f:#x}"), format!("{l:#x}")]}),
        Res::Pv(c) => json!({"pv": c.name()}),
        Res::Cpuid(s) => {
            json!({"cpuid": {"leaves": [format!("{:#x}", s.leaves.0), format!("{:#x}", s.leaves.1)], "subleaf": s.subleaf, "other_subleaves": s.others}})
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn describe_change(
    old: &Compiled,
    new: &Compiled,
    registry: &Registry,
    section: Section,
    access: Option<Access>,
    o: Option<RuleId>,
    n: Option<RuleId>,
    scopes: &[(VmKind, Phase)],
    res: &[Res],
) -> Vec<Change> {
    let (a, b) = (eff(&old.ir, o), eff(&new.ir, n));
    let where_ = describe::scopes(scopes);
    let what = join_and(
        &res.iter()
            .map(|r| res_name(registry, r))
            .collect::<Vec<_>>(),
    );
    let loc = |c: &Compiled, id: Option<RuleId>| -> Option<String> {
        id.and_then(|id| c.ir.rule(id))
            .map(|r: &IrRule| describe::rule_ref(&c.path, r))
    };
    let data = json!({
        "access": access.map(Access::name),
        "scopes": scopes.iter().map(|(k, p)| json!({"vm": k.name(), "phase": p.name()})).collect::<Vec<_>>(),
        "resources": res.iter().map(res_json).collect::<Vec<_>>(),
        "old": {"verdict": a.verdict.name()},
        "new": {"verdict": b.verdict.name()},
    });
    let make = |summary: String, details: Vec<String>| Change {
        section,
        summary,
        details,
        old_rule: loc(old, o),
        new_rule: loc(new, n),
        data: data.clone(),
    };
    if section == Section::Cpuid {
        let sels: Vec<CpuidSel> = res
            .iter()
            .filter_map(|r| {
                if let Res::Cpuid(s) = r {
                    Some(*s)
                } else {
                    None
                }
            })
            .collect();
        return cpuid_changes(registry, &sels, a, b, &where_)
            .into_iter()
            .map(|(s, d)| make(s, d))
            .collect();
    }
    let (act, noun) = match access {
        Some(acc) => (
            format!("{} {what}", acc.name()),
            format!("{}s of {what}", acc.name()),
        ),
        None => (format!("call {what}"), format!("calls to {what}")),
    };
    let summary = match (a.verdict, b.verdict) {
        (Verdict::Deny, Verdict::Allow) => format!("host may now {act} on {where_}"),
        (Verdict::Allow, Verdict::Deny) => format!("host may no longer {act} on {where_}"),
        (Verdict::Deny, Verdict::Ignore) => format!(
            "host {noun} on {where_} are now ignored (reported as success, nothing changes); they were refused"
        ),
        (Verdict::Ignore, Verdict::Deny) => {
            format!("host {noun} on {where_} are now refused with -EPERM; they were ignored")
        }
        (Verdict::Allow, Verdict::Ignore) => {
            format!("host {noun} on {where_} are now ignored; they were carried out")
        }
        (Verdict::Ignore, Verdict::Allow) => {
            format!("host {noun} on {where_} are now carried out; they were ignored")
        }
        _ => format!("the value checks on host {noun} on {where_} changed"),
    };
    let mut details = Vec::new();
    match (a.detail, b.detail) {
        (Some(RuleDetail::Msr(x)), Some(RuleDetail::Msr(y))) => msr_detail(&mut details, x, y),
        (None, Some(RuleDetail::Msr(y))) if b.verdict == Verdict::Allow => {
            msr_detail(&mut details, MsrConstraint::NONE, y)
        }
        (Some(RuleDetail::Pv(x)), Some(RuleDetail::Pv(y))) => pv_detail(&mut details, x, y),
        (None, Some(RuleDetail::Pv(y))) if b.verdict == Verdict::Allow => {
            pv_detail(&mut details, PvConstraint::NONE, y)
        }
        _ => {}
    }
    vec![make(summary, details)]
}

fn msr_detail(out: &mut Vec<String>, x: MsrConstraint, y: MsrConstraint) {
    for (name, a, b) in [
        ("write-mask", x.write_mask, y.write_mask),
        ("force-on", x.force_on, y.force_on),
        ("force-off", x.force_off, y.force_off),
        ("read-mask", x.read_mask, y.read_mask),
    ] {
        if a != b {
            out.push(format!(
                "{name}:\n{}",
                two_values("  ", ("old", a), ("new", b), 64).trim_end()
            ));
        }
    }
}

fn pv_detail(out: &mut Vec<String>, x: PvConstraint, y: PvConstraint) {
    if x.read_mask != y.read_mask {
        out.push(format!(
            "read-mask:\n{}",
            two_values("  ", ("old", x.read_mask), ("new", y.read_mask), 64).trim_end()
        ));
    }
    if x.min_vector != y.min_vector {
        out.push(format!("min-vector: {} -> {}", x.min_vector, y.min_vector));
    }
    if x.allow_soft != y.allow_soft {
        out.push(format!("allow-soft: {} -> {}", x.allow_soft, y.allow_soft));
    }
}

fn cpuid_changes(
    registry: &Registry,
    sels: &[CpuidSel],
    a: Eff,
    b: Eff,
    where_: &str,
) -> Vec<(String, Vec<String>)> {
    let regs = |e: Eff| match e.detail {
        Some(RuleDetail::Cpuid(r)) if e.verdict == Verdict::Allow => r,
        _ => [RegControl::FIXED; 4],
    };
    let (ra, rb) = (regs(a), regs(b));
    let mut out = Vec::new();
    for reg in Register::ALL {
        let (x, y) = (ra[reg as usize], rb[reg as usize]);
        let locs: Vec<String> = sels
            .iter()
            .map(|s| {
                let l = describe::cpuid_reg(s.leaves, s.subleaf, reg);
                if s.others {
                    format!("{l} (other subleaves)")
                } else {
                    l
                }
            })
            .collect();
        for (mode, old_m, new_m, gained, lost) in [
            (
                "host",
                x.host,
                y.host,
                "host may now choose",
                "host may no longer choose",
            ),
            (
                "clear-only",
                x.clear_only,
                y.clear_only,
                "host may now clear (never set)",
                "host may no longer clear",
            ),
            (
                "force-on",
                x.force_on,
                y.force_on,
                "the hypervisor now forces on",
                "the hypervisor no longer forces on",
            ),
            (
                "force-off",
                x.force_off,
                y.force_off,
                "the hypervisor now forces off",
                "the hypervisor no longer forces off",
            ),
        ] {
            for (bits, verb) in [(new_m & !old_m, gained), (old_m & !new_m, lost)] {
                if bits == 0 {
                    continue;
                }
                let feats: Vec<String> = sels
                    .iter()
                    .flat_map(|s| describe::features(registry, s.leaves, s.subleaf, reg, bits))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let named = if feats.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", feats.join(", "))
                };
                out.push((
                    format!(
                        "{verb} bits {bits:#x}{named} of {} on {where_}",
                        join_and(&locs)
                    ),
                    vec![format!(
                        "{mode} mask:\n{}",
                        two_values(
                            "  ",
                            ("old", u64::from(old_m)),
                            ("new", u64::from(new_m)),
                            32
                        )
                        .trim_end()
                    )],
                ));
            }
        }
    }
    if out.is_empty() && a.verdict != b.verdict {
        let locs: Vec<String> = sels.iter().map(cpuid_sel).collect();
        out.push((
            format!(
                "the CPUID verdict for {} on {where_} is now `{}`; it was `{}`",
                join_and(&locs),
                b.verdict.name(),
                a.verdict.name()
            ),
            Vec::new(),
        ));
    }
    out
}

/// Renders changes for people, grouped by section.
pub fn render(old: &Compiled, new: &Compiled, changes: &[Change]) -> String {
    let mut o = String::new();
    let (da, db) = (
        digest::hex(&digest::digest(&old.ir)),
        digest::hex(&digest::digest(&new.ir)),
    );
    if changes.is_empty() {
        let _ = writeln!(
            o,
            "no semantic difference: {} and {} decide every request the same way",
            old.path, new.path
        );
        let _ = writeln!(o, "  digest {da}");
        return o;
    }
    let n = changes.len();
    let _ = writeln!(
        o,
        "{} -> {}: {n} change{}",
        old.path,
        new.path,
        if n == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "  old digest {da}");
    let _ = writeln!(o, "  new digest {db}");
    let mut section = None;
    for c in changes {
        if section != Some(c.section) {
            section = Some(c.section);
            let _ = writeln!(o, "\n{}", c.section.title());
        }
        let _ = writeln!(o, "  - {}", c.summary);
        for d in &c.details {
            for line in d.lines() {
                let _ = writeln!(o, "      {line}");
            }
        }
        if c.section != Section::Header {
            let _ = writeln!(
                o,
                "      old: {}",
                c.old_rule.as_deref().unwrap_or("default deny (no rule)")
            );
            let _ = writeln!(
                o,
                "      new: {}",
                c.new_rule.as_deref().unwrap_or("default deny (no rule)")
            );
        }
    }
    o
}
