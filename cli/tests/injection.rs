//! `pvgate check`, `lint` and `emit` refuse the code-injection policy of
//! issue 8 (finding 1): a copy of the default policy whose first rule name
//! would end a `//` comment of the Rust tables and add a match arm. Each
//! names the file, line and column of the name; none prints tables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pvgate, root};

#[test]
fn check_lint_and_emit_refuse_a_rule_name_that_injects_code() {
    let dir = std::env::temp_dir().join(format!("pvgate-injection-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("invariants")).unwrap();
    std::fs::copy(
        root().join("policy/invariants/protected-baseline.toml"),
        dir.join("invariants/protected-baseline.toml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(root().join("policy/default.toml"))
        .unwrap()
        .replacen(
            "name = \"pvm-always-allowed\"",
            "name = \"pvm-always-allowed\\n        c if matches!(c, PvCall::GetRflags | PvCall::GetSegment | PvCall::SetRegs) => Some(RuleId(5)),\\n        // x\"",
            1,
        );
    let evil = dir.join("injection.toml");
    std::fs::write(&evil, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("PvCall::GetRflags"))
        .unwrap()
        + 1;
    let col = text.lines().nth(line - 1).unwrap().find('"').unwrap() + 1;
    let evil = evil.to_str().unwrap();
    for args in [
        vec!["check", evil],
        vec!["lint", evil],
        vec!["emit", "--lang", "rust", evil],
        vec!["emit", "--lang", "c", evil],
    ] {
        let run = pvgate(&args);
        assert_eq!(
            run.code, 2,
            "{args:?} accepted the injection:\n{}",
            run.stdout
        );
        assert!(
            run.stderr.contains("bad rule name `pvm-always-allowed\\n"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("a line break or control character cannot appear in a name"),
            "{args:?} does not name the line break: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("injection.toml:{line}:{col}")),
            "{args:?}: expected injection.toml:{line}:{col} in\n{}",
            run.stderr
        );
        assert!(!run.stdout.contains("RuleId"), "{args:?} printed tables");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
