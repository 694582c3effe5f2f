//! Snapshots of the errors that say how to fix the mistake (issue 12,
//! items 6 and 7): numbers TOML cannot hold, every missing header key at
//! once, overlapping rules by name and verdict, a name found inside a
//! longer guess, a CPUID bit in the wrong register, a `[call.regs]` table
//! that swallowed the call's next key. Accept intended changes with
//! `INSTA_UPDATE=always cargo test -p pvgate-cli --test hints`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::pvgate;

fn both(args: &[&str]) -> String {
    let run = pvgate(args);
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

fn check(fixture: &str) -> String {
    both(&["check", &format!("cli/tests/broken/{fixture}.toml")])
}

#[test]
fn write_mask_too_large_for_toml_suggests_the_string_form() {
    let out = check("bare-u64-mask");
    assert!(out.contains("TOML integers are signed 64-bit"), "{out}");
    assert!(out.contains("\"0xFFFF_FFFF_FFFF_FFFF\""), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn msr_range_too_large_names_the_msr_limit() {
    let out = check("msr-range-literal-too-large");
    assert!(out.contains("an MSR index is at most 0xFFFFFFFF"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn every_missing_header_key_is_reported_at_once() {
    let out = check("missing-header-keys");
    for key in ["description", "format", "cpuid-violations"] {
        assert!(out.contains(&format!("missing key `{key}`")), "{out}");
    }
    assert!(!out.contains("missing key `name`"), "{out}");
    assert!(out.contains("(3 errors)"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn overlapping_rules_are_named_with_their_verdicts() {
    let out = check("overlapping-msr-rules");
    assert!(out.contains("`pvm-efer` (allow"), "{out}");
    assert!(out.contains("`pvm-efer-deny` (deny"), "{out}");
    assert!(
        !out.contains("first rule") && !out.contains("second rule"),
        "{out}"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn a_longer_guess_of_a_bit_name_finds_it() {
    let out = check("cpuid-bit-substring-name");
    assert!(out.contains("did you mean `X2APIC`?"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn a_bit_in_the_wrong_register_gets_a_fix_line() {
    let out = check("cpuid-bit-in-wrong-register");
    assert!(
        out.contains("help: write it under `ebx` of leaf 0x7"),
        "{out}"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn a_regs_table_that_swallowed_expect_says_so() {
    let out = both(&[
        "replay",
        "policy/default.toml",
        "cli/tests/traces/regs-swallow-expect.toml",
    ]);
    assert!(out.starts_with("exit: 2"), "{out}");
    assert!(out.contains("write `expect` above `[call.regs]`"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn a_trace_value_too_large_for_toml_is_refused_with_the_string_form() {
    let out = both(&[
        "replay",
        "policy/default.toml",
        "cli/tests/traces/value-literal-too-large.toml",
    ]);
    assert!(out.starts_with("exit: 2"), "{out}");
    assert!(out.contains("\"0xFFFF_FFFF_FFFF_FFFF\""), "{out}");
    insta::assert_snapshot!(out);
}
