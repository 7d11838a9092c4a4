//! Injected trouble a client must survive: the throttling buckets ([`Throttle`]). Given a
//! request's tenant and app, it decides admit or throttle; it knows nothing of tenants'
//! state, storage or HTTP.

mod throttle;

pub use throttle::{Limits, Throttle, Throttled, GRAPH_APP_RPM, GRAPH_TENANT_RPM};
