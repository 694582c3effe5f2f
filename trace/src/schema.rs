//! The JSON Schema of the `pvgate-conformance/1` vector format
//! (`docs/conformance.md`), as committed in `tests/conformance/schema.json`
//! and printed by `cargo pvgate schema --vectors`. The key lists come from
//! the loader's own tables, so a key the loader accepts is never missing
//! from the schema and an unknown key is refused by both.

use pvgate_codegen::number;
use pvgate_gate::PvCall;
use serde_json::{Map, Value, json};

use crate::load::{BITS_KEYS, CALL_KEYS, EDIT_KEYS, EXPECT_NAMES, KIND_NAMES};
use crate::vectors::{CASE_KEYS, CPUID_EXPECT, MSR_EXPECT, VECTOR_FORMAT};

/// A number of `bits` bits in the one numeric grammar.
fn number_of(bits: u32) -> Value {
    let max = number::max_of(bits).min(number::TOML_INTEGER_MAX);
    json!({
        "description": format!(
            "A number of {bits} bits: a TOML integer, or a string of `0x` and 1 to {} hex digits (`_` only between digits).",
            number::hex_digits(bits)
        ),
        "anyOf": [
            { "type": "integer", "minimum": 0, "maximum": max },
            { "type": "string", "pattern": number::schema_pattern(bits) }
        ]
    })
}

/// A number or a name (an MSR, a subleaf `"all"`, a CPUID feature, an
/// errno): the loader checks the name.
fn number_or_name(bits: u32, what: &str) -> Value {
    json!({
        "description": format!("A number of {bits} bits or {what}."),
        "anyOf": [ { "$ref": format!("#/$defs/Number{bits}") }, { "type": "string", "pattern": "^[A-Za-z_]" } ]
    })
}

/// The schema of one key of a case or a call.
fn key_schema(key: &str) -> Value {
    let n = |bits: u32| json!({ "$ref": format!("#/$defs/Number{bits}") });
    match key {
        "vm" => json!({ "description": "The VM kind.", "enum": KIND_NAMES }),
        "phase" => {
            json!({ "description": "The phase the request is made in.", "enum": ["setup", "running", "teardown"] })
        }
        "cite" => {
            json!({ "description": "The pKVM-IA (or KVM) function the expectation comes from.", "type": "string" })
        }
        "note" => json!({ "description": "Free text.", "type": "string" }),
        "hyp" => {
            json!({ "description": "true: run through hyp; false: decision-only.", "type": "boolean" })
        }
        "vcpus" => {
            json!({ "description": "How many vCPUs the VM of a hyp case has.", "type": "integer", "minimum": 1, "maximum": crate::model::MAX_TRACE_VCPUS })
        }
        "preamble" => {
            json!({ "description": "Calls that replace the driving to the case's phase.", "type": "array", "items": { "$ref": "#/$defs/Call" } })
        }
        "access" => {
            json!({ "description": "A decision-only MSR case's access.", "enum": ["read", "write"] })
        }
        "effective" => {
            json!({ "description": "The effective value an allowed MSR write must have (forced bits applied).", "$ref": "#/$defs/Number64" })
        }
        "reg" => {
            json!({ "description": "A decision-only CPUID case's register.", "enum": ["eax", "ebx", "ecx", "edx"] })
        }
        "bit" => {
            json!({ "description": "A decision-only CPUID case's bit: 0..=31 or a feature name (exactly one of `bit`, `bits`).", "anyOf": [ { "type": "integer", "minimum": 0, "maximum": 31 }, { "type": "string", "pattern": "^[A-Za-z_]" } ] })
        }
        "bits" => {
            json!({ "description": "A decision-only CPUID case's mask: every bit of it has the mode (exactly one of `bit`, `bits`; not zero).", "$ref": "#/$defs/Number32" })
        }
        "pv" => {
            json!({ "description": "The host PV call.", "enum": PvCall::ALL.iter().map(|c| c.name()).collect::<Vec<_>>() })
        }
        "guest" => {
            json!({ "description": "A guest call (made by the running guest).", "enum": ["start_secondary"] })
        }
        "vcpu" => {
            json!({ "description": "The vCPU index the call is made on.", "$ref": "#/$defs/Number8" })
        }
        "msr" => number_or_name(32, "an MSR name of the registry"),
        "value" => n(64),
        "seg" => json!({ "description": "A segment register.", "type": "string" }),
        "selector" => n(16),
        "base" | "root" | "mcg_cap" | "pvmfw" => n(64),
        "limit" | "ar" | "apic_id" | "start_ip" | "size" => n(32),
        "regs" => {
            json!({ "description": "`set_regs`: general registers (rax … r15, rip) and values.", "type": "object", "additionalProperties": n(64) })
        }
        "level" | "vector" => n(8),
        "soft" | "for_injection" => json!({ "type": "boolean" }),
        "error" => {
            json!({ "description": "`complete_emulated_msr`'s result (an int).", "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        "cpuid" => json!({
            "description": "A decision-only case's `\"LEAF[.SUBLEAF]\"`, or a `vcpu_after_set_cpuid` call's table.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "from": { "type": "string" },
                        "edits": { "type": "array", "items": { "$ref": "#/$defs/Edit" } },
                        "expect_effective": { "type": "array", "items": { "$ref": "#/$defs/Bits" } }
                    },
                    "required": ["from"],
                    "additionalProperties": false
                }
            ]
        }),
        "expect" => json!({
            "description": "A decision-only case's verdict or CPUID mode, or a hyp case's outcome.",
            "enum": expect_names()
        }),
        "errno" => number_or_name(64, "an errno name (EPERM, EINVAL, ...)"),
        "expect_value" => n(64),
        "expect_effective" => json!({ "type": "array", "items": { "$ref": "#/$defs/Bits" } }),
        "expect_guest" => {
            json!({ "description": "hyp's copy of the vCPU: field and value.", "type": "object", "additionalProperties": n(64) })
        }
        _ => json!({}),
    }
}

/// Every name `expect` takes, in any kind of case.
fn expect_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for n in EXPECT_NAMES.iter().chain(MSR_EXPECT).chain(CPUID_EXPECT) {
        if !names.contains(n) {
            names.push(n);
        }
    }
    names
}

/// An object of `keys`, closed.
fn object(keys: &[&str], required: &[&str], description: &str) -> Value {
    let mut props = Map::new();
    for k in keys {
        props.insert((*k).to_string(), key_schema(k));
    }
    json!({
        "description": description,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false
    })
}

/// A CPUID edit or `expect_effective` entry.
fn bits_object(keys: &[&str], description: &str) -> Value {
    let mut props = Map::new();
    for k in keys {
        let v = match *k {
            "leaf" => json!({ "$ref": "#/$defs/Number32" }),
            "subleaf" => number_or_name(32, "`all`"),
            "reg" => json!({ "enum": ["eax", "ebx", "ecx", "edx"] }),
            _ => json!({ "$ref": "#/$defs/Number32" }),
        };
        props.insert((*k).to_string(), v);
    }
    json!({
        "description": description,
        "type": "object",
        "properties": props,
        "required": ["leaf", "reg"],
        "additionalProperties": false
    })
}

/// The JSON Schema of a `pvgate-conformance/1` file, pretty-printed, as
/// committed in `tests/conformance/schema.json`.
pub fn vector_schema_json() -> String {
    let case_keys: Vec<&str> =
        CALL_KEYS
            .iter()
            .chain(CASE_KEYS)
            .copied()
            .fold(Vec::new(), |mut v, k| {
                if !v.contains(&k) {
                    v.push(k);
                }
                v
            });
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pvgate conformance vectors",
        "description": "pvgate-conformance/1: host requests and what a team requires of each (docs/conformance.md). A case is decision-only or a hyp case; which is decided by its keys, checked by the loader.",
        "type": "object",
        "properties": {
            "format": { "description": "The format.", "const": VECTOR_FORMAT },
            "title": { "description": "One line.", "type": "string" },
            "case": { "description": "The cases.", "type": "array", "items": { "$ref": "#/$defs/Case" } }
        },
        "required": ["format", "title"],
        "additionalProperties": false,
        "$defs": {
            "Case": object(&case_keys, &["vm", "phase"], "A case: `vm`, `phase`, and a decision-only request or a hyp call with expectations."),
            "Call": object(CALL_KEYS, &[], "A call as a trace writes it (a preamble entry)."),
            "Edit": bits_object(EDIT_KEYS, "A CPUID edit of the host's table."),
            "Bits": bits_object(BITS_KEYS, "Bits the effective CPUID table must have set or clear."),
            "Number8": number_of(8),
            "Number16": number_of(16),
            "Number32": number_of(32),
            "Number64": number_of(64)
        }
    });
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
