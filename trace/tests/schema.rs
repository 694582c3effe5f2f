//! The committed JSON Schema of the vector format
//! (`tests/conformance/schema.json`) is the one the loader's key tables
//! generate; a stale file fails. Every shipped vector file validates
//! against it, and a file with an unknown key does not.
//! Regenerate: `PVGATE_BLESS=1 cargo test -p pvgate-trace --test schema`
//! (or `cargo pvgate schema --vectors > tests/conformance/schema.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::PathBuf;

use pvgate_trace::{parse_vectors, vector_schema_json};

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SCHEMA: &str = "tests/conformance/schema.json";

#[test]
fn the_committed_vector_schema_is_fresh() {
    let path = root().join(SCHEMA);
    let generated = vector_schema_json();
    if std::env::var_os("PVGATE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{SCHEMA} is stale: run `PVGATE_BLESS=1 cargo test -p pvgate-trace --test schema`"
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&vector_schema_json()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

fn as_json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

/// The shipped vector files: every `pvgate-conformance/1` file under
/// tests/conformance.
fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/conformance"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("format = \"pvgate-conformance/1\"")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_vector_file_validates_against_the_schema() {
    let v = validator();
    let files = shipped();
    assert!(files.len() >= 4, "found only {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // The loader takes it too: the schema and the loader agree on it.
        parse_vectors(&text, &path.display().to_string()).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

const GOOD: &str = r#"
format = "pvgate-conformance/1"
title = "t"

[[case]]
vm = "protected"
phase = "setup"
cpuid = "0x1"
reg = "ebx"
bits = "0xFFFF_FF00"
expect = "host"
"#;

#[test]
fn an_unknown_key_or_a_wrong_value_fails_the_schema_and_the_loader() {
    let v = validator();
    assert!(v.is_valid(&as_json(GOOD)));
    parse_vectors(GOOD, "good.toml").unwrap();
    for (bad, why) in [
        (GOOD.replace("bits =", "bitz ="), "unknown key in a case"),
        (
            GOOD.replace("title = \"t\"", "title = \"t\"\ntitel = \"u\""),
            "unknown top-level key",
        ),
        (
            GOOD.replace("pvgate-conformance/1", "pvgate-conformance/2"),
            "wrong format",
        ),
        (
            GOOD.replace("\"protected\"", "\"protectd\""),
            "unknown VM kind",
        ),
        (
            GOOD.replace("\"0xFFFF_FF00\"", "\"0x1_0000_0000\""),
            "mask wider than 32 bits",
        ),
    ] {
        assert!(
            !v.is_valid(&as_json(&bad)),
            "the schema took a file with {why}"
        );
        assert!(
            parse_vectors(&bad, "bad.toml").is_err(),
            "the loader took a file with {why}"
        );
    }
}

#[test]
fn the_schema_describes_every_key_the_loader_takes() {
    let schema: serde_json::Value = serde_json::from_str(&vector_schema_json()).unwrap();
    let case = &schema["$defs"]["Case"]["properties"];
    for key in [
        "vm",
        "phase",
        "cite",
        "pv",
        "msr",
        "access",
        "cpuid",
        "reg",
        "bit",
        "bits",
        "preamble",
        "expect_guest",
    ] {
        let s = case
            .get(key)
            .unwrap_or_else(|| panic!("Case lacks `{key}`"));
        assert!(
            s.as_object().is_some_and(|o| !o.is_empty()),
            "`{key}` has an empty schema"
        );
    }
    for (key, s) in case.as_object().unwrap() {
        assert!(
            s.as_object().is_some_and(|o| !o.is_empty()),
            "`{key}` has an empty schema"
        );
    }
}
