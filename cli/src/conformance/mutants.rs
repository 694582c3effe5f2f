//! `pvgate conformance --mutants`: mutation analysis of a policy against a
//! conformance suite. Every single-point mutant of the policy
//! (`pvgate_codegen::mutate`) is built; one interpreter per mutant that
//! builds runs the suite, and a mutant is killed when any case or trace
//! expectation fails. The score is the share of the built, non-equivalent
//! mutants the suite kills.
//!
//! The runner takes the suite as a closure ([`Suite`]), so another suite
//! (vectors through hyp, say) plugs in without touching it.

mod equivalent;
mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pvgate_codegen::mutate::{self, Mutant, Operator, Touched};
use pvgate_codegen::{Interpreter, Registry};
use pvgate_trace::Trace;

use super::vectors::{Case, load_vectors};
use super::{Args, check_case};
use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// A conformance suite: runs against one build of a policy and answers
/// `Err` with its first failure (one line: the case or trace call and what
/// it got) when anything fails. It is called from several threads at once.
pub(crate) type Suite<'s> = dyn Fn(&Interpreter) -> Result<(), String> + Sync + 's;

/// What became of one mutant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The compiler or the baseline refused it: the first error.
    KilledByBuild(String),
    /// The suite failed under it: the first failure.
    Killed(String),
    /// Listed as equivalent to the policy, with the reason.
    Equivalent(String),
    /// It built and the whole suite passed.
    Survived,
}

/// One mutant and its fate.
#[derive(Clone, Debug)]
pub(crate) struct Judged {
    /// The mutant's one-line description (its id).
    pub description: String,
    /// Its operator.
    pub operator: Operator,
    /// The rule it touched (`None`: the policy header).
    pub rule: Option<Touched>,
    /// What became of it.
    pub fate: Fate,
}

/// Runs `suite` against every mutant that builds, `jobs` at a time, and
/// returns each mutant's fate in the mutants' order. With `progress`, a
/// count goes to stderr every 100 mutants.
pub(crate) fn analyse(
    mutants: Vec<Mutant>,
    suite: &Suite<'_>,
    jobs: usize,
    progress: bool,
) -> Vec<Judged> {
    let total = mutants.len();
    let queue = Mutex::new(mutants.into_iter().enumerate());
    let done = AtomicUsize::new(0);
    let next = || queue.lock().ok().and_then(|mut q| q.next());
    let mut judged: Vec<(usize, Judged)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while let Some((i, m)) = next() {
                        out.push((i, judge(m, suite)));
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if progress && (n.is_multiple_of(100) || n == total) {
                            eprint!("\rmutants: {n}/{total}");
                            if n == total {
                                eprintln!();
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(total);
        for w in workers {
            match w.join() {
                Ok(out) => all.extend(out),
                // A worker that panicked loses its mutants: never report
                // a score without them.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    judged.sort_by_key(|(i, _)| *i);
    judged.into_iter().map(|(_, j)| j).collect()
}

fn judge(m: Mutant, suite: &Suite<'_>) -> Judged {
    let fate = match m.build {
        Err(e) => Fate::KilledByBuild(
            e.diagnostics
                .first()
                .map_or_else(|| String::from("refused"), |d| d.message.clone()),
        ),
        Ok(ir) => match suite(&Interpreter::new(ir)) {
            Err(failure) => Fate::Killed(failure),
            Ok(()) => Fate::Survived,
        },
    };
    Judged {
        description: m.description,
        operator: m.operator,
        rule: m.rule,
        fate,
    }
}

/// The vector files and traces of a run, each read once.
struct Inputs {
    policy: String,
    vectors: Vec<(PathBuf, Vec<(usize, Case)>)>,
    traces: Vec<Trace>,
}

impl Inputs {
    fn load(args: &Args, policy: &str) -> Result<Inputs, CliError> {
        let vectors = args
            .vectors
            .iter()
            .map(|p| load_vectors(p).map(|(_, cases)| (p.clone(), cases)))
            .collect::<Result<_, _>>()?;
        let traces = args
            .traces
            .iter()
            .map(|p| load_trace(p))
            .collect::<Result<_, _>>()?;
        Ok(Inputs {
            policy: policy.to_string(),
            vectors,
            traces,
        })
    }

    /// The suite: every case, then every trace; the first failure.
    /// A case that cannot be evaluated is an input error (`CliError`).
    fn run(&self, interp: &Interpreter) -> Result<Result<(), String>, CliError> {
        let registry = Registry::builtin();
        for (path, cases) in &self.vectors {
            for (line, case) in cases {
                let c = check_case(&self.policy, interp, registry, path, *line, case)?;
                if !c.passed {
                    return Ok(Err(format!(
                        "{}:{line}: {}: expected `{}`, got `{}`",
                        path.display(),
                        c.request,
                        c.expect,
                        c.got
                    )));
                }
            }
        }
        for t in &self.traces {
            let r = match pvgate_trace::replay(interp, t) {
                Ok(r) => r,
                Err(e) => return Ok(Err(format!("{}: {e}", t.path))),
            };
            if let Some(f) = r.failures().next() {
                return Ok(Err(format!(
                    "{}:{}: call #{} {}: {}",
                    t.path,
                    f.line,
                    f.index,
                    f.pv,
                    f.mismatches.join("; ")
                )));
            }
        }
        Ok(Ok(()))
    }

    fn cases(&self) -> usize {
        self.vectors.iter().map(|(_, c)| c.len()).sum()
    }
}

fn load_trace(path: &Path) -> Result<Trace, CliError> {
    pvgate_trace::load(path).map_err(|e| CliError::arg(format!("trace: {e}")))
}

/// Runs `conformance --mutants`.
pub(super) fn run(args: &Args) -> Result<Outcome, CliError> {
    let start = Instant::now();
    let compiled = load::policy(&args.policy)?;
    let inputs = Inputs::load(args, &compiled.path)?;
    let equivalents = match &args.equivalent {
        Some(p) => equivalent::load(p)?,
        None => Vec::new(),
    };
    if let Some(min) = args.min_score
        && !(0.0..=100.0).contains(&min)
    {
        return Err(CliError::arg(format!(
            "--min-score {min} is not a percentage between 0 and 100"
        )));
    }
    let jobs = match args.jobs {
        Some(0) => return Err(CliError::arg("--jobs 0: run at least one job")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    // The suite must pass on the policy itself, or it judges nothing.
    if let Err(failure) = inputs.run(&Interpreter::new(compiled.ir.clone()))? {
        return Err(CliError::arg_with(
            format!(
                "the suite fails on the policy `{}` itself: {failure}",
                compiled.path
            ),
            Some(String::from(
                "fix the case or the policy (`cargo pvgate conformance` without --mutants) before measuring mutants",
            )),
        ));
    }
    let mutants = mutate::mutants(&compiled, Registry::builtin());
    // Case errors were ruled out by the run above: a failure to evaluate a
    // case under a mutant is that case failing.
    let suite = |interp: &Interpreter| inputs.run(interp).unwrap_or_else(|e| Err(e.render()));
    let progress = std::io::stderr().is_terminal();
    let mut judged = analyse(mutants, &suite, jobs, progress);
    equivalent::apply(&equivalents, &mut judged, args.equivalent.as_deref())?;
    let summary = report::Summary::new(
        &compiled.path,
        &judged,
        report::Suite {
            vector_files: inputs.vectors.len(),
            cases: inputs.cases(),
            traces: inputs.traces.len(),
        },
        args.min_score,
        start.elapsed(),
        jobs,
    );
    match args.format {
        Format::Human => print!("{}", summary.human(args.verbose)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary.json()).unwrap_or_default()
        ),
    }
    Ok(if summary.below_min() {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Seconds with one decimal, for reports.
fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
