//! Messages by sequence number: side by side in one vector, found through a map from
//! sequence number to place in it. A queue's messages are kept so, and so are those a
//! start reads from the message index or the log before they go to their queues.
//!
//! A map holding the messages themselves (about 100 bytes each) made a queue of a
//! million a table of 2^21 buckets, 220 MB; growing to it held the old table and the new
//! at once, which was a backlog's memory high-water mark (385–470 MiB against 285
//! steady). Here the map holds only places (16 bytes a bucket); the vector grows in place
//! (large allocations are their own mappings, which `realloc` moves without copying) and
//! holds no empty buckets.
//!
//! Nor does the map grow in one step: a hash table that grows moves every entry into a
//! table twice its size at once, and a queue's table grows inside a send's commit hook,
//! on the writer thread and under the queue's lock, so every send waited for the move:
//! the slowest insert into a table of 1.1 million was 18 ms (at 917,504, a 2^20-bucket
//! table growing), and sqs-send at 40,000 a second stalled for 5-8 ms as its queue
//! passed 229,376. [`Places`] moves [`MOVED_PER_INSERT`] entries per insert instead: the
//! slowest insert was 1.3 ms at 256 per insert (the new table's allocation and first
//! moves). Moving entry by entry costs more in all (about 55 ms spread over the inserts,
//! against 19 ms at once), which is the price of no single insert holding the queue long.

use crate::queue_state::{MsgMeta, SeqMap};

/// A row of a [`MessageTable`]: a message that knows its sequence number.
pub trait Row {
    fn seq(&self) -> i64;
}

impl Row for MsgMeta {
    fn seq(&self) -> i64 {
        self.seq
    }
}

/// A message kept beside its sequence number.
impl<T> Row for (i64, T) {
    fn seq(&self) -> i64 {
        self.0
    }
}

#[derive(Debug)]
pub struct MessageTable<R = MsgMeta> {
    rows: Vec<R>,
    places: Places,
}

impl<R> Default for MessageTable<R> {
    fn default() -> Self {
        MessageTable { rows: Vec::new(), places: Places::default() }
    }
}

/// Each insert of a new row moves this many rows' places out of the table being retired.
/// Any number from 1 up ends the move before the new table (twice the buckets) is full;
/// a small one spreads it thin. Each move is a cache miss in both tables (~40 ns), and
/// sends come in groups on the writer's thread: at 256 a group of fifteen sends moved
/// 3,840 places, and at 45,000 sends/s paced the writer spent 10 ms of a 46 ms stall
/// here after the growth at 229,376 (perf). At 16 a send pays well under a microsecond,
/// and the move from the growth at 917,504 still ends by 975,000 messages, so a
/// million-message queue holds one table, not two.
const MOVED_PER_INSERT: usize = 16;

/// Sequence number → place in `rows`, in a hash table that grows without moving all its
/// entries at once: when `current` is full, it becomes `retiring`, and a new `current`
/// twice its size takes every new entry and, with each insert, some of the old ones.
#[derive(Debug, Default)]
struct Places {
    current: SeqMap<u32>,
    /// The table before the last growth, emptied into `current` in `rows` order: the
    /// rows before `moved` have their places in `current`.
    retiring: SeqMap<u32>,
    moved: usize,
}

impl Places {
    fn get(&self, seq: i64) -> Option<u32> {
        self.current.get(&seq).or_else(|| self.retiring.get(&seq)).copied()
    }

    fn set(&mut self, seq: i64, place: u32) {
        self.retiring.remove(&seq);
        self.current.insert(seq, place);
    }

    fn remove(&mut self, seq: i64) -> Option<u32> {
        self.current.remove(&seq).or_else(|| self.retiring.remove(&seq))
    }

    /// Before a new entry: a full table retires, and some of the retiring table's
    /// entries (those of the rows at `moved`) move over.
    fn make_room<R: Row>(&mut self, rows: &[R]) {
        if self.current.len() == self.current.capacity() {
            // Not reached while the move goes on (see MOVED_PER_INSERT); a table filled
            // some other way finishes it first.
            self.move_from_retiring(rows, usize::MAX);
            // One more than fits: twice the buckets. (Twice the entries would round up
            // to four times the buckets, 71 MB rather than 36 for a million messages.)
            let grown = SeqMap::with_capacity_and_hasher(self.current.capacity() + 1, Default::default());
            self.retiring = std::mem::replace(&mut self.current, grown);
            self.moved = 0;
        }
        self.move_from_retiring(rows, MOVED_PER_INSERT);
    }

    fn move_from_retiring<R: Row>(&mut self, rows: &[R], most: usize) {
        if self.retiring.capacity() == 0 {
            return;
        }
        for row in rows.iter().skip(self.moved).take(most) {
            if let Some(place) = self.retiring.remove(&row.seq()) {
                self.current.insert(row.seq(), place);
            }
            self.moved += 1;
        }
        if self.retiring.is_empty() || self.moved >= rows.len() {
            // Every row's place is in `current` (a removed row's last-row move puts the
            // moved place there too), so nothing is left but the memory, which an empty
            // table keeps until it is dropped.
            debug_assert!(self.retiring.is_empty(), "places left behind in a retired table");
            self.retiring = SeqMap::default();
        }
    }

    fn reserve<R: Row>(&mut self, rows: &[R], n: usize) {
        self.move_from_retiring(rows, usize::MAX);
        self.current.reserve(n);
    }

    fn rebuild<R: Row>(&mut self, rows: &[R]) {
        self.retiring = SeqMap::default();
        self.current.clear();
        self.current.shrink_to(rows.len());
        for (place, row) in rows.iter().enumerate() {
            self.current.insert(row.seq(), place as u32);
        }
    }
}

impl<R: Row> MessageTable<R> {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Room for `n` more messages.
    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
        self.places.reserve(&self.rows, n);
    }

    pub fn iter(&self) -> std::slice::Iter<'_, R> {
        self.rows.iter()
    }

    pub fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.rows.iter().map(Row::seq)
    }

    pub fn contains(&self, seq: i64) -> bool {
        self.places.get(seq).is_some()
    }

    pub fn get(&self, seq: i64) -> Option<&R> {
        self.places.get(seq).map(|place| &self.rows[place as usize])
    }

    pub fn get_mut(&mut self, seq: i64) -> Option<&mut R> {
        self.places.get(seq).map(|place| &mut self.rows[place as usize])
    }

    /// Adds `row`, or replaces the row of its sequence number.
    pub fn insert(&mut self, row: R) {
        if let Some(place) = self.places.get(row.seq()) {
            self.rows[place as usize] = row;
            return;
        }
        self.places.make_room(&self.rows);
        let place = u32::try_from(self.rows.len()).expect("fewer than 2^32 messages in a table");
        self.places.set(row.seq(), place);
        self.rows.push(row);
    }

    /// Removes the row of `seq`; the last row takes its place.
    pub fn remove(&mut self, seq: i64) -> Option<R> {
        let place = self.places.remove(seq)?;
        let row = self.rows.swap_remove(place as usize);
        if let Some(moved) = self.rows.get(place as usize) {
            self.places.set(moved.seq(), place);
        }
        Some(row)
    }

    /// Keeps the rows `keep` accepts. Renumbers every place: for purges and a
    /// compaction's draft, not per message.
    pub fn retain(&mut self, keep: impl FnMut(&R) -> bool) {
        self.rows.retain(keep);
        self.places.rebuild(&self.rows);
    }
}

impl<R> MessageTable<R> {
    /// The rows, last first, giving their memory back as they go (the vector shrinks
    /// each time it is half empty), without their places (freed first): a start moves a
    /// million rows into the queues' tables, and holding all of them until the last
    /// was moved set its high-water mark.
    pub fn into_rows_freed_as_taken(self) -> RowsFreedAsTaken<R> {
        drop(self.places);
        RowsFreedAsTaken(self.rows)
    }
}

/// See [`MessageTable::into_rows_freed_as_taken`].
pub struct RowsFreedAsTaken<R>(Vec<R>);

impl<R> Iterator for RowsFreedAsTaken<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        // Below this, shrinking frees too little to be worth a reallocation.
        const LEAST_SHRUNK: usize = 4096;
        let row = self.0.pop()?;
        if self.0.capacity() > LEAST_SHRUNK && self.0.len() < self.0.capacity() / 2 {
            self.0.shrink_to_fit();
        }
        Some(row)
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
        let mut table = MessageTable::<MsgMeta>::default();
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
        // A purge's renumbering: every row kept is still found at its sequence number.
        table.retain(|m| m.seq % 3 != 0);
        plain.retain(|seq, _| seq % 3 != 0);
        assert_eq!(table.len(), plain.len());
        for seq in 0..2_000 {
            assert_eq!(table.get(seq).map(|m| m.seq), plain.contains_key(&seq).then_some(seq), "seq {seq}");
            assert_eq!(table.contains(seq), plain.contains_key(&seq));
        }
    }

    /// Growth moves places over many inserts, not all at once: right after the table
    /// grows, most of the old places are still in the retiring table, and every message
    /// is found, replaced and removed all the same, whichever table holds its place.
    #[test]
    fn a_growing_table_moves_its_places_over_many_inserts() {
        let mut table = MessageTable::<(i64, u32)>::default();
        let mut seq = 0;
        // Fill until an insert past the ten thousandth makes the table grow.
        loop {
            let capacity = table.places.current.capacity();
            seq += 1;
            table.insert((seq * 7, 0));
            if seq > 10_000 && table.places.current.capacity() != capacity {
                break;
            }
        }
        let grown_at = seq;
        assert!(table.places.retiring.len() + 1 >= grown_at as usize - MOVED_PER_INSERT - 1);
        // Found wherever the place is; replaced and removed from either table.
        for s in 1..=grown_at {
            assert_eq!(table.get(s * 7).map(|r| r.0), Some(s * 7), "seq {}", s * 7);
        }
        table.insert((7, 1));
        assert_eq!(table.get(7), Some(&(7, 1)));
        assert_eq!(table.remove(14), Some((14, 0)));
        assert_eq!(table.remove(grown_at * 7 - 7), Some((grown_at * 7 - 7, 0)));
        assert!(!table.contains(14));
        // The move ends within a few thousand inserts.
        for _ in 0..grown_at {
            seq += 1;
            table.insert((seq * 7, 0));
        }
        // Moved, and its memory given back.
        assert_eq!(table.places.retiring.capacity(), 0);
        assert_eq!(table.len(), seq as usize - 2);
        for s in (1..=seq).filter(|&s| s != 2 && s != grown_at - 1) {
            assert_eq!(table.get(s * 7).map(|r| r.0), Some(s * 7), "seq {}", s * 7);
        }
    }

    #[test]
    fn rows_kept_beside_their_numbers_are_found_by_them_and_given_back_whole() {
        let mut table = MessageTable::<(i64, &str)>::default();
        for (seq, text) in [(40, "a"), (7, "b"), (12, "c")] {
            table.insert((seq, text));
        }
        table.insert((7, "B"));
        assert_eq!(table.remove(40), Some((40, "a")));
        assert_eq!(table.get(12), Some(&(12, "c")));
        let mut rows: Vec<(i64, &str)> = table.into_rows_freed_as_taken().collect();
        rows.sort_unstable();
        assert_eq!(rows, [(7, "B"), (12, "c")]);
        let mut many = MessageTable::<(i64, u8)>::default();
        for seq in 0..10_000 {
            many.insert((seq, (seq % 256) as u8));
        }
        let taken: Vec<(i64, u8)> = many.into_rows_freed_as_taken().collect();
        assert_eq!(taken, (0..10_000).rev().map(|seq| (seq, (seq % 256) as u8)).collect::<Vec<_>>());
    }
}
