//! `pvgate replay`: runs `pvgate-trace/1` traces (the PV calls a host makes
//! for one VM, with expectations) through the real hypervisor core built on
//! a policy (the interpreter over the compiled IR) and reports each call's
//! effect, the deciding rule (file:line:col), and whether its expectation
//! held. Exit 1 when one did not. Loading a trace and locating its errors
//! is in `trace_file`.

mod trace_file;

pub(crate) use trace_file::trace_error;

use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::{Compiled, Interpreter, IrRule, Registry};
use pvgate_gate::{Register, RuleId};
use pvgate_review::{bits, describe};
use pvgate_trace::{CpuidChange, Replay, Step, Trace};
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;
use trace_file::load_trace;

/// Replay traces of host PV calls through the hypervisor core on a policy.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "pvgate replay [OPTIONS] <POLICY> <TRACE>...",
    long_about = "Replay traces of host PV calls (format pvgate-trace/1, see \
                  tests/data/traces/README.md) through the real hypervisor core built on \
                  POLICY. For each call: its effect (allow, deny, ignore, filter, invalid), the \
                  deciding rule and its file:line:col, the resource decided, and whether the \
                  trace's expectation held; then one summary line per trace.\n\n\
                  Exit codes: 0 every expectation held; 1 some expectation did not; 2 a policy \
                  or trace that does not load, bad arguments.",
    after_help = "Examples:\n  cargo pvgate replay policy/default.toml \\\n    tests/data/traces/crosvm-boot-pvm.toml tests/data/traces/crosvm-boot-npvm.toml\n  cargo pvgate replay policy/strict.toml tests/data/traces/crosvm-boot-pvm.toml  # exit 1\n  cargo pvgate replay policy/examples/review-thread.toml --cpu host --format json \\\n    policy/examples/sipi-npvm.trace.toml"
)]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "POLICY", required_unless_present = "deprecated_policy")]
    pub policy_arg: Option<PathBuf>,
    /// Deprecated spelling of POLICY (one release).
    #[arg(long = "policy", value_name = "POLICY", hide = true)]
    pub deprecated_policy: Option<PathBuf>,
    /// The policy, from either spelling (filled by `resolve`).
    #[arg(skip)]
    pub policy: PathBuf,
    /// Trace files (pvgate-trace/1).
    #[arg(value_name = "TRACE", required_unless_present = "deprecated_policy")]
    pub traces: Vec<PathBuf>,
    /// The CPU model behind the hypervisor's base CPUID (default: the one
    /// each trace names, else `reference`).
    #[arg(long, value_enum)]
    pub cpu: Option<CpuArg>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// A CPU model on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuArg {
    /// The recorded Xeon Gold 6252 (Cascade Lake).
    Reference,
    /// The CPU this runs on.
    Host,
}

impl CpuArg {
    fn name(self) -> &'static str {
        match self {
            CpuArg::Reference => "reference",
            CpuArg::Host => "host",
        }
    }
}

impl Args {
    /// Settles the policy from either spelling (`policy_arg`).
    pub fn resolve(&mut self) -> Result<(), CliError> {
        self.policy = crate::policy_arg::resolve(
            "replay",
            "POLICY TRACE...",
            self.policy_arg.take(),
            self.deprecated_policy.take(),
            Some(&mut self.traces),
        )?;
        if self.traces.is_empty() {
            return Err(CliError::arg(
                "no trace given: `cargo pvgate replay POLICY TRACE...`",
            ));
        }
        Ok(())
    }
}

/// Runs `replay`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let c = load::policy(&args.policy)?;
    // Every input must load before anything is replayed.
    let mut traces = args
        .traces
        .iter()
        .map(|p| load_trace(p))
        .collect::<Result<Vec<Trace>, CliError>>()?;
    if let Some(cpu) = args.cpu {
        for t in &mut traces {
            t.cpu = cpu.name().to_string();
        }
    }
    let interp = Interpreter::new(c.ir.clone());
    let replays = traces
        .iter()
        .map(|t| pvgate_trace::replay(&interp, t).map_err(|e| CliError::arg(e.to_string())))
        .collect::<Result<Vec<Replay>, CliError>>()?;
    match args.format {
        Format::Human => print!("{}", render(&c, &replays)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&c, &replays)).unwrap_or_default()
        ),
    }
    Ok(if replays.iter().all(Replay::all_met) {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

fn rule_of<'a>(c: &'a Compiled, step: &Step) -> Option<&'a IrRule> {
    step.rule.as_ref().and_then(|r| c.ir.rule(RuleId(r.id)))
}

/// Why the call ended this way, in words.
fn decided_by(c: &Compiled, step: &Step) -> String {
    match rule_of(c, step) {
        Some(r) => describe::rule_ref(&c.path, r),
        None if step.effect == "deny" => "default deny: no rule decides it".to_string(),
        None if step.effect == "invalid" => "refused before any policy decision".to_string(),
        None => "no rule".to_string(),
    }
}

/// The expectation, in words: `expected allow: met`.
fn expectation(step: &Step) -> String {
    let what = match step.expect {
        Some(e) => format!("expected {}", e.name()),
        None => "expectations".to_string(),
    };
    match step.met {
        None => "no expectation".to_string(),
        Some(true) => format!("{what}: met"),
        Some(false) => format!("{what}: NOT MET: {}", step.mismatches.join("; ")),
    }
}

fn counts(r: &Replay) -> (usize, usize, usize) {
    let expected = r.steps.iter().filter(|s| s.met.is_some()).count();
    let unmet = r.failures().count();
    (expected, expected - unmet, unmet)
}

/// One line per trace: `PATH: N calls, M of E expectations met`, then the
/// calls whose expectations did not hold.
fn summary(r: &Replay) -> String {
    let (expected, met, unmet) = counts(r);
    let mut s = format!(
        "{}: {} calls, {met} of {expected} expectations met",
        r.trace,
        r.steps.len()
    );
    if unmet > 0 {
        let calls: Vec<String> = r
            .failures()
            .map(|f| format!("#{} {} (line {})", f.index, f.pv, f.line))
            .collect();
        let _ = write!(s, "; {unmet} NOT MET: {}", calls.join(", "));
    }
    s
}

/// One replaced CPUID register: where, which named features, and the two
/// values with a caret under each bit the policy changed.
fn cpuid_change(pad: &str, verb: &str, change: &CpuidChange) -> String {
    let diff = change.proposed ^ change.effective;
    let features: Vec<String> = Register::from_name(change.reg)
        .map(|reg| {
            Registry::builtin()
                .features_of(change.leaf, change.subleaf, reg)
                .filter(|f| f.mask() & diff != 0)
                .map(|f| f.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let named = if features.is_empty() {
        String::new()
    } else {
        format!(" ({})", describe::join_and(&features))
    };
    let mut out = format!(
        "{pad}{verb} CPUID.(EAX={:#x},ECX={}):{}{named}:\n",
        change.leaf,
        change.subleaf,
        change.reg.to_ascii_uppercase()
    );
    out.push_str(&bits::two_values(
        &format!("{pad}  "),
        ("host", u64::from(change.proposed)),
        ("policy", u64::from(change.effective)),
        32,
    ));
    out
}

fn render(c: &Compiled, replays: &[Replay]) -> String {
    let mut out = String::new();
    for (i, r) in replays.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "trace {}: {}", r.trace, r.title);
        let _ = writeln!(
            out,
            "  policy {} (`{}`), {} VM, cpu {}",
            c.path, r.policy, r.kind, r.cpu
        );
        let pv_w = r.steps.iter().map(|s| s.pv.len()).max().unwrap_or(0);
        let res_w = r.steps.iter().map(|s| s.resource.len()).max().unwrap_or(0);
        let idx_w = r.steps.len().to_string().len() + 1;
        for s in &r.steps {
            let _ = writeln!(
                out,
                "  {:<idx_w$}  {:<pv_w$}  vcpu {}  {:<7}  {:<res_w$}  {}",
                format!("#{}", s.index),
                s.pv,
                s.vcpu,
                s.effect,
                s.resource,
                expectation(s),
            );
            let pad = " ".repeat(idx_w + 4);
            let _ = writeln!(out, "{pad}{}", decided_by(c, s));
            if let Some(e) = &s.error {
                match pvgate_trace::errno_name(s.status.wrapping_neg()) {
                    Some(name) => {
                        let _ = writeln!(out, "{pad}error: {name}: {e}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}error: {e}");
                    }
                }
            }
            let verb = if s.effect == "filter" {
                "filtered"
            } else {
                "rejected"
            };
            for change in &s.cpuid_changes {
                out.push_str(&cpuid_change(&pad, verb, change));
            }
            if s.met == Some(false) {
                let _ = writeln!(out, "{pad}call at {}:{}", r.trace, s.line);
            }
        }
        let _ = writeln!(out, "{}", summary(r));
    }
    if replays.len() > 1 {
        let failed = replays.iter().filter(|r| !r.all_met()).count();
        if failed == 0 {
            let _ = writeln!(out, "\n{} traces: every expectation met", replays.len());
        } else {
            let _ = writeln!(
                out,
                "\n{} traces: {failed} with expectations not met",
                replays.len()
            );
        }
    }
    out
}

fn step_json(c: &Compiled, trace: &str, s: &Step) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("location".into(), json!(format!("{trace}:{}", s.line)));
        obj.insert(
            "rule".into(),
            match rule_of(c, s) {
                Some(r) => json!({
                    "id": r.id.0,
                    "name": r.name,
                    "verdict": r.verdict.name(),
                    "path": c.path,
                    "line": r.line,
                    "column": r.column,
                    "location": describe::location(&c.path, r),
                }),
                None => Value::Null,
            },
        );
        obj.insert("decided_by".into(), json!(decided_by(c, s)));
        // CPUID leaves and register values as hex strings, like every
        // other index and value of the JSON outputs.
        obj.insert(
            "cpuid_changes".into(),
            s.cpuid_changes
                .iter()
                .map(|ch| {
                    json!({
                        "leaf": format!("{:#x}", ch.leaf),
                        "subleaf": format!("{:#x}", ch.subleaf),
                        "reg": ch.reg,
                        "proposed": format!("{:#x}", ch.proposed),
                        "effective": format!("{:#x}", ch.effective),
                    })
                })
                .collect(),
        );
    }
    v
}

fn to_json(c: &Compiled, replays: &[Replay]) -> Value {
    let traces: Vec<Value> = replays
        .iter()
        .map(|r| {
            let (expected, met, unmet) = counts(r);
            json!({
                "trace": r.trace,
                "title": r.title,
                "kind": r.kind,
                "cpu": r.cpu,
                "all_met": r.all_met(),
                "summary": {
                    "calls": r.steps.len(),
                    "with_expectations": expected,
                    "met": met,
                    "not_met": unmet,
                },
                "steps": r.steps.iter().map(|s| step_json(c, &r.trace, s)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "policy": {"path": c.path, "name": c.ir.name},
        "all_met": replays.iter().all(Replay::all_met),
        "traces": traces,
    })
}
