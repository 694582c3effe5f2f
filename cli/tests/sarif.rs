//! `lint --format sarif` produces a SARIF 2.1.0 log with the fields the
//! specification requires (and code-scanning tools read) present and typed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;
use serde_json::Value;

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` must be a string in {v}"))
}

#[test]
fn sarif_log_has_the_required_shape_and_points_at_toml_lines() {
    let run = pvgate(&[
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "lint",
        "--format",
        "sarif",
        "cli/tests/fixtures/risky.toml",
        "policy/default.toml",
    ]);
    assert_eq!(run.code, 1, "risky.toml has lint errors");
    let log: Value = serde_json::from_str(&run.stdout).unwrap();

    // sarifLog: version (required), $schema, runs (required).
    assert_eq!(str_field(&log, "version"), "2.1.0");
    assert!(str_field(&log, "$schema").contains("sarif-2.1.0"));
    let runs = log["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let run0 = &runs[0];

    // run.tool.driver.name is required; rules are reportingDescriptors with an id.
    let driver = &run0["tool"]["driver"];
    assert_eq!(str_field(driver, "name"), "pvgate");
    let rules = driver["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for r in rules {
        assert!(!str_field(r, "id").is_empty());
        assert!(!str_field(&r["shortDescription"], "text").is_empty());
        assert!(
            ["error", "warning", "note"].contains(&str_field(&r["defaultConfiguration"], "level"))
        );
    }

    // results: message.text is required; ruleId/ruleIndex must agree with the rules.
    let results = run0["results"].as_array().unwrap();
    assert!(results.len() >= 10, "{} results", results.len());
    let mut uris = std::collections::BTreeSet::new();
    for res in results {
        assert!(!str_field(&res["message"], "text").is_empty());
        let id = str_field(res, "ruleId");
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            str_field(&rules[index], "id"),
            id,
            "ruleIndex must point at ruleId"
        );
        assert!(["error", "warning", "note"].contains(&str_field(res, "level")));
        let loc = &res["locations"].as_array().unwrap()[0]["physicalLocation"];
        let uri = str_field(&loc["artifactLocation"], "uri");
        assert!(
            !uri.starts_with('/') && !uri.contains('\\'),
            "relative URI: {uri}"
        );
        uris.insert(uri.to_string());
        let region = &loc["region"];
        for key in ["startLine", "startColumn", "endLine", "endColumn"] {
            assert!(region[key].as_u64().unwrap() >= 1, "{key} is 1-based");
        }
        assert!(region["endLine"].as_u64() >= region["startLine"].as_u64());
    }
    assert!(uris.contains("cli/tests/fixtures/risky.toml") && uris.contains("policy/default.toml"));
    let smep = results
        .iter()
        .find(|r| r["ruleId"] == "cpuid-security-bit")
        .unwrap();
    assert_eq!(smep["level"], "error");
    let text =
        std::fs::read_to_string(common::root().join("cli/tests/fixtures/risky.toml")).unwrap();
    let line = smep["locations"][0]["physicalLocation"]["region"]["startLine"]
        .as_u64()
        .unwrap() as usize;
    assert!(
        text.lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("leaf = 0x7"),
        "the result points at the rule's leaf line"
    );
}
