//! The real binary runs every thread under the CPU scheduling policy it was given
//! (`SCHED_BATCH` by default), read back from `/proc`.
#![cfg(target_os = "linux")]

use std::process::Child;

use crate::crash::start_binary;
use crate::helpers::{flow, token_for, TENANT};

/// `SCHED_OTHER` and `SCHED_BATCH` in `/proc/<pid>/task/<tid>/stat`.
const OTHER: u32 = 0;
const BATCH: u32 = 3;

/// The scheduling policy of each of the process's threads, by thread name.
fn policies(child: &Child) -> Vec<(String, u32)> {
    let tasks = format!("/proc/{}/task", child.id());
    std::fs::read_dir(tasks)
        .unwrap()
        .map(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // `pid (comm) state …`: the comm may hold spaces, so split after its last ')'.
            let (head, rest) = stat.rsplit_once(')').unwrap();
            let name = head.split_once('(').unwrap().1.to_owned();
            // Field 41 of the whole line (`policy`) is the 39th after the comm.
            let policy = rest.split_whitespace().nth(38).unwrap().parse().unwrap();
            (name, policy)
        })
        .collect()
}

/// Starts the binary with `extra`, writes once (so the storage and flush threads exist) and
/// returns every thread's policy.
fn policies_under_load(extra: &[&str]) -> Vec<(String, u32)> {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start_binary(dir.path(), extra);
    let status = ureq::post(&format!("{base}/beta/identity/userFlows"))
        .set("Authorization", &format!("Bearer {}", token_for(TENANT)))
        .send_json(flow("B2C_1_sched"))
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let seen = policies(&child);
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

#[test]
fn every_thread_runs_under_sched_batch_by_default() {
    let seen = policies_under_load(&[]);
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen.iter().all(|(_, p)| *p == BATCH), "{seen:?}");
    assert!(
        seen.iter().any(|(name, _)| name.starts_with("sled-io")),
        "{seen:?}"
    );
}

#[test]
fn cpu_scheduling_normal_leaves_the_default_policy() {
    let seen = policies_under_load(&["--cpu-scheduling", "normal"]);
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen.iter().all(|(_, p)| *p == OTHER), "{seen:?}");
}
