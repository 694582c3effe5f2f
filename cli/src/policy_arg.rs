//! The one way every subcommand names its policy: positionally, first
//! (`cargo pvgate check POLICY`, `cargo pvgate replay POLICY TRACE...`).
//! `--policy FILE`, the spelling explain, replay, conformance and image
//! used before, still works for one release, with a one-line deprecation
//! note on stderr.

use std::path::PathBuf;

use crate::error::CliError;

/// The deprecation note printed on stderr when `--policy` is used.
pub fn note(command: &str, usage: &str) -> String {
    format!(
        "note: `--policy` is deprecated and will be removed in the next release; \
         name the policy first: `cargo pvgate {command} {usage}`"
    )
}

/// The policy of a command that takes it first among its positional
/// arguments, from either spelling. With the deprecated `--policy`, the
/// positional argument clap took for the policy belongs to `rest` (the
/// command's other inputs), so it is put back in front of them.
pub fn resolve(
    command: &str,
    usage: &str,
    positional: Option<PathBuf>,
    flag: Option<PathBuf>,
    rest: Option<&mut Vec<PathBuf>>,
) -> Result<PathBuf, CliError> {
    match (flag, positional) {
        (Some(policy), positional) => {
            eprintln!("{}", note(command, usage));
            match (positional, rest) {
                (Some(p), Some(rest)) => rest.insert(0, p),
                (Some(p), None) => {
                    return Err(CliError::arg(format!(
                        "two policies: `{}` and `--policy {}`; name one, first",
                        p.display(),
                        policy.display()
                    )));
                }
                (None, _) => {}
            }
            Ok(policy)
        }
        (None, Some(policy)) => Ok(policy),
        (None, None) => Err(CliError::arg(format!(
            "no policy given: `cargo pvgate {command} {usage}`"
        ))),
    }
}
