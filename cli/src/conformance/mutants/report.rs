//! The mutation report: counts overall and per operator, the score, the
//! survivors as one-line policy diffs, for people and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use pvgate_codegen::mutate::Operator;
use serde_json::{Value, json};

use super::judged::{Fate, Judged, seconds};

/// What the suite held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Suite {
    /// Vector files.
    pub vector_files: usize,
    /// Cases in them.
    pub cases: usize,
    /// Traces.
    pub traces: usize,
}

/// Counts of one operator (or of all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    mutants: usize,
    killed_by_build: usize,
    killed: usize,
    equivalent: usize,
    survived: usize,
}

impl Counts {
    fn add(&mut self, fate: &Fate) {
        self.mutants += 1;
        match fate {
            Fate::KilledByBuild(_) => self.killed_by_build += 1,
            Fate::Killed(_) => self.killed += 1,
            Fate::Equivalent(_) => self.equivalent += 1,
            Fate::Survived => self.survived += 1,
        }
    }

    /// Built, not equivalent: the score's denominator.
    fn scored(&self) -> usize {
        self.mutants - self.killed_by_build - self.equivalent
    }
}

/// A finished analysis.
pub(crate) struct Summary<'j> {
    policy: String,
    judged: &'j [Judged],
    suite: Suite,
    total: Counts,
    operators: Vec<(Operator, Counts)>,
    min_score: Option<f64>,
    elapsed: Duration,
    jobs: usize,
}

impl<'j> Summary<'j> {
    /// Counts the fates of `judged`.
    pub(crate) fn new(
        policy: &str,
        judged: &'j [Judged],
        suite: Suite,
        min_score: Option<f64>,
        elapsed: Duration,
        jobs: usize,
    ) -> Summary<'j> {
        let mut total = Counts::default();
        let mut operators: Vec<(Operator, Counts)> = Operator::ALL
            .iter()
            .map(|&o| (o, Counts::default()))
            .collect();
        for j in judged {
            total.add(&j.fate);
            if let Some((_, c)) = operators.iter_mut().find(|(o, _)| *o == j.operator) {
                c.add(&j.fate);
            }
        }
        operators.retain(|(_, c)| c.mutants > 0);
        Summary {
            policy: policy.to_string(),
            judged,
            suite,
            total,
            operators,
            min_score,
            elapsed,
            jobs,
        }
    }

    /// The score in percent: killed by the suite / (built − equivalent);
    /// 100 when nothing is left to kill.
    pub(crate) fn score(&self) -> f64 {
        match self.total.scored() {
            0 => 100.0,
            n => self.total.killed as f64 * 100.0 / n as f64,
        }
    }

    /// Whether the score, at the printed precision (so the gate agrees
    /// with the report), is below `--min-score`.
    pub(crate) fn below_min(&self) -> bool {
        self.min_score.is_some_and(|min| round1(self.score()) < min)
    }

    fn of(&self, pick: fn(&Fate) -> bool) -> impl Iterator<Item = &Judged> {
        self.judged.iter().filter(move |j| pick(&j.fate))
    }

    /// The report for people.
    pub(crate) fn human(&self, verbose: bool) -> String {
        let t = &self.total;
        let mut out = String::new();
        let s = self.suite;
        let _ = writeln!(
            out,
            "mutation analysis of {}: {} mutants; suite: {} case{} in {} vector file{}, {} trace{}",
            self.policy,
            t.mutants,
            s.cases,
            plural(s.cases),
            s.vector_files,
            plural(s.vector_files),
            s.traces,
            plural(s.traces)
        );
        let by_build: Vec<String> = self
            .operators
            .iter()
            .filter(|(_, c)| c.killed_by_build > 0)
            .map(|(o, c)| format!("{} {}", o.name(), c.killed_by_build))
            .collect();
        let _ = writeln!(out, "  killed by the build: {}", t.killed_by_build);
        if !by_build.is_empty() {
            let _ = writeln!(out, "    ({})", by_build.join(", "));
        }
        let _ = writeln!(out, "  killed by the suite: {}", t.killed);
        let _ = writeln!(out, "  equivalent:          {}", t.equivalent);
        let _ = writeln!(out, "  survived:            {}", t.survived);
        let _ = writeln!(out, "\nper operator:");
        let _ = writeln!(
            out,
            "  {:<18} {:>7} {:>7} {:>7} {:>10} {:>8}",
            "operator", "mutants", "build", "suite", "equivalent", "survived"
        );
        for (o, c) in &self.operators {
            let _ = writeln!(
                out,
                "  {:<18} {:>7} {:>7} {:>7} {:>10} {:>8}",
                o.name(),
                c.mutants,
                c.killed_by_build,
                c.killed,
                c.equivalent,
                c.survived
            );
        }
        if verbose {
            section(
                &mut out,
                "killed by the build",
                self.of(is_build),
                |j| match &j.fate {
                    Fate::KilledByBuild(why) => format!("{}\n      {why}", j.description),
                    _ => j.description.clone(),
                },
            );
            section(
                &mut out,
                "killed by the suite",
                self.of(is_killed),
                |j| match &j.fate {
                    Fate::Killed(by) => format!("{}\n      by {by}", j.description),
                    _ => j.description.clone(),
                },
            );
        }
        section(
            &mut out,
            "equivalent",
            self.of(is_equivalent),
            |j| match &j.fate {
                Fate::Equivalent(reason) => format!("{}\n      {reason}", j.description),
                _ => j.description.clone(),
            },
        );
        section(&mut out, "survivors", self.of(is_survivor), |j| {
            format!("{}  [{}]", j.description, j.operator.name())
        });
        let _ = writeln!(
            out,
            "\nscore: {:.1}% ({} killed of {} built and not equivalent)",
            self.score(),
            t.killed,
            t.scored()
        );
        if let Some(min) = self.min_score {
            let verdict = if self.below_min() {
                "below it"
            } else {
                "reached"
            };
            let _ = writeln!(out, "min-score: {min:.1}%: {verdict}");
        }
        let _ = writeln!(
            out,
            "time: {} with {} job{}",
            seconds(self.elapsed),
            self.jobs,
            plural(self.jobs)
        );
        out
    }

    /// The report as one JSON document.
    pub(crate) fn json(&self) -> Value {
        let t = &self.total;
        let mutant = |j: &Judged| {
            let mut v = json!({
                "mutant": j.description,
                "operator": j.operator.name(),
                "rule": j.rule.as_ref().map(|r| json!({"name": r.name, "line": r.line})),
            });
            if let Some(obj) = v.as_object_mut() {
                match &j.fate {
                    Fate::KilledByBuild(why) => {
                        obj.insert("error".into(), json!(why));
                    }
                    Fate::Killed(by) => {
                        obj.insert("killed_by".into(), json!(by));
                    }
                    Fate::Equivalent(reason) => {
                        obj.insert("reason".into(), json!(reason));
                    }
                    Fate::Survived => {}
                }
            }
            v
        };
        let by_build: serde_json::Map<String, Value> = self
            .operators
            .iter()
            .filter(|(_, c)| c.killed_by_build > 0)
            .map(|(o, c)| (o.name().to_string(), json!(c.killed_by_build)))
            .collect();
        json!({
            "policy": self.policy,
            "suite": {
                "vector_files": self.suite.vector_files,
                "cases": self.suite.cases,
                "traces": self.suite.traces,
            },
            "mutants": t.mutants,
            "built": t.mutants - t.killed_by_build,
            "killed_by_build": { "total": t.killed_by_build, "by_operator": by_build },
            "killed": t.killed,
            "equivalent": t.equivalent,
            "survived": t.survived,
            "score": round1(self.score()),
            "min_score": self.min_score,
            "below_min_score": self.below_min(),
            "operators": self.operators.iter().map(|(o, c)| json!({
                "operator": o.name(),
                "mutants": c.mutants,
                "killed_by_build": c.killed_by_build,
                "killed": c.killed,
                "equivalent": c.equivalent,
                "survived": c.survived,
            })).collect::<Vec<_>>(),
            "survivors": self.of(is_survivor).map(mutant).collect::<Vec<_>>(),
            "equivalents": self.of(is_equivalent).map(mutant).collect::<Vec<_>>(),
            "killed_mutants": self.of(is_killed).map(mutant).collect::<Vec<_>>(),
            "killed_by_build_mutants": self.of(is_build).map(mutant).collect::<Vec<_>>(),
            "elapsed_seconds": round1(self.elapsed.as_secs_f64()),
            "jobs": self.jobs,
        })
    }
}

fn is_build(f: &Fate) -> bool {
    matches!(f, Fate::KilledByBuild(_))
}

fn is_killed(f: &Fate) -> bool {
    matches!(f, Fate::Killed(_))
}

fn is_equivalent(f: &Fate) -> bool {
    matches!(f, Fate::Equivalent(_))
}

fn is_survivor(f: &Fate) -> bool {
    matches!(f, Fate::Survived)
}

/// A titled list, skipped when empty.
fn section<'a>(
    out: &mut String,
    title: &str,
    items: impl Iterator<Item = &'a Judged>,
    line: impl Fn(&Judged) -> String,
) {
    let lines: Vec<String> = items.map(line).collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", lines.len());
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Rounded to one decimal.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
