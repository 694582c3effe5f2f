//! What became of each mutant: the vocabulary the runner, the
//! `--equivalent` file and the report share.

use std::time::Duration;

use pvgate_codegen::mutate::{Operator, Touched};

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

/// Seconds with one decimal, for reports.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
