//! The mandatory protected-VM baseline: every compilation proves it,
//! whether or not the policy includes it; another baseline is used only
//! when given, and one that constrains no protected VM is refused; the
//! digest covers the invariants proven.
#![allow(clippy::unwrap_used)] // test and tool code: a panic is a failed run

use std::path::{Path, PathBuf};

use pvgate_codegen::{
    Baseline, ErrorKind, compile, compile_file_with, compile_in_dir, compile_in_dir_with,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn policy_dir() -> PathBuf {
    root().join("policy")
}

fn default_text() -> String {
    std::fs::read_to_string(policy_dir().join("default.toml")).unwrap()
}

/// The default policy without its `include` of the baseline.
fn default_without_include() -> String {
    let text = default_text();
    let line = "include = [\"invariants/protected-baseline.toml\"]\n";
    assert!(
        text.contains(line),
        "default.toml no longer includes the baseline"
    );
    text.replace(line, "")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvgate-baseline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_policy_without_the_baseline_include_is_still_held_to_it() {
    // `set_regs` on a running protected vCPU: the host rewrites RIP.
    let text = default_without_include().replace(
        "name = \"pvm-set-regs\"\ncall = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\"]",
        "name = \"pvm-set-regs\"\ncall = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]",
    );
    assert!(text.contains(
        "phase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"pKVM-IA copies"
    ));
    let e = compile_in_dir(&text, &policy_dir()).expect_err("the baseline must be proven");
    let d = e
        .diagnostics
        .iter()
        .find(|d| {
            d.message
                .starts_with("invariant `pvm-running-state-sealed` (")
        })
        .unwrap_or_else(|| panic!("{:#?}", e.diagnostics));
    assert_eq!(d.kind, ErrorKind::InvariantViolated);
    assert!(
        d.message.contains("by rule `pvm-set-regs`"),
        "{}",
        d.message
    );
    assert_eq!(
        &text[d.span.clone()],
        "\"set_regs\"",
        "primary span is the offending rule"
    );
}

#[test]
fn a_policy_without_any_include_proves_every_baseline_invariant() {
    let ir = compile_in_dir(&default_without_include(), &policy_dir()).unwrap();
    let names: Vec<&str> = ir.invariants.iter().map(|i| i.name.as_str()).collect();
    for expected in [
        "pvm-running-state-sealed",
        "pvm-no-msr-access-after-setup",
        "pvm-no-host-controlled-security-cpuid",
        "pvm-host-can-run-and-destroy",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not proven: {names:?}"
        );
    }
}

#[test]
fn an_in_memory_policy_with_no_rules_for_protected_vms_fails_the_baseline() {
    let text = "[policy]\nname = \"bare\"\ndescription = \"no protected rules\"\nformat = 1\ncpuid-violations = \"filter\"\n";
    let e = compile(text).expect_err("a policy that cannot run a protected VM is refused");
    assert!(
        e.diagnostics.iter().any(|d| d
            .message
            .starts_with("invariant `pvm-host-can-run-and-destroy`")),
        "{:#?}",
        e.diagnostics
    );
}

#[test]
fn including_the_baseline_does_not_prove_it_twice() {
    let with = compile_in_dir(&default_text(), &policy_dir()).unwrap();
    let without = compile_in_dir(&default_without_include(), &policy_dir()).unwrap();
    assert_eq!(with.invariants.len(), without.invariants.len());
    assert_eq!(with.invariants.len(), with.baseline.invariants);
    assert_eq!(
        pvgate_codegen::digest::digest(&with),
        pvgate_codegen::digest::digest(&without),
        "an include of the baseline adds nothing"
    );
}

/// The default policy plus an invariant file `extra.toml` beside it, as the
/// baseline given by the setting (`PVGATE_BASELINE` / `--baseline`).
fn custom_baseline(dir: &Path, invariants: &str) -> Baseline {
    std::fs::write(dir.join("team-baseline.toml"), invariants).unwrap();
    Baseline::from_setting(dir, Some("team-baseline.toml")).unwrap()
}

const NO_SETUP_EFER: &str = r#"
[[invariant]]
name = "team-no-efer-writes"
vm = ["protected"]
phase = ["setup"]
forbid = "pv-call"
call = ["set_efer"]
reason = "the team's guests set EFER themselves (test baseline)"
"#;

#[test]
fn a_baseline_given_by_the_setting_is_the_one_proven() {
    let dir = scratch("custom");
    let baseline = custom_baseline(&dir, NO_SETUP_EFER);
    let policy = policy_dir().join("default.toml");
    let e = compile_file_with(&policy, "policy/default.toml", &baseline)
        .expect_err("the default policy allows set_efer in setup");
    let rendered = e.render();
    assert!(
        rendered.contains("invariant `team-no-efer-writes` (team-baseline.toml:2)"),
        "{rendered}"
    );
    // The shipped baseline is not proven instead (its invariants hold here).
    let ir = compile_in_dir_with(
        &default_text().replace("\"set_efer\", ", ""),
        &policy_dir(),
        &baseline,
    )
    .unwrap();
    assert_eq!(ir.baseline.file, "team-baseline.toml");
    assert_eq!(ir.baseline.invariants, 1);
    assert_eq!(ir.baseline.sha256.len(), 64);
    // The policy's own include of the shipped file still adds its invariants.
    assert!(
        ir.invariants
            .iter()
            .any(|i| i.name == "pvm-running-state-sealed")
    );
}

#[test]
fn an_unset_or_empty_setting_is_the_shipped_baseline() {
    let shipped = Baseline::shipped();
    assert_eq!(shipped.shown(), "policy/invariants/protected-baseline.toml");
    for setting in [None, Some(""), Some("  ")] {
        assert_eq!(
            Baseline::from_setting(Path::new("/nonexistent"), setting).unwrap(),
            shipped
        );
    }
    assert_eq!(
        shipped.text(),
        std::fs::read_to_string(policy_dir().join("invariants/protected-baseline.toml")).unwrap(),
        "the compiled-in baseline is the file"
    );
}

#[test]
fn an_empty_or_irrelevant_baseline_is_refused() {
    let dir = scratch("refused");
    let normal_only = NO_SETUP_EFER.replace("vm = [\"protected\"]", "vm = [\"normal\"]");
    for (text, expected) in [
        ("", "has no invariant"),
        ("# nothing here\n", "has no invariant"),
        (normal_only.as_str(), "has no invariant about protected VMs"),
    ] {
        let baseline = custom_baseline(&dir, text);
        let e = compile_in_dir_with(&default_text(), &policy_dir(), &baseline)
            .expect_err("refused baseline");
        let d = e
            .diagnostics
            .iter()
            .find(|d| d.kind == ErrorKind::Baseline)
            .unwrap_or_else(|| panic!("{:#?}", e.diagnostics));
        assert_eq!(
            d.message,
            format!("baseline `team-baseline.toml` {expected}"),
            "{text:?}"
        );
    }
}

#[test]
fn a_baseline_file_must_be_a_bounded_regular_toml_file() {
    let dir = scratch("file");
    std::fs::write(dir.join("baseline.txt"), NO_SETUP_EFER).unwrap();
    let e = Baseline::from_setting(&dir, Some("baseline.txt")).unwrap_err();
    assert!(e.0.contains("a baseline is a `.toml` file"), "{e}");
    std::fs::create_dir_all(dir.join("dir.toml")).unwrap();
    let e = Baseline::from_setting(&dir, Some("dir.toml")).unwrap_err();
    assert!(e.0.contains("not a regular file"), "{e}");
    let e = Baseline::from_setting(&dir, Some("missing.toml")).unwrap_err();
    assert!(e.0.starts_with("cannot use baseline `missing.toml`"), "{e}");
    let huge = "#".repeat(2 << 20);
    std::fs::write(dir.join("huge.toml"), huge).unwrap();
    let e = Baseline::from_setting(&dir, Some("huge.toml")).unwrap_err();
    assert!(e.0.contains("larger than"), "{e}");
}

#[test]
fn the_digest_covers_the_invariants_proven() {
    let dir = scratch("digest");
    let text = default_text().replace("\"set_efer\", ", "");
    let shipped = compile_in_dir(&text, &policy_dir()).unwrap();
    let team = compile_in_dir_with(
        &default_without_include().replace("\"set_efer\", ", ""),
        &policy_dir(),
        &custom_baseline(&dir, NO_SETUP_EFER),
    )
    .unwrap();
    let rules_only = |ir: &pvgate_codegen::Ir| {
        pvgate_codegen::digest::canonical_text(ir)
            .lines()
            .filter(|l| !l.starts_with("invariant "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(rules_only(&shipped), rules_only(&team), "same rules");
    assert_ne!(
        pvgate_codegen::digest::digest(&shipped),
        pvgate_codegen::digest::digest(&team),
        "a different set of invariants is a different digest"
    );
    let canonical = pvgate_codegen::digest::canonical_text(&shipped);
    assert!(
        canonical.contains(
            "invariant \"pvm-running-state-sealed\" vm=protected phase=running forbid-pv "
        ),
        "{canonical}"
    );
}

#[test]
fn a_policy_cannot_shadow_or_empty_a_baseline_invariant() {
    // A same-named invariant of the policy's own that constrains nothing
    // does not replace the baseline's: both are proven.
    let shadow = "\n[[invariant]]\nname = \"pvm-running-state-sealed\"\nvm = [\"normal\"]\nphase = [\"setup\"]\nforbid = \"pv-call\"\ncall = [\"vcpu_reset\"]\nreason = \"an attempt to shadow the baseline's invariant\"\n";
    let text = default_without_include().replace(
        "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\"]",
        "call = \"set_regs\"\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]",
    ) + shadow;
    let e = compile_in_dir(&text, &policy_dir()).expect_err("the baseline still holds");
    assert!(
        e.diagnostics.iter().any(|d| d.message.starts_with(
            "invariant `pvm-running-state-sealed` (policy/invariants/protected-baseline.toml:"
        )),
        "{:#?}",
        e.diagnostics
    );
    // An include of an empty invariant file adds nothing and drops nothing.
    let dir = scratch("shadow");
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    std::fs::write(
        dir.join("p.toml"),
        text.replace(shadow, "")
            .replace("format = 1\n", "format = 1\ninclude = [\"empty.toml\"]\n"),
    )
    .unwrap();
    let e = pvgate_codegen::compile_file(dir.join("p.toml")).expect_err("the baseline still holds");
    assert!(
        e.render().contains("invariant `pvm-running-state-sealed`"),
        "{}",
        e.render()
    );
}
