//! userflows-emulator: a local, durable, high-throughput emulator of Microsoft Graph's
//! `/beta/identity/userFlows` API.
//!
//! How a request travels through the modules:
//!
//! - [`http`] parses the request, finds the tenant from the bearer token's `tid`
//!   ([`http::auth`]), validates the body with the [`domain`] rules, and sends a command to
//!   the tenant's actor through the [`tenant::TenantRegistry`].
//! - [`tenant`] runs one actor per tenant: it `decide`s against the state (plus changes still
//!   waiting for the disk), appends the envelopes of one pass over its mailbox to the tenant's
//!   stream in [`store`] with one write, waits for the group commit, `evolve`s its state and
//!   replies.
//! - [`store`] keeps every tenant's events in sled (or memory); one flush thread makes many
//!   events durable at once.
//! - [`admin`] serves `/_emulator/…` (with counters from [`metrics`]); [`cli`] is the command line; [`app`] wires one server
//!   run from [`config::Settings`]; [`telemetry`] sets up logging.
//!
//! On start every tenant is rebuilt from its log with the same `evolve` the live path uses.

pub mod app;
pub mod cli;
pub mod codec;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod sched;
pub mod store;
pub mod telemetry;
pub mod tenant;
