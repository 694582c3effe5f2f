//! A fixed amount of gate work for instruction counting under callgrind:
//! `lookup_cost VARIANT ROUNDS` decides 16 MSR writes `ROUNDS` times.
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
    let mut bitmap = [0u64; 16];
    for i in 0..0x400u32 {
        if decide_msr(
            &pvgate::POLICY,
            VmKind::Protected,
            Phase::Setup,
            Access::Write,
            i,
        )
        .verdict
            != Verdict::Deny
        {
            bitmap[(i / 64) as usize] |= 1 << (i % 64);
        }
    }
    let bitmap_test =
        |i: u32| (i < 0x400 && bitmap[(i / 64) as usize] & (1 << (i % 64)) != 0) as u64;
    let total = match variant.as_str() {
        "tables" => run(rounds, |i| {
            decide_msr(
                &pvgate::POLICY,
                VmKind::Protected,
                Phase::Setup,
                Access::Write,
                i,
            )
            .verdict as u64
        }),
        "interpreter" => run(rounds, |i| {
            decide_msr(&interp, VmKind::Protected, Phase::Setup, Access::Write, i).verdict as u64
        }),
        _ => run(rounds, bitmap_test),
    };
    println!("{variant}: {total}");
}

/// The measured loop: the same for every variant.
#[inline(never)]
fn run(rounds: u32, decide: impl Fn(u32) -> u64) -> u64 {
    let mut total = 0u64;
    for _ in 0..rounds {
        for &i in &PROBES {
            total += decide(black_box(i));
        }
    }
    total
}
