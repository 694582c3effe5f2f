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

use std::path::{Path, PathBuf};

use pvgate_codegen::diagnostic::line_col;
use pvgate_codegen::number::{self, NumberError};
use pvgate_codegen::{Compiled, Interpreter, Registry};
use pvgate_gate::{
    Access, BitMode, Phase, Register, Verdict, VmKind, check_msr_write, decide_cpuid, decide_msr,
    decide_pv,
};
use serde::Deserialize;
use serde_json::json;
use toml::Spanned;

use crate::Format;
use crate::error::{CliError, Outcome};
use crate::load;

/// Run conformance vectors against a policy.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  cargo pvgate conformance --policy policy/default.toml tests/conformance/pkvm-ia.toml\n\n\
                  Exit codes: 0 every case passed; 1 a case failed; 2 a policy or vector file that does not load."
)]
pub struct Args {
    /// The policy the vectors are run against.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Vector files (format `pvgate-conformance/1`).
    #[arg(value_name = "VECTORS", required = true)]
    pub vectors: Vec<PathBuf>,
    /// Also list the cases that passed.
    #[arg(long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    format: Spanned<String>,
    title: String,
    #[serde(default)]
    case: Vec<Spanned<Case>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    vm: String,
    phase: String,
    #[serde(default)]
    pv: Option<String>,
    #[serde(default)]
    msr: Option<toml::Value>,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default)]
    effective: Option<toml::Value>,
    #[serde(default)]
    cpuid: Option<String>,
    #[serde(default)]
    reg: Option<String>,
    #[serde(default)]
    bit: Option<toml::Value>,
    expect: String,
    /// Free text for the reader of the vector file.
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
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
    let compiled = load::policy(&args.policy)?;
    let interp = Interpreter::new(compiled.ir.clone());
    let registry = Registry::builtin();
    let mut files = Vec::new();
    for path in &args.vectors {
        let cases = load_vectors(path)?;
        let mut checked = Vec::new();
        for (line, case) in cases.1 {
            checked.push(check_case(&compiled, &interp, registry, path, line, &case)?);
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

/// Reads a vector file: its title and each case with its line.
fn load_vectors(path: &Path) -> Result<(String, Vec<(usize, Case)>), CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read vectors `{shown}`: {e}")))?;
    let file: VectorFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
        let message = e.message().lines().next().unwrap_or("invalid vectors");
        let hint = number::toml_error_hint(message)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        CliError::arg(format!("{shown}:{line}:{col}: {message}{hint}"))
    })?;
    if file.format.get_ref() != "pvgate-conformance/1" {
        let (line, col) = line_col(&text, file.format.span().start);
        return Err(CliError::arg(format!(
            "{shown}:{line}:{col}: unknown vector format `{}`; expected `pvgate-conformance/1`",
            file.format.get_ref()
        )));
    }
    let cases = file
        .case
        .into_iter()
        .map(|c| (line_col(&text, c.span().start).0, c.into_inner()))
        .collect();
    Ok((file.title, cases))
}

fn bad_case(path: &Path, line: usize, message: String) -> CliError {
    CliError::arg(format!("{}:{line}: {message}", path.display()))
}

fn parse_name<T>(
    path: &Path,
    line: usize,
    what: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, CliError> {
    parse(text).ok_or_else(|| bad_case(path, line, format!("unknown {what} `{text}`")))
}

/// A number of a vector file, in the one numeric grammar
/// (`pvgate_codegen::number`): a TOML integer or a `0x` string.
fn number_of(
    path: &Path,
    line: usize,
    what: &str,
    v: &toml::Value,
    bits: u32,
) -> Result<u64, CliError> {
    number::from_toml(v, bits).map_err(|e| {
        let help = match e {
            NumberError::Negative(_) | NumberError::TooLarge(_) | NumberError::TooManyDigits => {
                format!("at most {:#x}", number::max_of(bits))
            }
            NumberError::BadString | NumberError::WrongType(_) => number::grammar_help(bits),
        };
        bad_case(path, line, format!("bad {what} `{v}`: {help}"))
    })
}

fn check_case(
    c: &Compiled,
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
        id.and_then(|id| c.ir.rule(id))
            .map(|r| format!("`{}` ({}:{})", r.name, c.path, r.line))
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
            let d = decide_msr(interp, kind, phase, access, index);
            let mut got = d.verdict.name().to_string();
            if let (Some(value), Some(rule), Verdict::Allow) = (value, d.rule, d.verdict) {
                match check_msr_write(rule.msr_constraint(), value) {
                    Err(_) => got = String::from("refused"),
                    Ok(effective) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_cases_give_their_lines() {
        let dir = std::env::temp_dir().join(format!("pvgate-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.toml");
        std::fs::write(
            &path,
            "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n\n[[case]]\nvm = \"normal\"\nphase = \"setup\"\npv = \"vcpu_run\"\nexpect = \"allow\"\n",
        )
        .unwrap();
        let (title, cases) = load_vectors(&path).unwrap();
        assert_eq!(title, "t");
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].0, 4);
    }
}
