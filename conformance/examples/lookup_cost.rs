//! A fixed amount of gate work for instruction counting under callgrind:
//! `lookup_cost VARIANT ROUNDS` decides 16 MSR writes `ROUNDS` times
//! (`tables`, `interpreter`, or `bitmap`: the 2-bit floor below).
//! `scripts/callgrind-lookup.sh` runs it twice per variant and divides the
//! difference, so setup cost cancels out.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // test and tool code: a panic is a failed run

use std::hint::black_box;

use pvgate_codegen::Interpreter;
use pvgate_conformance::MSR_PROBES as PROBES;
use pvgate_gate::{Access, Phase, Verdict, VmKind, decide_msr};

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(variant), Some(rounds)) =
        (args.get(1), args.get(2).and_then(|r| r.parse::<u32>().ok()))
    else {
        eprintln!("usage: lookup_cost tables|interpreter|bitmap ROUNDS");
        std::process::exit(2);
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/default.toml");
    let interp = Interpreter::new(
        pvgate_codegen::compile_file(root)
            .expect("default policy compiles")
            .ir,
    );
    let floor = Floor::build(|i| {
        decide_msr(
            &pvgate::POLICY,
            VmKind::Protected,
            Phase::Setup,
            Access::Write,
            i,
        )
        .verdict
    });
    let total = match variant.as_str() {
        "tables" => run(rounds, &|i| {
            decide_msr(
                &pvgate::POLICY,
                VmKind::Protected,
                Phase::Setup,
                Access::Write,
                i,
            )
            .verdict as u64
        }),
        "interpreter" => run(rounds, &|i| {
            decide_msr(&interp, VmKind::Protected, Phase::Setup, Access::Write, i).verdict as u64
        }),
        _ => run(rounds, &|i| floor.verdict(i) as u64),
    };
    println!("{variant}: {total}");
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
