//! The addresses a peer advertised with ADD_ADDRESS / REMOVE_ADDRESS (MP-DCCP MP_ADDADDR /
//! MP_REMOVEADDR): the newest update per address id wins, an update whose seq is not above
//! the newest applied for its id is stale and ignored.

use std::net::SocketAddr;

use camp_wire::{AddAddress, RemoveAddress};

/// What applying one update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrUpdate {
    /// The id now maps to this address (new, changed, or re-added after a removal).
    Added(u8, SocketAddr),
    /// The id's address was withdrawn.
    Removed(u8),
    /// Newer than what was known but changing nothing visible (the same address again, or
    /// the removal of an id never added).
    Unchanged,
    /// The seq was not above the newest applied for the id: ignored.
    Stale,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Newest seq applied for the id; `None` until the first update.
    seq: Option<u32>,
    addr: Option<SocketAddr>,
}

/// Advertised addresses by id (one fixed slot per possible id: no growth on input).
#[derive(Clone, Debug)]
pub struct AddressBook {
    entries: Box<[Entry; 256]>,
}

impl Default for AddressBook {
    fn default() -> Self {
        Self {
            entries: Box::new([Entry::default(); 256]),
        }
    }
}

impl AddressBook {
    fn fresh(&mut self, id: u8, seq: u32) -> Option<&mut Entry> {
        let e = &mut self.entries[usize::from(id)];
        if e.seq.is_some_and(|newest| seq <= newest) {
            return None;
        }
        e.seq = Some(seq);
        Some(e)
    }

    /// Applies an ADD_ADDRESS.
    pub fn add(&mut self, f: &AddAddress) -> AddrUpdate {
        let Some(e) = self.fresh(f.address_id, f.seq) else {
            return AddrUpdate::Stale;
        };
        if e.addr == Some(f.addr) {
            return AddrUpdate::Unchanged;
        }
        e.addr = Some(f.addr);
        AddrUpdate::Added(f.address_id, f.addr)
    }

    /// Applies a REMOVE_ADDRESS.
    pub fn remove(&mut self, f: &RemoveAddress) -> AddrUpdate {
        let Some(e) = self.fresh(f.address_id, f.seq) else {
            return AddrUpdate::Stale;
        };
        match e.addr.take() {
            Some(_) => AddrUpdate::Removed(f.address_id),
            None => AddrUpdate::Unchanged,
        }
    }

    /// The address advertised under `id` now, if any.
    pub fn get(&self, id: u8) -> Option<SocketAddr> {
        self.entries[usize::from(id)].addr
    }

    /// The currently advertised addresses, by increasing id.
    pub fn addresses(&self) -> Vec<(u8, SocketAddr)> {
        (0..=u8::MAX)
            .zip(self.entries.iter())
            .filter_map(|(id, e)| e.addr.map(|a| (id, a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(id: u8, seq: u32, port: u16) -> AddAddress {
        AddAddress {
            address_id: id,
            seq,
            addr: SocketAddr::from(([198, 18, 0, 1], port)),
        }
    }

    #[test]
    fn newest_seq_per_id_wins_and_stale_updates_are_ignored() {
        let mut b = AddressBook::default();
        assert_eq!(
            b.add(&add(0, 1, 10)),
            AddrUpdate::Added(0, add(0, 1, 10).addr)
        );
        assert_eq!(
            b.add(&add(3, 1, 30)),
            AddrUpdate::Added(3, add(3, 1, 30).addr)
        );
        // Same seq again, lower seq: stale.
        assert_eq!(b.add(&add(0, 1, 11)), AddrUpdate::Stale);
        assert_eq!(b.add(&add(0, 0, 11)), AddrUpdate::Stale);
        // Seqs are per id: id 3 at seq 1 does not hold back id 0.
        assert_eq!(
            b.add(&add(0, 2, 12)),
            AddrUpdate::Added(0, add(0, 2, 12).addr)
        );
        assert_eq!(
            b.remove(&RemoveAddress {
                address_id: 3,
                seq: 2
            }),
            AddrUpdate::Removed(3)
        );
        // The overtaken ADD of id 3 must not resurrect it.
        assert_eq!(b.add(&add(3, 1, 30)), AddrUpdate::Stale);
        assert_eq!(b.addresses(), vec![(0, add(0, 2, 12).addr)]);
        // Re-added with a higher seq.
        assert_eq!(
            b.add(&add(3, 3, 31)),
            AddrUpdate::Added(3, add(3, 3, 31).addr)
        );
        assert_eq!(b.addresses().len(), 2);
    }

    #[test]
    fn repeats_and_removals_of_unknown_ids_change_nothing() {
        let mut b = AddressBook::default();
        let unknown = RemoveAddress {
            address_id: 9,
            seq: 4,
        };
        assert_eq!(b.remove(&unknown), AddrUpdate::Unchanged);
        // The removal still advanced id 9's seq.
        assert_eq!(b.add(&add(9, 4, 1)), AddrUpdate::Stale);
        assert_eq!(
            b.add(&add(9, 5, 1)),
            AddrUpdate::Added(9, add(9, 5, 1).addr)
        );
        assert_eq!(b.add(&add(9, 6, 1)), AddrUpdate::Unchanged);
        assert_eq!(b.addresses(), vec![(9, add(9, 6, 1).addr)]);
        // The highest id and seq are usable.
        assert_eq!(
            b.add(&add(255, u32::MAX, 2)),
            AddrUpdate::Added(255, add(255, 0, 2).addr)
        );
        assert_eq!(b.add(&add(255, u32::MAX, 3)), AddrUpdate::Stale);
    }
}
