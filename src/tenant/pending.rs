//! Changes decided but not yet durable. New commands are decided against the durable state
//! seen through these pending changes, so a tenant keeps deciding while the disk catches up and
//! two creates of one id still give one event.

use std::collections::HashMap;

use crate::domain::{FlowKey, FlowLookup, UserFlow, UserFlowEvent, UserFlows};

/// The latest undurable change per flow key, with the seq of the event that made it.
#[derive(Debug, Default)]
pub(super) struct Pending {
    changes: HashMap<FlowKey, (u64, Option<UserFlow>)>,
}

impl Pending {
    /// Records an appended, not yet durable, event.
    pub(super) fn record(&mut self, seq: u64, event: &UserFlowEvent) {
        let (key, change) = match event {
            UserFlowEvent::Created(flow) => (flow.id.key(), Some(flow.clone())),
            UserFlowEvent::Deleted { id } => (id.key(), None),
        };
        self.changes.insert(key, (seq, change));
    }

    /// Forgets the change of event `seq` once it is durable (and so applied to the state),
    /// unless a later pending event changed the same flow again.
    pub(super) fn settle(&mut self, seq: u64, event: &UserFlowEvent) {
        let key = match event {
            UserFlowEvent::Created(flow) => flow.id.key(),
            UserFlowEvent::Deleted { id } => id.key(),
        };
        if self.changes.get(&key).is_some_and(|(s, _)| *s == seq) {
            self.changes.remove(&key);
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
    fn find(&self, key: &FlowKey) -> Option<&UserFlow> {
        match self.pending.changes.get(key) {
            Some((_, change)) => change.as_ref(),
            None => self.flows.find(key),
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
            &create("a"),
        )
        .unwrap();
        pending.record(1, &first);
        let view = WithPending {
            flows: &durable,
            pending: &pending,
        };
        assert!(matches!(
            decide(&view, &create("A")),
            Err(DomainError::AlreadyExists { .. })
        ));
        let delete = Command::Delete(DeleteUserFlow {
            id: "b2c_1_A".into(),
        });
        assert!(decide(&view, &delete).is_ok());
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
            &create("a"),
        )
        .unwrap();
        pending.record(1, &created);
        let deleted = decide(
            &WithPending {
                flows: &durable,
                pending: &pending,
            },
            &Command::Delete(DeleteUserFlow {
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
        assert!(view.find(&FlowKey::of("b2c_1_a")).is_none());
        evolve(&mut durable, &deleted);
        pending.settle(2, &deleted);
        assert!(pending.changes.is_empty());
    }
}
