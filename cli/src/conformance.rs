//! `pvgate conformance`: run conformance vectors (host requests with the
//! decision a team requires) against a policy. A team keeps its vectors
//! beside the policy; every policy change must still pass them.
//!
//! Format `pvgate-conformance/1` (TOML): a header (`format`, `title`) and
//! `[[case]]`s, each with `vm`, `phase`, one resource and `expect`:
//!
//! | resource | keys | `expect` |
//! |---|---|---|
//! | PV call | `pv` | `allow`, `deny`, `ignore` |
//! | MSR | `msr`, `access`, optional `value` (writes) and `effective` | `allow`, `deny`, `ignore`, `refused` (the value sets a bit the rule does not allow) |
//! | CPUID bit | `cpuid` (`LEAF[.SUBLEAF]`), `reg`, `bit` (number or feature name) | `fixed`, `host`, `clear-only`, `force-on`, `force-off` |
//!
//! Numbers (`msr`, `value`, `effective`, `bit`) follow the one numeric
//! grammar of the policy language (`pvgate_codegen::number`): a TOML
//! integer or a `0x` string; every number of a case is checked, whatever
//! the decision.

mod mutants;
mod vectors;

use std::path::{Path, PathBuf};

use pvgate_codegen::number;
use pvgate_codegen::{Interpreter, Registry};
use pvgate_gate::{
    Access, BitMode, Phase, Register, Verdict, VmKind, check_msr_write, decide_cpuid, decide_msr,
    decide_pv,
};
use serde_json::json;

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;
use vectors::{Case, bad_case, load_vectors, number_of, parse_name};

/// Run conformance vectors against a policy.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate conformance --policy policy/default.toml tests/conformance/pkvm-ia.toml\n  \
                  cargo pvgate conformance --mutants --min-score 95 --policy policy/default.toml \\\n    \
                  --trace tests/data/traces/crosvm-boot-pvm.toml tests/conformance/pkvm-ia.toml\n\n\
                  Exit codes: 0 every case passed (--mutants: the score reached --min-score); 1 a case failed \
                  (--mutants: the score is below --min-score); 2 a policy, vector, trace or --equivalent file \
                  that does not load, or a suite that fails on the policy itself."
)]
pub struct Args {
    /// The policy the vectors are run against.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Vector files (format `pvgate-conformance/1`).
    #[arg(value_name = "VECTORS", required_unless_present = "mutants")]
    pub vectors: Vec<PathBuf>,
    /// Mutation analysis instead of the plain check: derive every
    /// single-point mutant of the policy, build each, and run the vectors
    /// and `--trace`s against those that build; report the mutants they
    /// kill and the survivors.
    #[arg(long)]
    pub mutants: bool,
    /// With `--mutants`: exit 1 when the score (percent of the built,
    /// non-equivalent mutants the suite kills) is below PCT.
    #[arg(long, value_name = "PCT", requires = "mutants")]
    pub min_score: Option<f64>,
    /// With `--mutants`: a TOML file of mutants judged equivalent
    /// (`[[equivalent]]` with `mutant` = the mutant's description and a
    /// `reason`); they are left out of the score. An entry that names no
    /// surviving mutant is an error (exit 2).
    #[arg(long, value_name = "FILE", requires = "mutants")]
    pub equivalent: Option<PathBuf>,
    /// With `--mutants`: a trace (format `pvgate-trace/1`) the suite also
    /// replays; a mutant under which one of its expectations is not met is
    /// killed. Repeatable.
    #[arg(long = "trace", value_name = "FILE", requires = "mutants")]
    pub traces: Vec<PathBuf>,
    /// With `--mutants`: how many mutants run at once (default: the
    /// available parallelism).
    #[arg(long, value_name = "N", requires = "mutants")]
    pub jobs: Option<usize>,
    /// Also list the cases that passed.
    #[arg(long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The outcome of one case.
struct Checked {
    line: usize,
    request: String,
    expect: String,
    got: String,
    rule: Option<String>,
    passed: bool,
}

/// Runs `conformance`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    if args.mutants {
        return mutants::run(args);
    }
    let compiled = load::policy(&args.policy)?;
    let interp = Interpreter::new(compiled.ir.clone());
    let registry = Registry::builtin();
    let mut files = Vec::new();
    for path in &args.vectors {
        let cases = load_vectors(path)?;
        let mut checked = Vec::new();
        for (line, case) in cases.1 {
            checked.push(check_case(
                &compiled.path,
                &interp,
                registry,
                path,
                line,
                &case,
            )?);
        }
        files.push((path.clone(), cases.0, checked));
    }
    let failed: usize = files
        .iter()
        .map(|(_, _, c)| c.iter().filter(|c| !c.passed).count())
        .sum();
    match args.format {
        Format::Human => print!("{}", human(&files, args.verbose)),
        Format::Json => println!("{}", to_json(&files)),
    }
    Ok(if failed == 0 {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

/// Checks one case against a policy: `interp` (any build of it, a mutant
/// included), named `policy` in the rule locations.
fn check_case(
    policy: &str,
    interp: &Interpreter,
    registry: &Registry,
    path: &Path,
    line: usize,
    case: &Case,
) -> Result<Checked, CliError> {
    let kind = parse_name(path, line, "VM kind", &case.vm, VmKind::from_name)?;
    let phase = parse_name(path, line, "phase", &case.phase, Phase::from_name)?;
    let scope = format!("{} {}", kind.name(), phase.name());
    let located = |id: Option<pvgate_gate::RuleId>| {
        id.and_then(|id| interp.ir().rule(id))
            .map(|r| format!("`{}` ({policy}:{})", r.name, r.line))
    };
    let (request, got, rule) = match (&case.pv, &case.msr, &case.cpuid) {
        (Some(call), None, None) => {
            let call = load::pv_call(call)
                .map_err(|e| bad_case(path, line, e.render().trim().to_string()))?;
            let d = decide_pv(interp, kind, phase, call);
            (
                format!("{scope} `{}`", call.name()),
                d.verdict.name().to_string(),
                located(d.rule.map(|r| r.id)),
            )
        }
        (None, Some(msr), None) => {
            let index = match msr {
                toml::Value::String(name) if !number::looks_numeric(name) => {
                    load::msr(registry, name)
                        .map_err(|e| bad_case(path, line, e.render().trim().to_string()))?
                }
                other => {
                    let n = number_of(path, line, "MSR index", other, 32)?;
                    u32::try_from(n).unwrap_or(u32::MAX)
                }
            };
            let access_text = case.access.as_deref().unwrap_or("");
            let access = parse_name(path, line, "access", access_text, Access::from_name)?;
            let d = decide_msr(interp, kind, phase, access, index);
            let mut got = d.verdict.name().to_string();
            // Every number of the case is checked, whatever the decision.
            let value = case
                .value
                .as_ref()
                .map(|v| number_of(path, line, "value", v, 64))
                .transpose()?;
            let want = case
                .effective
                .as_ref()
                .map(|v| number_of(path, line, "effective value", v, 64))
                .transpose()?;
            if let (Some(value), Some(rule), Verdict::Allow) = (value, d.rule, d.verdict) {
                // A rule without an MSR constraint refuses (fail closed).
                match rule.msr_constraint().map(|c| check_msr_write(c, value)) {
                    None | Some(Err(_)) => got = String::from("refused"),
                    Some(Ok(effective)) => {
                        if let Some(want) = want
                            && want != effective
                        {
                            got =
                                format!("allow with effective value {effective:#x}, not {want:#x}");
                        }
                    }
                }
            }
            (
                format!(
                    "{scope} {} of MSR {}",
                    access.name(),
                    registry.msr_display(index)
                ),
                got,
                located(d.rule.map(|r| r.id)),
            )
        }
        (None, None, Some(selector)) => {
            let (leaf, subleaf) = load::cpuid_selector(selector)
                .map_err(|e| bad_case(path, line, e.render().trim().to_string()))?;
            let reg_text = case.reg.as_deref().unwrap_or("");
            let reg = parse_name(path, line, "register", reg_text, Register::from_name)?;
            let (bit, shown) = match &case.bit {
                Some(toml::Value::String(name)) if !number::looks_numeric(name) => {
                    let f = registry.feature(name).ok_or_else(|| {
                        bad_case(path, line, format!("unknown CPUID feature `{name}`"))
                    })?;
                    (f.mask().trailing_zeros(), name.clone())
                }
                Some(v) => {
                    let b = number_of(path, line, "bit", v, 8)?;
                    (u32::try_from(b).unwrap_or(u32::MAX), format!("bit {b}"))
                }
                None => {
                    return Err(bad_case(
                        path,
                        line,
                        String::from("a CPUID case needs `bit`"),
                    ));
                }
            };
            let d = decide_cpuid(interp, kind, phase, leaf, subleaf);
            let mode = match (d.verdict, d.rule) {
                (Verdict::Allow, Some(r)) => r.cpuid_controls()[reg as usize].mode_of(bit),
                _ => BitMode::Fixed,
            };
            (
                format!(
                    "{scope} CPUID.(EAX={leaf:#x},ECX={subleaf}):{} {shown}",
                    reg.name().to_ascii_uppercase()
                ),
                mode.name().to_string(),
                located(d.rule.map(|r| r.id)),
            )
        }
        _ => {
            return Err(bad_case(
                path,
                line,
                String::from("a case names exactly one of `pv`, `msr`, `cpuid`"),
            ));
        }
    };
    Ok(Checked {
        line,
        passed: got == case.expect,
        request,
        expect: case.expect.clone(),
        got,
        rule,
    })
}

fn human(files: &[(PathBuf, String, Vec<Checked>)], verbose: bool) -> String {
    let mut out = String::new();
    for (path, title, cases) in files {
        let failed = cases.iter().filter(|c| !c.passed).count();
        for c in cases.iter().filter(|c| verbose || !c.passed) {
            let rule = c.rule.as_deref().map_or_else(
                || String::from("no rule: default deny"),
                |r| format!("rule {r}"),
            );
            if c.passed {
                out.push_str(&format!(
                    "ok   {}:{}: {}: {} ({rule})\n",
                    path.display(),
                    c.line,
                    c.request,
                    c.got
                ));
            } else {
                out.push_str(&format!(
                    "FAIL {}:{}: {}: expected `{}`, got `{}` ({rule})\n",
                    path.display(),
                    c.line,
                    c.request,
                    c.expect,
                    c.got
                ));
            }
        }
        out.push_str(&format!(
            "{}: {title}: {} cases, {} passed, {failed} failed\n",
            path.display(),
            cases.len(),
            cases.len() - failed
        ));
    }
    out
}

fn to_json(files: &[(PathBuf, String, Vec<Checked>)]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, title, cases)| {
            json!({
                "file": path.display().to_string(),
                "title": title,
                "passed": cases.iter().filter(|c| c.passed).count(),
                "failed": cases.iter().filter(|c| !c.passed).count(),
                "cases": cases.iter().map(|c| json!({
                    "line": c.line,
                    "request": c.request,
                    "expect": c.expect,
                    "got": c.got,
                    "rule": c.rule,
                    "passed": c.passed,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "files": files })
}
