//! Queries over one tenant's state (`domain::UserFlows`, the indexes `evolve` maintains) at 10k,
//! 100k and 1M flows: the cost of one page of 100 for `$orderby=id`,
//! `$filter=startswith(id,'B2C_1_a')` and `$filter=userFlowType eq 'signIn'`, on the first page
//! and on a page halfway through the walk; then whole walks of 1M flows in pages of 999, by
//! `$orderby=id` and in creation order; then, in a tenant of 10k and 1M flows whose ids look like
//! the load scripts' (a run tag, a thread, a counter), a create's existence check and a create
//! with the delete of the oldest flow. Query ids are random over `a-z0-9`, so a one-letter prefix
//! holds about 1/36 of the flows; types cycle over three values.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture must stop the run loudly, as in tests"
)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use userflows_emulator::domain::{
    decide, evolve, Command, CreateUserFlow, Cursor, Equality, Filter, ListRequest, OrderKey,
    Property, UserFlow, UserFlowEvent, UserFlowId, UserFlowType, UserFlowTypeVersion, UserFlows,
};

const PAGE: usize = 100;

/// `n` flows with random ids, types cycling over signIn, signUp and passwordReset.
fn state(n: usize) -> UserFlows {
    let mut flows = UserFlows::default();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let kinds = [
        UserFlowType::SignIn,
        UserFlowType::SignUp,
        UserFlowType::PasswordReset,
    ];
    for i in 0..n {
        let mut name = String::with_capacity(12);
        for _ in 0..12 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            name.push(char::from(
                b"abcdefghijklmnopqrstuvwxyz0123456789"[(seed % 36) as usize],
            ));
        }
        let flow = UserFlow {
            id: UserFlowId::parse(&name).expect("a valid id"),
            user_flow_type: kinds[i % kinds.len()],
            user_flow_type_version: UserFlowTypeVersion::parse(1.0).expect("a valid version"),
        };
        evolve(&mut flows, &UserFlowEvent::Created(flow));
    }
    flows
}

fn request<'a>(
    flows: &UserFlows,
    filter: Option<&'a Filter>,
    order: &'a [OrderKey],
    after: Option<&'a Cursor>,
    size: usize,
) -> ListRequest<'a> {
    ListRequest {
        filter,
        order,
        horizon: flows.next_position(),
        after,
        skip: 0,
        size,
    }
}

fn pages(c: &mut Criterion) {
    let by_id = [OrderKey {
        property: Property::Id,
        descending: false,
    }];
    let prefix = Filter::IdStartsWith("b2c_1_a".to_owned());
    let sign_in = Filter::Type(Equality::Eq, UserFlowType::SignIn);
    let queries: [(&str, Option<&Filter>, &[OrderKey]); 3] = [
        ("orderby_id", None, &by_id),
        ("startswith", Some(&prefix), &[]),
        ("type_eq", Some(&sign_in), &[]),
    ];
    let mut group = c.benchmark_group("page");
    for n in [10_000, 100_000, 1_000_000] {
        let flows = state(n);
        for (name, filter, order) in queries {
            // The cursor halfway through this query's walk.
            let mut middle = request(&flows, filter, order, None, 1);
            let matches = flows.count(filter);
            middle.skip = matches / 2;
            let deep = flows.list(&middle).next.expect("a cursor halfway");
            let first = flows.list(&request(&flows, filter, order, None, PAGE));
            assert_eq!(first.flows.len(), PAGE);
            group.bench_with_input(BenchmarkId::new(format!("{name}/first"), n), &n, |b, _| {
                b.iter(|| flows.list(&request(&flows, filter, order, None, PAGE)));
            });
            group.bench_with_input(BenchmarkId::new(format!("{name}/deep"), n), &n, |b, _| {
                b.iter(|| flows.list(&request(&flows, filter, order, Some(&deep), PAGE)));
            });
        }
    }
    group.finish();
}

/// Follows the walk to its end; the number of flows seen.
fn walk(flows: &UserFlows, order: &[OrderKey]) -> usize {
    let mut seen = 0;
    let mut after: Option<Cursor> = None;
    loop {
        let listing = flows.list(&request(flows, None, order, after.as_ref(), 999));
        seen += listing.flows.len();
        match listing.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

fn walks(c: &mut Criterion) {
    let n = 1_000_000;
    let flows = state(n);
    let by_id = [OrderKey {
        property: Property::Id,
        descending: false,
    }];
    assert_eq!(walk(&flows, &by_id), n);
    let mut group = c.benchmark_group("walk");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("creation_order/1000000", |b| b.iter(|| walk(&flows, &[])));
    group.bench_function("orderby_id/1000000", |b| b.iter(|| walk(&flows, &by_id)));
    group.finish();
}

/// Flow number `n` of one load-script run: ids share a long prefix (`B2C_1_` and a run tag)
/// and sort out of creation order ("n10" before "n9").
fn script_flow(n: u64) -> UserFlow {
    UserFlow {
        id: UserFlowId::parse(&format!("B2C_1_3f9c2a7be41dt1n{n}")).expect("a valid id"),
        user_flow_type: UserFlowType::SignIn,
        user_flow_type_version: UserFlowTypeVersion::parse(1.0).expect("a valid version"),
    }
}

fn decide_create(flows: &UserFlows, flow: UserFlow) -> UserFlowEvent {
    decide(flows, Command::Create(CreateUserFlow { flow })).expect("a new id")
}

/// A tenant of `n` flows stays at `n`: `lookup` decides a create of a new id (the existence
/// check), `churn` decides and applies it and deletes the oldest flow.
fn creates(c: &mut Criterion) {
    let mut group = c.benchmark_group("create");
    for n in [10_000_u64, 1_000_000] {
        let mut flows = UserFlows::default();
        for i in 0..n {
            evolve(&mut flows, &UserFlowEvent::Created(script_flow(i)));
        }
        let mut next = n;
        group.bench_function(BenchmarkId::new("lookup", n), |b| {
            b.iter(|| {
                next += 1;
                decide_create(&flows, script_flow(next))
            });
        });
        let mut next = n;
        group.bench_function(BenchmarkId::new("churn", n), |b| {
            b.iter(|| {
                let event = decide_create(&flows, script_flow(next));
                evolve(&mut flows, &event);
                let oldest = script_flow(next - n).id;
                evolve(&mut flows, &UserFlowEvent::Deleted { id: oldest });
                next += 1;
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = userflows_benches::criterion();
    targets = pages, walks, creates
}
criterion_main!(benches);
