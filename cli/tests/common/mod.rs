//! Running the real `pvgate` binary from the workspace root.

#![allow(dead_code, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// What a run of the binary produced.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The workspace root (policies are named relative to it, as reviewers do).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `pvgate ARGS` in the workspace root.
pub fn pvgate(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the pvgate binary runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "pvgate {args:?} panicked:\n{}",
        run.stderr
    );
    run
}
