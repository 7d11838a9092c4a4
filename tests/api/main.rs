//! The integration test binary: real servers on port 0 over real sled directories in temp
//! dirs, driven over HTTP like a client would.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers panic on purpose: a panic is a failed test with its location"
)]

mod admin;
mod auth;
mod batch;
mod cluster;
mod crash;
mod create;
mod disk_full;
mod faults;
mod fuzz_corpus;

mod helpers;
mod identity;
mod journal;
mod log_cli;
mod query;
mod read;
mod recovery;
mod restart;
mod routes;
mod scheduling;
mod sdk_example;
mod snapshots;
mod tenants;
mod throttle;
