//! Restarting on the same directory: every tenant is rebuilt from its log.

use userflows_emulator::config::{Durability, Storage};

use crate::helpers::{flow, spawn_app, spawn_app_with, token_for, OTHER_TENANT};

#[test]
fn a_restart_keeps_flows_conflicts_deletes_and_order() {
    let mut app = spawn_app();
    for id in ["one", "two", "three", "four"] {
        assert_eq!(app.create(&flow(id)).status, 201);
    }
    assert_eq!(app.delete("B2C_1_two").status, 204);
    assert_eq!(
        app.create_as(&token_for(OTHER_TENANT), &flow("theirs"))
            .status,
        201
    );
    let before = app.list_all("");

    app.restart();

    assert_eq!(app.list_all(""), before);
    assert_eq!(before, vec!["B2C_1_one", "B2C_1_three", "B2C_1_four"]);
    assert_eq!(
        app.create(&flow("ONE")).status,
        409,
        "duplicate still refused"
    );
    assert_eq!(app.get("B2C_1_two").status, 404, "deleted still gone");
    assert_eq!(
        app.get_as(&token_for(OTHER_TENANT), "B2C_1_theirs").status,
        200
    );
    // Sequence numbers continue where the log ended.
    assert_eq!(app.create(&flow("five")).status, 201);
    app.restart();
    assert_eq!(app.count().body, "4");
}

#[test]
fn relaxed_mode_keeps_everything_over_a_graceful_restart() {
    let mut app = spawn_app_with(|s| {
        if let Storage::Disk { durability, .. } = &mut s.storage {
            *durability = Durability::Relaxed;
        }
    });
    for i in 0..20 {
        assert_eq!(app.create(&flow(&format!("r{i}"))).status, 201);
    }
    app.restart();
    assert_eq!(app.count().body, "20");
}

#[test]
fn in_memory_mode_serves_and_forgets_at_exit() {
    let mut app = spawn_app_with(|s| s.storage = Storage::Memory);
    assert_eq!(app.create(&flow("mem")).status, 201);
    assert_eq!(app.create(&flow("mem")).status, 409);
    assert_eq!(app.get("B2C_1_mem").status, 200);
    app.restart();
    assert_eq!(app.count().body, "0");
}
