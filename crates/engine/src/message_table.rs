//! A queue's messages by sequence number: side by side in one vector, found through a
//! map from sequence number to place in it.
//!
//! A map holding the messages themselves (about 100 bytes each) made a queue of a
//! million a table of 2^21 buckets, 220 MB; growing to it held the old table and the new
//! at once, which was a backlog's memory high-water mark (385–470 MiB against 285
//! steady). Here the map holds only places (16 bytes a bucket); the vector grows in place
//! (large allocations are their own mappings, which `realloc` moves without copying) and
//! holds no empty buckets.

use crate::queue_state::{MsgMeta, SeqMap};
use std::collections::hash_map::Entry;

#[derive(Debug, Default)]
pub struct MessageTable {
    rows: Vec<MsgMeta>,
    places: SeqMap<u32>,
}

impl MessageTable {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Room for `n` more messages.
    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
        self.places.reserve(n);
    }

    /// Every message, in no particular order.
    pub fn iter(&self) -> std::slice::Iter<'_, MsgMeta> {
        self.rows.iter()
    }

    pub fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.rows.iter().map(|m| m.seq)
    }

    pub fn get(&self, seq: i64) -> Option<&MsgMeta> {
        self.places.get(&seq).map(|&place| &self.rows[place as usize])
    }

    /// The message to change in place; its `seq`, which files it, must stay as it is.
    pub fn get_mut(&mut self, seq: i64) -> Option<&mut MsgMeta> {
        self.places.get(&seq).map(|&place| &mut self.rows[place as usize])
    }

    /// Adds `meta`, replacing a message of the same sequence number.
    pub fn insert(&mut self, meta: MsgMeta) {
        match self.places.entry(meta.seq) {
            Entry::Occupied(place) => self.rows[*place.get() as usize] = meta,
            Entry::Vacant(place) => {
                // A queue of 2^32 messages would need hundreds of gigabytes of memory first.
                place.insert(u32::try_from(self.rows.len()).expect("fewer than 2^32 messages in a queue"));
                self.rows.push(meta);
            }
        }
    }

    /// Takes message `seq` out; the last message moves into its place.
    pub fn remove(&mut self, seq: i64) -> Option<MsgMeta> {
        let place = self.places.remove(&seq)?;
        let meta = self.rows.swap_remove(place as usize);
        if let Some(moved) = self.rows.get(place as usize) {
            self.places.insert(moved.seq, place);
        }
        Some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue_state::MsgState;

    fn meta(seq: i64, receive_count: u32) -> MsgMeta {
        MsgMeta {
            seq,
            sent_ms: 0,
            visible_at_ms: 0,
            receive_count,
            first_receive_ms: 0,
            receipt_token: 0,
            group: None,
            state: MsgState::Visible,
            dlq_source: None,
            at: crate::message_log::Location { segment: 0, offset: 0, length: 0 },
        }
    }

    /// Inserts, replacements and removals in a mixed order leave exactly the messages a
    /// plain map would hold, each found by its own number.
    #[test]
    fn holds_what_a_map_would_after_inserts_replacements_and_removals() {
        let mut table = MessageTable::default();
        let mut plain = std::collections::BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = (x % 2_000) as i64;
            if x.is_multiple_of(3) {
                assert_eq!(table.remove(seq).map(|m| m.receive_count), plain.remove(&seq), "step {step}");
            } else {
                table.insert(meta(seq, step));
                plain.insert(seq, step);
            }
        }
        assert_eq!(table.len(), plain.len());
        for (seq, count) in &plain {
            assert_eq!(table.get(*seq).map(|m| (m.seq, m.receive_count)), Some((*seq, *count)));
        }
        let mut seqs: Vec<i64> = table.seqs().collect();
        seqs.sort_unstable();
        assert_eq!(seqs, plain.keys().copied().collect::<Vec<_>>());
        assert!(table.get(2_000).is_none());
        table.get_mut(*plain.keys().next().unwrap()).unwrap().receive_count = 7;
        assert_eq!(table.iter().filter(|m| m.receive_count == 7).count(), 1);
    }
}
