//! The walk of `vcpu_after_set_cpuid`: the proposal in (leaf, subleaf)
//! order, in chunks of consecutive entries (the whole table when its keys
//! increase, the two runs merged when it has two, sorted otherwise), and
//! the supported base's masks ([`MergeBase`]) side by side, so the
//! effective table comes out sorted and the base entries the proposal
//! leaves out are found without a search. A proposed entry of the base
//! merges with the base's masks; entries nothing supports that the host
//! proposed as zeros are taken as they are, a run of them copied at once
//! (every bit is cleared whatever the policy says, so nothing is
//! replaced); any other is decided on its own. The first replaced
//! register is the first in the specified order (the proposal as sent,
//! then the left-out base entries), by rank.

use pvgate_gate::{Decision, Phase, Policy, Register, RuleId, VmKind, decide_cpuid};

use super::cpuid_keys::{Lookup, RunsStop, Support, TwoRuns, first_run, key, sorted_positions};
use super::cpuid_masks::{EntryMasks, Grant, MergeBase};
use super::ctx::Ctx;
use crate::cpu::{CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};

/// The first register where the host's proposal was replaced.
#[derive(Clone, Copy)]
pub(crate) struct Violation {
    /// The entry's leaf.
    pub(crate) leaf: u32,
    /// The entry's subleaf.
    pub(crate) subleaf: u32,
    /// The register.
    pub(crate) reg: Register,
    /// What the host proposed.
    pub(crate) host: u32,
    /// What the guest will see.
    pub(crate) effective: u32,
    /// The deciding rule.
    pub(crate) rule: Option<RuleId>,
}

/// What the merge replaced: the first register in the specified order,
/// and how many registers.
pub(crate) struct Merged {
    /// The first replaced register.
    pub(crate) first: Option<Violation>,
    /// How many registers were replaced.
    pub(crate) replaced: u32,
}

/// Why a merge stopped without an effective table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The position of the proposal's first duplicate, in its order.
    Duplicate(usize),
    /// The effective table would have this many entries, too many.
    TooLarge(usize),
}

/// Merges the proposal `table` with `base` into `effective` (empty), for
/// a vCPU in `setup`. The proposal is walked in key order: as it is when
/// its keys increase, by merging its two increasing runs when it has two
/// (duplicates are found where they meet), sorted otherwise.
pub(crate) fn merge<P: Policy, G: Fn(&Decision<'_>) -> Grant + Copy>(
    ctx: &Ctx<'_, P>,
    table: &[CpuidEntry],
    base: &MergeBase,
    effective: &mut CpuidTable,
    grant: G,
) -> Result<Merged, Stop> {
    let n = table.len();
    let split = first_run(table);
    if split == n {
        return walk(ctx, core::iter::once((0, table)), n, base, effective, grant)
            .map_err(Stop::TooLarge);
    }
    let mut runs = TwoRuns::new(table, split);
    let merged = walk(ctx, &mut runs, n, base, effective, grant);
    match runs.stopped() {
        None => merged.map_err(Stop::TooLarge),
        Some(RunsStop::Duplicate(i)) => Err(Stop::Duplicate(i)),
        Some(RunsStop::Unsorted) => {
            effective.clear();
            let order = sorted_positions(table).map_err(Stop::Duplicate)?;
            let sorted = order.iter().filter_map(|&i| {
                let i = usize::from(i);
                table.get(i..=i).map(|e| (i, e))
            });
            walk(ctx, sorted, n, base, effective, grant).map_err(Stop::TooLarge)
        }
    }
}

/// Walks the proposal's `n` entries, given as chunks in key order (the
/// position of a chunk's first entry, then entries at consecutive
/// positions), beside `base`. `Err` holds the number of entries the
/// effective table would have when it is too large.
fn walk<'t, P: Policy, G: Fn(&Decision<'_>) -> Grant>(
    ctx: &Ctx<'_, P>,
    proposal: impl Iterator<Item = (usize, &'t [CpuidEntry])>,
    n: usize,
    base: &MergeBase,
    out: &mut CpuidTable,
    grant: G,
) -> Result<Merged, usize> {
    let base = base.entries();
    let mut w = Walk {
        policy: ctx.policy,
        model: &ctx.cpu.base,
        kind: ctx.kind,
        first: None,
        replaced: 0,
        supported: Support::new(ctx.policy.cpuid_support(), ctx.kind),
        hardware: None,
        bare: u64::MAX,
        grant,
    };
    let mut overflow = 0usize;
    let mut b = 0usize;
    // The key of the next base entry (past the end, above every key).
    let mut next = base.first().map_or(u64::MAX, |m| m.key);
    // Left-out base entries rank after the whole proposal, in base order.
    let mut extra = n;
    for (start, chunk) in proposal {
        let mut j = 0usize;
        while let Some(p) = chunk.get(j) {
            let i = start.saturating_add(j);
            let k = key(p.leaf, p.subleaf);
            if k < next {
                // Not in the base, and no left-out base entry comes first.
                let bare = w.bare;
                let taken_as_is = |p: &CpuidEntry| {
                    key(p.leaf, p.subleaf) < next
                        && u64::from(p.leaf) == bare
                        && p.eax | p.ebx | p.ecx | p.edx == 0
                };
                if taken_as_is(p) {
                    // Of a leaf nothing supports, proposed as zeros: this
                    // entry and those like it after it are taken as they
                    // are.
                    let rest = chunk.get(j..).unwrap_or_default();
                    let run = rest.iter().take_while(|p| taken_as_is(p)).count();
                    let taken = rest.get(..run).unwrap_or_default();
                    let fit = run.min(MAX_CPUID_ENTRIES.saturating_sub(out.len()));
                    let _ = out.extend_from_slice(taken.get(..fit).unwrap_or_default());
                    overflow = overflow.saturating_add(run.saturating_sub(fit));
                    j = j.saturating_add(run);
                } else {
                    push(out, &mut overflow, w.other(p, i));
                    j = j.saturating_add(1);
                }
                continue;
            }
            match base.get(b) {
                Some(m) if m.key < k => {
                    // A base entry the proposal leaves out comes first.
                    push(out, &mut overflow, w.masked(m, [0; 4], extra));
                    extra = extra.saturating_add(1);
                    b = b.saturating_add(1);
                }
                Some(m) if m.key == k => {
                    // The proposal's entry stands for the base's (every
                    // one of them).
                    while base.get(b).is_some_and(|m| m.key == k) {
                        b = b.saturating_add(1);
                    }
                    push(
                        out,
                        &mut overflow,
                        w.masked(m, [p.eax, p.ebx, p.ecx, p.edx], i),
                    );
                    j = j.saturating_add(1);
                }
                _ => {
                    // The base is done (and `k` is the highest key).
                    push(out, &mut overflow, w.other(p, i));
                    j = j.saturating_add(1);
                }
            }
            next = base.get(b).map_or(u64::MAX, |m| m.key);
        }
    }
    for m in base.get(b..).unwrap_or_default() {
        push(out, &mut overflow, w.masked(m, [0; 4], extra));
        extra = extra.saturating_add(1);
    }
    if overflow > 0 {
        return Err(out.len().saturating_add(overflow));
    }
    Ok(Merged {
        first: w.first.map(|(_, f)| f),
        replaced: w.replaced,
    })
}

/// Appends an entry; past the capacity only the count goes on (the call
/// fails).
#[inline(always)]
fn push(out: &mut CpuidTable, overflow: &mut usize, e: CpuidEntry) {
    if out.push(e).is_err() {
        *overflow = overflow.saturating_add(1);
    }
}

/// What the merge keeps besides the effective table.
struct Walk<'a, P, G> {
    policy: &'a P,
    /// The CPU model's table.
    model: &'a [CpuidEntry],
    kind: VmKind,
    /// The first replaced register so far, with its rank.
    first: Option<(usize, Violation)>,
    replaced: u32,
    supported: Support<'a>,
    /// The CPU model, looked up only for entries outside the base.
    hardware: Option<Lookup<'a>>,
    /// A leaf nothing supports (above every leaf until one is found).
    bare: u64,
    /// What a decision grants.
    grant: G,
}

impl<P: Policy, G: Fn(&Decision<'_>) -> Grant> Walk<'_, P, G> {
    /// The merge of one entry, of rank `rank`, under `m`.
    #[inline(always)]
    fn masked(&mut self, m: &EntryMasks, host: [u32; 4], rank: usize) -> CpuidEntry {
        let eff = m.apply(host);
        let [e0, e1, e2, e3] = eff;
        let [h0, h1, h2, h3] = host;
        if (e0 ^ h0) | (e1 ^ h1) | (e2 ^ h2) | (e3 ^ h3) != 0 && m.report {
            self.replace(m, host, eff, rank);
        }
        CpuidEntry {
            leaf: (m.key >> 32) as u32,
            subleaf: m.key as u32,
            eax: e0,
            ebx: e1,
            ecx: e2,
            edx: e3,
        }
    }

    /// Counts the replaced registers of an entry and keeps the first.
    #[cold]
    #[inline(never)]
    fn replace(&mut self, m: &EntryMasks, host: [u32; 4], eff: [u32; 4], rank: usize) {
        for ((reg, h), e) in Register::ALL.into_iter().zip(host).zip(eff) {
            if h == e {
                continue;
            }
            self.replaced = self.replaced.wrapping_add(1);
            if self.first.is_none_or(|(r, _)| rank < r) {
                self.first = Some((
                    rank,
                    Violation {
                        leaf: (m.key >> 32) as u32,
                        subleaf: m.key as u32,
                        reg,
                        host: h,
                        effective: e,
                        rule: m.rule,
                    },
                ));
            }
        }
    }

    /// The merge of a proposed entry the base does not hold: taken as it
    /// is when nothing of it is supported and the host proposed zeros,
    /// decided on its own otherwise. Marks a leaf nothing supports.
    #[inline(never)]
    fn other(&mut self, p: &CpuidEntry, rank: usize) -> CpuidEntry {
        let (leaf, subleaf) = (p.leaf, p.subleaf);
        if self.supported.bare(leaf) {
            self.bare = u64::from(leaf);
        }
        let host = [p.eax, p.ebx, p.ecx, p.edx];
        let support = self.supported.regs(leaf, subleaf);
        if host == [0; 4] && support.iter().all(|s| s.allowed() == 0) {
            return *p;
        }
        let cpu = self.model;
        let hw = self
            .hardware
            .get_or_insert_with(|| Lookup::new(cpu))
            .entry(leaf, subleaf);
        // The merge runs in `setup` only.
        let d = decide_cpuid(self.policy, self.kind, Phase::Setup, leaf, subleaf);
        let m = EntryMasks::of(leaf, subleaf, &hw, &(self.grant)(&d), support);
        self.masked(&m, host, rank)
    }
}
