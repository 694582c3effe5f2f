//! The review engines through their typed results: findings name their
//! lint, changes carry their verdicts and resources as data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pvgate_codegen::{Baseline, Compiled, Registry, compile_file_with};
use pvgate_gate::{Access, Phase, PvCall, Verdict, VmKind};
use pvgate_review::describe;
use pvgate_review::diff::{ChangeData, Res, RuleRef, Section, diff};
use pvgate_review::lint::{LINTS, LintId, Severity, findings};

/// Compiles a fixture against the CLI tests' fixture baseline: the lint
/// fixtures break the shipped one on purpose, to be linted.
fn compiled(path: &str) -> Compiled {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = "cli/tests/fixtures/fixture-baseline.toml";
    let baseline = Baseline::from_file(&root.join(fixture), fixture).unwrap();
    compile_file_with(root.join(path), path, &baseline)
        .unwrap_or_else(|e| panic!("{path}: {}", e.render()))
}

#[test]
fn every_lint_id_is_in_the_table_once_with_a_distinct_name() {
    for (i, l) in LINTS.iter().enumerate() {
        assert_eq!(
            LINTS.iter().filter(|m| m.id == l.id).count(),
            1,
            "{:?} listed twice",
            l.id
        );
        assert!(
            LINTS[..i].iter().all(|m| m.id.name() != l.id.name()),
            "{} named twice",
            l.id.name()
        );
    }
}

#[test]
fn findings_are_typed_by_lint_and_sorted_by_position() {
    let c = compiled("cli/tests/fixtures/risky.toml");
    let f = findings(&c, Registry::builtin());
    let has = |id: LintId, s: Severity| f.iter().any(|x| x.lint == id && x.severity == s);
    assert!(has(LintId::MsrWriteOnlyWrite, Severity::Error));
    assert!(has(LintId::CpuidSecurityBit, Severity::Error));
    assert!(has(LintId::WeakReason, Severity::Warning));
    assert!(has(LintId::NormalNotAllowAll, Severity::Info));
    assert!(f.windows(2).all(|w| w[0].span.start <= w[1].span.start));
    for x in &f {
        assert!(x.span.end <= c.text.len(), "{x:?} points past the text");
    }
}

#[test]
fn a_policy_has_no_difference_from_itself_or_a_reordering() {
    let a = compiled("cli/tests/fixtures/review.toml");
    let b = compiled("cli/tests/fixtures/review-reordered.toml");
    assert_eq!(diff(&a, &a, Registry::builtin()), Vec::new());
    assert_eq!(diff(&a, &b, Registry::builtin()), Vec::new());
}

#[test]
fn changes_carry_verdicts_scopes_and_resources_as_data() {
    let old = compiled("policy/default.toml");
    let new = compiled("policy/strict.toml");
    let changes = diff(&old, &new, Registry::builtin());
    assert!(changes.windows(2).all(|w| w[0].section <= w[1].section));
    // The SYSCALL/SYSENTER stopgap: ignored writes become refusals.
    assert!(changes.iter().any(|c| matches!(
        &c.data,
        ChangeData::Decisions { access: Some(Access::Write), scopes, resources, old: Verdict::Ignore, new: Verdict::Deny }
            if scopes == &[(VmKind::Protected, Phase::Setup)]
                && resources.contains(&Res::Msr(0x174, 0x176))
    )));
    // write_tsc_offset is no longer allowed on a running protected VM.
    assert!(changes.iter().any(|c| c.section == Section::Pv
        && matches!(
            &c.data,
            ChangeData::Decisions { old: Verdict::Allow, new: Verdict::Deny, resources, .. }
                if resources.contains(&Res::Pv(PvCall::WriteTscOffset))
        )));
    assert!(
        changes
            .iter()
            .any(|c| matches!(c.data, ChangeData::ViolationMode { .. }))
    );
}

#[test]
fn rule_refs_read_as_the_commands_show_rule_locations() {
    let c = compiled("policy/default.toml");
    for r in &c.ir.rules {
        let rr = RuleRef::new(&c.path, r);
        assert_eq!((rr.line, rr.column), (r.line, r.column));
        assert_eq!(rr.to_string(), describe::rule_ref(&c.path, r));
    }
}
