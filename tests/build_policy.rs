//! The build picks its policy from `PVGATE_POLICY`: the strict policy
//! builds into an image with a different digest, and a broken policy fails
//! the build with a located error. Runs real `cargo build`s in a separate
//! target directory (the first run compiles the dependencies once).

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    root().join("target").join("build-policy-tests")
}

fn build_with(policy: &str) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    Command::new(cargo)
        .current_dir(root())
        .args(["build", "--quiet", "--package", "pvgate", "--lib"])
        .env("PVGATE_POLICY", policy)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs")
}

/// Every `tables.rs` the builds in our target directory generated.
fn generated_tables(dir: &Path) -> Vec<String> {
    let build = dir.join("debug").join("build");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(build).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("out").join("tables.rs")) {
            out.push(text);
        }
    }
    out
}

fn digest_of(policy: &str) -> String {
    let c = pvgate_codegen::compile_file(root().join(policy))
        .unwrap_or_else(|e| panic!("{}", e.render()));
    pvgate_codegen::digest::hex(&pvgate_codegen::digest::digest(&c.ir))
}

#[test]
fn strict_builds_with_its_own_digest_and_a_broken_policy_fails_the_build() {
    // The strict policy builds, and the tables it generated carry its digest.
    let out = build_with("policy/strict.toml");
    assert!(
        out.status.success(),
        "strict build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let strict = digest_of("policy/strict.toml");
    assert_ne!(strict, digest_of("policy/default.toml"));
    let tables = generated_tables(&target_dir());
    assert!(
        tables
            .iter()
            .any(|t| t.contains(&strict) && t.contains("// Policy: policy/strict.toml")),
        "no generated tables carry the strict digest {strict}"
    );

    // A broken policy fails the build, naming the file, line and column.
    let broken = target_dir().join("broken.toml");
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replace("\"IA32_LSTAR\"", "\"IA32_LSTAT\"");
    std::fs::write(&broken, &text).unwrap();
    let line = text.lines().position(|l| l.contains("IA32_LSTAT")).unwrap() + 1;
    let col = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"IA32_LSTAT\"")
        .unwrap()
        + 1;
    let out = build_with(broken.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the broken policy built an image");
    assert!(stderr.contains("unknown MSR `IA32_LSTAT`"), "{stderr}");
    assert!(
        stderr.contains(&format!("broken.toml:{line}:{col}")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `IA32_LSTAR`?"), "{stderr}");
    assert!(
        stderr.contains("no image is built from an invalid policy"),
        "{stderr}"
    );
}
