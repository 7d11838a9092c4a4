//! A tenant's flows by id ignoring ASCII case: sorted runs ("chunks") of at most [`CHUNK`]
//! flows, each a vector of its own, in order, with each run's first id beside it. A lookup is a
//! binary search over the runs' first ids (one small array) and one inside a run; a walk in id
//! order reads runs of consecutive memory. A B-tree's nodes hold 11 flows each, scattered over
//! the heap and half empty when filled in order, so a walk by id cost 6× one in creation order
//! and each flow about 75 bytes; here a run is read with one jump, and flows created in id
//! order fill their runs.

use std::cmp::Ordering;
use std::ops::Bound;

use super::flow::{UserFlow, UserFlowId};
use super::order::compare_ids;

/// (policy) The most flows a run holds; also its allocation once it has grown that far. An
/// insert moves at most this many entries, a split moves one run header per run.
const CHUNK: usize = 256;

/// A flow with its creation position.
#[derive(Debug, Clone)]
pub(super) struct ById {
    pub(super) position: u64,
    pub(super) flow: UserFlow,
}

impl ById {
    fn id(&self) -> &str {
        self.flow.id.as_str()
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    /// The id of `flows[0]`: the search over runs reads these, not the runs.
    first: UserFlowId,
    /// Never empty, ascending, at most [`CHUNK`].
    flows: Vec<ById>,
}

/// A place between flows: run `chunk`, before its flow `at`. Normalized so that `at` is inside
/// the run, or the place is `(chunks.len(), 0)`, so places compare as pairs.
type Place = (usize, usize);

#[derive(Debug, Default, Clone)]
pub(super) struct IdIndex {
    chunks: Vec<Chunk>,
    len: usize,
}

impl IdIndex {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The run that holds `id` if any run does: the last one whose first id is not above it.
    fn chunk_of(&self, id: &str) -> Option<usize> {
        self.chunks
            .partition_point(|c| compare_ids(c.first.as_str(), id).is_le())
            .checked_sub(1)
    }

    pub(super) fn get(&self, id: &str) -> Option<&ById> {
        let chunk = &self.chunks[self.chunk_of(id)?];
        let at = chunk
            .flows
            .binary_search_by(|e| compare_ids(e.id(), id))
            .ok()?;
        Some(&chunk.flows[at])
    }

    /// Adds `entry`, or replaces the flow with its id (in any case) and returns that one.
    pub(super) fn replace(&mut self, entry: ById) -> Option<ById> {
        let Some(c) = self
            .chunk_of(entry.id())
            .or((!self.chunks.is_empty()).then_some(0))
        else {
            self.chunks.push(Chunk {
                first: entry.flow.id.clone(),
                flows: one(entry),
            });
            self.len = 1;
            return None;
        };
        let at = match self.chunks[c]
            .flows
            .binary_search_by(|e| compare_ids(e.id(), entry.id()))
        {
            Ok(at) => return Some(std::mem::replace(&mut self.chunks[c].flows[at], entry)),
            Err(at) => at,
        };
        self.len += 1;
        let last = c + 1 == self.chunks.len();
        let chunk = &mut self.chunks[c];
        if chunk.flows.len() < CHUNK {
            if at == 0 {
                chunk.first = entry.flow.id.clone();
            }
            insert_growing(&mut chunk.flows, at, entry);
            return None;
        }
        // Full. Ids that arrive in order go to a new run and leave this one full; others split
        // it in halves.
        if last && at == CHUNK {
            self.chunks.push(Chunk {
                first: entry.flow.id.clone(),
                flows: one(entry),
            });
            return None;
        }
        let mut right = Vec::with_capacity(CHUNK);
        right.extend(chunk.flows.drain(CHUNK / 2..));
        let (target, at) = if at <= CHUNK / 2 {
            (c, at)
        } else {
            (c + 1, at - CHUNK / 2)
        };
        let right = Chunk {
            first: right[0].flow.id.clone(),
            flows: right,
        };
        self.chunks.insert(c + 1, right);
        let chunk = &mut self.chunks[target];
        if at == 0 {
            chunk.first = entry.flow.id.clone();
        }
        chunk.flows.insert(at, entry);
        None
    }

    /// Removes and returns the flow with id `id` in any case.
    pub(super) fn take(&mut self, id: &str) -> Option<ById> {
        let c = self.chunk_of(id)?;
        let chunk = &mut self.chunks[c];
        let at = chunk
            .flows
            .binary_search_by(|e| compare_ids(e.id(), id))
            .ok()?;
        let taken = chunk.flows.remove(at);
        self.len -= 1;
        if chunk.flows.is_empty() {
            self.chunks.remove(c);
            return Some(taken);
        }
        if at == 0 {
            chunk.first = chunk.flows[0].flow.id.clone();
        }
        if chunk.flows.len() < CHUNK / 4 {
            self.merge_around(c);
        }
        if let Some(chunk) = self.chunks.get_mut(c) {
            // A run that emptied out gives its memory back.
            let want = (2 * chunk.flows.len()).max(4);
            if chunk.flows.capacity() > 2 * want {
                chunk.flows.shrink_to(want);
            }
        }
        Some(taken)
    }

    /// Joins the small run `c` with a neighbour when both fit in three quarters of a run, so
    /// runs stay over a quarter full on average and deletes give memory back.
    fn merge_around(&mut self, c: usize) {
        let left = if c + 1 < self.chunks.len() {
            c
        } else if c > 0 {
            c - 1
        } else {
            return;
        };
        if self.chunks[left].flows.len() + self.chunks[left + 1].flows.len() > CHUNK * 3 / 4 {
            return;
        }
        let right = self.chunks.remove(left + 1);
        let flows = &mut self.chunks[left].flows;
        flows.reserve_exact(right.flows.len());
        flows.extend(right.flows);
    }

    /// The place before the first flow whose id is above `id` (`inclusive`: not below it).
    fn place(&self, id: &str, inclusive: bool) -> Place {
        let Some(c) = self.chunk_of(id) else {
            return (0, 0);
        };
        let before = |e: &ById| match compare_ids(e.id(), id) {
            Ordering::Less => true,
            Ordering::Equal => !inclusive,
            Ordering::Greater => false,
        };
        let at = self.chunks[c].flows.partition_point(before);
        if at < self.chunks[c].flows.len() {
            (c, at)
        } else {
            (c + 1, 0)
        }
    }

    /// The flows between the bounds, by id ignoring case, in either direction.
    pub(super) fn range(
        &self,
        low: Bound<&str>,
        high: Bound<&str>,
    ) -> impl DoubleEndedIterator<Item = &ById> + '_ {
        let start = match low {
            Bound::Included(id) => self.place(id, true),
            Bound::Excluded(id) => self.place(id, false),
            Bound::Unbounded => (0, 0),
        };
        let end = match high {
            Bound::Included(id) => self.place(id, false),
            Bound::Excluded(id) => self.place(id, true),
            Bound::Unbounded => (self.chunks.len(), 0),
        };
        let end = end.max(start);
        let last = end.0.min(self.chunks.len().saturating_sub(1));
        let chunks = if start.0 < self.chunks.len() {
            &self.chunks[start.0..=last.max(start.0)]
        } else {
            &[]
        };
        chunks.iter().enumerate().flat_map(move |(i, chunk)| {
            let c = start.0 + i;
            let from = if c == start.0 { start.1 } else { 0 };
            let to = if c == end.0 { end.1 } else { chunk.flows.len() };
            &chunk.flows[from..to.max(from)]
        })
    }
}

/// A new run of one flow.
fn one(entry: ById) -> Vec<ById> {
    let mut flows = Vec::new();
    insert_growing(&mut flows, 0, entry);
    flows
}

/// Inserts `entry` at `at`, doubling the allocation (up to a run's) when it is full.
fn insert_growing(flows: &mut Vec<ById>, at: usize, entry: ById) {
    if flows.len() == flows.capacity() {
        let target = (flows.capacity() * 2).clamp(4, CHUNK);
        flows.reserve_exact(target - flows.len());
    }
    flows.insert(at, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: u64, id: &str) -> ById {
        ById {
            position,
            flow: UserFlow::sample(id),
        }
    }

    /// Every run's invariants, and the flows in order.
    fn check(index: &IdIndex) -> Vec<String> {
        let mut all = Vec::new();
        for chunk in &index.chunks {
            assert!(!chunk.flows.is_empty() && chunk.flows.len() <= CHUNK);
            assert!(chunk.flows.capacity() <= CHUNK);
            assert_eq!(chunk.first.as_str(), chunk.flows[0].id());
            all.extend(chunk.flows.iter().map(|e| e.id().to_ascii_lowercase()));
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]), "ascending");
        assert_eq!(all.len(), index.len());
        all
    }

    /// A deterministic shuffle of 0..n.
    fn shuffled(n: u64) -> Vec<u64> {
        let mut v: Vec<u64> = (0..n).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for i in (1..v.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        v
    }

    #[test]
    fn inserts_in_any_order_keep_runs_sorted_bounded_and_in_order_ones_full() {
        let mut in_order = IdIndex::default();
        for i in 0..3000 {
            assert!(in_order
                .replace(entry(i, &format!("B2C_1_{i:05}")))
                .is_none());
        }
        check(&in_order);
        assert!(in_order.chunks[..in_order.chunks.len() - 1]
            .iter()
            .all(|c| c.flows.len() == CHUNK));
        let mut shuffled_index = IdIndex::default();
        for i in shuffled(3000) {
            shuffled_index.replace(entry(i, &format!("b2c_1_{i:05}")));
        }
        let all = check(&shuffled_index);
        assert_eq!(all.len(), 3000);
        let old = shuffled_index
            .replace(entry(9, "B2C_1_00017"))
            .map(|e| e.position);
        assert_eq!(old, Some(17));
        assert_eq!(
            shuffled_index.get("b2c_1_00017").map(|e| e.position),
            Some(9)
        );
        assert!(shuffled_index.get("b2c_1_3000").is_none());
        assert!(shuffled_index.get("a").is_none());
    }

    #[test]
    fn ranges_match_a_filter_of_the_sorted_ids_in_both_directions() {
        let mut index = IdIndex::default();
        for i in shuffled(1200) {
            index.replace(entry(i, &format!("B2C_1_{:04}", i * 2)));
        }
        let all = check(&index);
        let ids = |it: &mut dyn Iterator<Item = &ById>| -> Vec<String> {
            it.map(|e| e.id().to_ascii_lowercase()).collect()
        };
        for (lo, hi) in [
            (0, 2400),
            (1, 3),
            (511, 513),
            (512, 1024),
            (100, 100),
            (900, 10),
        ] {
            let (lo, hi) = (format!("b2c_1_{lo:04}"), format!("b2c_1_{hi:04}"));
            for (low, high) in [
                (Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())),
                (Bound::Excluded(lo.as_str()), Bound::Included(hi.as_str())),
                (Bound::Unbounded, Bound::Excluded(hi.as_str())),
                (Bound::Included(lo.as_str()), Bound::Unbounded),
            ] {
                let inside = |id: &String| {
                    let above = match low {
                        Bound::Included(l) => id.as_str() >= l,
                        Bound::Excluded(l) => id.as_str() > l,
                        Bound::Unbounded => true,
                    };
                    let below = match high {
                        Bound::Included(h) => id.as_str() <= h,
                        Bound::Excluded(h) => id.as_str() < h,
                        Bound::Unbounded => true,
                    };
                    above && below
                };
                let expected: Vec<String> = all.iter().filter(|id| inside(id)).cloned().collect();
                assert_eq!(
                    ids(&mut index.range(low, high)),
                    expected,
                    "{low:?} {high:?}"
                );
                let mut reversed = expected.clone();
                reversed.reverse();
                assert_eq!(ids(&mut index.range(low, high).rev()), reversed);
            }
        }
        assert_eq!(
            IdIndex::default()
                .range(Bound::Unbounded, Bound::Unbounded)
                .count(),
            0
        );
    }

    #[test]
    fn deletes_merge_small_runs_and_give_memory_back() {
        let mut index = IdIndex::default();
        for i in shuffled(5000) {
            index.replace(entry(i, &format!("B2C_1_{i:05}")));
        }
        let runs = index.chunks.len();
        for i in shuffled(5000).into_iter().filter(|i| i % 50 != 0) {
            let taken = index.take(&format!("b2c_1_{i:05}")).map(|e| e.position);
            assert_eq!(taken, Some(i));
        }
        assert!(index.take("b2c_1_00001").is_none());
        let all = check(&index);
        assert_eq!(all.len(), 100);
        assert!(
            index.chunks.len() * 4 < runs,
            "{} runs of {runs}",
            index.chunks.len()
        );
        let capacity: usize = index.chunks.iter().map(|c| c.flows.capacity()).sum();
        assert!(capacity <= 4 * 100 + 8 * index.chunks.len(), "{capacity}");
        for i in (0..5000).step_by(50) {
            assert!(index.take(&format!("B2C_1_{i:05}")).is_some());
        }
        assert_eq!(index.len(), 0);
        assert!(index.chunks.is_empty());
    }
}
