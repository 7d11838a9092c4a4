//! Reading flows: get, key syntax, `$count`, listing, paging and query options.

use serde_json::json;

use crate::helpers::{assert_walk_exact, flow, spawn_app, walks_while_writing};

#[test]
fn get_answers_the_flow_by_id_ignoring_case_and_by_key_syntax() {
    let app = spawn_app();
    app.create(&json!({"id": "Pol1", "userFlowType": "passwordReset", "userFlowTypeVersion": 2.5}));
    for path in [
        "/beta/identity/userFlows/B2C_1_Pol1",
        "/beta/identity/userFlows/b2c_1_pol1",
        "/beta/identity/userFlows('B2C_1_Pol1')",
        "/beta/identity/userFlows(%27b2c_1_POL1%27)",
    ] {
        let r = app.request("GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("odata-version"), Some("4.0"));
        assert_eq!(
            r.json(),
            json!({
                "@odata.context": format!("{}/beta/$metadata#identity/userFlows/$entity", app.address),
                "id": "B2C_1_Pol1",
                "userFlowType": "passwordReset",
                "userFlowTypeVersion": 2.5
            })
        );
    }
}

#[test]
fn get_and_delete_of_a_missing_id_are_404() {
    let app = spawn_app();
    let get = app.get("B2C_1_nope");
    assert_eq!(get.status, 404);
    assert_eq!(get.error_code(), "Request_ResourceNotFound");
    assert_eq!(
        get.message(),
        "Resource 'B2C_1_nope' does not exist or one of its queried reference-property objects are not present."
    );
    let delete = app.delete("B2C_1_nope");
    assert_eq!(delete.status, 404);
    assert_eq!(delete.error_code(), "Request_ResourceNotFound");
}

#[test]
fn the_path_id_is_the_stored_id() {
    let app = spawn_app();
    app.create(&flow("Pol1"));
    assert_eq!(
        app.get("Pol1").status,
        404,
        "the prefix is not added to a path id"
    );
}

#[test]
fn delete_answers_204_and_the_flow_is_gone() {
    let app = spawn_app();
    app.create(&flow("gone"));
    let r = app.delete("B2C_1_GONE");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(app.get("B2C_1_gone").status, 404);
    assert_eq!(app.delete("B2C_1_gone").status, 404);
}

#[test]
fn count_is_plain_text() {
    let app = spawn_app();
    assert_eq!(app.count().body, "0");
    for id in ["a", "b", "c"] {
        app.create(&flow(id));
    }
    app.delete("B2C_1_b");
    let r = app.count();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.body, "2");
}

#[test]
fn list_answers_flows_in_creation_order_with_context_and_count() {
    let app = spawn_app();
    for id in ["z", "a", "m"] {
        app.create(&flow(id));
    }
    let r = app.list("");
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        body["@odata.context"],
        format!("{}/beta/$metadata#identity/userFlows", app.address)
    );
    assert!(body.get("@odata.count").is_none());
    assert!(body.get("@odata.nextLink").is_none());
    let ids: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["B2C_1_z", "B2C_1_a", "B2C_1_m"]);
    assert_eq!(app.list("$count=true").json()["@odata.count"], 3);
    assert_eq!(app.list("count=true").json()["@odata.count"], 3);
}

#[test]
fn paging_walks_every_flow_once_with_count_on_the_first_page_only() {
    let app = spawn_app();
    for i in 0..23 {
        app.create(&flow(&format!("p{i:02}")));
    }
    let first = app.list("$top=5&$count=true").json();
    assert_eq!(first["@odata.count"], 23);
    assert_eq!(first["value"].as_array().unwrap().len(), 5);
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/beta/identity/userFlows?", app.address)),
        "{next}"
    );
    assert!(next.contains("$skiptoken="), "{next}");
    let second = app
        .request("GET", next.strip_prefix(&app.address).unwrap(), &[], None)
        .json();
    assert!(second.get("@odata.count").is_none());
    let all = app.list_all("$top=5");
    let expected: Vec<String> = (0..23).map(|i| format!("B2C_1_p{i:02}")).collect();
    assert_eq!(all, expected);
}

#[test]
fn the_default_page_is_100() {
    let app = spawn_app();
    for i in 0..101 {
        app.create(&flow(&format!("d{i}")));
    }
    let body = app.list("").json();
    assert_eq!(body["value"].as_array().unwrap().len(), 100);
    assert!(body["@odata.nextLink"].is_string());
    assert_eq!(app.list_all("").len(), 101);
}

#[test]
fn paging_is_stable_while_others_create_and_delete() {
    let app = spawn_app();
    let stable: Vec<String> = (0..60).map(|i| format!("B2C_1_s{i}")).collect();
    for id in &stable {
        assert_eq!(app.create(&flow(id)).status, 201);
    }
    // Churn flows interleaved with the stable ones.
    for i in 0..30 {
        app.create(&flow(&format!("early{i}")));
    }
    let walks = walks_while_writing(
        5,
        || app.list_all("$top=7"),
        |i| {
            app.create(&flow(&format!("churn{i}")));
            app.delete(&format!("B2C_1_early{}", i % 30));
            app.delete(&format!("B2C_1_churn{}", i.max(1) - 1));
        },
    );
    for walk in walks {
        assert_walk_exact(&walk, &stable);
    }
}

#[test]
fn bad_and_unsupported_query_options_are_400_naming_the_option() {
    let app = spawn_app();
    for (query, option) in [
        ("$top=0", "$top"),
        ("$top=1000", "$top"),
        ("$top=ten", "$top"),
        ("$count=maybe", "$count"),
        ("$skiptoken=forged", "$skiptoken"),
        ("$filter=id%20eq%20x", "Invalid filter clause"),
        ("$orderby=name", "$orderby"),
        ("$select=name", "$select"),
        ("$filter=", "$filter"),
        ("$apply=x", "$apply"),
        ("$search=x", "$search"),
        ("$expand=languages", "$expand"),
        ("$frobnicate=1", "$frobnicate"),
    ] {
        let r = app.list(query);
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.error_code(), "BadRequest");
        assert!(r.message().contains(option), "{query}: {}", r.message());
    }
    assert_eq!(app.list("$expand=*").status, 200);
    assert_eq!(app.list("custom=ignored").status, 200);
    assert_eq!(app.list("$top=999").status, 200);
}

#[test]
fn a_flow_created_during_a_walk_never_appears_in_it_even_under_a_deleted_id() {
    let app = spawn_app();
    for id in ["a", "b", "c", "d", "e"] {
        app.create(&flow(id));
    }
    let queries = [
        "$top=2",
        "$top=2&$orderby=id",
        "$top=2&$filter=startswith(id,'B2C_1_')",
    ];
    for (n, query) in queries.into_iter().enumerate() {
        let first = app.list(query);
        assert_eq!(first.status, 200, "{first:?}");
        let body = first.json();
        let mut seen: Vec<String> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect();
        // After the first page: a new flow that sorts after every other, and a flow not yet
        // listed deleted and created again.
        app.create(&flow(&format!("z{n}")));
        let added = format!("B2C_1_z{n}");
        assert_eq!(app.delete("B2C_1_d").status, 204);
        app.create(&flow("d"));
        let mut next = body["@odata.nextLink"].as_str().map(str::to_owned);
        while let Some(link) = next {
            let page = app.request("GET", link.strip_prefix(&app.address).unwrap(), &[], None);
            assert_eq!(page.status, 200, "{page:?}");
            let body = page.json();
            seen.extend(
                body["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["id"].as_str().unwrap().to_owned()),
            );
            next = body["@odata.nextLink"].as_str().map(str::to_owned);
        }
        assert!(!seen.contains(&added), "{query}: {seen:?}");
        assert!(!seen.contains(&"B2C_1_d".to_owned()), "{query}: {seen:?}");
        for lasting in ["B2C_1_a", "B2C_1_b", "B2C_1_c", "B2C_1_e"] {
            assert!(seen.contains(&lasting.to_owned()), "{query}: {seen:?}");
        }
    }
}
