//! A full disk, for real: the real binary over a data directory on a small tmpfs (mounting
//! needs root, as in CI; elsewhere the test says it skipped, unless `USERFLOWS_REQUIRE_TMPFS`
//! is set). Writes past the free-space reserve get 507 with the Graph envelope and store
//! nothing, reads go on, readiness names the condition, and writes resume by themselves once
//! space is free; a restart finds exactly the acknowledged creates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::crash::{post, start_binary};
use crate::helpers::{token_for, TENANT};

/// A tmpfs mounted on a temp directory for as long as it lives.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (the test skips) where mounting is not allowed.
    fn mount(size_mib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self { dir });
        }
        assert!(
            std::env::var_os("USERFLOWS_REQUIRE_TMPFS").is_none(),
            "USERFLOWS_REQUIRE_TMPFS is set but a tmpfs cannot be mounted (run as root)"
        );
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        let stat = rustix::fs::statvfs(self.path()).unwrap();
        stat.f_bavail * stat.f_frsize
    }

    /// Writes a file that leaves `leave` bytes free.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while self.free() > leave {
            let n = (self.free() - leave).min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n]).unwrap();
            file.sync_all().unwrap();
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// What `base` answers to `GET path`: status and JSON body.
fn get(agent: &ureq::Agent, base: &str, path: &str, token: &str) -> (u16, Value) {
    let answer = agent
        .get(&format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match answer {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = response.status();
    let body = response.into_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Four writers create flows until the first 507; returns the acknowledged ids and the
/// refused ones. Any status but 201 or 507 fails the test.
fn create_until_refused(base: &str, token: &str) -> (Vec<String>, Vec<String>) {
    let acknowledged = Mutex::new(Vec::new());
    let refused = Mutex::new(Vec::new());
    let full = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let (acknowledged, refused, full, sent) = (&acknowledged, &refused, &full, &sent);
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                for i in 0.. {
                    if full.load(Ordering::Relaxed) {
                        return;
                    }
                    assert!(
                        sent.fetch_add(1, Ordering::Relaxed) < 100_000,
                        "the disk never filled"
                    );
                    let id = format!("w{writer}-{i}");
                    match post(&agent, base, token, &id) {
                        Ok(201) => acknowledged.lock().unwrap().push(format!("B2C_1_{id}")),
                        Ok(507) => {
                            refused.lock().unwrap().push(format!("B2C_1_{id}"));
                            full.store(true, Ordering::Relaxed);
                        }
                        other => panic!("{id}: {other:?}"),
                    }
                }
            });
        }
    });
    (
        acknowledged.into_inner().unwrap(),
        refused.into_inner().unwrap(),
    )
}

fn status_of(agent: &ureq::Agent, base: &str, token: &str, id: &str) -> u16 {
    get(
        agent,
        base,
        &format!("/beta/identity/userFlows/{id}"),
        token,
    )
    .0
}

#[test]
fn a_full_disk_answers_507_stores_nothing_and_writes_resume_once_space_is_free() {
    let Some(disk) = Tmpfs::mount(48) else {
        return;
    };
    let data = disk.path().join("data");
    let args = ["--disk-reserve-mib", "8"];
    let token = token_for(TENANT);
    let agent = ureq::AgentBuilder::new().build();
    let (child, base) = start_binary(&data, &args);
    // The emulator's own writes take the disk down to its reserve.
    let filler = disk.fill_leaving(8 * 1024 * 1024 + 1024 * 1024);
    let (acknowledged, refused) = create_until_refused(&base, &token);
    eprintln!(
        "{} creates acknowledged, {} refused, {} bytes free",
        acknowledged.len(),
        refused.len(),
        disk.free()
    );
    assert!(!acknowledged.is_empty() && !refused.is_empty());

    let answer = agent
        .post(&format!("{base}/beta/identity/userFlows"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&crate::helpers::flow("late").to_string());
    let Err(ureq::Error::Status(507, response)) = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(response.header("Retry-After"), Some("5"));
    let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "insufficientStorage");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    // Reads go on; readiness stays 200 and says why nothing can be written.
    let (status, count) = get(&agent, &base, "/beta/identity/userFlows/$count", &token);
    assert_eq!(status, 200);
    assert_eq!(count.as_u64(), Some(acknowledged.len() as u64));
    let (status, ready) = get(&agent, &base, "/_emulator/ready", &token);
    assert_eq!(status, 200);
    assert_eq!(ready["writable"], false);
    assert!(
        ready["storage"].as_str().unwrap().contains("reserve"),
        "{ready}"
    );

    // Space comes back: writes resume, no restart.
    std::fs::remove_file(filler).unwrap();
    let mut resumed = None;
    for attempt in 0..100 {
        if post(&agent, &base, &token, &format!("after-{attempt}")) == Ok(201) {
            resumed = Some(format!("B2C_1_after-{attempt}"));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let resumed = resumed.expect("writes resume once space is free");
    assert_eq!(
        get(&agent, &base, "/_emulator/ready", &token).1["writable"],
        true
    );
    stop(child);

    // Exactly the acknowledged creates are there after a restart.
    let (child, base) = start_binary(&data, &args);
    for id in acknowledged.iter().chain([&resumed]) {
        assert_eq!(status_of(&agent, &base, &token, id), 200, "{id} lost");
    }
    for id in &refused {
        assert_eq!(
            status_of(&agent, &base, &token, id),
            404,
            "{id} was refused"
        );
    }
    let (_, count) = get(&agent, &base, "/beta/identity/userFlows/$count", &token);
    assert_eq!(count.as_u64(), Some(acknowledged.len() as u64 + 1));
    stop(child);
}

/// With the guard off (`--disk-reserve-mib 0`, or another program filling the disk faster
/// than the guard reads it), sled's own write meets the full disk, and sled cannot write again
/// until it is reopened: writes stay 507 and readiness names the tenant until a restart. A
/// restart finds every acknowledged create; a create refused because its flush failed may be
/// there too, as sled may have written it before failing, and nothing else is.
#[test]
fn without_a_reserve_a_full_disk_refuses_writes_until_restart_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount(32) else {
        return;
    };
    let data = disk.path().join("data");
    let args = ["--disk-reserve-mib", "0"];
    let token = token_for(TENANT);
    let agent = ureq::AgentBuilder::new().build();
    let (child, base) = start_binary(&data, &args);
    let filler = disk.fill_leaving(1024 * 1024);
    let (acknowledged, refused) = create_until_refused(&base, &token);
    assert!(!acknowledged.is_empty() && !refused.is_empty());
    std::fs::remove_file(filler).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(post(&agent, &base, &token, "later"), Ok(507));
    let (status, ready) = get(&agent, &base, "/_emulator/ready", &token);
    assert_eq!(status, 200);
    assert_eq!(ready["writable"], false);
    let reason = ready["cannotWrite"][TENANT].as_str().unwrap();
    assert!(reason.contains("restart"), "{reason}");
    let (status, _) = get(&agent, &base, "/beta/identity/userFlows/$count", &token);
    assert_eq!(status, 200, "reads go on");
    stop(child);

    let (child, base) = start_binary(&data, &args);
    for id in &acknowledged {
        assert_eq!(status_of(&agent, &base, &token, id), 200, "{id} lost");
    }
    let back = refused
        .iter()
        .filter(|id| status_of(&agent, &base, &token, id) == 200)
        .count();
    let (_, count) = get(&agent, &base, "/beta/identity/userFlows/$count", &token);
    assert_eq!(count.as_u64(), Some((acknowledged.len() + back) as u64));
    assert_eq!(post(&agent, &base, &token, "after-restart"), Ok(201));
    stop(child);
}

#[test]
fn an_export_to_a_full_disk_fails_naming_the_file_and_leaves_no_part_of_it() {
    let Some(disk) = Tmpfs::mount(1) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_userflows-emulator");
    let imported = Command::new(bin)
        .args(["log", "import", "--data-dir"])
        .arg(data.path())
        .arg(crate::log_cli::fixture("v1-two-tenants.ndjson"))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    disk.fill_leaving(0);
    let output = disk.path().join("all.ndjson");
    let exported = Command::new(bin)
        .args(["log", "export", "--data-dir"])
        .arg(data.path())
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(exported.status.code(), Some(1), "{exported:?}");
    let stderr = String::from_utf8_lossy(&exported.stderr);
    let partial = disk.path().join("all.ndjson.partial");
    assert!(
        stderr.contains(&format!("cannot write {}", partial.display()))
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(!output.exists() && !partial.exists(), "{stderr}");
}
