//! A file name holding a line break cannot add a cargo instruction: the
//! build prints `cargo:rerun-if-changed=PATH` for every file a policy
//! includes, and a name such as `x\ncargo:warning=...` used to become an
//! instruction of its own (cargo obeys `rustc-cfg`, `rustc-env`,
//! `rustc-link-arg`, ... the same way). The build now fails instead.
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
fn an_include_path_with_a_line_break_adds_no_cargo_instruction() {
    let dir = target_dir().join("line-break");
    let odd = "inv\ncargo:warning=INJECTED-BY-A-FILE-NAME";
    std::fs::create_dir_all(dir.join(odd)).unwrap();
    std::fs::copy(
        root().join("policy/invariants/protected-baseline.toml"),
        dir.join(odd).join("base.toml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replacen(
            "include = [\"invariants/protected-baseline.toml\"]",
            "include = [\"inv\\ncargo:warning=INJECTED-BY-A-FILE-NAME/base.toml\"]",
            1,
        );
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, &text).unwrap();
    // Today the front end reads the include; were it to refuse such a name
    // itself, the build must fail all the same.
    let front_end_refuses = pvgate_codegen::compile_file(&policy).is_err();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--package", "pvgate", "--lib"])
        .env("PVGATE_POLICY", &policy)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning: pvgate@0.1.0: INJECTED"),
        "a file name added a cargo instruction:\n{stderr}"
    );
    assert!(!out.status.success(), "built with an unnameable include");
    if !front_end_refuses {
        assert!(stderr.contains("holds a line break"), "{stderr}");
    }
}
