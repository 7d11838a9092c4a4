//! Recovery policy: a tenant whose log has a gap, a duplicate or an undecodable record answers
//! 503 naming the fault; every other tenant keeps working.

use crate::helpers::{flow, open_sled, spawn_app, token_for};

fn damage(dir: &std::path::Path, tenant: &str, change: impl FnOnce(&sled::Tree)) {
    let db = open_sled(dir);
    let tree = db
        .open_tree(userflows_emulator::store::events_tree_name(tenant))
        .unwrap();
    change(&tree);
    db.flush().unwrap();
}

#[test]
fn broken_logs_make_only_their_tenant_unavailable() {
    let mut app = spawn_app();
    let tenants = [
        "gap-tenant",
        "corrupt-tenant",
        "duplicate-tenant",
        "healthy-tenant",
    ];
    for tenant in tenants {
        let token = token_for(tenant);
        assert_eq!(app.create_as(&token, &flow("a")).status, 201);
        assert_eq!(app.create_as(&token, &flow("b")).status, 201);
    }
    app.stop();
    let dir = app.data_dir();
    damage(&dir, "gap-tenant", |t| {
        let record = t.get(2u64.to_be_bytes()).unwrap().unwrap();
        t.insert(5u64.to_be_bytes(), record).unwrap();
    });
    damage(&dir, "corrupt-tenant", |t| {
        t.insert(3u64.to_be_bytes(), &b"{\"tenant_id\":\"corrupt-ten"[..])
            .unwrap();
    });
    damage(&dir, "duplicate-tenant", |t| {
        let first = t.get(1u64.to_be_bytes()).unwrap().unwrap();
        t.insert(3u64.to_be_bytes(), first).unwrap();
    });
    damage(&dir, "bad-key-tenant", |t| {
        t.insert(&b"zz"[..], &b"{}"[..]).unwrap();
    });
    app.start();

    for (tenant, seq) in [
        ("gap-tenant", "seq 5"),
        ("corrupt-tenant", "seq 3"),
        ("duplicate-tenant", "seq 3"),
    ] {
        app.token = token_for(tenant);
        for r in [
            app.get("B2C_1_a"),
            app.list(""),
            app.count(),
            app.create(&flow("c")),
        ] {
            assert_eq!(r.status, 503, "{tenant}: {r:?}");
            assert_eq!(r.error_code(), "serviceNotAvailable");
            assert!(r.header("retry-after").is_some());
            let message = r.message();
            assert!(
                message.contains(tenant) && message.contains(seq),
                "{message}"
            );
        }
    }
    app.token = token_for("healthy-tenant");
    assert_eq!(app.count().body, "2");
    assert_eq!(app.create(&flow("c")).status, 201);
    assert_eq!(app.get("B2C_1_c").status, 200);
}
