//! The MSR part of the Rust tables, per (kind, phase, access):
//!
//! * `msr_rule`, the rule deciding an access: a `match` for up to
//!   [`MATCH_LIMIT`] ranges, a const sorted slice above that;
//! * `msr_verdict`, the verdict alone (the fast path): a 2-bit verdict map
//!   (0 deny, 1 allow, 2 ignore) over each of KVM's MSR-bitmap regions
//!   (0x0–0x1FFF, 0xC0000000–0xC0001FFF) where the policy is dense there
//!   (at least [`MAP_MIN_RANGES`] ranges), answered with one load and a
//!   shift; a `match` of the non-deny ranges outside the maps; the sorted
//!   slice when those are more than [`MATCH_LIMIT`].
//!
//! Both answer the same function as the interpreter (the conformance crate
//! checks every shape); the verdict maps are trimmed after their last
//! non-deny word, so a policy pays only for the part of a region it uses.

use std::fmt::Write;

use pvgate_gate::lookup::{MSR_HIGH_BASE, MSR_LOW_BASE, MSR_REGION_LEN, MSRS_PER_WORD};
use pvgate_gate::{Access, Phase, Verdict, VmKind};

use crate::emit_common::{MATCH_LIMIT, Shape, camel, covers_all, fn_name, rule_comment};
use crate::ir::{Ir, MsrRange};

/// A (kind, phase, access) gets verdict maps when at least this many of
/// its ranges lie (at least partly) in KVM's MSR-bitmap regions. Below
/// that, its verdict `match` is a few compares, as cheap as the map's
/// window check and load.
pub const MAP_MIN_RANGES: usize = 4;

/// KVM's two MSR-bitmap regions: (name, first MSR).
const REGIONS: [(&str, u32); 2] = [("LOW", MSR_LOW_BASE), ("HIGH", MSR_HIGH_BASE)];

/// Emits `msr_rule`, `msr_verdict` and their per-(kind, phase, access)
/// functions and tables.
pub(crate) fn emit(o: &mut String, ir: &Ir, path: &str, shape: Shape) {
    emit_rule_lookups(o, ir, path, shape);
    emit_verdict_lookups(o, ir, path, shape);
}

/// Whether the MSR tables of `ir` in `shape` hold a verdict map.
pub(crate) fn uses_maps(ir: &Ir, shape: Shape) -> bool {
    ir.msr
        .values()
        .any(|ranges| !verdict_maps(ir, ranges, shape).is_empty())
}

/// Whether `msr_rule` of these ranges is a sorted slice (else a `match`).
fn rule_table_sorted(shape: Shape, ranges: &[MsrRange]) -> bool {
    match shape {
        Shape::Auto | Shape::Bitmap => ranges.len() > MATCH_LIMIT,
        Shape::Match => false,
        Shape::Sorted => true,
    }
}

/// One 2-bit verdict map: its region's first MSR, its words (trimmed
/// after the last non-deny one), and the ranges that set its bits.
struct VerdictMap {
    region: &'static str,
    base: u32,
    words: Vec<u64>,
    from: Vec<(MsrRange, Verdict)>,
}

impl VerdictMap {
    /// The last MSR the map covers.
    fn last(&self) -> u32 {
        let covered = u32::try_from(self.words.len()).unwrap_or(0) * MSRS_PER_WORD;
        self.base + covered - 1
    }
}

/// A non-deny range (or the part of one outside the maps) and its verdict.
#[derive(Clone, Copy)]
struct Piece {
    first: u32,
    last: u32,
    rule: MsrRange,
    verdict: Verdict,
}

fn verdict_of(ir: &Ir, r: &MsrRange) -> Verdict {
    ir.rule(r.rule).map_or(Verdict::Deny, |rule| rule.verdict)
}

/// The maps a (kind, phase, access) gets, by shape and density.
fn verdict_maps(ir: &Ir, ranges: &[MsrRange], shape: Shape) -> Vec<VerdictMap> {
    let in_region =
        |r: &MsrRange, base: u32| r.first <= base + (MSR_REGION_LEN - 1) && r.last >= base;
    let dense = ranges
        .iter()
        .filter(|r| REGIONS.iter().any(|&(_, base)| in_region(r, base)))
        .count();
    let wanted = match shape {
        Shape::Auto => dense >= MAP_MIN_RANGES,
        Shape::Bitmap => true,
        Shape::Match | Shape::Sorted => false,
    };
    if !wanted {
        return Vec::new();
    }
    let mut maps = Vec::new();
    for (region, base) in REGIONS {
        let mut words = vec![0u64; (MSR_REGION_LEN / MSRS_PER_WORD) as usize];
        let mut from = Vec::new();
        for r in ranges.iter().filter(|r| in_region(r, base)) {
            let verdict = verdict_of(ir, r);
            if verdict == Verdict::Deny {
                continue;
            }
            let first = r.first.max(base) - base;
            let last = r.last.min(base + (MSR_REGION_LEN - 1)) - base;
            for off in first..=last {
                let word = &mut words[(off / MSRS_PER_WORD) as usize];
                *word |= (verdict as u64) << (2 * (off % MSRS_PER_WORD));
            }
            from.push((*r, verdict));
        }
        let used = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
        words.truncate(used);
        if !words.is_empty() {
            maps.push(VerdictMap {
                region,
                base,
                words,
                from,
            });
        }
    }
    maps
}

/// The non-deny ranges, less the parts the maps cover, sorted.
fn sparse_pieces(ir: &Ir, ranges: &[MsrRange], maps: &[VerdictMap]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for r in ranges {
        let verdict = verdict_of(ir, r);
        if verdict == Verdict::Deny {
            continue;
        }
        // Cut the maps' windows out of [first, last]: at most one piece
        // before each window and one after the last.
        let mut rest = Some((r.first, r.last));
        for m in maps {
            let Some((first, last)) = rest else { break };
            if last < m.base || first > m.last() {
                continue;
            }
            if first < m.base {
                pieces.push(Piece {
                    first,
                    last: m.base - 1,
                    rule: *r,
                    verdict,
                });
            }
            rest = (last > m.last()).then(|| (m.last() + 1, last));
        }
        if let Some((first, last)) = rest {
            pieces.push(Piece {
                first,
                last,
                rule: *r,
                verdict,
            });
        }
    }
    pieces.sort_by_key(|p| p.first);
    pieces
}

fn emit_verdict_lookups(o: &mut String, ir: &Ir, path: &str, shape: Shape) {
    o.push_str(
        "\n/// The verdict on an MSR access, without its rule (default deny): the\n\
         /// fast path. `msr_rule` finds the rule when it is needed (the value\n\
         /// constraint of an allowed access, the audit record, `explain`).\n",
    );
    o.push_str("#[inline]\n");
    o.push_str(
        "pub fn msr_verdict(kind: VmKind, phase: Phase, access: Access, index: u32) -> Verdict {\n",
    );
    if ir.msr.is_empty() {
        o.push_str("    let _ = (kind, phase, access, index);\n    Verdict::Deny\n}\n");
    } else {
        o.push_str("    match (kind, phase, access) {\n");
        for &(kind, phase, access) in ir.msr.keys() {
            let pattern = format!(
                "(VmKind::{}, Phase::{}, Access::{})",
                camel(kind.name()),
                camel(phase.name()),
                camel(access.name()),
            );
            let body = format!(
                "{}(index)",
                fn_name("msr_verdict", kind, phase, Some(access))
            );
            arm(o, &pattern, &body);
        }
        if ir.msr.len() < VmKind::ALL.len() * Phase::ALL.len() * Access::ALL.len() {
            o.push_str("        _ => Verdict::Deny,\n");
        }
        o.push_str("    }\n}\n");
    }
    let mut searched = false;
    for (&(kind, phase, access), ranges) in &ir.msr {
        searched |= emit_verdict_fn(o, ir, path, shape, (kind, phase, access), ranges);
    }
    if searched {
        o.push_str(
            "\n/// The verdict of the MSR rule a sorted-slice lookup found (default deny).\n",
        );
        o.push_str("#[inline]\n");
        o.push_str("fn rule_verdict(rule: Option<RuleId>) -> Verdict {\n");
        o.push_str("    pvgate_gate::lookup::msr_rule_verdict(&RULES, rule)\n}\n");
    }
}

fn emit_verdict_fn(
    o: &mut String,
    ir: &Ir,
    path: &str,
    shape: Shape,
    (kind, phase, access): (VmKind, Phase, Access),
    ranges: &[MsrRange],
) -> bool {
    let name = fn_name("msr_verdict", kind, phase, Some(access));
    let maps = verdict_maps(ir, ranges, shape);
    let pieces = sparse_pieces(ir, ranges, &maps);
    // Above the limit the sparse part is the rule table's binary search
    // (it exists then: the rule lookup is sorted too).
    let sorted = match shape {
        Shape::Sorted => true,
        Shape::Match => false,
        Shape::Auto | Shape::Bitmap => {
            pieces.len() > MATCH_LIMIT && rule_table_sorted(shape, ranges)
        }
    };
    let what = format!(
        "MSR {}s for {} VMs in `{}`",
        access.name(),
        kind.name(),
        phase.name()
    );
    for m in &maps {
        emit_map(o, ir, path, &what, &name, m);
    }
    let _ = writeln!(o, "\n/// Verdicts of {what}:");
    for m in &maps {
        let _ = writeln!(
            o,
            "/// * {:#x}-{:#x}: the 2-bit verdict map `{}`;",
            m.base,
            m.last(),
            map_name(&name, m)
        );
    }
    if sorted {
        o.push_str("/// * the rest: the rule's verdict, by binary search of the rule table.\n");
    } else {
        let _ = writeln!(
            o,
            "/// * {}{} non-deny range{} by `match`; the rest deny.",
            if maps.is_empty() {
                ""
            } else {
                "outside them, "
            },
            pieces.len(),
            if pieces.len() == 1 { "" } else { "s" }
        );
    }
    o.push_str("#[inline]\n");
    let _ = writeln!(o, "fn {name}(index: u32) -> Verdict {{");
    if maps.is_empty() && sorted {
        let _ = writeln!(
            o,
            "    rule_verdict({}(index))\n}}",
            fn_name("msr", kind, phase, Some(access))
        );
        return true;
    }
    if maps.is_empty() && !sorted && pieces.is_empty() {
        // Only deny ranges: a `match` of one `_` arm would be a lint.
        o.push_str("    let _ = index;\n    Verdict::Deny\n}\n");
        return false;
    }
    o.push_str("    match index {\n");
    let mut arms: Vec<(u32, u32)> = Vec::new();
    for m in &maps {
        let pattern = format!("{:#x}..={:#x}", m.base, m.last());
        arm(
            o,
            &pattern,
            &format!("{}.verdict(index)", map_name(&name, m)),
        );
        arms.push((m.base, m.last()));
    }
    if sorted {
        let _ = writeln!(
            o,
            "        _ => rule_verdict({}(index)),",
            fn_name("msr", kind, phase, Some(access))
        );
        o.push_str("    }\n}\n");
        return true;
    }
    for p in &pieces {
        let _ = writeln!(o, "        // {}", rule_comment(ir, path, p.rule.rule));
        let pattern = if p.first == p.last {
            format!("{:#x}", p.first)
        } else {
            format!("{:#x}..={:#x}", p.first, p.last)
        };
        let _ = writeln!(
            o,
            "        {pattern} => Verdict::{},",
            camel(p.verdict.name())
        );
        arms.push((p.first, p.last));
    }
    arms.sort_unstable();
    if !covers_all(arms.into_iter()) {
        o.push_str("        // Deny ranges and MSRs no rule covers.\n");
        o.push_str("        _ => Verdict::Deny,\n");
    }
    o.push_str("    }\n}\n");
    false
}

/// One `match` arm at 8 spaces, as rustfmt writes it: on one line when
/// it fits in 100 columns, else with its body in a block.
fn arm(o: &mut String, pattern: &str, body: &str) {
    let line = format!("        {pattern} => {body},");
    if line.chars().count() <= 100 {
        o.push_str(&line);
        o.push('\n');
    } else {
        let _ = writeln!(o, "        {pattern} => {{\n            {body}\n        }}");
    }
}

fn map_name(fn_name: &str, m: &VerdictMap) -> String {
    format!("{}_{}", fn_name.to_ascii_uppercase(), m.region)
}

/// How many of a map's ranges its comment names; `msr_rule` names all.
const MAP_COMMENT_RANGES: usize = 16;

fn emit_map(o: &mut String, ir: &Ir, path: &str, what: &str, fn_name: &str, m: &VerdictMap) {
    let _ = writeln!(
        o,
        "\n/// 2-bit verdicts of {what}\n\
         /// over {:#x}-{:#x} (KVM's {} MSR-bitmap region, up to its last\n\
         /// non-deny MSR): MSR `{:#x} + n` is bits `2 * (n % 32)` and\n\
         /// `2 * (n % 32) + 1` of word `n / 32`; 0 deny, 1 allow, 2 ignore.",
        m.base,
        m.last(),
        m.region.to_ascii_lowercase(),
        m.base
    );
    o.push_str("// Set by:\n");
    for (r, verdict) in m.from.iter().take(MAP_COMMENT_RANGES) {
        let span = if r.first == r.last {
            format!("{:#x}", r.first)
        } else {
            format!("{:#x}..={:#x}", r.first, r.last)
        };
        let _ = writeln!(
            o,
            "// * {span} {}: {}",
            verdict.name(),
            rule_comment(ir, path, r.rule)
        );
    }
    if m.from.len() > MAP_COMMENT_RANGES {
        let _ = writeln!(
            o,
            "// * and {} more ranges (`msr_rule` names each).",
            m.from.len() - MAP_COMMENT_RANGES
        );
    }
    let _ = writeln!(
        o,
        "static {}: VerdictMap<{:#x}, {}> = VerdictMap {{",
        map_name(fn_name, m),
        m.base,
        m.words.len()
    );
    o.push_str("    words: [\n");
    for (i, w) in m.words.iter().enumerate() {
        let first = m.base + u32::try_from(i).unwrap_or(0) * MSRS_PER_WORD;
        let last = first + (MSRS_PER_WORD - 1);
        let _ = writeln!(o, "        {w:#018x}, // {first:#x}-{last:#x}");
    }
    o.push_str("    ],\n};\n");
}

fn emit_rule_lookups(o: &mut String, ir: &Ir, path: &str, shape: Shape) {
    o.push_str("\n/// The rule deciding an MSR access, or `None` (default deny).\n");
    o.push_str("#[inline]\n");
    o.push_str("pub const fn msr_rule(kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {\n");
    if ir.msr.is_empty() {
        o.push_str("    let _ = (kind, phase, access, index);\n    None\n}\n");
    } else {
        o.push_str("    match (kind, phase, access) {\n");
        for &(kind, phase, access) in ir.msr.keys() {
            let _ = writeln!(
                o,
                "        (VmKind::{}, Phase::{}, Access::{}) => {}(index),",
                camel(kind.name()),
                camel(phase.name()),
                camel(access.name()),
                fn_name("msr", kind, phase, Some(access))
            );
        }
        if ir.msr.len() < VmKind::ALL.len() * Phase::ALL.len() * Access::ALL.len() {
            o.push_str("        _ => None,\n");
        }
        o.push_str("    }\n}\n");
    }
    for (&(kind, phase, access), ranges) in &ir.msr {
        let name = fn_name("msr", kind, phase, Some(access));
        let sorted = rule_table_sorted(shape, ranges);
        let _ = writeln!(
            o,
            "\n/// MSR {}s for {} VMs in `{}`: {} range{}.",
            access.name(),
            kind.name(),
            phase.name(),
            ranges.len(),
            if ranges.len() == 1 { "" } else { "s" }
        );
        if sorted {
            emit_msr_sorted(o, ir, path, &name, ranges);
        } else {
            emit_msr_match(o, ir, path, &name, ranges);
        }
    }
}

fn range_pattern(r: &MsrRange) -> String {
    if r.first == r.last {
        format!("{:#x}", r.first)
    } else {
        format!("{:#x}..={:#x}", r.first, r.last)
    }
}

fn emit_msr_match(o: &mut String, ir: &Ir, path: &str, name: &str, ranges: &[MsrRange]) {
    let _ = writeln!(o, "const fn {name}(index: u32) -> Option<RuleId> {{");
    o.push_str("    match index {\n");
    for r in ranges {
        let _ = writeln!(o, "        // {}", rule_comment(ir, path, r.rule));
        let _ = writeln!(
            o,
            "        {} => Some(RuleId({})),",
            range_pattern(r),
            r.rule.0
        );
    }
    if !covers_all(ranges.iter().map(|r| (r.first, r.last))) {
        o.push_str("        _ => None,\n");
    }
    o.push_str("    }\n}\n");
}

fn emit_msr_sorted(o: &mut String, ir: &Ir, path: &str, name: &str, ranges: &[MsrRange]) {
    let table = name.to_ascii_uppercase();
    let _ = writeln!(o, "const fn {name}(index: u32) -> Option<RuleId> {{");
    let _ = writeln!(o, "    pvgate_gate::lookup::find_range(&{table}, index)");
    o.push_str("}\n\n");
    let _ = writeln!(
        o,
        "/// Sorted, disjoint `(first, last, rule)` ranges for `{name}`."
    );
    let _ = writeln!(
        o,
        "const {table}: [(u32, u32, RuleId); {}] = [",
        ranges.len()
    );
    for r in ranges {
        let _ = writeln!(o, "    // {}", rule_comment(ir, path, r.rule));
        let _ = writeln!(
            o,
            "    ({:#x}, {:#x}, RuleId({})),",
            r.first, r.last, r.rule.0
        );
    }
    o.push_str("];\n");
}
