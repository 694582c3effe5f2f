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

use common::*;
use proptest::prelude::*;
use pvgate_codegen::Interpreter;
use pvgate_gate::{
    Access, CpuidSupport, Phase, Policy, PvCall, RegControl, Register, Rule, RuleId, Verdict,
    ViolationMode, VmKind, decide_cpuid, merge_supported, support_for,
};
use pvgate_hyp::{
    CallError, CpuModel, CpuidEntry, CpuidTable, Hyp, HypConfig, MAX_CPUID_ENTRIES, VcpuHandle,
    supported_base,
};

/// What the specified merge gives.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    error: Option<CallError>,
    /// The outputs, for a merge that did not fail before merging.
    out: Option<[u64; 4]>,
    replaced: u32,
    /// The rule named for the first replaced register.
    rule: Option<Option<RuleId>>,
    table: Vec<CpuidEntry>,
    vcpu: Vec<CpuidEntry>,
}

fn key(e: &CpuidEntry) -> (u32, u32) {
    (e.leaf, e.subleaf)
}

/// The merge as specified, for a vCPU in `setup` whose table is `prior`.
fn reference<P: Policy>(
    policy: &P,
    cpu: &CpuModel,
    kind: VmKind,
    proposal: &[CpuidEntry],
    prior: &[CpuidEntry],
) -> Expected {
    let unchanged = |error| Expected {
        error: Some(error),
        out: None,
        replaced: 0,
        rule: None,
        table: proposal.to_vec(),
        vcpu: prior.to_vec(),
    };
    // The first entry whose key appears again later.
    for (i, e) in proposal.iter().enumerate() {
        if proposal[i + 1..].iter().any(|f| key(f) == key(e)) {
            return unchanged(CallError::CpuidDuplicate {
                leaf: e.leaf,
                subleaf: e.subleaf,
            });
        }
    }
    // The proposal's entries, then the base entries it leaves out, as
    // zeros.
    let base = supported_base(policy, cpu, kind);
    let mut entries: Vec<CpuidEntry> = proposal.to_vec();
    for b in &base {
        if !proposal.iter().any(|p| key(p) == key(b)) {
            entries.push(CpuidEntry::zero(b.leaf, b.subleaf));
        }
    }
    if entries.len() > MAX_CPUID_ENTRIES {
        return unchanged(CallError::CpuidTooLarge {
            count: entries.len() as u64,
        });
    }
    let mut effective = Vec::new();
    let mut first = None;
    let mut replaced = 0u32;
    for host in &entries {
        let (leaf, subleaf) = key(host);
        let d = decide_cpuid(policy, kind, Phase::Setup, leaf, subleaf);
        let controls = d
            .granted(|r| Some(r.cpuid_controls()))
            .unwrap_or([RegControl::FIXED; 4]);
        let support = support_for(policy.cpuid_support(), kind, leaf, subleaf);
        let hw = cpu.base_entry(leaf, subleaf);
        let mut e = CpuidEntry::zero(leaf, subleaf);
        for (i, reg) in Register::ALL.into_iter().enumerate() {
            let m = merge_supported(hw.reg(reg), host.reg(reg), controls[i], support[i]);
            e.set_reg(reg, m.effective);
            if m.violations != 0 && d.verdict != Verdict::Ignore {
                replaced += 1;
                first.get_or_insert((
                    (leaf, subleaf, reg, host.reg(reg), m.effective),
                    d.rule.map(|r| r.id),
                ));
            }
        }
        effective.push(e);
    }
    effective.sort_by_key(key);
    let len = effective.len() as u64;
    let Some(((leaf, subleaf, reg, host, eff), rule)) = first else {
        return Expected {
            error: None,
            out: Some([len, 0, 0, 0]),
            replaced: 0,
            rule: None,
            table: effective.clone(),
            vcpu: effective,
        };
    };
    let out = [
        len,
        u64::from(replaced),
        u64::from(leaf) << 32 | u64::from(subleaf),
        (reg as u64) << 32 | u64::from(host ^ eff),
    ];
    let (error, vcpu) = match policy.violation_mode() {
        ViolationMode::Filter => (None, effective.clone()),
        ViolationMode::Reject => (
            Some(CallError::CpuidRejected {
                leaf,
                subleaf,
                reg,
                host,
                effective: eff,
            }),
            prior.to_vec(),
        ),
    };
    Expected {
        error,
        out: Some(out),
        replaced,
        rule: Some(rule),
        table: effective,
        vcpu,
    }
}

/// A policy whose rule named `ignored` has the verdict `ignore` (no policy
/// file can say so for CPUID; a hand-written policy can).
struct Ignoring {
    inner: Interpreter,
    ignored: &'static str,
}

impl Policy for Ignoring {
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
        self.inner.cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        self.inner.pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.inner.rule(id).map(|r| Rule {
            verdict: if r.name == self.ignored {
                Verdict::Ignore
            } else {
                r.verdict
            },
            ..r
        })
    }
    fn cpuid_support(&self) -> &[CpuidSupport] {
        self.inner.cpuid_support()
    }
}

/// The default policy plus rules that give the host bits the hypervisor
/// does not support, clear-only bits, and a leaf nothing supports.
fn careless() -> Interpreter {
    let text = std::fs::read_to_string(root().join("policy/default.toml")).unwrap()
        + r#"
[[cpuid]]
name = "careless-pmu"
leaf = 0xA
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
ecx = { clear-only = 0xFFFF0000, host = 0x0000FFFF }
reason = "a test rule"

[[cpuid]]
name = "careless-power"
leaf = 0x6
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
ebx = { clear-only = 0xFFFFFFFF }
ecx = { host = 0xF0F0F0F0, force-on = 0x0F000000 }
edx = { force-off = 0xFFFF }
reason = "a test rule"

[[cpuid]]
name = "careless-own-leaf"
leaf = 0x40000010
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
reason = "a test rule"
"#;
    Interpreter::new(pvgate_codegen::compile_in_dir(&text, &root().join("policy")).unwrap())
}

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
            let o = h.vcpu_after_set_cpuid(v, &mut table);
            let got = Expected {
                error: o.error,
                out: expected.out.map(|_| o.out),
                replaced: o.replaced,
                rule: expected.rule.map(|_| o.rule),
                table: table.to_vec(),
                vcpu: snapshot(&h, v).cpuid.to_vec(),
            };
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
