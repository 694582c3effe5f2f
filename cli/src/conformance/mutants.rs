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
mod judged;
mod report;

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use pvgate_codegen::mutate::{self, Mutant};
use pvgate_codegen::{Interpreter, Registry};
use pvgate_trace::{VectorFile, run_vectors};

pub(crate) use judged::{Fate, Judged};

use super::{Args, suite};
use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// A conformance suite: runs against one build of a policy and answers
/// `Err` with its first failure (one line: the case or trace call and what
/// it got) when anything fails. It is called from several threads at once.
pub(crate) type Suite<'s> = dyn Fn(&Interpreter) -> Result<(), String> + Sync + 's;

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

/// The vector files and traces of a run, each read once by the one
/// loader (`pvgate_trace::load_vectors`: a trace is a vector file whose
/// calls run in order).
struct Inputs {
    vectors: Vec<VectorFile>,
    traces: Vec<VectorFile>,
}

impl Inputs {
    fn load(args: &Args) -> Result<Inputs, CliError> {
        Ok(Inputs {
            vectors: suite(&args.vectors)?,
            traces: suite(&args.traces)?,
        })
    }

    /// The suite: every case of every file, then every trace, through
    /// `pvgate_trace::run_vectors`; the number of cases of the vector
    /// files, or the first failure as one line.
    fn run(&self, interp: &Interpreter) -> Result<usize, String> {
        let mut cases = 0;
        for (i, file) in self.vectors.iter().chain(&self.traces).enumerate() {
            let results = run_vectors(interp, file);
            if i < self.vectors.len() {
                cases += results.len();
            }
            if let Some(r) = results.into_iter().find(|r| !r.passed) {
                return Err(format!(
                    "{}:{}: {}: expected {}, got {}",
                    file.path, r.line, r.request, r.expected, r.got
                ));
            }
        }
        Ok(cases)
    }
}

/// Runs `conformance --mutants`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let start = Instant::now();
    let compiled = load::policy(&args.policy)?;
    let inputs = Inputs::load(args)?;
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
    let cases = match inputs.run(&Interpreter::new(compiled.ir.clone())) {
        Ok(cases) => cases,
        Err(failure) => {
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
    };
    let mutants = mutate::mutants(&compiled, Registry::builtin());
    let suite = |interp: &Interpreter| inputs.run(interp).map(|_| ());
    let progress = std::io::stderr().is_terminal();
    let mut judged = analyse(mutants, &suite, jobs, progress);
    equivalent::apply(&equivalents, &mut judged, args.equivalent.as_deref())?;
    let summary = report::Summary::new(
        &compiled.path,
        &judged,
        report::Suite {
            vector_files: inputs.vectors.len(),
            cases,
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
