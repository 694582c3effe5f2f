//! A vCPU's MSR store ([`MsrStore`]): the stored (index, value) pairs in
//! the order they were first written, and a small open-addressed index
//! from MSR index to position, so that finding an MSR is one hash and
//! (almost always) one probe rather than a search of the pairs.
//!
//! Which MSRs a vCPU stores is the policy's to say (any MSR its rules let
//! the host write), so the index is a hash table, not a fixed map.

use core::fmt;
use core::ops::Deref;

use heapless::Vec;

/// How many MSRs a vCPU's MSR store holds.
pub const MSR_STORE_CAPACITY: usize = 64;

/// Index slots: twice the capacity (a power of two), so at most half are
/// ever taken and every probe sequence reaches a free slot.
const SLOTS: usize = 2 * MSR_STORE_CAPACITY;
const _: () = assert!(SLOTS.is_power_of_two() && MSR_STORE_CAPACITY < u8::MAX as usize);
const SLOT_MASK: usize = SLOTS.wrapping_sub(1);
/// How far the hash's top bits are shifted down to give a slot.
const HASH_SHIFT: u32 = u32::BITS.wrapping_sub(SLOTS.trailing_zeros());

/// The MSR store: at most [`MSR_STORE_CAPACITY`] (index, value) pairs in
/// first-write order. Reads as a slice of the pairs; changed only through
/// [`MsrStore::set`] and [`MsrStore::values_mut`], which keep the index.
#[derive(Clone)]
pub struct MsrStore {
    entries: Vec<(u32, u64), MSR_STORE_CAPACITY>,
    /// Slot `h`: 0 when free, else 1 + the position in `entries` of an MSR
    /// whose probe sequence passes `h` (linear probing from its hash).
    slots: [u8; SLOTS],
}

/// The first slot an MSR index probes (Fibonacci hashing: the top bits of
/// the index times 2^32 / φ; the MSRs of one range land apart).
#[inline(always)]
fn home(index: u32) -> usize {
    (index.wrapping_mul(0x9e37_79b9) >> HASH_SHIFT) as usize & SLOT_MASK
}

impl MsrStore {
    /// An empty store.
    pub const fn new() -> MsrStore {
        MsrStore {
            entries: Vec::new(),
            slots: [0; SLOTS],
        }
    }

    /// The slot of `index` in the index: `Ok` with the slot that names
    /// it, or `Err` with the free slot where it would go (`None` only if
    /// the index were full, which it never is).
    #[inline(always)]
    fn probe(&self, index: u32) -> Result<usize, Option<usize>> {
        let mut h = home(index);
        for _ in 0..SLOTS {
            let at = match self.slots.get(h) {
                Some(0) | None => return Err(Some(h)),
                Some(&s) => usize::from(s).wrapping_sub(1),
            };
            if self.entries.get(at).is_some_and(|&(i, _)| i == index) {
                return Ok(h);
            }
            h = h.wrapping_add(1) & SLOT_MASK;
        }
        Err(None)
    }

    /// The position in the pairs of `index`, if stored.
    #[inline(always)]
    fn position(&self, index: u32) -> Option<usize> {
        let h = self.probe(index).ok()?;
        self.slots.get(h).map(|&s| usize::from(s).wrapping_sub(1))
    }

    /// The stored value of an MSR (`None` if never set).
    #[inline]
    pub fn get(&self, index: u32) -> Option<u64> {
        let at = self.position(index)?;
        self.entries.get(at).map(|&(_, v)| v)
    }

    /// Stores an MSR value; `false` when the store is full.
    #[inline(always)]
    pub fn set(&mut self, index: u32, value: u64) -> bool {
        let free = match self.probe(index) {
            Ok(h) => {
                let at = self
                    .slots
                    .get(h)
                    .map_or(usize::MAX, |&s| usize::from(s).wrapping_sub(1));
                return match self.entries.get_mut(at) {
                    Some(e) => {
                        e.1 = value;
                        true
                    }
                    None => false,
                };
            }
            Err(free) => free,
        };
        let n = self.entries.len();
        let (Some(h), Ok(tag)) = (free, u8::try_from(n.wrapping_add(1))) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(h) else {
            return false;
        };
        if self.entries.push((index, value)).is_err() {
            return false;
        }
        *slot = tag;
        true
    }

    /// The stored pairs' values, to change in place (the indices stay).
    pub fn values_mut(&mut self) -> impl Iterator<Item = (u32, &mut u64)> {
        self.entries.iter_mut().map(|(i, v)| (*i, v))
    }
}

impl Default for MsrStore {
    fn default() -> Self {
        MsrStore::new()
    }
}

impl Deref for MsrStore {
    type Target = [(u32, u64)];
    fn deref(&self) -> &[(u32, u64)] {
        &self.entries
    }
}

/// Two stores are equal when they hold the same pairs in the same order
/// (the index follows from them).
impl PartialEq for MsrStore {
    fn eq(&self, other: &MsrStore) -> bool {
        self.entries == other.entries
    }
}

impl Eq for MsrStore {}

/// Shown as the list of pairs, as the store's `Vec` was.
impl fmt::Debug for MsrStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn stores_finds_and_overwrites_in_first_write_order() {
        let mut s = MsrStore::new();
        assert!(s.set(0x1a0, 1));
        assert!(s.set(0x2ff, 2));
        assert!(s.set(0x1a0, 3));
        assert_eq!(s.get(0x1a0), Some(3));
        assert_eq!(s.get(0x2ff), Some(2));
        assert_eq!(s.get(0x277), None);
        assert_eq!(&s[..], &[(0x1a0, 3), (0x2ff, 2)]);
    }

    #[test]
    fn colliding_indices_probe_past_each_other_and_the_store_fills_at_capacity() {
        // Every index has the same home slot: each probes past all before.
        let stored: std::vec::Vec<u32> = (0u32..)
            .filter(|&i| home(i) == home(0x2ff))
            .take(MSR_STORE_CAPACITY)
            .collect();
        let mut s = MsrStore::new();
        for &i in &stored {
            assert!(s.set(i, u64::from(i) * 3), "{i:#x}");
        }
        for &i in &stored {
            assert_eq!(s.get(i), Some(u64::from(i) * 3), "{i:#x}");
        }
        // Full: a new MSR does not fit; a stored one is still overwritten.
        assert!(!s.set(0xdead_beef, 1));
        assert_eq!(s.get(0xdead_beef), None);
        assert!(s.set(stored[7], 9));
        assert_eq!(s.get(stored[7]), Some(9));
        let order: std::vec::Vec<u32> = s.iter().map(|&(i, _)| i).collect();
        assert_eq!(order, stored);
    }

    #[test]
    fn values_mut_changes_values_and_keeps_the_index() {
        let mut s = MsrStore::new();
        assert!(s.set(0x10, 1));
        assert!(s.set(0x20, 2));
        for (i, v) in s.values_mut() {
            *v += u64::from(i);
        }
        assert_eq!(s.get(0x10), Some(0x11));
        assert_eq!(s.get(0x20), Some(0x22));
    }
}
