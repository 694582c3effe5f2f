//! Compile time against policy size, in process (no file reading, no
//! process start): the medians of `compile` on `sample::large_policy` of
//! 1,000, 10,000 and 100,000 rules, and the ratio of the first two (≈ 10 for a linear compiler,
//! ≈ 100 for a quadratic one). `scripts/bench.sh` prints its lines.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // tool code: a panic is a failed run

use std::time::{Duration, Instant};

use pvgate_codegen::sample::large_policy;

fn compile_time(text: &str) -> Duration {
    let start = Instant::now();
    let ir = pvgate_codegen::compile(text).expect("the large policy compiles");
    std::hint::black_box(ir);
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let (small, large, huge) = (
        large_policy(1_000),
        large_policy(10_000),
        large_policy(100_000),
    );
    // The ratio's two sizes are timed in alternation, round by round, so
    // a burst of load on this noisy machine slows both alike.
    let (mut t1k, mut t10k) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        t1k.push(compile_time(&small));
        t10k.push(compile_time(&large));
    }
    let huge_times = (0..3).map(|_| compile_time(&huge)).collect();
    let (m1k, m10k, m100k) = (median(t1k), median(t10k), median(huge_times));
    println!("compile (in process, median)");
    for (n, m) in [(1_000, m1k), (10_000, m10k), (100_000, m100k)] {
        println!("  {n:>6} rules  {:>10.3} ms", m.as_secs_f64() * 1e3);
    }
    println!(
        "ratio compile_10k/compile_1k {:.1}",
        m10k.as_secs_f64() / m1k.as_secs_f64()
    );
}
