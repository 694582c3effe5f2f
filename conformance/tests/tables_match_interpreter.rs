//! Generated tables ≡ interpreter, for both shipped policies and seeded
//! random policies, in every lookup shape (`match`, `sorted`, `bitmap`,
//! `auto`), for the rule (`msr_rule`) and the verdict fast path
//! (`msr_verdict`): every range boundary ±1, 0, u32::MAX, every index of
//! KVM's two MSR-bitmap regions, and random inputs, for every kind ×
//! phase × access. The 10,000-rule policy is checked on a sample.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // test and tool code: a panic is a failed run

use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use pvgate_codegen::emit::{Shape, rust_shaped};
use pvgate_codegen::{Interpreter, Resources};
use pvgate_conformance::{ALL, Generated};
use pvgate_gate::{Access, Phase, Policy, PvCall, VmKind, decide_msr};

/// The interpreter of each generated table set, compiled once per policy.
fn interpreter(g: &Generated) -> &'static Interpreter {
    static ALL_INTERPRETERS: OnceLock<HashMap<&'static str, Interpreter>> = OnceLock::new();
    let all = ALL_INTERPRETERS.get_or_init(|| {
        let mut all = HashMap::new();
        for g in ALL {
            all.entry(g.name)
                .or_insert_with(|| match pvgate_codegen::compile(g.text) {
                    Ok(ir) => Interpreter::new(ir),
                    Err(e) => panic!("{}", e.render(g.name, g.text)),
                });
        }
        all
    });
    &all[g.name]
}

/// The table sets of each policy, in `ALL`'s order (its shapes are
/// emitted in a row).
fn by_policy() -> Vec<&'static [Generated]> {
    ALL.chunk_by(|a, b| a.name == b.name).collect()
}

/// Policies this large are checked on a sample of their boundaries: the
/// interpreter scans every rule for every probe.
const SAMPLED_ABOVE_RULES: usize = 3000;

/// Keeps every input of a small policy, every 37th of a large one.
fn sample<T: Copy>(interp: &Interpreter, all: &[T]) -> Vec<T> {
    let step = if interp.ir().rules.len() > SAMPLED_ABOVE_RULES {
        37
    } else {
        1
    };
    all.iter().step_by(step).copied().collect()
}

/// Every `step`th input (every one for the shipped policies, every 7th
/// for a random one: 7 is prime to the 32 MSRs of a map word, so every
/// bit position is still checked), and [`sample`] of a large policy.
fn sample_region(g: &Generated, interp: &Interpreter, all: &[u32]) -> Vec<u32> {
    let step = if g.name.starts_with("policy/") { 1 } else { 7 };
    let every: Vec<u32> = all.iter().step_by(step).copied().collect();
    sample(interp, &every)
}

/// Holds every shape of one policy to the interpreter's rule and verdict
/// for an MSR access; returns the number of comparisons.
fn check_msr(shapes: &[Generated], interp: &Interpreter, index: u32) -> u64 {
    let mut checked = 0;
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            for access in Access::ALL {
                let want = interp.msr_rule(kind, phase, access, index);
                let verdict = decide_msr(interp, kind, phase, access, index).verdict;
                for g in shapes {
                    let at = || {
                        format!(
                            "{} ({}): {kind:?} {phase:?} {access:?} msr {index:#x}",
                            g.name, g.shape
                        )
                    };
                    assert_eq!((g.msr_rule)(kind, phase, access, index), want, "{}", at());
                    assert_eq!(
                        (g.msr_verdict)(kind, phase, access, index),
                        verdict,
                        "verdict of {}",
                        at()
                    );
                    checked += 2;
                }
            }
        }
    }
    checked
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
fn there_are_shipped_random_and_large_policies_in_every_shape() {
    for name in ["policy/default.toml", "policy/strict.toml"] {
        for shape in ["match", "sorted", "bitmap", "auto"] {
            assert!(
                ALL.iter().any(|g| g.name == name && g.shape == shape),
                "{name} ({shape})"
            );
        }
    }
    assert!(ALL.iter().filter(|g| g.name.starts_with("random")).count() >= 80);
    assert!(
        ALL.iter()
            .any(|g| g.name == "large_policy 10000" && g.shape == "auto")
    );
    // Every group holds one policy's shapes and no policy is split.
    let groups = by_policy();
    let mut names: Vec<&str> = groups.iter().map(|g| g[0].name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), groups.len());
}

/// The shapes the checks below run through, read from the code the
/// emitter writes for each policy in the `auto` and `bitmap` shapes.
#[test]
fn every_msr_verdict_shape_is_exercised() {
    let (mut map, mut sparse, mut searched, mut plain) = (0, 0, 0, 0);
    for g in ALL
        .iter()
        .filter(|g| g.shape == "auto" || g.shape == "bitmap")
    {
        let shape = if g.shape == "auto" {
            Shape::Auto
        } else {
            Shape::Bitmap
        };
        let code = rust_shaped(interpreter(g).ir(), g.name, shape);
        // Each (kind, phase, access)'s verdict function, by what it holds.
        for f in code.split("\nfn msr_verdict_").skip(1) {
            let f = &f[..f.find("\n}\n").expect("a function body")];
            let maps = f.contains(".verdict(index)");
            // A verdict `match` arm: `0x… => Verdict::…`.
            let arms = f
                .lines()
                .any(|l| l.trim_start().starts_with("0x") && l.contains("=> Verdict::"));
            map += usize::from(maps);
            sparse += usize::from(maps && arms);
            plain += usize::from(!maps && arms && g.shape == "auto");
            searched += usize::from(f.contains("rule_verdict("));
        }
    }
    assert!(map >= 20, "verdict maps in {map} functions");
    assert!(sparse >= 5, "maps plus sparse match arms in {sparse}");
    assert!(
        plain >= 5,
        "match only (sparse, picked by density) in {plain}"
    );
    assert!(searched >= 2, "sorted-slice verdicts in {searched}");
    // The image's policies: both regions mapped in the default policy.
    let default = ALL
        .iter()
        .find(|g| g.name == "policy/default.toml")
        .expect("the default policy");
    let code = rust_shaped(interpreter(default).ir(), default.name, Shape::Auto);
    assert!(code.contains("_WRITE_LOW: VerdictMap<"), "{code}");
    assert!(code.contains("_WRITE_HIGH: VerdictMap<"), "{code}");
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
    // Ask the interpreter once per input and hold every shape of the
    // policy to its answer.
    for shapes in by_policy() {
        let interp = interpreter(&shapes[0]);
        for index in sample(interp, &msr_probes(interp)) {
            checked += check_msr(shapes, interp, index);
        }
    }
    assert!(checked > 10_000, "only {checked} probes");
}

/// Every index of KVM's two MSR-bitmap regions (where the verdict maps
/// are), the words around them and the regions' ends, in every shape.
#[test]
fn msr_lookups_match_on_every_index_of_the_bitmap_regions() {
    let mut checked = 0u64;
    for shapes in by_policy() {
        let interp = interpreter(&shapes[0]);
        let mut indices: Vec<u32> = Vec::new();
        for base in [0u32, 0xc000_0000] {
            indices.extend(base.saturating_sub(64)..base);
            indices.extend(base..base + 0x2000 + 64);
        }
        indices.push(u32::MAX);
        for index in sample_region(&shapes[0], interp, &indices) {
            checked += check_msr(shapes, interp, index);
        }
    }
    assert!(checked > 500_000, "only {checked} probes");
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
                           index in prop_oneof![any::<u32>(), 0u32..0x2040, 0xc000_0000u32..0xc000_2040], leaf in any::<u32>(), subleaf in 0u32..4) {
        let g = &ALL[which];
        let interp = interpreter(g);
        prop_assert_eq!((g.msr_rule)(kind, phase, access, index), interp.msr_rule(kind, phase, access, index));
        prop_assert_eq!((g.msr_verdict)(kind, phase, access, index), decide_msr(interp, kind, phase, access, index).verdict);
        prop_assert_eq!((g.cpuid_rule)(kind, phase, leaf, subleaf), interp.cpuid_rule(kind, phase, leaf, subleaf));
    }
}
