//! The integration test binary: real servers on port 0 over real sled directories in temp
//! dirs, driven over HTTP like a client would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod admin;
mod auth;
mod crash;
mod create;
mod helpers;
mod log_cli;
mod read;
mod recovery;
mod restart;
mod routes;
mod scheduling;
mod snapshots;
