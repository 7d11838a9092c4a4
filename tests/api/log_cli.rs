//! The offline `log` commands, run as the real binary on directories a real server wrote (then
//! stopped) or frozen fixtures were imported into: import, events, tenants, replay, verify,
//! export, and their refusals (broken files, locked or missing directories).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use userflows_emulator::codec::decode_json;
use userflows_emulator::config::{Durability, Storage};
use userflows_emulator::domain::UserFlowEvent;

use crate::helpers::{flow, spawn_app, spawn_app_with, stored_events, token_for, TestApp};
use crate::helpers::{RawEvents, OTHER_TENANT, TENANT};

/// The tenants of `v1-two-tenants.ndjson`.
const V1_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const V1_OTHER: &str = "contoso.onmicrosoft.com";
/// The tenants of every `broken-*.ndjson`.
const HEALTHY: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BROKEN: &str = "bbbbbbbb-0000-4000-8000-000000000002";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    fn failed(self) -> Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure: {self:#?}"
        );
        self
    }

    fn stderr_names(&self, needles: &[&str]) {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}: {}",
                self.stderr
            );
        }
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// `userflows-emulator log <args>`.
fn log(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
        .arg("log")
        .args(args)
        .env_remove("USERFLOWS_DATA_DIR")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The `value` of `log replay`, as ids.
fn replayed_ids(dir: &Path, tenant: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["replay", "--data-dir", text(dir), "--tenant", tenant];
    args.extend_from_slice(extra);
    let body: Value = serde_json::from_str(&log(&args).ok().stdout).unwrap();
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The seqs of `log events --format ndjson` with `extra` options.
fn event_seqs(dir: &Path, tenant: &str, extra: &[&str]) -> Vec<u64> {
    let mut args = vec![
        "events",
        "--data-dir",
        text(dir),
        "--tenant",
        tenant,
        "--format",
        "ndjson",
    ];
    args.extend_from_slice(extra);
    log(&args)
        .ok()
        .lines()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// The fixture's lines ordered as an export orders them: by tenant, then seq.
fn export_order(file: &str) -> Vec<String> {
    let content = std::fs::read_to_string(fixture(file)).unwrap();
    let mut lines: Vec<(String, u64, String)> = content
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let tenant = v["tenant_id"].as_str().unwrap().to_owned();
            (tenant, v["seq"].as_u64().unwrap(), l.to_owned())
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, _, l)| l).collect()
}

/// A fresh temp dir, and the fixture imported into `<tmp>/imported` (created by the import).
fn imported_v1() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imported");
    let run = log(&[
        "import",
        "--data-dir",
        text(&dir),
        text(&fixture("v1-two-tenants.ndjson")),
    ])
    .ok();
    assert!(
        run.stderr.contains("imported 8 events of 2 tenants"),
        "{run:?}"
    );
    (tmp, dir)
}

/// A server over a directory holding the v1 fixture, as `V1_TENANT`, checked to serve the
/// fixture's flows.
fn serve_v1(dir: &Path) -> TestApp {
    let mut app = serve_dir(dir);
    app.token = token_for(V1_TENANT);
    assert_eq!(
        app.list_all(""),
        vec![
            "B2C_1_PasswordReset",
            "B2C_1_ProfileEdit",
            "B2C_1_SignUpSignIn"
        ]
    );
    app
}

/// A server over an existing directory.
fn serve_dir(dir: &Path) -> TestApp {
    let dir = dir.to_owned();
    spawn_app_with(move |s| {
        s.storage = Storage::Disk {
            dir,
            durability: Durability::Flush,
        };
    })
}

fn damage(dir: &Path, tenant: &str, change: impl FnOnce(&RawEvents)) {
    change(&RawEvents::open(dir, tenant));
}

#[test]
fn the_v1_fixture_is_what_the_current_encoder_writes() {
    let content = std::fs::read_to_string(fixture("v1-two-tenants.ndjson")).unwrap();
    for line in content.lines() {
        let stored = decode_json(line.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&stored.envelope).unwrap(), line);
        let payload = match &stored.event {
            UserFlowEvent::Created(flow) => serde_json::to_string(flow).unwrap(),
            UserFlowEvent::Deleted { id } => json!({ "id": id }).to_string(),
        };
        assert_eq!(payload, stored.envelope.payload.get());
    }
}

#[test]
fn an_imported_v1_export_replays_exports_byte_for_byte_and_serves() {
    let (tmp, dir) = imported_v1();

    let run = log(&["replay", "--data-dir", text(&dir), "--tenant", V1_TENANT]).ok();
    let body: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        body,
        json!({"value": [
            {"id": "B2C_1_PasswordReset", "userFlowType": "passwordReset", "userFlowTypeVersion": 1.1},
            {"id": "B2C_1_ProfileEdit", "userFlowType": "profileUpdate", "userFlowTypeVersion": 1},
            {"id": "B2C_1_SignUpSignIn", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1},
        ]})
    );
    assert!(
        run.stdout.contains("\"userFlowTypeVersion\": 1.1"),
        "{}",
        run.stdout
    );
    assert_eq!(replayed_ids(&dir, V1_OTHER, &[]), vec!["B2C_1_signin"]);

    let expected = export_order("v1-two-tenants.ndjson");
    assert_eq!(
        log(&["export", "--data-dir", text(&dir)]).ok().lines(),
        expected
    );
    let file = tmp.path().join("out.ndjson");
    log(&["export", "--data-dir", text(&dir), "--output", text(&file)]).ok();
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    assert!(!tmp.path().join("out.ndjson.partial").exists());
    let one = log(&["export", "--data-dir", text(&dir), "--tenant", V1_OTHER]).ok();
    assert_eq!(one.lines().len(), 3);

    let mut app = serve_v1(&dir);
    assert_eq!(
        app.get("B2C_1_PasswordReset").json()["userFlowTypeVersion"],
        json!(1.1)
    );
    assert_eq!(app.create(&flow("PasswordReset")).status, 409);
    assert_eq!(app.create(&flow("New")).status, 201);
    app.token = token_for(V1_OTHER);
    assert_eq!(app.get("b2c_1_legacy").status, 404);
    app.stop();
    assert_eq!(event_seqs(&dir, V1_TENANT, &["--from", "6"]), vec![6]);
}

/// The first byte of every compact record (docs/adr/0005); JSON records start with `{`.
const COMPACT_MARKER: u8 = 0xFB;
/// The first byte of a stored value holding several records.
const BATCH_MARKER: u8 = 0xFC;

/// The first byte of each stored value of `tenant`, in key order.
fn stored_first_bytes(dir: &Path, tenant: &str) -> Vec<u8> {
    RawEvents::open(dir, tenant).first_bytes()
}

#[test]
fn imports_are_stored_compact_and_json_records_from_before_still_read() {
    // `log import` keeps each line in the compact form, which exports back byte for byte, and
    // a tenant's lines as one stored value, as a tenant's actor writes them under load.
    let (_tmp, imported) = imported_v1();
    assert_eq!(stored_first_bytes(&imported, V1_TENANT), [BATCH_MARKER]);
    let batch = RawEvents::open(&imported, V1_TENANT).get(1);
    assert!(batch[1] < 0x80, "a one-byte length of the first record");
    assert_eq!(batch[2], COMPACT_MARKER);

    // A directory written before ADR 0005 holds the JSON envelopes themselves.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("json");
    for line in export_order("v1-two-tenants.ndjson") {
        let v: Value = serde_json::from_str(&line).unwrap();
        let events = RawEvents::open(&dir, v["tenant_id"].as_str().unwrap());
        events.insert(v["seq"].as_u64().unwrap(), line.as_bytes());
    }
    assert_eq!(stored_first_bytes(&dir, V1_TENANT), [b'{'; 5]);
    log(&["verify", "--data-dir", text(&dir)]).ok();
    assert_eq!(
        log(&["export", "--data-dir", text(&dir)]).ok().lines(),
        export_order("v1-two-tenants.ndjson")
    );

    // A server recovers from it and appends compact records after the JSON ones.
    let mut app = serve_v1(&dir);
    assert_eq!(app.create(&flow("New")).status, 201);
    app.stop();
    assert_eq!(
        stored_first_bytes(&dir, V1_TENANT),
        [b'{', b'{', b'{', b'{', b'{', COMPACT_MARKER]
    );
    let run = log(&["export", "--data-dir", text(&dir), "--tenant", V1_TENANT]).ok();
    let exported = run.lines();
    assert_eq!(exported[..5], export_order("v1-two-tenants.ndjson")[..5]);
    let new: Value = serde_json::from_str(exported[5]).unwrap();
    assert_eq!(
        (new["seq"].as_u64(), new["tenant_id"].as_str()),
        (Some(6), Some(V1_TENANT))
    );
    assert_eq!(new["payload"]["id"], "B2C_1_New");
}

#[test]
fn broken_files_are_refused_whole_naming_tenant_and_seq_or_line() {
    let mut app = spawn_app();
    assert_eq!(app.create(&flow("kept")).status, 201);
    app.stop();
    let dir = app.data_dir();
    let cases: [(&str, &[&str]); 4] = [
        ("broken-gap.ndjson", &[BROKEN, "seq 4", "line 5", "gap"]),
        (
            "broken-duplicate-seq.ndjson",
            &[BROKEN, "seq 2", "line 5", "duplicate"],
        ),
        ("broken-truncated.ndjson", &["line 5", "cannot be decoded"]),
        (
            "broken-unknown-event-type.ndjson",
            &[BROKEN, "seq 2", "line 4", "UserFlowRenamed"],
        ),
    ];
    let missing = dir.with_file_name("never-created");
    for (file, needles) in cases {
        let run = log(&["import", "--data-dir", text(&dir), text(&fixture(file))]).failed();
        run.stderr_names(needles);
        run.stderr_names(&["nothing was written"]);
        assert_eq!(stored_events(&dir, BROKEN), 0, "{file}");
        assert_eq!(stored_events(&dir, HEALTHY), 0, "{file}: all or nothing");
        assert_eq!(stored_events(&dir, TENANT), 1, "{file}");

        log(&["import", "--data-dir", text(&missing), text(&fixture(file))]).failed();
        assert!(
            !missing.exists(),
            "{file}: a refused import creates nothing"
        );
    }
    let tenants = log(&["tenants", "--data-dir", text(&dir)]).ok();
    assert_eq!(tenants.lines().len(), 2, "header and {TENANT}: {tenants:?}");

    // A tenant that already has events is never appended to.
    let v1 = fixture("v1-two-tenants.ndjson");
    log(&["import", "--data-dir", text(&dir), text(&v1)]).ok();
    let again = log(&["import", "--data-dir", text(&dir), text(&v1)]).failed();
    again.stderr_names(&[V1_TENANT, V1_OTHER, "already has events"]);
    assert_eq!(stored_events(&dir, V1_TENANT), 5);
}

#[test]
fn replay_until_seq_matches_what_the_server_listed_after_each_write() {
    let mut app = spawn_app();
    let mut listed: Vec<Vec<String>> = vec![vec![]];
    let writes: [(&str, &str); 7] = [
        ("create", "a"),
        ("create", "b"),
        ("create", "c"),
        ("delete", "B2C_1_b"),
        ("create", "d"),
        ("delete", "B2C_1_a"),
        ("create", "b"),
    ];
    for (i, (op, id)) in writes.into_iter().enumerate() {
        let answer = match op {
            "create" => app.create(&flow(id)),
            _ => app.delete(id),
        };
        assert!(matches!(answer.status, 201 | 204), "{op} {id}: {answer:?}");
        if i == 2 {
            let other = app.create_as(&token_for(OTHER_TENANT), &flow("theirs"));
            assert_eq!(other.status, 201);
        }
        listed.push(app.list_all(""));
    }
    app.stop();
    let dir = app.data_dir();

    for (seq, state) in listed.iter().enumerate() {
        let until = seq.to_string();
        assert_eq!(
            replayed_ids(&dir, TENANT, &["--until-seq", &until]),
            *state,
            "after seq {seq}"
        );
    }
    assert_eq!(replayed_ids(&dir, TENANT, &[]), listed[7]);
    let past = log(&[
        "replay",
        "--data-dir",
        text(&dir),
        "--tenant",
        TENANT,
        "--until-seq",
        "99",
        "--verbose",
    ])
    .ok();
    past.stderr_names(&[
        "past the log's last seq 7",
        "seq 1 UserFlowCreated B2C_1_a",
        "seq 4 UserFlowDeleted B2C_1_b",
    ]);
    assert_eq!(replayed_ids(&dir, OTHER_TENANT, &[]), vec!["B2C_1_theirs"]);
}

#[test]
fn replay_until_time_includes_events_recorded_at_or_before_it() {
    let (_tmp, dir) = imported_v1();
    let at = |time: &str| replayed_ids(&dir, V1_TENANT, &["--until-time", time]);
    assert!(at("2026-11-20T09:59:59Z").is_empty());
    assert_eq!(at("2026-11-20T10:00:00.123Z"), vec!["B2C_1_SignUpSignIn"]);
    assert_eq!(
        at("2026-11-20T10:00:03.777Z"),
        vec!["B2C_1_PasswordReset", "B2C_1_ProfileEdit"]
    );
    assert_eq!(
        at("2026-11-20 10:00:05"),
        vec!["B2C_1_PasswordReset", "B2C_1_ProfileEdit"]
    );
    assert_eq!(at("2030-01-01T00:00:00Z").len(), 3);
    log(&[
        "replay",
        "--data-dir",
        text(&dir),
        "--tenant",
        V1_TENANT,
        "--until-time",
        "yesterday",
    ])
    .failed()
    .stderr_names(&["RFC 3339"]);
}

#[test]
fn events_show_a_table_the_stored_ndjson_backwards_by_type_and_limited() {
    let (_tmp, dir) = imported_v1();
    let table = log(&["events", "--data-dir", text(&dir), "--tenant", V1_TENANT]).ok();
    let rows = table.lines();
    assert_eq!(rows.len(), 6, "{rows:?}");
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["SEQ", "RECORDED_AT", "EVENT_TYPE", "ID", "REQUEST_ID"]
    );
    let fourth = fixture_line(V1_TENANT, 4);
    let cells: Vec<&str> = rows[4].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "4",
            "2026-11-20T10:00:03.777Z",
            "UserFlowDeleted",
            "B2C_1_SignUpSignIn",
            fourth["request_id"].as_str().unwrap(),
        ]
    );

    let ndjson = log(&[
        "events",
        "--data-dir",
        text(&dir),
        "--tenant",
        V1_TENANT,
        "--format",
        "ndjson",
    ])
    .ok();
    let expected: Vec<String> = export_order("v1-two-tenants.ndjson")
        .into_iter()
        .filter(|l| l.contains(V1_TENANT))
        .collect();
    assert_eq!(ndjson.lines(), expected, "the stored bytes");

    assert_eq!(
        event_seqs(&dir, V1_TENANT, &["--backwards"]),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        event_seqs(
            &dir,
            V1_TENANT,
            &["--backwards", "--from", "3", "--limit", "2"]
        ),
        [3, 2]
    );
    assert_eq!(event_seqs(&dir, V1_TENANT, &["--from", "4"]), [4, 5]);
    assert_eq!(
        event_seqs(&dir, V1_TENANT, &["--type", "UserFlowDeleted"]),
        [4]
    );
    assert_eq!(
        event_seqs(
            &dir,
            V1_TENANT,
            &["--type", "UserFlowCreated", "--backwards", "--limit", "2"]
        ),
        [5, 3]
    );
    assert_eq!(
        event_seqs(&dir, V1_OTHER, &["--limit", "0"]),
        Vec::<u64>::new()
    );

    log(&["events", "--data-dir", text(&dir), "--tenant", "nobody"])
        .failed()
        .stderr_names(&["unknown tenant nobody"]);
    log(&["events", "--data-dir", text(&dir), "--tenant", "bad!"])
        .failed()
        .stderr_names(&["'bad!' is not a tenant id"]);
    let tenants = log(&["tenants", "--data-dir", text(&dir)]).ok();
    assert!(!tenants.stdout.contains("nobody"), "no tree was created");
}

fn fixture_line(tenant: &str, seq: u64) -> Value {
    export_order("v1-two-tenants.ndjson")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["tenant_id"] == tenant && v["seq"] == seq)
        .unwrap()
}

#[test]
fn tenants_shows_a_row_per_tenant_and_names_a_broken_log() {
    let (_tmp, dir) = imported_v1();
    damage(&dir, V1_OTHER, |t| {
        let record = t.get(1);
        t.insert(5, record);
    });
    let run = log(&["tenants", "--data-dir", text(&dir)]).ok();
    let rows = run.lines();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        [
            "TENANT",
            "EVENTS",
            "LAST_SEQ",
            "FLOWS",
            "FIRST_RECORDED_AT",
            "LAST_RECORDED_AT"
        ]
    );
    assert_eq!(
        rows[1].split_whitespace().collect::<Vec<_>>(),
        [
            V1_TENANT,
            "5",
            "5",
            "3",
            "2026-11-20T10:00:00.123Z",
            "2026-11-20T10:00:05.432Z"
        ]
    );
    assert!(
        rows[2].starts_with(V1_OTHER) && rows[2].contains("ERROR") && rows[2].contains("seq 5"),
        "{}",
        rows[2]
    );
}

#[test]
fn verify_digests_survive_export_and_import_and_a_damaged_log_fails_naming_tenant_and_seq() {
    let mut app = spawn_app();
    for id in ["one", "two", "three"] {
        assert_eq!(app.create(&flow(id)).status, 201);
    }
    assert_eq!(app.delete("B2C_1_two").status, 204);
    let other = token_for(OTHER_TENANT);
    assert_eq!(app.create_as(&other, &flow("theirs")).status, 201);
    let ours = app.list_all("");
    app.stop();
    let dir = app.data_dir();

    let original = log(&["verify", "--data-dir", text(&dir)]).ok();
    let rows = original.lines();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let cells: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(&cells[..3], [TENANT, "4", "2"]);
    assert_eq!(cells[3].len(), 64, "a sha256 in hex");

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("export.ndjson");
    let copy = tmp.path().join("copy");
    log(&["export", "--data-dir", text(&dir), "--output", text(&file)]).ok();
    log(&["import", "--data-dir", text(&copy), text(&file)]).ok();
    let copied = log(&["verify", "--data-dir", text(&copy)]).ok();
    assert_eq!(
        copied.stdout, original.stdout,
        "same events, flows and digests"
    );

    let mut served = serve_dir(&copy);
    assert_eq!(served.list_all(""), ours);
    served.token = other;
    assert_eq!(served.list_all(""), vec!["B2C_1_theirs"]);
    served.stop();

    damage(&dir, TENANT, |t| {
        t.insert(3, &b"{\"tenant_id\":\"trunc"[..]);
    });
    let failed = log(&["verify", "--data-dir", text(&dir)]).failed();
    failed.stderr_names(&[TENANT, "seq 3"]);
    assert!(failed.stdout.contains("FAULT"), "{failed:?}");
    log(&["verify", "--data-dir", text(&dir), "--tenant", OTHER_TENANT]).ok();
}

#[test]
fn a_running_servers_directory_is_locked_and_a_missing_one_is_not_created() {
    let app = spawn_app();
    assert_eq!(app.create(&flow("live")).status, 201);
    let dir = app.data_dir();
    let locked = format!(
        "the data directory {} is locked by another process (is a server running on it?)",
        dir.display()
    );
    log(&["tenants", "--data-dir", text(&dir)])
        .failed()
        .stderr_names(&[&locked]);
    log(&[
        "import",
        "--data-dir",
        text(&dir),
        text(&fixture("v1-two-tenants.ndjson")),
    ])
    .failed()
    .stderr_names(&[&locked]);

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    log(&["verify", "--data-dir", text(&missing)])
        .failed()
        .stderr_names(&["does not exist", text(&missing)]);
    assert!(!missing.exists());
    log(&["tenants", "--data-dir", text(tmp.path())])
        .failed()
        .stderr_names(&["holds no event log"]);
    // What is left of a data directory whose `db` file is gone: refused, and left as it was.
    std::fs::create_dir(tmp.path().join("blobs")).unwrap();
    std::fs::write(tmp.path().join("conf"), b"segment_size: 524288\n").unwrap();
    for command in ["tenants", "verify"] {
        log(&[command, "--data-dir", text(tmp.path())])
            .failed()
            .stderr_names(&["holds no event log"]);
    }
    assert!(!tmp.path().join("db").exists(), "no new log was made");
    assert_eq!(
        std::fs::read(tmp.path().join("conf")).unwrap(),
        b"segment_size: 524288\n"
    );
}

#[test]
fn a_failed_command_prints_one_line_without_a_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let output = Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
        .args(["log", "tenants", "--data-dir", text(&missing)])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "Error: the data directory {} does not exist\n",
            missing.display()
        )
    );
}

/// Copies a frozen data directory into a temp dir (a server or tool changes what it opens).
fn copy_fixture_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dir)
}

#[test]
fn a_directory_of_the_tree_per_tenant_layout_is_converted_and_reads_the_same() {
    let (_tmp, dir) = copy_fixture_dir("layout-v1");
    // What the build that wrote the directory exported from it, line for line.
    let expected = export_order("layout-v1.ndjson");
    assert_eq!(
        log(&["export", "--data-dir", text(&dir)]).ok().lines(),
        expected
    );
    {
        let db = crate::helpers::open_sled(&dir);
        let names: Vec<String> = db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains('/')), "{names:?}");
    }
    log(&["verify", "--data-dir", text(&dir)]).ok();

    let mut app = serve_dir(&dir);
    app.token = token_for("layout-live");
    let live = app.list_all("");
    assert_eq!(live.len(), 11, "{live:?}");
    assert!(!live.contains(&"B2C_1_Live3".to_owned()));
    assert_eq!(app.create(&flow("Live3")).status, 201);
    app.token = token_for(V1_TENANT);
    assert_eq!(app.list_all("").len(), 3);
    app.stop();
    assert_eq!(event_seqs(&dir, "layout-live", &["--from", "14"]), vec![14]);
}

#[test]
fn a_guid_tenant_is_one_tenant_to_the_log_tools_whatever_its_letter_case() {
    let upper = V1_TENANT.to_ascii_uppercase();
    // Every other line of the GUID tenant written upper-case, as another tool might.
    let content = std::fs::read_to_string(fixture("v1-two-tenants.ndjson")).unwrap();
    let mixed: String = content
        .lines()
        .filter(|l| l.contains(V1_TENANT))
        .enumerate()
        .map(|(at, line)| {
            let line = if at % 2 == 1 {
                line.replace(V1_TENANT, &upper)
            } else {
                line.to_owned()
            };
            line + "\n"
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mixed.ndjson");
    std::fs::write(&file, &mixed).unwrap();
    let dir = tmp.path().join("data");
    let run = log(&["import", "--data-dir", text(&dir), text(&file)]).ok();
    assert!(run.stderr.contains("of 1 tenants"), "{run:?}");
    let tenants = log(&["tenants", "--data-dir", text(&dir)]).ok();
    assert_eq!(
        tenants.lines().len(),
        2,
        "a header and one tenant: {tenants:?}"
    );
    assert!(tenants.lines()[1].starts_with(V1_TENANT), "{tenants:?}");
    // Named in either case, it is the same tenant to every tool.
    assert_eq!(
        replayed_ids(&dir, &upper, &[]),
        replayed_ids(&dir, V1_TENANT, &[])
    );
    log(&["verify", "--data-dir", text(&dir), "--tenant", &upper]).ok();
    // A second import of it, in the other case, is refused: the tenant has events already.
    let again = tmp.path().join("again.ndjson");
    std::fs::write(&again, mixed.replace(V1_TENANT, &upper)).unwrap();
    log(&["import", "--data-dir", text(&dir), text(&again)]).failed();
    serve_v1(&dir);
}
