//! Each ranged argument is checked once, at decode, into a narrow type:
//! a value out of range never reaches the gate or a handler, whatever the
//! policy says about the call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pvgate_gate::PvCall;
use pvgate_hyp::{CallError, HypercallRegs, Request, decode};

fn regs(call: PvCall, args: [u64; 5]) -> HypercallRegs {
    HypercallRegs {
        rax: call.number(),
        rbx: 0,
        rcx: args[0],
        rdx: args[1],
        rsi: args[2],
        rdi: args[3],
        r8: args[4],
    }
}

/// (call, arguments, the argument named in the refusal).
const OUT_OF_RANGE: &[(PvCall, [u64; 5], &str)] = &[
    (PvCall::SetVirtualApicMode, [4, 0, 0, 0, 0], "apic mode"),
    (
        PvCall::SetInterruptShadow,
        [4, 0, 0, 0, 0],
        "interrupt shadow",
    ),
    (
        PvCall::InjectException,
        [32, 0, 0, 0, 0],
        "exception vector",
    ),
    (PvCall::LoadMmuPgd, [0x9000, 3, 0, 0, 0], "paging level"),
    (PvCall::LoadMmuPgd, [0x9000, 6, 0, 0, 0], "paging level"),
    (
        PvCall::LoadMmuPgd,
        [0x9001, 4, 0, 0, 0],
        "page-table root (not page aligned)",
    ),
    (
        PvCall::WriteTscMultiplier,
        [0, 0, 0, 0, 0],
        "tsc multiplier",
    ),
];

#[test]
fn out_of_range_arguments_are_refused_at_decode() {
    for &(call, args, what) in OUT_OF_RANGE {
        match decode(&regs(call, args)) {
            Err(CallError::BadArgument { what: w, .. }) => assert_eq!(w, what, "{call:?}"),
            other => panic!("{call:?} {args:x?}: {other:?}"),
        }
    }
}

#[test]
fn the_edges_of_each_range_decode() {
    let ok: &[(PvCall, [u64; 5])] = &[
        (PvCall::SetVirtualApicMode, [3, 0, 0, 0, 0]),
        (PvCall::SetInterruptShadow, [3, 0, 0, 0, 0]),
        (PvCall::InjectException, [31, 0, 0, 0, 0]),
        (PvCall::LoadMmuPgd, [0x9000, 4, 0, 0, 0]),
        (PvCall::LoadMmuPgd, [0xffff_f000, 5, 0, 0, 0]),
        (PvCall::WriteTscMultiplier, [1, 0, 0, 0, 0]),
    ];
    for &(call, args) in ok {
        assert!(
            matches!(decode(&regs(call, args)), Ok(Request::Pv { .. })),
            "{call:?} {args:x?}"
        );
    }
}
