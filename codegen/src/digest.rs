//! The policy digest: SHA-256 over a canonical text form of the IR. Rule
//! order, comments, formatting and how a number was written do not change
//! it; any change to a decision, constraint, name or reason does, and so
//! does any change to the set of invariants proven (the mandatory baseline
//! included): two images with one digest were proven against the same
//! invariants. It also covers the hypervisor's supported CPUID
//! (`policy/registry/hypervisor-cpuid.toml`, entries and reasons): two
//! images with one digest give a protected VM the same base.

use std::fmt::Write;

use pvgate_gate::{RuleDetail, Verdict};
use sha2::{Digest, Sha256};

use crate::invariant::{Invariant, InvariantCheck};
use crate::ir::{Ir, IrRule};

/// The canonical text the digest is computed over (one line per decided
/// range, each with the full content of its rule).
pub fn canonical_text(ir: &Ir) -> String {
    let mut out = String::from("pvgate-ir/3\n");
    let _ = writeln!(out, "name {:?}", ir.name);
    let _ = writeln!(out, "description {:?}", ir.description);
    let _ = writeln!(out, "cpuid-violations {}", ir.violation_mode.name());
    let rule = |id| {
        ir.rule(id)
            .map_or_else(|| String::from("?"), canonical_rule)
    };
    for ((kind, phase, access), ranges) in &ir.msr {
        for r in ranges {
            let _ = writeln!(
                out,
                "msr {} {} {} {:#x} {:#x} {}",
                kind.name(),
                phase.name(),
                access.name(),
                r.first,
                r.last,
                rule(r.rule)
            );
        }
    }
    for ((kind, phase), entries) in &ir.cpuid {
        for e in entries {
            let sub = e
                .subleaf
                .map_or_else(|| String::from("*"), |s| format!("{s:#x}"));
            let _ = writeln!(
                out,
                "cpuid {} {} {:#x} {:#x} {sub} {}",
                kind.name(),
                phase.name(),
                e.leaf_first,
                e.leaf_last,
                rule(e.rule)
            );
        }
    }
    for ((kind, phase), calls) in &ir.pv {
        for (call, id) in calls {
            let _ = writeln!(
                out,
                "pv {} {} {} {}",
                kind.name(),
                phase.name(),
                call.name(),
                rule(*id)
            );
        }
    }
    // The hypervisor's supported CPUID: what a protected VM's base is.
    for e in &ir.supported {
        let s = e.support;
        let sub = s
            .subleaf
            .map_or_else(|| String::from("*"), |s| format!("{s:#x}"));
        let regs: Vec<String> = s
            .regs
            .iter()
            .map(|r| format!("{:#x}/{:#x}", r.pass, r.set))
            .collect();
        let _ = writeln!(
            out,
            "cpuid-support {:#x} {:#x} {sub} [{}] reason={:?}",
            s.leaf_first,
            s.leaf_last,
            regs.join(" "),
            e.reason
        );
    }
    let mut invariants: Vec<String> = ir.invariants.iter().map(canonical_invariant).collect();
    invariants.sort();
    invariants.dedup();
    for line in invariants {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One invariant as one line: what it constrains and why, not where it
/// was written (the file, its line and its formatting do not count).
pub fn canonical_invariant(inv: &Invariant) -> String {
    let names = |items: &mut dyn Iterator<Item = &'static str>| {
        let mut v: Vec<&str> = items.collect();
        v.sort_unstable();
        v.dedup();
        v.join(",")
    };
    let check = match &inv.check {
        InvariantCheck::ForbidMsr { access, ranges } => format!(
            "forbid-msr {} {}",
            access.name(),
            ranges
                .iter()
                .map(|(a, b)| format!("{a:#x}-{b:#x}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        InvariantCheck::ForbidPv { calls } => {
            format!("forbid-pv {}", names(&mut calls.iter().map(|c| c.name())))
        }
        InvariantCheck::ForbidCpuidControl { features } => {
            let mut bits: Vec<String> = features
                .iter()
                .map(|f| {
                    format!(
                        "{}@{:#x}.{:#x}.{}:{:#x}",
                        f.name,
                        f.leaf,
                        f.subleaf,
                        f.reg.name(),
                        f.mask
                    )
                })
                .collect();
            bits.sort();
            format!("forbid-cpuid-control {}", bits.join(","))
        }
        InvariantCheck::RequirePvAllowed { calls } => {
            format!(
                "require-pv-allowed {}",
                names(&mut calls.iter().map(|c| c.name()))
            )
        }
    };
    format!(
        "invariant {:?} vm={} phase={} {check} reason={:?}",
        inv.name,
        names(&mut inv.kinds.iter().map(|k| k.name())),
        names(&mut inv.phases.iter().map(|p| p.name())),
        inv.reason
    )
}

fn canonical_rule(r: &IrRule) -> String {
    let detail = match r.detail {
        RuleDetail::Msr(c) => format!(
            "write-mask={:#x} force-on={:#x} force-off={:#x} read-mask={:#x}",
            c.write_mask, c.force_on, c.force_off, c.read_mask
        ),
        RuleDetail::Cpuid(regs) => regs
            .iter()
            .map(|c| {
                format!(
                    "{:#x}/{:#x}/{:#x}/{:#x}",
                    c.host, c.clear_only, c.force_on, c.force_off
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        RuleDetail::Pv(c) => format!(
            "read-mask={:#x} min-vector={} allow-soft={}",
            c.read_mask, c.min_vector, c.allow_soft
        ),
    };
    let verdict: Verdict = r.verdict;
    format!(
        "{} [{detail}] name={:?} reason={:?}",
        verdict.name(),
        r.name,
        r.reason
    )
}

/// SHA-256 of the canonical text.
pub fn digest(ir: &Ir) -> [u8; 32] {
    Sha256::digest(canonical_text(ir).as_bytes()).into()
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
