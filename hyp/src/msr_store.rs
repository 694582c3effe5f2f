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

/// A free slot. Every other slot holds a position below the number of
/// stored pairs (pairs are only ever added), so a free slot is also the
/// one whose pair does not exist: one bounds check says both.
const FREE: u8 = u8::MAX;

/// The MSR store: at most [`MSR_STORE_CAPACITY`] (index, value) pairs in
/// first-write order. Reads as a slice of the pairs; changed only through
/// [`MsrStore::set`] and [`MsrStore::values_mut`], which keep the index.
#[derive(Clone)]
pub struct MsrStore {
    entries: Vec<(u32, u64), MSR_STORE_CAPACITY>,
    /// Slot `h`: [`FREE`], or the position in `entries` of an MSR whose
    /// probe sequence passes `h` (linear probing from its hash).
    slots: [u8; SLOTS],
}

/// The first slot an MSR index probes (Fibonacci hashing: the top bits of
/// the index times 2^32 / φ; the MSRs of one range land apart).
#[inline(always)]
fn home(index: u32) -> usize {
    (index.wrapping_mul(0x9e37_79b9) >> HASH_SHIFT) as usize & SLOT_MASK
}

/// Where [`MsrStore::probe`] stopped.
enum Probe {
    /// The MSR's position in the pairs.
    Found(usize),
    /// The free slot where it would go.
    Free(usize),
    /// No free slot (never: at most half the slots are taken).
    Full,
}

impl MsrStore {
    /// An empty store.
    pub const fn new() -> MsrStore {
        MsrStore {
            entries: Vec::new(),
            slots: [FREE; SLOTS],
        }
    }

    /// Follows `index`'s probe sequence to its pair or to a free slot.
    #[inline(always)]
    fn probe(&self, index: u32) -> Probe {
        let mut h = home(index);
        for _ in 0..SLOTS {
            let at = self.slots.get(h).map_or(usize::MAX, |&s| usize::from(s));
            match self.entries.get(at) {
                None => return Probe::Free(h),
                Some(&(i, _)) if i == index => return Probe::Found(at),
                Some(_) => h = h.wrapping_add(1) & SLOT_MASK,
            }
        }
        Probe::Full
    }

    /// The stored value of an MSR (`None` if never set).
    #[inline]
    pub fn get(&self, index: u32) -> Option<u64> {
        match self.probe(index) {
            Probe::Found(at) => self.entries.get(at).map(|&(_, v)| v),
            Probe::Free(_) | Probe::Full => None,
        }
    }

    /// Stores an MSR value; `false` when the store is full.
    #[inline(always)]
    pub fn set(&mut self, index: u32, value: u64) -> bool {
        let h = match self.probe(index) {
            Probe::Found(at) => {
                return match self.entries.get_mut(at) {
                    Some(e) => {
                        e.1 = value;
                        true
                    }
                    None => false,
                };
            }
            Probe::Free(h) => h,
            Probe::Full => return false,
        };
        let Ok(at) = u8::try_from(self.entries.len()) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(h) else {
            return false;
        };
        if self.entries.push((index, value)).is_err() {
            return false;
        }
        *slot = at;
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
