//! Single-producer / single-consumer descriptor rings with the AF_XDP
//! memory layout: a `producer` and a `consumer` index (free-running `u32`),
//! a `flags` word and a power-of-two array of descriptors.
//!
//! The same code drives the rings the kernel maps into our address space
//! and [`MemRingPair`], a heap-backed pair used to test the ring logic
//! without a kernel.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One RX or TX descriptor (`struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// Offset of the frame data inside the UMEM.
    pub addr: u64,
    /// Length of the frame in bytes.
    pub len: u32,
    /// `XDP_PKT_CONTD` and friends; always 0 here (no multi-buffer).
    pub options: u32,
}

/// Raw pointers into one ring's shared memory.
#[derive(Debug)]
pub(crate) struct RingPtrs<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    size: u32,
}

impl<T> RingPtrs<T> {
    /// # Safety
    /// All pointers must be valid, suitably aligned, and stay valid for as
    /// long as any ring built from them lives; `descs` must point to `size`
    /// elements; `size` must be a power of two. The memory behind
    /// `producer` / `consumer` / `flags` may only be accessed atomically by
    /// any other party (the kernel does so).
    pub(crate) unsafe fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        flags: NonNull<AtomicU32>,
        descs: NonNull<T>,
        size: u32,
    ) -> Self {
        debug_assert!(size.is_power_of_two());
        Self {
            producer,
            consumer,
            flags,
            descs,
            size,
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: valid and aligned for the ring's lifetime (contract of `new`).
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: valid and aligned for the ring's lifetime (contract of `new`).
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: valid and aligned for the ring's lifetime (contract of `new`).
        unsafe { self.flags.as_ref() }
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & (size - 1) < size`, so the offset stays inside the
        // descriptor array of `size` elements (contract of `new`).
        unsafe { self.descs.as_ptr().add((idx & (self.size - 1)) as usize) }
    }
}

/// The producer half of a ring (fill and TX rings on our side).
#[derive(Debug)]
pub struct Producer<T> {
    ring: RingPtrs<T>,
    cached_prod: u32,
    /// Cached `consumer + size`: the producer index limit.
    cached_limit: u32,
}

// SAFETY: the ring is single-producer; the `Producer` is the only writer of
// the producer index and of the slots it owns, so moving it to another thread
// is sound (the raw pointers are only dereferenced through `&mut self`).
unsafe impl<T: Send> Send for Producer<T> {}

impl<T: Copy> Producer<T> {
    pub(crate) fn new(ring: RingPtrs<T>) -> Self {
        let cached_prod = ring.producer().load(Ordering::Relaxed);
        let cached_limit = ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(ring.size);
        Self {
            ring,
            cached_prod,
            cached_limit,
        }
    }

    /// Ring capacity.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Number of free slots, refreshing the consumer index only when the
    /// cached view cannot satisfy `want`.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_limit.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_limit = self
            .ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.ring.size);
        self.cached_limit.wrapping_sub(self.cached_prod)
    }

    /// Writes up to `items.len()` entries and publishes them; returns how
    /// many were written (fewer when the ring is full).
    pub fn push_slice(&mut self, items: &[T]) -> usize {
        let n = self.free(items.len() as u32).min(items.len() as u32);
        for (i, item) in items.iter().take(n as usize).enumerate() {
            self.write(i as u32, *item);
        }
        self.submit(n);
        n as usize
    }

    /// Writes entry `i` of the batch being prepared (0-based from the next
    /// free slot). The caller must have seen `free() > i`.
    pub fn write(&mut self, i: u32, item: T) {
        debug_assert!(i < self.cached_limit.wrapping_sub(self.cached_prod));
        let slot = self.ring.slot(self.cached_prod.wrapping_add(i));
        // SAFETY: the slot is inside the descriptor array and owned by the
        // producer (it is between the producer index and consumer + size),
        // so no other party reads or writes it concurrently.
        unsafe { slot.write(item) };
    }

    /// Publishes `n` written entries to the consumer.
    pub fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.ring
            .producer()
            .store(self.cached_prod, Ordering::Release);
    }

    /// Entries published but not yet consumed by the other side.
    pub fn outstanding(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.ring.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.ring.flags().load(Ordering::Acquire) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The consumer half of a ring (RX and completion rings on our side).
#[derive(Debug)]
pub struct Consumer<T> {
    ring: RingPtrs<T>,
    cached_prod: u32,
    cached_cons: u32,
}

// SAFETY: single consumer; see the `Producer` impl.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T: Copy> Consumer<T> {
    pub(crate) fn new(ring: RingPtrs<T>) -> Self {
        let cached_cons = ring.consumer().load(Ordering::Relaxed);
        let cached_prod = ring.producer().load(Ordering::Acquire);
        Self {
            ring,
            cached_prod,
            cached_cons,
        }
    }

    /// Ring capacity.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Number of entries ready to read, at most `want`.
    pub fn available(&mut self, want: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n < want {
            self.cached_prod = self.ring.producer().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(want)
    }

    /// Reads entry `i` of the available batch. The caller must have seen
    /// `available() > i`.
    pub fn read(&self, i: u32) -> T {
        debug_assert!(i < self.cached_prod.wrapping_sub(self.cached_cons));
        let slot = self.ring.slot(self.cached_cons.wrapping_add(i));
        // SAFETY: the slot is between the consumer and producer indices, so
        // the producer published it (Acquire load above) and will not touch
        // it until we release it.
        unsafe { slot.read() }
    }

    /// Returns `n` read entries to the producer.
    pub fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.ring
            .consumer()
            .store(self.cached_cons, Ordering::Release);
    }

    /// Reads up to `out.len()` entries into `out` and releases them.
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize {
        let n = self.available(out.len() as u32);
        for (i, o) in out.iter_mut().take(n as usize).enumerate() {
            *o = self.read(i as u32);
        }
        self.release(n);
        n as usize
    }
}

/// A heap-backed producer/consumer pair with the kernel's ring layout, for
/// testing ring logic without a kernel (and for in-process loopback).
#[derive(Debug)]
pub struct MemRingPair<T> {
    producer: Producer<T>,
    consumer: Consumer<T>,
    // Backing memory; the rings above point into it, so it is declared
    // after them and dropped last.
    _indices: Box<[AtomicU32; 3]>,
    _descs: Box<[UnsafeCell<T>]>,
    _marker: PhantomData<T>,
}

impl<T: Copy + Default> MemRingPair<T> {
    /// A ring with `size` slots (a power of two, at least 1), optionally
    /// starting at a free-running index close to `u32::MAX` to exercise
    /// wrap-around.
    pub fn new(size: u32, start_index: u32) -> Self {
        assert!(size.is_power_of_two(), "ring size must be a power of two");
        let indices = Box::new([
            AtomicU32::new(start_index),
            AtomicU32::new(start_index),
            AtomicU32::new(0),
        ]);
        let descs: Box<[UnsafeCell<T>]> =
            (0..size).map(|_| UnsafeCell::new(T::default())).collect();
        let base = NonNull::from(&*indices).cast::<AtomicU32>();
        // `UnsafeCell<T>` has the same layout as `T`.
        let descs_ptr = NonNull::new(descs.as_ptr().cast_mut())
            .expect("non-null")
            .cast::<T>();
        let make = || {
            // SAFETY: the indices are three aligned `AtomicU32`s and the
            // descriptors `size` elements, all heap-owned by the pair and
            // freed only after both rings are dropped (field order). The
            // pair hands out the halves only through `&mut self`.
            unsafe { RingPtrs::new(base, base.add(1), base.add(2), descs_ptr, size) }
        };
        let producer = Producer::new(make());
        let consumer = Consumer::new(make());
        Self {
            producer,
            consumer,
            _indices: indices,
            _descs: descs,
            _marker: PhantomData,
        }
    }

    /// The producer half.
    pub fn producer(&mut self) -> &mut Producer<T> {
        &mut self.producer
    }

    /// The consumer half.
    pub fn consumer(&mut self) -> &mut Consumer<T> {
        &mut self.consumer
    }

    /// Both halves at once.
    pub fn split(&mut self) -> (&mut Producer<T>, &mut Consumer<T>) {
        (&mut self.producer, &mut self.consumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u64>),
        Pop(usize),
        PeekRelease { peek: u32, release: u32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec(any::<u64>(), 0..40).prop_map(Op::Push),
            (0usize..40).prop_map(Op::Pop),
            (0u32..40, 0u32..40).prop_map(|(peek, release)| Op::PeekRelease { peek, release }),
        ]
    }

    proptest! {
        /// The ring behaves like a bounded FIFO: never loses, duplicates or
        /// reorders entries, never exceeds its capacity, across index
        /// wrap-around.
        #[test]
        fn ring_matches_fifo_oracle(
            log_size in 0u32..6,
            start in prop_oneof![Just(0u32), Just(u32::MAX - 7), any::<u32>()],
            ops in prop::collection::vec(op(), 1..200),
        ) {
            let size = 1u32 << log_size;
            let mut ring = MemRingPair::<u64>::new(size, start);
            let mut oracle: VecDeque<u64> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(items) => {
                        let room = size as usize - oracle.len();
                        let n = ring.producer().push_slice(&items);
                        prop_assert_eq!(n, items.len().min(room));
                        oracle.extend(items.iter().take(n));
                    }
                    Op::Pop(want) => {
                        let mut out = vec![0u64; want];
                        let n = ring.consumer().pop_slice(&mut out);
                        prop_assert_eq!(n, want.min(oracle.len()));
                        for got in &out[..n] {
                            prop_assert_eq!(Some(*got), oracle.pop_front());
                        }
                    }
                    Op::PeekRelease { peek, release } => {
                        let c = ring.consumer();
                        let n = c.available(peek);
                        prop_assert_eq!(n as usize, (peek as usize).min(oracle.len()));
                        for i in 0..n {
                            prop_assert_eq!(c.read(i), oracle[i as usize]);
                        }
                        let r = release.min(n);
                        c.release(r);
                        oracle.drain(..r as usize);
                    }
                }
                let (p, _) = ring.split();
                prop_assert_eq!(p.outstanding() as usize, oracle.len());
                prop_assert_eq!(p.free(u32::MAX) as usize, size as usize - oracle.len());
            }
        }
    }

    #[test]
    fn descriptors_round_trip_and_flags_default_clear() {
        let mut ring = MemRingPair::<XdpDesc>::new(4, 0);
        let d = XdpDesc {
            addr: 4096,
            len: 60,
            options: 0,
        };
        assert_eq!(ring.producer().push_slice(&[d, d, d, d, d]), 4);
        assert!(!ring.producer().needs_wakeup());
        let mut out = [XdpDesc::default(); 8];
        assert_eq!(ring.consumer().pop_slice(&mut out), 4);
        assert_eq!(out[3], d);
        assert_eq!(ring.consumer().pop_slice(&mut out), 0);
    }
}
