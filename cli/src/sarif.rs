//! SARIF 2.1.0 output for `lint --format sarif`, so code-scanning tools
//! show findings on the policy's TOML lines.

use pvgate_codegen::Compiled;
use pvgate_codegen::diagnostic::line_col;
use serde_json::{Value, json};

use pvgate_review::lint::{Finding, LINTS, Severity};

/// The SARIF schema this output follows.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A SARIF log with one run holding the findings of every policy.
pub fn log(linted: &[(Compiled, Vec<Finding>)]) -> Value {
    let rules: Vec<Value> = LINTS
        .iter()
        .map(|l| {
            json!({
                "id": l.id.name(),
                "name": l.id.name(),
                "shortDescription": {"text": l.summary},
                "defaultConfiguration": {"level": level(l.severity)},
            })
        })
        .collect();
    let mut results = Vec::new();
    let mut artifacts = Vec::new();
    for (c, findings) in linted {
        artifacts.push(json!({"location": {"uri": uri(&c.path)}}));
        for f in findings {
            let (start_line, start_column) = line_col(&c.text, f.span.start);
            let (end_line, end_column) = line_col(&c.text, f.span.end);
            let rule_index = LINTS.iter().position(|l| l.id == f.lint).unwrap_or(0);
            results.push(json!({
                "ruleId": f.lint.name(),
                "ruleIndex": rule_index,
                "level": level(f.severity),
                "message": {"text": format!("{} (help: {})", f.message, f.help)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&c.path)},
                        "region": {
                            "startLine": start_line,
                            "startColumn": start_column,
                            "endLine": end_line,
                            "endColumn": end_column,
                        },
                    },
                }],
            }));
        }
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "pvgate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                },
            },
            "artifacts": artifacts,
            "results": results,
        }],
    })
}

/// A relative URI for a path (forward slashes, no leading `./`).
fn uri(path: &str) -> String {
    path.replace('\\', "/").trim_start_matches("./").to_string()
}
