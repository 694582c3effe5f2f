//! Walks two IRs' tables side by side and records every (resource, scope)
//! with the pair of rules that decides it in each.

use std::collections::{BTreeMap, BTreeSet};

use pvgate_codegen::Ir;
use pvgate_codegen::ir::{CpuidEntry, MsrRange};
use pvgate_gate::{Access, Phase, PvCall, RuleId, VmKind};

use super::change::{CpuidSel, Res, Section};

/// Receives one (section, access, resource, old rule, new rule, scope).
pub(super) type Record<'a> =
    dyn FnMut(Section, Option<Access>, Res, Option<RuleId>, Option<RuleId>, (VmKind, Phase)) + 'a;

fn msr_at(list: &[MsrRange], i: u32) -> Option<RuleId> {
    list.iter()
        .find(|r| r.first <= i && i <= r.last)
        .map(|r| r.rule)
}

/// Every MSR interval of every (kind, phase, access), coalesced.
pub(super) fn msr_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    let keys: BTreeSet<_> = old.msr.keys().chain(new.msr.keys()).copied().collect();
    for key @ (kind, phase, access) in keys {
        let a = old.msr.get(&key).map_or(&[][..], Vec::as_slice);
        let b = new.msr.get(&key).map_or(&[][..], Vec::as_slice);
        let mut points: Vec<u64> = vec![0];
        for r in a.iter().chain(b) {
            points.push(u64::from(r.first));
            points.push(u64::from(r.last) + 1);
        }
        points.retain(|&p| p <= u64::from(u32::MAX));
        points.sort_unstable();
        points.dedup();
        // Coalesce adjacent intervals decided by the same pair of rules.
        let mut pending: Option<(u32, u32, Option<RuleId>, Option<RuleId>)> = None;
        let flush = |p: Option<(u32, u32, Option<RuleId>, Option<RuleId>)>,
                     record: &mut Record<'_>| {
            if let Some((f, l, o, n)) = p {
                record(
                    Section::Msr,
                    Some(access),
                    Res::Msr(f, l),
                    o,
                    n,
                    (kind, phase),
                );
            }
        };
        for (i, &p) in points.iter().enumerate() {
            let first = p as u32;
            let last = points.get(i + 1).map_or(u32::MAX, |&n| (n - 1) as u32);
            let (o, n) = (msr_at(a, first), msr_at(b, first));
            match &mut pending {
                Some((_, l, po, pn))
                    if *po == o && *pn == n && u64::from(*l) + 1 == u64::from(first) =>
                {
                    *l = last
                }
                _ => {
                    flush(pending.take(), record);
                    pending = Some((first, last, o, n));
                }
            }
        }
        flush(pending, record);
    }
}

fn cpuid_at(list: &[CpuidEntry], leaf: u32, sub: Option<u32>) -> Option<RuleId> {
    list.iter()
        .find(|e| {
            e.leaf_first <= leaf
                && leaf <= e.leaf_last
                && match sub {
                    Some(s) => e.subleaf.is_none_or(|x| x == s),
                    None => e.subleaf.is_none(),
                }
        })
        .map(|e| e.rule)
}

/// A run of CPUID leaves: (subleaf class, other subleaves, old rule, new rule).
type RunKey = (Option<u32>, bool, Option<RuleId>, Option<RuleId>);

/// Every CPUID leaf run and subleaf class of every (kind, phase).
pub(super) fn cpuid_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    let keys: BTreeSet<_> = old.cpuid.keys().chain(new.cpuid.keys()).copied().collect();
    for key @ (kind, phase) in keys {
        let a = old.cpuid.get(&key).map_or(&[][..], Vec::as_slice);
        let b = new.cpuid.get(&key).map_or(&[][..], Vec::as_slice);
        let mut points: Vec<u64> = vec![0];
        for e in a.iter().chain(b) {
            points.push(u64::from(e.leaf_first));
            points.push(u64::from(e.leaf_last) + 1);
        }
        points.retain(|&p| p <= u64::from(u32::MAX));
        points.sort_unstable();
        points.dedup();
        let mut pending: BTreeMap<RunKey, (u32, u32)> = BTreeMap::new();
        let mut done: Vec<(CpuidSel, Option<RuleId>, Option<RuleId>)> = Vec::new();
        for (i, &p) in points.iter().enumerate() {
            let first = p as u32;
            let last = points.get(i + 1).map_or(u32::MAX, |&n| (n - 1) as u32);
            let specifics: BTreeSet<u32> = a
                .iter()
                .chain(b)
                .filter(|e| e.leaf_first <= first && first <= e.leaf_last)
                .filter_map(|e| e.subleaf)
                .collect();
            let mut seen = BTreeSet::new();
            let classes = specifics
                .iter()
                .map(|&s| (Some(s), false))
                .chain(std::iter::once((None, !specifics.is_empty())));
            for (sub, others) in classes {
                let (o, n) = (cpuid_at(a, first, sub), cpuid_at(b, first, sub));
                let k = (sub, others, o, n);
                seen.insert(k);
                match pending.get_mut(&k) {
                    Some((_, l)) if u64::from(*l) + 1 == u64::from(first) => *l = last,
                    _ => {
                        if let Some((f, l)) = pending.insert(k, (first, last)) {
                            done.push((
                                CpuidSel {
                                    leaves: (f, l),
                                    subleaf: sub,
                                    others,
                                },
                                o,
                                n,
                            ));
                        }
                    }
                }
            }
            // Runs that did not continue into this interval are complete.
            let ended: Vec<_> = pending
                .keys()
                .filter(|k| !seen.contains(*k))
                .copied()
                .collect();
            for k in ended {
                if let Some((f, l)) = pending.remove(&k) {
                    done.push((
                        CpuidSel {
                            leaves: (f, l),
                            subleaf: k.0,
                            others: k.1,
                        },
                        k.2,
                        k.3,
                    ));
                }
            }
        }
        for (k, (f, l)) in pending {
            done.push((
                CpuidSel {
                    leaves: (f, l),
                    subleaf: k.0,
                    others: k.1,
                },
                k.2,
                k.3,
            ));
        }
        for (sel, o, n) in done {
            record(Section::Cpuid, None, Res::Cpuid(sel), o, n, (kind, phase));
        }
    }
}

/// Every PV call of every (kind, phase).
pub(super) fn pv_walk(old: &Ir, new: &Ir, record: &mut Record<'_>) {
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            let find = |ir: &Ir, call| {
                ir.pv
                    .get(&(kind, phase))
                    .and_then(|l| l.iter().find(|(c, _)| *c == call))
                    .map(|(_, id)| *id)
            };
            for call in PvCall::ALL {
                record(
                    Section::Pv,
                    None,
                    Res::Pv(call),
                    find(old, call),
                    find(new, call),
                    (kind, phase),
                );
            }
        }
    }
}
