//! Compile time against policy size, in process (no file reading, no
//! process start): the medians of `compile` on `sample::large_policy` of
//! 1,000 and 10,000 rules, and their ratio (≈ 10 for a linear compiler,
//! ≈ 100 for a quadratic one). `scripts/bench.sh` prints its lines.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // tool code: a panic is a failed run

use std::time::{Duration, Instant};

use pvgate_codegen::sample::large_policy;

fn median(text: &str, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let ir = pvgate_codegen::compile(text).expect("the large policy compiles");
            std::hint::black_box(ir);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let sizes = [1_000usize, 10_000, 60_000];
    let mut medians = Vec::new();
    println!("compile (in process, median)");
    for (n, runs) in sizes.into_iter().zip([21, 11, 3]) {
        let m = median(&large_policy(n), runs);
        println!("  {n:>6} rules  {:>10.3} ms", m.as_secs_f64() * 1e3);
        medians.push(m);
    }
    println!(
        "ratio compile_10k/compile_1k {:.1}",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
}
