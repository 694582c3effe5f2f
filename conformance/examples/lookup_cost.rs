//! A fixed amount of gate work for instruction counting under callgrind:
//! `lookup_cost VARIANT ROUNDS [POLICY]` decides 16 MSR writes `ROUNDS`
//! times. VARIANT: `tables` (the verdict fast path, `Policy::msr_verdict`,
//! what the floor computes), `tables_rule` (`decide_msr`: verdict and
//! rule), `interpreter`, or `bitmap` (the 2-bit floor below). POLICY:
//! `default` (the image, `pvgate::POLICY`), `strict`, or `large` (the
//! 10,000-rule `sample::large_policy`); both in the shape the emitter
//! picks (`pvgate_conformance::bench`). Protected VMs in `setup` (normal
//! VMs for `large`, whose rules are all for them).
//! `scripts/bench.sh` runs it twice per variant and divides the
//! difference, so setup cost cancels out.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // test and tool code: a panic is a failed run

use std::hint::black_box;

use pvgate_codegen::Interpreter;
use pvgate_conformance::MSR_PROBES as PROBES;
use pvgate_conformance::bench::{large, strict};
use pvgate_gate::{Access, Phase, Policy, Rule, RuleId, Verdict, VmKind, decide_msr};

/// The floor: a KVM-style MSR map, 2 bits per MSR (deny / allow /
/// ignore) over both of KVM's bitmap regions (0x0–0x1FFF and
/// 0xC0000000–0xC0001FFF), out of range denied. Built from the tables and
/// checked to compute the same function on every index it covers and on
/// the probes, so the comparison is like with like.
struct Floor {
    /// 8,192 MSRs per region, 32 per word.
    low: [u64; 256],
    high: [u64; 256],
}

impl Floor {
    fn build(decide: impl Fn(u32) -> Verdict) -> Floor {
        let mut f = Floor {
            low: [0; 256],
            high: [0; 256],
        };
        for off in 0..0x2000u32 {
            for (words, base) in [(&mut f.low, 0u32), (&mut f.high, 0xc000_0000)] {
                let v = decide(base + off) as u64;
                words[(off / 32) as usize] |= v << (2 * (off % 32));
            }
        }
        // Outside the regions the tables must deny, as the map does.
        for &i in &PROBES {
            assert_eq!(f.verdict(i), decide(i) as u8, "the floor differs at {i:#x}");
        }
        for off in 0..0x2000u32 {
            assert_eq!(f.verdict(off), decide(off) as u8);
            assert_eq!(
                f.verdict(0xc000_0000 + off),
                decide(0xc000_0000 + off) as u8
            );
        }
        f
    }

    #[inline]
    fn verdict(&self, index: u32) -> u8 {
        let (words, off) = match index {
            0..0x2000 => (&self.low, index),
            0xc000_0000..0xc000_2000 => (&self.high, index - 0xc000_0000),
            _ => return Verdict::Deny as u8,
        };
        ((words[(off / 32) as usize] >> (2 * (off % 32))) & 3) as u8
    }
}

/// How one policy's MSR writes are decided, by each variant.
struct Bench {
    kind: VmKind,
    /// The verdict fast path.
    verdict: fn(VmKind, Phase, Access, u32) -> Verdict,
    /// The rule lookup, and the rule table it indexes.
    rule: fn(VmKind, Phase, Access, u32) -> Option<RuleId>,
    rules: &'static [Rule<'static>],
    /// The compiled policy, for the interpreter.
    ir: fn() -> pvgate_codegen::Ir,
}

fn shipped(name: &str) -> pvgate_codegen::Ir {
    let path = format!("{}/../policy/{name}", env!("CARGO_MANIFEST_DIR"));
    pvgate_codegen::compile_file(path)
        .expect("a shipped policy compiles")
        .ir
}

fn bench(policy: &str) -> Option<Bench> {
    Some(match policy {
        "default" => Bench {
            kind: VmKind::Protected,
            verdict: |k, p, a, i| pvgate::POLICY.msr_verdict(k, p, a, i),
            rule: |k, p, a, i| pvgate::POLICY.msr_rule(k, p, a, i),
            rules: &pvgate::tables::RULES,
            ir: || shipped("default.toml"),
        },
        "strict" => Bench {
            kind: VmKind::Protected,
            verdict: strict::msr_verdict,
            rule: strict::msr_rule,
            rules: &strict::RULES,
            ir: || shipped("strict.toml"),
        },
        "large" => Bench {
            kind: VmKind::Normal,
            verdict: large::msr_verdict,
            rule: large::msr_rule,
            rules: &large::RULES,
            ir: || {
                pvgate_codegen::compile(&pvgate_codegen::sample::large_policy(10_000))
                    .expect("the large policy compiles")
            },
        },
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(variant), Some(rounds)) =
        (args.get(1), args.get(2).and_then(|r| r.parse::<u32>().ok()))
    else {
        eprintln!(
            "usage: lookup_cost tables|tables_rule|interpreter|bitmap ROUNDS [default|strict|large]"
        );
        std::process::exit(2);
    };
    let policy = args.get(3).map_or("default", String::as_str);
    let Some(b) = bench(policy) else {
        eprintln!("unknown policy {policy:?}: default, strict or large");
        std::process::exit(2);
    };
    let kind = b.kind;
    // The floor comes from the rule lookup (not from the verdict maps), and
    // the verdict path must agree with it everywhere the floor answers.
    let by_rule = |i| {
        pvgate_gate::lookup::msr_rule_verdict(
            b.rules,
            (b.rule)(kind, Phase::Setup, Access::Write, i),
        )
    };
    let floor = Floor::build(by_rule);
    for i in (0..0x2000).chain(0xc000_0000..0xc000_2000).chain(PROBES) {
        assert_eq!(
            (b.verdict)(kind, Phase::Setup, Access::Write, i),
            by_rule(i),
            "the verdict path differs from the rule lookup at {i:#x}"
        );
    }
    let total = match (variant.as_str(), policy) {
        // Direct calls (no function pointer), as the image makes them.
        ("tables", "default") => run(rounds, &|i| {
            pvgate::POLICY.msr_verdict(VmKind::Protected, Phase::Setup, Access::Write, i) as u64
        }),
        ("tables", "strict") => run(rounds, &|i| {
            strict::msr_verdict(VmKind::Protected, Phase::Setup, Access::Write, i) as u64
        }),
        ("tables", _) => run(rounds, &|i| {
            large::msr_verdict(VmKind::Normal, Phase::Setup, Access::Write, i) as u64
        }),
        ("tables_rule", "default") => run(rounds, &|i| {
            decide_msr(
                &pvgate::POLICY,
                VmKind::Protected,
                Phase::Setup,
                Access::Write,
                i,
            )
            .verdict as u64
        }),
        ("tables_rule", _) => run(rounds, &|i| {
            let rule = (b.rule)(kind, Phase::Setup, Access::Write, i);
            pvgate_gate::lookup::msr_rule_verdict(b.rules, rule) as u64
        }),
        ("interpreter", _) => {
            let interp = Interpreter::new((b.ir)());
            run(rounds, &|i| {
                decide_msr(&interp, kind, Phase::Setup, Access::Write, i).verdict as u64
            })
        }
        _ => run(rounds, &|i| floor.verdict(i) as u64),
    };
    println!("{variant} {policy}: {total}");
}

/// The measured loop: the same for every variant, and the same shape as
/// the C harness's (`scripts/bench/lookup.c`): one indirect call per
/// decision.
#[inline(never)]
fn run(rounds: u32, decide: &dyn Fn(u32) -> u64) -> u64 {
    let decide = black_box(decide);
    let mut total = 0u64;
    for _ in 0..rounds {
        for &i in &PROBES {
            total += decide(black_box(i));
        }
    }
    total
}
