//! Running `git` and its failures: each is unusable input (exit 2).

use std::ffi::OsStr;
use std::process::Command;

use crate::error::CliError;

/// Why a policy could not be read from git: each is unusable input (exit 2).
#[derive(Debug)]
pub enum GitError {
    /// `git` could not be started.
    NoGit(std::io::Error),
    /// The current directory is not inside a git work tree.
    NotARepo(String),
    /// `git rev-parse --verify REV^{commit}` failed.
    UnknownRevision {
        /// The revision as given.
        rev: String,
        /// What git said.
        said: String,
    },
    /// The path names no file in the revision.
    NotInRevision {
        /// The revision as given.
        rev: String,
        /// The path, relative to the repository's top level.
        path: String,
    },
    /// The path leaves the repository (`..` above the top level).
    OutsideRepo(String),
    /// Another git command failed.
    Failed {
        /// The git command.
        command: String,
        /// What git said.
        said: String,
    },
    /// The temporary copy of the revision's tree could not be written.
    Io(std::io::Error),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::NoGit(e) => write!(f, "cannot run `git` to read a revision: {e}"),
            GitError::NotARepo(said) => write!(
                f,
                "not in a git repository, so `REV:path` and `--base` cannot be read (git: {said})"
            ),
            GitError::UnknownRevision { rev, said } => {
                write!(f, "unknown git revision `{rev}` (git: {said})")
            }
            GitError::NotInRevision { rev, path } => {
                write!(f, "`{path}` is not a file in revision `{rev}`")
            }
            GitError::OutsideRepo(p) => write!(f, "`{p}` lies outside the git repository"),
            GitError::Failed { command, said } => write!(f, "`{command}` failed: {said}"),
            GitError::Io(e) => write!(f, "cannot write the revision's policy tree: {e}"),
        }
    }
}

impl From<GitError> for CliError {
    fn from(e: GitError) -> CliError {
        CliError::arg(e.to_string())
    }
}

/// Runs `git ARGS` in the current directory; its trimmed stdout, or
/// [`GitError::Failed`] with its stderr.
pub fn git<S: AsRef<OsStr>>(args: &[S]) -> Result<String, GitError> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(GitError::NoGit)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            command: format!(
                "git {}",
                args.iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            said: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
