//! Recovery policy: a tenant whose log has a gap, a duplicate or an undecodable record answers
//! 503 naming the fault; every other tenant keeps working.

use crate::helpers::{flow, spawn_app, token_for, RawEvents};

fn damage(dir: &std::path::Path, tenant: &str, change: impl FnOnce(&RawEvents)) {
    change(&RawEvents::open(dir, tenant));
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
        let record = t.get(2);
        t.insert(5, record);
    });
    damage(&dir, "corrupt-tenant", |t| {
        t.insert(3, &b"{\"tenant_id\":\"corrupt-ten"[..]);
    });
    damage(&dir, "duplicate-tenant", |t| {
        let first = t.get(1);
        t.insert(3, first);
    });
    damage(&dir, "bad-key-tenant", |t| {
        t.insert_bad_key(b"zz", &b"{}"[..]);
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
