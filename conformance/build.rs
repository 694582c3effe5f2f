//! Emits, for every shipped policy and for seeded random policies, the Rust
//! tables in every MSR lookup shape (`match`, sorted slice, verdict map,
//! and the shape the emitter picks by density and size) into `OUT_DIR`,
//! plus `generated.rs` listing them with their policy text, so the tests
//! can compare real compiled tables with the interpreter. The 10,000-rule
//! `sample::large_policy` is emitted only in the picked shape (a
//! 10,000-arm `match` would only slow the build), for the benchmarks
//! (`pvgate_conformance::bench`) and the sampled checks.

// Std code: the workspace's no-panic list (Cargo.toml) applies, less the
// two lints only a no_std crate needs (docs/design.md, "Crate and
// dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::error::Error;
use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::emit::{Shape, rust_shaped};
use pvgate_codegen::sample::{SampleSize, large_policy, random_policy};

/// How many random policies are compiled in.
const RANDOM_POLICIES: u64 = 24;

/// Every shape, by its tag.
const EVERY_SHAPE: Shapes = &[
    (Shape::Match, "match"),
    (Shape::Sorted, "sorted"),
    (Shape::Bitmap, "bitmap"),
    (Shape::Auto, "auto"),
];

/// Shapes, each with the tag its module is named by.
type Shapes = &'static [(Shape, &'static str)];

/// The shape the emitter picks (the image's).
const AUTO_ONLY: Shapes = &[(Shape::Auto, "auto")];

/// Rules of the large policy the benchmarks decide with.
const LARGE_RULES: usize = 10_000;

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets no `OUT_DIR`")?);
    let root = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo sets no `CARGO_MANIFEST_DIR`")?,
    )
    .join("..");
    let mut policies: Vec<(String, String, Shapes)> = Vec::new();
    for name in ["policy/default.toml", "policy/strict.toml"] {
        let path = root.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        // The text is compiled again by the tests from another directory,
        // where its include does not resolve: drop the include of the
        // baseline, which every compilation proves anyway.
        let text = text.replace("include = [\"invariants/protected-baseline.toml\"]\n", "");
        policies.push((name.to_string(), text, EVERY_SHAPE));
    }
    for seed in 0..RANDOM_POLICIES {
        let size = SampleSize {
            // From a handful of ranges up to well past the match/slice switch.
            msr_ranges: 1 + (seed as usize * 13) % 150,
            cpuid_leaves: 1 + seed as usize % 10,
        };
        policies.push((
            format!("random seed {seed}"),
            random_policy(seed, size),
            EVERY_SHAPE,
        ));
    }
    // One large policy for the benchmarks: far past the match/slice switch.
    policies.push((
        String::from("large random seed 1000"),
        random_policy(
            1000,
            SampleSize {
                msr_ranges: 2000,
                cpuid_leaves: 8,
            },
        ),
        EVERY_SHAPE,
    ));
    // The 10,000-rule policy: both KVM MSR-bitmap regions full.
    policies.push((
        format!("large_policy {LARGE_RULES}"),
        large_policy(LARGE_RULES),
        AUTO_ONLY,
    ));

    let mut index = String::new();
    let mut list = String::from("/// Every generated policy.\npub static ALL: &[Generated] = &[\n");
    for (i, (name, text, shapes)) in policies.iter().enumerate() {
        let ir = pvgate_codegen::compile(text).map_err(|e| e.render(name, text))?;
        let text_file = format!("policy_{i}.toml");
        std::fs::write(out.join(&text_file), text)?;
        for &(shape, tag) in *shapes {
            let module = format!("p{i}_{tag}");
            std::fs::write(
                out.join(format!("{module}.rs")),
                rust_shaped(&ir, name, shape),
            )?;
            let _ = writeln!(
                index,
                "/// Tables of `{name}` ({tag}).\npub mod {module} {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{module}.rs\"));\n}}"
            );
            let _ = writeln!(
                list,
                "    Generated {{ name: {name:?}, shape: {tag:?}, text: include_str!(concat!(env!(\"OUT_DIR\"), \"/{text_file}\")), \
                 msr_rule: {module}::msr_rule, msr_verdict: {module}::msr_verdict, cpuid_rule: {module}::cpuid_rule, pv_rule: {module}::pv_rule, \
                 rules: &{module}::RULES, digest: {module}::POLICY_DIGEST }},"
            );
        }
    }
    list.push_str("];\n");
    index.push_str(&list);
    // The benchmarks call the picked shape's tables directly (no function
    // pointer), as the image does.
    let last = policies.len() - 1;
    let _ = writeln!(
        index,
        "/// The picked shape's tables of the benchmarked policies, by name.\n\
         pub mod bench {{\n    \
         /// `policy/default.toml`.\n    pub use super::p0_auto as default;\n    \
         /// `policy/strict.toml`.\n    pub use super::p1_auto as strict;\n    \
         /// `sample::large_policy({LARGE_RULES})`.\n    pub use super::p{last}_auto as large;\n}}"
    );
    std::fs::write(out.join("generated.rs"), index)?;
    Ok(())
}
