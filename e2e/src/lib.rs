//! pvgate-e2e: a test-only VMM that boots a real Linux kernel through
//! hyp and checks that the guest sees exactly the CPU the policy allows
//! (docs/real-guest.md). Never a dependency of the shipped crates.

// Test-only std code: the workspace's no-panic list (Cargo.toml) applies,
// less the two lints only a no_std crate needs (docs/design.md, "Crate
// and dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

pub mod acpi;
pub mod boot;
pub mod cpio;
pub mod cpuid_load;
pub mod flags;
pub mod gate;
pub mod initramfs;
pub mod kernel;
pub mod model;
pub mod proposal;
pub mod report;
pub mod serial;
pub mod state;
pub mod vmm;
