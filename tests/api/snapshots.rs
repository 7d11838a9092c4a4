//! Snapshots: recovery starts from the newest one and replays the rest; a bad one falls back
//! to a full replay; events are never deleted.

use crate::helpers::{flow, open_sled, spawn_app_with, stored_events, TestApp, TENANT};

fn ready(app: &TestApp) -> serde_json::Value {
    app.request("GET", "/_emulator/ready", &[], None).json()
}

fn snapshotting_app() -> TestApp {
    spawn_app_with(|s| s.snapshot_every = Some(10))
}

#[test]
fn recovery_from_a_snapshot_gives_the_same_state_and_paging() {
    let mut app = snapshotting_app();
    for i in 0..25 {
        assert_eq!(app.create(&flow(&format!("s{i:02}"))).status, 201);
    }
    for i in [3, 11, 17] {
        assert_eq!(app.delete(&format!("B2C_1_s{i:02}")).status, 204);
    }
    let before = app.list_all("");
    let next = app.list("$top=6").json()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_owned();
    let next_path = next.strip_prefix(&app.address).unwrap().to_owned();
    let second_page_before = app.request("GET", &next_path, &[], None).json()["value"].clone();

    app.restart();

    assert_eq!(ready(&app)["fromSnapshots"], 1);
    assert_eq!(app.list_all(""), before);
    assert_eq!(app.count().body, "22");
    let second_page_after = app.request("GET", &next_path, &[], None).json()["value"].clone();
    assert_eq!(
        second_page_after, second_page_before,
        "a nextLink survives the restart"
    );
    assert_eq!(app.create(&flow("s00")).status, 409);
    assert_eq!(app.create(&flow("s03")).status, 201);
    app.stop();
    assert_eq!(
        stored_events(&app.data_dir(), TENANT),
        29,
        "events are never deleted"
    );
}

#[test]
fn a_bad_snapshot_falls_back_to_a_full_replay() {
    let mut app = snapshotting_app();
    for i in 0..15 {
        app.create(&flow(&format!("b{i}")));
    }
    let before = app.list_all("");
    app.stop();
    {
        let db = open_sled(&app.data_dir());
        let snapshots = db
            .open_tree(userflows_emulator::store::SNAPSHOTS_TREE)
            .unwrap();
        let mut prefix = TENANT.as_bytes().to_vec();
        prefix.push(0);
        let (key, _) = snapshots
            .scan_prefix(prefix)
            .next_back()
            .expect("a snapshot was saved")
            .unwrap();
        snapshots
            .insert(key, &b"{\"schema_version\":1,\"tenant"[..])
            .unwrap();
        db.flush().unwrap();
    }
    app.start();
    assert_eq!(ready(&app)["fromSnapshots"], 0);
    assert_eq!(app.list_all(""), before);
}

#[test]
fn with_snapshots_off_recovery_replays_everything() {
    let mut app = snapshotting_app();
    for i in 0..12 {
        app.create(&flow(&format!("n{i}")));
    }
    app.settings.snapshot_every = None;
    app.restart();
    assert_eq!(ready(&app)["fromSnapshots"], 0);
    assert_eq!(app.count().body, "12");
}
