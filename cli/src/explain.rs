//! `pvgate explain`: why the policy decides one host request the way it
//! does: the verdict, the deciding rule (file:line, reason), or default
//! deny with the nearest rules in another VM kind, phase or access. One
//! module per kind of request.

mod cpuid;
mod explanation;
mod msr;
mod pv;

use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::{Compiled, IrRule, Registry};
use pvgate_gate::{Access, Phase, Register, VmKind};
use pvgate_review::describe;
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load::{self, AccessArg, KindArg, PhaseArg, RegArg};
use explanation::Explanation;

/// Explain the decision for one host request.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "pvgate explain [OPTIONS] <POLICY> --vm <VM> --phase <PHASE> <--msr <NAME|INDEX>|--pv <CALL>|--cpuid <LEAF[.SUBLEAF]>>",
    group(clap::ArgGroup::new("target").required(true).args(["msr", "pv", "cpuid"])),
    after_help = "Examples:\n  cargo pvgate explain policy/default.toml --vm protected --phase setup \\\n    --msr IA32_MISC_ENABLE --access write --value 0x1809\n  cargo pvgate explain policy/default.toml --vm protected --phase running --pv get_rflags\n  cargo pvgate explain policy/default.toml --vm protected --phase setup \\\n    --cpuid 0x1 --reg ecx --bit X2APIC"
)]
pub struct Args {
    /// The policy file.
    #[arg(
        value_name = "POLICY",
        required_unless_present = "deprecated_policy",
        conflicts_with = "deprecated_policy"
    )]
    pub policy_arg: Option<PathBuf>,
    /// Deprecated spelling of POLICY (one release).
    #[arg(long = "policy", value_name = "POLICY", hide = true)]
    pub deprecated_policy: Option<PathBuf>,
    /// The policy, from either spelling (filled by `resolve`).
    #[arg(skip)]
    pub policy: PathBuf,
    /// The VM kind.
    #[arg(long, value_enum)]
    pub vm: KindArg,
    /// The vCPU's lifecycle phase.
    #[arg(long, value_enum)]
    pub phase: PhaseArg,
    /// An MSR: registry name (SDM or Linux) or number.
    #[arg(long, value_name = "NAME|INDEX", requires = "access")]
    pub msr: Option<String>,
    /// The MSR access.
    #[arg(long, value_enum, requires = "msr")]
    pub access: Option<AccessArg>,
    /// For an MSR write: the value the host writes.
    #[arg(long, value_name = "V", requires = "msr")]
    pub value: Option<String>,
    /// A PV call name.
    #[arg(long, value_name = "CALL")]
    pub pv: Option<String>,
    /// A CPUID leaf and optional subleaf (default 0).
    #[arg(long, value_name = "LEAF[.SUBLEAF]")]
    pub cpuid: Option<String>,
    /// With --cpuid: one register.
    #[arg(long, value_enum, requires = "cpuid")]
    pub reg: Option<RegArg>,
    /// With --cpuid: one bit, by number or registry feature name.
    #[arg(long, value_name = "BIT|NAME", requires = "cpuid")]
    pub bit: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

impl Args {
    /// Settles the policy from either spelling (`policy_arg`).
    pub fn resolve(&mut self) -> Result<(), CliError> {
        self.policy = crate::policy_arg::resolve(
            "explain",
            "POLICY --vm KIND --phase PHASE (--msr|--pv|--cpuid) ...",
            self.policy_arg.take(),
            self.deprecated_policy.take(),
            None,
        )?;
        Ok(())
    }
}

/// Runs `explain`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let c = load::policy(&args.policy)?;
    let registry = Registry::builtin();
    let kind = VmKind::from(args.vm);
    let phase = Phase::from(args.phase);
    let e = if let Some(m) = &args.msr {
        let access = args
            .access
            .map(Access::from)
            .ok_or_else(|| CliError::arg("`--msr` needs `--access read|write`"))?;
        let index = load::msr(registry, m)?;
        let value = match &args.value {
            None => None,
            Some(_) if access == Access::Read => {
                return Err(CliError::arg("`--value` applies to `--access write` only"));
            }
            Some(v) => Some(load::number(v).ok_or_else(|| {
                CliError::arg(format!("bad value `{v}`; expected e.g. `0x1809`"))
            })?),
        };
        msr::msr(&c, registry, kind, phase, access, index, value)
    } else if let Some(p) = &args.pv {
        pv::pv(&c, kind, phase, load::pv_call(p)?)
    } else if let Some(sel) = &args.cpuid {
        let (leaf, subleaf) = load::cpuid_selector(sel)?;
        let (reg, bit) = cpuid::cpuid_bit(
            registry,
            leaf,
            subleaf,
            args.reg.map(Register::from),
            args.bit.as_deref(),
        )?;
        cpuid::cpuid(&c, registry, kind, phase, leaf, subleaf, reg, bit)
    } else {
        return Err(CliError::arg(
            "name what to explain: `--msr`, `--pv` or `--cpuid`",
        ));
    };
    match args.format {
        Format::Human => print!("{}", render(&c, &e)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&c, kind, phase, &e)).unwrap_or_default()
        ),
    }
    Ok(Outcome::Clean)
}

fn render(c: &Compiled, e: &Explanation) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", e.query);
    let _ = writeln!(
        o,
        "verdict: {} ({})",
        e.verdict.name(),
        describe::verdict_meaning(e.verdict)
    );
    match &e.rule {
        Some(r) => {
            let _ = writeln!(
                o,
                "rule:    `{}` ({}) at {}",
                r.name,
                r.verdict.name(),
                describe::location(&c.path, r)
            );
            let _ = writeln!(o, "reason:  {}", r.reason);
        }
        None => {
            let _ = writeln!(o, "rule:    default deny: no rule matches");
            if e.nearest.is_empty() {
                let _ = writeln!(
                    o,
                    "nearest: no rule mentions this in any VM kind, phase or access"
                );
            } else {
                let _ = writeln!(
                    o,
                    "nearest rules (they match in another VM kind, phase or access):"
                );
                for (r, where_) in &e.nearest {
                    let _ = writeln!(
                        o,
                        "  `{}` ({}) at {}: {where_}",
                        r.name,
                        r.verdict.name(),
                        describe::location(&c.path, r)
                    );
                }
            }
        }
    }
    if let Some(note) = &e.note {
        let _ = writeln!(o, "note:    {note}");
    }
    for d in &e.details {
        let _ = writeln!(o, "{d}");
    }
    o
}

/// The explanation as one JSON document.
fn to_json(c: &Compiled, kind: VmKind, phase: Phase, e: &Explanation) -> Value {
    let rule_json = |r: &IrRule| {
        json!({
            "name": r.name,
            "verdict": r.verdict.name(),
            "path": c.path,
            "line": r.line,
            "column": r.column,
            "reason": r.reason,
        })
    };
    json!({
        "policy": c.path,
        "query": e.query,
        "vm": kind.name(),
        "phase": phase.name(),
        "verdict": e.verdict.name(),
        "default_deny": e.rule.is_none(),
        "rule": e.rule.as_ref().map(rule_json),
        "note": e.note,
        "nearest": e.nearest.iter().map(|(r, w)| { let mut v = rule_json(r); v["matches"] = json!(w); v }).collect::<Vec<_>>(),
        "details": e.details,
        "request": e.extra,
    })
}
