//! Which sessions' synthetic feeds are due: a min-heap of (next-due time, session), so each
//! loop iteration touches only the feeds whose next unit (or turn, or join grace) has come,
//! not every open session.
//!
//! Rescheduling does not search the heap: every entry carries a token, the caller keeps the
//! token of a key's live entry, and entries whose token is no longer the live one (the key
//! was rescheduled or removed) are skipped when they come due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Token of one scheduled entry.
pub type Token = u64;

/// Keys due at times (µs of the session clock), earliest first.
#[derive(Debug)]
pub struct DueQueue<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(u64, Token, K)>>,
    next_token: Token,
}

impl<K: Ord + Copy> Default for DueQueue<K> {
    fn default() -> Self {
        DueQueue {
            heap: BinaryHeap::new(),
            next_token: 0,
        }
    }
}

impl<K: Ord + Copy> DueQueue<K> {
    /// Schedules `key` at `at_us`; returns the entry's token (keep it as the live one).
    pub fn schedule(&mut self, at_us: u64, key: K) -> Token {
        self.next_token += 1;
        self.heap.push(Reverse((at_us, self.next_token, key)));
        self.next_token
    }

    /// Moves every entry due by `now_us` into `out` (as `(key, token)`, earliest first),
    /// live or not: the caller drops those whose token is not the key's live one.
    pub fn take_due(&mut self, now_us: u64, out: &mut Vec<(K, Token)>) {
        while let Some(Reverse((at, token, key))) = self.heap.peek().copied() {
            if at > now_us {
                break;
            }
            self.heap.pop();
            out.push((key, token));
        }
    }

    /// Time of the earliest entry (possibly a dead one: an early wake at worst).
    pub fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Entries held, dead ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_due_entries_come_out_earliest_first() {
        let mut q = DueQueue::default();
        let c = q.schedule(300, 'c');
        let a = q.schedule(100, 'a');
        let b = q.schedule(200, 'b');
        assert_eq!(q.next_at(), Some(100));
        let mut out = Vec::new();
        q.take_due(50, &mut out);
        assert!(out.is_empty());
        q.take_due(200, &mut out);
        assert_eq!(out, vec![('a', a), ('b', b)]);
        assert_eq!(q.next_at(), Some(300));
        out.clear();
        q.take_due(u64::MAX, &mut out);
        assert_eq!(out, vec![('c', c)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_rescheduled_key_leaves_a_dead_entry_the_caller_can_tell() {
        let mut q = DueQueue::default();
        let old = q.schedule(100, 7u32);
        let live = q.schedule(500, 7u32);
        assert_ne!(old, live);
        let mut out = Vec::new();
        q.take_due(100, &mut out);
        assert_eq!(
            out,
            vec![(7, old)],
            "the dead entry, told apart by its token"
        );
        assert_eq!(q.len(), 1);
        out.clear();
        q.take_due(500, &mut out);
        assert_eq!(out, vec![(7, live)]);
    }

    #[test]
    fn work_per_take_is_the_due_entries_not_the_idle_ones() {
        let mut q = DueQueue::default();
        // 10 000 idle keys far in the future, one busy key due every 10 µs.
        for k in 0..10_000u32 {
            q.schedule(1_000_000_000, k);
        }
        let mut out = Vec::new();
        let mut t = q.schedule(10, u32::MAX);
        for step in 1..=100u64 {
            out.clear();
            q.take_due(step * 10, &mut out);
            assert_eq!(out, vec![(u32::MAX, t)], "step {step}");
            t = q.schedule((step + 1) * 10, u32::MAX);
        }
        assert_eq!(q.len(), 10_001);
    }
}
