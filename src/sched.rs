//! The CPU scheduling policy of the server's threads: Linux `SCHED_BATCH` by default, set on
//! the main thread before any other starts, so that every thread inherits it (ADR 0006).

use clap::ValueEnum;

/// How the kernel schedules the server's threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CpuScheduling {
    /// `SCHED_BATCH`: a woken thread does not preempt a running one, so the HTTP workers, the
    /// tenant actors and a load generator sharing the cores hand work over in batches, with
    /// far fewer context switches.
    Batch,
    /// The operating system's default (`SCHED_OTHER`).
    Normal,
}

/// Sets `policy` for the calling thread and so for every thread it starts afterwards. Fails
/// where the kernel refuses (a sandbox), or with `Unsupported` off Linux for `Batch`.
pub fn apply_to_new_threads(policy: CpuScheduling) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        set_this_thread(match policy {
            CpuScheduling::Batch => libc::SCHED_BATCH,
            CpuScheduling::Normal => libc::SCHED_OTHER,
        })
    }
    #[cfg(not(target_os = "linux"))]
    match policy {
        CpuScheduling::Normal => Ok(()),
        CpuScheduling::Batch => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "SCHED_BATCH exists on Linux only",
        )),
    }
}

/// `sched_setscheduler(0, policy, {0})`: a normal policy (static priority 0) for this thread;
/// its nice value is left as it is.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "the one system call std has no wrapper for: setting a thread's scheduling policy"
)]
fn set_this_thread(policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, which only reads it;
    // pid 0 names the calling thread.
    let result = unsafe { libc::sched_setscheduler(0, policy, &raw const param) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
