//! The build proves the protected-VM baseline whatever the policy says:
//! a policy that leaves out the `include` and breaks an invariant fails the
//! build, and `PVGATE_BASELINE` naming an empty file fails it too. Runs
//! real `cargo build`s in a separate target directory.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    root().join("target").join("build-policy-tests")
}

fn build_with(policy: &str, baseline: Option<&str>) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--quiet", "--package", "pvgate", "--lib"])
        .env("PVGATE_POLICY", policy)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .env_remove("PVGATE_BASELINE");
    if let Some(b) = baseline {
        cmd.env("PVGATE_BASELINE", b);
    }
    cmd.output().expect("cargo runs")
}

#[test]
fn the_build_proves_the_baseline_without_an_include_and_refuses_an_empty_one() {
    let dir = target_dir().join("baseline");
    std::fs::create_dir_all(&dir).unwrap();

    // No include, and `set_regs` allowed on a running protected vCPU.
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replace("include = [\"invariants/protected-baseline.toml\"]\n", "")
        .replace(
            "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\"]",
            "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]",
        );
    assert!(!text.contains("include ="));
    let policy = dir.join("no-include.toml");
    std::fs::write(&policy, &text).unwrap();
    let out = build_with(policy.to_str().unwrap(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a policy breaking the baseline built an image"
    );
    assert!(
        stderr.contains(
            "invariant `pvm-running-state-sealed` (policy/invariants/protected-baseline.toml:"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("by rule `pvm-set-regs`"), "{stderr}");

    // An empty baseline is no baseline: refused.
    let empty = dir.join("empty-baseline.toml");
    std::fs::write(&empty, "# no invariants\n").unwrap();
    let out = build_with("policy/default.toml", Some(empty.to_str().unwrap()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an empty baseline built an image");
    assert!(
        stderr.contains("empty-baseline.toml` has no invariant"),
        "{stderr}"
    );
}
