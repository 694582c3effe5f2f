//! `pvgate replay`: runs `pvgate-trace/1` traces (the PV calls a host makes
//! for one VM, with expectations) through the real hypervisor core built on
//! a policy (the interpreter over the compiled IR) and reports each call's
//! effect, the deciding rule (file:line:col), and whether its expectation
//! held. Exit 1 when one did not.

use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use pvgate_codegen::diagnostic::suggest;
use pvgate_codegen::{Compiled, Diagnostic, ErrorKind, Interpreter, IrRule, Registry};
use pvgate_gate::{PvCall, Register, RuleId};
use pvgate_trace::{CpuidChange, Replay, Step, Trace, TraceError};
use serde_json::{Value, json};

use crate::Format;
use crate::error::{CliError, Outcome};
use crate::load;
use pvgate_review::bits;
use pvgate_review::describe;

/// Replay traces of host PV calls through the hypervisor core on a policy.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Replay traces of host PV calls (format pvgate-trace/1, see \
                  tests/data/traces/README.md) through the real hypervisor core built on \
                  POLICY. For each call: its effect (allow, deny, ignore, filter, invalid), the \
                  deciding rule and its file:line:col, the resource decided, and whether the \
                  trace's expectation held; then one summary line per trace.\n\n\
                  Exit codes: 0 every expectation held; 1 some expectation did not; 2 a policy \
                  or trace that does not load, bad arguments.",
    after_help = "Examples:\n  cargo pvgate replay --policy policy/default.toml tests/data/traces/crosvm-boot-pvm.toml tests/data/traces/crosvm-boot-npvm.toml\n  cargo pvgate replay --policy policy/strict.toml tests/data/traces/crosvm-boot-pvm.toml\n  cargo pvgate replay --policy policy/examples/review-thread.toml --cpu host --format json policy/examples/sipi-npvm.trace.toml"
)]
pub struct Args {
    /// The policy file.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Trace files (pvgate-trace/1).
    #[arg(value_name = "TRACE", required = true)]
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

/// Reads and parses one trace; errors are located in its text.
fn load_trace(path: &Path) -> Result<Trace, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read trace `{shown}`: {e}")))?;
    pvgate_trace::parse(&text, &shown).map_err(|e| trace_error(&shown, text, &e))
}

/// A trace error as a located diagnostic, underlined like a policy error.
fn trace_error(path: &str, text: String, e: &TraceError) -> CliError {
    let (kind, message, span, label) = match e {
        TraceError::Parse {
            line: Some(line),
            message,
            ..
        } => {
            let block = lines(&text, *line, *line + 1);
            let span =
                locate(&text, block.clone(), message).unwrap_or_else(|| trimmed(&text, block));
            (ErrorKind::Syntax, message.clone(), span, short(message))
        }
        TraceError::Parse {
            line: None,
            message,
            ..
        } => {
            let span = locate(&text, 0..text.len(), message).unwrap_or(0..0);
            (ErrorKind::BadHeader, message.clone(), span, short(message))
        }
        TraceError::Call {
            index,
            line,
            message,
            ..
        } => {
            let header = lines(&text, *line, *line + 1);
            let end = next_call_line(&text, *line);
            // A missing key is the call's fault: point at its header.
            let span = if message.contains(" needs ") {
                None
            } else {
                locate(&text, lines(&text, *line + 1, end), message)
            }
            .unwrap_or_else(|| trimmed(&text, header));
            (
                ErrorKind::Syntax,
                format!("call #{index}: {message}"),
                span,
                short(message),
            )
        }
        other => return CliError::arg(other.to_string()),
    };
    let help = near_name(&message);
    CliError::Located {
        what: "trace",
        path: path.to_string(),
        text,
        diagnostic: Box::new(Diagnostic::new(kind, message, span, label).with_suggestion(help)),
    }
}

/// "Did you mean" for an unknown PV call or MSR name.
fn near_name(message: &str) -> Option<&'static str> {
    let name = message.split('`').nth(1)?;
    if message.contains("unknown pv call") {
        suggest(name, PvCall::ALL.iter().map(|c| c.name()))
    } else if message.contains("unknown msr") {
        suggest(name, Registry::builtin().msr_names())
    } else {
        None
    }
}

/// The label under the underline: the message without its list of
/// alternatives.
fn short(message: &str) -> String {
    message
        .split(", expected")
        .next()
        .unwrap_or(message)
        .to_string()
}

/// Byte range of 1-based lines `first..end` (exclusive) of `text`.
fn lines(text: &str, first: usize, end: usize) -> Range<usize> {
    let mut start = text.len();
    let mut stop = text.len();
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if n == first {
            start = offset;
        }
        if n == end {
            stop = offset;
            break;
        }
        offset += l.len();
    }
    start.min(stop)..stop
}

/// The range without surrounding whitespace (at least its start).
fn trimmed(text: &str, r: Range<usize>) -> Range<usize> {
    let s = text.get(r.clone()).unwrap_or("");
    let lead = s.len() - s.trim_start().len();
    let body = s.trim();
    let start = r.start + lead;
    start..start + body.len()
}

/// The 1-based line of the `[[call]]` after the one at `line` (or past the end).
fn next_call_line(text: &str, line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(line)
        .find(|(_, l)| l.trim_start().starts_with("[[call]]"))
        .map_or(text.lines().count() + 1, |(i, _)| i + 1)
}

/// Where in `within` the message's subject is written: the first word in
/// backticks (or a leading `a.b =` key) found as a whole word.
fn locate(text: &str, within: Range<usize>, message: &str) -> Option<Range<usize>> {
    let region = text.get(within.clone())?;
    let mut words: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if let Some((key, _)) = message.split_once(" = ")
        && !key.contains(' ')
    {
        words.push(key.rsplit('.').next().unwrap_or(key));
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for word in words.into_iter().filter(|w| !w.is_empty()) {
        for (at, _) in region.match_indices(word) {
            let before = region[..at].chars().next_back();
            let after = region[at + word.len()..].chars().next();
            let line_start = region[..at].rfind('\n').map_or(0, |i| i + 1);
            let in_comment = region[line_start..at].contains('#');
            if !before.is_some_and(ident) && !after.is_some_and(ident) && !in_comment {
                let start = within.start + at;
                return Some(start..start + word.len());
            }
        }
    }
    None
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
                let _ = writeln!(out, "{pad}error: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_in_backticks_are_found_as_whole_words_outside_comments() {
        let text = "[[call]]\npv = \"set_msrx\" # set_msr\nmsr = \"set_msr\"\n";
        let r = locate(text, 0..text.len(), "unknown msr `set_msr`").unwrap();
        assert_eq!(&text[r.clone()], "set_msr");
        assert_eq!(pvgate_codegen::diagnostic::line_col(text, r.start), (3, 8));
        assert_eq!(locate(text, 0..text.len(), "no subject"), None);
    }

    #[test]
    fn a_leading_key_is_a_subject() {
        let text = "[vm]\nkind = \"protected\"\nvcpus = 99\n";
        let r = locate(text, 0..text.len(), "vm.vcpus = 99 is outside 1..=16").unwrap();
        assert_eq!(&text[r], "vcpus");
    }

    #[test]
    fn line_ranges_and_the_next_call_are_found() {
        let text = "a\n  [[call]]\nb\n[[call]]\n";
        assert_eq!(&text[lines(text, 2, 3)], "  [[call]]\n");
        assert_eq!(&text[trimmed(text, lines(text, 2, 3))], "[[call]]");
        assert_eq!(next_call_line(text, 2), 4);
        assert_eq!(next_call_line(text, 4), 5);
    }
}
