//! `pvgate conformance`: run conformance vectors (host requests with what
//! a team requires of them) against a policy. A team keeps its vectors
//! beside the policy; every policy change must still pass them.
//!
//! The format (`pvgate-conformance/1`, docs/conformance.md) and its loader
//! and runner are the trace crate's ([`pvgate_trace::parse_vectors`],
//! [`pvgate_trace::run_vectors`]): decision-only cases are answered by the
//! policy's decision functions, hyp cases run through the hypervisor core
//! with the trace vocabulary, and a `pvgate-trace/1` file is accepted too
//! (each call with expectations counts as a case). This module prints;
//! `--mutants` is [`mutants`] (the command line sends it there).

mod coverage;
pub mod mutants;

use std::path::PathBuf;

use pvgate_codegen::{Compiled, Interpreter};
use pvgate_trace::{CaseResult, VectorFile, load_vectors, run_vectors};
use serde_json::json;

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;
use crate::replay::trace_error;

/// Run conformance vectors against a policy.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "pvgate conformance [OPTIONS] <POLICY> <VECTORS>...\n       pvgate conformance --mutants [OPTIONS] <POLICY> [VECTORS]...",
    long_about = "Run conformance vectors (format pvgate-conformance/1, docs/conformance.md) \
                  against POLICY: decision-only cases through the policy's decision functions, \
                  hyp cases through the real hypervisor core. Trace files (pvgate-trace/1) are \
                  accepted too: each call with expectations counts as a case.\n\n\
                  Exit codes: 0 every case passed; 1 a case failed; 2 a policy or vector file \
                  that does not load.",
    after_help = "Examples:\n  cargo pvgate conformance policy/default.toml tests/conformance/pkvm-ia.toml\n  \
                  cargo pvgate conformance --coverage policy/strict.toml tests/conformance/strict.toml\n  \
                  cargo pvgate conformance --mutants --min-score 95 --equivalent tests/conformance/equivalent.toml \\\n    \
                  policy/default.toml --trace tests/data/traces/crosvm-boot-pvm.toml \\\n    \
                  --trace tests/data/traces/crosvm-boot-npvm.toml tests/conformance/pkvm-ia*.toml\n\n\
                  Exit codes: 0 every case passed (--mutants: the score reached --min-score); 1 a case failed \
                  (--mutants: the score is below --min-score); 2 a policy, vector, trace or --equivalent file \
                  that does not load, or a suite that fails on the policy itself."
)]
pub struct Args {
    /// The policy the vectors are run against.
    #[arg(value_name = "POLICY", required_unless_present = "deprecated_policy")]
    pub policy_arg: Option<PathBuf>,
    /// Deprecated spelling of POLICY (one release).
    #[arg(long = "policy", value_name = "POLICY", hide = true)]
    pub deprecated_policy: Option<PathBuf>,
    /// The policy, from either spelling (filled by `resolve`).
    #[arg(skip)]
    pub policy: PathBuf,
    /// Vector files (`pvgate-conformance/1`) or traces (`pvgate-trace/1`).
    #[arg(
        value_name = "VECTORS",
        required_unless_present_any = ["mutants", "deprecated_policy"]
    )]
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
    /// Also report coverage: for each rule of the policy whether a case's
    /// request was decided by it, for each MSR range whether both ends and
    /// one value outside were probed, and for each invariant whether a
    /// request fell inside it; uncovered ones listed with file:line.
    #[arg(long, conflicts_with = "mutants")]
    pub coverage: bool,
    /// Also list the cases that passed.
    #[arg(long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

impl Args {
    /// Settles the policy from either spelling (`policy_arg`).
    pub fn resolve(&mut self) -> Result<(), CliError> {
        self.policy = crate::policy_arg::resolve(
            "conformance",
            "POLICY VECTORS...",
            self.policy_arg.take(),
            self.deprecated_policy.take(),
            Some(&mut self.vectors),
        )?;
        if self.vectors.is_empty() && !self.mutants {
            return Err(CliError::arg(
                "no vector file given: `cargo pvgate conformance POLICY VECTORS...`",
            ));
        }
        Ok(())
    }
}

/// Runs `conformance`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let compiled = load::policy(&args.policy)?;
    let interp = Interpreter::new(compiled.ir.clone());
    let files = suite(&args.vectors)?;
    let results: Vec<(&VectorFile, Vec<CaseResult>)> =
        files.iter().map(|f| (f, run_vectors(&interp, f))).collect();
    let failed = results
        .iter()
        .flat_map(|(_, r)| r)
        .filter(|c| !c.passed)
        .count();
    let covered = args.coverage.then(|| {
        let all: Vec<&[CaseResult]> = results.iter().map(|(_, r)| r.as_slice()).collect();
        coverage::of(&compiled, &interp, &all)
    });
    match args.format {
        Format::Human => {
            print!("{}", human(&compiled, &results, args.verbose));
            if let Some(c) = &covered {
                print!("{}", coverage::human(&compiled.path, c));
            }
        }
        Format::Json => {
            let mut out = to_json(&compiled, &results);
            if let Some(c) = &covered {
                out["coverage"] = coverage::json(&compiled.path, c);
            }
            println!("{out}");
        }
    }
    Ok(if failed == 0 {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

/// Loads every vector file (and trace) given; every error of every file
/// is reported (all but the last printed here, the last returned).
pub fn suite(paths: &[PathBuf]) -> Result<Vec<VectorFile>, CliError> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load_vectors(path) {
            Ok(f) => files.push(f),
            Err(e) => errors.push(trace_error(e)),
        }
    }
    match errors.pop() {
        None => Ok(files),
        Some(last) => {
            for e in &errors {
                eprint!("{}", e.render());
            }
            Err(last)
        }
    }
}

/// The rule that decided the case's last call, as `rule `name` (policy:line)`.
fn rule_text(c: &Compiled, r: &CaseResult) -> String {
    match r.decided_by.last().and_then(|d| d.rule.as_ref()) {
        Some(rule) => format!("rule `{}` ({}:{})", rule.name, c.path, rule.line),
        // A denied request, or a CPUID bit no rule gives the host.
        None if r.got.starts_with("deny") || r.got == "fixed" => {
            String::from("no rule: default deny")
        }
        None => String::from("no rule"),
    }
}

fn human(c: &Compiled, files: &[(&VectorFile, Vec<CaseResult>)], verbose: bool) -> String {
    let mut out = String::new();
    for (file, cases) in files {
        let failed = cases.iter().filter(|r| !r.passed).count();
        for r in cases.iter().filter(|r| verbose || !r.passed) {
            let rule = rule_text(c, r);
            let cite = r
                .cite
                .as_deref()
                .map(|s| format!("; cite: {s}"))
                .unwrap_or_default();
            if r.passed {
                out.push_str(&format!(
                    "ok   {}:{}: {}: {} ({rule}){cite}\n",
                    file.path, r.line, r.request, r.got
                ));
            } else {
                out.push_str(&format!(
                    "FAIL {}:{}: {}: expected `{}`, got `{}` ({rule}){cite}\n",
                    file.path, r.line, r.request, r.expected, r.got
                ));
            }
        }
        out.push_str(&format!(
            "{}: {}: {} cases, {} passed, {failed} failed\n",
            file.path,
            file.title,
            cases.len(),
            cases.len() - failed
        ));
    }
    out
}

fn to_json(c: &Compiled, files: &[(&VectorFile, Vec<CaseResult>)]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(file, cases)| {
            json!({
                "file": file.path,
                "title": file.title,
                "passed": cases.iter().filter(|r| r.passed).count(),
                "failed": cases.iter().filter(|r| !r.passed).count(),
                "cases": cases.iter().map(|r| json!({
                    "line": r.line,
                    "kind": if r.hyp { "hyp" } else { "decision" },
                    "request": r.request,
                    "expect": r.expected,
                    "got": r.got,
                    "rule": r.decided_by.last().and_then(|d| d.rule.as_ref()).map(|_| rule_text(c, r)),
                    "calls": r.decided_by.iter().map(|d| json!({
                        "call": d.call,
                        "resource": d.resource,
                        "rule": d.rule.as_ref().map(|rule| json!({
                            "id": rule.id,
                            "name": rule.name,
                            "file": c.path,
                            "line": rule.line,
                        })),
                    })).collect::<Vec<_>>(),
                    "cite": r.cite,
                    "passed": r.passed,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "files": files })
}
