//! The committed JSON Schema (`policy/schema.json`) is the one schemars
//! generates from the types the loader deserializes; a stale file fails.
//! Regenerate: `PVGATE_BLESS=1 cargo test -p pvgate-codegen --test schema`
//! (or `cargo pvgate schema > policy/schema.json`).

use pvgate_codegen::model::{invariant_schema_json, schema_json};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_schemas_are_fresh() {
    for (file, generated) in [
        ("policy/schema.json", schema_json()),
        ("policy/invariants/schema.json", invariant_schema_json()),
    ] {
        let path = root().join(file);
        if std::env::var_os("PVGATE_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} is stale: run `PVGATE_BLESS=1 cargo test -p pvgate-codegen --test schema`"
        );
    }
}

#[test]
fn schema_describes_every_rule_array_and_closes_tables() {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    let props = &schema["properties"];
    for key in ["policy", "msr", "cpuid", "pv"] {
        assert!(props.get(key).is_some(), "schema lacks `{key}`");
    }
    let msr = &schema["$defs"]["MsrRule"];
    assert_eq!(msr["additionalProperties"], serde_json::Value::Bool(false));
    for key in [
        "msr",
        "range",
        "vm",
        "phase",
        "access",
        "verdict",
        "reason",
        "write-mask",
        "force-on",
        "force-off",
        "read-mask",
    ] {
        assert!(
            msr["properties"].get(key).is_some(),
            "MsrRule lacks `{key}`"
        );
    }
    let required: Vec<&str> = msr["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(required, ["vm", "phase", "access", "verdict", "reason"]);
}

#[test]
fn every_invariant_file_points_its_editor_at_its_schema() {
    for entry in std::fs::read_dir(root().join("policy/invariants")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("#:schema ./schema.json\n"),
                "{} lacks the #:schema line",
                path.display()
            );
        }
    }
}

#[test]
fn every_shipped_policy_points_its_editor_at_the_schema() {
    for entry in std::fs::read_dir(root().join("policy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("#:schema ./schema.json\n"),
                "{} lacks the #:schema line",
                path.display()
            );
        }
    }
}
