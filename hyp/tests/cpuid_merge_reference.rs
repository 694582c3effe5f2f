//! `vcpu_after_set_cpuid` merges a supported-base entry with masks
//! precomputed per VM kind (`keep | host & take` per register) and walks
//! the proposal in key order without a sort when it can; this checks it
//! against the merge as specified, written the simple way here: every
//! register through `merge_supported` (the hardware value, the policy's
//! per-bit controls, the supported mask), the proposal's entries in its
//! order and then the base entries it leaves out, the first duplicate and
//! the first replaced register in that order. Random proposals (sorted,
//! in two increasing runs, shuffled, with duplicates, padded past the
//! table's capacity) over the shipped policies, a careless one, and one
//! whose leaf-1 rule is `ignore`, for both VM kinds.
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
use pvgate_gate::{Phase, Policy, Register, Verdict, VmKind, decide_cpuid};
use pvgate_hyp::{CpuModel, CpuidEntry, CpuidTable, Hyp, HypConfig, MAX_CPUID_ENTRIES, VcpuHandle};

/// Keys the proposals are drawn from: the supported table's and the CPU
/// model's, and keys outside both (subleaves the support covers or not,
/// leaves nothing supports, the extreme keys).
fn key_pool(cpu: &CpuModel, supported: &[CpuidEntry]) -> Vec<(u32, u32)> {
    let mut keys: Vec<(u32, u32)> = supported.iter().chain(cpu.base.iter()).map(key).collect();
    keys.extend([
        (0x1, 1),
        (0x7, 5),
        (0xd, 40),
        (0xa, 3),
        (0x4000_0010, 0),
        (0x4000_00ff, 0),
        (0x4000_00ff, 1),
        (0x4000_00ff, 2),
        (0x4000_00ff, 3),
        (0x8000_0002, 7),
        (0x8000_0100, 0),
        (0x8000_0100, 1),
        (0, u32::MAX),
        (u32::MAX, 0),
        (u32::MAX, u32::MAX),
    ]);
    keys.sort();
    keys.dedup();
    keys
}

/// How a proposal is put in order.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// As drawn.
    Drawn,
    /// Sorted by key.
    Sorted,
    /// Two increasing runs (a random split of the sorted keys).
    TwoRuns,
    /// Sorted, then padded with subleaves of a leaf nothing supports
    /// (zeros, some random).
    Padded,
    /// Shuffled.
    Shuffled,
}

/// One drawn entry: which key, and what its registers hold (0: zeros,
/// 1: the supported table's value, 2: random, 3: the supported value with
/// one bit flipped).
type Draw = (usize, u8, [u32; 4], u8);

fn proposal(
    pool: &[(u32, u32)],
    supported: &[CpuidEntry],
    draws: &[Draw],
    shape: Shape,
    seed: u64,
    pad: usize,
) -> CpuidTable {
    let supported_value = |k: (u32, u32)| {
        supported
            .iter()
            .find(|e| key(e) == k)
            .copied()
            .unwrap_or(CpuidEntry::zero(k.0, k.1))
    };
    let mut entries: Vec<CpuidEntry> = draws
        .iter()
        .map(|&(i, how, random, bit)| {
            let k = pool[i % pool.len()];
            match how % 4 {
                0 => CpuidEntry::zero(k.0, k.1),
                1 => supported_value(k),
                2 => CpuidEntry {
                    leaf: k.0,
                    subleaf: k.1,
                    eax: random[0],
                    ebx: random[1],
                    ecx: random[2],
                    edx: random[3],
                },
                _ => {
                    let mut e = supported_value(k);
                    let reg = Register::ALL[usize::from(bit / 32 % 4)];
                    e.set_reg(reg, e.reg(reg) ^ 1 << (bit % 32));
                    e
                }
            }
        })
        .collect();
    // A small deterministic generator for the order.
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    match shape {
        Shape::Drawn => {}
        Shape::Sorted => entries.sort_by_key(key),
        Shape::TwoRuns => {
            entries.sort_by_key(key);
            let (mut a, mut b): (Vec<_>, Vec<_>) = entries.iter().partition(|_| next() % 2 == 0);
            a.append(&mut b);
            entries = a;
        }
        Shape::Padded => {
            entries.sort_by_key(key);
            for sub in 0..pad as u32 {
                let mut e = CpuidEntry::zero(0x4000_00ff, 0x100 + sub);
                if next() % 16 == 0 {
                    e.ecx = next() as u32 | 1;
                }
                entries.push(e);
            }
        }
        Shape::Shuffled => {
            for i in (1..entries.len()).rev() {
                entries.swap(i, (next() % (i as u64 + 1)) as usize);
            }
        }
    }
    entries.truncate(MAX_CPUID_ENTRIES);
    let mut table = CpuidTable::new();
    for e in entries {
        table.push(e).unwrap();
    }
    table
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Drawn),
        Just(Shape::Sorted),
        Just(Shape::TwoRuns),
        Just(Shape::Padded),
        Just(Shape::Shuffled),
    ]
}

/// Merges random proposals on a `setup` vCPU of each kind and compares
/// every result with [`reference`], on the reference CPU.
fn check_against_reference<P: Policy>(policy: P, cases: u32) {
    check_on_cpu(policy, reference_cpu(), cases);
}

/// [`check_against_reference`] on `cpu`.
fn check_on_cpu<P: Policy>(policy: P, cpu: CpuModel, cases: u32) {
    let h: Box<SmallHyp<P>> = Box::new(Hyp::with_cpu(policy, cpu, HypConfig::DEFAULT));
    let cpu = h.cpu_model().unwrap();
    for kind in [VmKind::Protected, VmKind::Normal] {
        let v: VcpuHandle = vcpu_in(&h, kind, Phase::Setup);
        let supported = h.supported_cpuid(kind);
        let pool = key_pool(cpu, &supported);
        let config = ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let draw = (any::<usize>(), any::<u8>(), any::<[u32; 4]>(), any::<u8>());
        proptest!(config, |(
            draws in prop::collection::vec(draw, 0..140),
            shape in shape(),
            seed in any::<u64>(),
            pad in 0usize..260,
        )| {
            let mut table = proposal(&pool, &supported, &draws, shape, seed, pad);
            let sent = table.clone();
            let prior = snapshot(&h, v).cpuid;
            let expected = reference(h.policy(), cpu, kind, &sent, &prior);
            let got = merged(&h, v, &mut table, &expected);
            prop_assert_eq!(got, expected, "{:?} proposal {:x?}", kind, sent);
        });
    }
}

#[test]
fn the_merge_equals_the_per_register_merge_under_the_default_policy() {
    check_against_reference(pvgate::POLICY, 500);
}

#[test]
fn the_merge_equals_the_per_register_merge_under_the_strict_policy() {
    check_against_reference(interpreter("policy/strict.toml"), 300);
}

#[test]
fn the_merge_equals_the_per_register_merge_under_a_careless_policy() {
    check_against_reference(careless(), 300);
}

#[test]
fn the_merge_equals_the_per_register_merge_when_a_rule_is_ignore() {
    let p = Ignoring {
        inner: interpreter("policy/default.toml"),
        ignored: "pvm-leaf1-topology",
    };
    // The rule exists and decides leaf 1 of a protected VM in setup.
    let d = decide_cpuid(&p, VmKind::Protected, Phase::Setup, 1, 0);
    assert_eq!(d.verdict, Verdict::Ignore);
    check_against_reference(p, 300);
}

#[test]
fn the_merge_equals_the_per_register_merge_on_an_unsorted_model_with_a_repeated_key() {
    // Not what `CpuModel::from_reader` builds (sorted, one entry a key),
    // but a model anyone can write: the merge reads the first entry of a
    // key, as `CpuModel::base_entry` does.
    let mut cpu = reference_cpu();
    let leaf1 = cpu.base_entry(1, 0);
    cpu.base.reverse();
    cpu.base
        .insert(
            3,
            CpuidEntry {
                ecx: !leaf1.ecx,
                ..leaf1
            },
        )
        .unwrap();
    cpu.base.truncate(MAX_CPUID_ENTRIES);
    check_on_cpu(pvgate::POLICY, cpu, 200);
}
