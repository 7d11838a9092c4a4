//! A tenant's flows: what `evolve` builds and reads are answered from. Flows keep their creation
//! position, and the state keeps ordered indexes (by id ignoring case, by type, by version), so
//! a page of any filter and order costs a seek and the page, not a sort of the tenant. Pages
//! continue from a [`Cursor`], stable while others create and delete.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::creation::CreationOrder;
use super::filter::{starts_with_ignoring_case, Comparison, Equality, Filter};
use super::flow::{UserFlow, UserFlowType};
use super::id_index::{ById, IdIndex};
use super::order::{compare, Cursor, OrderKey, Property, SortValues};

/// Looking a flow up by its id in any ASCII case: all `decide` needs to know of a state.
pub trait FlowLookup {
    fn find(&self, id: &str) -> Option<&UserFlow>;
}

/// (policy) A `startswith(id,…)` under an order other than `id` matching at most this many
/// flows is sorted; a wider one is walked in the order's index, filtering as it goes.
const SMALL_RANGE: usize = 1024;

/// The live flows of one tenant.
#[derive(Debug, Default, Clone)]
pub struct UserFlows {
    /// Flows by creation position. Positions only grow, so a page boundary stays valid whatever
    /// is created or deleted after it was handed out.
    by_position: CreationOrder,
    /// Flows (a second copy, with their positions) by id ignoring ASCII case: lookups, and
    /// `$orderby=id` and `startswith(id,…)` walks that read flows in order rather than jumping
    /// to each one's position.
    by_id: IdIndex,
    /// The positions of each type's flows, by the type's rank: `userFlowType eq` and
    /// `$orderby=userFlowType`.
    by_type: [BTreeSet<u64>; UserFlowType::ALL.len()],
    /// The positions of each version's flows, by version sort key: `$orderby=userFlowTypeVersion`.
    by_version: BTreeMap<u32, BTreeSet<u64>>,
    /// The position the next created flow gets. Derived from the events alone, so a replay
    /// gives every flow the same position it had live.
    next_position: u64,
}

/// A state as plain data, for snapshots: every flow with its creation position, and the next
/// position, so a state rebuilt from it pages exactly like the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowsSnapshot {
    pub next_position: u64,
    pub flows: Vec<(u64, UserFlow)>,
}

/// What a page asks for.
#[derive(Debug, Clone, Copy)]
pub struct ListRequest<'a> {
    pub filter: Option<&'a Filter>,
    /// Empty: creation order.
    pub order: &'a [OrderKey],
    /// Only flows created before this position: the walk's horizon, fixed by its first page.
    pub horizon: u64,
    /// Continue right after this place in the order.
    pub after: Option<&'a Cursor>,
    /// Matches to pass over first.
    pub skip: usize,
    pub size: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<'a> {
    pub flows: Vec<&'a UserFlow>,
    /// Where the next page starts, when another match follows.
    pub next: Option<Cursor>,
}

/// Flows with their positions, in some order.
type Rows<'a> = Box<dyn Iterator<Item = (u64, &'a UserFlow)> + 'a>;

/// The values every flow of a run of an order shares (the run of one type, say): an index walk
/// within it keeps only its members.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    kind: Option<UserFlowType>,
    version: Option<u32>,
}

impl Group {
    fn holds(self, flow: &UserFlow) -> bool {
        self.kind.is_none_or(|k| flow.user_flow_type == k)
            && self
                .version
                .is_none_or(|v| flow.user_flow_type_version.sort_key() == v)
    }
}

/// The exclusive upper bound of the lower-cased ids that start with `prefix`: id characters
/// are all below 0x7f.
fn prefix_end(prefix: &str) -> String {
    let mut end = String::with_capacity(prefix.len() + 1);
    end.push_str(prefix);
    end.push('\x7f');
    end
}

impl UserFlows {
    pub(super) fn insert(&mut self, flow: UserFlow) {
        let position = self.next_position;
        self.next_position += 1;
        let entry = ById {
            position,
            flow: flow.clone(),
        };
        if let Some(old) = self.by_id.replace(entry) {
            self.unindex(old.position, &old.flow);
        }
        self.by_type[usize::from(flow.user_flow_type.rank())].insert(position);
        self.by_version
            .entry(flow.user_flow_type_version.sort_key())
            .or_default()
            .insert(position);
        self.by_position.push(position, flow);
    }

    /// Drops the flow at `position` from every index but `by_id`.
    fn unindex(&mut self, position: u64, flow: &UserFlow) {
        self.by_position.remove(position);
        self.by_type[usize::from(flow.user_flow_type.rank())].remove(&position);
        let version = flow.user_flow_type_version.sort_key();
        if let Some(positions) = self.by_version.get_mut(&version) {
            positions.remove(&position);
            // Only versions some flow has: walks step from one to the next.
            if positions.is_empty() {
                self.by_version.remove(&version);
            }
        }
    }

    /// Removes the flow with id `id` in any ASCII case.
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.take(id) {
            self.unindex(old.position, &old.flow);
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
                .map(|(p, f)| (p, f.clone()))
                .collect(),
        }
    }

    /// Rebuilds a state from a snapshot, refusing one that no sequence of events could produce
    /// (positions out of order or not below `next_position`, one id twice).
    pub fn from_snapshot(snapshot: FlowsSnapshot) -> Result<Self, String> {
        let mut state = Self {
            by_position: CreationOrder::with_capacity(snapshot.flows.len()),
            ..Self::default()
        };
        let mut previous = None;
        for (position, flow) in snapshot.flows {
            if position >= snapshot.next_position || previous.is_some_and(|p| p >= position) {
                return Err(format!("flow position {position} is out of order"));
            }
            previous = Some(position);
            if state.find(flow.id.as_str()).is_some() {
                return Err(format!("flow {} appears twice", flow.id));
            }
            state.next_position = position;
            state.insert(flow);
        }
        state.next_position = snapshot.next_position;
        Ok(state)
    }

    /// How many flows exist.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.len() == 0
    }

    /// The position the next created flow gets: a horizon that holds every flow there is.
    #[must_use]
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Every flow in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &UserFlow> {
        self.by_position.iter().map(|(_, flow)| flow)
    }

    /// One page: the matches of the filter in the order, after the cursor and below the
    /// horizon, `skip` of them passed over.
    #[must_use]
    pub fn list<'a>(&'a self, request: &ListRequest<'a>) -> Listing<'a> {
        let ListRequest {
            filter,
            order,
            horizon,
            after,
            skip,
            size,
        } = *request;
        let mut matches = self
            .rows(filter, order, after, horizon)
            .filter(|(position, flow)| {
                *position < horizon && filter.is_none_or(|f| f.matches(flow))
            })
            .skip(skip);
        let page: Vec<(u64, &UserFlow)> = matches.by_ref().take(size).collect();
        let next = match (page.last(), matches.next()) {
            (Some((position, flow)), Some(_)) => Some(Cursor::at(*position, flow)),
            _ => None,
        };
        Listing {
            flows: page.into_iter().map(|(_, f)| f).collect(),
            next,
        }
    }

    /// How many flows match.
    #[must_use]
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        match filter {
            None => self.len(),
            Some(filter) => self
                .rows(Some(filter), &[], None, u64::MAX)
                .filter(|(_, flow)| filter.matches(flow))
                .count(),
        }
    }

    /// The candidates of a filter in an order: a superset of its matches, from the index its
    /// top-level clauses allow.
    fn rows<'a>(
        &'a self,
        filter: Option<&'a Filter>,
        order: &'a [OrderKey],
        after: Option<&'a Cursor>,
        horizon: u64,
    ) -> Rows<'a> {
        let mut group = Group::default();
        let mut prefix: Option<&str> = None;
        for clause in filter.map_or(&[][..], Filter::conjuncts) {
            match clause {
                Filter::Id(Equality::Eq, id) => {
                    return Self::sorted(self.lookup(std::slice::from_ref(id)), order, after);
                }
                Filter::IdIn(ids) => return Self::sorted(self.lookup(ids), order, after),
                Filter::IdStartsWith(p) if prefix.is_none_or(|q| q.len() < p.len()) => {
                    prefix = Some(p);
                }
                Filter::Type(Equality::Eq, kind) => group.kind = Some(*kind),
                Filter::Version(Comparison::Eq, version) => group.version = Some(version.to_bits()),
                _ => {}
            }
        }
        if let Some(prefix) = prefix {
            if order.first().map(|k| k.property) != Some(Property::Id) {
                let few: Vec<(u64, &UserFlow)> = self
                    .id_range(prefix, None, false)
                    .take(SMALL_RANGE + 1)
                    .collect();
                if few.len() <= SMALL_RANGE {
                    return Self::sorted(few, order, after);
                }
            }
        }
        self.walk(order, group, after, prefix, horizon)
    }

    /// The flows of these ids (lower-cased), at most once each.
    fn lookup(&self, ids: &[String]) -> Vec<(u64, &UserFlow)> {
        let mut found: Vec<(u64, &UserFlow)> = ids
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .map(|entry| (entry.position, &entry.flow))
            .collect();
        found.sort_unstable_by_key(|(p, _)| *p);
        found.dedup_by_key(|(p, _)| *p);
        found
    }

    /// A few candidates, sorted into the order and cut at the cursor.
    fn sorted<'a>(
        mut rows: Vec<(u64, &'a UserFlow)>,
        order: &'a [OrderKey],
        after: Option<&'a Cursor>,
    ) -> Rows<'a> {
        if let Some(cursor) = after {
            rows.retain(|(p, f)| compare(order, SortValues::of(*p, f), cursor.values()).is_gt());
        }
        rows.sort_by(|(pa, a), (pb, b)| {
            compare(order, SortValues::of(*pa, a), SortValues::of(*pb, b))
        });
        Box::new(rows.into_iter())
    }

    /// The flows of `group` in the order `keys`, after the cursor (which, when given, belongs
    /// to the group), each key walked in its index.
    fn walk<'a>(
        &'a self,
        keys: &'a [OrderKey],
        group: Group,
        after: Option<&'a Cursor>,
        prefix: Option<&'a str>,
        horizon: u64,
    ) -> Rows<'a> {
        let Some((first, rest)) = keys.split_first() else {
            return self.in_creation_order(group, prefix, after.map(|c| c.position), horizon);
        };
        match first.property {
            // Ids are unique: the keys after an id key never matter.
            Property::Id => {
                let from = after.map(|c| c.id.as_str());
                Box::new(
                    self.id_range(prefix.unwrap_or(""), from, first.descending)
                        .filter(move |(_, flow)| group.holds(flow)),
                )
            }
            Property::Type => {
                let mut kinds = UserFlowType::ALL.to_vec();
                if first.descending {
                    kinds.reverse();
                }
                kinds.retain(|k| {
                    group.kind.is_none_or(|g| g == *k)
                        && !self.by_type[usize::from(k.rank())].is_empty()
                });
                if let Some(cursor) = after {
                    kinds.retain(|k| {
                        if first.descending {
                            *k <= cursor.kind
                        } else {
                            *k >= cursor.kind
                        }
                    });
                }
                Box::new(kinds.into_iter().flat_map(move |kind| {
                    let after = after.filter(|c| c.kind == kind);
                    let group = Group {
                        kind: Some(kind),
                        ..group
                    };
                    self.walk(rest, group, after, prefix, horizon)
                }))
            }
            Property::Version => {
                let versions: Box<dyn Iterator<Item = u32> + 'a> = match group.version {
                    Some(v) => Box::new(std::iter::once(v)),
                    None => Box::new(self.versions(after.map(|c| c.version), first.descending)),
                };
                Box::new(versions.flat_map(move |version| {
                    let after = after.filter(|c| c.version == version);
                    let group = Group {
                        version: Some(version),
                        ..group
                    };
                    self.walk(rest, group, after, prefix, horizon)
                }))
            }
        }
    }

    /// The distinct versions, ascending or descending, from `from` (included) on.
    fn versions(&self, from: Option<u32>, descending: bool) -> Box<dyn Iterator<Item = u32> + '_> {
        let keys = |(v, _): (&u32, _)| *v;
        match (descending, from) {
            (false, from) => Box::new(self.by_version.range(from.unwrap_or(0)..).map(keys)),
            (true, Some(from)) => Box::new(self.by_version.range(..=from).rev().map(keys)),
            (true, None) => Box::new(self.by_version.iter().rev().map(keys)),
        }
    }

    /// The flows whose lower-cased id starts with `prefix`, by id, after the id `from`.
    fn id_range<'a>(&'a self, prefix: &str, from: Option<&str>, descending: bool) -> Rows<'a> {
        let end = prefix_end(prefix);
        let mut low = Bound::Included(prefix);
        let mut high = Bound::Excluded(end.as_str());
        match from {
            Some(from) if descending && from <= prefix => return Box::new(std::iter::empty()),
            Some(from) if !descending && from >= end.as_str() => {
                return Box::new(std::iter::empty())
            }
            Some(from) if descending => high = Bound::Excluded(from),
            Some(from) if from >= prefix => low = Bound::Excluded(from),
            _ => {}
        }
        let entries = self.by_id.range(low, high);
        let entries: Box<dyn Iterator<Item = &ById>> = if descending {
            Box::new(entries.rev())
        } else {
            Box::new(entries)
        };
        Box::new(entries.map(|entry| (entry.position, &entry.flow)))
    }

    /// The flows of `group` whose lower-cased id starts with `prefix`, in creation order, after
    /// position `after`, below `horizon`. Both tests run inside the walk, so passing over the
    /// flows that fail them costs no call through the boxed iterators above it.
    fn in_creation_order<'a>(
        &'a self,
        group: Group,
        prefix: Option<&'a str>,
        after: Option<u64>,
        horizon: u64,
    ) -> Rows<'a> {
        if after.is_some_and(|a| a >= horizon) || horizon == 0 {
            return Box::new(std::iter::empty());
        }
        let positions = if let Some(kind) = group.kind {
            Some(&self.by_type[usize::from(kind.rank())])
        } else if let Some(version) = group.version {
            match self.by_version.get(&version) {
                Some(positions) => Some(positions),
                None => return Box::new(std::iter::empty()),
            }
        } else {
            None
        };
        let rows: Rows<'a> = match positions {
            Some(positions) => {
                let range = (
                    after.map_or(Bound::Unbounded, Bound::Excluded),
                    Bound::Excluded(horizon),
                );
                Box::new(self.by_position.at(positions.range(range).copied()))
            }
            None => Box::new(self.by_position.range(after, horizon)),
        };
        let prefix = prefix.unwrap_or("");
        Box::new(rows.filter(move |(_, flow)| {
            starts_with_ignoring_case(flow.id.as_str(), prefix) && group.holds(flow)
        }))
    }
}

impl FlowLookup for UserFlows {
    fn find(&self, id: &str) -> Option<&UserFlow> {
        self.by_id.get(id).map(|entry| &entry.flow)
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::{evolve, UserFlowEvent};
    use super::super::flow::{UserFlowId, UserFlowTypeVersion};
    use super::super::order::compare;
    use super::*;

    fn created(id: &str) -> UserFlowEvent {
        UserFlowEvent::Created(UserFlow::sample(id))
    }

    fn deleted(id: &str) -> UserFlowEvent {
        UserFlowEvent::Deleted {
            id: UserFlowId::parse(id).unwrap(),
        }
    }

    fn ids(flows: &[&UserFlow]) -> Vec<String> {
        flows.iter().map(|f| f.id.to_string()).collect()
    }

    fn page<'a>(s: &'a UserFlows, after: Option<&'a Cursor>, size: usize) -> Listing<'a> {
        s.list(&ListRequest {
            filter: None,
            order: &[],
            horizon: s.next_position(),
            after,
            skip: 0,
            size,
        })
    }

    #[test]
    fn pages_walk_every_flow_once_and_stop() {
        let mut s = UserFlows::default();
        for i in 0..5 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        let p1 = page(&s, None, 2);
        assert_eq!(ids(&p1.flows), vec!["B2C_1_f0", "B2C_1_f1"]);
        let p2 = page(&s, p1.next.as_ref(), 2);
        assert_eq!(ids(&p2.flows), vec!["B2C_1_f2", "B2C_1_f3"]);
        let p3 = page(&s, p2.next.as_ref(), 2);
        assert_eq!(ids(&p3.flows), vec!["B2C_1_f4"]);
        assert_eq!(p3.next, None);
    }

    #[test]
    fn a_snapshot_rebuilds_the_same_state_and_bad_ones_are_refused() {
        let mut s = UserFlows::default();
        for i in 0..4 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        evolve(&mut s, &deleted("f1"));
        let rebuilt = UserFlows::from_snapshot(s.snapshot()).unwrap();
        assert_eq!(rebuilt.snapshot(), s.snapshot());
        let after = page(&s, None, 1).next;
        assert_eq!(
            ids(&page(&rebuilt, after.as_ref(), 10).flows),
            ids(&page(&s, after.as_ref(), 10).flows)
        );

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
        assert_eq!(page(&s, None, 2).next, None);
    }

    #[test]
    fn a_page_boundary_survives_deletes_and_creates_below_the_horizon() {
        let mut s = UserFlows::default();
        for i in 0..4 {
            evolve(&mut s, &created(&format!("f{i}")));
        }
        let horizon = s.next_position();
        let boundary = page(&s, None, 2).next;
        evolve(&mut s, &deleted("f1"));
        evolve(&mut s, &deleted("f3"));
        evolve(&mut s, &created("late"));
        evolve(&mut s, &created("f3"));
        let rest = s.list(&ListRequest {
            filter: None,
            order: &[],
            horizon,
            after: boundary.as_ref(),
            skip: 0,
            size: 10,
        });
        // f3 was re-created after the walk began: it is past the horizon.
        assert_eq!(ids(&rest.flows), vec!["B2C_1_f2"]);
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
        evolve(&mut s, &deleted(&upper.to_ascii_uppercase()));
        assert!(s.find(&upper).is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.by_type.iter().map(BTreeSet::len).sum::<usize>(), 2);
        assert_eq!(s.by_version.values().map(BTreeSet::len).sum::<usize>(), 2);
    }

    /// A small deterministic generator, so a failure names a reproducible case.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_filter(rng: &mut Rng, depth: u32) -> Filter {
        let kind = || UserFlowType::ALL[0];
        match rng.below(if depth > 1 { 6 } else { 9 }) {
            0 => Filter::Id(Equality::Eq, format!("b2c_1_f{}", rng.below(60))),
            1 => Filter::IdStartsWith(format!("b2c_1_f{}", rng.below(12))),
            2 => Filter::IdIn(
                (0..3)
                    .map(|_| format!("b2c_1_f{}", rng.below(60)))
                    .collect(),
            ),
            3 => Filter::Type(
                if rng.below(2) == 0 {
                    Equality::Eq
                } else {
                    Equality::Ne
                },
                UserFlowType::from_rank(rng.below(6) as u8).unwrap_or_else(kind),
            ),
            4 => Filter::Version(Comparison::Ge, rng.below(4) as f32),
            5 => Filter::Version(Comparison::Eq, rng.below(4) as f32),
            6 => Filter::And(vec![
                random_filter(rng, depth + 1),
                random_filter(rng, depth + 1),
            ]),
            7 => Filter::Or(vec![
                random_filter(rng, depth + 1),
                random_filter(rng, depth + 1),
            ]),
            _ => Filter::Not(Box::new(random_filter(rng, depth + 1))),
        }
    }

    fn random_order(rng: &mut Rng) -> Vec<OrderKey> {
        let mut properties = vec![Property::Id, Property::Type, Property::Version];
        let mut keys = Vec::new();
        for _ in 0..rng.below(4) {
            let property = properties.remove(rng.below(properties.len() as u64) as usize);
            keys.push(OrderKey {
                property,
                descending: rng.below(2) == 0,
            });
        }
        keys
    }

    #[test]
    fn every_filter_and_order_walks_as_a_sort_of_the_matches_would() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut s = UserFlows::default();
        let mut positions = std::collections::HashMap::new();
        // Flows created and mostly deleted first, so the creation order has been compacted
        // and still holds holes when the walks run.
        for i in 0..150u64 {
            let id = format!("b2c_1_g{i}");
            positions.insert(id.clone(), s.next_position());
            evolve(&mut s, &created(&id));
        }
        for i in (0..150).filter(|i| i % 15 != 0) {
            evolve(&mut s, &deleted(&format!("g{i}")));
        }
        // Enough live flows for the id index to hold several runs.
        for i in 0..400u64 {
            let id = format!("b2c_1_h{}", (i * 7919) % 400);
            positions.insert(id.clone(), s.next_position());
            evolve(&mut s, &created(&id));
        }
        for i in 0..60u64 {
            let id = if i % 3 == 0 {
                format!("B2C_1_F{i}")
            } else {
                format!("b2c_1_f{i}")
            };
            let flow = UserFlow {
                id: UserFlowId::parse(&id).unwrap(),
                user_flow_type: UserFlowType::ALL[rng.below(3) as usize],
                user_flow_type_version: UserFlowTypeVersion::parse(1.0 + rng.below(3) as f64)
                    .unwrap(),
            };
            positions.insert(id.to_ascii_lowercase(), s.next_position());
            evolve(&mut s, &UserFlowEvent::Created(flow));
        }
        for i in (0..60).step_by(7) {
            evolve(&mut s, &deleted(&format!("f{i}")));
        }
        for case in 0..400 {
            let filter = (case % 5 != 0).then(|| random_filter(&mut rng, 0));
            let order = random_order(&mut rng);
            let size = 1 + rng.below(7) as usize;
            let skip = rng.below(3) as usize;
            let mut expected: Vec<(u64, &UserFlow)> = s
                .iter()
                .map(|f| (positions[&f.id.as_str().to_ascii_lowercase()], f))
                .filter(|(_, f)| filter.as_ref().is_none_or(|x| x.matches(f)))
                .collect();
            expected.sort_by(|(pa, a), (pb, b)| {
                compare(&order, SortValues::of(*pa, a), SortValues::of(*pb, b))
            });
            let expected: Vec<String> = expected
                .into_iter()
                .skip(skip)
                .map(|(_, f)| f.id.to_string())
                .collect();
            let mut walked = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let listing = s.list(&ListRequest {
                    filter: filter.as_ref(),
                    order: &order,
                    horizon: s.next_position(),
                    after: after.as_ref(),
                    skip: if after.is_none() { skip } else { 0 },
                    size,
                });
                assert!(listing.flows.len() <= size);
                if listing.next.is_some() {
                    assert_eq!(listing.flows.len(), size, "a page before the last is full");
                }
                walked.extend(ids(&listing.flows));
                match listing.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(walked, expected, "case {case}: {filter:?} by {order:?}");
            if skip == 0 {
                assert_eq!(s.count(filter.as_ref()), expected.len(), "{filter:?}");
            }
        }
    }

    #[test]
    fn a_wide_prefix_under_another_order_walks_its_index() {
        let mut s = UserFlows::default();
        for i in 0..(SMALL_RANGE + 10) {
            evolve(&mut s, &created(&format!("a{i:05}")));
        }
        evolve(&mut s, &created("b"));
        let filter = Filter::IdStartsWith("b2c_1_a".into());
        let order = [OrderKey {
            property: Property::Version,
            descending: true,
        }];
        let listing = s.list(&ListRequest {
            filter: Some(&filter),
            order: &order,
            horizon: s.next_position(),
            after: None,
            skip: SMALL_RANGE,
            size: 20,
        });
        assert_eq!(listing.flows.len(), 10);
        assert_eq!(
            listing.flows[0].id.as_str(),
            format!("B2C_1_a{SMALL_RANGE:05}")
        );
        assert_eq!(s.count(Some(&filter)), SMALL_RANGE + 10);
    }
}
