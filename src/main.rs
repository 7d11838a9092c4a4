//! The `userflows-emulator` binary: a thin shell over [`userflows_emulator::cli`].

use std::process::ExitCode;

/// mimalloc: the request path allocates many small short-lived buffers, which it serves
/// measurably faster than the system allocator (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A failure is one line on stderr, the error and its causes, and exit status 1: a user's
/// mistake is not a crash, so no backtrace even when `RUST_BACKTRACE` is set.
fn main() -> ExitCode {
    match userflows_emulator::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
