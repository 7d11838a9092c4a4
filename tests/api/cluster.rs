//! The sharded cluster of `deploy/`: three real instances behind real `HAProxy`, started by
//! `deploy/cluster.sh`. Creates in 300 tenants go through the balancer; each tenant's flows
//! are on one instance only; paging links and `$batch` work through it; a killed instance's
//! tenants get the balancer's Graph-shaped 503 while the others go on; after a restart every
//! acknowledged create is there. Without `haproxy` the test says it was skipped, unless
//! `USERFLOWS_REQUIRE_HAPROXY=1` (set by CI).

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{flow, token_for};

const INSTANCES: u16 = 3;
const TENANTS: usize = 300;

/// A cluster brought up by `deploy/cluster.sh`, brought down (by PID) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
    agent: ureq::Agent,
    /// Extra `serve` flags for every instance.
    emulator_args: &'static str,
}

impl Cluster {
    /// A cluster of `INSTANCES` instances, up.
    fn up(emulator_args: &'static str) -> Self {
        let cluster = Self {
            dir: tempfile::tempdir().unwrap(),
            base: free_ports(),
            // Each call on a connection of its own: an idle pooled connection the balancer
            // closed meanwhile (instances stop and start under it) would fail a POST, which
            // ureq does not resend, with an early end of stream.
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(20))
                .max_idle_connections(0)
                .build(),
            emulator_args,
        };
        cluster.script(&["up", &INSTANCES.to_string()]);
        cluster
    }

    fn script(&self, args: &[&str]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("bash")
            .arg(root.join("deploy/cluster.sh"))
            .args(args)
            .env("CLUSTER_DIR", self.dir.path())
            .env("BASE_PORT", self.base.to_string())
            .env("EMULATOR_BIN", env!("CARGO_BIN_EXE_userflows-emulator"))
            .env("EMULATOR_ARGS", self.emulator_args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cluster.sh {args:?}: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn pid_file(&self, instance: u16) -> PathBuf {
        self.dir.path().join(format!("instance-{instance}.pid"))
    }

    /// `method path` on `port` as `tenant` (or with no token): the status and the JSON body.
    fn call(
        &self,
        port: u16,
        tenant: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .agent
            .request(method, &format!("http://127.0.0.1:{port}{path}"));
        if let Some(tenant) = tenant {
            request = request.set("Authorization", &format!("Bearer {}", token_for(tenant)));
        }
        let answer = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let answer = match answer {
            Ok(answer) | Err(ureq::Error::Status(_, answer)) => answer,
            Err(e) => panic!("{method} {path} on {port}: {e}"),
        };
        let status = answer.status();
        let text = answer.into_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Through the balancer.
    fn graph(&self, tenant: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(self.base, Some(tenant), method, path, body)
    }

    /// Creates flow `id` in `tenant` through the balancer; the status and body.
    fn create(&self, tenant: &str, id: &str) -> (u16, Value) {
        self.graph(tenant, "POST", "/beta/identity/userFlows", Some(flow(id)))
    }

    /// The tenants instance `i` holds, read from its own admin route.
    fn tenants_of(&self, instance: u16) -> BTreeSet<String> {
        let (status, body) = self.call(
            self.base + instance,
            None,
            "GET",
            "/_emulator/tenants",
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenantId"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new("bash")
            .arg(root.join("deploy/cluster.sh"))
            .arg("down")
            .env("CLUSTER_DIR", self.dir.path())
            .env("BASE_PORT", self.base.to_string())
            .output();
    }
}

/// A base port with it and the next `INSTANCES` ports free, a different range for each
/// cluster of this process, below the kernel's ephemeral range (where the other tests' servers
/// on port 0 bind).
fn free_ports() -> u16 {
    static CLUSTERS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let nth = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = u16::try_from(std::process::id() % 500).unwrap() * 10 + nth * 5_000;
    (0..200)
        .map(|k| 20_000 + (seed + k * 17) % 10_000)
        .find(|&base| (0..=INSTANCES).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()))
        .unwrap()
}

fn haproxy_present() -> bool {
    let found = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("USERFLOWS_REQUIRE_HAPROXY").is_none(),
            "USERFLOWS_REQUIRE_HAPROXY is set but haproxy is not installed"
        );
        eprintln!("SKIPPED the cluster test: no haproxy (apt-get install -y haproxy)");
    }
    found
}

#[test]
fn throttling_and_the_token_endpoint_are_per_tenant_through_the_balancer() {
    if !haproxy_present() {
        return;
    }
    let cluster = Cluster::up("--throttle-tenant-rpm 3");
    // Two tenants on two different instances.
    let tenants: Vec<String> = (0..40).map(|i| format!("throttled-{i}")).collect();
    for tenant in &tenants {
        assert_eq!(cluster.create(tenant, "First").0, 201);
    }
    let home = |tenant: &str| {
        (1..=INSTANCES)
            .find(|&i| cluster.tenants_of(i).contains(tenant))
            .unwrap()
    };
    let a = &tenants[0];
    let b = tenants.iter().find(|t| home(t) != home(a)).unwrap();
    // Tenant a's bucket (3 a minute) is on its one instance: the fourth request is refused,
    // whatever the balancer does, and tenant b is not affected.
    assert_eq!(cluster.create(a, "Second").0, 201);
    assert_eq!(cluster.create(a, "Third").0, 201);
    let (status, body) = cluster.create(a, "Fourth");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(cluster.create(b, "Second").0, 201);

    // The token endpoint routes by the tenant in its path: the request lands on (and is
    // journaled by) the instance that holds that tenant.
    let form = "grant_type=client_credentials&client_id=app&client_secret=s\
                &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";
    let answer = cluster
        .agent
        .post(&format!(
            "http://127.0.0.1:{}/{b}/oauth2/v2.0/token",
            cluster.base
        ))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(form)
        .unwrap();
    assert_eq!(answer.status(), 200);
    let journal = |instance: u16| {
        let path = "/_emulator/requests?operation=token";
        let (status, body) = cluster.call(cluster.base + instance, None, "GET", path, None);
        assert_eq!(status, 200);
        body["value"].as_array().unwrap().len()
    };
    assert_eq!(journal(home(b)), 1);
    let elsewhere: usize = (1..=INSTANCES).filter(|&i| i != home(b)).map(journal).sum();
    assert_eq!(elsewhere, 0);
}

/// The acknowledged creates: (tenant as the emulator files it, flow id).
type Acknowledged = Vec<(String, String)>;

/// Instance -> the tenants it holds.
type Held = HashMap<u16, BTreeSet<String>>;

#[test]
fn tenants_shard_across_instances_behind_haproxy_and_survive_a_killed_instance() {
    if !haproxy_present() {
        return;
    }
    let cluster = Cluster::up("");

    // Creates in 300 tenants through the balancer, GUID tenants in upper case for some: the
    // balancer routes a tenant whatever its case, as the emulator files it.
    let tenants: Vec<String> = (0..TENANTS)
        .map(|i| format!("c1a55e00-0000-4000-8000-{i:012X}"))
        .collect();
    let mut acknowledged = Acknowledged::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let id = format!("Flow{i}");
        let (status, body) = cluster.create(tenant, &id);
        assert_eq!(status, 201, "{tenant}: {body}");
        acknowledged.push((tenant.to_ascii_lowercase(), format!("B2C_1_{id}")));
    }
    let held = each_tenant_on_one_instance(&cluster, &acknowledged);
    paging_and_batch(&cluster, &tenants[0], &mut acknowledged);
    killed_and_restarted(&cluster, &held, &tenants, &mut acknowledged);
    migrated(&cluster, &held, &acknowledged);
}

/// Each tenant on exactly one instance, and every instance holds some.
fn each_tenant_on_one_instance(cluster: &Cluster, acknowledged: &Acknowledged) -> Held {
    let held: Held = (1..=INSTANCES)
        .map(|i| (i, cluster.tenants_of(i)))
        .collect();
    let all: BTreeSet<String> = acknowledged.iter().map(|(t, _)| t.clone()).collect();
    let total: usize = held.values().map(BTreeSet::len).sum();
    assert_eq!(total, TENANTS, "a tenant is on more than one instance");
    let union: BTreeSet<String> = held.values().flatten().cloned().collect();
    assert_eq!(union, all);
    for (instance, tenants) in &held {
        assert!(tenants.len() > 30, "instance {instance}: {}", tenants.len());
    }
    held
}

/// Paging links and `$batch` through the balancer, as against one instance.
fn paging_and_batch(cluster: &Cluster, pager: &str, acknowledged: &mut Acknowledged) {
    for i in 0..4 {
        let (status, _) = cluster.create(pager, &format!("Page{i}"));
        assert_eq!(status, 201);
        acknowledged.push((pager.to_ascii_lowercase(), format!("B2C_1_Page{i}")));
    }
    let mut path = "/beta/identity/userFlows?$top=2".to_owned();
    let mut walked = 0;
    loop {
        let (status, page) = cluster.graph(pager, "GET", &path, None);
        assert_eq!(status, 200, "{page}");
        walked += page["value"].as_array().unwrap().len();
        let Some(next) = page["@odata.nextLink"].as_str() else {
            break;
        };
        let balancer = format!("http://127.0.0.1:{}", cluster.base);
        assert!(next.starts_with(&balancer), "{next}");
        next[balancer.len()..].clone_into(&mut path);
    }
    assert_eq!(walked, 5);
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/identity/userFlows",
         "headers": {"Content-Type": "application/json"}, "body": flow("Batched")},
        {"id": "2", "method": "GET", "url": "/identity/userFlows/$count", "dependsOn": ["1"]}
    ]});
    let (status, answered) = cluster.graph(pager, "POST", "/beta/$batch", Some(batch));
    assert_eq!(status, 200, "{answered}");
    let statuses: Vec<_> = answered["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(201), json!(200)]);
    acknowledged.push((pager.to_ascii_lowercase(), "B2C_1_Batched".to_owned()));
}

/// Every acknowledged flow as a get through the balancer: its status and body each.
fn gets(cluster: &Cluster, acknowledged: &Acknowledged) -> Vec<(u16, Value)> {
    acknowledged
        .iter()
        .map(|(tenant, id)| {
            let path = format!("/beta/identity/userFlows/{id}");
            cluster.graph(tenant, "GET", &path, None)
        })
        .collect()
}

/// A `kill -9` of instance 2: its tenants get the balancer's 503, the others are served and
/// written; restarted on its data directory, every acknowledged create is there.
fn killed_and_restarted(
    cluster: &Cluster,
    held: &Held,
    tenants: &[String],
    acknowledged: &mut Acknowledged,
) {
    let pid = std::fs::read_to_string(cluster.pid_file(2)).unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    for ((tenant, _), (status, body)) in acknowledged.iter().zip(gets(cluster, acknowledged)) {
        if held[&2].contains(tenant) {
            assert_eq!(status, 503, "{tenant}: {body}");
            assert_eq!(body["error"]["code"], "serviceNotAvailable", "{body}");
            assert!(body["error"]["innerError"]["request-id"].is_string());
        } else {
            assert_eq!(status, 200, "{tenant}: {body}");
        }
    }
    for tenant in tenants
        .iter()
        .filter(|t| !held[&2].contains(&t.to_ascii_lowercase()))
    {
        let (status, body) = cluster.create(tenant, "DuringOutage");
        assert_eq!(status, 201, "{body}");
        acknowledged.push((tenant.to_ascii_lowercase(), "B2C_1_DuringOutage".to_owned()));
    }

    // `start` returns once the balancer's health check sees the instance up.
    cluster.script(&["start", "2"]);
    for ((tenant, id), (status, body)) in acknowledged.iter().zip(gets(cluster, acknowledged)) {
        assert_eq!(status, 200, "{tenant} {id}: {body}");
    }
    assert_eq!(cluster.tenants_of(2), held[&2]);
}

/// A tenant moved from instance 1 to instance 3 (log export, import, route): its flows are
/// served from instance 3 alone, through the same balancer address.
fn migrated(cluster: &Cluster, held: &Held, acknowledged: &Acknowledged) {
    let moved = held[&1].iter().next().unwrap().clone();
    cluster.script(&["migrate", &moved, "1", "3"]);
    assert!(!cluster.tenants_of(1).contains(&moved));
    assert!(cluster.tenants_of(3).contains(&moved));
    let (status, list) = cluster.graph(&moved, "GET", "/beta/identity/userFlows", None);
    assert_eq!(status, 200, "{list}");
    let ids: Vec<_> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    let expected: Vec<_> = acknowledged
        .iter()
        .filter(|(t, _)| *t == moved)
        .map(|(_, id)| json!(id))
        .collect();
    assert_eq!(ids, expected);
    let (status, body) = cluster.create(&moved, "AfterMove");
    assert_eq!(status, 201, "{body}");
    let direct = cluster.call(
        cluster.base + 3,
        Some(&moved),
        "GET",
        "/beta/identity/userFlows/$count",
        None,
    );
    assert_eq!(direct.0, 200);
}
