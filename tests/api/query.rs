//! Queries over HTTP: `$filter`, `$orderby`, `$select`, `$skip`, `$count` on the list, `/$count`
//! and get-by-id; nextLink walks that stay exact while others write; skiptoken misuse.

use serde_json::{json, Value};

use crate::helpers::{
    assert_walk_exact, sorted_keys, spawn_app, token_for, walks_while_writing, TestApp,
    OTHER_TENANT,
};

fn create(app: &TestApp, id: &str, kind: &str, version: f64) {
    let body = json!({"id": id, "userFlowType": kind, "userFlowTypeVersion": version});
    assert_eq!(app.create(&body).status, 201, "{id}");
}

fn ids(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Five flows of three types and versions, created in this order.
fn seeded() -> TestApp {
    let app = spawn_app();
    create(&app, "B2C_1_SignIn_b", "signIn", 2.0);
    create(&app, "B2C_1_signup", "signUp", 1.0);
    create(&app, "B2C_1_SignIn_A", "signIn", 1.0);
    create(&app, "B2C_1_reset", "passwordReset", 3.0);
    create(&app, "B2C_1_o", "signIn", 1.0);
    app
}

#[test]
fn filters_select_the_matching_flows_in_creation_order() {
    let app = seeded();
    for (filter, expected) in [
        (
            "startswith(id,'b2c_1_sign')",
            vec!["B2C_1_SignIn_b", "B2C_1_signup", "B2C_1_SignIn_A"],
        ),
        ("id eq 'b2c_1_SIGNUP'", vec!["B2C_1_signup"]),
        (
            "id ne 'B2C_1_o'",
            vec![
                "B2C_1_SignIn_b",
                "B2C_1_signup",
                "B2C_1_SignIn_A",
                "B2C_1_reset",
            ],
        ),
        (
            "id in ('B2C_1_o','B2C_1_reset','B2C_1_none')",
            vec!["B2C_1_reset", "B2C_1_o"],
        ),
        (
            "userFlowType eq 'signIn'",
            vec!["B2C_1_SignIn_b", "B2C_1_SignIn_A", "B2C_1_o"],
        ),
        (
            "userFlowType ne 'signIn'",
            vec!["B2C_1_signup", "B2C_1_reset"],
        ),
        (
            "userFlowTypeVersion gt 1",
            vec!["B2C_1_SignIn_b", "B2C_1_reset"],
        ),
        (
            "userFlowTypeVersion le 1.0",
            vec!["B2C_1_signup", "B2C_1_SignIn_A", "B2C_1_o"],
        ),
        (
            "userFlowType eq 'signIn' and not startswith(id,'B2C_1_SignIn')",
            vec!["B2C_1_o"],
        ),
        (
            "userFlowType eq 'signUp' or userFlowTypeVersion eq 3 and id eq 'B2C_1_reset'",
            vec!["B2C_1_signup", "B2C_1_reset"],
        ),
        (
            "(id eq 'B2C_1_o' or id eq 'B2C_1_signup') and userFlowType EQ 'signIn'",
            vec!["B2C_1_o"],
        ),
    ] {
        let r = app.list(&format!("$filter={filter}"));
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        assert_eq!(ids(&r.json()), expected, "{filter}");
    }
}

#[test]
fn orders_sort_by_each_key_with_ties_oldest_first() {
    let app = seeded();
    for (order, expected) in [
        (
            "id",
            vec![
                "B2C_1_o",
                "B2C_1_reset",
                "B2C_1_SignIn_A",
                "B2C_1_SignIn_b",
                "B2C_1_signup",
            ],
        ),
        (
            "id desc",
            vec![
                "B2C_1_signup",
                "B2C_1_SignIn_b",
                "B2C_1_SignIn_A",
                "B2C_1_reset",
                "B2C_1_o",
            ],
        ),
        // Declared order: signUp, signIn, …, passwordReset.
        (
            "userFlowType",
            vec![
                "B2C_1_signup",
                "B2C_1_SignIn_b",
                "B2C_1_SignIn_A",
                "B2C_1_o",
                "B2C_1_reset",
            ],
        ),
        (
            "userFlowType desc",
            vec![
                "B2C_1_reset",
                "B2C_1_SignIn_b",
                "B2C_1_SignIn_A",
                "B2C_1_o",
                "B2C_1_signup",
            ],
        ),
        (
            "userFlowTypeVersion desc,id",
            vec![
                "B2C_1_reset",
                "B2C_1_SignIn_b",
                "B2C_1_o",
                "B2C_1_SignIn_A",
                "B2C_1_signup",
            ],
        ),
        (
            "userFlowType asc, userFlowTypeVersion DESC",
            vec![
                "B2C_1_signup",
                "B2C_1_SignIn_b",
                "B2C_1_SignIn_A",
                "B2C_1_o",
                "B2C_1_reset",
            ],
        ),
    ] {
        let r = app.list(&format!("$orderby={order}"));
        assert_eq!(r.status, 200, "{order}: {}", r.body);
        assert_eq!(ids(&r.json()), expected, "{order}");
    }
}

#[test]
fn select_trims_the_list_and_a_get_and_names_the_properties() {
    let app = seeded();
    let body = app
        .list("$select=userFlowType,id&$filter=id eq 'B2C_1_o'")
        .json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/beta/$metadata#identity/userFlows(userFlowType,id)",
            app.address
        )
    );
    assert_eq!(
        body["value"],
        json!([{"id": "B2C_1_o", "userFlowType": "signIn"}])
    );
    let r = app.request(
        "GET",
        "/beta/identity/userFlows/B2C_1_o?$select=id&$expand=*",
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({
            "@odata.context": format!("{}/beta/$metadata#identity/userFlows(id)/$entity", app.address),
            "id": "B2C_1_o"
        })
    );
    let r = app.request(
        "GET",
        "/beta/identity/userFlows/B2C_1_o?$filter=id eq 'x'",
        &[],
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("$filter"), "{}", r.message());
}

#[test]
fn skip_and_count_apply_to_the_filtered_ordered_set() {
    let app = seeded();
    let body = app
        .list("$filter=userFlowType eq 'signIn'&$orderby=id&$skip=1&$count=true&$top=1")
        .json();
    assert_eq!(body["@odata.count"], 3);
    assert_eq!(ids(&body), ["B2C_1_SignIn_A"]);
    let next = body["@odata.nextLink"].as_str().unwrap();
    for option in [
        "$filter=",
        "$orderby=id",
        "$skip=1",
        "$count=true",
        "$top=1",
        "$skiptoken=",
    ] {
        assert!(next.contains(option), "{option} in {next}");
    }
    // Percent-encoded: no space or quote is left in the link.
    assert!(!next.contains(' ') && !next.contains('\''), "{next}");
    let second = app
        .request("GET", next.strip_prefix(&app.address).unwrap(), &[], None)
        .json();
    assert!(second.get("@odata.count").is_none());
    assert_eq!(ids(&second), ["B2C_1_SignIn_b"]);
    assert!(second.get("@odata.nextLink").is_none());

    for (filter, expected) in [
        ("", "5"),
        ("?$filter=userFlowType eq 'signIn'", "3"),
        ("?$filter=id eq 'nope'", "0"),
    ] {
        let r = app.request(
            "GET",
            &format!("/beta/identity/userFlows/$count{filter}"),
            &[],
            None,
        );
        assert_eq!((r.status, r.body.as_str()), (200, expected), "{filter}");
    }
    let r = app.request("GET", "/beta/identity/userFlows/$count?$top=1", &[], None);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("$top"));
}

#[test]
fn filter_errors_are_400_and_say_what_is_wrong() {
    let app = seeded();
    for (filter, needle) in [
        ("displayName eq 'x'", "property named 'displayName'"),
        ("userFlowType eq 'nope'", "not a member"),
        ("id eq 1", "'id' is a string"),
        ("(id eq 'a'", "unbalanced parenthesis"),
        ("id eq 'a' and", "syntax error"),
        ("endswith(id,'a')", "endswith"),
    ] {
        let r = app.list(&format!("$filter={filter}"));
        assert_eq!(r.status, 400, "{filter}");
        assert_eq!(r.error_code(), "BadRequest");
        assert!(
            r.message().starts_with("Invalid filter clause:"),
            "{}",
            r.message()
        );
        assert!(r.message().contains(needle), "{filter}: {}", r.message());
    }
}

#[test]
fn a_skiptoken_replayed_in_another_tenant_or_query_is_400() {
    let app = seeded();
    let body = app.list("$top=1&$orderby=id").json();
    let next = body["@odata.nextLink"].as_str().unwrap();
    let token = next.split("$skiptoken=").nth(1).unwrap();
    let bearer = format!("Bearer {}", token_for(OTHER_TENANT));
    let path = format!("/beta/identity/userFlows?$top=1&$orderby=id&$skiptoken={token}");
    let other = app.request("GET", &path, &[("Authorization", &bearer)], None);
    assert_eq!(other.status, 400, "{}", other.body);
    assert!(other.message().contains("another query or tenant"));
    let changed = app.list(&format!("$top=1&$orderby=id desc&$skiptoken={token}"));
    assert_eq!(changed.status, 400);
    assert!(changed.message().contains("another query or tenant"));
    let forged = app.list("$skiptoken=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(forged.status, 400);
    assert!(forged.message().contains("$skiptoken"));
    // The same token with another `$top` is fine.
    assert_eq!(
        app.list(&format!("$top=3&$orderby=id&$skiptoken={token}"))
            .status,
        200
    );
}

#[test]
fn a_filtered_ordered_walk_sees_each_lasting_flow_once_while_others_write() {
    let app = spawn_app();
    let lasting: Vec<String> = (0..80).map(|i| format!("B2C_1_keep{i:02}")).collect();
    for (i, id) in lasting.iter().enumerate() {
        let kind = if i % 2 == 0 { "signIn" } else { "signUp" };
        create(&app, id, kind, 1.0 + (i % 3) as f64);
    }
    for i in 0..40 {
        create(&app, &format!("B2C_1_keep_churn{i}"), "signIn", 2.0);
    }
    let query = "$filter=startswith(id,'B2C_1_keep') and userFlowTypeVersion ge 1&$orderby=userFlowTypeVersion desc,id&$top=7";
    let walks = walks_while_writing(
        4,
        || app.list_all(query),
        |i| {
            // New flows sort everywhere in the walk, before and after its cursor.
            create(
                &app,
                &format!("B2C_1_keep_new{i}"),
                "signIn",
                1.0 + (i % 3) as f64,
            );
            app.delete(&format!("B2C_1_keep_churn{}", i % 40));
            app.delete(&format!("B2C_1_keep_new{}", i.max(1) - 1));
        },
    );
    for walk in walks {
        assert_walk_exact(&walk, &lasting);
        // The lasting flows come in the requested order.
        let seen: Vec<&String> = walk.iter().filter(|w| lasting.contains(w)).collect();
        let mut sorted = seen.clone();
        sorted.sort_by_key(|id| {
            let i: usize = id["B2C_1_keep".len()..].parse().unwrap();
            (std::cmp::Reverse(i % 3), id.to_ascii_lowercase())
        });
        assert_eq!(seen, sorted);
    }
}

#[test]
fn a_next_link_carries_every_option_and_each_page_applies_them() {
    let app = spawn_app();
    for i in 0..5 {
        create(&app, &format!("B2C_1_sel{i}"), "signIn", 1.0 + f64::from(i));
    }
    create(&app, "B2C_1_other", "signUp", 1.0);
    let query = "$filter=userFlowType eq 'signIn'&$orderby=userFlowTypeVersion desc&$select=id,userFlowTypeVersion&$top=2&$count=true";
    let mut page = app.list(query);
    let mut pages = Vec::new();
    loop {
        assert_eq!(page.status, 200, "{page:?}");
        let body = page.json();
        // The count of the filtered set, on the first page only.
        let count = if pages.is_empty() {
            json!(5)
        } else {
            Value::Null
        };
        assert_eq!(body["@odata.count"], count, "{body}");
        for flow in body["value"].as_array().unwrap() {
            assert_eq!(sorted_keys(flow), ["id", "userFlowTypeVersion"], "{flow}");
        }
        pages.push(ids(&body));
        let Some(next) = body["@odata.nextLink"].as_str() else {
            break;
        };
        for option in [
            "$filter=",
            "$orderby=",
            "$select=",
            "$top=2",
            "$count=true",
            "$skiptoken=",
        ] {
            assert!(next.contains(option), "{option} in {next}");
        }
        page = app.request("GET", next.strip_prefix(&app.address).unwrap(), &[], None);
    }
    assert_eq!(
        pages,
        [
            vec!["B2C_1_sel4", "B2C_1_sel3"],
            vec!["B2C_1_sel2", "B2C_1_sel1"],
            vec!["B2C_1_sel0"]
        ]
    );
}
