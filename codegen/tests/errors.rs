//! Bad input: one test per case, each asserting the kind, the message, the
//! exact line:column of the offending text and, where it applies, the
//! "did you mean" hint. None may panic.
#![allow(clippy::unwrap_used, clippy::panic)] // test and tool code: a panic is a failed run

use pvgate_codegen::{Diagnostic, ErrorKind, compile};

const HEADER: &str =
    "[policy]\nname = \"t\"\ndescription = \"t\"\nformat = 1\ncpuid-violations = \"filter\"\n";

/// The only error of `body` (after the 5-line header), with its line:col
/// and the text its span underlines.
fn only_error(body: &str) -> (Diagnostic, (usize, usize), String) {
    let text = format!("{HEADER}{body}");
    let errors = match compile(&text) {
        Ok(_) => panic!("policy compiled, expected an error:\n{text}"),
        Err(e) => e.diagnostics,
    };
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let d = errors.into_iter().next().unwrap();
    let pos = d.line_col(&text);
    let under = text[d.span.clone()].to_string();
    (d, pos, under)
}

/// A policy the mandatory protected-VM baseline accepts: `text` with its
/// rules moved to normal VMs (the grammar under test is the same there)
/// and the calls the baseline requires allowed on protected VMs.
fn compile_accepted(text: &str) -> Result<pvgate_codegen::Ir, pvgate_codegen::PolicyErrors> {
    compile(&format!(
        "{}\n[[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the baseline requires these\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n",
        text.replace("vm = [\"protected\"]", "vm = [\"normal\"]")
    ))
}

const MSR_OK: &str = "vm = [\"protected\"]\nphase = [\"setup\"]\naccess = [\"write\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n";

#[test]
fn toml_syntax_error_is_located() {
    let (d, pos, _) = only_error("[[msr]\nmsr = 1\n");
    assert_eq!(d.kind, ErrorKind::Syntax);
    assert_eq!(pos.0, 6);
}

#[test]
fn unknown_key_suggests_the_known_one() {
    let (d, pos, under) = only_error(&format!("[[msr]]\nmsr = 0x10\n{MSR_OK}rasion = \"x\"\n"));
    assert_eq!(d.kind, ErrorKind::UnknownKey);
    assert_eq!(d.message, "unknown key `rasion`");
    assert_eq!(pos, (13, 1));
    assert_eq!(under, "rasion");
    assert_eq!(d.help.as_deref(), Some("did you mean `reason`?"));
}

#[test]
fn unknown_msr_name_suggests_the_registry_name() {
    let (d, pos, under) = only_error(&format!("[[msr]]\nmsr = \"IA32_LSTAT\"\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::UnknownName);
    assert_eq!(d.message, "unknown MSR `IA32_LSTAT`");
    assert_eq!(pos, (7, 7));
    assert_eq!(under, "\"IA32_LSTAT\"");
    assert_eq!(d.help.as_deref(), Some("did you mean `IA32_LSTAR`?"));
}

#[test]
fn unknown_msr_in_a_list_points_at_the_element() {
    let (d, pos, under) = only_error(&format!(
        "[[msr]]\nmsr = [\"IA32_STAR\", \"IA32_CSTRA\"]\n{MSR_OK}"
    ));
    assert_eq!(d.message, "unknown MSR `IA32_CSTRA`");
    assert_eq!(pos, (7, 21));
    assert_eq!(under, "\"IA32_CSTRA\"");
    assert_eq!(d.help.as_deref(), Some("did you mean `IA32_CSTAR`?"));
}

#[test]
fn unknown_phase_suggests_running() {
    let (d, pos, under) = only_error(
        "[[pv]]\ncall = \"vcpu_run\"\nvm = [\"protected\"]\nphase = [\"runing\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.kind, ErrorKind::UnknownName);
    assert_eq!(d.message, "unknown phase `runing`");
    assert_eq!(pos, (9, 10));
    assert_eq!(under, "\"runing\"");
    assert_eq!(d.help.as_deref(), Some("did you mean `running`?"));
}

#[test]
fn unknown_vm_kind_is_refused() {
    let (d, pos, _) = only_error(
        "[[pv]]\ncall = \"vcpu_run\"\nvm = [\"protectd\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.message, "unknown VM kind `protectd`");
    assert_eq!(pos, (8, 7));
    assert_eq!(d.help.as_deref(), Some("did you mean `protected`?"));
}

#[test]
fn unknown_pv_call_is_refused() {
    let (d, pos, _) = only_error(
        "[[pv]]\ncall = \"vcpu_runn\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.message, "unknown PV call `vcpu_runn`");
    assert_eq!(pos, (7, 8));
    assert_eq!(d.help.as_deref(), Some("did you mean `vcpu_run`?"));
}

#[test]
fn unknown_verdict_is_refused() {
    let (d, pos, _) = only_error(
        "[[pv]]\ncall = \"vcpu_run\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"alow\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.message, "unknown verdict `alow`");
    assert_eq!(pos, (10, 11));
    assert_eq!(d.help.as_deref(), Some("did you mean `allow`?"));
}

#[test]
fn bad_hex_is_refused() {
    let (d, pos, under) = only_error(&format!("[[msr]]\nmsr = \"0x1g0\"\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::BadNumber);
    assert_eq!(d.message, "bad number `0x1g0` for MSR index");
    assert_eq!(pos, (7, 7));
    assert_eq!(under, "\"0x1g0\"");
}

#[test]
fn inverted_range_is_refused() {
    let (d, pos, _) = only_error(&format!("[[msr]]\nrange = [0x300, 0x200]\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::EmptyOrInverted);
    assert_eq!(d.message, "inverted MSR range: 0x300 is after 0x200");
    assert_eq!(pos, (7, 9));
}

#[test]
fn empty_list_is_refused() {
    let (d, pos, _) = only_error(
        "[[pv]]\ncall = \"vcpu_run\"\nvm = []\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.kind, ErrorKind::EmptyOrInverted);
    assert_eq!(d.message, "empty VM kind list");
    assert_eq!(pos, (8, 6));
}

#[test]
fn msr_index_out_of_range_is_refused() {
    let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x100000000\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::OutOfRange);
    assert_eq!(
        d.message,
        "MSR index `0x100000000` is out of range: an MSR index is at most 0xFFFFFFFF"
    );
    assert_eq!(pos, (7, 7));
}

#[test]
fn negative_number_is_refused() {
    let (d, _, _) = only_error(&format!("[[msr]]\nmsr = -1\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::OutOfRange);
    assert_eq!(d.message, "MSR index `-1` is negative");
}

#[test]
fn overlapping_rules_name_both_locations() {
    let other = MSR_OK.replace("\"allow\"", "\"deny\"");
    let (d, pos, _) = only_error(&format!(
        "[[msr]]\nrange = [0x200, 0x2ff]\n{MSR_OK}\n[[msr]]\nmsr = \"IA32_MTRR_DEF_TYPE\"\n{other}"
    ));
    assert_eq!(d.kind, ErrorKind::Overlap);
    assert_eq!(
        d.message,
        "rules overlap: MSR IA32_MTRR_DEF_TYPE (0x2ff) for protected VMs in `setup` (write) is decided by `IA32_MTRR_PHYSBASE0 (0x200)..=IA32_MTRR_DEF_TYPE (0x2ff)` (allow, line 6) and `IA32_MTRR_DEF_TYPE` (deny, line 14)"
    );
    assert_eq!(pos, (15, 7));
    assert_eq!(d.label, "`IA32_MTRR_DEF_TYPE` (deny)");
    assert_eq!(d.related.len(), 1);
    assert_eq!(
        d.related[0].1,
        "`IA32_MTRR_PHYSBASE0 (0x200)..=IA32_MTRR_DEF_TYPE (0x2ff)` (allow)"
    );
}

#[test]
fn identical_duplicates_are_refused_too() {
    let (d, pos, _) = only_error(&format!(
        "[[msr]]\nmsr = 0x10\n{MSR_OK}\n[[msr]]\nmsr = \"IA32_TSC\"\n{MSR_OK}"
    ));
    assert_eq!(d.kind, ErrorKind::Duplicate);
    assert!(
        d.message
            .starts_with("duplicate rule: MSR IA32_TIME_STAMP_COUNTER (0x10)"),
        "{}",
        d.message
    );
    assert_eq!(pos, (15, 7));
}

#[test]
fn overlapping_pv_wildcard_is_refused() {
    let (d, _, _) = only_error(
        "[[pv]]\ncall = \"*\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n\n\
         [[pv]]\ncall = \"vm_destroy\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"deny\"\nreason = \"a test rule\"\n",
    );
    assert_eq!(d.kind, ErrorKind::Overlap);
    assert!(d.message.contains("PV call `vm_destroy`"), "{}", d.message);
}

#[test]
fn missing_reason_points_at_the_rule() {
    let body = MSR_OK.replace("reason = \"a test rule\"\n", "");
    let (d, pos, under) = only_error(&format!("[[msr]]\nmsr = 0x10\n{body}"));
    assert_eq!(d.kind, ErrorKind::MissingReason);
    assert_eq!(d.message, "rule has no `reason`");
    assert_eq!(pos, (6, 1));
    assert_eq!(under, "[[msr]]");
}

#[test]
fn boilerplate_reason_is_refused() {
    let body = MSR_OK.replace("reason = \"a test rule\"", "reason = \"TODO\"");
    let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x10\n{body}"));
    assert_eq!(d.kind, ErrorKind::MissingReason);
    assert_eq!(d.message, "rule reason `TODO` says nothing");
    assert_eq!(pos, (12, 10));
}

#[test]
fn write_mask_on_a_read_rule_is_refused() {
    let body = MSR_OK.replace("[\"write\"]", "[\"read\"]");
    let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x1a0\n{body}write-mask = 1\n"));
    assert_eq!(d.kind, ErrorKind::MisplacedConstraint);
    assert_eq!(d.message, "`write-mask` on a rule without `write` access");
    assert_eq!(pos, (13, 14));
}

#[test]
fn read_mask_on_a_write_rule_is_refused() {
    let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x1a0\n{MSR_OK}read-mask = 1\n"));
    assert_eq!(d.message, "`read-mask` on a rule without `read` access");
    assert_eq!(pos, (13, 13));
}

#[test]
fn mask_on_a_deny_rule_is_refused() {
    let body = MSR_OK.replace("\"allow\"", "\"deny\"");
    let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x1a0\n{body}write-mask = 1\n"));
    assert_eq!(d.message, "`write-mask` on a `deny` rule");
    assert_eq!(pos, (13, 14));
}

#[test]
fn unknown_msr_bit_name_suggests_the_registry_bit() {
    let (d, pos, under) = only_error(&format!(
        "[[msr]]\nmsr = \"IA32_MISC_ENABLE\"\n{MSR_OK}write-mask = [\"FAST_STRNG\"]\n"
    ));
    assert_eq!(d.kind, ErrorKind::UnknownName);
    assert_eq!(
        d.message,
        "unknown bit `FAST_STRNG` in `write-mask` of MSR IA32_MISC_ENABLE (0x1a0)"
    );
    assert_eq!(pos, (13, 15));
    assert_eq!(under, "\"FAST_STRNG\"");
    assert_eq!(d.help.as_deref(), Some("did you mean `FAST_STRING`?"));
}

const CPUID_OK: &str =
    "vm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"a test rule\"\n";

#[test]
fn cpuid_mask_wider_than_the_register_is_refused() {
    let (d, pos, _) = only_error(&format!(
        "[[cpuid]]\nleaf = 1\n{CPUID_OK}ecx = {{ host = 0x100000000 }}\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadMask);
    assert_eq!(
        d.message,
        "`host` 0x100000000 is wider than CPUID.(EAX=0x1,ECX=0):ECX (32 bits)"
    );
    assert_eq!(pos, (12, 16));
}

#[test]
fn cpuid_feature_of_another_register_says_where_it_lives() {
    let (d, pos, under) = only_error(&format!(
        "[[cpuid]]\nleaf = 1\n{CPUID_OK}ecx = {{ host = [\"SMEP\"] }}\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadMask);
    assert_eq!(
        d.message,
        "`SMEP` is CPUID.(EAX=0x7,ECX=0):EBX[7], not a bit of CPUID.(EAX=0x1,ECX=0):ECX"
    );
    assert_eq!(pos, (12, 17));
    assert_eq!(under, "\"SMEP\"");
}

#[test]
fn cpuid_controls_that_overlap_are_refused() {
    let (d, _, _) = only_error(&format!(
        "[[cpuid]]\nleaf = 1\n{CPUID_OK}ecx = {{ host = 0x3, force-on = 0x2 }}\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadMask);
    assert_eq!(
        d.message,
        "bits 0x2 of CPUID.(EAX=0x1,ECX=0):ECX are both `host` and `force-on`"
    );
}

#[test]
fn cpuid_ignore_verdict_is_refused() {
    let body = CPUID_OK.replace("\"allow\"", "\"ignore\"");
    let (d, pos, _) = only_error(&format!("[[cpuid]]\nleaf = 1\n{body}"));
    assert_eq!(d.message, "`ignore` is not a CPUID verdict");
    assert_eq!(pos, (10, 11));
}

#[test]
fn cpuid_overlapping_subleaves_are_refused() {
    let (d, _, _) = only_error(&format!(
        "[[cpuid]]\nleaf = 4\n{CPUID_OK}\n[[cpuid]]\nleaf = [3, 5]\nsubleaf = 1\n{}",
        CPUID_OK.replace("\"allow\"", "\"deny\"")
    ));
    assert_eq!(d.kind, ErrorKind::Overlap);
    assert!(
        d.message.contains("CPUID leaf 0x4 subleaf 1"),
        "{}",
        d.message
    );
}

#[test]
fn pv_read_mask_on_a_setter_is_refused() {
    let (d, _, _) = only_error(
        "[[pv]]\ncall = \"set_rflags\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nread-mask = 0x200\nreason = \"a test rule\"\n",
    );
    assert_eq!(
        d.message,
        "`read-mask` on `set_rflags`, which is not a getter"
    );
}

#[test]
fn min_vector_on_a_call_that_injects_nothing_is_refused() {
    let (d, _, _) = only_error(
        "[[pv]]\ncall = \"vcpu_run\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nmin-vector = 32\nreason = \"a test rule\"\n",
    );
    assert_eq!(
        d.message,
        "`min-vector` on `vcpu_run`, which injects no interrupt"
    );
}

#[test]
fn rule_without_selector_is_refused() {
    let (d, pos, _) = only_error(&format!("[[msr]]\n{MSR_OK}"));
    assert_eq!(d.kind, ErrorKind::MissingKey);
    assert_eq!(d.message, "MSR rule selects no MSR");
    assert_eq!(pos, (6, 1));
}

#[test]
fn wrong_format_version_is_refused() {
    let text = HEADER.replace("format = 1", "format = 2");
    let errors = compile(&text).unwrap_err().diagnostics;
    assert_eq!(errors[0].kind, ErrorKind::BadHeader);
    assert_eq!(errors[0].line_col(&text), (4, 10));
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = format!(
        "{HEADER}[[pv]]\ncall = \"vcpu_runn\"\nvm = [\"protected\"]\nphase = [\"runing\"]\nverdict = \"allow\"\n"
    );
    let errors = compile(&text).unwrap_err().diagnostics;
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "rule has no `reason`",
            "unknown PV call `vcpu_runn`",
            "unknown phase `runing`"
        ]
    );
}

#[test]
fn rendering_underlines_the_text_and_names_the_location() {
    let text = format!("{HEADER}[[msr]]\nmsr = \"IA32_LSTAT\"\n{MSR_OK}");
    let e = compile(&text).unwrap_err();
    let out = e.render("policy/x.toml", &text);
    assert!(out.contains("error: unknown MSR `IA32_LSTAT`"), "{out}");
    assert!(out.contains("policy/x.toml:7:7"), "{out}");
    assert!(out.contains("^^^^^^^^^^^^"), "{out}");
    assert!(out.contains("did you mean `IA32_LSTAR`?"), "{out}");
}

// ---------------------------------------------------------------------------
// Issue 8, finding 5: one numeric grammar.
// ---------------------------------------------------------------------------

#[test]
fn hex_string_with_a_sign_after_the_prefix_is_refused() {
    for bad in [
        "0x+1A0", "0x-1", "0x_1A0", "0x1A0_", "0x1__A0", " 0x1A0", "0x1A0 ", "0X1A0",
    ] {
        let (d, pos, under) = only_error(&format!("[[msr]]\nmsr = \"{bad}\"\n{MSR_OK}"));
        assert_eq!(d.kind, ErrorKind::BadNumber, "{bad}: {d:#?}");
        assert_eq!(
            d.message,
            format!("bad number `{bad}` for MSR index"),
            "{bad}"
        );
        assert_eq!(pos, (7, 7), "{bad}");
        assert_eq!(under, format!("\"{bad}\""), "{bad}");
    }
}

#[test]
fn number_strings_other_than_hex_are_refused_with_the_grammar_in_the_hint() {
    for bad in ["+5", "416", "0b101", "0o7", "0x", "１６", ""] {
        let (d, _, _) = only_error(&format!(
            "[[pv]]\ncall = \"inject_irq\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nmin-vector = \"{bad}\"\nreason = \"a test rule\"\n"
        ));
        assert_eq!(d.kind, ErrorKind::BadNumber, "{bad}: {d:#?}");
        let help = d.help.unwrap_or_default();
        assert!(help.contains("`0x`"), "{bad}: {help}");
    }
}

#[test]
fn msr_index_above_32_bits_says_the_limit() {
    for text in ["0x1_0000_0000", "\"0x1_0000_0000\"", "\"0x000000001\""] {
        let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = {text}\n{MSR_OK}"));
        assert_eq!(pos, (7, 7), "{text}");
        assert!(
            d.message.contains("an MSR index is at most 0xFFFFFFFF")
                || d.help
                    .as_deref()
                    .unwrap_or("")
                    .contains("an MSR index is at most 0xFFFFFFFF"),
            "{text}: {d:#?}"
        );
    }
}

#[test]
fn a_64_bit_bare_integer_says_toml_integers_are_signed() {
    let (d, pos, _) = only_error(&format!(
        "[[msr]]\nmsr = 0x1a0\n{MSR_OK}write-mask = 0xFFFFFFFFFFFFFFFF\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadNumber, "{d:#?}");
    assert!(d.message.contains("signed 64-bit"), "{}", d.message);
    assert_eq!(
        d.help.as_deref(),
        Some("write it as a string: `\"0xFFFF_FFFF_FFFF_FFFF\"`")
    );
    assert_eq!(pos, (13, 14));
}

#[test]
fn an_msr_index_too_large_for_toml_says_the_msr_limit() {
    for rule in [
        "range = [0x0, 0xFFFFFFFFFFFFFFFF]",
        "range = [\n  0x0,\n  0xFFFFFFFFFFFFFFFF,\n]",
        "msr = 18446744073709551615",
        "msr = [0x10, 0xFFFFFFFFFFFFFFFF]",
    ] {
        let (d, _, _) = only_error(&format!("[[msr]]\n{rule}\n{MSR_OK}"));
        assert_eq!(d.kind, ErrorKind::OutOfRange, "{rule}: {d:#?}");
        assert!(
            d.message
                .ends_with("is out of range: an MSR index is at most 0xFFFFFFFF"),
            "{rule}: {}",
            d.message
        );
    }
}

#[test]
fn every_missing_key_of_a_table_is_reported() {
    let text = "[policy]\nname = \"t\"\n\n[[msr]]\nmsr = 0x10\nvm = [\"normal\"]\n";
    let errors = compile(text).unwrap_err().diagnostics;
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "missing key `description`",
            "missing key `format`",
            "missing key `cpuid-violations`",
            "missing key `phase`",
            "missing key `access`",
            "missing key `verdict`",
            "missing key `reason`",
        ]
    );
    let no_header = compile(&format!("[[msr]]\nmsr = 0x10\n{MSR_OK}"))
        .unwrap_err()
        .diagnostics;
    assert_eq!(no_header.len(), 1);
    assert_eq!(no_header[0].message, "missing key `policy`");
    assert!(errors.iter().all(|d| d.kind == ErrorKind::MissingKey));
}

#[test]
fn a_64_bit_hex_string_is_the_way_to_write_the_top_bit() {
    let text =
        format!("{HEADER}[[msr]]\nmsr = 0x1a0\n{MSR_OK}write-mask = \"0xFFFF_FFFF_FFFF_FFFF\"\n");
    assert!(compile_accepted(&text).is_ok());
}

// ---------------------------------------------------------------------------
// Issue 8, finding 8: the front end refuses what it used to accept.
// ---------------------------------------------------------------------------

const PV_IGNORE: &str = "[[pv]]\ncall = \"inject_irq\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"ignore\"\nreason = \"a test rule\"\n";

#[test]
fn pv_value_constraints_on_an_ignore_rule_are_refused() {
    for (key, value, col) in [("min-vector", "32", 14), ("allow-soft", "true", 14)] {
        let (d, pos, under) = only_error(&format!("{PV_IGNORE}{key} = {value}\n"));
        assert_eq!(d.kind, ErrorKind::MisplacedConstraint, "{key}: {d:#?}");
        assert_eq!(d.message, format!("`{key}` on a `ignore` rule"));
        assert_eq!(pos, (12, col), "{key}");
        assert_eq!(under, value);
        assert_eq!(d.related.len(), 1, "{key}: points at the verdict");
    }
    let getter = PV_IGNORE.replace("inject_irq", "get_rflags");
    let (d, pos, _) = only_error(&format!("{getter}read-mask = 0x200\n"));
    assert_eq!(d.message, "`read-mask` on a `ignore` rule");
    assert_eq!(pos, (12, 13));
}

#[test]
fn reasons_are_judged_by_their_words() {
    for bad in [
        "TODO.",
        "todo!",
        "  Fixme  ",
        "TBD: why",
        "XXX later on",
        "n/a",
        "N/A.",
        "none",
        "reason",
        "...",
        "see above",
        "See above.",
        "same as above",
        "topology",
        "brand string",
        "- - -",
        "1 2 3 4",
        "todo todo todo",
        "a a a a",
    ] {
        let body = MSR_OK.replace("a test rule", bad);
        let (d, pos, _) = only_error(&format!("[[msr]]\nmsr = 0x10\n{body}"));
        assert_eq!(d.kind, ErrorKind::MissingReason, "{bad:?}: {d:#?}");
        assert_eq!(pos, (12, 10), "{bad:?}");
        assert!(d.help.is_some(), "{bad:?}");
    }
    for good in [
        "crosvm writes EFER at boot",
        "pKVM-IA v6.18 pkvm_set_msr()",
        "the review thread: IF only",
    ] {
        let body = MSR_OK.replace("a test rule", good);
        let text = format!("{HEADER}[[msr]]\nmsr = 0x10\n{body}");
        assert!(
            compile_accepted(&text).is_ok(),
            "{good:?} should be accepted"
        );
    }
}

#[test]
fn invariant_reasons_are_judged_by_their_words_too() {
    let text = format!(
        "{HEADER}[[invariant]]\nname = \"no-writes\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nforbid = \"msr-write\"\nreason = \"TODO.\"\n"
    );
    let errors = compile(&text).unwrap_err().diagnostics;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ErrorKind::MissingReason);
    assert_eq!(errors[0].line_col(&text), (11, 10));
}

#[test]
fn named_bits_on_an_every_subleaf_rule_of_a_leaf_with_subleaves_are_refused() {
    let (d, pos, under) = only_error(&format!(
        "[[cpuid]]\nleaf = 7\n{CPUID_OK}ebx = {{ clear-only = [\"SMEP\"] }}\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadSelector, "{d:#?}");
    assert_eq!(
        d.message,
        "named bits on a rule for every subleaf of CPUID leaf 0x7, which has subleaves"
    );
    assert_eq!(pos, (12, 22));
    assert_eq!(under, "[\"SMEP\"]");
    assert_eq!(
        d.help.as_deref(),
        Some(
            "add `subleaf = 0` (where `SMEP` lives), or write the mask as a number to apply it to every subleaf"
        )
    );
    // The same with `subleaf = "all"` written out.
    let (d, _, _) = only_error(&format!(
        "[[cpuid]]\nleaf = 7\nsubleaf = \"all\"\n{CPUID_OK}ebx = {{ clear-only = [\"SMEP\"] }}\n"
    ));
    assert_eq!(d.kind, ErrorKind::BadSelector, "{d:#?}");
}

#[test]
fn named_bits_resolve_where_the_subleaf_is_given_or_the_leaf_has_none() {
    for rule in [
        "[[cpuid]]\nleaf = 7\nsubleaf = 0\n",
        "[[cpuid]]\nleaf = 1\n",
        "[[cpuid]]\nleaf = 1\nsubleaf = \"all\"\n",
    ] {
        let ctl = if rule.contains("leaf = 7") {
            "ebx = { clear-only = [\"SMEP\"] }"
        } else {
            "ecx = { host = [\"HYPERVISOR\"] }"
        };
        let text = format!("{HEADER}{rule}{CPUID_OK}{ctl}\n");
        assert!(
            compile_accepted(&text).is_ok(),
            "{rule}: {:#?}",
            compile_accepted(&text).err()
        );
    }
    // A numeric mask on every subleaf says what it means: allowed.
    let text = format!("{HEADER}[[cpuid]]\nleaf = 7\n{CPUID_OK}ebx = {{ clear-only = 0x80 }}\n");
    assert!(compile_accepted(&text).is_ok());
}
