//! `spawn_app()` and `TestApp`: one method per API call, so tests read like a client.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use userflows_emulator::app::BackgroundServer;
use userflows_emulator::config::{Settings, Storage};
use userflows_emulator::http::auth::{mint, Claims};

/// A tenant id every test can use.
pub const TENANT: &str = "11111111-1111-1111-1111-111111111111";
pub const OTHER_TENANT: &str = "22222222-2222-2222-2222-222222222222";

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The Graph error code, asserting the whole envelope's shape on the way.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let body = self.json();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        let inner = &error["innerError"];
        assert_eq!(
            inner["request-id"].as_str(),
            self.header("request-id"),
            "{body}"
        );
        assert_eq!(
            inner["client-request-id"].as_str(),
            self.header("client-request-id"),
            "{body}"
        );
        let date = inner["date"].as_str().unwrap();
        assert_eq!(date.len(), 19, "seconds precision, no offset: {date}");
        error["code"].as_str().unwrap().to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// The claims of a JWT, decoded (not verified).
pub fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// A token of `tenant` as the `token` command prints it.
pub fn token_for(tenant: &str) -> String {
    mint(&Claims::for_tenant(tenant, &[], &[], 3600)).unwrap()
}

/// A valid create body.
pub fn flow(id: &str) -> Value {
    json!({"id": id, "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1})
}

/// A walk that ran while others wrote: each of `lasting` (present for the whole walk) is in it
/// exactly once, and no id is in it twice.
/// `n` batch items creating `B2C_1_{prefix}0`, `B2C_1_{prefix}1`, …, with ids "0", "1", ….
pub fn create_items(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": i.to_string(), "method": "POST", "url": "/identity/userFlows",
                   "headers": {"Content-Type": "application/json"},
                   "body": flow(&format!("{prefix}{i}"))})
        })
        .collect()
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The status of each item of a batch's answer, in order.
pub fn item_statuses(r: &Resp) -> Vec<u64> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["status"].as_u64().unwrap())
        .collect()
}

/// One request to `address` (`http://…`) on a new connection of its own, written by hand so
/// that a broken connection shows as what it is: the bytes read until the server closed it
/// (`Ok`, empty when it closed without answering), or the error that ended the read (a reset,
/// or a timeout after `wait`).
pub fn exchange(
    address: &str,
    token: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    wait: Duration,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let address = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(wait))?;
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n{content_type}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

pub fn assert_walk_exact(walk: &[String], lasting: &[String]) {
    for id in lasting {
        assert_eq!(
            walk.iter().filter(|w| *w == id).count(),
            1,
            "{id} once in {walk:?}"
        );
    }
    let mut unique = walk.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), walk.len(), "no flow twice: {walk:?}");
}

/// Walks with `walk` while another thread changes the tenant with `write(0)`, `write(1)`, …:
/// at least `at_least` walks, and on until the writer has done three rounds during them.
pub fn walks_while_writing(
    at_least: usize,
    walk: impl Fn() -> Vec<String>,
    write: impl Fn(usize) + Sync,
) -> Vec<Vec<String>> {
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                write(i);
                i += 1;
                rounds.store(i, Ordering::Relaxed);
            }
        });
        let mut walks = Vec::new();
        while walks.len() < at_least || rounds.load(Ordering::Relaxed) < 3 {
            assert!(walks.len() < 1000, "the writer made no progress");
            walks.push(walk());
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        walks
    })
}

/// A running emulator and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// `https://127.0.0.1:PORT`, when the settings ask for an HTTPS listener.
    pub tls_address: Option<String>,
    pub settings: Settings,
    /// The bearer token used by the plain methods.
    pub token: String,
    agent: ureq::Agent,
    running: Option<BackgroundServer>,
    /// Kept so the directory lives as long as the app.
    _dir: Option<tempfile::TempDir>,
}

/// An emulator in the default durable mode over a fresh temp directory.
pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// As [`spawn_app`], with settings changed first.
pub fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        userflows_emulator::telemetry::init("debug");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::embedded(dir.path().join("data"));
    change(&mut settings);
    let (address, tls_address, running) = start(&settings);
    TestApp {
        address,
        tls_address,
        settings,
        token: token_for(TENANT),
        agent: ureq::AgentBuilder::new().build(),
        running: Some(running),
        _dir: Some(dir),
    }
}

fn start(settings: &Settings) -> (String, Option<String>, BackgroundServer) {
    let server = BackgroundServer::start(settings).expect("the server starts");
    assert!(
        server.wait_ready(Duration::from_secs(60)),
        "not ready within 60 s"
    );
    let mut address = server.address();
    if address.ip().is_unspecified() {
        // Listening on every interface: talk to it over loopback only.
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let tls = server.tls_address().map(|a| format!("https://{a}"));
    (format!("http://{address}"), tls, server)
}

/// Waits until `GET /_emulator/ready` answers 200 (recovery runs after the server binds).
/// Runs `serve` on a free port, in memory, with `args`, expecting it to refuse to start:
/// its stderr.
pub fn refused_start(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_userflows-emulator"))
        .args(["serve", "--listen", "127.0.0.1:0", "--in-memory"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn wait_until_ready(address: &str) {
    let agent = ureq::AgentBuilder::new().build();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match agent.get(&format!("{address}/_emulator/ready")).call() {
            Ok(r) if r.status() == 200 => return,
            Ok(_) | Err(ureq::Error::Status(503, _)) => {}
            Err(e) => panic!("ready check: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl TestApp {
    /// The data directory of a disk-backed app.
    pub fn data_dir(&self) -> PathBuf {
        match &self.settings.storage {
            Storage::Disk { dir, .. } => dir.clone(),
            Storage::Memory => panic!("an in-memory app has no directory"),
        }
    }

    /// Writes `sent` on a new connection as it is, then reads until the server closes it
    /// (20 s at most): the answer to a request the client never finishes sending.
    pub fn answer_to_unfinished(&self, sent: &str) -> String {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(self.address.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        stream.write_all(sent.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Stops the server gracefully and waits until it has released the directory.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.running.take() {
            server.stop();
        }
    }

    /// Starts the server again with the same settings (so the same directory).
    pub fn start(&mut self) {
        assert!(self.running.is_none(), "stop first");
        let (address, tls_address, running) = start(&self.settings);
        self.address = address;
        self.tls_address = tls_address;
        self.running = Some(running);
    }

    /// Stops and starts again on the same directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Any request; `headers` replace the defaults (`Authorization` with `self.token`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut request = self.agent.request(method, &self.url(path));
        let bearer = format!("Bearer {}", self.token);
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        {
            request = request.set("Authorization", &bearer);
        }
        for (name, value) in headers {
            if !value.is_empty() {
                request = request.set(name, value);
            }
        }
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = response.header(&n).unwrap_or_default().to_owned();
                (n, v)
            })
            .collect();
        let body = response.into_string().unwrap();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `POST /beta/$batch` of `items`.
    /// `PUT /_emulator/faults` with `rules`.
    pub fn put_faults(&self, rules: &Value) -> Resp {
        self.request(
            "PUT",
            "/_emulator/faults",
            &[("Content-Type", "application/json")],
            Some(&rules.to_string()),
        )
    }

    pub fn batch(&self, items: &[Value]) -> Resp {
        self.request(
            "POST",
            "/beta/$batch",
            &[("Content-Type", "application/json")],
            Some(&json!({ "requests": items }).to_string()),
        )
    }

    pub fn create(&self, body: &Value) -> Resp {
        self.create_raw(&body.to_string(), "application/json")
    }

    pub fn create_as(&self, token: &str, body: &Value) -> Resp {
        let bearer = format!("Bearer {token}");
        self.request(
            "POST",
            "/beta/identity/userFlows",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
    }

    pub fn create_raw(&self, body: &str, content_type: &str) -> Resp {
        self.request(
            "POST",
            "/beta/identity/userFlows",
            &[("Content-Type", content_type)],
            Some(body),
        )
    }

    pub fn get(&self, id: &str) -> Resp {
        self.request("GET", &format!("/beta/identity/userFlows/{id}"), &[], None)
    }

    pub fn get_as(&self, token: &str, id: &str) -> Resp {
        let bearer = format!("Bearer {token}");
        self.request(
            "GET",
            &format!("/beta/identity/userFlows/{id}"),
            &[("Authorization", &bearer)],
            None,
        )
    }

    /// `GET /beta/identity/userFlows` with another token.
    pub fn list_as(&self, token: &str) -> Resp {
        let bearer = format!("Bearer {token}");
        self.request(
            "GET",
            "/beta/identity/userFlows",
            &[("Authorization", &bearer)],
            None,
        )
    }

    pub fn delete(&self, id: &str) -> Resp {
        self.request(
            "DELETE",
            &format!("/beta/identity/userFlows/{id}"),
            &[],
            None,
        )
    }

    /// `GET /beta/identity/userFlows?{query}`
    pub fn list(&self, query: &str) -> Resp {
        self.request(
            "GET",
            &format!("/beta/identity/userFlows?{query}"),
            &[],
            None,
        )
    }

    pub fn count(&self) -> Resp {
        self.request("GET", "/beta/identity/userFlows/$count", &[], None)
    }

    /// Follows `@odata.nextLink` from `first_query` to the end; every id, in order.
    pub fn list_all(&self, first_query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut page = self.list(first_query);
        loop {
            assert_eq!(page.status, 200, "{page:?}");
            let body = page.json();
            for flow in body["value"].as_array().unwrap() {
                ids.push(flow["id"].as_str().unwrap().to_owned());
            }
            let Some(next) = body["@odata.nextLink"].as_str() else {
                return ids;
            };
            let path = next
                .strip_prefix(&self.address)
                .expect("nextLink on our base");
            page = self.request("GET", path, &[], None);
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens a stopped server's (or a just-dropped handle's) sled directory. sled releases its
/// directory lock when the last of its background tasks lets go of the file, a moment after the
/// handle is dropped, so a lock error is retried for up to 5 s.
pub fn open_sled(dir: &Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("opening {}: {e}", dir.display()),
        }
    }
    panic!("{} stayed locked for 5 s", dir.display());
}

/// The number of events in a tenant's stream of a stopped app's directory, read through the
/// store (a stored value may hold several events, docs/adr/0007).
pub fn stored_events(dir: &Path, tenant: &str) -> usize {
    use userflows_emulator::store::{EventLog, SledEventLog, StoreError};
    let log = (0..100)
        .find_map(|_| match SledEventLog::open(dir, false) {
            Ok(log) => Some(log),
            Err(StoreError::Locked { .. }) => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
            Err(e) => panic!("opening {}: {e}", dir.display()),
        })
        .unwrap_or_else(|| panic!("{} stayed locked for 5 s", dir.display()));
    if !log.has_tenant(tenant).unwrap() {
        return 0;
    }
    let mut events = 0;
    log.open(tenant)
        .unwrap()
        .scan(1, &mut |_, _| {
            events += 1;
            Ok(true)
        })
        .unwrap();
    events
}

/// One tenant's events in a stopped app's sled directory, addressed by seq as the store keys
/// them (`store::event_key`), for tests that damage or inspect a log directly. Flushed when
/// dropped.
pub struct RawEvents {
    db: sled::Db,
    tree: sled::Tree,
    tenant: String,
}

impl RawEvents {
    pub fn open(dir: &Path, tenant: &str) -> Self {
        let db = open_sled(dir);
        let tree = db
            .open_tree(userflows_emulator::store::EVENTS_TREE)
            .unwrap();
        Self {
            db,
            tree,
            tenant: tenant.to_owned(),
        }
    }

    /// The value stored under `seq`.
    pub fn get(&self, seq: u64) -> sled::IVec {
        let key = userflows_emulator::store::event_key(&self.tenant, seq);
        self.tree.get(key).unwrap().unwrap()
    }

    /// Stores `value` under `seq`, replacing what is there.
    pub fn insert(&self, seq: u64, value: impl Into<sled::IVec>) {
        let key = userflows_emulator::store::event_key(&self.tenant, seq);
        self.tree.insert(key, value).unwrap();
    }

    /// Stores `value` under a key of this tenant whose end is `suffix` instead of a seq.
    pub fn insert_bad_key(&self, suffix: &[u8], value: impl Into<sled::IVec>) {
        let mut key = self.tenant.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(suffix);
        self.tree.insert(key, value).unwrap();
    }

    /// The first byte of each stored value, in seq order.
    pub fn first_bytes(&self) -> Vec<u8> {
        let mut prefix = self.tenant.as_bytes().to_vec();
        prefix.push(0);
        self.tree
            .scan_prefix(prefix)
            .values()
            .map(|v| v.unwrap()[0])
            .collect()
    }
}

impl Drop for RawEvents {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}
