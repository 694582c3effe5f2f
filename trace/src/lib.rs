//! pvgate-trace: loads `pvgate-trace/1` files (the sequence of PV calls a
//! host makes for one VM, with optional expectations; format in
//! `tests/data/traces/README.md`) and replays them through the real
//! hypervisor core ([`pvgate_hyp::Hyp`]) over any
//! [`Policy`](pvgate_gate::Policy): the image's const tables or the codegen
//! interpreter.
//!
//! [`replay`] returns one [`Step`] per call: what became of it, the rule
//! that decided it (name and policy line), and whether its expectation was
//! met, so a command line can print or serialise it.
//!
//! It also parses recorded CPUID dumps ([`CpuDump`], `tests/data/cpu/`) and
//! writes one as Rust `const` items ([`cpu_table_rust`]): the image's build
//! script makes its reference CPU table that way, so no text parser is
//! linked into the no_std image.

// Std code: the workspace's no-panic list (Cargo.toml) applies, less the
// two lints only a no_std crate needs (docs/design.md, "Crate and
// dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod cpu;
mod cpu_dump;
mod cpu_table;
mod error;
mod guest_state;
mod load;
mod model;
mod replay;
mod schema;
mod spanned;
mod suite;
mod vectors;

pub use cpu::{HOST_MCG_CAP, REFERENCE_CPU_DUMP, cpu_model};
pub use cpu_dump::{CpuDump, CpuDumpError};
pub use cpu_table::cpu_table_rust;
pub use error::TraceError;
pub use guest_state::{GuestExpect, GuestField, KEYS_HELP, SegPart};
pub use load::{FORMAT, load, parse};
pub use model::{CpuidBits, CpuidEdit, EditOp, Expect, MAX_TRACE_VCPUS, Subleaf, Trace, TraceCall};
/// The errno names replay prints (`EPERM`, `EBUSY`, …), from hyp's table.
pub use pvgate_hyp::error::errno_name;
/// hyp's supported base (the CPU model masked by the hypervisor's
/// supported CPUID), for tools that show it (`pvgate report`).
pub use pvgate_hyp::supported_base;
pub use replay::{CpuidChange, Replay, RuleRef, Step, apply_edits, replay, replay_with_cpu};
pub use schema::vector_schema_json;
pub use spanned::FileErrors;
pub use suite::{
    CaseResult, Decided, Probe, Probed, driving_calls, expectations, run_case, run_vectors,
};
pub use vectors::{
    Case, Check, HypCase, VECTOR_FORMAT, VectorBody, VectorFile, load_vectors, parse_vectors,
};
