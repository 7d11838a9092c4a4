//! The `userflows-emulator` binary: a thin shell over [`userflows_emulator::cli`].

fn main() -> anyhow::Result<()> {
    userflows_emulator::cli::run()
}
