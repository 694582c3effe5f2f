//! `pvgate explain`: why the policy decides one host request the way it
//! does: the verdict, the deciding rule (file:line, reason), or default
//! deny with the nearest rules in another VM kind, phase or access.

use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::{Compiled, Interpreter, IrRule, Registry};
use pvgate_gate::{
    Access, BitMode, Phase, PvCall, RegControl, Register, Verdict, VmKind, check_msr_write,
    decide_cpuid, decide_msr, decide_pv,
};
use serde_json::{Value, json};

use crate::Format;
use crate::error::{CliError, Outcome};
use crate::load::{self, AccessArg, KindArg, PhaseArg, RegArg};
use pvgate_review::bits::{bit_numbers, two_values};
use pvgate_review::describe::{self, join_and};

/// Explain the decision for one host request.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["msr", "pv", "cpuid"])),
    after_help = "Examples:\n  cargo pvgate explain --policy policy/default.toml --vm protected --phase setup --msr IA32_MISC_ENABLE --access write --value 0x1809\n  cargo pvgate explain --policy policy/default.toml --vm protected --phase running --pv get_rflags\n  cargo pvgate explain --policy policy/default.toml --vm protected --phase setup --cpuid 0x1 --reg ecx --bit X2APIC"
)]
pub struct Args {
    /// The policy file.
    #[arg(long, value_name = "POLICY")]
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

/// What `explain` found, before rendering.
struct Explanation {
    query: String,
    verdict: Verdict,
    /// Why the verdict differs from the rule's, if it does.
    note: Option<String>,
    rule: Option<IrRule>,
    nearest: Vec<(IrRule, String)>,
    details: Vec<String>,
    extra: Value,
}

impl Explanation {
    /// A decision with no note, nearest rules or details yet.
    fn new(query: String, verdict: Verdict, rule: Option<IrRule>, extra: Value) -> Explanation {
        Explanation {
            query,
            verdict,
            note: None,
            rule,
            nearest: Vec::new(),
            details: Vec::new(),
            extra,
        }
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
        msr(&c, registry, kind, phase, access, index, value)
    } else if let Some(p) = &args.pv {
        pv(&c, kind, phase, load::pv_call(p)?)
    } else if let Some(sel) = &args.cpuid {
        let (leaf, subleaf) = load::cpuid_selector(sel)?;
        let (reg, bit) = cpuid_bit(
            registry,
            leaf,
            subleaf,
            args.reg.map(Register::from),
            args.bit.as_deref(),
        )?;
        cpuid(&c, registry, kind, phase, leaf, subleaf, reg, bit)
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

fn rule_of(c: &Compiled, id: Option<pvgate_gate::RuleId>) -> Option<IrRule> {
    id.and_then(|id| c.ir.rule(id)).cloned()
}

fn scope_excluding(rule: &IrRule, kind: VmKind, phase: Phase) -> String {
    let pairs: Vec<(VmKind, Phase)> = rule
        .kinds
        .iter()
        .flat_map(|&k| rule.phases.iter().map(move |&p| (k, p)))
        .filter(|&(k, p)| (k, p) != (kind, phase))
        .collect();
    if pairs.is_empty() {
        describe::scope(&rule.kinds, &rule.phases)
    } else {
        describe::scopes(&pairs)
    }
}

#[allow(clippy::too_many_arguments)]
fn msr(
    c: &Compiled,
    registry: &Registry,
    kind: VmKind,
    phase: Phase,
    access: Access,
    index: u32,
    value: Option<u64>,
) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_msr(&interp, kind, phase, access, index);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let what = registry.msr_display(index);
    let query = match value {
        Some(v) => format!(
            "host writes {v:#x} to {what} of a {} VM in `{}`",
            kind.name(),
            phase.name()
        ),
        None => format!(
            "host {}s {what} of a {} VM in `{}`",
            access.name(),
            kind.name(),
            phase.name()
        ),
    };
    let mut e = Explanation::new(
        query,
        d.verdict,
        rule,
        json!({"msr": index, "access": access.name()}),
    );
    let Some(r) = d.rule else {
        for rule in c.ir.rules.iter() {
            let accs: Vec<Access> = Access::ALL
                .into_iter()
                .filter(|&a| rule.covers_msr(a, index))
                .collect();
            if accs.is_empty() {
                continue;
            }
            let same_scope = rule.applies(kind, phase);
            let where_ = if same_scope {
                format!(
                    "{} only",
                    join_and(
                        &accs
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                    )
                )
            } else {
                format!(
                    "{} on {}",
                    join_and(
                        &accs
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                    ),
                    scope_excluding(rule, kind, phase)
                )
            };
            e.nearest.push((rule.clone(), where_));
        }
        return e;
    };
    let con = r.msr_constraint();
    if access == Access::Read && d.verdict == Verdict::Allow && con.read_mask != u64::MAX {
        e.details.push(format!(
            "the host sees only bits {:#x} of the value (read-mask)",
            con.read_mask
        ));
    }
    if let (Some(v), Verdict::Allow) = (value, d.verdict) {
        let bit_name = |b: u32| {
            registry
                .msr_by_index(index)
                .and_then(|m| m.bits.iter().find(|x| u32::from(x.bit) == b))
                .map_or_else(|| format!("bit {b}"), |x| format!("bit {b} ({})", x.name))
        };
        match check_msr_write(con, v) {
            Err(err) => {
                e.verdict = Verdict::Deny;
                e.note = Some(format!(
                    "the rule allows the write, but the value sets bits outside its write-mask {:#x}",
                    con.write_mask
                ));
                let mut s =
                    String::from("refused bits (requested value vs. the bits the host may set):\n");
                s.push_str(&two_values(
                    "  ",
                    ("requested", v),
                    ("permitted", v & con.write_mask),
                    64,
                ));
                let names: Vec<String> =
                    bit_numbers(err.refused).into_iter().map(bit_name).collect();
                let _ = write!(s, "  refused: {}", join_and(&names));
                e.details.push(s);
                e.extra["value"] = json!({"requested": format!("{v:#x}"), "write_mask": format!("{:#x}", con.write_mask), "refused": format!("{:#x}", err.refused), "stored": Value::Null});
            }
            Ok(stored) => {
                if stored != v {
                    let mut s = String::from(
                        "forced bits (requested value vs. what the MSR holds after the write):\n",
                    );
                    s.push_str(&two_values("  ", ("requested", v), ("stored", stored), 64));
                    let on: Vec<String> =
                        bit_numbers(stored & !v).into_iter().map(bit_name).collect();
                    let off: Vec<String> =
                        bit_numbers(v & !stored).into_iter().map(bit_name).collect();
                    if !on.is_empty() {
                        let _ = write!(s, "  forced on: {}", join_and(&on));
                    }
                    if !off.is_empty() {
                        let _ = write!(
                            s,
                            "{}  forced off: {}",
                            if on.is_empty() { "" } else { "\n" },
                            join_and(&off)
                        );
                    }
                    e.details.push(s);
                } else {
                    e.details
                        .push(format!("the value {v:#x} is stored unchanged"));
                }
                e.extra["value"] = json!({"requested": format!("{v:#x}"), "write_mask": format!("{:#x}", con.write_mask), "refused": "0x0", "stored": format!("{stored:#x}")});
            }
        }
    }
    e
}

fn pv(c: &Compiled, kind: VmKind, phase: Phase, call: PvCall) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_pv(&interp, kind, phase, call);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let query = format!(
        "host calls `{}` on a {} VM in `{}`",
        call.name(),
        kind.name(),
        phase.name()
    );
    let mut e = Explanation::new(query, d.verdict, rule, json!({"pv": call.name()}));
    match d.rule {
        None => {
            for rule in c.ir.rules.iter().filter(|r| r.covers_pv(call)) {
                e.nearest
                    .push((rule.clone(), scope_excluding(rule, kind, phase)));
            }
        }
        Some(r) if d.verdict == Verdict::Allow => {
            let pc = r.pv_constraint();
            if pc.read_mask != u64::MAX {
                e.details.push(format!(
                    "the host sees only bits {:#x} of the returned value (read-mask)",
                    pc.read_mask
                ));
            }
            if pc.min_vector != 0 || !pc.allow_soft {
                e.details.push(format!(
                    "value checks: vectors below {} are refused; software interrupts are {}",
                    pc.min_vector,
                    if pc.allow_soft { "allowed" } else { "refused" }
                ));
            }
        }
        Some(_) => {}
    }
    e
}

/// Resolves `--reg`/`--bit` to a register and an optional bit number.
fn cpuid_bit(
    registry: &Registry,
    leaf: u32,
    subleaf: u32,
    reg: Option<Register>,
    bit: Option<&str>,
) -> Result<(Option<Register>, Option<u32>), CliError> {
    let Some(bit) = bit else {
        return Ok((reg, None));
    };
    if let Some(n) = load::number(bit) {
        if n > 31 {
            return Err(CliError::arg(format!(
                "bit `{bit}` is out of range: CPUID registers have bits 0..=31"
            )));
        }
        if reg.is_none() {
            return Err(CliError::arg(
                "`--bit` with a bit number needs `--reg eax|ebx|ecx|edx`",
            ));
        }
        return Ok((reg, Some(n as u32)));
    }
    let upper = bit.to_ascii_uppercase();
    let Some(f) = registry.feature(&upper) else {
        let names = registry.features.iter().map(|f| f.name.as_str());
        return Err(CliError::arg_with(
            format!("unknown CPUID feature `{bit}`"),
            pvgate_codegen::diagnostic::suggest(bit, names).map(|s| format!("did you mean `{s}`?")),
        ));
    };
    if f.leaf != leaf || f.subleaf != subleaf || reg.is_some_and(|r| Some(r) != f.register()) {
        return Err(CliError::arg(format!(
            "`{}` is {}, not in the leaf and register asked about",
            f.name,
            f.location()
        )));
    }
    Ok((f.register(), Some(f.mask().trailing_zeros())))
}

fn mode_of(c: &RegControl, bit: u32) -> &'static str {
    match c.mode_of(bit) {
        BitMode::Host => "host: the host's value is taken",
        BitMode::ClearOnly => "clear-only: the host may clear it, never set it",
        BitMode::ForceOn => "force-on: always 1",
        BitMode::ForceOff => "force-off: always 0",
        BitMode::Fixed => "fixed: the hypervisor's base value is kept",
    }
}

#[allow(clippy::too_many_arguments)]
fn cpuid(
    c: &Compiled,
    registry: &Registry,
    kind: VmKind,
    phase: Phase,
    leaf: u32,
    subleaf: u32,
    reg: Option<Register>,
    bit: Option<u32>,
) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_cpuid(&interp, kind, phase, leaf, subleaf);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let loc = describe::cpuid_leaf((leaf, leaf), Some(subleaf));
    let target = match (reg, bit) {
        (Some(r), Some(b)) => format!("{loc}:{}[{b}]", r.name().to_ascii_uppercase()),
        (Some(r), None) => format!("{loc}:{}", r.name().to_ascii_uppercase()),
        _ => loc.clone(),
    };
    let query = format!(
        "host proposes {target} for a {} VM in `{}`",
        kind.name(),
        phase.name()
    );
    let mut e = Explanation::new(
        query,
        d.verdict,
        rule,
        json!({"cpuid": {"leaf": leaf, "subleaf": subleaf}}),
    );
    let controls = d
        .rule
        .map(|r| r.cpuid_controls())
        .unwrap_or([RegControl::FIXED; 4]);
    if d.rule.is_none() {
        for rule in c.ir.rules.iter().filter(|r| r.covers_cpuid(leaf, subleaf)) {
            e.nearest
                .push((rule.clone(), scope_excluding(rule, kind, phase)));
        }
        e.details.push(format!(
            "every bit of {loc} keeps the hypervisor's base value"
        ));
    }
    let regs: Vec<Register> = reg.map_or_else(|| Register::ALL.to_vec(), |r| vec![r]);
    let mut regs_json = serde_json::Map::new();
    for r in regs {
        let ctl = controls[r as usize];
        let name = r.name().to_ascii_uppercase();
        match bit {
            Some(b) => {
                let feats = describe::features(registry, (leaf, leaf), Some(subleaf), r, 1 << b);
                let named = if feats.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", feats.join(", "))
                };
                e.details
                    .push(format!("{name}[{b}]{named} is {}", mode_of(&ctl, b)));
                regs_json.insert(
                    r.name().into(),
                    json!({"bit": b, "mode": mode_of(&ctl, b).split(':').next().unwrap_or("")}),
                );
            }
            None if d.rule.is_some() => {
                e.details
                    .push(format!("{name}: {}", describe::reg_control(&ctl)));
                let host_feats = describe::features(
                    registry,
                    (leaf, leaf),
                    Some(subleaf),
                    r,
                    ctl.host | ctl.clear_only,
                );
                if !host_feats.is_empty() {
                    e.details.push(format!(
                        "  host-controlled features: {}",
                        host_feats.join(", ")
                    ));
                }
                regs_json.insert(r.name().into(), json!({"host": ctl.host, "clear_only": ctl.clear_only, "force_on": ctl.force_on, "force_off": ctl.force_off}));
            }
            None => {}
        }
    }
    if d.rule.is_some() && d.verdict == Verdict::Allow {
        e.details.push(format!(
            "host bits outside its control: {} ({})",
            c.ir.violation_mode.name(),
            match c.ir.violation_mode {
                pvgate_gate::ViolationMode::Filter =>
                    "the hypervisor's value is taken silently and counted",
                pvgate_gate::ViolationMode::Reject =>
                    "the call fails and the corrected table is reported",
            }
        ));
    }
    e.extra["registers"] = Value::Object(regs_json);
    e
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
