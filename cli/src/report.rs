//! `pvgate report POLICY`: a markdown review document, readable on GitHub
//! as is: digest, the PV call matrix, MSR rules with their masks, CPUID
//! control, the supported CPUID (`supported`), lint findings and reasons.

use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::diagnostic::line_col;
use pvgate_codegen::{Compiled, Interpreter, Registry, Resources, RuleClass, digest};
use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, Register, RuleDetail, Verdict, VmKind, decide_pv,
};
use serde_json::json;

use crate::check::{baseline_json, baseline_line, invariants_json};
use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::{load, supported};
use pvgate_review::describe;
use pvgate_review::lint::{self, Severity};

/// Render a markdown review report of a policy.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cargo pvgate report policy/default.toml > review.md")]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,
    /// Output format (`human` is markdown).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `report`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let c = load::policy(&args.policy)?;
    let registry = Registry::builtin();
    match args.format {
        Format::Human => print!("{}", markdown(&c, registry)),
        Format::Json => {
            let findings = lint::findings(&c, registry);
            let v = json!({
                "path": c.path,
                "name": c.ir.name,
                "description": c.ir.description,
                "digest": digest::hex(&digest::digest(&c.ir)),
                "baseline": baseline_json(&c.ir),
                "invariants": invariants_json(&c.ir),
                "cpuid_violations": c.ir.violation_mode.name(),
                "pv": pv_matrix(&c).into_iter().map(|(call, cells)| json!({"call": call.name(), "decisions": cells.iter().map(|(k, p, v)| json!({"vm": k.name(), "phase": p.name(), "verdict": v.name()})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "rules": c.ir.rules.iter().map(|r| json!({"name": r.name, "class": r.class.name(), "verdict": r.verdict.name(), "line": r.line, "reason": r.reason})).collect::<Vec<_>>(),
                "findings": findings.iter().map(|f| json!({"lint": f.lint.name(), "severity": f.severity.name(), "message": f.message, "line": line_col(&c.text, f.span.start).0})).collect::<Vec<_>>(),
                "supported_cpuid": supported::json(&c),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Ok(Outcome::Clean)
}

fn scopes() -> Vec<(VmKind, Phase)> {
    VmKind::ALL
        .into_iter()
        .flat_map(|k| Phase::ALL.into_iter().map(move |p| (k, p)))
        .collect()
}

type Cells = Vec<(VmKind, Phase, Verdict)>;

fn pv_matrix(c: &Compiled) -> Vec<(PvCall, Cells)> {
    let interp = Interpreter::new(c.ir.clone());
    PvCall::ALL
        .into_iter()
        .map(|call| {
            let cells = scopes()
                .into_iter()
                .map(|(k, p)| (k, p, decide_pv(&interp, k, p, call).verdict))
                .collect();
            (call, cells)
        })
        .collect()
}

fn cell(v: Verdict, explicit: bool) -> &'static str {
    match (v, explicit) {
        (Verdict::Allow, _) => "allow",
        (Verdict::Ignore, _) => "**ignore**",
        (Verdict::Deny, true) => "deny",
        (Verdict::Deny, false) => "·",
    }
}

/// Escapes text for a markdown table cell.
fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn mask(m: u64, none: u64) -> String {
    if m == none {
        String::from("—")
    } else {
        format!("`{m:#x}`")
    }
}

/// The whole report.
pub fn markdown(c: &Compiled, registry: &Registry) -> String {
    let ir = &c.ir;
    let mut o = String::new();
    let hex = digest::hex(&digest::digest(ir));
    let _ = writeln!(o, "# pvgate policy review: `{}`\n", ir.name);
    let _ = writeln!(o, "{}\n", ir.description);
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| file | `{}` |", c.path);
    let _ = writeln!(o, "| digest (SHA-256 of the canonical IR) | `{hex}` |");
    let _ = writeln!(o, "| rules | {} |", ir.rules.len());
    let _ = writeln!(o, "| baseline proven | `{}` |", baseline_line(ir));
    let _ = writeln!(
        o,
        "| invariants proven | {} ({}) |",
        ir.invariants.len(),
        ir.invariants
            .iter()
            .map(|i| format!("`{}`", i.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(o, "| CPUID violations | `{}` |", ir.violation_mode.name());
    let _ = writeln!(
        o,
        "\nEverything not allowed below is denied (default deny). Check the digest with `cargo pvgate digest {}`.\n",
        c.path
    );

    // PV calls.
    let _ = writeln!(o, "## PV calls\n");
    let _ = writeln!(
        o,
        "`allow` = allowed, `deny` = denied by a rule, `·` = denied by default (no rule), **ignore** = reported as success, nothing done.\n"
    );
    let mut head = String::from("| call |");
    let mut sep = String::from("|---|");
    for (k, p) in scopes() {
        let short = match k {
            VmKind::Protected => "pVM",
            VmKind::Normal => "npVM",
        };
        let _ = write!(head, " {short} {} |", p.name());
        sep.push_str(":---:|");
    }
    let _ = writeln!(o, "{head}\n{sep}");
    let interp = Interpreter::new(ir.clone());
    for (call, cells) in pv_matrix(c) {
        let mut row = format!("| `{}` |", call.name());
        for (k, p, v) in cells {
            let explicit = pvgate_gate::Policy::pv_rule(&interp, k, p, call).is_some();
            let _ = write!(row, " {} |", cell(v, explicit));
        }
        let _ = writeln!(o, "{row}");
    }
    let constrained: Vec<_> = ir
        .rules
        .iter()
        .filter(|r| matches!(r.detail, RuleDetail::Pv(pc) if pc != pvgate_gate::PvConstraint::NONE))
        .collect();
    if !constrained.is_empty() {
        let _ = writeln!(o, "\nValue checks on allowed calls:\n");
        for r in constrained {
            let RuleDetail::Pv(pc) = r.detail else {
                continue;
            };
            let Resources::Pv { calls } = &r.resources else {
                continue;
            };
            let names: Vec<String> = calls.iter().map(|c| format!("`{}`", c.name())).collect();
            let mut checks = Vec::new();
            if pc.min_vector != 0 {
                checks.push(format!("vectors below {} refused", pc.min_vector));
            }
            if !pc.allow_soft {
                checks.push(String::from("software interrupts refused"));
            }
            if pc.read_mask != u64::MAX {
                checks.push(format!("host sees only bits `{:#x}`", pc.read_mask));
            }
            let _ = writeln!(
                o,
                "* {} ({} line {}): {}",
                describe::join_and(&names),
                r.name,
                r.line,
                checks.join("; ")
            );
        }
    }

    // MSRs.
    let _ = writeln!(o, "\n## MSR rules\n");
    let _ = writeln!(
        o,
        "| line | rule | MSRs | access | VMs | phases | verdict | write-mask | force-on | force-off | read-mask |"
    );
    let _ = writeln!(o, "|---:|---|---|---|---|---|---|---|---|---|---|");
    for r in ir.rules.iter().filter(|r| r.class == RuleClass::Msr) {
        let Resources::Msr { ranges, accesses } = &r.resources else {
            continue;
        };
        let c_ = if let RuleDetail::Msr(x) = r.detail {
            x
        } else {
            MsrConstraint::NONE
        };
        let what: Vec<String> = ranges
            .iter()
            .map(|&(f, l)| describe::msr_range(registry, f, l))
            .collect();
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.line,
            r.name,
            md(&what.join(", ")),
            listed(accesses, Access::name),
            listed(&r.kinds, VmKind::name),
            listed(&r.phases, Phase::name),
            cell(r.verdict, true),
            mask(c_.write_mask, u64::MAX),
            mask(c_.force_on, 0),
            mask(c_.force_off, 0),
            mask(c_.read_mask, u64::MAX),
        );
    }

    // CPUID.
    let _ = writeln!(o, "\n## CPUID control\n");
    let _ = writeln!(
        o,
        "Bits not listed are `fixed`: the hypervisor's base value is kept. Features marked (security) are ones a protected VM relies on.\n"
    );
    let _ = writeln!(
        o,
        "| line | rule | leaf | register | VMs | phases | verdict | control | host-controlled features |"
    );
    let _ = writeln!(o, "|---:|---|---|---|---|---|---|---|---|");
    for r in ir.rules.iter().filter(|r| r.class == RuleClass::Cpuid) {
        let Resources::Cpuid { leaves, subleaf } = &r.resources else {
            continue;
        };
        let RuleDetail::Cpuid(regs) = r.detail else {
            continue;
        };
        let mut any = false;
        for reg in Register::ALL {
            let ctl = regs[reg as usize];
            if ctl == pvgate_gate::RegControl::FIXED {
                continue;
            }
            any = true;
            let feats =
                describe::features(registry, *leaves, *subleaf, reg, ctl.host | ctl.clear_only);
            let shown = if feats.len() > 6 {
                format!("{} and {} more", feats[..6].join(", "), feats.len() - 6)
            } else {
                feats.join(", ")
            };
            let _ = writeln!(
                o,
                "| {} | `{}` | `{}` | {} | {} | {} | {} | {} | {} |",
                r.line,
                r.name,
                describe::cpuid_leaf(*leaves, *subleaf),
                reg.name().to_ascii_uppercase(),
                listed(&r.kinds, VmKind::name),
                listed(&r.phases, Phase::name),
                cell(r.verdict, true),
                describe::reg_control(&ctl),
                md(&shown),
            );
        }
        if !any {
            let _ = writeln!(
                o,
                "| {} | `{}` | `{}` | all | {} | {} | {} | fixed | |",
                r.line,
                r.name,
                describe::cpuid_leaf(*leaves, *subleaf),
                listed(&r.kinds, VmKind::name),
                listed(&r.phases, Phase::name),
                cell(r.verdict, true),
            );
        }
    }

    o.push_str(&supported::markdown(c, registry));
    // Lint.
    let findings = lint::findings(c, registry);
    let _ = writeln!(o, "\n## Lint findings\n");
    if findings.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            o,
            "{}, {}, {}.\n",
            plural(count(Severity::Error), "error"),
            plural(count(Severity::Warning), "warning"),
            plural(count(Severity::Info), "info")
        );
        let _ = writeln!(
            o,
            "| severity | lint | line | finding |\n|---|---|---:|---|"
        );
        for f in &findings {
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} |",
                f.severity.name(),
                f.lint.name(),
                line_col(&c.text, f.span.start).0,
                md(&f.message)
            );
        }
    }

    // Reasons.
    let _ = writeln!(o, "\n## Rules and their reasons\n");
    for r in &ir.rules {
        let _ = writeln!(
            o,
            "* line {}, `{}` ({} {}, {}): {}",
            r.line,
            r.name,
            r.class.name(),
            r.verdict.name(),
            describe::scope(&r.kinds, &r.phases),
            r.reason
        );
    }
    o
}

/// Names of vocabulary values, comma-separated (`protected, normal`).
fn listed<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> String {
    items
        .iter()
        .map(|&i| name(i))
        .collect::<Vec<_>>()
        .join(", ")
}
