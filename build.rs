//! Compiles the policy named by `PVGATE_POLICY` (relative to the workspace
//! root; default `policy/default.toml`) into `OUT_DIR/tables.rs`, proving
//! the protected-VM baseline named by `PVGATE_BASELINE` (relative to the
//! workspace root; default: the shipped
//! `policy/invariants/protected-baseline.toml`) whether or not the policy
//! includes it. An invalid policy, or a baseline that is refused, fails the
//! build with located, underlined errors: there is never an image built
//! from a policy that does not compile.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_POLICY: &str = "policy/default.toml";

fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed=PVGATE_POLICY");
    println!(
        "cargo:rerun-if-env-changed={}",
        pvgate_codegen::baseline::BASELINE_ENV
    );
    let Some(root) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        eprintln!("error: CARGO_MANIFEST_DIR is not set (build.rs runs under cargo)");
        return ExitCode::FAILURE;
    };
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        eprintln!("error: OUT_DIR is not set (build.rs runs under cargo)");
        return ExitCode::FAILURE;
    };
    let shown = std::env::var("PVGATE_POLICY").unwrap_or_else(|_| DEFAULT_POLICY.to_string());
    let path = root.join(&shown);
    let Some(policy) = one_line(&path) else {
        return ExitCode::FAILURE;
    };
    println!("cargo:rerun-if-changed={policy}");
    // Tests compare the image with the interpreter over the same file.
    println!("cargo:rustc-env=PVGATE_POLICY_FILE={policy}");

    let setting = std::env::var(pvgate_codegen::baseline::BASELINE_ENV).ok();
    let baseline = match pvgate_codegen::Baseline::from_setting(&root, setting.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "error: no image is built without a usable protected-VM baseline ({}={})",
                pvgate_codegen::baseline::BASELINE_ENV,
                setting.unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
    };
    if let Some(s) = setting.as_deref().filter(|s| !s.trim().is_empty()) {
        println!("cargo:rerun-if-changed={}", root.join(s.trim()).display());
    }
    let compiled = match pvgate_codegen::compile_file_with(&path, &shown, &baseline) {
        Ok(c) => c,
        Err(e) => {
            let rendered = match e {
                pvgate_codegen::LoadError::Invalid { errors, text, .. } => {
                    errors.render(&shown, &text)
                }
                other => other.render(),
            };
            eprintln!("{rendered}");
            eprintln!("error: no image is built from an invalid policy (PVGATE_POLICY={shown})");
            return ExitCode::FAILURE;
        }
    };
    for included in &compiled.ir.included {
        let Some(included) = one_line(&root.join(included)) else {
            return ExitCode::FAILURE;
        };
        println!("cargo:rerun-if-changed={included}");
    }
    let tables = pvgate_codegen::emit::rust(&compiled.ir, &shown);
    if let Err(e) = write_if_changed(&out_dir.join("tables.rs"), &tables) {
        eprintln!("error: cannot write the generated tables: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A path for a `cargo:` instruction, which ends at a line break: a path
/// holding one (a policy may name such a file) would add an instruction
/// of its own, so it fails the build instead.
fn one_line(path: &Path) -> Option<String> {
    let shown = path.display().to_string();
    if shown.contains(['\n', '\r']) {
        eprintln!(
            "error: the path {shown:?} holds a line break; cargo build instructions cannot name it"
        );
        return None;
    }
    Some(shown)
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text)
}
