//! Sorted (leaf, subleaf) keys for `vcpu_after_set_cpuid`, so the merge
//! is O(n log n) on a 256-entry proposal (KVM_MAX_CPUID_ENTRIES) rather
//! than a search of the proposal or the CPU model per entry: the
//! proposal's keys sorted once (duplicates found as neighbours), the
//! model's table and the supported-CPUID entries of a leaf walked in key
//! order, and the proposal walked together with the sorted supported base.

use heapless::Vec;
use pvgate_gate::{CpuidSupport, RegSupport, VmKind, support_for};

use crate::cpu::{CpuidEntry, MAX_CPUID_ENTRIES, find_entry};

/// A CPUID entry's (leaf, subleaf) as one ordered number.
#[inline(always)]
pub(crate) const fn key(leaf: u32, subleaf: u32) -> u64 {
    (leaf as u64) << 32 | subleaf as u64
}

/// A table entry's key.
#[inline(always)]
fn key_of(e: &CpuidEntry) -> u64 {
    key(e.leaf, e.subleaf)
}

/// The proposal's keys with their positions, sorted by (key, position).
pub(crate) struct SortedKeys {
    keys: Vec<(u64, u16), MAX_CPUID_ENTRIES>,
}

impl SortedKeys {
    /// Sorts the keys of `table` (at most [`MAX_CPUID_ENTRIES`] entries).
    pub(crate) fn new(table: &[CpuidEntry]) -> SortedKeys {
        let mut keys = Vec::new();
        for (i, e) in table.iter().enumerate() {
            // A table holds at most MAX_CPUID_ENTRIES (< 2^16) entries.
            let _ = keys.push((key_of(e), i as u16));
        }
        sort_runs(&mut keys);
        SortedKeys { keys }
    }

    /// The position of the first entry (in the proposal's order) whose
    /// (leaf, subleaf) appears again later: the smallest position of a run
    /// of equal keys, over all runs longer than one.
    pub(crate) fn first_duplicate(&self) -> Option<usize> {
        self.keys
            .windows(2)
            .filter_map(|w| match w {
                [a, b] if a.0 == b.0 => Some(usize::from(a.1)),
                _ => None,
            })
            .min()
    }
}

/// Sorts `keys` (distinct pairs, so every sort gives the same order).
/// Hosts send tables mostly in order (KVM's supported list, then entries
/// of their own): one sorted run is only checked, two are merged in one
/// pass, more are sorted.
fn sort_runs(keys: &mut Vec<(u64, u16), MAX_CPUID_ENTRIES>) {
    let split = keys
        .windows(2)
        .position(|w| matches!(w, [a, b] if a > b))
        .map_or(keys.len(), |i| i.saturating_add(1));
    let (first, second) = keys.split_at(split);
    if second.is_empty() {
        return;
    }
    if !second.is_sorted() {
        keys.sort_unstable();
        return;
    }
    let mut merged: Vec<(u64, u16), MAX_CPUID_ENTRIES> = Vec::new();
    let (mut a, mut b) = (0usize, 0usize);
    while let Some(&x) = match (first.get(a), second.get(b)) {
        (Some(x), Some(y)) if y < x => {
            b = b.saturating_add(1);
            Some(y)
        }
        (Some(x), _) => {
            a = a.saturating_add(1);
            Some(x)
        }
        (None, y) => {
            b = b.saturating_add(1);
            y
        }
    } {
        // As many as `keys` holds.
        let _ = merged.push(x);
    }
    *keys = merged;
}

/// Looks entries up in a table as [`find_entry`] does (the first entry
/// for the key). When the table is sorted by key and the keys asked for
/// never go down (the merge asks in key order), a cursor walks the table
/// once; otherwise each look-up searches it.
pub(crate) struct Lookup<'a> {
    table: &'a [CpuidEntry],
    sorted: bool,
    /// Entries before this one have a key below the last one asked for.
    at: usize,
    last: u64,
}

impl<'a> Lookup<'a> {
    /// Checks once whether `table` is sorted.
    pub(crate) fn new(table: &'a [CpuidEntry]) -> Lookup<'a> {
        let sorted = table.windows(2).all(|w| match w {
            [a, b] => key_of(a) <= key_of(b),
            _ => true,
        });
        Lookup {
            table,
            sorted,
            at: 0,
            last: 0,
        }
    }

    /// The first entry for (leaf, subleaf), or zeros.
    #[inline]
    pub(crate) fn entry(&mut self, leaf: u32, subleaf: u32) -> CpuidEntry {
        let k = key(leaf, subleaf);
        let found = if self.sorted && k >= self.last {
            self.last = k;
            while self.table.get(self.at).is_some_and(|e| key_of(e) < k) {
                self.at = self.at.saturating_add(1);
            }
            self.table.get(self.at).filter(|e| key_of(e) == k)
        } else {
            find_entry(self.table, leaf, subleaf)
        };
        found.copied().unwrap_or(CpuidEntry::zero(leaf, subleaf))
    }
}

/// [`support_for`] over one table and VM kind, asked leaf after leaf: the
/// entries that cover the current leaf are marked once per leaf (a bit
/// per entry, for a table of up to 64 entries), so a leaf's subleaves
/// look at those only. The answer is the same: the first entry, in the
/// table's order, covering (leaf, subleaf).
pub(crate) struct Support<'a> {
    table: &'a [CpuidSupport],
    kind: VmKind,
    leaf: Option<u32>,
    /// Bit `i`: entry `i` covers `leaf`.
    covering: u64,
}

impl<'a> Support<'a> {
    /// Nothing marked yet.
    pub(crate) fn new(table: &'a [CpuidSupport], kind: VmKind) -> Support<'a> {
        Support {
            table,
            kind,
            leaf: None,
            covering: 0,
        }
    }

    /// What [`support_for`] answers for (leaf, subleaf).
    #[inline]
    pub(crate) fn regs(&mut self, leaf: u32, subleaf: u32) -> [RegSupport; 4] {
        if self.kind != VmKind::Protected || self.table.len() > 64 {
            return support_for(self.table, self.kind, leaf, subleaf);
        }
        if self.leaf != Some(leaf) {
            self.leaf = Some(leaf);
            self.covering = self.table.iter().enumerate().fold(0u64, |m, (i, e)| {
                let covers = e.leaf_first <= leaf && leaf <= e.leaf_last;
                m | u64::from(covers) << (i & 63)
            });
        }
        let mut rest = self.covering;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest.wrapping_sub(1);
            if let Some(e) = self.table.get(i).filter(|e| e.covers(leaf, subleaf)) {
                return e.regs;
            }
        }
        [RegSupport::NONE; 4]
    }
}

/// One key of the effective table, in (leaf, subleaf) order: `rank` is
/// its place in the order the merge is specified in (the proposal's
/// entries, then the base entries the proposal leaves out, in the base's
/// order); `host` is the proposal's entry, if it has one.
#[derive(Clone, Copy)]
pub(crate) struct MergeKey {
    /// The leaf.
    pub(crate) leaf: u32,
    /// The subleaf.
    pub(crate) subleaf: u32,
    /// Place in the specified order (first violation wins).
    pub(crate) rank: usize,
    /// The proposal's position for this key.
    pub(crate) host: Option<usize>,
}

/// Walks the sorted proposal keys and the sorted base together, giving
/// every key of the effective table once per entry, in (leaf, subleaf)
/// order: each proposal entry, and each base entry the proposal leaves
/// out. `base` is sorted by key (as `supported_base` returns it).
pub(crate) struct MergeKeys<'a> {
    proposal: &'a [(u64, u16)],
    base: &'a [CpuidEntry],
    p: usize,
    b: usize,
    extra: usize,
}

/// The walk over `keys` and `base` (see [`MergeKeys`]).
pub(crate) fn merge_keys<'a>(keys: &'a SortedKeys, base: &'a [CpuidEntry]) -> MergeKeys<'a> {
    MergeKeys {
        proposal: keys.keys.as_slice(),
        base,
        p: 0,
        b: 0,
        extra: 0,
    }
}

impl Iterator for MergeKeys<'_> {
    type Item = MergeKey;

    #[inline]
    fn next(&mut self) -> Option<MergeKey> {
        loop {
            return match (self.proposal.get(self.p), self.base.get(self.b)) {
                (None, None) => None,
                (Some(&(k, i)), e) if e.is_none_or(|e| k < key_of(e)) => {
                    self.p = self.p.saturating_add(1);
                    Some(MergeKey {
                        leaf: (k >> 32) as u32,
                        subleaf: k as u32,
                        rank: usize::from(i),
                        host: Some(usize::from(i)),
                    })
                }
                (Some(&(k, _)), Some(e)) if k == key_of(e) => {
                    // The proposal has this base entry: its entry stands
                    // for it.
                    self.b = self.b.saturating_add(1);
                    continue;
                }
                (_, Some(e)) => {
                    self.b = self.b.saturating_add(1);
                    let rank = self.proposal.len().saturating_add(self.extra);
                    self.extra = self.extra.saturating_add(1);
                    Some(MergeKey {
                        leaf: e.leaf,
                        subleaf: e.subleaf,
                        rank,
                        host: None,
                    })
                }
                (Some(_), None) => None,
            };
        }
    }
}
