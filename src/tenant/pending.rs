//! Changes decided but not yet durable. New commands are decided against the durable state
//! seen through these pending changes, so a tenant keeps deciding while the disk catches up and
//! two creates of one id still give one event.

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::domain::{key_hash, FlowLookup, UserFlow, UserFlowEvent, UserFlowId, UserFlows};

/// The latest undurable change per flow, with the seq of the event that made it. Found by the
/// case-insensitive hash of the id, so neither recording, settling nor a lookup builds a key.
#[derive(Debug, Default)]
pub(super) struct Pending {
    changes: HashTable<Change>,
    hasher: DefaultHashBuilder,
}

#[derive(Debug)]
struct Change {
    hash: u64,
    seq: u64,
    latest: Latest,
}

/// What the latest pending event did to a flow.
#[derive(Debug)]
enum Latest {
    Created(UserFlow),
    Deleted(UserFlowId),
}

impl Change {
    fn is(&self, hash: u64, id: &str) -> bool {
        let own = match &self.latest {
            Latest::Created(flow) => &flow.id,
            Latest::Deleted(deleted) => deleted,
        };
        self.hash == hash && own.as_str().eq_ignore_ascii_case(id)
    }
}

impl Pending {
    /// Records an appended, not yet durable, event.
    pub(super) fn record(&mut self, seq: u64, event: &UserFlowEvent) {
        let latest = match event {
            UserFlowEvent::Created(flow) => Latest::Created(flow.clone()),
            UserFlowEvent::Deleted { id } => Latest::Deleted(id.clone()),
        };
        let id = event.flow_id().as_str();
        let hash = key_hash(&self.hasher, id);
        let change = Change { hash, seq, latest };
        match self.changes.find_mut(hash, |c| c.is(hash, id)) {
            Some(earlier) => *earlier = change,
            None => {
                self.changes.insert_unique(hash, change, |c| c.hash);
            }
        }
    }

    /// Forgets the change of event `seq` once it is durable (and so applied to the state),
    /// unless a later pending event changed the same flow again.
    pub(super) fn settle(&mut self, seq: u64, event: &UserFlowEvent) {
        let id = event.flow_id().as_str();
        let hash = key_hash(&self.hasher, id);
        if let Ok(entry) = self.changes.find_entry(hash, |c| c.is(hash, id)) {
            if entry.get().seq == seq {
                entry.remove();
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.changes.clear();
    }
}

/// The durable state as `decide` must see it: with pending changes on top.
pub(super) struct WithPending<'a> {
    pub(super) flows: &'a UserFlows,
    pub(super) pending: &'a Pending,
}

impl FlowLookup for WithPending<'_> {
    fn find(&self, id: &str) -> Option<&UserFlow> {
        let hash = key_hash(&self.pending.hasher, id);
        match self.pending.changes.find(hash, |c| c.is(hash, id)) {
            Some(change) => match &change.latest {
                Latest::Created(flow) => Some(flow),
                Latest::Deleted(_) => None,
            },
            None => self.flows.find(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decide, evolve, Command, CreateUserFlow, DeleteUserFlow, DomainError};

    fn create(id: &str) -> Command {
        Command::Create(CreateUserFlow {
            flow: UserFlow::sample(id),
        })
    }

    #[test]
    fn a_pending_create_refuses_a_second_create_and_allows_its_delete() {
        let durable = UserFlows::default();
        let mut pending = Pending::default();
        let first = decide(
            &WithPending {
                flows: &durable,
                pending: &pending,
            },
            create("a"),
        )
        .unwrap();
        pending.record(1, &first);
        let view = WithPending {
            flows: &durable,
            pending: &pending,
        };
        assert!(matches!(
            decide(&view, create("A")),
            Err(DomainError::AlreadyExists { .. })
        ));
        let delete = Command::Delete(DeleteUserFlow {
            id: "b2c_1_A".into(),
        });
        assert!(decide(&view, delete).is_ok());
    }

    #[test]
    fn settling_keeps_a_later_change_of_the_same_flow() {
        let mut durable = UserFlows::default();
        let mut pending = Pending::default();
        let created = decide(
            &WithPending {
                flows: &durable,
                pending: &pending,
            },
            create("a"),
        )
        .unwrap();
        pending.record(1, &created);
        let deleted = decide(
            &WithPending {
                flows: &durable,
                pending: &pending,
            },
            Command::Delete(DeleteUserFlow {
                id: "B2C_1_a".into(),
            }),
        )
        .unwrap();
        pending.record(2, &deleted);
        // seq 1 becomes durable: the pending delete must still hide the flow.
        evolve(&mut durable, &created);
        pending.settle(1, &created);
        let view = WithPending {
            flows: &durable,
            pending: &pending,
        };
        assert!(view.find("b2c_1_a").is_none());
        evolve(&mut durable, &deleted);
        pending.settle(2, &deleted);
        assert!(pending.changes.is_empty());
    }
}
