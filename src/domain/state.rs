//! A tenant's flows: what `evolve` builds and reads are answered from. Flows keep their creation
//! order, so paging is by position in that order (a keyset), stable while others change.

use std::collections::BTreeMap;
use std::ops::Bound;

use hashbrown::{DefaultHashBuilder, HashTable};

use serde::{Deserialize, Serialize};

use super::flow::{key_hash, UserFlow};

/// Looking a flow up by its id in any ASCII case: all `decide` needs to know of a state.
pub trait FlowLookup {
    fn find(&self, id: &str) -> Option<&UserFlow>;
}

/// The live flows of one tenant.
#[derive(Debug, Default, Clone)]
pub struct UserFlows {
    /// Flows by creation position. Positions only grow, so a page boundary stays valid whatever
    /// is created or deleted after it was handed out.
    by_position: BTreeMap<u64, UserFlow>,
    /// Case-insensitive id to position. Each id is kept once, in `by_position`: the index holds
    /// only the id's case-insensitive hash and its position, which keeps a flow to about
    /// 100 bytes of memory.
    index: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    /// The position the next created flow gets. Derived from the events alone, so a replay
    /// gives every flow the same position it had live.
    next_position: u64,
}

/// One index entry: the hash of a flow's key and the flow's position.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    position: u64,
}

/// A state as plain data, for snapshots: every flow with its creation position, and the next
/// position, so a state rebuilt from it pages exactly like the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowsSnapshot {
    pub next_position: u64,
    pub flows: Vec<(u64, UserFlow)>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<'a> {
    pub flows: Vec<&'a UserFlow>,
    /// The position to continue after, when more flows follow.
    pub next_after: Option<u64>,
}

impl UserFlows {
    pub(super) fn insert(&mut self, flow: UserFlow) {
        let hash = key_hash(&self.hasher, flow.id.as_str());
        let position = self.next_position;
        self.next_position += 1;
        let by_position = &mut self.by_position;
        let same = |slot: &Slot| is_flow(by_position, slot, hash, flow.id.as_str());
        match self.index.find_mut(hash, same) {
            Some(slot) => {
                let old = std::mem::replace(&mut slot.position, position);
                by_position.remove(&old);
            }
            None => {
                self.index
                    .insert_unique(hash, Slot { hash, position }, |s| s.hash);
            }
        }
        by_position.insert(position, flow);
    }

    /// Removes the flow with id `id` in any ASCII case.
    pub(super) fn remove(&mut self, id: &str) {
        let hash = key_hash(&self.hasher, id);
        let by_position = &self.by_position;
        let found = self
            .index
            .find_entry(hash, |slot| is_flow(by_position, slot, hash, id));
        if let Ok(entry) = found {
            let (slot, _) = entry.remove();
            self.by_position.remove(&slot.position);
        }
    }

    /// The state as plain data.
    #[must_use]
    pub fn snapshot(&self) -> FlowsSnapshot {
        FlowsSnapshot {
            next_position: self.next_position,
            flows: self
                .by_position
                .iter()
                .map(|(p, f)| (*p, f.clone()))
                .collect(),
        }
    }

    /// Rebuilds a state from a snapshot, refusing one that no sequence of events could produce
    /// (positions out of order or not below `next_position`, one id twice).
    pub fn from_snapshot(snapshot: FlowsSnapshot) -> Result<Self, String> {
        let mut state = Self {
            next_position: snapshot.next_position,
            ..Self::default()
        };
        let mut previous = None;
        for (position, flow) in snapshot.flows {
            if position >= snapshot.next_position || previous.is_some_and(|p| p >= position) {
                return Err(format!("flow position {position} is out of order"));
            }
            previous = Some(position);
            let hash = key_hash(&state.hasher, flow.id.as_str());
            let by_position = &state.by_position;
            let same = |slot: &Slot| is_flow(by_position, slot, hash, flow.id.as_str());
            if state.index.find(hash, same).is_some() {
                return Err(format!("flow {} appears twice", flow.id));
            }
            state
                .index
                .insert_unique(hash, Slot { hash, position }, |s| s.hash);
            state.by_position.insert(position, flow);
        }
        Ok(state)
    }

    /// How many flows exist.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every flow in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &UserFlow> {
        self.by_position.values()
    }

    /// Up to `size` flows created after position `after` (from the start when `None`).
    #[must_use]
    pub fn page(&self, after: Option<u64>, size: usize) -> Page<'_> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut range = self.by_position.range((start, Bound::Unbounded));
        let flows: Vec<(&u64, &UserFlow)> = range.by_ref().take(size).collect();
        let next_after = match (flows.last(), range.next()) {
            (Some((last, _)), Some(_)) => Some(**last),
            _ => None,
        };
        Page {
            flows: flows.into_iter().map(|(_, f)| f).collect(),
            next_after,
        }
    }
}

impl FlowLookup for UserFlows {
    fn find(&self, id: &str) -> Option<&UserFlow> {
        let hash = key_hash(&self.hasher, id);
        let slot = self
            .index
            .find(hash, |slot| is_flow(&self.by_position, slot, hash, id))?;
        self.by_position.get(&slot.position)
    }
}

/// Whether `slot` is the flow with id `id` (in any ASCII case).
fn is_flow(by_position: &BTreeMap<u64, UserFlow>, slot: &Slot, hash: u64, id: &str) -> bool {
    slot.hash == hash
        && by_position
            .get(&slot.position)
            .is_some_and(|flow| flow.id.as_str().eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::super::event::{evolve, UserFlowEvent};
    use super::super::flow::UserFlowId;
    use super::*;

    fn created(id: &str) -> UserFlowEvent {
        UserFlowEvent::Created(UserFlow::sample(id))
    }

    fn ids(page: &Page<'_>) -> Vec<String> {
        page.flows.iter().map(|f| f.id.to_string()).collect()
    }

    #[test]
    fn pages_walk_every_flow_once_and_stop() {
        let mut s = UserFlows::default();
        for i in 0..5 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        let p1 = s.page(None, 2);
        assert_eq!(ids(&p1), vec!["B2C_1_f0", "B2C_1_f1"]);
        let p2 = s.page(p1.next_after, 2);
        assert_eq!(ids(&p2), vec!["B2C_1_f2", "B2C_1_f3"]);
        let p3 = s.page(p2.next_after, 2);
        assert_eq!(ids(&p3), vec!["B2C_1_f4"]);
        assert_eq!(p3.next_after, None);
    }

    #[test]
    fn a_snapshot_rebuilds_the_same_state_and_bad_ones_are_refused() {
        let mut s = UserFlows::default();
        for i in 0..4 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        evolve(
            &mut s,
            &UserFlowEvent::Deleted {
                id: UserFlowId::parse("f1").unwrap(),
            },
        );
        let rebuilt = UserFlows::from_snapshot(s.snapshot()).unwrap();
        assert_eq!(rebuilt.snapshot(), s.snapshot());
        let after = s.page(None, 1).next_after;
        assert_eq!(ids(&rebuilt.page(after, 10)), ids(&s.page(after, 10)));

        let mut twice = s.snapshot();
        let first = twice.flows[0].1.clone();
        twice.flows.push((99, first));
        twice.next_position = 100;
        assert!(UserFlows::from_snapshot(twice).is_err());
        let mut beyond = s.snapshot();
        beyond.next_position = 1;
        assert!(UserFlows::from_snapshot(beyond).is_err());
    }

    #[test]
    fn a_full_last_page_has_no_next() {
        let mut s = UserFlows::default();
        evolve(&mut s, &created("a"));
        evolve(&mut s, &created("b"));
        assert_eq!(s.page(None, 2).next_after, None);
    }

    #[test]
    fn a_page_boundary_survives_deletes_and_creates() {
        let mut s = UserFlows::default();
        for i in 0..4 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        let boundary = s.page(None, 2).next_after;
        evolve(
            &mut s,
            &UserFlowEvent::Deleted {
                id: UserFlowId::parse("f1").unwrap(),
            },
        );
        evolve(&mut s, &created("late"));
        let rest = s.page(boundary, 10);
        assert_eq!(ids(&rest), vec!["B2C_1_f2", "B2C_1_f3", "B2C_1_late"]);
    }

    #[test]
    fn lookups_ignore_ascii_case_for_short_and_long_ids() {
        let long = format!("Long{}", "Ab".repeat(45));
        let mut s = UserFlows::default();
        for id in ["Pol1", "Pol2", long.as_str()] {
            evolve(&mut s, &created(id));
        }
        assert_eq!(s.len(), 3);
        let upper = format!("B2C_1_{}", long.to_ascii_uppercase());
        assert_eq!(
            s.find(&upper).map(|f| f.id.to_string()),
            Some(format!("B2C_1_{long}"))
        );
        assert!(s.find("b2c_1_POL1").is_some());
        assert!(s.find("b2c_1_pol").is_none());
        // A create of an existing id in another case replaces it and moves it to the end.
        evolve(&mut s, &created("POL1"));
        assert_eq!(s.len(), 3);
        let order: Vec<String> = s.iter().map(|f| f.id.to_string()).collect();
        assert_eq!(
            order,
            [
                "B2C_1_Pol2".to_owned(),
                format!("B2C_1_{long}"),
                "B2C_1_POL1".into()
            ]
        );
        evolve(
            &mut s,
            &UserFlowEvent::Deleted {
                id: UserFlowId::parse(&upper.as_str().to_ascii_uppercase()).unwrap(),
            },
        );
        assert!(s.find(&upper).is_none());
        assert_eq!(s.len(), 2);
        // Many flows: the index keeps finding every one as it grows.
        for i in 0..5_000 {
            evolve(&mut s, &created(&format!("Many{i}")));
        }
        assert!((0..5_000).all(|i| s.find(&format!("b2c_1_many{i}")).is_some()));
        assert_eq!(s.len(), 5_002);
    }
}
