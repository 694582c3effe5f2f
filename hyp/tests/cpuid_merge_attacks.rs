//! Proposals a hostile host could send to `vcpu_after_set_cpuid`, aimed
//! at the shortcuts of the merge (`hyp/src/handlers/cpuid_merge.rs`,
//! `cpuid_keys.rs`): the walk of one or two increasing runs without a
//! sort (duplicates where the runs meet, a second run that interleaves
//! with the first or stops increasing after a duplicate, run boundaries at
//! the first and last entry), the copy of runs of unsupported zero entries
//! (duplicates inside them, a leaf nothing supports that the CPU model
//! has, unsupported subleaves beside supported ones), the table's
//! capacity, the extreme keys, the hypervisor leaves, a CPU model that
//! repeats a key, supported-CPUID tables of more than 64 entries and with
//! overlapping entries, reject mode, after the first run, and the merge
//! while the supported bases are still being computed. Every result (error, outputs,
//! replaced count, rule, the table handed back, the vCPU's table) must be
//! the reference merge's (`merge_reference`), which is written the simple
//! way; each attack also checks it reached the case it aims at.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common;
mod merge_reference;

use common::*;
use merge_reference::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

use pvgate_codegen::Interpreter;
use pvgate_gate::{
    Access, CpuidSupport, Phase, Policy, PvCall, RegSupport, Rule, RuleId, ViolationMode, VmKind,
};
use pvgate_hyp::{
    CallError, CpuModel, CpuidEntry, CpuidTable, Hyp, HypConfig, MAX_CPUID_ENTRIES, VcpuHandle,
    supported_base,
};

/// A leaf nothing in the shipped supported-CPUID table covers, the
/// reference test's padding leaf.
const PAD_LEAF: u32 = 0x4000_00ff;

/// A policy with another supported-CPUID table and violation mode.
struct Supporting {
    inner: Interpreter,
    support: Vec<CpuidSupport>,
    mode: ViolationMode,
}

impl Policy for Supporting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn digest(&self) -> [u8; 32] {
        self.inner.digest()
    }
    fn violation_mode(&self) -> ViolationMode {
        self.mode
    }
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        self.inner.msr_rule(kind, phase, access, index)
    }
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        self.inner.cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        self.inner.pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.inner.rule(id)
    }
    fn cpuid_support(&self) -> &[CpuidSupport] {
        &self.support
    }
}

/// One hypervisor, and a `setup` vCPU of each kind on it.
struct Bench<P: Policy> {
    h: Box<SmallHyp<P>>,
    vcpus: [(VmKind, VcpuHandle); 2],
}

impl<P: Policy> Bench<P> {
    fn new(policy: P, cpu: CpuModel) -> Self {
        let h: Box<SmallHyp<P>> = Box::new(Hyp::with_cpu(policy, cpu, HypConfig::DEFAULT));
        let vcpus = [VmKind::Protected, VmKind::Normal].map(|k| (k, vcpu_in(&h, k, Phase::Setup)));
        Bench { h, vcpus }
    }

    /// The supported table offered to `kind`.
    fn supported(&self, kind: VmKind) -> Vec<CpuidEntry> {
        self.h.supported_cpuid(kind).to_vec()
    }

    /// Checks `proposal` on the vCPU of `kind` against the reference.
    fn check(&self, kind: VmKind, proposal: &[CpuidEntry]) -> Expected {
        let v = self.vcpus.iter().find(|(k, _)| *k == kind).unwrap().1;
        check(&self.h, kind, v, proposal)
    }

    /// Checks `proposal` on both vCPUs.
    fn check_both(&self, proposal: &[CpuidEntry]) -> [Expected; 2] {
        [VmKind::Protected, VmKind::Normal].map(|k| self.check(k, proposal))
    }
}

fn z(leaf: u32, subleaf: u32) -> CpuidEntry {
    CpuidEntry::zero(leaf, subleaf)
}

fn dup(e: &CpuidEntry) -> Option<CallError> {
    Some(CallError::CpuidDuplicate {
        leaf: e.leaf,
        subleaf: e.subleaf,
    })
}

/// `n` zero subleaves of the padding leaf from `first`.
fn padding(first: u32, n: usize) -> Vec<CpuidEntry> {
    (0..n as u32).map(|s| z(PAD_LEAF, first + s)).collect()
}

fn cat(parts: &[&[CpuidEntry]]) -> Vec<CpuidEntry> {
    parts.concat()
}

fn default_bench() -> Bench<pvgate::CompiledPolicy> {
    Bench::new(pvgate::POLICY, reference_cpu())
}

#[test]
fn a_duplicate_where_the_two_runs_meet_is_named() {
    let b = default_bench();
    let s = b.supported(VmKind::Protected);
    let n = s.len();
    assert!(n > 8);
    for k in [1, 2, n / 2, n - 1] {
        // The second run starts with the first run's last key.
        let p = cat(&[&s[..k], &s[k - 1..]]);
        for e in b.check_both(&p) {
            assert_eq!(e.error, dup(&s[k - 1]), "split {k}");
        }
        // The second run starts with the first run's first key.
        let p = cat(&[&s[..k], &s[..1], &s[k..]]);
        for e in b.check_both(&p) {
            assert_eq!(e.error, dup(&s[0]), "split {k}");
        }
        // The second run repeats the whole first run.
        let p = cat(&[&s[..k], &s[..k], &s[k..]]);
        for e in b.check_both(&p) {
            assert_eq!(e.error, dup(&s[0]), "split {k}");
        }
        // The second run ends with a duplicate of the first run's last.
        let p = cat(&[&s[k..], &s[..k], &s[n - 1..]]);
        for e in b.check_both(&p) {
            assert_eq!(e.error, dup(&s[n - 1]), "split {k}");
        }
    }
}

#[test]
fn a_second_run_interleaving_with_the_first_is_merged_in_key_order() {
    let b = default_bench();
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        let evens: Vec<_> = s.iter().step_by(2).copied().collect();
        let odds: Vec<_> = s.iter().skip(1).step_by(2).copied().collect();
        // Accepted whichever run comes first.
        assert_eq!(b.check(kind, &cat(&[&evens, &odds])).error, None);
        assert_eq!(b.check(kind, &cat(&[&odds, &evens])).error, None);
        // A second run wholly below the first.
        let half = s.len() / 2;
        assert_eq!(b.check(kind, &cat(&[&s[half..], &s[..half]])).error, None);
        // One key of the first run again in the second, at its place in
        // key order: the lowest, a middle and the highest.
        for i in [0, evens.len() / 2, evens.len() - 1] {
            let mut second = odds.clone();
            second.push(evens[i]);
            second.sort_by_key(key);
            let e = b.check(kind, &cat(&[&evens, &second]));
            assert_eq!(e.error, dup(&evens[i]));
        }
        // Two keys of the first run again: the lower one is named (its
        // first entry comes first in the proposal).
        let mut second = odds.clone();
        second.extend([evens[1], evens[evens.len() - 2]]);
        second.sort_by_key(key);
        assert_eq!(
            b.check(kind, &cat(&[&evens, &second])).error,
            dup(&evens[1])
        );
        // Entries changed (random values) in both runs: the first replaced
        // register is the first in the proposal's order.
        let flip = |e: &CpuidEntry| CpuidEntry {
            ecx: e.ecx ^ 0x8000_0001,
            edx: !e.edx,
            ..*e
        };
        let first: Vec<_> = evens.iter().map(flip).collect();
        let second: Vec<_> = odds.iter().map(flip).collect();
        let e = b.check(kind, &cat(&[&second, &first]));
        assert!(kind == VmKind::Normal || e.replaced > 0);
    }
}

#[test]
fn a_second_run_that_stops_increasing_after_a_duplicate_is_sorted() {
    let b = default_bench();
    let s = b.supported(VmKind::Protected);
    let (k1, k2, k3, k5) = (s[1], s[2], s[3], s[5]);
    let n = s.len();
    for (p, named) in [
        // The runs meet at k5 first, but k2 (position 0) comes again later.
        (vec![k2, k5, k5, k1, k2], k2),
        (vec![k2, k5, k5, k3], k5),
        // The second run increases, meets the first at k5, then drops to
        // a duplicate of the first run's first key at the very end.
        (cat(&[&s[..6], &s[5..], &[s[0]]]), s[0]),
        // Only the drop, no duplicate: sorted and accepted.
        (cat(&[&s[3..6], &s[6..], &s[..3]]), s[0]),
        // A duplicate inside the second run only, after it meets nothing.
        (cat(&[&s[n - 2..], &s[..3], &s[2..3]]), s[2]),
    ] {
        for e in b.check_both(&p) {
            if p.iter().filter(|e| key(e) == key(&named)).count() > 1 {
                assert_eq!(e.error, dup(&named), "{p:x?}");
            } else {
                assert_eq!(e.error, None, "{p:x?}");
            }
        }
    }
}

#[test]
fn run_boundaries_at_the_first_and_last_entry() {
    let b = default_bench();
    let s = b.supported(VmKind::Protected);
    let (lo, hi) = (s[0], s[s.len() - 1]);
    assert_eq!(b.check_both(&[])[0].error, None);
    assert_eq!(b.check_both(&[lo])[0].error, None);
    assert_eq!(b.check_both(&[hi, lo])[0].error, None);
    assert_eq!(b.check_both(&[lo, lo])[0].error, dup(&lo));
    assert_eq!(b.check_both(&[hi, hi, lo])[0].error, dup(&hi));
    // 256 entries: 255 increasing (the base's entries, in the proposal,
    // below the padding), then one entry out of order.
    let base = s.len();
    let run = cat(&[&s, &padding(0x100, MAX_CPUID_ENTRIES - 1 - base)]);
    assert_eq!(run.len(), MAX_CPUID_ENTRIES - 1);
    for last in [
        z(0, 0),                  // below every key: fits (the base is proposed)
        z(PAD_LEAF, 0),           // in the padding's leaf, below its subleaves
        z(PAD_LEAF, 0x100),       // a duplicate of the first padding entry
        run[run.len() - 1],       // a duplicate of the previous entry
        lo,                       // a duplicate of entry 0
        z(u32::MAX, u32::MAX),    // increasing: one run of 256
        z(PAD_LEAF, 0x100 + 200), // a duplicate inside the padding
    ] {
        let p = cat(&[&run, &[last]]);
        assert_eq!(p.len(), MAX_CPUID_ENTRIES);
        let dupe = run.iter().any(|e| key(e) == key(&last));
        for e in b.check_both(&p) {
            if dupe {
                assert_eq!(e.error, dup(&last), "last {last:x?}");
            } else {
                // Protected: the base is proposed, so 256 fit; normal: its
                // base's other entries are too many.
                assert!(
                    matches!(e.error, None | Some(CallError::CpuidTooLarge { .. })),
                    "last {last:x?}"
                );
            }
        }
    }
    // One entry, then 255 increasing: the first is the highest key or a
    // duplicate of one of them.
    for first in [z(u32::MAX, 0), run[0], run[run.len() - 1]] {
        let p = cat(&[&[first], &run]);
        let dupe = run.iter().any(|e| key(e) == key(&first));
        for e in b.check_both(&p) {
            if dupe {
                assert_eq!(e.error, dup(&first));
            }
        }
    }
}

#[test]
fn duplicates_inside_the_runs_of_unsupported_zeros() {
    let b = default_bench();
    let s = b.supported(VmKind::Protected);
    let pad = padding(0x100, 40);
    for p in [
        // Adjacent, inside one sorted run of padding.
        cat(&[&s, &pad[..10], &pad[9..]]),
        // Far apart: the second run is padding again.
        cat(&[&s, &pad, &pad[20..21]]),
        // The whole padding twice.
        cat(&[&pad, &s, &pad]),
        // Padding first, a duplicate of its last entry after the base.
        cat(&[&pad, &s, &pad[39..]]),
        // Padding in the second run, with a duplicate inside it (the
        // second run does not increase).
        cat(&[&s[..5], &pad[..20], &pad[10..11], &s[5..]]),
    ] {
        let named = p
            .iter()
            .enumerate()
            .find(|(i, e)| p[i + 1..].iter().any(|f| key(f) == key(e)))
            .map(|(_, e)| *e)
            .unwrap();
        for e in b.check_both(&p) {
            assert_eq!(e.error, dup(&named));
        }
    }
    // No duplicate: padding split across the two runs, interleaving.
    let evens: Vec<_> = pad.iter().step_by(2).copied().collect();
    let odds: Vec<_> = pad.iter().skip(1).step_by(2).copied().collect();
    for e in b.check_both(&cat(&[&s, &evens, &odds])) {
        assert_eq!(e.error, None);
    }
    // Some padding entries not zero, inside and at the ends of a run.
    let mut noisy = pad.clone();
    for i in [0, 13, 39] {
        noisy[i].ebx = 1 << (i % 32);
    }
    let e = b.check(VmKind::Protected, &cat(&[&s, &noisy]));
    assert_eq!(e.replaced, 3);
}

/// A leaf the CPU model has and nothing in the supported table covers
/// (the protected base holds it as zeros), with its subleaves.
fn bare_model_leaf(cpu: &CpuModel, support: &[CpuidSupport]) -> (u32, Vec<u32>) {
    let bare = |leaf: u32| {
        !support
            .iter()
            .any(|s| s.leaf_first <= leaf && leaf <= s.leaf_last)
    };
    let leaf = cpu.base.iter().map(|e| e.leaf).find(|&l| bare(l)).unwrap();
    let subs = cpu
        .base
        .iter()
        .filter(|e| e.leaf == leaf)
        .map(|e| e.subleaf)
        .collect();
    (leaf, subs)
}

#[test]
fn zeros_of_a_leaf_nothing_supports_around_the_models_entries() {
    // The reference CPU, plus model entries of the padding leaf amid the
    // padding's subleaves, not zero in the model.
    let mut cpu = reference_cpu();
    for sub in [0x105, 0x10a, 0x1ff] {
        cpu.base
            .push(CpuidEntry {
                eax: 0xdead_beef,
                edx: sub,
                ..z(PAD_LEAF, sub)
            })
            .unwrap();
    }
    cpu.base.sort_by_key(key);
    let b = Bench::new(pvgate::POLICY, cpu.clone());
    let (leaf, subs) = bare_model_leaf(&cpu, b.h.policy().cpuid_support());
    // The supported table without the padding leaf's entries (which it
    // holds as zeros for a protected VM).
    let base = supported_base(b.h.policy(), &cpu, VmKind::Protected);
    assert!(
        base.iter()
            .any(|e| key(e) == (PAD_LEAF, 0x105) && e.eax == 0)
    );
    let s: Vec<_> = b
        .supported(VmKind::Protected)
        .into_iter()
        .filter(|e| e.leaf != PAD_LEAF)
        .collect();
    let pad = padding(0x100, 20);
    let model_leaf: Vec<_> = (0..=subs.iter().max().unwrap() + 2)
        .map(|sub| z(leaf, sub))
        .collect();
    let without = |p: &[CpuidEntry], sub: u32| -> Vec<CpuidEntry> {
        p.iter().filter(|e| e.subleaf != sub).copied().collect()
    };
    for p in [
        cat(&[&b.supported(VmKind::Protected), &pad]),
        cat(&[&s, &pad]),
        cat(&[&s, &without(&pad, 0x105)]),
        cat(&[&s, &without(&without(&pad, 0x105), 0x10a)]),
        cat(&[&without(&pad, 0x10a), &s]),
        cat(&[&pad[10..], &s, &pad[..10]]),
        cat(&[&model_leaf, &s]),
        cat(&[&s, &model_leaf]),
        cat(&[&s, &without(&model_leaf, subs[0])]),
        cat(&[&s[..3], &model_leaf, &s[3..]]),
    ] {
        b.check_both(&p);
    }
    // The model's value proposed for the bare entry: replaced by zeros.
    let mut p = cat(&[&s, &pad]);
    let i = p
        .iter()
        .position(|e| e.subleaf == 0x105 && e.leaf == PAD_LEAF)
        .unwrap();
    p[i] = cpu.base_entry(PAD_LEAF, 0x105);
    let e = b.check(VmKind::Protected, &p);
    assert_eq!(e.replaced, 2);
    assert_eq!(e.out.unwrap()[2], u64::from(PAD_LEAF) << 32 | 0x105);
}

#[test]
fn unsupported_subleaves_beside_supported_ones() {
    let b = Bench::new(careless(), reference_cpu());
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        let mut extra = Vec::new();
        for leaf in [0x1, 0x4, 0x7, 0xa, 0xb, 0xd, 0x4000_0000, 0x4000_0010] {
            for sub in [1, 2, 3, 5, 40, 63, 64, u32::MAX] {
                if !s.iter().any(|e| key(e) == (leaf, sub)) {
                    extra.push(z(leaf, sub));
                }
            }
        }
        let mut all = cat(&[&s, &extra]);
        all.sort_by_key(key);
        // Sorted, in two runs either way, and reversed.
        b.check(kind, &all);
        b.check(kind, &cat(&[&s, &extra]));
        b.check(kind, &cat(&[&extra, &s]));
        let mut rev = all.clone();
        rev.reverse();
        b.check(kind, &rev);
        // The same keys with values: every one decided on its own.
        let noisy: Vec<_> = all
            .iter()
            .enumerate()
            .map(|(i, e)| CpuidEntry {
                eax: e.eax ^ (i as u32).wrapping_mul(0x9e37_79b9),
                ecx: e.ecx | 1 << (i % 32),
                ..*e
            })
            .collect();
        b.check(kind, &noisy);
        let e = b.check(kind, &cat(&[&noisy[1..], &noisy[..1]]));
        assert!(kind == VmKind::Normal || e.replaced > 0);
    }
}

#[test]
fn the_extreme_keys_and_the_hypervisor_leaves() {
    let b = Bench::new(careless(), reference_cpu());
    let s = b.supported(VmKind::Protected);
    let ends = [
        z(0, u32::MAX),
        z(1, u32::MAX),
        z(u32::MAX, 0),
        z(u32::MAX, 1),
        z(u32::MAX, u32::MAX),
    ];
    let hv: Vec<_> = s
        .iter()
        .filter(|e| (0x4000_0000..=0x4fff_ffff).contains(&e.leaf))
        .copied()
        .collect();
    assert!(!hv.is_empty());
    let noisy = |e: &CpuidEntry| CpuidEntry {
        eax: !e.eax,
        ebx: e.ebx ^ 0x20,
        ..*e
    };
    let hv_noisy: Vec<_> = hv.iter().map(noisy).collect();
    let ends_noisy: Vec<_> = ends.iter().map(noisy).collect();
    let hv_subs: Vec<_> = hv.iter().map(|e| z(e.leaf, e.subleaf + 1)).collect();
    for p in [
        cat(&[&s, &ends]),
        cat(&[&ends, &s]),
        cat(&[&s, &ends_noisy]),
        cat(&[&ends_noisy[2..], &s, &ends_noisy[..2]]),
        cat(&[&s, &ends[4..], &ends[4..]]),
        cat(&[&ends[4..], &s, &ends[4..]]),
        cat(&[&hv_noisy, &s]),
        cat(&[&s, &hv_noisy]),
        cat(&[&s, &hv_subs]),
        cat(&[&hv_subs, &s, &hv_noisy]),
        hv_noisy.clone(),
        ends.to_vec(),
    ] {
        b.check_both(&p);
    }
}

#[test]
fn the_capacity_exactly_and_one_past_it() {
    let b = default_bench();
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        let room = MAX_CPUID_ENTRIES - s.len();
        // Only padding: the base's left-out entries fill the rest.
        for n in [room - 1, room, room + 1, MAX_CPUID_ENTRIES] {
            let e = b.check(kind, &padding(0, n));
            let fits = n <= room;
            assert_eq!(e.error.is_none(), fits, "{kind:?} {n}");
            if !fits {
                assert_eq!(
                    e.error,
                    Some(CallError::CpuidTooLarge {
                        count: (n + s.len()) as u64
                    })
                );
            }
        }
        // The base minus one entry, with padding to 256: the left-out entry
        // is one too many.
        let p = cat(&[&s[1..], &padding(0, room + 1)]);
        assert_eq!(p.len(), MAX_CPUID_ENTRIES);
        assert!(matches!(
            b.check(kind, &p).error,
            Some(CallError::CpuidTooLarge { count: 257 })
        ));
        // The same in two runs and with a duplicate (which wins).
        b.check(kind, &cat(&[&padding(0, room + 1), &s[1..]]));
        let mut d = cat(&[&padding(0, room + 1), &s[1..]]);
        d[MAX_CPUID_ENTRIES - 1] = d[0];
        assert_eq!(b.check(kind, &d).error, dup(&d[0]));
    }
}

#[test]
fn a_full_cpu_model_loses_the_hypervisor_leaves_only() {
    let mut cpu = reference_cpu();
    let mut sub = 0;
    while cpu.base.len() < MAX_CPUID_ENTRIES {
        cpu.base
            .push(CpuidEntry {
                ecx: sub,
                ..z(0x8000_00fe, sub)
            })
            .unwrap();
        sub += 1;
    }
    let b = Bench::new(pvgate::POLICY, cpu);
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        assert_eq!(s.len(), MAX_CPUID_ENTRIES);
        assert_eq!(b.check(kind, &s).error, None);
        let mut shuffled = s.clone();
        shuffled.rotate_left(100);
        assert_eq!(b.check(kind, &shuffled).error, None);
        b.check(kind, &[]);
        // One key more is one too many.
        let mut more = s[1..].to_vec();
        more.push(z(PAD_LEAF, 0));
        assert!(matches!(
            b.check(kind, &more).error,
            Some(CallError::CpuidTooLarge { count: 257 })
        ));
        b.check(kind, &[z(0x4000_0000, 0), z(0x4000_0001, 0)]);
    }
}

#[test]
fn a_sorted_cpu_model_that_repeats_keys() {
    // Sorted (so the model is read with a cursor), one key of a supported
    // leaf and one of a leaf nothing supports repeated with other values.
    let mut cpu = reference_cpu();
    let leaf1 = cpu.base_entry(1, 0);
    let (bare, subs) = bare_model_leaf(&cpu, pvgate::POLICY.cpuid_support());
    let bare_entry = cpu.base_entry(bare, subs[0]);
    for e in [
        CpuidEntry {
            ecx: !leaf1.ecx,
            ..leaf1
        },
        CpuidEntry {
            eax: !bare_entry.eax,
            ..bare_entry
        },
    ] {
        cpu.base.push(e).unwrap();
    }
    cpu.base.sort_by_key(key);
    let b = Bench::new(pvgate::POLICY, cpu);
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        let without = |k: (u32, u32)| -> Vec<CpuidEntry> {
            s.iter().filter(|e| key(e) != k).copied().collect()
        };
        for p in [
            s.clone(),
            without((1, 0)),
            without((bare, subs[0])),
            cat(&[&without((1, 0)), &[z(1, 0)]]),
            cat(&[&[z(bare, subs[0])], &without((bare, subs[0]))]),
            vec![z(1, 0), z(bare, subs[0])],
            vec![],
        ] {
            b.check(kind, &p);
        }
    }
}

/// Supported-CPUID tables unlike the shipped one: ranges of leaves,
/// overlapping entries (a subleaf's entry before or after its leaf's),
/// hypervisor leaves of one subleaf, and `count` entries in all.
fn support_table(count: usize) -> Vec<CpuidSupport> {
    let passes = |pass: u32, set: u32| [RegSupport { pass, set }; 4];
    let mut t = vec![
        CpuidSupport {
            leaf_first: 7,
            leaf_last: 7,
            subleaf: Some(0),
            regs: passes(0x0f0f_0f0f, 0x1000),
        },
        CpuidSupport {
            leaf_first: 0,
            leaf_last: 0xd,
            subleaf: None,
            regs: passes(0xffff_fff0, 0),
        },
        CpuidSupport {
            leaf_first: 0xd,
            leaf_last: 0xd,
            subleaf: Some(1),
            regs: passes(u32::MAX, 0),
        },
        CpuidSupport {
            leaf_first: 0x4000_0000,
            leaf_last: 0x4000_0000,
            subleaf: None,
            regs: passes(0, 0x4b4d_564b),
        },
        CpuidSupport {
            leaf_first: 0x4000_0003,
            leaf_last: 0x4000_0003,
            subleaf: Some(3),
            regs: passes(0, 0x33),
        },
        CpuidSupport {
            leaf_first: 0x4000_0003,
            leaf_last: 0x4000_0003,
            subleaf: Some(5),
            regs: passes(0, 0),
        },
        CpuidSupport {
            leaf_first: 0x8000_0000,
            leaf_last: u32::MAX,
            subleaf: Some(0),
            regs: passes(0x00ff_00ff, 0),
        },
    ];
    let mut leaf = 0x10u32;
    while t.len() < count {
        t.push(CpuidSupport {
            leaf_first: leaf,
            leaf_last: leaf + 1,
            subleaf: leaf.is_multiple_of(3).then_some(leaf % 5),
            regs: passes(leaf.wrapping_mul(0x0101_0101), leaf & 0x10),
        });
        leaf += 1;
    }
    t
}

#[test]
fn supported_tables_of_up_to_and_over_64_entries() {
    for count in [7, 63, 64, 65, 100] {
        for mode in [ViolationMode::Filter, ViolationMode::Reject] {
            let policy = Supporting {
                inner: interpreter("policy/default.toml"),
                support: support_table(count),
                mode,
            };
            let b = Bench::new(policy, reference_cpu());
            for kind in [VmKind::Protected, VmKind::Normal] {
                let s = b.supported(kind);
                assert_eq!(b.check(kind, &s).error, None, "{count} {mode:?}");
                let mut keys: Vec<_> = s.iter().map(key).collect();
                keys.extend([
                    (7, 1),
                    (0xd, 2),
                    (0x11, 0),
                    (0x12, 2),
                    (0x3f, 4),
                    (0x4000_0003, 3),
                    (0x4000_0003, 4),
                    (0x4000_0003, 5),
                    (0x8000_0001, 1),
                    (u32::MAX, 0),
                ]);
                // Every entry's leaves (one at index 64 and past it, too).
                for e in b.h.policy().cpuid_support() {
                    keys.extend([(e.leaf_first, e.subleaf.unwrap_or(0)), (e.leaf_last, 1)]);
                }
                keys.sort();
                keys.dedup();
                keys.truncate(MAX_CPUID_ENTRIES);
                let zeros: Vec<_> = keys.iter().map(|&(l, s)| z(l, s)).collect();
                let ones: Vec<_> = keys
                    .iter()
                    .map(|&(l, s)| CpuidEntry {
                        eax: u32::MAX,
                        ebx: l,
                        ecx: s,
                        edx: 0x8000_0000,
                        ..z(l, s)
                    })
                    .collect();
                for all in [&zeros, &ones] {
                    let evens: Vec<_> = all.iter().step_by(2).copied().collect();
                    let odds: Vec<_> = all.iter().skip(1).step_by(2).copied().collect();
                    b.check(kind, all);
                    b.check(kind, &cat(&[&odds, &evens]));
                    let mut rev = all.to_vec();
                    rev.reverse();
                    b.check(kind, &rev);
                    b.check(kind, &all[all.len() / 2..]);
                }
            }
        }
    }
}

#[test]
fn reject_mode_keeps_the_vcpus_table_whatever_the_runs() {
    let b = Bench::new(interpreter("policy/strict.toml"), reference_cpu());
    for kind in [VmKind::Protected, VmKind::Normal] {
        let s = b.supported(kind);
        // Accepted first, so the vCPU has a table to keep.
        assert_eq!(b.check(kind, &s).error, None);
        let changed: Vec<_> = s.iter().map(|e| CpuidEntry { ecx: !e.ecx, ..*e }).collect();
        let evens: Vec<_> = changed.iter().step_by(2).copied().collect();
        let odds: Vec<_> = changed.iter().skip(1).step_by(2).copied().collect();
        for p in [
            cat(&[&odds, &evens]),
            cat(&[&s[1..], &changed[..1]]),
            cat(&[&padding(0, 30), &changed[5..6]]),
            cat(&[&s[..4], &padding(0, 30), &changed[4..]]),
        ] {
            let e = b.check(kind, &p);
            if kind == VmKind::Protected {
                assert!(matches!(e.error, Some(CallError::CpuidRejected { .. })));
                assert_eq!(e.vcpu, s);
            }
        }
    }
}

#[test]
fn after_the_first_run_duplicates_are_named_in_the_proposals_order() {
    let h = hyp(pvgate::POLICY);
    for kind in [VmKind::Protected, VmKind::Normal] {
        let v = vcpu_in(&h, kind, Phase::Running);
        let current = snapshot(&h, v).cpuid.to_vec();
        let mut t = CpuidTable::new();
        if h.vcpu_after_set_cpuid(v, &mut t).error
            == Some(CallError::Denied {
                call: PvCall::VcpuAfterSetCpuid,
                kind,
                phase: Phase::Running,
            })
        {
            // The policy refuses the call before any check.
            assert_eq!(kind, VmKind::Protected);
            continue;
        }
        let send = |p: &[CpuidEntry]| {
            let mut t = CpuidTable::new();
            for e in p {
                t.push(*e).unwrap();
            }
            let o = h.vcpu_after_set_cpuid(v, &mut t);
            assert_eq!(t.as_slice(), p, "the table handed back is the proposal");
            assert_eq!(snapshot(&h, v).cpuid.as_slice(), current.as_slice());
            o
        };
        let n = current.len();
        let evens: Vec<_> = current.iter().step_by(2).copied().collect();
        let odds: Vec<_> = current.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(send(&current).error, None);
        assert_eq!(send(&cat(&[&odds, &evens])).error, None);
        for (p, named) in [
            (cat(&[&current, &current[n - 1..]]), current[n - 1]),
            (cat(&[&current[1..], &current[..2]]), current[1]),
            (cat(&[&evens, &odds, &evens[3..4]]), evens[3]),
            (
                vec![current[2], current[0], current[2], current[0]],
                current[2],
            ),
        ] {
            assert_eq!(send(&p).error, dup(&named), "{p:x?}");
        }
        let mut changed = current.clone();
        changed[n / 2].eax ^= 1;
        assert!(matches!(
            send(&changed).error,
            Some(CallError::CpuidChanged { .. })
        ));
    }
}

/// Proposals aimed at the boundary of two runs: distinct keys of the pool
/// in two increasing runs (a random interleave), then one of: a key of
/// the first run again in the second at its place (the second run still
/// increasing), at the second run's start or end, two adjacent entries of
/// the second run swapped, the last entry moved to the front.
fn run_boundary(
    pool: &[(u32, u32)],
    supported: &[CpuidEntry],
    picks: &[(usize, bool, u8)],
    cut: u64,
    mutation: u8,
    at: usize,
) -> Vec<CpuidEntry> {
    let mut keys: Vec<(u32, u32)> = picks
        .iter()
        .map(|&(i, _, _)| pool[i % pool.len()])
        .collect();
    keys.sort();
    keys.dedup();
    let value = |k: (u32, u32), noisy: bool, bit: u8| {
        let mut e = supported
            .iter()
            .find(|e| key(e) == k)
            .copied()
            .unwrap_or(z(k.0, k.1));
        if noisy {
            e.ecx ^= 1 << (bit % 32);
        }
        e
    };
    let entries: Vec<CpuidEntry> = keys
        .iter()
        .zip(picks)
        .map(|(&k, &(_, noisy, bit))| value(k, noisy, bit))
        .collect();
    let (mut first, mut second): (Vec<_>, Vec<_>) = entries
        .iter()
        .enumerate()
        .partition(|(i, _)| cut >> (i % 64) & 1 == 0);
    let strip = |v: &mut Vec<(usize, &CpuidEntry)>| v.iter().map(|(_, e)| **e).collect::<Vec<_>>();
    let (first, mut second) = (strip(&mut first), strip(&mut second));
    if !first.is_empty() {
        let again = first[at % first.len()];
        match mutation % 5 {
            0 => {
                second.push(again);
                second.sort_by_key(key);
            }
            1 => second.insert(0, again),
            2 => second.push(again),
            3 if second.len() >= 2 => {
                let i = at % (second.len() - 1);
                second.swap(i, i + 1);
            }
            _ => {
                if let Some(last) = second.pop() {
                    second.insert(0, last);
                }
            }
        }
    }
    let mut p = cat(&[&first, &second]);
    p.truncate(MAX_CPUID_ENTRIES);
    p
}

fn boundary_check<P: Policy>(policy: P, cases: u32) {
    let b = Bench::new(policy, reference_cpu());
    for (kind, v) in b.vcpus {
        let supported = b.supported(kind);
        let mut pool: Vec<(u32, u32)> = supported.iter().map(key).collect();
        pool.extend((0..40).map(|s| (PAD_LEAF, s)));
        pool.extend([(7, 1), (0xd, 40), (0, u32::MAX), (u32::MAX, u32::MAX)]);
        let config = ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let pick = (any::<usize>(), prop::bool::weighted(0.1), any::<u8>());
        proptest!(config, |(
            picks in prop::collection::vec(pick, 0..120),
            cut in any::<u64>(),
            mutation in any::<u8>(),
            at in any::<usize>(),
        )| {
            let p = run_boundary(&pool, &supported, &picks, cut, mutation, at);
            check(&b.h, kind, v, &p);
        });
    }
}

#[test]
fn proposals_aimed_at_the_run_boundary_under_the_default_policy() {
    boundary_check(pvgate::POLICY, 400);
}

#[test]
fn proposals_aimed_at_the_run_boundary_under_the_strict_policy() {
    boundary_check(interpreter("policy/strict.toml"), 200);
}

#[test]
fn proposals_aimed_at_the_run_boundary_under_a_careless_policy() {
    boundary_check(careless(), 200);
}

/// The default policy, which stalls the first thread to ask a CPUID rule
/// once `stall` is set (the thread installing the CPU model, inside the
/// computation of the supported bases) until `resume` is set.
struct Stalling {
    inner: Interpreter,
    stall: AtomicBool,
    stalled: AtomicBool,
    resume: AtomicBool,
}

impl Policy for Stalling {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn digest(&self) -> [u8; 32] {
        self.inner.digest()
    }
    fn violation_mode(&self) -> ViolationMode {
        self.inner.violation_mode()
    }
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        self.inner.msr_rule(kind, phase, access, index)
    }
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        if self.stall.swap(false, Ordering::SeqCst) {
            self.stalled.store(true, Ordering::SeqCst);
            while !self.resume.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
        self.inner.cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        self.inner.pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.inner.rule(id)
    }
    fn cpuid_support(&self) -> &[CpuidSupport] {
        self.inner.cpuid_support()
    }
}

#[test]
fn the_merge_while_the_supported_bases_are_being_computed() {
    // The CPU model is installed, its bases not yet: the merge computes
    // the base's masks for the call (`merge_computed`) and must give what
    // the reference gives, as with the bases.
    let policy = Stalling {
        inner: interpreter("policy/default.toml"),
        stall: AtomicBool::new(false),
        stalled: AtomicBool::new(false),
        resume: AtomicBool::new(false),
    };
    let h: Box<SmallHyp<Stalling>> = Box::new(Hyp::new(policy, HypConfig::DEFAULT));
    let cpu = reference_cpu();
    let b = Bench::new(pvgate::POLICY, reference_cpu());
    let s = b.supported(VmKind::Protected);
    let noisy: Vec<_> = s.iter().map(|e| CpuidEntry { ecx: !e.ecx, ..*e }).collect();
    h.policy().stall.store(true, Ordering::SeqCst);
    std::thread::scope(|scope| {
        let installing = scope.spawn(|| h.install_cpu_model(cpu));
        while !h.policy().stalled.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // A failed check must not leave the installing thread stalled.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // The model is there, its bases are not.
            assert!(h.cpu_model().is_some());
            let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
            for p in [
                s.clone(),
                cat(&[&noisy[3..], &padding(0, 30), &noisy[..3]]),
                cat(&[&s[1..], &s[..2]]),
                noisy.iter().rev().copied().collect(),
            ] {
                check(&h, VmKind::Protected, v, &p);
            }
        }));
        h.policy().resume.store(true, Ordering::SeqCst);
        assert!(installing.join().unwrap());
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic);
        }
    });
}
