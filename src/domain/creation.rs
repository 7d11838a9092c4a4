//! A tenant's flows in creation order: one vector of (position, flow) slots, ascending, where a
//! delete leaves a hole until holes are the majority and the vector is compacted. Positions
//! only grow, so a create is a push; a page in creation order is a binary search and a read
//! of consecutive memory, which stays cheap however many flows the tenant holds (a tree's
//! nodes are scattered, and half empty when filled in order).

use super::flow::UserFlow;

/// (policy) Holes are compacted away only past this many, so a small tenant never compacts on
/// every delete.
const MIN_HOLES: usize = 64;

#[derive(Debug, Default, Clone)]
pub(super) struct CreationOrder {
    /// Ascending positions; `None` where the flow was deleted.
    slots: Vec<(u64, Option<UserFlow>)>,
    holes: usize,
}

impl CreationOrder {
    /// Room for `n` flows, for a state rebuilt from a snapshot of that many.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            slots: Vec::with_capacity(n),
            holes: 0,
        }
    }

    /// Adds a flow at `position`, above every position held (the caller's counter only grows).
    pub(super) fn push(&mut self, position: u64, flow: UserFlow) {
        debug_assert!(self.slots.last().is_none_or(|(p, _)| *p < position));
        self.slots.push((position, Some(flow)));
    }

    /// Removes the flow at `position`, if there is one.
    pub(super) fn remove(&mut self, position: u64) {
        let Ok(index) = self.slots.binary_search_by_key(&position, |(p, _)| *p) else {
            return;
        };
        if self.slots[index].1.take().is_none() {
            return;
        }
        self.holes += 1;
        if self.holes > MIN_HOLES && self.holes * 2 > self.slots.len() {
            self.slots.retain(|(_, flow)| flow.is_some());
            self.holes = 0;
            // A tenant that shrank gives its memory back, keeping room to grow by half again.
            if self.slots.capacity() > 2 * self.slots.len() + MIN_HOLES {
                self.slots
                    .shrink_to(self.slots.len() + self.slots.len() / 2);
            }
        }
    }

    /// The flows above `after` (when given) and below `horizon`, ascending.
    pub(super) fn range(
        &self,
        after: Option<u64>,
        horizon: u64,
    ) -> impl Iterator<Item = (u64, &UserFlow)> + '_ {
        let start = after.map_or(0, |a| self.slots.partition_point(|(p, _)| *p <= a));
        let end = self.slots.partition_point(|(p, _)| *p < horizon);
        self.slots[start..end.max(start)]
            .iter()
            .filter_map(|(p, flow)| flow.as_ref().map(|f| (*p, f)))
    }

    /// The flows at these positions (ascending), skipping those not held: each found by a
    /// search forward from the one before, so a run of near positions costs little more than
    /// reading them.
    pub(super) fn at<'a, I>(&'a self, positions: I) -> impl Iterator<Item = (u64, &'a UserFlow)>
    where
        I: Iterator<Item = u64> + 'a,
    {
        let mut from = 0;
        positions.filter_map(move |position| {
            let rest = &self.slots[from.min(self.slots.len())..];
            let offset = gallop(rest, position);
            from += offset;
            match self.slots.get(from) {
                Some((p, Some(flow))) if *p == position => {
                    from += 1;
                    Some((position, flow))
                }
                _ => None,
            }
        })
    }

    /// Every flow, ascending.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &UserFlow)> {
        self.range(None, u64::MAX)
    }
}

/// The index of the first slot at or above `position`, searched by doubling steps from the
/// front and then by halves.
fn gallop(slots: &[(u64, Option<UserFlow>)], position: u64) -> usize {
    let mut bound = 1;
    while bound < slots.len() && slots[bound - 1].0 < position {
        bound *= 2;
    }
    let low = bound / 2;
    let high = bound.min(slots.len());
    low + slots[low..high].partition_point(|(p, _)| *p < position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u64) -> CreationOrder {
        let mut order = CreationOrder::default();
        for p in 0..n {
            order.push(p * 2, UserFlow::sample(&format!("B2C_1_f{p}")));
        }
        order
    }

    fn positions<'a>(rows: impl Iterator<Item = (u64, &'a UserFlow)>) -> Vec<u64> {
        rows.map(|(p, _)| p).collect()
    }

    #[test]
    fn ranges_and_lookups_skip_holes_and_missing_positions() {
        let mut order = order(10);
        order.remove(4);
        order.remove(5);
        assert_eq!(positions(order.at([4, 5].into_iter())), Vec::<u64>::new());
        let at_six: Vec<&str> = order
            .at([6].into_iter())
            .map(|(_, f)| f.id.as_str())
            .collect();
        assert_eq!(at_six, ["B2C_1_f3"]);
        assert_eq!(positions(order.range(Some(2), 10)), [6, 8]);
        assert_eq!(positions(order.range(Some(3), 9)), [6, 8]);
        assert_eq!(positions(order.range(None, 1)), [0]);
        assert_eq!(positions(order.range(Some(18), 100)), Vec::<u64>::new());
        assert_eq!(positions(order.range(Some(10), 4)), Vec::<u64>::new());
        let wanted = [0, 1, 4, 6, 7, 16, 18, 40];
        assert_eq!(positions(order.at(wanted.into_iter())), [0, 6, 16, 18]);
        assert_eq!(positions(order.iter()).len(), 9);
    }

    #[test]
    fn holes_are_compacted_once_they_are_the_majority_and_nothing_is_lost() {
        let mut order = order(1000);
        for p in 0..700 {
            order.remove(p * 2);
        }
        assert!(order.slots.len() < 1000, "compacted: {}", order.slots.len());
        assert_eq!(
            positions(order.iter()),
            (700..1000).map(|p| p * 2).collect::<Vec<_>>()
        );
        for p in 700..1000 {
            order.remove(p * 2);
        }
        assert_eq!(order.iter().count(), 0);
        assert!(
            order.slots.capacity() <= 2 * MIN_HOLES + 1,
            "{}",
            order.slots.capacity()
        );
        order.push(5000, UserFlow::sample("B2C_1_again"));
        assert_eq!(positions(order.iter()), [5000]);
    }
}
