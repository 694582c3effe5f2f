//! Generates `OUT_DIR/reference_cpu.rs`: the `reference` CPU model's CPUID
//! entries and IA32_MCG_CAP as Rust `const` items, from the recorded dump
//! `tests/data/cpu/xeon-gold-6252.cpuid` (relative to the workspace root).
//!
//! The dump is parsed here, on the build host, by `pvgate_trace::CpuDump`,
//! so the no_std image holds data and no text parser: `pvgate_init` builds
//! the model from the const table. A dump that does not parse fails the
//! build, naming the file and line.

use std::path::PathBuf;
use std::process::ExitCode;

/// The reference CPU's dump, relative to the workspace root.
const REFERENCE_DUMP: &str = "tests/data/cpu/xeon-gold-6252.cpuid";

fn main() -> ExitCode {
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        eprintln!("error: CARGO_MANIFEST_DIR is not set (build.rs runs under cargo)");
        return ExitCode::FAILURE;
    };
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        eprintln!("error: OUT_DIR is not set (build.rs runs under cargo)");
        return ExitCode::FAILURE;
    };
    let path = manifest.join("..").join(REFERENCE_DUMP);
    println!("cargo:rerun-if-changed={}", path.display());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{REFERENCE_DUMP}`: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dump = match pvgate_trace::CpuDump::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {REFERENCE_DUMP}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = pvgate_trace::cpu_table_rust(&dump, REFERENCE_DUMP, "image/build.rs");
    let out = out_dir.join("reference_cpu.rs");
    if let Err(e) = std::fs::write(&out, code) {
        eprintln!("error: cannot write `{}`: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
