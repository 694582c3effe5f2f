//! Sorted (leaf, subleaf) keys for `vcpu_after_set_cpuid`, so the merge
//! is O(n log n) on a 256-entry proposal (KVM_MAX_CPUID_ENTRIES) rather
//! than a search of the proposal or the CPU model per entry: the
//! proposal's positions in key order (one or two increasing runs taken
//! without a sort; duplicates found where the runs meet, or as neighbours
//! once sorted), and the model's table and the supported-CPUID entries of
//! a leaf walked in key order.

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

/// Where the first increasing run of `table`'s keys ends: the length of
/// the longest prefix whose keys strictly increase.
pub(crate) fn first_run(table: &[CpuidEntry]) -> usize {
    table
        .windows(2)
        .position(|w| matches!(w, [a, b] if key_of(a) >= key_of(b)))
        .map_or(table.len(), |i| i.saturating_add(1))
}

/// Whether the keys of `run` strictly increase.
fn increasing(run: &[CpuidEntry]) -> bool {
    run.windows(2)
        .all(|w| matches!(w, [a, b] if key_of(a) < key_of(b)))
}

/// Why a [`TwoRuns`] walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunsStop {
    /// The position of the first duplicate, in the proposal's order.
    Duplicate(usize),
    /// The second run does not increase: the proposal needs a sort.
    Unsorted,
}

/// A table whose keys form two increasing runs (`first_run` ends the
/// first), walked in key order without a sort, as chunks: (position of
/// the chunk's first entry, entries in the table's order and in key
/// order). The walk stops early at a key both runs hold (a duplicate) or
/// where the second run stops increasing; [`TwoRuns::stopped`] says which.
pub(crate) struct TwoRuns<'a> {
    first: &'a [CpuidEntry],
    second: &'a [CpuidEntry],
    a: usize,
    b: usize,
    stop: Option<RunsStop>,
}

impl<'a> TwoRuns<'a> {
    /// The walk of `table`, whose first run ends at `split`.
    pub(crate) fn new(table: &'a [CpuidEntry], split: usize) -> TwoRuns<'a> {
        let (first, second) = table.split_at(split.min(table.len()));
        TwoRuns {
            first,
            second,
            a: 0,
            b: 0,
            stop: None,
        }
    }

    /// Why the walk stopped early, if it did. A key both runs hold is the
    /// first duplicate only when the whole second run increases (then
    /// duplicates pair a first-run entry with a later one, and the first
    /// met has the lowest key, so the lowest position); otherwise the
    /// proposal needs a sort.
    pub(crate) fn stopped(&self) -> Option<RunsStop> {
        match self.stop {
            Some(RunsStop::Duplicate(_)) if !increasing(self.second) => Some(RunsStop::Unsorted),
            s => s,
        }
    }

    /// The first run's entries from `a` below `limit`.
    fn take_first(&mut self, limit: Option<u64>) -> Option<(usize, &'a [CpuidEntry])> {
        let rest = self.first.get(self.a..).unwrap_or_default();
        let len = match limit {
            Some(l) => rest.iter().take_while(|e| key_of(e) < l).count(),
            None => rest.len(),
        };
        let start = self.a;
        self.a = start.saturating_add(len);
        rest.get(..len).map(|chunk| (start, chunk))
    }

    /// The second run's entries from `b` below `limit`, as long as they
    /// increase (otherwise the walk stops).
    fn take_second(&mut self, limit: Option<u64>) -> Option<(usize, &'a [CpuidEntry])> {
        let rest = self.second.get(self.b..).unwrap_or_default();
        let mut len = 0usize;
        let mut last: Option<u64> = None;
        for e in rest {
            let k = key_of(e);
            if limit.is_some_and(|l| k >= l) {
                break;
            }
            if last.is_some_and(|last| k <= last) {
                self.stop = Some(RunsStop::Unsorted);
                return None;
            }
            last = Some(k);
            len = len.saturating_add(1);
        }
        let start = self.b;
        self.b = start.saturating_add(len);
        rest.get(..len)
            .map(|chunk| (self.first.len().saturating_add(start), chunk))
    }
}

impl<'a> Iterator for TwoRuns<'a> {
    type Item = (usize, &'a [CpuidEntry]);

    fn next(&mut self) -> Option<(usize, &'a [CpuidEntry])> {
        if self.stop.is_some() {
            return None;
        }
        match (self.first.get(self.a), self.second.get(self.b)) {
            (Some(x), Some(y)) => {
                let (kx, ky) = (key_of(x), key_of(y));
                if kx < ky {
                    self.take_first(Some(ky))
                } else if ky < kx {
                    self.take_second(Some(kx))
                } else {
                    self.stop = Some(RunsStop::Duplicate(self.a));
                    None
                }
            }
            (Some(_), None) => self.take_first(None),
            (None, Some(_)) => self.take_second(None),
            (None, None) => None,
        }
    }
}

/// The positions of `table` in key order, sorted (any order of entries),
/// or the position of the first duplicate in the proposal's order: sorted
/// with their positions, duplicates are neighbours, and the first
/// duplicate is the smallest position of a run of equal keys, over all
/// runs longer than one.
pub(crate) fn sorted_positions(table: &[CpuidEntry]) -> Result<Vec<u16, MAX_CPUID_ENTRIES>, usize> {
    let mut keys: Vec<(u64, u16), MAX_CPUID_ENTRIES> = Vec::new();
    for (i, e) in table.iter().enumerate() {
        // A table holds at most MAX_CPUID_ENTRIES (< 2^16) entries.
        let _ = keys.push((key_of(e), i as u16));
    }
    keys.sort_unstable();
    let duplicate = keys
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if a.0 == b.0 => Some(usize::from(a.1)),
            _ => None,
        })
        .min();
    if let Some(d) = duplicate {
        return Err(d);
    }
    let mut positions = Vec::new();
    for &(_, i) in &keys {
        let _ = positions.push(i);
    }
    Ok(positions)
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

    /// Marks the entries covering `leaf` (a table of up to 64 entries).
    #[inline]
    fn mark(&mut self, leaf: u32) {
        if self.leaf != Some(leaf) {
            self.leaf = Some(leaf);
            self.covering = self.table.iter().enumerate().fold(0u64, |m, (i, e)| {
                let covers = e.leaf_first <= leaf && leaf <= e.leaf_last;
                m | u64::from(covers) << (i & 63)
            });
        }
    }

    /// Whether nothing of any subleaf of `leaf` is supported: no entry of
    /// a protected VM's table covers the leaf.
    pub(crate) fn bare(&mut self, leaf: u32) -> bool {
        if self.kind != VmKind::Protected {
            return false;
        }
        if self.table.len() > 64 {
            return !self
                .table
                .iter()
                .any(|e| e.leaf_first <= leaf && leaf <= e.leaf_last);
        }
        self.mark(leaf);
        self.covering == 0
    }

    /// What [`support_for`] answers for (leaf, subleaf).
    #[inline]
    pub(crate) fn regs(&mut self, leaf: u32, subleaf: u32) -> [RegSupport; 4] {
        if self.kind != VmKind::Protected || self.table.len() > 64 {
            return support_for(self.table, self.kind, leaf, subleaf);
        }
        self.mark(leaf);
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
