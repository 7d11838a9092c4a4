//! The goose scenarios and the state one run shares between its users.
//!
//! | scenario | what each user does | statuses that pass |
//! |---|---|---|
//! | `create` | creates flows with ids no other user or run uses | 201 |
//! | `mixed` | create, get its own flows, list with `$top` following `@odata.nextLink`, delete its own | 201, 200, 200, 204 |
//! | `churn` | create a flow, then delete it: state stays small while the log grows | 201, 204 |
//! | `conflict` | creates ids from one small set shared by every user | 201 (once per id), 409 |
//! | `multi-tenant` (select as `multitenant`) | as `mixed` without deletes, each user in its own tenant | 201, 200 |
//! | `query` | creates flows of three types, then lists with filters and orders, walking `@odata.nextLink` | 201, 200 |
//! | `batch` | creates 20 flows per `POST /beta/$batch` | 200 (every item 201) |
//! | `faults` | as `mixed`, one list page, against the fault rules in force | as `mixed`, and any injected status or no answer |
//!
//! Every request goes through [`call`], which turns any status outside the expected set (and
//! any transport error) into a goose failure, and marks expected non-2xx answers (409) as
//! successes; in `faults`, the statuses a fault rule answers with and a missing answer are
//! expected too, and reported against the rules by [`crate::faults`]. Ids are `B2C_1_<kind><run tag>u<user>n<counter>`: the tag is random per run, the
//! user number is handed out by the run, the counter is per user, so no two requests of any
//! two runs create the same id unless the scenario means them to (`conflict`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use goose::prelude::*;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use userflows_emulator::chaos::Operation;
use userflows_emulator::http::auth::{mint, Claims};
use userflows_emulator::tenant::TenantId;

/// The collection every scenario works on.
const COLLECTION: &str = "/beta/identity/userFlows";
/// Page size of the list requests, small so a list walks several pages.
const PAGE_SIZE: usize = 50;
/// Most pages one list transaction follows, so one list stays one bounded unit of work.
const MAX_PAGES: usize = 4;
/// Most own flows a user remembers for gets and deletes (older ones are forgotten, not deleted).
const MAX_OWNED: usize = 1_000;
/// Creates per `$batch` in the `batch` scenario: Graph's limit.
const BATCH_SIZE: usize = 20;
/// The requests of the `faults` scenario (goose's names) and the operation each is.
pub const FAULTS_REQUESTS: [(&str, Operation); 4] = [
    ("POST userFlows (faults)", Operation::Create),
    ("GET userFlows/{id} (faults)", Operation::Get),
    ("GET userFlows (faults)", Operation::List),
    ("DELETE userFlows/{id} (faults)", Operation::Delete),
];
/// How long the minted tokens are valid: longer than any sensible run.
const TOKEN_SECS: u64 = 24 * 3600;

/// Our options of a run (goose's own are in its configuration).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The tenant of every scenario but `multi-tenant`.
    pub tenant: String,
    /// How many ids the `conflict` scenario contests.
    pub conflict_ids: usize,
    /// A fault profile to put in force for the run (cleared after it); without one, the
    /// `faults` scenario meets whatever rules the emulator has.
    pub faults: Option<userflows_emulator::chaos::RuleSet>,
    /// The emulator's `--admin-key`, for its fault route.
    pub admin_key: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            tenant: "loadtest-tenant".to_owned(),
            conflict_ids: 16,
            faults: None,
            admin_key: None,
        }
    }
}

/// One id the `conflict` scenario contests, and what its creates got.
#[derive(Debug)]
struct ContestedId {
    id: String,
    /// Creates of this id that got an answer (any status).
    answered: AtomicUsize,
    /// Creates of this id answered `201`: must end at exactly 1 when it was tried.
    created: AtomicUsize,
}

/// What the `conflict` scenario saw, id by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictTally {
    /// Contested ids that got at least one answer.
    pub tried: usize,
    /// Answers to contested creates, all ids together.
    pub answered: usize,
    /// Ids that were tried and did not get exactly one `201`: (id, how many `201`s).
    pub wrong: Vec<(String, usize)>,
}

/// State shared by every user of one run.
#[derive(Debug)]
pub struct RunContext {
    /// Random per run: keeps ids of different runs apart.
    tag: String,
    /// Bearer token of [`RunOptions::tenant`].
    token: String,
    /// Hands out user numbers; a counter rather than goose's user index, so a user restarted
    /// by a test plan never reuses an earlier user's ids.
    users: AtomicU64,
    contested: Vec<ContestedId>,
}

impl RunContext {
    /// A fresh run: new tag, token minted in-process with the emulator's own code.
    pub fn new(options: &RunOptions) -> Result<Self, String> {
        if TenantId::parse(&options.tenant).is_none() {
            return Err(format!(
                "'{}' is not a tenant id the emulator accepts (1 to 128 of A-Z a-z 0-9 . _ -)",
                options.tenant
            ));
        }
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let contested = (0..options.conflict_ids.max(1))
            .map(|k| ContestedId {
                id: format!("B2C_1_c{tag}k{k}"),
                answered: AtomicUsize::new(0),
                created: AtomicUsize::new(0),
            })
            .collect();
        Ok(Self {
            token: token_for(&options.tenant)?,
            tag,
            users: AtomicU64::new(0),
            contested,
        })
    }

    /// The run's random tag, as it appears in every id.
    #[must_use]
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// What the `conflict` scenario saw so far.
    #[must_use]
    pub fn conflict_tally(&self) -> ConflictTally {
        let mut tally = ConflictTally {
            tried: 0,
            answered: 0,
            wrong: Vec::new(),
        };
        for contested in &self.contested {
            let answered = contested.answered.load(Ordering::Acquire);
            let created = contested.created.load(Ordering::Acquire);
            tally.answered += answered;
            if answered > 0 {
                tally.tried += 1;
                if created != 1 {
                    tally.wrong.push((contested.id.clone(), created));
                }
            }
        }
        tally
    }
}

fn token_for(tenant: &str) -> Result<String, String> {
    mint(&Claims::for_tenant(tenant, &[], &[], TOKEN_SECS)).map_err(|e| e.to_string())
}

/// One user's own state, kept by goose for that user.
#[derive(Debug, Clone)]
struct UserState {
    token: String,
    /// `<tag>u<user>n`: with a counter, a unique id.
    prefix: String,
    counter: u64,
    /// Which query of [`QUERIES`] the user sends next.
    next_query: usize,
    /// Flows this user created and has not deleted (the newest [`MAX_OWNED`]).
    owned: Vec<String>,
    /// Next index into the contested ids (each user starts at its own place).
    next_contested: usize,
}

impl UserState {
    fn next_id(&mut self, kind: char) -> String {
        self.counter += 1;
        format!("B2C_1_{kind}{}{}", self.prefix, self.counter)
    }

    fn remember(&mut self, id: String) {
        if self.owned.len() >= MAX_OWNED {
            self.owned.remove(0);
        }
        self.owned.push(id);
    }
}

/// Every scenario, each sharing `context`.
pub fn all(context: &Arc<RunContext>) -> Result<Vec<Scenario>, Box<GooseError>> {
    Ok(vec![
        scenario!("create")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(step(context, create_unique).set_name("create")),
        scenario!("mixed")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(
                step(context, create_unique)
                    .set_name("create")
                    .set_weight(3)?,
            )
            .register_transaction(step(context, get_own).set_name("get").set_weight(5)?)
            .register_transaction(step(context, list_pages).set_name("list").set_weight(2)?)
            .register_transaction(step(context, delete_own).set_name("delete").set_weight(1)?),
        scenario!("churn")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(step(context, create_then_delete).set_name("create+delete")),
        scenario!("conflict")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(step(context, create_contested).set_name("create contested")),
        scenario!("multi-tenant")
            .register_transaction(step(context, Start::OwnTenant).set_on_start())
            .register_transaction(
                step(context, create_unique)
                    .set_name("create")
                    .set_weight(2)?,
            )
            .register_transaction(step(context, get_own).set_name("get").set_weight(2)?)
            .register_transaction(step(context, list_pages).set_name("list").set_weight(1)?),
        scenario!("query")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(
                step(context, create_typed)
                    .set_name("create")
                    .set_weight(1)?,
            )
            .register_transaction(step(context, query_pages).set_name("query").set_weight(3)?),
        scenario!("batch")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(step(context, create_batch).set_name("batch")),
        scenario!("faults")
            .register_transaction(step(context, Start::SharedTenant).set_on_start())
            .register_transaction(
                step(context, faults_create)
                    .set_name("create")
                    .set_weight(3)?,
            )
            .register_transaction(step(context, faults_get).set_name("get").set_weight(3)?)
            .register_transaction(step(context, faults_list).set_name("list").set_weight(1)?)
            .register_transaction(
                step(context, faults_delete)
                    .set_name("delete")
                    .set_weight(2)?,
            ),
    ])
}

type StepFuture<'r> = Pin<Box<dyn Future<Output = TransactionResult> + Send + 'r>>;

/// A transaction body: an async fn of the user and the run.
trait Step: Send + Sync + 'static {
    fn run<'r>(&self, user: &'r mut GooseUser, context: Arc<RunContext>) -> StepFuture<'r>;
}

impl<F> Step for F
where
    F: for<'r> AsyncStepFn<'r> + Send + Sync + 'static,
{
    fn run<'r>(&self, user: &'r mut GooseUser, context: Arc<RunContext>) -> StepFuture<'r> {
        Box::pin(self.call(user, context))
    }
}

/// `async fn(&mut GooseUser, Arc<RunContext>) -> TransactionResult`, spelled so the future may
/// borrow the user.
trait AsyncStepFn<'r> {
    type Fut: Future<Output = TransactionResult> + Send + 'r;
    fn call(&self, user: &'r mut GooseUser, context: Arc<RunContext>) -> Self::Fut;
}

impl<'r, F, Fut> AsyncStepFn<'r> for F
where
    F: Fn(&'r mut GooseUser, Arc<RunContext>) -> Fut,
    Fut: Future<Output = TransactionResult> + Send + 'r,
{
    type Fut = Fut;
    fn call(&self, user: &'r mut GooseUser, context: Arc<RunContext>) -> Fut {
        self(user, context)
    }
}

/// How a user starts.
#[derive(Clone, Copy)]
enum Start {
    /// In the run's tenant.
    SharedTenant,
    /// In a tenant of its own, named after the run and the user.
    OwnTenant,
}

impl Step for Start {
    fn run<'r>(&self, user: &'r mut GooseUser, context: Arc<RunContext>) -> StepFuture<'r> {
        let own_tenant = matches!(self, Start::OwnTenant);
        Box::pin(async move { start_user(user, &context, own_tenant) })
    }
}

/// A goose transaction running `body` with the run's context.
fn step(context: &Arc<RunContext>, body: impl Step) -> Transaction {
    let context = Arc::clone(context);
    let body = Arc::new(body);
    Transaction::new(Arc::new(move |user: &mut GooseUser| {
        body.run(user, Arc::clone(&context))
    }))
}

fn start_user(user: &mut GooseUser, context: &RunContext, own_tenant: bool) -> TransactionResult {
    let number = context.users.fetch_add(1, Ordering::AcqRel) + 1;
    let token = if own_tenant {
        token_for(&format!("lt-{}-u{number}", context.tag)).map_err(custom)?
    } else {
        context.token.clone()
    };
    let next_contested = usize::try_from(number).unwrap_or(0) % context.contested.len();
    user.set_session_data(UserState {
        token,
        prefix: format!("{}u{number}n", context.tag),
        counter: 0,
        next_query: usize::try_from(number).unwrap_or(0),
        owned: Vec::new(),
        next_contested,
    });
    Ok(())
}

#[expect(
    clippy::unnecessary_box_returns,
    reason = "goose's TransactionResult carries a Box<TransactionError>"
)]
/// A transaction error with our own message (a failed check of an answer's body).
fn custom(message: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message.into()))
}

fn state(user: &mut GooseUser) -> Result<&mut UserState, Box<TransactionError>> {
    user.get_session_data_mut::<UserState>()
        .ok_or_else(|| custom("the user has no state of its own: its on-start step did not run"))
}

/// An answer that passed: its status and body.
struct Answer {
    status: u16,
    body: String,
}

/// Sends one request and judges its status: anything outside `expected`, or no answer at all,
/// is a goose failure (and ends the transaction).
///
/// goose is told to expect `expected[0]`, so its own verdict (and its error table) agrees with
/// ours whenever that is the answer, 409s included. Another status of `expected` (a contested
/// create that got 201 where 409 was likelier) is then marked a success again; goose has
/// already counted it in its error table, so the conflict scenario orders `expected` by which
/// answer is likelier.
async fn call(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<String>,
    expected: &[u16],
) -> Result<Answer, Box<TransactionError>> {
    call_with(user, method, path, name, body, expected, false).await
}

/// As [`call`]; with `faults`, a status a fault rule answers with, and no answer at all
/// (status 0), are expected too.
async fn call_with(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<String>,
    expected: &[u16],
    faults: bool,
) -> Result<Answer, Box<TransactionError>> {
    let token = state(user)?.token.clone();
    let label = format!("{method} {name}");
    let mut builder = user
        .get_request_builder(&method, path)?
        .header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(body) = body {
        builder = builder.header(CONTENT_TYPE, "application/json").body(body);
    }
    let mut request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder);
    if let Some(&likely) = expected.first() {
        request = request.expect_status_code(likely);
    }
    let request = request.build();
    let mut goose = user.request(request).await?;
    let (status, headers, body) = match goose.response {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers: HeaderMap = response.headers().clone();
            match response.text().await {
                Ok(body) => (status, headers, body),
                Err(e) => {
                    let tag = format!("{label}: reading the body failed: {e}");
                    return Err(fail(user, &tag, &mut goose.request, None, None).into());
                }
            }
        }
        Err(_) if faults => (0, HeaderMap::new(), String::new()),
        Err(e) => {
            let tag = format!("{label}: no answer: {e}");
            return Err(fail(user, &tag, &mut goose.request, None, None).into());
        }
    };
    let injected = faults && crate::faults::INJECTED.contains(&status);
    if !expected.contains(&status) && !injected {
        let tag = format!("{label}: unexpected status {status} (expected {expected:?})");
        return Err(fail(user, &tag, &mut goose.request, Some(&headers), Some(&body)).into());
    }
    if !goose.request.success {
        // Expected after all: the update must not carry goose's error text, or the error
        // table would count it a second time.
        goose.request.error.clear();
        user.set_success(&mut goose.request)?;
    }
    Ok(Answer { status, body })
}

/// Marks `request` failed and returns the error that ends the transaction.
fn fail(
    user: &mut GooseUser,
    tag: &str,
    request: &mut goose::metrics::GooseRequestMetric,
    headers: Option<&HeaderMap>,
    body: Option<&str>,
) -> TransactionError {
    match user.set_failure(tag, request, headers, body) {
        Err(error) => *error,
        Ok(()) => TransactionError::Custom(tag.to_owned()),
    }
}

fn create_body(id: &str) -> String {
    typed_body(id, "signUpOrSignIn", 1)
}

fn typed_body(id: &str, kind: &str, version: u32) -> String {
    serde_json::json!({
        "id": id,
        "userFlowType": kind,
        "userFlowTypeVersion": version,
    })
    .to_string()
}

/// The lists the `query` scenario sends, in turn (`{tag}` is the run's tag): each a filter
/// or an order with an index behind it, or one that scans.
const QUERIES: [(&str, &str); 6] = [
    (
        "startswith+orderby id",
        "$filter=startswith(id,'B2C_1_q{tag}')&$orderby=id&$top=50",
    ),
    ("type eq", "$filter=userFlowType eq 'signIn'&$top=50"),
    (
        "orderby type,id desc",
        "$orderby=userFlowType,id desc&$top=50&$select=id,userFlowType",
    ),
    (
        "orderby version desc",
        "$orderby=userFlowTypeVersion desc&$top=50&$count=true",
    ),
    (
        "version gt (scan)",
        "$filter=userFlowTypeVersion gt 1 and not startswith(id,'B2C_1_x')&$top=50",
    ),
    ("count filtered", ""),
];

/// Creates a flow of one of three types and versions, so the query scenario's filters and
/// orders have something to tell apart.
async fn create_typed(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let user_state = state(user)?;
    let id = user_state.next_id('q');
    let (kind, version) = match user_state.counter % 3 {
        0 => ("signIn", 1),
        1 => ("signUp", 2),
        _ => ("passwordReset", 3),
    };
    call(
        user,
        GooseMethod::Post,
        COLLECTION,
        "userFlows (typed)",
        Some(typed_body(&id, kind, version)),
        &[201],
    )
    .await?;
    state(user)?.remember(id);
    Ok(())
}

/// Sends the user's next query of [`QUERIES`], following `@odata.nextLink` for a few pages.
async fn query_pages(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let user_state = state(user)?;
    let (label, query) = QUERIES[user_state.next_query % QUERIES.len()];
    user_state.next_query += 1;
    if query.is_empty() {
        let path = format!("{COLLECTION}/$count?$filter=userFlowType eq 'signUp'");
        let answer = call(
            user,
            GooseMethod::Get,
            &path,
            "query: count filtered",
            None,
            &[200],
        )
        .await?;
        if answer.body.parse::<u64>().is_err() {
            return Err(custom(format!(
                "a /$count answer that is not a number: {}",
                answer.body
            )));
        }
        return Ok(());
    }
    let mut path = format!("{COLLECTION}?{}", query.replace("{tag}", context.tag()));
    let mut name = format!("query: {label}");
    for _ in 0..MAX_PAGES {
        let answer = call(user, GooseMethod::Get, &path, &name, None, &[200]).await?;
        let page: Value = serde_json::from_str(&answer.body).map_err(|e| custom(e.to_string()))?;
        if !page["value"].is_array() {
            return Err(custom(format!(
                "a query page without a value array: {page}"
            )));
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => next.clone_into(&mut path),
            None => return Ok(()),
        }
        name = format!("query: {label} (nextLink)");
    }
    Ok(())
}

/// Creates [`BATCH_SIZE`] flows in one `$batch`; every item must be a 201.
async fn create_batch(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let user_state = state(user)?;
    let requests: Vec<Value> = (0..BATCH_SIZE)
        .map(|i| {
            let id = user_state.next_id('b');
            serde_json::json!({
                "id": i.to_string(),
                "method": "POST",
                "url": "/identity/userFlows",
                "headers": {"Content-Type": "application/json"},
                "body": serde_json::json!({"id": id, "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1}),
            })
        })
        .collect();
    let body = serde_json::json!({ "requests": requests }).to_string();
    let answer = call(
        user,
        GooseMethod::Post,
        "/beta/$batch",
        "$batch (20 creates)",
        Some(body),
        &[200],
    )
    .await?;
    let answered: Value = serde_json::from_str(&answer.body).map_err(|e| custom(e.to_string()))?;
    let statuses: Vec<u64> = answered["responses"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["status"].as_u64()).collect())
        .unwrap_or_default();
    if statuses.len() != BATCH_SIZE || statuses.iter().any(|s| *s != 201) {
        return Err(custom(format!("a batch of creates answered {statuses:?}")));
    }
    Ok(())
}

fn item_path(id: &str) -> String {
    format!("{COLLECTION}/{id}")
}

/// Creates a flow no other request creates; remembers it for gets and deletes.
async fn create_unique(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let id = state(user)?.next_id('u');
    call(
        user,
        GooseMethod::Post,
        COLLECTION,
        "userFlows",
        Some(create_body(&id)),
        &[201],
    )
    .await?;
    state(user)?.remember(id);
    Ok(())
}

/// Gets one of the user's own flows (creates one first when it has none).
async fn get_own(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let owned = &state(user)?.owned;
    let Some(id) = owned.get(owned.len() / 2).cloned() else {
        return create_unique(user, context).await;
    };
    let answer = call(
        user,
        GooseMethod::Get,
        &item_path(&id),
        "userFlows/{id}",
        None,
        &[200],
    )
    .await?;
    let got: Value = serde_json::from_str(&answer.body).map_err(|e| custom(e.to_string()))?;
    if got["id"].as_str() != Some(id.as_str()) {
        return Err(custom(format!(
            "GET {id} answered {} ({got})",
            answer.status
        )));
    }
    Ok(())
}

/// Lists the collection a page at a time, following `@odata.nextLink` for a few pages.
async fn list_pages(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let mut path = format!("{COLLECTION}?$top={PAGE_SIZE}");
    let mut name = "userFlows";
    for _ in 0..MAX_PAGES {
        let answer = call(user, GooseMethod::Get, &path, name, None, &[200]).await?;
        let page: Value = serde_json::from_str(&answer.body).map_err(|e| custom(e.to_string()))?;
        if !page["value"].is_array() {
            return Err(custom(format!("a list page without a value array: {page}")));
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => next.clone_into(&mut path),
            None => return Ok(()),
        }
        name = "userFlows (nextLink)";
    }
    Ok(())
}

/// Deletes the user's oldest remembered flow (creates one first when it has none).
async fn delete_own(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let owned = &mut state(user)?.owned;
    if owned.is_empty() {
        return create_unique(user, context).await;
    }
    let id = owned.remove(0);
    call(
        user,
        GooseMethod::Delete,
        &item_path(&id),
        "userFlows/{id}",
        None,
        &[204],
    )
    .await?;
    Ok(())
}

/// Creates a flow and deletes it at once.
async fn create_then_delete(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let id = state(user)?.next_id('d');
    call(
        user,
        GooseMethod::Post,
        COLLECTION,
        "userFlows (churn)",
        Some(create_body(&id)),
        &[201],
    )
    .await?;
    call(
        user,
        GooseMethod::Delete,
        &item_path(&id),
        "userFlows/{id} (churn)",
        None,
        &[204],
    )
    .await?;
    Ok(())
}

/// Creates the next id of the contested set: 201 for the first create of an id, 409 after.
async fn create_contested(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let user_state = state(user)?;
    let index = user_state.next_contested;
    user_state.next_contested = (index + 1) % context.contested.len();
    let contested = &context.contested[index];
    // Once anyone got the 201, a 409 is certain; before, this create is likely the first.
    let expected = if contested.created.load(Ordering::Acquire) > 0 {
        [409, 201]
    } else {
        [201, 409]
    };
    let answer = call(
        user,
        GooseMethod::Post,
        COLLECTION,
        "userFlows (contested)",
        Some(create_body(&contested.id)),
        &expected,
    )
    .await?;
    if answer.status == 201 {
        contested.created.fetch_add(1, Ordering::AcqRel);
    }
    contested.answered.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The `faults` scenario's create: a 201 is remembered; an injected failure is not (with
/// `afterCommit` the flow may exist all the same: it is never read back).
async fn faults_create(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let id = state(user)?.next_id('f');
    let (name, _) = FAULTS_REQUESTS[0];
    let answer = faulted(
        user,
        GooseMethod::Post,
        COLLECTION,
        name,
        Some(create_body(&id)),
        201,
    )
    .await?;
    if answer.status == 201 {
        state(user)?.remember(id);
    }
    Ok(())
}

/// Gets one of the user's own flows (creates one first when it has none).
async fn faults_get(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let owned = &state(user)?.owned;
    let Some(id) = owned.last().cloned() else {
        return faults_create(user, context).await;
    };
    let (name, _) = FAULTS_REQUESTS[1];
    faulted(user, GooseMethod::Get, &item_path(&id), name, None, 200).await?;
    Ok(())
}

/// One page of the collection.
async fn faults_list(user: &mut GooseUser, _context: Arc<RunContext>) -> TransactionResult {
    let path = format!("{COLLECTION}?$top={PAGE_SIZE}");
    let (name, _) = FAULTS_REQUESTS[2];
    faulted(user, GooseMethod::Get, &path, name, None, 200).await?;
    Ok(())
}

/// Deletes the user's oldest remembered flow (creates one first when it has none); it is
/// forgotten whatever the answer, so no flow is deleted twice.
async fn faults_delete(user: &mut GooseUser, context: Arc<RunContext>) -> TransactionResult {
    let owned = &mut state(user)?.owned;
    if owned.is_empty() {
        return faults_create(user, context).await;
    }
    let id = owned.remove(0);
    let (name, _) = FAULTS_REQUESTS[3];
    faulted(user, GooseMethod::Delete, &item_path(&id), name, None, 204).await?;
    Ok(())
}

/// A request of the `faults` scenario: `expected`, an injected status or no answer. goose
/// names requests by method and name, so `name` is [`FAULTS_REQUESTS`]'s without the method.
async fn faulted(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    request: &str,
    body: Option<String>,
    expected: u16,
) -> Result<Answer, Box<TransactionError>> {
    let name = request.split_once(' ').map_or(request, |(_, name)| name);
    call_with(user, method, path, name, body, &[expected], true).await
}
