//! `vcpu_after_set_cpuid` names the first duplicate and the first
//! replaced register in the order the merge is specified in (the
//! proposal's entries as sent, then the supported-base entries the
//! proposal leaves out), not in (leaf, subleaf) order, although the merge
//! works on sorted keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use pvgate_gate::{Phase, Policy, ViolationMode, VmKind};
use pvgate_hyp::{CallError, CpuidEntry, CpuidTable, Outcome};

/// Merges `proposal` on a fresh protected vCPU in `setup`.
fn merge(proposal: &[CpuidEntry]) -> (Outcome, CpuidTable) {
    let h = common::hyp(pvgate::POLICY);
    let v = common::vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let mut table = CpuidTable::new();
    for e in proposal {
        table.push(*e).unwrap();
    }
    let o = h.vcpu_after_set_cpuid(v, &mut table);
    (o, table)
}

/// The supported table of a protected VM on the reference CPU.
fn supported() -> CpuidTable {
    common::hyp(pvgate::POLICY).supported_cpuid(VmKind::Protected)
}

/// Output 2 of a merge that replaced something: the first replaced
/// entry's leaf << 32 | subleaf.
fn first_replaced(o: &Outcome) -> (u32, u32) {
    ((o.out[2] >> 32) as u32, o.out[2] as u32)
}

#[test]
fn the_first_duplicate_in_the_proposal_order_is_named() {
    let high = CpuidEntry::zero(0x8000_0000, 0);
    let low = CpuidEntry::zero(0x1, 0);
    let once = CpuidEntry::zero(0x7, 0);
    for (proposal, named) in [
        ([high, low, low, high, once], high),
        ([once, low, high, high, low], low),
        ([once, high, low, low, once], once),
    ] {
        let (o, _) = merge(&proposal);
        assert_eq!(
            o.error,
            Some(CallError::CpuidDuplicate {
                leaf: named.leaf,
                subleaf: named.subleaf,
            }),
            "{proposal:x?}"
        );
    }
}

#[test]
fn the_first_replaced_register_in_the_proposal_order_is_named() {
    // Two entries the host may not set every ECX bit of, sent in the
    // reverse of their (leaf, subleaf) order.
    let mut proposal: Vec<CpuidEntry> = supported().iter().rev().copied().collect();
    let mut violating = Vec::new();
    for e in proposal.iter_mut() {
        if e.leaf == 0x1 || e.leaf == 0x8000_0001 {
            e.ecx = u32::MAX;
            violating.push((e.leaf, e.subleaf));
        }
    }
    assert_eq!(
        violating.len(),
        2,
        "the reference CPU has leaves 1 and 0x80000001"
    );
    let (o, table) = merge(&proposal);
    assert!(o.replaced >= 2, "{o:?}");
    assert_eq!(first_replaced(&o), violating[0], "{o:?}");
    // The effective table is sorted whatever order the host sent.
    assert!(
        table
            .windows(2)
            .all(|w| (w[0].leaf, w[0].subleaf) < (w[1].leaf, w[1].subleaf))
    );
    let filtered = pvgate::POLICY.violation_mode() == ViolationMode::Filter;
    assert_eq!(o.ok(), filtered, "{o:?}");
}

#[test]
fn a_replaced_proposal_entry_comes_before_a_base_entry_it_left_out() {
    // The hypervisor's signature leaf (set bits) left out, so proposed as
    // zeros and replaced; a later leaf of the proposal replaced too: the
    // proposal's entry is named, though the left-out leaf sorts first.
    let mut proposal: Vec<CpuidEntry> = supported()
        .iter()
        .filter(|e| e.leaf != 0x4000_0000)
        .copied()
        .collect();
    let e = proposal.iter_mut().find(|e| e.leaf == 0x8000_0001).unwrap();
    e.ecx = u32::MAX;
    let named = (e.leaf, e.subleaf);
    let (o, table) = merge(&proposal);
    assert!(o.replaced >= 2, "the signature and 0x80000001.ecx: {o:?}");
    assert_eq!(first_replaced(&o), named, "{o:?}");
    assert!(
        table.iter().any(|e| e.leaf == 0x4000_0000 && e.ebx != 0),
        "{table:x?}"
    );
    // Alone, the left-out leaf is named.
    let only_missing: Vec<CpuidEntry> = supported()
        .iter()
        .filter(|e| e.leaf != 0x4000_0000)
        .copied()
        .collect();
    let (o, _) = merge(&only_missing);
    assert_eq!(first_replaced(&o), (0x4000_0000, 0), "{o:?}");
}
