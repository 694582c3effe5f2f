//! The hypervisor's supported CPUID (`policy/registry/hypervisor-cpuid.toml`):
//! the shipped table keeps its security entries, and the loader refuses a
//! broken table with located errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use pvgate_codegen::support::{SUPPORT_PATH, SUPPORT_TOML};
use pvgate_codegen::{ErrorKind, Registry, SupportTable};
use pvgate_gate::{RegSupport, Register, support_in};

fn shipped() -> Vec<pvgate_gate::CpuidSupport> {
    SupportTable::builtin().unwrap().gate_entries()
}

fn errors(text: &str) -> Vec<pvgate_codegen::Diagnostic> {
    SupportTable::parse(text, "t.toml", Registry::builtin()).unwrap_err()
}

/// Renders every error as the build would show it.
fn rendered(text: &str) -> String {
    errors(text)
        .iter()
        .map(|d| {
            let f = d.file.as_ref().unwrap();
            d.render(&f.path, &f.text)
        })
        .collect()
}

#[test]
fn the_shipped_table_has_no_pmu_for_protected_vms() {
    // Removing the leaf 0xA entry would make it unlisted (still zero);
    // an entry that passes any of its bits fails here, and so does the
    // loss of the explicit, reasoned entry.
    let t = SupportTable::builtin().unwrap();
    let pmu = t
        .entries
        .iter()
        .find(|e| e.support.covers(0xa, 0))
        .expect("leaf 0xA is declared, with its reason");
    assert_eq!(pmu.support.regs, [RegSupport::NONE; 4]);
    assert!(pmu.reason.contains("PMU"), "{}", pmu.reason);
    let leaf1 = support_in(&shipped(), 1, 0);
    let ecx = leaf1[Register::Ecx as usize];
    assert_eq!(
        ecx.allowed() & (1 << 15),
        0,
        "PDCM (a PMU MSR) is not supported"
    );
    assert_eq!(
        ecx.allowed() & (1 << 5),
        0,
        "VMX is not supported (no nested)"
    );
    assert_eq!(
        ecx.set & (1 << 31),
        1 << 31,
        "the hypervisor sets HYPERVISOR"
    );
    assert_eq!(
        ecx.allowed() & (1 << 21 | 1 << 24),
        1 << 21 | 1 << 24,
        "X2APIC and TSC-deadline pass"
    );
    let pv = support_in(&shipped(), 0x4000_0001, 0);
    assert_eq!(pv, [RegSupport::NONE; 4], "KVM paravirt features zero");
    let sig = support_in(&shipped(), 0x4000_0000, 0);
    assert_eq!(sig[0].set, 0x4000_0001);
    // Architectural LBRs and the PMU extension leaf are PMU too.
    assert_eq!(support_in(&shipped(), 7, 0)[3].allowed() & (1 << 19), 0);
    assert_eq!(support_in(&shipped(), 7, 1)[0].allowed() & (1 << 8), 0);
    assert_eq!(support_in(&shipped(), 0x23, 0), [RegSupport::NONE; 4]);
}

#[test]
fn every_shipped_entry_has_a_reason_and_the_file_names_its_path() {
    let t = SupportTable::builtin().unwrap();
    assert!(t.entries.len() > 10);
    assert!(
        t.entries
            .iter()
            .all(|e| e.reason.split_whitespace().count() >= 6)
    );
    assert!(SUPPORT_TOML.contains("[[leaf]]"));
    assert_eq!(SUPPORT_PATH, "policy/registry/hypervisor-cpuid.toml");
}

#[test]
fn an_unknown_register_key_is_located() {
    let text = "format = 1\n[[leaf]]\nleaf = 1\nedi = { pass = \"all\" }\nreason = \"a test entry with enough words\"\n";
    let e = errors(text);
    assert_eq!(e[0].kind, ErrorKind::UnknownKey, "{e:?}");
    let r = rendered(text);
    assert!(r.contains("unknown key `edi`"), "{r}");
    assert!(r.contains("t.toml:4:1"), "{r}");
}

#[test]
fn an_unknown_bit_name_is_located_with_a_suggestion() {
    let text = "format = 1\n[[leaf]]\nleaf = 1\necx = { pass = \"all\", except = [\"VMXX\"] }\nreason = \"a test entry with enough words\"\n";
    let e = errors(text);
    assert_eq!(e[0].kind, ErrorKind::UnknownName);
    let r = rendered(text);
    assert!(r.contains("unknown bit `VMXX`"), "{r}");
    assert!(r.contains("did you mean `VMX`?"), "{r}");
    assert!(r.contains("t.toml:4:"), "{r}");
}

#[test]
fn a_bit_of_another_register_is_not_found_in_this_one() {
    let text = "format = 1\n[[leaf]]\nleaf = 1\nedx = { pass = \"all\", except = [\"VMX\"] }\nreason = \"a test entry with enough words\"\n";
    assert_eq!(errors(text)[0].kind, ErrorKind::UnknownName);
}

#[test]
fn overlapping_entries_point_at_both() {
    let text = "format = 1\n[[leaf]]\nleaf = 7\neax = { pass = \"all\" }\nreason = \"every subleaf of leaf seven\"\n\
                [[leaf]]\nleaf = [6, 8]\nsubleaf = 0\neax = { pass = 1 }\nreason = \"subleaf zero again here\"\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, ErrorKind::Overlap);
    assert!(
        e[0].message.contains("declared at line 2"),
        "{}",
        e[0].message
    );
    let r = rendered(text);
    assert!(r.contains("t.toml:7:8"), "{r}");
    assert!(r.contains("first entry"), "{r}");
}

#[test]
fn a_missing_or_empty_reason_is_refused() {
    let e = errors("format = 1\n[[leaf]]\nleaf = 1\n");
    assert_eq!(e[0].kind, ErrorKind::MissingReason);
    let e = errors("format = 1\n[[leaf]]\nleaf = 1\nreason = \"TODO\"\n");
    assert_eq!(e[0].kind, ErrorKind::MissingReason);
}

#[test]
fn bad_masks_and_selectors_are_refused() {
    let entry = |body: &str| {
        format!("format = 1\n[[leaf]]\n{body}\nreason = \"a test entry with enough words\"\n")
    };
    for (body, kind) in [
        ("leaf = 1\neax = { pass = \"0xZZ\" }", ErrorKind::BadNumber),
        (
            "leaf = 1\neax = { pass = 0x1_0000_0000 }",
            ErrorKind::BadMask,
        ),
        ("leaf = 1\neax = { except = 1 }", ErrorKind::BadMask),
        (
            "leaf = 1\neax = { pass = 1, except = 2 }",
            ErrorKind::BadMask,
        ),
        (
            "leaf = [2, 1]\neax = { pass = 1 }",
            ErrorKind::EmptyOrInverted,
        ),
        ("leaf = [1, 2]\neax = { set = 1 }", ErrorKind::BadSelector),
        (
            "leaf = 7\nebx = { pass = \"all\", except = [\"SGX\"] }",
            ErrorKind::BadSelector,
        ),
        ("leaf = 1\neax = {}", ErrorKind::BadMask),
    ] {
        let e = errors(&entry(body));
        assert!(e.iter().any(|d| d.kind == kind), "{body}: {e:?}");
    }
    let e = errors("format = 2\n");
    assert_eq!(e[0].kind, ErrorKind::BadHeader);
}

#[test]
fn the_digest_covers_the_supported_table() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/default.toml"),
    )
    .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy");
    let ir = pvgate_codegen::compile_in_dir(&text, &dir).unwrap();
    let canonical = pvgate_codegen::digest::canonical_text(&ir);
    assert!(canonical.contains("cpuid-support 0xa 0xa * [0x0/0x0 0x0/0x0 0x0/0x0 0x0/0x0]"));
    let mut changed = ir.clone();
    changed.supported.retain(|e| !e.support.covers(0xa, 0));
    assert_ne!(
        pvgate_codegen::digest::digest(&ir),
        pvgate_codegen::digest::digest(&changed)
    );
}
