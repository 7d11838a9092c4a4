//! Commands (what a client asks), events (what happened) and the two pure functions between
//! them: `decide` turns a command and the current state into an event or a refusal, `evolve`
//! applies an event. Live requests, start-up recovery and offline replay all use these two.

use super::flow::{UserFlow, UserFlowId};
use super::state::{FlowLookup, UserFlows};

/// The `event_type` written to disk for [`UserFlowEvent::Created`]. Never a Rust type name.
pub const USER_FLOW_CREATED: &str = "UserFlowCreated";
/// The `event_type` written to disk for [`UserFlowEvent::Deleted`].
pub const USER_FLOW_DELETED: &str = "UserFlowDeleted";

/// Create a user flow (already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateUserFlow {
    pub flow: UserFlow,
}

/// Delete the user flow whose stored id matches `id`, ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUserFlow {
    /// The id as the client wrote it, for the not-found message.
    pub id: String,
}

/// Everything that can change a tenant's flows.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create(CreateUserFlow),
    Delete(DeleteUserFlow),
}

/// A fact in a tenant's log.
#[derive(Debug, Clone, PartialEq)]
pub enum UserFlowEvent {
    /// The flow exactly as it was answered: prefixed id, parsed version.
    Created(UserFlow),
    /// The flow with this stored id is gone.
    Deleted { id: UserFlowId },
}

impl UserFlowEvent {
    /// The fixed name stored in the envelope.
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => USER_FLOW_CREATED,
            Self::Deleted { .. } => USER_FLOW_DELETED,
        }
    }

    /// The stored id of the flow the event is about.
    #[must_use]
    pub const fn flow_id(&self) -> &UserFlowId {
        match self {
            Self::Created(flow) => &flow.id,
            Self::Deleted { id } => id,
        }
    }
}

/// A command the state refuses. HTTP maps `AlreadyExists` to 409 `nameAlreadyExists` and
/// `NotFound` to 404 `Request_ResourceNotFound`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("A user flow with the id '{id}' already exists.")]
    AlreadyExists { id: String },
    #[error(
        "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
    )]
    NotFound { id: String },
}

/// Decides what a command means against the current state (which includes changes still
/// waiting for the disk, so two creates of one id give one event and one refusal).
pub fn decide(state: &impl FlowLookup, command: Command) -> Result<UserFlowEvent, DomainError> {
    match command {
        Command::Create(create) => {
            if state.find(create.flow.id.as_str()).is_some() {
                return Err(DomainError::AlreadyExists {
                    id: create.flow.id.to_string(),
                });
            }
            Ok(UserFlowEvent::Created(create.flow))
        }
        Command::Delete(delete) => match state.find(&delete.id) {
            Some(existing) => Ok(UserFlowEvent::Deleted {
                id: existing.id.clone(),
            }),
            None => Err(DomainError::NotFound { id: delete.id }),
        },
    }
}

/// Applies one event. Total: events are facts, so it never fails.
pub fn evolve(state: &mut UserFlows, event: &UserFlowEvent) {
    match event {
        UserFlowEvent::Created(flow) => state.insert(flow.clone()),
        UserFlowEvent::Deleted { id } => state.remove(id.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str) -> UserFlow {
        UserFlow::sample(id)
    }

    fn given(events: &[UserFlowEvent]) -> UserFlows {
        let mut state = UserFlows::default();
        for e in events {
            evolve(&mut state, e);
        }
        state
    }

    fn create(id: &str) -> Command {
        Command::Create(CreateUserFlow { flow: flow(id) })
    }

    fn delete(id: &str) -> Command {
        Command::Delete(DeleteUserFlow { id: id.to_owned() })
    }

    #[test]
    fn create_on_empty_state_records_the_flow() {
        let event = decide(&given(&[]), create("Pol1")).unwrap();
        assert_eq!(event, UserFlowEvent::Created(flow("B2C_1_Pol1")));
        assert_eq!(event.event_type(), "UserFlowCreated");
    }

    #[test]
    fn create_of_an_existing_id_in_any_case_is_refused() {
        let state = given(&[UserFlowEvent::Created(flow("Pol1"))]);
        assert_eq!(
            decide(&state, create("b2c_1_POL1")),
            Err(DomainError::AlreadyExists {
                id: "b2c_1_POL1".into()
            })
        );
    }

    #[test]
    fn a_deleted_id_can_be_created_again() {
        let state = given(&[
            UserFlowEvent::Created(flow("Pol1")),
            UserFlowEvent::Deleted {
                id: UserFlowId::parse("Pol1").unwrap(),
            },
        ]);
        assert!(decide(&state, create("Pol1")).is_ok());
    }

    #[test]
    fn delete_names_the_stored_id_whatever_case_was_asked() {
        let state = given(&[UserFlowEvent::Created(flow("B2C_1_MiXed"))]);
        let event = decide(&state, delete("b2c_1_mixed")).unwrap();
        assert_eq!(
            event,
            UserFlowEvent::Deleted {
                id: UserFlowId::parse("B2C_1_MiXed").unwrap()
            }
        );
        assert_eq!(event.event_type(), "UserFlowDeleted");
    }

    #[test]
    fn delete_of_a_missing_id_is_not_found() {
        assert_eq!(
            decide(&given(&[]), delete("B2C_1_x")),
            Err(DomainError::NotFound {
                id: "B2C_1_x".into()
            })
        );
    }

    #[test]
    fn evolve_keeps_creation_order_and_forgets_deleted_flows() {
        let state = given(&[
            UserFlowEvent::Created(flow("a")),
            UserFlowEvent::Created(flow("b")),
            UserFlowEvent::Created(flow("c")),
            UserFlowEvent::Deleted {
                id: UserFlowId::parse("b").unwrap(),
            },
        ]);
        let ids: Vec<&str> = state.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["B2C_1_a", "B2C_1_c"]);
        assert_eq!(state.len(), 2);
    }
}
