//! hyp has one decision path: a reviewer reads each of these once. The
//! gate decision becomes an outcome in one function, a VM or vCPU handle
//! is validated in one accessor each, and the MSR forced-bits formula is
//! gate's alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
}

/// The files of hyp/src whose code (comment lines dropped) contains any of
/// `needles`, with the number of lines that do.
fn files_with(needles: &[&str]) -> Vec<(String, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut hits: Vec<(String, usize)> = files
        .iter()
        .filter_map(|(path, text)| {
            let n = text
                .lines()
                .map(str::trim_start)
                .filter(|l| !l.starts_with("//"))
                .filter(|l| needles.iter().any(|n| l.contains(n)))
                .count();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            (n > 0).then_some((rel, n))
        })
        .collect();
    hits.sort();
    hits
}

#[test]
fn one_function_turns_a_verdict_into_an_outcome() {
    // `Verdict::Ignore` once in the mapping, once where a CPUID `ignore`
    // keeps the base silently (which is not an outcome).
    let hits = files_with(&["Verdict::Allow", "Verdict::Deny", "Verdict::Ignore"]);
    let outcome = hits
        .iter()
        .filter(|(f, _)| f.ends_with("outcome.rs"))
        .count();
    assert_eq!(outcome, 1, "{hits:?}");
    for (file, n) in &hits {
        assert!(
            (file.ends_with("outcome.rs") || file.ends_with("cpuid.rs")) && *n == 1,
            "verdicts read outside the one mapping: {hits:?}"
        );
    }
}

#[test]
fn the_msr_forced_bits_formula_is_gates() {
    assert_eq!(files_with(&["force_on", "force_off"]), vec![]);
}

#[test]
fn one_accessor_takes_a_lifecycle_lock_and_one_a_vcpu_lock_by_handle() {
    let lifecycle = files_with(&["lifecycle.lock()"]);
    assert_eq!(lifecycle.len(), 1, "{lifecycle:?}");
    assert_eq!(lifecycle[0].1, 1, "{lifecycle:?}");
    // A handle is taken apart only in `vm_slot` and `lock_vcpu` (and by
    // the handle's own accessors).
    let split = files_with(&[".split()"]);
    let outside: Vec<_> = split
        .iter()
        .filter(|(f, _)| !f.ends_with("handle.rs"))
        .collect();
    let outside: Vec<&str> = outside.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        outside,
        ["src/vcpu/lock.rs", "src/vm/lifecycle.rs"],
        "{split:?}"
    );
}

#[test]
fn a_pv_call_carries_no_cpuid_table_and_test_data_stays_out_of_the_core() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
    let call = all
        .find("pub fn call(")
        .map(|i| &all[i..i + all[i..].find('{').unwrap()])
        .unwrap();
    assert!(!call.contains("CpuidTable"), "{call}");
    assert!(all.contains("pub fn vcpu_after_set_cpuid("));
    // `Call::example` lives in `examples.rs`, a module compiled only with
    // the test-data feature.
    let examples = fs::read_to_string(root.join("src/examples.rs")).unwrap();
    assert!(examples.contains("pub fn example("));
    assert_eq!(all.matches("pub fn example(").count(), 1);
    let lib = fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(feature = \"examples\")]\nmod examples;"),
        "`Call::example` is test data: behind the `examples` feature"
    );
}
