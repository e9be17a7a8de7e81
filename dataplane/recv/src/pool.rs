//! Payload storage: a pool of byte buffers in power-of-two size classes.
//!
//! Every stored unit's payload is copied into a buffer taken from the pool and returned to it
//! when the unit has been presented (or dropped). Buffers are never shrunk or freed while the
//! receiver lives, and free buffers are chained through an index array (an intrusive free
//! list), so returning one never allocates. The pool allocates only when a size class holds
//! more buffers at once than it ever did before: once each class has seen its peak, steady-state
//! reception is allocation-free.

/// Handle to one pooled buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BufId(u32);

impl BufId {
    /// A handle that names no pooled buffer, for tests of structures that only carry one.
    #[cfg(test)]
    pub(crate) fn for_tests(id: u32) -> Self {
        BufId(id)
    }
}

/// Smallest size class: 2^6 = 64 bytes.
const MIN_CLASS: u32 = 6;
/// Largest size class: 2^24 bytes, matching `config::MAX_PAYLOAD_LIMIT`.
const MAX_CLASS: u32 = 24;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;

/// Size-classed buffer pool with accounting of live units and bytes.
#[derive(Debug)]
pub(crate) struct PayloadPool {
    bufs: Vec<Vec<u8>>,
    class_of: Vec<u8>,
    /// `next_free[id]`: the free buffer after `id` in its class's free list.
    next_free: Vec<Option<u32>>,
    /// Head of each class's free list.
    free_head: [Option<u32>; CLASSES],
    live_units: u32,
    live_bytes: u64,
}

impl PayloadPool {
    /// An empty pool that reserves bookkeeping for `expected_units` buffers up front.
    pub(crate) fn new(expected_units: usize) -> Self {
        let reserve = expected_units.min(1 << 16);
        PayloadPool {
            bufs: Vec::with_capacity(reserve),
            class_of: Vec::with_capacity(reserve),
            next_free: Vec::with_capacity(reserve),
            free_head: [None; CLASSES],
            live_units: 0,
            live_bytes: 0,
        }
    }

    /// Size class that holds `len` bytes.
    fn class_for(len: usize) -> u32 {
        let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
        bits.clamp(MIN_CLASS, MAX_CLASS)
    }

    /// Units currently held.
    pub(crate) fn live_units(&self) -> u32 {
        self.live_units
    }

    /// Payload bytes currently held.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Copies `payload` into a pooled buffer. The caller has checked
    /// `payload.len() <= 2^MAX_CLASS`; a longer payload is truncated to that size rather than
    /// panicking.
    pub(crate) fn store(&mut self, payload: &[u8]) -> BufId {
        let class = Self::class_for(payload.len());
        let slot = (class - MIN_CLASS) as usize;
        let head = self.free_head.get(slot).copied().flatten();
        let id = match head {
            Some(id) => {
                let next = self.next_free.get_mut(id as usize).and_then(Option::take);
                if let Some(h) = self.free_head.get_mut(slot) {
                    *h = next;
                }
                id
            }
            None => {
                let id = self.bufs.len() as u32;
                self.bufs.push(Vec::with_capacity(1usize << class));
                self.class_of.push(class as u8);
                self.next_free.push(None);
                id
            }
        };
        let take = payload.len().min(1usize << MAX_CLASS);
        if let Some(buf) = self.bufs.get_mut(id as usize) {
            buf.clear();
            buf.extend_from_slice(&payload[..take]);
        }
        self.live_units = self.live_units.saturating_add(1);
        self.live_bytes = self.live_bytes.saturating_add(take as u64);
        BufId(id)
    }

    /// The bytes of a stored payload (empty for an unknown id).
    pub(crate) fn get(&self, id: BufId) -> &[u8] {
        self.bufs.get(id.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// Returns a buffer to its size class.
    pub(crate) fn release(&mut self, id: BufId) {
        let (Some(buf), Some(&class)) = (
            self.bufs.get_mut(id.0 as usize),
            self.class_of.get(id.0 as usize),
        ) else {
            return;
        };
        self.live_bytes = self.live_bytes.saturating_sub(buf.len() as u64);
        self.live_units = self.live_units.saturating_sub(1);
        buf.clear();
        let slot = (u32::from(class) - MIN_CLASS) as usize;
        if let (Some(head), Some(next)) = (
            self.free_head.get_mut(slot),
            self.next_free.get_mut(id.0 as usize),
        ) {
            *next = head.replace(id.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_to_powers_of_two() {
        assert_eq!(PayloadPool::class_for(0), MIN_CLASS);
        assert_eq!(PayloadPool::class_for(64), 6);
        assert_eq!(PayloadPool::class_for(65), 7);
        assert_eq!(PayloadPool::class_for(4096), 12);
        assert_eq!(PayloadPool::class_for(usize::MAX), MAX_CLASS);
    }

    #[test]
    fn released_buffers_are_reused_and_accounting_balances() {
        let mut pool = PayloadPool::new(4);
        let a = pool.store(&[1, 2, 3]);
        let b = pool.store(&[9; 100]);
        assert_eq!(pool.get(a), &[1, 2, 3]);
        assert_eq!(pool.live_units(), 2);
        assert_eq!(pool.live_bytes(), 103);
        pool.release(a);
        let c = pool.store(&[7]);
        assert_eq!(c, a, "same size class reuses the freed buffer");
        assert_eq!(pool.get(c), &[7]);
        pool.release(b);
        pool.release(c);
        assert_eq!((pool.live_units(), pool.live_bytes()), (0, 0));
        // Free lists are LIFO per class and survive several round trips.
        let d = pool.store(&[1; 10]);
        let e = pool.store(&[2; 10]);
        assert_eq!((d, pool.get(e)), (c, &[2u8; 10][..]));
        assert_ne!(d, e);
    }
}
