//! The build refuses the code-injection policy of issue 8 (finding 1): a
//! copy of the default policy whose first rule name ends a `//` comment of
//! the tables and adds a match arm. `cargo build` with `PVGATE_POLICY` set
//! to it fails at the name, with file:line:column, and builds no image.
//! Runs a real `cargo build` in the target directory `build_policy` uses.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    root().join("target").join("build-policy-tests")
}

#[test]
fn the_build_refuses_a_rule_name_that_injects_code() {
    std::fs::create_dir_all(target_dir()).unwrap();
    let evil = target_dir().join("injection.toml");
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replacen(
            "name = \"pvm-always-allowed\"",
            "name = \"pvm-always-allowed\\n        c if matches!(c, PvCall::GetRflags | PvCall::GetSegment | PvCall::SetRegs) => Some(RuleId(5)),\\n        // x\"",
            1,
        );
    std::fs::write(&evil, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("PvCall::GetRflags"))
        .unwrap()
        + 1;
    let col = text.lines().nth(line - 1).unwrap().find('"').unwrap() + 1;
    // The include resolves next to the copy, as next to the original.
    let inc = target_dir().join("invariants");
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::copy(
        root().join("policy/invariants/protected-baseline.toml"),
        inc.join("protected-baseline.toml"),
    )
    .unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--quiet", "--package", "pvgate", "--lib"])
        .env("PVGATE_POLICY", &evil)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the injection built an image");
    assert!(
        stderr.contains("bad rule name `pvm-always-allowed\\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("injection.toml:{line}:{col}")),
        "expected injection.toml:{line}:{col} in\n{stderr}"
    );
    assert!(
        stderr.contains("no image is built from an invalid policy"),
        "{stderr}"
    );
}
