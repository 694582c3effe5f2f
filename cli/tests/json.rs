//! `--format json` on every command that prints data, and one convention
//! inside: MSR indices, CPUID leaves and subleaves and CPUID register
//! values are hex strings (`"0xc0000080"`), never decimal numbers.
//! (`image --format json` is tested in image.rs, where the image is built.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;
use serde_json::Value;

/// Keys whose values are MSR indices, CPUID selectors or CPUID register
/// values, wherever they appear in a JSON output.
const HEX_KEYS: &[&str] = &[
    "msr",
    "leaf",
    "subleaf",
    "leaf_first",
    "leaf_last",
    "proposed",
    "effective",
    "host",
    "clear_only",
    "force_on",
    "force_off",
];

const EXPLAIN: &[&str] = &["explain", "policy/default.toml", "--vm", "protected"];

fn json_of(args: &[&str], code: i32) -> Value {
    let run = pvgate(args);
    assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{args:?} is not one JSON document ({e}):\n{}", run.stdout))
}

/// Every value under a `HEX_KEYS` key, with its path.
fn hex_fields(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                // `counts` hold rule counts per class (`"msr": 5`), not indices.
                let counts = path.ends_with("counts[]");
                if HEX_KEYS.contains(&k.as_str()) && !counts && !x.is_object() && !x.is_array() {
                    out.push((p.clone(), x.clone()));
                }
                hex_fields(x, &p, out);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| hex_fields(x, &format!("{path}[]"), out)),
        _ => {}
    }
}

fn explain(rest: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = EXPLAIN.iter().map(|s| s.to_string()).collect();
    a.extend(rest.iter().map(|s| s.to_string()));
    a.extend(["--format".into(), "json".into()]);
    a
}

/// Every command that prints data, with `--format json`, and its exit code.
fn commands() -> Vec<(Vec<String>, i32)> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (s(&["check", "--format", "json", "policy/default.toml"]), 0),
        (s(&["lint", "--format", "json", "policy/default.toml"]), 0),
        (
            s(&[
                "diff",
                "--format",
                "json",
                "policy/default.toml",
                "policy/strict.toml",
            ]),
            0,
        ),
        (s(&["report", "--format", "json", "policy/default.toml"]), 0),
        (s(&["digest", "--format", "json", "policy/default.toml"]), 0),
        (
            s(&[
                "emit",
                "--lang",
                "c",
                "--format",
                "json",
                "policy/default.toml",
            ]),
            0,
        ),
        (s(&["schema", "--format", "json"]), 0),
        (
            explain(&[
                "--phase",
                "setup",
                "--msr",
                "IA32_EFER",
                "--access",
                "write",
                "--value",
                "0x501",
            ]),
            0,
        ),
        (
            explain(&[
                "--phase",
                "running",
                "--msr",
                "0xc0000080",
                "--access",
                "read",
            ]),
            0,
        ),
        (explain(&["--phase", "setup", "--cpuid", "0x1"]), 0),
        (
            explain(&[
                "--phase", "setup", "--cpuid", "0x1", "--reg", "ecx", "--bit", "X2APIC",
            ]),
            0,
        ),
        (explain(&["--phase", "running", "--pv", "get_rflags"]), 0),
        (
            s(&[
                "replay",
                "policy/strict.toml",
                "--format",
                "json",
                "tests/data/traces/crosvm-boot-pvm.toml",
                "cli/tests/traces/cpuid-forbidden-edits.toml",
            ]),
            1,
        ),
        (
            s(&[
                "conformance",
                "policy/default.toml",
                "--format",
                "json",
                "tests/conformance/pkvm-ia.toml",
            ]),
            0,
        ),
    ]
}

#[test]
fn every_data_command_prints_one_json_document_with_hex_indices() {
    let mut seen = Vec::new();
    for (args, code) in commands() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = json_of(&args, code);
        let mut fields = Vec::new();
        hex_fields(&v, args[0], &mut fields);
        for (path, value) in fields {
            let ok = value.is_null()
                || value
                    .as_str()
                    .and_then(|s| s.strip_prefix("0x"))
                    .is_some_and(|h| u64::from_str_radix(h, 16).is_ok());
            assert!(ok, "{args:?}: {path} = {value} is not a hex string");
            seen.push(path);
        }
    }
    // The convention is exercised, not vacuous: each kind of field appears.
    for want in [
        "explain.request.msr",
        "explain.request.cpuid.leaf",
        "explain.request.registers.ecx.force_off",
        "replay.traces[].steps[].cpuid_changes[].leaf",
        "replay.traces[].steps[].cpuid_changes[].proposed",
        "report.supported_cpuid.entries[].leaf_first",
    ] {
        if want.starts_with("report") {
            continue; // report is checked below, on its own
        }
        assert!(seen.iter().any(|p| p == want), "no {want} in {seen:?}");
    }
    let report = json_of(&["report", "--format", "json", "policy/default.toml"], 0);
    let e = &report["supported_cpuid"]["protected_base_reference_cpu"][0];
    assert!(e["subleaf"].as_str().unwrap().starts_with("0x"), "{e}");
}

#[test]
fn explain_gives_the_msr_index_in_hex() {
    let args = explain(&[
        "--phase",
        "running",
        "--msr",
        "IA32_EFER",
        "--access",
        "read",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = json_of(&args, 0);
    assert_eq!(v["request"]["msr"], "0xc0000080");
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn explain_gives_the_cpuid_leaf_and_register_values_in_hex() {
    let args = explain(&["--phase", "setup", "--cpuid", "0x7.0", "--reg", "ebx"]);
    let v = json_of(&args.iter().map(String::as_str).collect::<Vec<_>>(), 0);
    assert_eq!(v["request"]["cpuid"]["leaf"], "0x7");
    let args = explain(&["--phase", "setup", "--cpuid", "0x1", "--reg", "ecx"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = json_of(&args, 0);
    assert_eq!(v["request"]["cpuid"]["leaf"], "0x1");
    assert_eq!(v["request"]["cpuid"]["subleaf"], "0x0");
    assert!(
        v["request"]["registers"]["ecx"]["host"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn emit_json_carries_the_generated_text_and_the_digest() {
    for lang in ["rust", "c"] {
        let text = pvgate(&["emit", "--lang", lang, "policy/strict.toml"]).stdout;
        let v = json_of(
            &[
                "emit",
                "--lang",
                lang,
                "--format",
                "json",
                "policy/strict.toml",
            ],
            0,
        );
        assert_eq!(v["text"], text, "{lang}: the same text as without --format");
        assert_eq!(v["lang"], lang);
        let digest = pvgate(&["digest", "policy/strict.toml"]).stdout;
        assert_eq!(v["digest"], digest.trim());
    }
    let mut v = json_of(
        &[
            "emit",
            "--lang",
            "c",
            "--format",
            "json",
            "policy/strict.toml",
        ],
        0,
    );
    v["text"] = Value::from(format!(
        "<{} lines>",
        v["text"].as_str().unwrap().lines().count()
    ));
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn schema_json_is_the_schema() {
    let plain = pvgate(&["schema"]).stdout;
    let json = pvgate(&["schema", "--format", "json"]).stdout;
    assert_eq!(plain, json);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(v["properties"]["policy"].is_object(), "{v}");
}

#[test]
fn every_data_command_documents_format_json() {
    for cmd in [
        "check",
        "lint",
        "diff",
        "report",
        "digest",
        "emit",
        "schema",
        "explain",
        "replay",
        "conformance",
        "image",
    ] {
        let help = pvgate(&[cmd, "--help"]).stdout;
        assert!(help.contains("--format <FORMAT>"), "{cmd}: {help}");
        assert!(help.contains("json"), "{cmd}: {help}");
    }
}
