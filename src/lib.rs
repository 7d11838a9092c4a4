//! userflows-emulator: a local, durable, high-throughput emulator of Microsoft Graph's
//! `/beta/identity/userFlows` API.
//!
//! How a request travels through the modules (docs/architecture.md has the whole picture and
//! the invariants):
//!
//! - [`http`] routes the request, finds the tenant from the bearer token's `tid`
//!   ([`http::auth`]), turns the body into a [`domain`] command ([`http::body`]) and sends it
//!   to the tenant's actor through the [`tenant::TenantRegistry`]; its `admin` routes serve
//!   `/_emulator/…`.
//! - [`tenant`] runs one actor per tenant: it `decide`s against the state (plus changes still
//!   waiting for the disk), encodes the events of one pass over its mailbox ([`codec`]),
//!   appends them to the tenant's stream in [`store`] with one write, waits for the group
//!   commit, `evolve`s its state and replies.
//! - [`store`] keeps every tenant's records in sled (or memory), as bytes; one flush thread
//!   makes many events durable at once. [`codec`] says what those bytes mean.
//! - [`chaos`] decides which requests are throttled, before they reach a tenant.
//! - [`app`] wires one server run from [`config::Settings`]; [`cli`] is the command line;
//!   [`telemetry`] sets up logging; `metrics` counts requests and `sched` sets the CPU
//!   scheduling policy.
//!
//! On start every tenant is rebuilt from its log with the same `evolve` the live path uses.
//! A module uses only the modules below it in docs/architecture.md's table; the `layering`
//! test checks it.

pub mod app;
pub mod chaos;
pub mod cli;
pub mod codec;
pub mod config;
pub mod domain;
pub mod http;
pub mod identity;
pub mod journal;
pub(crate) mod json_text;
#[cfg(test)]
mod layering;
pub(crate) mod metrics;
pub(crate) mod sched;
pub mod store;
pub mod telemetry;
pub mod tenant;
