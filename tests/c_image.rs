//! The image as C sees it: builds the `pvgate-image` staticlib, compiles C
//! programs with `cc` against `image/include/pvgate.h`, links them
//! (`-Wl,--gc-sections`, the linux-gnu pitfall) and runs them:
//!
//! * `image/tests/c/crosvm_boot.c` (release build): crosvm's protected
//!   boot, then a denied write after the first run;
//! * `image/tests/c/vm_start.c` (release build): `vm_finalize`, the
//!   host's refused runs and the guest's `start_secondary`, through the
//!   exported functions and the hypercall numbers.
//! * `image/tests/c/bad_args.c` against a debug and a release build: a
//!   buggy caller passing every bad argument the C ABI can receive (NULL
//!   and misaligned pointers, huge counts, garbage handles, unknown calls).
//!   Each must be refused with its errno and leak no slot. The debug build
//!   keeps Rust's precondition checks on, so undefined behaviour such as a
//!   misaligned slice aborts it instead of passing silently.
//!
//! And, without C: the release staticlib's symbols (`nm -C`) and bytes hold
//! no part of the CPU dump parser, so `pvgate_init` cannot parse text.
//!
//! Skips, saying so, when `cc` (or, for the symbol check, `nm`) is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip() -> bool {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        println!("SKIPPED c_image: the C link test is written for x86_64 linux");
        return true;
    }
    if !have_cc() {
        println!("SKIPPED c_image: no `cc` on PATH (install gcc or clang to run the C ABI test)");
        return true;
    }
    false
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the staticlib with `profile` (`release` or `dev`) into a target
/// directory of its own (the outer `cargo test` holds the lock of the
/// shared one while tests run) and returns the library's path.
fn build_image(profile: &str) -> PathBuf {
    let target = root().join("target").join("c-image");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--profile", profile, "--package", "pvgate-image"])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build --profile {profile} -p pvgate-image failed"
    );
    let dir = if profile == "dev" { "debug" } else { profile };
    let lib = target.join(dir).join("libpvgate_image.a");
    assert!(lib.is_file(), "{} was not built", lib.display());
    lib
}

/// Compiles `image/tests/c/<program>.c` against `lib`, runs it and returns
/// its standard output; fails unless it exits 0 and prints `PASSED`.
fn run_c(program: &str, lib: &Path, exe_name: &str) -> String {
    let exe = lib.with_file_name(exe_name);
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("image/include"))
        .arg(root().join("image/tests/c").join(format!("{program}.c")))
        .arg(lib)
        .args(["-Wl,--gc-sections", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("the C program runs");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    println!("{stdout}");
    assert!(
        run.status.success(),
        "{exe_name} failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.lines().any(|l| l == "PASSED"), "{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
    stdout
}

#[test]
fn a_c_program_links_the_image_and_replays_the_protected_crosvm_boot() {
    if skip() {
        return;
    }
    let lib = build_image("release");
    let stdout = run_c("crosvm_boot", &lib, "crosvm_boot");
    assert!(
        stdout.contains("ok   vcpu_after_set_cpuid accepted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   set_msr 0x1a0 = 0x1 -> -1 (want -1)"),
        "the denied write after run: {stdout}"
    );
    // The image carries the digest of the policy it was built from.
    let digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("digest "))
        .expect("digest line");
    assert_eq!(digest, pvgate::POLICY_DIGEST_HEX);
}

#[test]
fn a_c_program_starts_a_protected_vm_as_pkvm_ia_does() {
    if skip() {
        return;
    }
    let lib = build_image("release");
    let stdout = run_c("vm_start", &lib, "vm_start");
    for check in [
        "ok   the boot vcpu does not run before vm_finalize",
        "ok   the host cannot run a secondary",
        "ok   start address not a page -> -EFAULT",
        "ok   the guest starts vcpu 1",
        "ok   vcpu 1 starts vcpu 2 (hypercall)",
        "ok   start_secondary in a normal vm -> -EINVAL",
    ] {
        assert!(
            stdout.lines().any(|l| l == check),
            "missing `{check}`:
{stdout}"
        );
    }
}

/// The checks `bad_args.c` must report, so a check dropped from the
/// program is noticed.
const BAD_ARG_CHECKS: &[&str] = &[
    "create_vm with a NULL or misaligned handle pointer -> -EFAULT (0 wrong)",
    "then all 8 vm slots can still be created (no slot leaked)",
    "create_vcpu with a NULL or misaligned handle pointer -> -EFAULT (0 wrong)",
    "then all 8 vcpu slots of the vm can still be created (no slot leaked)",
    "hypercall with misaligned regs -> -EFAULT",
    "supported cpuid into a misaligned buffer -> -EFAULT",
    "set cpuid from a misaligned buffer -> -EFAULT",
    "a shared count above 256 entries (up to SIZE_MAX) -> -EINVAL (0 wrong)",
    "NULL shared buffer with a count of 3 -> -EFAULT",
    "audit_event into a misaligned buffer -> -EFAULT",
    "garbage handles -> -EINVAL",
    "unknown call numbers -> -EINVAL",
];

fn bad_arguments_against(profile: &str, exe_name: &str) {
    if skip() {
        return;
    }
    let lib = build_image(profile);
    let stdout = run_c("bad_args", &lib, exe_name);
    for check in BAD_ARG_CHECKS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok   ") && l.contains(check)),
            "missing check `{check}`:\n{stdout}"
        );
    }
}

#[test]
fn every_bad_c_argument_is_refused_without_a_leak_in_a_release_build() {
    bad_arguments_against("release", "bad_args_release");
}

#[test]
fn every_bad_c_argument_is_refused_without_a_leak_in_a_debug_build() {
    bad_arguments_against("dev", "bad_args_debug");
}

/// Demangled symbol-name fragments of the CPU dump parser
/// (`pvgate_trace::CpuDump::parse` and its helpers): none may appear in the
/// image. Matched case-sensitively against every line of `nm -C`.
const PARSER_SYMBOLS: &[&str] = &["CpuDump", "cpu_dump", "pvgate_trace"];

/// Bytes only the parser or the dump text would bring into the image: the
/// parser's error wording and the dump file's header.
const PARSER_TEXT: &[&str] = &[
    "is not `leaf subleaf eax ebx ecx edx`",
    "pvgate CPU model \"reference\"",
];

/// The lines of `nm -C lib` naming any of `fragments`.
fn symbols_matching(lib: &Path, fragments: &[&str]) -> (usize, Vec<String>) {
    let out = Command::new("nm")
        .arg("-C")
        .arg(lib)
        .output()
        .expect("nm runs");
    assert!(
        out.status.success(),
        "nm -C {} failed:\n{}",
        lib.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let hits = text
        .lines()
        .filter(|l| fragments.iter().any(|f| l.contains(f)))
        .map(str::to_string)
        .collect();
    (text.lines().count(), hits)
}

#[test]
fn the_image_links_no_cpu_dump_parser() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        println!("SKIPPED image symbols: the check is written for x86_64 linux");
        return;
    }
    if Command::new("nm").arg("--version").output().is_err() {
        println!("SKIPPED image symbols: no `nm` on PATH (install binutils)");
        return;
    }
    let lib = build_image("release");
    // The check can see: the image's own exports are there, demangled.
    let (total, exports) = symbols_matching(&lib, &["pvgate_init", "pvgate_hyp::"]);
    assert!(
        total > 0 && exports.iter().any(|l| l.ends_with(" pvgate_init")),
        "{exports:?}"
    );
    assert!(
        exports.iter().any(|l| l.contains("pvgate_hyp::")),
        "nm -C did not demangle"
    );
    let (_, parser) = symbols_matching(&lib, PARSER_SYMBOLS);
    assert!(
        parser.is_empty(),
        "the CPU dump parser is linked into the image:\n{}",
        parser.join("\n")
    );
    let bytes = std::fs::read(&lib).expect("the staticlib reads");
    for text in PARSER_TEXT {
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "the image carries `{text}`"
        );
    }
}
