//! Injected trouble a client must survive: the throttling buckets ([`Throttle`]) and the fault
//! rules ([`Faults`]). Given a request's operation, tenant and app, they decide admit, throttle
//! or fault; they know nothing of tenants' state, storage or HTTP.

mod faults;
mod throttle;

pub use faults::{
    Effect, Failure, Fault, Faults, Injected, InvalidRules, Latency, Match, Operation, Rule,
    RuleSet, Transport,
};
pub use throttle::{Limits, Throttle, Throttled, GRAPH_APP_RPM, GRAPH_TENANT_RPM};
