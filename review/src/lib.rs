//! pvgate's review engines, as a library: what a reviewer should look at in
//! one policy ([`lint`]: typed [`lint::Finding`]s) and the exact semantic
//! difference between two ([`diff`]: typed [`diff::Change`]s), both read
//! from the compiled IR. The `pvgate` command parses arguments and renders
//! these (human, JSON, SARIF); nothing here prints. [`coverage`] folds a
//! conformance run over the IR: which rules and invariants it exercised.
//!
//! [`describe`] and [`bits`] hold the wording the engines and the command
//! share: MSR ranges by name, CPUID locations, scopes, value drawings.
// Std code: the workspace's no-panic list (Cargo.toml) applies, less the
// two lints only a no_std crate needs (docs/design.md, "Crate and
// dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

pub mod bits;
pub mod coverage;
pub mod describe;
pub mod diff;
pub mod lint;
