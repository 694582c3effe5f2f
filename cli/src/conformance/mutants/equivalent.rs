//! The `--equivalent` file: mutants a reviewer judged equivalent to the
//! policy (no suite can kill them), each with the reason. They leave the
//! score. The list cannot go stale: an entry that names no mutant, a
//! mutant the build kills, or one the suite kills is an input error.
//!
//! ```toml
//! [[equivalent]]
//! mutant = "policy/default.toml:36 pvm-inject-irq: allow-soft = false → true"
//! reason = "why no host request can tell the mutant from the policy"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use pvgate_codegen::diagnostic::line_col;
use serde::Deserialize;
use toml::Spanned;

use super::judged::{Fate, Judged};
use crate::error::CliError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    equivalent: Vec<Spanned<Entry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    mutant: String,
    reason: String,
}

/// One entry: the mutant's description, the reason, and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Equivalent {
    /// The mutant's description, exactly as the report prints it.
    pub mutant: String,
    /// Why it is equivalent.
    pub reason: String,
    /// 1-based line of its `[[equivalent]]`.
    pub line: usize,
}

/// Reads an equivalent-mutants file; every problem in it is reported.
pub(crate) fn load(path: &Path) -> Result<Vec<Equivalent>, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read equivalent mutants `{shown}`: {e}")))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
        let message = e.message().lines().next().unwrap_or("invalid file");
        CliError::arg(format!("{shown}:{line}:{col}: {message}"))
    })?;
    let mut out: Vec<Equivalent> = Vec::new();
    let mut errors = Vec::new();
    for e in file.equivalent {
        let line = line_col(&text, e.span().start).0;
        let e = e.into_inner();
        if e.reason.trim().is_empty() {
            errors.push(format!(
                "{shown}:{line}: equivalent mutant `{}` has an empty `reason`",
                e.mutant
            ));
        }
        if let Some(first) = out.iter().find(|o| o.mutant == e.mutant) {
            errors.push(format!(
                "{shown}:{line}: mutant `{}` is listed twice (first at line {})",
                e.mutant, first.line
            ));
        }
        out.push(Equivalent {
            mutant: e.mutant,
            reason: e.reason,
            line,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CliError::arg(errors.join("\nerror: ")))
    }
}

/// Marks the listed survivors equivalent. Refused, every one named: an
/// entry that matches no mutant (the policy changed), or names a mutant
/// the build or the suite kills (then it is not equivalent).
pub(crate) fn apply(
    list: &[Equivalent],
    judged: &mut [Judged],
    path: Option<&Path>,
) -> Result<(), CliError> {
    let shown = path.map_or_else(String::new, |p| p.display().to_string());
    let by_description: BTreeMap<&str, usize> = judged
        .iter()
        .enumerate()
        .map(|(i, j)| (j.description.as_str(), i))
        .collect();
    let mut errors = Vec::new();
    let mut marks = Vec::new();
    for e in list {
        match by_description
            .get(e.mutant.as_str())
            .map(|&i| (i, &judged[i].fate))
        {
            None => errors.push(format!(
                "{shown}:{}: no mutant `{}` (stale entry: the policy or its mutants changed)",
                e.line, e.mutant
            )),
            Some((_, Fate::KilledByBuild(why))) => errors.push(format!(
                "{shown}:{}: mutant `{}` is killed by the build ({why}), not equivalent",
                e.line, e.mutant
            )),
            Some((_, Fate::Killed(by))) => errors.push(format!(
                "{shown}:{}: mutant `{}` is killed by the suite ({by}), not equivalent",
                e.line, e.mutant
            )),
            Some((i, _)) => marks.push((i, e.reason.clone())),
        }
    }
    if !errors.is_empty() {
        return Err(CliError::arg(errors.join("\nerror: ")));
    }
    for (i, reason) in marks {
        judged[i].fate = Fate::Equivalent(reason);
    }
    Ok(())
}
