//! The broken-policy corpus: every file under tests/broken/ must fail
//! `check` with exit 2 and a located error (file:line:col), never a panic.
//! Each file ends with `# expect-error: MESSAGE`, `# expect-at: LINE:COL`
//! and, where the error has a hint, `# expect-help: HINT`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{pvgate, root};

#[test]
fn every_broken_policy_fails_with_a_located_error_and_exit_2() {
    let dir = root().join("cli/tests/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus has only {} policies",
        files.len()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{} has no `{key}` line", path.display()))
                .to_string()
        };
        let (message, at) = (expect("# expect-error:"), expect("# expect-at:"));
        let name = format!(
            "cli/tests/broken/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let run = pvgate(&["check", &name]);
        assert_eq!(run.code, 2, "{name}: exit code\n{}", run.stderr);
        assert!(
            run.stdout.is_empty(),
            "{name}: nothing on stdout for an invalid policy"
        );
        assert!(
            run.stderr.contains(&format!("error: {message}")),
            "{name}: expected `{message}` in\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("--> {name}:{at}")),
            "{name}: expected location {at} in\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("= at "),
            "{name}: the `-->` header is the only location line:\n{}",
            run.stderr
        );
        if let Some(help) = text.lines().find_map(|l| l.strip_prefix("# expect-help:")) {
            assert!(
                run.stderr.contains(&format!("help: {}", help.trim())),
                "{name}: expected help `{help}` in\n{}",
                run.stderr
            );
        }

        // The JSON form carries the same location.
        let json = pvgate(&["check", "--format", "json", &name]);
        assert_eq!(json.code, 2, "{name}: json exit code");
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let first = &v[0]["errors"][0];
        assert_eq!(v[0]["valid"], false);
        let (line, col) = at.split_once(':').unwrap();
        assert_eq!(first["line"].to_string(), line, "{name}: json line");
        assert_eq!(first["column"].to_string(), col, "{name}: json column");
        assert_eq!(first["message"], message.as_str(), "{name}: json message");
    }
}

#[test]
fn the_corpus_covers_the_mistakes_reviewers_make() {
    let expectations: Vec<String> = std::fs::read_dir(root().join("cli/tests/broken"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let has = |needle: &str| expectations.iter().any(|t| t.contains(needle));
    for needle in [
        "did you mean `IA32_LSTAR`?",
        "unknown phase `runing`",
        "unknown VM kind",
        "bad number `0x1G0`",
        "bad number `0x+1A0`",
        "TOML integers are signed 64-bit",
        "an MSR index is at most 0xFFFFFFFF",
        "inverted MSR range",
        "empty VM kind list",
        "is out of range",
        "rules overlap",
        "duplicate rule",
        "rule has no `reason`",
        "rule reason `TODO` says nothing",
        "rule reason `TODO.` says nothing",
        "rule reason `brand string` says nothing",
        "`min-vector` on a `ignore` rule",
        "named bits on a rule for every subleaf",
        "`write-mask` on a rule without `write` access",
        "`read-mask` on a rule without `read` access",
        "is wider than CPUID",
        "`write-mask` on a `deny` rule",
        "`ignore` is not a CPUID verdict",
        "unknown key",
    ] {
        assert!(has(needle), "no broken policy covers `{needle}`");
    }
}

#[test]
fn a_missing_file_is_unusable_input() {
    let run = pvgate(&["check", "cli/tests/broken/no-such-file.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("cannot read policy `cli/tests/broken/no-such-file.toml`"),
        "{}",
        run.stderr
    );
}
