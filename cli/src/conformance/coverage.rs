//! `pvgate conformance --coverage`: which rules, MSR range boundaries and
//! invariants of the policy the suite's requests exercised. The suite's
//! results carry every request each case made (`CaseResult::probes`);
//! each is decided again against the same policy to learn its rule, and
//! `pvgate_review::coverage` folds the hits over the policy.

use pvgate_codegen::{Compiled, Interpreter};
use pvgate_gate::{decide_cpuid, decide_msr, decide_pv};
use pvgate_review::coverage::{Coverage, Edge, Hit, Probe, RangeCoverage, coverage};
use pvgate_trace::{CaseResult, Probed};
use serde_json::json;

/// The coverage of `results` (every case of every file) over the policy.
pub fn of(compiled: &Compiled, interp: &Interpreter, results: &[&[CaseResult]]) -> Coverage {
    let hits: Vec<Hit> = results
        .iter()
        .flat_map(|r| r.iter())
        .flat_map(|r| r.probes.iter())
        .filter_map(|p| hit(interp, p))
        .collect();
    coverage(&compiled.ir, &hits)
}

/// One probe as a hit: the request and the rule that decides it.
fn hit(interp: &Interpreter, p: &pvgate_trace::Probe) -> Option<Hit> {
    let (kind, phase) = (p.kind, p.phase);
    let (probe, rule) = match p.what {
        Probed::Pv(call) => (
            Probe::Pv { kind, phase, call },
            decide_pv(interp, kind, phase, call).rule.map(|r| r.id),
        ),
        Probed::Msr { access, index } => (
            Probe::Msr {
                kind,
                phase,
                access,
                index,
            },
            decide_msr(interp, kind, phase, access, index)
                .rule
                .map(|r| r.id),
        ),
        Probed::Cpuid { leaf, subleaf } => (
            Probe::Cpuid {
                kind,
                phase,
                leaf,
                subleaf,
                bit: None,
            },
            decide_cpuid(interp, kind, phase, leaf, subleaf)
                .rule
                .map(|r| r.id),
        ),
        // The injection call itself is a `Pv` probe of the same case.
        Probed::Vector(_) => return None,
    };
    Some(Hit { probe, rule })
}

fn edge(e: Edge) -> &'static str {
    match e {
        Edge::Hit => "hit",
        Edge::Missed => "missed",
        Edge::None => "none",
    }
}

/// What a range still needs, e.g. `0x10..=0x1f: high end, one outside`.
fn missing(r: &RangeCoverage) -> Option<String> {
    let needs: Vec<&str> = [
        (r.low, "low end"),
        (r.high, "high end"),
        (r.outside, "one value outside"),
    ]
    .iter()
    .filter(|(e, _)| !e.done())
    .map(|(_, what)| *what)
    .collect();
    (!needs.is_empty()).then(|| format!("{:#x}..={:#x}: {}", r.lo, r.hi, needs.join(", ")))
}

/// The human report: totals, then every uncovered rule and invariant and
/// every range whose boundaries were not all probed, each with file:line.
pub fn human(path: &str, c: &Coverage) -> String {
    let exercised = c.rules.iter().filter(|r| r.exercised()).count();
    let inv = c.invariants.iter().filter(|i| i.hits > 0).count();
    let mut out = format!(
        "coverage of {path}: {exercised} of {} rules exercised, {inv} of {} invariants\n",
        c.rules.len(),
        c.invariants.len()
    );
    for r in c.uncovered_rules() {
        out.push_str(&format!(
            "  uncovered rule `{}` ({path}:{})\n",
            r.name, r.line
        ));
    }
    for r in c.rules.iter().filter(|r| r.exercised()) {
        for m in r.ranges.iter().filter_map(missing) {
            out.push_str(&format!(
                "  range of `{}` ({path}:{}) not bounded: {m}\n",
                r.name, r.line
            ));
        }
    }
    for i in c.uncovered_invariants() {
        out.push_str(&format!(
            "  uncovered invariant `{}` ({}:{})\n",
            i.name, i.file, i.line
        ));
    }
    out
}

/// The JSON report: every rule and invariant with its hits; MSR indices
/// as hex strings.
pub fn json(path: &str, c: &Coverage) -> serde_json::Value {
    json!({
        "policy": path,
        "rules": c.rules.iter().map(|r| json!({
            "id": r.id.0,
            "name": r.name,
            "file": path,
            "line": r.line,
            "hits": r.hits,
            "exercised": r.exercised(),
            "ranges": r.ranges.iter().map(|g| json!({
                "lo": format!("{:#x}", g.lo),
                "hi": format!("{:#x}", g.hi),
                "low": edge(g.low),
                "high": edge(g.high),
                "outside": edge(g.outside),
                "bounded": g.bounded(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "invariants": c.invariants.iter().map(|i| json!({
            "name": i.name,
            "file": i.file,
            "line": i.line,
            "hits": i.hits,
            "exercised": i.hits > 0,
        })).collect::<Vec<_>>(),
        "uncovered_rules": c.uncovered_rules().map(|r| format!("{path}:{} {}", r.line, r.name)).collect::<Vec<_>>(),
        "uncovered_invariants": c.uncovered_invariants().map(|i| format!("{}:{} {}", i.file, i.line, i.name)).collect::<Vec<_>>(),
    })
}
