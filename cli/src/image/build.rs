//! The cargo build behind `pvgate image`: the pvgate workspace (`cargo
//! metadata`), the command and environment build.rs reads, running it with
//! cargo's progress on stderr, and the toolchain that answers.

use std::fmt::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::ValueEnum;
use serde_json::Value;

use crate::error::CliError;
use crate::load;

/// The no_std target triple of `--target none`.
pub const NONE_TRIPLE: &str = "x86_64-unknown-none";
/// The library cargo builds.
pub const LIBRARY: &str = "libpvgate_image.a";
/// What the image is built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The build machine (link it into a C program and run it there).
    #[default]
    Host,
    /// x86_64-unknown-none: the bare-metal hypervisor image.
    None,
}

/// Why an image could not be built (each exits 2).
#[derive(Debug)]
pub enum ImageError {
    /// `cargo metadata` failed or is not the pvgate workspace.
    Workspace(String),
    /// `cargo build` could not start or failed.
    Build(String),
    /// `rustc -V` failed.
    Toolchain(String),
    /// The built library's digest could not be read.
    Unreadable(String),
    /// An output file could not be written.
    Write(PathBuf, std::io::Error),
}

impl From<ImageError> for CliError {
    fn from(e: ImageError) -> CliError {
        CliError::arg(match e {
            ImageError::Workspace(m) => format!("cannot find the pvgate workspace: {m}"),
            ImageError::Build(m) => format!("the image build failed: {m}"),
            ImageError::Toolchain(m) => format!("cannot name the toolchain (`rustc -V`): {m}"),
            ImageError::Unreadable(m) => format!("cannot read the built library's digest: {m}"),
            ImageError::Write(p, e) => format!("cannot write `{}`: {e}", p.display()),
        })
    }
}

/// The workspace the image is built in, from `cargo metadata`.
pub struct Workspace {
    /// Its root directory.
    pub root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs a command, returning its stdout; a failure names the command.
fn output(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("`{what}` did not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn workspace() -> Result<Workspace, ImageError> {
    let text = output(
        Command::new(cargo()).args(["metadata", "--no-deps", "--format-version", "1"]),
        "cargo metadata --no-deps",
    )
    .map_err(ImageError::Workspace)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| ImageError::Workspace(e.to_string()))?;
    let path = |key: &str| {
        v[key]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| ImageError::Workspace(format!("`cargo metadata` gave no {key}")))
    };
    let has_image = v["packages"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "pvgate-image"));
    if !has_image {
        return Err(ImageError::Workspace(
            "the current directory's cargo workspace has no package `pvgate-image`; run this \
             inside the pvgate repository"
                .to_string(),
        ));
    }
    Ok(Workspace {
        root: path("workspace_root")?,
        target_dir: path("target_directory")?,
    })
}

/// `path` as build.rs should see it: relative to the workspace root when
/// inside it (as a plain `cargo build` names it), else absolute.
fn for_build(ws: &Workspace, path: &Path) -> Result<String, CliError> {
    let real = path
        .canonicalize()
        .map_err(|e| CliError::arg(format!("cannot read `{}`: {e}", path.display())))?;
    let root = ws.root.canonicalize().unwrap_or_else(|_| ws.root.clone());
    Ok(match real.strip_prefix(&root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => real.display().to_string(),
    })
}

/// The build: cargo's arguments and the environment build.rs reads.
pub struct Build {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Where cargo leaves the library.
    pub library: PathBuf,
}

impl Build {
    /// The command as one would type it in the workspace root.
    pub fn shown(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            let _ = write!(s, "{k}={} ", shell_word(v));
        }
        s.push_str("cargo");
        for a in &self.args {
            let _ = write!(s, " {}", shell_word(a));
        }
        s
    }
}

/// A word quoted for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// The build: in a target directory of the policy's own,
/// `<target>/pvgate-image-build/<name>`, so images of two policies never
/// overwrite each other's library between a build and its check (and
/// rebuilding one is instant).
pub fn plan(ws: &Workspace, policy: &Path, target: Target, name: &str) -> Result<Build, CliError> {
    let build_dir = ws.target_dir.join("pvgate-image-build").join(name);
    let mut cargo_args: Vec<String> = ["build", "--release", "--package", "pvgate-image"]
        .map(String::from)
        .to_vec();
    let mut lib_dir = build_dir.clone();
    if target == Target::None {
        cargo_args.extend(["--target".to_string(), NONE_TRIPLE.to_string()]);
        lib_dir.push(NONE_TRIPLE);
    }
    cargo_args.extend(["--target-dir".to_string(), for_build_dir(ws, &build_dir)]);
    let mut env = vec![("PVGATE_POLICY", for_build(ws, policy)?)];
    if let Some(b) = load::baseline_setting().filter(|s| !s.trim().is_empty()) {
        env.push((
            pvgate_codegen::baseline::BASELINE_ENV,
            for_build(ws, Path::new(b.trim()))?,
        ));
    }
    Ok(Build {
        args: cargo_args,
        env,
        library: lib_dir.join("release").join(LIBRARY),
    })
}

/// The build directory as shown: relative to the workspace root if inside.
fn for_build_dir(ws: &Workspace, dir: &Path) -> String {
    dir.strip_prefix(&ws.root)
        .map_or_else(|_| dir.display().to_string(), |r| r.display().to_string())
}

/// Runs the build in the workspace root; cargo's progress and messages go
/// to stderr (its stdout too), so this command's stdout stays the summary.
pub fn run_build(ws: &Workspace, build: &Build) -> Result<(), ImageError> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root).args(&build.args);
    cmd.env_remove(pvgate_codegen::baseline::BASELINE_ENV);
    for (k, v) in &build.env {
        cmd.env(k, v);
    }
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        cmd.stdout(Stdio::from(fd));
    }
    let status = cmd
        .status()
        .map_err(|e| ImageError::Build(format!("`{}` did not start: {e}", build.shown())))?;
    if !status.success() {
        return Err(ImageError::Build(format!("`{}` ({status})", build.shown())));
    }
    Ok(())
}

/// `rustc -V` and the host triple (`rustc -vV`), run in the workspace root
/// so the pinned toolchain answers.
pub fn toolchain(ws: &Workspace) -> Result<(String, String), ImageError> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let text = output(
        Command::new(&rustc).current_dir(&ws.root).arg("-vV"),
        "rustc -vV",
    )
    .map_err(ImageError::Toolchain)?;
    let version = text.lines().next().unwrap_or_default().trim().to_string();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((version, host))
}
