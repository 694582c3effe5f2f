//! Generated tables ≡ interpreter, for both shipped policies and seeded
//! random policies, in both lookup shapes: every range boundary ±1, 0,
//! u32::MAX, and random inputs, for every kind × phase × access.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test and tool code: a panic is a failed run

use std::sync::OnceLock;

use proptest::prelude::*;
use pvgate_codegen::{Interpreter, Resources};
use pvgate_conformance::{ALL, Generated};
use pvgate_gate::{Access, Phase, Policy, PvCall, VmKind};

/// The interpreter of each generated table set, compiled once.
fn interpreter(g: &Generated) -> &'static Interpreter {
    static ALL_INTERPRETERS: OnceLock<Vec<Interpreter>> = OnceLock::new();
    let all = ALL_INTERPRETERS.get_or_init(|| {
        ALL.iter()
            .map(|g| match pvgate_codegen::compile(g.text) {
                Ok(ir) => Interpreter::new(ir),
                Err(e) => panic!("{}", e.render(g.name, g.text)),
            })
            .collect()
    });
    let i = ALL
        .iter()
        .position(|x| std::ptr::eq(x, g))
        .expect("g is one of ALL");
    &all[i]
}

/// 0, u32::MAX and every rule boundary ±1.
fn msr_probes(interp: &Interpreter) -> Vec<u32> {
    let mut probes = vec![0, 1, u32::MAX - 1, u32::MAX];
    for rule in &interp.ir().rules {
        if let Resources::Msr { ranges, .. } = &rule.resources {
            for &(first, last) in ranges {
                for edge in [first, last] {
                    probes.extend([edge.wrapping_sub(1), edge, edge.wrapping_add(1)]);
                }
            }
        }
    }
    probes.sort();
    probes.dedup();
    probes
}

fn cpuid_probes(interp: &Interpreter) -> (Vec<u32>, Vec<u32>) {
    let mut leaves = vec![0, 1, u32::MAX];
    let mut subleaves = vec![0, 1, 2, 3, u32::MAX];
    for rule in &interp.ir().rules {
        if let Resources::Cpuid {
            leaves: (f, l),
            subleaf,
        } = &rule.resources
        {
            for edge in [*f, *l] {
                leaves.extend([edge.wrapping_sub(1), edge, edge.wrapping_add(1)]);
            }
            if let Some(s) = subleaf {
                subleaves.extend([s.wrapping_sub(1), *s, s.wrapping_add(1)]);
            }
        }
    }
    leaves.sort();
    leaves.dedup();
    subleaves.sort();
    subleaves.dedup();
    (leaves, subleaves)
}

#[test]
fn there_are_shipped_and_random_policies_in_both_shapes() {
    assert!(
        ALL.iter()
            .any(|g| g.name == "policy/default.toml" && g.shape == "match")
    );
    assert!(
        ALL.iter()
            .any(|g| g.name == "policy/strict.toml" && g.shape == "sorted")
    );
    assert!(ALL.iter().filter(|g| g.name.starts_with("random")).count() >= 40);
}

#[test]
fn digests_and_rule_tables_match() {
    for g in ALL {
        let interp = interpreter(g);
        assert_eq!(g.digest, interp.digest(), "{} ({})", g.name, g.shape);
        assert_eq!(g.rules.len(), interp.ir().rules.len(), "{}", g.name);
        for r in g.rules {
            assert_eq!(Some(*r), interp.rule(r.id), "{} rule {}", g.name, r.id.0);
        }
    }
}

#[test]
fn msr_lookups_match_on_every_boundary() {
    let mut checked = 0u64;
    // Each policy is emitted twice (match, sorted) in a row: ask the
    // interpreter once per input and hold both shapes to its answer.
    for shapes in ALL.chunks(2) {
        assert!(shapes.iter().all(|g| g.name == shapes[0].name));
        let interp = interpreter(&shapes[0]);
        for index in msr_probes(interp) {
            for kind in VmKind::ALL {
                for phase in Phase::ALL {
                    for access in Access::ALL {
                        let want = interp.msr_rule(kind, phase, access, index);
                        for g in shapes {
                            assert_eq!(
                                (g.msr_rule)(kind, phase, access, index),
                                want,
                                "{} ({}): {kind:?} {phase:?} {access:?} msr {index:#x}",
                                g.name,
                                g.shape
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "only {checked} probes");
}

#[test]
fn cpuid_lookups_match_on_every_boundary() {
    for g in ALL {
        let interp = interpreter(g);
        let (leaves, subleaves) = cpuid_probes(interp);
        for &leaf in &leaves {
            for &subleaf in &subleaves {
                for kind in VmKind::ALL {
                    for phase in Phase::ALL {
                        assert_eq!(
                            (g.cpuid_rule)(kind, phase, leaf, subleaf),
                            interp.cpuid_rule(kind, phase, leaf, subleaf),
                            "{} ({}): {kind:?} {phase:?} cpuid {leaf:#x}.{subleaf:#x}",
                            g.name,
                            g.shape
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn pv_lookups_match_for_every_call() {
    for g in ALL {
        let interp = interpreter(g);
        for call in PvCall::ALL {
            for kind in VmKind::ALL {
                for phase in Phase::ALL {
                    assert_eq!(
                        (g.pv_rule)(kind, phase, call),
                        interp.pv_rule(kind, phase, call),
                        "{} ({}): {kind:?} {phase:?} {}",
                        g.name,
                        g.shape,
                        call.name()
                    );
                }
            }
        }
    }
}

fn kind() -> impl Strategy<Value = VmKind> {
    prop_oneof![Just(VmKind::Protected), Just(VmKind::Normal)]
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Setup),
        Just(Phase::Running),
        Just(Phase::Teardown)
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::Read), Just(Access::Write)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_inputs_agree(which in 0..ALL.len(), kind in kind(), phase in phase(), access in access(),
                           index in any::<u32>(), leaf in any::<u32>(), subleaf in 0u32..4) {
        let g = &ALL[which];
        let interp = interpreter(g);
        prop_assert_eq!((g.msr_rule)(kind, phase, access, index), interp.msr_rule(kind, phase, access, index));
        prop_assert_eq!((g.cpuid_rule)(kind, phase, leaf, subleaf), interp.cpuid_rule(kind, phase, leaf, subleaf));
    }
}
