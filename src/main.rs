//! The `userflows-emulator` binary: a thin shell over [`userflows_emulator::cli`].

/// mimalloc: the request path allocates many small short-lived buffers, which it serves
/// measurably faster than the system allocator (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    userflows_emulator::cli::run()
}
