//! What one gate decision costs, measured in one run so the ratios hold on
//! a noisy machine: the generated tables (the image) against the
//! interpreter (a scan of the resolved rules) against a single bitmap bit
//! test (KVM's MSR filter), and, for a 2,000-range policy, the `match`
//! shape against the sorted-slice shape.
//!
//! Run: `cargo bench -p pvgate-conformance --bench lookup`.
//! For repeatable instruction counts: `scripts/callgrind-lookup.sh`.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)] // test and tool code: a panic is a failed run

use std::hint::black_box;

use pvgate_codegen::Interpreter;
use pvgate_conformance::MSR_PROBES as PROBES;
use pvgate_conformance::{ALL, Generated};
use pvgate_gate::{Access, Phase, Policy, VmKind, decide_msr};

fn main() {
    divan::main();
}

fn interpreter_for(path: &str) -> Interpreter {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let c =
        pvgate_codegen::compile_file(format!("{root}/{path}")).expect("shipped policy compiles");
    Interpreter::new(c.ir)
}

/// A KVM-style MSR filter bitmap covering 0..0x400 and 0xc0000000..+0x400:
/// one bit per MSR, the same allowed set as the default policy's
/// protected-setup writes.
struct Bitmap {
    low: [u64; 16],
    high: [u64; 16],
}

impl Bitmap {
    fn from_policy(p: &impl Policy) -> Bitmap {
        let mut b = Bitmap {
            low: [0; 16],
            high: [0; 16],
        };
        for i in 0..0x400u32 {
            if decide_msr(p, VmKind::Protected, Phase::Setup, Access::Write, i).verdict
                != pvgate_gate::Verdict::Deny
            {
                b.low[(i / 64) as usize] |= 1 << (i % 64);
            }
            let h = 0xc000_0000 + i;
            if decide_msr(p, VmKind::Protected, Phase::Setup, Access::Write, h).verdict
                != pvgate_gate::Verdict::Deny
            {
                b.high[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
        b
    }

    #[inline]
    fn allows(&self, index: u32) -> bool {
        let (words, off) = match index {
            0..0x400 => (&self.low, index),
            0xc000_0000..0xc000_0400 => (&self.high, index - 0xc000_0000),
            _ => return false,
        };
        words[(off / 64) as usize] & (1 << (off % 64)) != 0
    }
}

#[divan::bench]
fn default_generated_tables(b: divan::Bencher) {
    b.bench(|| {
        let mut hits = 0u32;
        for &i in &PROBES {
            let d = decide_msr(
                &pvgate::POLICY,
                VmKind::Protected,
                Phase::Setup,
                Access::Write,
                black_box(i),
            );
            hits += d.verdict as u32;
        }
        hits
    });
}

#[divan::bench]
fn default_interpreter(b: divan::Bencher) {
    let interp = interpreter_for("policy/default.toml");
    b.bench(|| {
        let mut hits = 0u32;
        for &i in &PROBES {
            let d = decide_msr(
                &interp,
                VmKind::Protected,
                Phase::Setup,
                Access::Write,
                black_box(i),
            );
            hits += d.verdict as u32;
        }
        hits
    });
}

#[divan::bench]
fn default_single_bitmap_test(b: divan::Bencher) {
    let bitmap = Bitmap::from_policy(&pvgate::POLICY);
    b.bench(|| {
        let mut hits = 0u32;
        for &i in &PROBES {
            hits += bitmap.allows(black_box(i)) as u32;
        }
        hits
    });
}

fn large(shape: &str) -> &'static Generated {
    ALL.iter()
        .find(|g| g.name.starts_with("large") && g.shape == shape)
        .expect("the large policy is generated")
}

/// Indices spread over the large policy's whole index space.
fn spread() -> Vec<u32> {
    (0..64u64)
        .map(|i| (i * 0x0400_0000 + 0x1234) as u32)
        .collect()
}

#[divan::bench(args = ["match", "sorted"])]
fn large_generated_tables(b: divan::Bencher, shape: &str) {
    let g = large(shape);
    let probes = spread();
    b.bench(|| {
        let mut found = 0u32;
        for &i in &probes {
            found += (g.msr_rule)(VmKind::Protected, Phase::Setup, Access::Write, black_box(i))
                .is_some() as u32;
        }
        found
    });
}

#[divan::bench]
fn large_interpreter(b: divan::Bencher) {
    let g = large("sorted");
    let interp = Interpreter::new(pvgate_codegen::compile(g.text).expect("sample compiles"));
    let probes = spread();
    b.bench(|| {
        let mut found = 0u32;
        for &i in &probes {
            found += interp
                .msr_rule(VmKind::Protected, Phase::Setup, Access::Write, black_box(i))
                .is_some() as u32;
        }
        found
    });
}
