//! Policies read from a git revision (`REV:path`), through the `git`
//! command: the revision's policy tree is written to a temporary directory
//! so that `include`s and the policy root resolve as they do in that
//! revision, then compiled like a file.
//!
//! `REV:path` follows git's own syntax (`git show REV:path`): `path` is
//! relative to the repository's top level unless it starts with `./` or
//! `../`, which make it relative to the current directory.

mod command;
mod tree;

use std::path::{Component, Path, PathBuf};

use pvgate_codegen::{Compiled, compile_file_with};

pub use self::command::GitError;
use self::command::git;
use self::tree::{TempTree, tree_root, write_tree};
use crate::error::CliError;
use crate::load;
/// A policy argument: a file in the working copy, or a file at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A path on disk.
    File(PathBuf),
    /// `REV:path`.
    Revision {
        /// The revision (anything `git rev-parse` accepts).
        rev: String,
        /// The path as given after the colon.
        path: String,
    },
}

impl Source {
    /// Reads an argument: an existing file is a file (even with a colon
    /// in its name); otherwise `REV:path` when it holds a colon with text
    /// on both sides; otherwise a file (whose absence is reported on load).
    pub fn parse(arg: &str) -> Source {
        if Path::new(arg).exists() {
            return Source::File(PathBuf::from(arg));
        }
        match arg.split_once(':') {
            Some((rev, path)) if !rev.is_empty() && !path.is_empty() => Source::Revision {
                rev: rev.to_string(),
                path: path.to_string(),
            },
            _ => Source::File(PathBuf::from(arg)),
        }
    }
}

/// Compiles a policy from its source against the CLI's baseline.
pub fn compile(source: &Source) -> Result<Compiled, CliError> {
    match source {
        Source::File(p) => load::policy(p),
        Source::Revision { rev, path } => {
            let rel = Repo::here()?.relative(path)?;
            compile_at(rev, &rel)
        }
    }
}

/// The working-copy file `path` as it is at revision `rev`: its path
/// relative to the repository's top level (for `--base`).
pub fn base_of(rev: &str, path: &Path) -> Result<Source, CliError> {
    let repo = Repo::here()?;
    let real = path
        .canonicalize()
        .map_err(|e| CliError::arg(format!("cannot read policy `{}`: {e}", path.display())))?;
    let rel = real
        .strip_prefix(&repo.top)
        .map_err(|_| GitError::OutsideRepo(path.display().to_string()))?;
    let rel = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    Ok(Source::Revision {
        rev: rev.to_string(),
        path: rel,
    })
}

/// The git work tree the command runs in.
struct Repo {
    /// Its top level, canonical.
    top: PathBuf,
    /// The current directory relative to the top level (`a/b/` or empty).
    prefix: String,
}

impl Repo {
    fn here() -> Result<Repo, GitError> {
        let top = git(&["rev-parse", "--show-toplevel"]).map_err(|e| match e {
            GitError::Failed { said, .. } => GitError::NotARepo(said),
            other => other,
        })?;
        let prefix = git(&["rev-parse", "--show-prefix"])?;
        let top = PathBuf::from(top.trim_end_matches(['\n', '\r']));
        let top = top.canonicalize().unwrap_or(top);
        Ok(Repo {
            top,
            prefix: prefix.trim_end_matches(['\n', '\r']).to_string(),
        })
    }

    /// `path` of `REV:path` relative to the top level, normalised
    /// (git's rule: `./` and `../` start at the current directory).
    fn relative(&self, path: &str) -> Result<String, GitError> {
        let joined = if path.starts_with("./") || path.starts_with("../") {
            format!("{}{path}", self.prefix)
        } else {
            path.to_string()
        };
        let mut parts: Vec<String> = Vec::new();
        for c in Path::new(&joined).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(GitError::OutsideRepo(path.to_string()));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(GitError::OutsideRepo(path.to_string()));
                }
            }
        }
        Ok(parts.join("/"))
    }
}

/// Compiles `rel` as it is at `rev`, its policy tree written out first.
fn compile_at(rev: &str, rel: &str) -> Result<Compiled, CliError> {
    let commit = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ])
    .map_err(|e| match e {
        GitError::Failed { said, .. } => GitError::UnknownRevision {
            rev: rev.to_string(),
            said: if said.is_empty() {
                "no such commit".to_string()
            } else {
                said
            },
        },
        other => other,
    })?;
    let commit = commit.trim().to_string();
    let kind = git(&["cat-file", "-t", &format!("{commit}:{rel}")]).ok();
    if kind.as_deref().map(str::trim) != Some("blob") {
        return Err(GitError::NotInRevision {
            rev: rev.to_string(),
            path: rel.to_string(),
        }
        .into());
    }
    let tmp = TempTree::new()?;
    let root = tree_root(rel);
    write_tree(&commit, &root, &tmp.0)?;
    let shown = format!("{rev}:{rel}");
    Ok(compile_file_with(
        tmp.0.join(rel),
        &shown,
        &load::baseline()?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_files_unless_absent_and_of_the_form_rev_colon_path() {
        assert_eq!(
            Source::parse("HEAD~1:policy/default.toml"),
            Source::Revision {
                rev: "HEAD~1".into(),
                path: "policy/default.toml".into()
            }
        );
        assert_eq!(
            Source::parse("no/such.toml"),
            Source::File(PathBuf::from("no/such.toml"))
        );
        assert_eq!(Source::parse(":x"), Source::File(PathBuf::from(":x")));
        assert_eq!(Source::parse("x:"), Source::File(PathBuf::from("x:")));
    }

    #[test]
    fn paths_are_top_level_relative_unless_dotted() {
        let repo = Repo {
            top: PathBuf::from("/r"),
            prefix: "cli/".into(),
        };
        assert_eq!(
            repo.relative("policy/x.toml").ok(),
            Some("policy/x.toml".into())
        );
        assert_eq!(repo.relative("./a.toml").ok(), Some("cli/a.toml".into()));
        assert_eq!(
            repo.relative("../policy/x.toml").ok(),
            Some("policy/x.toml".into())
        );
        assert!(repo.relative("../../x.toml").is_err());
    }
}
