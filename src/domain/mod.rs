//! The domain: user flows, the commands that change them, the events that record a change,
//! and the pure `decide`/`evolve` functions. It owns every rule a flow's values must meet
//! (docs/reference.md §2) and knows nothing of HTTP, actix, sled, the clock or randomness.

mod creation;
mod event;
mod filter;
mod flow;
mod id_index;
mod order;
mod state;

pub use event::{
    decide, evolve, Command, CreateUserFlow, DeleteUserFlow, DomainError, UserFlowEvent,
    USER_FLOW_CREATED, USER_FLOW_DELETED,
};
pub use filter::{Comparison, Equality, Filter};
pub use flow::{
    key_hash, FlowKey, UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion, ID_PREFIX,
};
pub use order::{compare_ids, Cursor, OrderKey, Property, SortValues};
pub use state::{FlowLookup, FlowsSnapshot, ListRequest, Listing, UserFlows};
