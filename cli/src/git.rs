//! Policies read from a git revision (`REV:path`), through the `git`
//! command: the revision's policy tree is written to a temporary directory
//! so that `include`s and the policy root resolve as they do in that
//! revision, then compiled like a file.
//!
//! `REV:path` follows git's own syntax (`git show REV:path`): `path` is
//! relative to the repository's top level unless it starts with `./` or
//! `../`, which make it relative to the current directory.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use pvgate_codegen::{Compiled, compile_file_with};

use crate::error::CliError;
use crate::load;

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

/// Runs `git ARGS` in the current directory; its trimmed stdout, or
/// [`GitError::Failed`] with its stderr.
fn git<S: AsRef<OsStr>>(args: &[S]) -> Result<String, GitError> {
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

/// The directory of the revision's tree to write out for the policy at
/// `rel`: its policy root as the compiler finds it (the nearest enclosing
/// directory named `policy`, else the policy's own directory).
fn tree_root(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    match dirs.iter().rposition(|d| *d == "policy") {
        Some(i) => dirs[..=i].join("/"),
        None => dirs.join("/"),
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

/// Writes every regular file under `dir` at `commit` into `into`, at the
/// same relative paths (symlinks and submodules are not written: an
/// include through one then fails to resolve, as fails closed).
fn write_tree(commit: &str, dir: &str, into: &Path) -> Result<(), GitError> {
    let spec = if dir.is_empty() {
        commit.to_string()
    } else {
        format!("{commit}:{dir}")
    };
    let listing = git(&["ls-tree", "-r", "-z", "--full-tree", &spec])?;
    for entry in listing.split('\0').filter(|e| !e.is_empty()) {
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (Some(mode), Some(kind), Some(object)) = (meta.next(), meta.next(), meta.next()) else {
            continue;
        };
        if kind != "blob" || !(mode == "100644" || mode == "100755") {
            continue;
        }
        let rel = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let out = Command::new("git")
            .args(["cat-file", "blob", object])
            .output()
            .map_err(GitError::NoGit)?;
        if !out.status.success() {
            return Err(GitError::Failed {
                command: format!("git cat-file blob {object}"),
                said: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let path = into.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(GitError::Io)?;
        }
        std::fs::write(&path, out.stdout).map_err(GitError::Io)?;
    }
    Ok(())
}

/// A temporary directory, removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new() -> Result<TempTree, GitError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pvgate-rev-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(GitError::Io)?;
        Ok(TempTree(dir))
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    fn the_tree_written_out_is_the_policy_root() {
        assert_eq!(tree_root("policy/default.toml"), "policy");
        assert_eq!(tree_root("policy/examples/x.toml"), "policy");
        assert_eq!(tree_root("a/policy/b/c.toml"), "a/policy");
        assert_eq!(tree_root("cli/tests/fixtures/r.toml"), "cli/tests/fixtures");
        assert_eq!(tree_root("top.toml"), "");
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
