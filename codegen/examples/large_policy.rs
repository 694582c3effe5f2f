//! Writes `sample::large_policy(N)` to stdout: a policy of N MSR rules on
//! disjoint ranges, for timing the compiler (`pvgate check`) at scale.
//!
//! `cargo run --release -p pvgate-codegen --example large_policy 10000 > /tmp/large.toml`

fn main() {
    let rules = std::env::args()
        .nth(1)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(10_000);
    print!("{}", pvgate_codegen::sample::large_policy(rules));
}
