//! The tables of any valid policy compile without a warning (issue 8,
//! finding 6: a policy without CPUID or PV rules got `unused_imports` in
//! `tables.rs`). Each policy's tables are compiled the way `src/lib.rs`
//! includes them (`pub mod tables { include!(..) }`), against the gate
//! library this test was built with, by clippy-driver (or rustc when
//! clippy is not installed) with `-D warnings` and the workspace's lints.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pvgate_codegen::emit::{Shape, rust_shaped};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding this test's dependencies (`target/<profile>/deps`).
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.parent().expect("the test lives in deps/").to_path_buf()
}

/// The newest `libpvgate_gate-*.rlib` next to this test.
fn gate_rlib(deps: &Path) -> PathBuf {
    std::fs::read_dir(deps)
        .expect("deps/ is readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libpvgate_gate-") && n.ends_with(".rlib"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("the gate rlib was built for this test")
}

/// The compiler: clippy-driver when it runs (its lints too), else rustc.
fn compiler() -> (String, bool) {
    let clippy = Command::new("clippy-driver").arg("--version").output();
    if clippy.is_ok_and(|o| o.status.success()) {
        (String::from("clippy-driver"), true)
    } else {
        (String::from("rustc"), false)
    }
}

/// The lints of `[workspace.lints.clippy]` in the root `Cargo.toml`: the
/// no-panic list the image crate inherits, stated there once.
fn workspace_clippy_lints() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let lints: Vec<String> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.lints.clippy]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .collect();
    assert!(
        lints.len() >= 5,
        "[workspace.lints.clippy] not found: {lints:?}"
    );
    lints
}

/// Compiles `tables` as `src/lib.rs` does, denying every warning; the
/// compiler's messages when it fails.
fn warnings_of(tables: &str, label: &str) -> Result<(), String> {
    let dir = root()
        .join("target")
        .join("warning-free")
        .join(format!("{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tables.rs"), tables).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "//! Generated tables under test.\n\n/// The generated tables.\npub mod tables {\n    include!(\"tables.rs\");\n}\n",
    )
    .unwrap();
    let deps = deps_dir();
    let (cc, clippy) = compiler();
    let mut cmd = Command::new(&cc);
    cmd.current_dir(&dir)
        .args(["--edition", "2024", "--crate-type", "lib", "--crate-name"])
        .arg("tables_check")
        .args(["--emit", "metadata", "-o"])
        .arg(dir.join("libtables_check.rmeta"))
        .arg("--extern")
        .arg(format!("pvgate_gate={}", gate_rlib(&deps).display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .args(["-D", "warnings", "-W", "missing_docs"]);
    if clippy {
        for lint in workspace_clippy_lints() {
            cmd.arg("-W").arg(format!("clippy::{lint}"));
        }
    }
    let out = cmd.arg("lib.rs").output().expect("the compiler runs");
    if out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const HEADER: &str = "[policy]\nname = \"warning-free\"\ndescription = \"one class of rules\"\nformat = 1\ncpuid-violations = \"filter\"\n";
const MSR: &str = "[[msr]]\nmsr = \"IA32_TSC\"\nvm = [\"normal\"]\nphase = [\"setup\"]\naccess = [\"read\"]\nverdict = \"allow\"\nreason = \"a normal VM's host reads the TSC it set (pKVM-IA handle_pvm_msr_read)\"\n";
const CPUID: &str = "[[cpuid]]\nleaf = 0x1\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a normal VM's host sets leaf 1 (pKVM-IA pkvm_init_cpuid)\"\neax = { host = 0xffffffff }\n";
const PV: &str = "[[pv]]\ncall = \"vcpu_run\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a normal VM's host runs its vCPUs (pKVM-IA handle_vcpu_run)\"\n";

/// A baseline that requires nothing of the rules (one `forbid` about a
/// call no test policy names), so a policy of one rule class, or none, is
/// valid: the shipped baseline requires `vcpu_run` and `vm_destroy` rules,
/// but a team's own baseline (`PVGATE_BASELINE`) may not, and the tables
/// of every valid policy must compile without warnings.
const QUIET_BASELINE: &str = "[[invariant]]\nname = \"quiet-pvm-no-vcpu-reset\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\", \"teardown\"]\nforbid = \"pv-call\"\ncall = [\"vcpu_reset\"]\nreason = \"pKVM-IA v6.18 denies vcpu_reset on a protected vCPU in every phase\"\n";

fn compile(text: &str) -> pvgate_codegen::Ir {
    let baseline = pvgate_codegen::Baseline::from_text("quiet-baseline.toml", QUIET_BASELINE);
    pvgate_codegen::compile_in_dir_with(text, &root().join("policy"), &baseline)
        .unwrap_or_else(|e| panic!("{:#?}\n{text}", e.diagnostics))
}

/// Every failure, labelled, so one run shows them all.
fn check_all(cases: Vec<(String, String)>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(label, tables)| {
            warnings_of(tables, label)
                .err()
                .map(|e| format!("== {label}:\n{e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tables_of_one_rule_class_or_none_compile_without_warnings() {
    let policies = [
        ("only-msr", format!("{HEADER}{MSR}")),
        ("only-cpuid", format!("{HEADER}{CPUID}")),
        ("only-pv", format!("{HEADER}{PV}")),
        ("msr-and-cpuid", format!("{HEADER}{MSR}{CPUID}")),
        ("empty", HEADER.to_string()),
    ];
    let mut cases = Vec::new();
    for (label, text) in policies {
        let ir = compile(&text);
        for shape in [Shape::Match, Shape::Sorted, Shape::Bitmap, Shape::Auto] {
            cases.push((
                format!("{label}-{shape:?}"),
                rust_shaped(&ir, "policy/x.toml", shape),
            ));
        }
    }
    check_all(cases);
}

#[test]
fn tables_of_shipped_sampled_and_hostile_policies_compile_without_warnings() {
    let mut cases = Vec::new();
    for name in ["default.toml", "strict.toml"] {
        let text = std::fs::read_to_string(root().join("policy").join(name)).unwrap();
        cases.push((
            name.to_string(),
            pvgate_codegen::emit::rust(&compile(&text), name),
        ));
    }
    for seed in 0..4 {
        let text = pvgate_codegen::sample::random_policy(
            seed,
            pvgate_codegen::sample::SampleSize {
                msr_ranges: if seed % 2 == 0 { 8 } else { 100 },
                cpuid_leaves: 6,
            },
        );
        cases.push((
            format!("sample-{seed}"),
            pvgate_codegen::emit::rust(&compile(&text), "sample.toml"),
        ));
    }
    // Strings no front end should let through still compile cleanly: a
    // bidi control in a comment would trip rustc's deny-by-default lint.
    let hostile = "a\nb\r\"c\\d\0*/ /* \u{202e}\u{2066}\u{2028} é ??/ #";
    let mut ir = compile(&format!("{HEADER}{MSR}{CPUID}{PV}"));
    ir.name = hostile.to_string();
    for r in &mut ir.rules {
        r.name = hostile.to_string();
        r.reason = hostile.to_string();
    }
    cases.push((
        String::from("hostile"),
        pvgate_codegen::emit::rust(&ir, &format!("dir/{hostile}/x.toml")),
    ));
    check_all(cases);
}

/// The tables of every policy shape are as rustfmt would write them (the
/// import list is built per policy).
#[test]
fn tables_of_one_rule_class_or_none_are_rustfmt_clean() {
    for body in ["", MSR, CPUID, PV, &format!("{MSR}{PV}")] {
        let ir = compile(&format!("{HEADER}{body}"));
        let code = pvgate_codegen::emit::rust(&ir, "policy/x.toml");
        let mut child = match Command::new("rustfmt")
            .args(["--edition", "2024", "--emit", "stdout"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: cannot run rustfmt ({e})");
                return;
            }
        };
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(code.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "rustfmt failed");
        let formatted = String::from_utf8(out.stdout).unwrap();
        let diff = code
            .lines()
            .zip(formatted.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("emitted: {a}\nrustfmt: {b}"));
        assert!(formatted == code, "not rustfmt-clean:\n{diff:?}");
    }
}
