//! Writing a revision's policy tree to a temporary directory, so that
//! includes and the policy root resolve as they do in the revision.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::git::command::{GitError, git};

/// The directory of the revision's tree to write out for the policy at
/// `rel`: its policy root as the compiler finds it (the nearest enclosing
/// directory named `policy`, else the policy's own directory).
pub fn tree_root(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    match dirs.iter().rposition(|d| *d == "policy") {
        Some(i) => dirs[..=i].join("/"),
        None => dirs.join("/"),
    }
}

/// Writes every regular file under `dir` at `commit` into `into`, at the
/// same relative paths (symlinks and submodules are not written: an
/// include through one then fails to resolve, as fails closed).
pub fn write_tree(commit: &str, dir: &str, into: &Path) -> Result<(), GitError> {
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
pub struct TempTree(pub PathBuf);

impl TempTree {
    /// A fresh, empty directory under the system temporary directory.
    pub fn new() -> Result<TempTree, GitError> {
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
    fn the_tree_written_out_is_the_policy_root() {
        assert_eq!(tree_root("policy/default.toml"), "policy");
        assert_eq!(tree_root("policy/examples/x.toml"), "policy");
        assert_eq!(tree_root("a/policy/b/c.toml"), "a/policy");
        assert_eq!(tree_root("cli/tests/fixtures/r.toml"), "cli/tests/fixtures");
        assert_eq!(tree_root("top.toml"), "");
    }
}
