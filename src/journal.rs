//! The request journal: every Graph, batch-item and identity request the emulator answered,
//! with what it decided about it (tenant, app, operation, status, throttling, fault, the event
//! it appended), so that a client's test can assert what its client did. Bounded by the memory
//! its entries take (their JSON and their bookkeeping), the oldest entries going first; read
//! with filters and grouped into logical requests (a request and its retries) by
//! [`Journal::summary`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::chaos::{Effect, Operation};
use crate::json_text::is_plain;

/// An RFC 3339 time with any offset (`Z`, `z`, `+01:00`, `-05:30`) and any precision: the
/// form a time compared with entries' `at` (the journal's `since`) or with events'
/// `recorded_at` (`log replay --until-time`) is given in.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// (policy) The journal's default bound: 16 MiB of entries' JSON.
pub const DEFAULT_JOURNAL_BYTES: usize = 16 << 20;

/// One answered request, as it is recorded (borrowing what it can from the request).
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// When the request arrived.
    pub at: SystemTime,
    pub tenant: Option<&'a str>,
    pub app: Option<&'a str>,
    pub operation: Option<Operation>,
    pub method: &'a str,
    /// The path and its query, as sent.
    pub path: PathAndQuery<'a>,
    /// `None`: no answer (a fault rule broke the connection).
    pub status: Option<u16>,
    pub duration: Duration,
    pub request_id: uuid::Uuid,
    pub client_request_id: Option<&'a str>,
    pub retry_attempt: Option<u32>,
    /// The first 8 bytes of the SHA-256 of the request body, shown in hex.
    pub body_digest: Option<[u8; 8]>,
    pub batch: Option<BatchItem>,
    pub throttled: Option<Throttled>,
    pub fault: Option<FaultNote>,
    /// The log position of the event a committed write appended.
    pub seq: Option<u64>,
    /// The answer's `Retry-After`, in seconds (for the summary; not written in the JSON).
    pub retry_after: Option<u64>,
}

/// A request's path and query, shown as `path?query` (just `path` without a query).
#[derive(Debug, Clone, Copy)]
pub struct PathAndQuery<'a> {
    pub path: &'a str,
    pub query: &'a str,
}

/// Which batch, and which of its items, an entry is.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub request_id: uuid::Uuid,
    pub item_id: Box<str>,
}

/// A throttled request's `Retry-After`, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Throttled {
    pub retry_after: u64,
}

/// The fault rule a request met, and the effect it had.
#[derive(Debug, Clone)]
pub struct FaultNote {
    pub rule: Arc<str>,
    pub effect: Effect,
}

impl Entry<'_> {
    /// Appends the entry's JSON to `out`: the fields in a fixed order, every absent one as
    /// `null`. Written by hand rather than through serde, so that field names, ids, digests
    /// and numbers, which never need escaping, are copied as they are; only text a client
    /// chose (path, ids it sent, rule names) is checked for characters to escape.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_at(out, self.at);
        self.write_after_at(out);
    }

    /// The entry's JSON after its `at`: `"tenant":…}`. The journal keeps `{` and this, and
    /// writes the time when the entry is read. Returns where in `out` the value of
    /// `clientRequestId` starts (the tenant's starts at [`TENANT_AT`] of a kept entry).
    fn write_after_at(&self, out: &mut Vec<u8>) -> usize {
        use std::io::Write;
        out.extend_from_slice(b"\"tenant\":");
        optional_text(out, self.tenant);
        out.extend_from_slice(b",\"app\":");
        optional_text(out, self.app);
        out.extend_from_slice(b",\"operation\":");
        match self.operation {
            Some(operation) => {
                out.push(b'"');
                out.extend_from_slice(operation.name().as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"method\":");
        text(out, self.method);
        out.extend_from_slice(b",\"path\":");
        let PathAndQuery { path, query } = self.path;
        if query.is_empty() {
            text(out, path);
        } else if is_plain(path.as_bytes()) && is_plain(query.as_bytes()) {
            out.push(b'"');
            out.extend_from_slice(path.as_bytes());
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
            out.push(b'"');
        } else {
            text(out, &format!("{path}?{query}"));
        }
        out.extend_from_slice(b",\"status\":");
        optional_number(out, self.status);
        out.extend_from_slice(b",\"durationMs\":");
        // Milliseconds to the microsecond, shortest form ("0.812", "12.5", "3.0").
        let micros = self.duration.as_micros();
        number(out, micros / 1000);
        out.push(b'.');
        let mut fraction = micros % 1000;
        let mut digits: usize = 3;
        while digits > 1 && fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        // Zero-padded to its digits: 0.01 is "0.01", not "0.1".
        let mut buffer = itoa::Buffer::new();
        let fraction = buffer.format(fraction);
        out.resize(out.len() + digits.saturating_sub(fraction.len()), b'0');
        out.extend_from_slice(fraction.as_bytes());
        out.extend_from_slice(b",\"requestId\":");
        uuid_text(out, &self.request_id);
        out.extend_from_slice(b",\"clientRequestId\":");
        let client_request_id_at = out.len();
        optional_text(out, self.client_request_id);
        out.extend_from_slice(b",\"retryAttempt\":");
        optional_number(out, self.retry_attempt);
        out.extend_from_slice(b",\"bodyDigest\":");
        match &self.body_digest {
            Some(bytes) => {
                out.push(b'"');
                for b in bytes {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"batch\":");
        match &self.batch {
            Some(item) => {
                out.extend_from_slice(b"{\"requestId\":");
                uuid_text(out, &item.request_id);
                out.extend_from_slice(b",\"itemId\":");
                text(out, &item.item_id);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"throttled\":");
        match self.throttled {
            Some(throttled) => {
                let _ = write!(out, "{{\"retryAfter\":{}}}", throttled.retry_after);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"fault\":");
        match &self.fault {
            Some(fault) => {
                out.extend_from_slice(b"{\"rule\":");
                text(out, &fault.rule);
                out.extend_from_slice(b",\"effect\":");
                if serde_json::to_writer(&mut *out, &fault.effect).is_err() {
                    out.extend_from_slice(b"null");
                }
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"seq\":");
        optional_number(out, self.seq);
        out.push(b'}');
        client_request_id_at
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `value` as a JSON string: copied when nothing in it needs escaping, else through serde.
fn text(out: &mut Vec<u8>, value: &str) {
    if is_plain(value.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

fn optional_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => text(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn optional_number(out: &mut Vec<u8>, value: Option<impl itoa::Integer>) {
    match value {
        Some(value) => number(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The length of `"at":"2026-12-07T20:51:27.123Z",`, for sizing a read's answer.
const AT_LENGTH: usize = 32;

/// `{"at":"<RFC 3339, to the millisecond>",`: the opening of an entry's JSON.
fn write_at(out: &mut Vec<u8>, at: SystemTime) {
    use std::io::Write;
    out.extend_from_slice(b"{\"at\":\"");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(at));
    out.extend_from_slice(b"\",");
}

fn uuid_text(out: &mut Vec<u8>, id: &uuid::Uuid) {
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buffer).as_bytes());
    out.push(b'"');
}

/// A kept entry: its JSON without its `at` (one shared allocation; the time is written as the
/// entry is read), and beside it what reads filter on: the tenant and client request id as
/// hashes (a match is confirmed against the JSON's bytes), so that keeping an entry allocates
/// once and touches nothing another thread shares. A clone shares the JSON: a read clones the
/// entries it answers with under the lock and writes them after releasing it.
#[derive(Debug, Clone)]
struct Stored {
    at: SystemTime,
    answered: SystemTime,
    tenant: Option<u64>,
    client_request_id: Option<u64>,
    /// Where in `json` the value of `clientRequestId` starts.
    client_request_id_at: usize,
    /// Its place in the order entries came ([`Ring::push`] sets it).
    number: u64,
    operation: Option<Operation>,
    status: Option<u16>,
    retry_after: Option<u64>,
    json: Arc<[u8]>,
}

/// Where the tenant's value starts in a kept entry's JSON: after `{"tenant":`.
const TENANT_AT: usize = b"{\"tenant\":".len();

/// A tenant or client request id a read looks for: its hash, and its JSON value followed by
/// the comma after it, the bytes a kept entry holds where it has that value.
#[derive(Debug)]
struct Wanted {
    hash: u64,
    json: Vec<u8>,
}

impl Wanted {
    fn new(value: &str) -> Self {
        let mut json = Vec::with_capacity(value.len() + 3);
        text(&mut json, value);
        json.push(b',');
        Self {
            hash: hash(value),
            json,
        }
    }

    /// Whether an entry filed under `hash` has this value at `at` of its JSON.
    fn is_at(&self, hash: Option<u64>, json: &[u8], at: usize) -> bool {
        hash == Some(self.hash)
            && json
                .get(at..)
                .is_some_and(|rest| rest.starts_with(&self.json))
    }
}

/// The fields of a kept entry that reads take back from its JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    client_request_id: Option<String>,
    app: Option<String>,
    method: String,
    path: String,
    retry_attempt: Option<u32>,
    body_digest: Option<String>,
}

/// Which entries a read wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant: Option<String>,
    pub client_request_id: Option<String>,
    pub operation: Option<Operation>,
    /// `Some(None)`: requests that got no answer.
    pub status: Option<Option<u16>>,
    /// Arrived at or after this.
    pub since: Option<SystemTime>,
    /// The newest this many that match.
    pub limit: usize,
}

/// The hash a kept entry files a tenant or client request id under.
fn hash(text: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(text)
}

impl Stored {
    /// Appends the whole entry's JSON, its `at` included.
    fn write_to(&self, out: &mut Vec<u8>) {
        write_at(out, self.at);
        // Past the kept JSON's opening brace, which `write_at` wrote.
        out.extend_from_slice(self.json.get(1..).unwrap_or_default());
    }

    /// The fields reads take back, from its JSON.
    fn ids(&self) -> Option<Kept> {
        serde_json::from_slice(&self.json).ok()
    }

    fn of_tenant(&self, tenant: &Wanted) -> bool {
        tenant.is_at(self.tenant, &self.json, TENANT_AT)
    }

    fn of_client_request_id(&self, id: &Wanted) -> bool {
        id.is_at(
            self.client_request_id,
            &self.json,
            self.client_request_id_at,
        )
    }
}

/// A [`Filter`] ready to be checked against kept entries, every check exact and without
/// reading an entry's JSON back.
struct Matcher<'f> {
    filter: &'f Filter,
    tenant: Option<Wanted>,
    client_request_id: Option<Wanted>,
}

impl<'f> Matcher<'f> {
    fn new(filter: &'f Filter) -> Self {
        Self {
            filter,
            tenant: filter.tenant.as_deref().map(Wanted::new),
            client_request_id: filter.client_request_id.as_deref().map(Wanted::new),
        }
    }

    fn keeps(&self, entry: &Stored) -> bool {
        let Filter {
            operation,
            status,
            since,
            ..
        } = self.filter;
        operation.is_none_or(|o| entry.operation == Some(o))
            && status.is_none_or(|s| entry.status == s)
            && since.is_none_or(|since| entry.at >= since)
            && self.tenant.as_ref().is_none_or(|t| entry.of_tenant(t))
            && self
                .client_request_id
                .as_ref()
                .is_none_or(|c| entry.of_client_request_id(c))
    }
}

/// One logical request: the attempts of one request and its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logical {
    pub client_request_id: Option<Box<str>>,
    pub method: Box<str>,
    pub path: Box<str>,
    pub attempts: usize,
    pub statuses: Vec<Option<u16>>,
    /// From each answer to the arrival of the next attempt, in whole milliseconds.
    pub waits_ms: Vec<i64>,
    /// Each answer's `Retry-After` in milliseconds (null where it had none).
    pub retry_after_ms: Vec<Option<u64>>,
    /// No attempt came sooner than the `Retry-After` before it.
    pub honoured: bool,
}

/// What an entry's JSON allocation holds beside it (the shared counts), counted with it.
const ALLOCATION_HEADER: usize = 16;

/// The bytes that writing `entries` takes, to size the answer once.
fn written_size(entries: &[Stored]) -> usize {
    entries.iter().map(|e| e.json.len() + AT_LENGTH + 1).sum()
}

impl Stored {
    /// The bytes the bound counts for its JSON.
    fn cost(&self) -> usize {
        self.json.len() + ALLOCATION_HEADER
    }
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Stored>,
    /// The sum of the entries' [`Stored::cost`].
    bytes: usize,
    dropped: u64,
    /// The number the next entry kept gets: entries are numbered in the order they came, so
    /// that a read can go on where it stopped once it took the lock again.
    next_number: u64,
}

/// How many entries a read checks each time it holds the ring's lock: at a few nanoseconds an
/// entry, a record never waits more than a few microseconds for a read, however large the
/// journal.
const ENTRIES_PER_LOCK: usize = 1024;

impl Ring {
    /// The memory the bound counts: each entry's JSON with its allocation header, and every
    /// slot of the ring (used or not, since the ring grows by doubling), so that the bound
    /// holds for the memory the journal takes, not only its text.
    fn held(&self) -> usize {
        self.bytes + self.entries.capacity() * std::mem::size_of::<Stored>()
    }

    /// Keeps `entry` as the newest.
    fn push(&mut self, mut entry: Stored) {
        entry.number = self.next_number;
        self.next_number += 1;
        self.bytes += entry.cost();
        self.entries.push_back(entry);
    }

    /// Checks, newest first, up to [`ENTRIES_PER_LOCK`] entries numbered below `before` (all of
    /// them: `None`), adding those that `keep` wants to `kept` until it holds `limit`. Returns
    /// where to go on (`None`: every older entry was checked, or `kept` is full).
    fn scan(
        &self,
        before: Option<u64>,
        keep: &impl Fn(&Stored) -> bool,
        kept: &mut Vec<Stored>,
        limit: usize,
    ) -> Option<u64> {
        let end = before.map_or(self.entries.len(), |before| {
            self.entries.partition_point(|e| e.number < before)
        });
        let start = end.saturating_sub(ENTRIES_PER_LOCK);
        for entry in self.entries.range(start..end).rev() {
            if kept.len() == limit {
                return None;
            }
            if keep(entry) {
                kept.push(entry.clone());
            }
        }
        self.entries
            .get(start)
            .filter(|_| start > 0 && kept.len() < limit)
            .map(|e| e.number)
    }
}

/// What a journal holds, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub entries: usize,
    /// What the bound counts: the entries' JSON and their bookkeeping.
    pub bytes: usize,
    /// The entries' JSON alone, as a read writes it.
    pub json_bytes: usize,
    pub dropped: u64,
    /// The bound (`--journal-bytes`).
    pub limit: usize,
}

/// The journal of one server run.
#[derive(Debug)]
pub struct Journal {
    limit: usize,
    ring: Mutex<Ring>,
}

impl Journal {
    /// A journal keeping at most `limit` bytes of entries; 0 keeps none.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Whether entries are kept at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// What it holds now: entries, their JSON bytes, and the entries dropped so far.
    #[must_use]
    pub fn held(&self) -> Held {
        let ring = self.ring();
        Held {
            entries: ring.entries.len(),
            bytes: ring.held(),
            json_bytes: ring.bytes + ring.entries.len() * AT_LENGTH
                - ring.entries.len() * ALLOCATION_HEADER,
            dropped: ring.dropped,
            limit: self.limit,
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `entry`, dropping the oldest entries until the bound holds. An entry larger than
    /// the whole bound is dropped at once.
    pub fn record(&self, entry: &Entry<'_>) {
        if !self.enabled() {
            return;
        }
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // Written into a buffer each thread keeps, then copied once into an exact allocation.
        let (json, client_request_id_at) = BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            buffer.push(b'{');
            let client_request_id_at = entry.write_after_at(buffer);
            (Arc::<[u8]>::from(buffer.as_slice()), client_request_id_at)
        });
        let stored = Stored {
            at: entry.at,
            answered: entry.at + entry.duration,
            tenant: entry.tenant.map(hash),
            client_request_id: entry.client_request_id.map(hash),
            client_request_id_at,
            number: 0,
            operation: entry.operation,
            status: entry.status,
            retry_after: entry.retry_after,
            json,
        };
        // The entries pushed out are freed after the lock is released: freeing one touches
        // memory written long ago, which other threads' records should not wait for.
        let mut first_gone = None;
        let mut more_gone = Vec::new();
        let mut ring = self.ring();
        ring.push(stored);
        while ring.held() > self.limit {
            let Some(gone) = ring.entries.pop_front() else {
                break;
            };
            ring.bytes -= gone.cost();
            ring.dropped += 1;
            if first_gone.is_none() {
                first_gone = Some(gone);
            } else {
                more_gone.push(gone);
            }
        }
        drop(ring);
        drop(first_gone);
        drop(more_gone);
    }

    /// The newest `filter.limit` entries that match, oldest first, and the dropped count.
    /// They are checked a run of entries at a time under the lock and cloned (sharing their
    /// JSON), to be written by the caller once it is released: recording never waits for more
    /// than one run's check. Entries kept after the read began are not in it; entries dropped
    /// meanwhile that it had not reached are not either.
    fn matching(&self, filter: &Filter) -> (Vec<Stored>, u64) {
        let matcher = Matcher::new(filter);
        self.newest(&|e| matcher.keeps(e), filter.limit)
    }

    /// The newest `limit` entries that `keep` wants, oldest first, and the dropped count.
    fn newest(&self, keep: &impl Fn(&Stored) -> bool, limit: usize) -> (Vec<Stored>, u64) {
        let mut kept = Vec::new();
        let mut before = None;
        let dropped = loop {
            let ring = self.ring();
            before = ring.scan(before, keep, &mut kept, limit);
            if before.is_none() {
                break ring.dropped;
            }
        };
        kept.reverse();
        (kept, dropped)
    }

    /// The newest `filter.limit` entries that match, oldest first, as the JSON
    /// `{"enabled", "dropped", "value"}`.
    #[must_use]
    pub fn read(&self, filter: &Filter) -> Vec<u8> {
        let (kept, dropped) = self.matching(filter);
        let mut out = Vec::with_capacity(64 + written_size(&kept));
        out.extend_from_slice(
            format!(
                "{{\"enabled\":{},\"dropped\":{dropped},\"value\":[",
                self.enabled(),
            )
            .as_bytes(),
        );
        for (i, entry) in kept.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            entry.write_to(&mut out);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The entries that match `filter` as NDJSON (one entry a line, oldest first), with the
    /// dropped count beside it: the form a CI job keeps as an artifact.
    pub fn read_ndjson(&self, filter: &Filter) -> (Vec<u8>, u64) {
        let (kept, dropped) = self.matching(filter);
        let mut out = Vec::with_capacity(written_size(&kept));
        for entry in kept {
            entry.write_to(&mut out);
            out.push(b'\n');
        }
        (out, dropped)
    }

    /// Forgets every entry (and the dropped count), or one tenant's entries.
    pub fn clear(&self, tenant: Option<&str>) {
        let mut ring = self.ring();
        match tenant {
            None => {
                // The numbering goes on, so that a read in progress stops at the clear.
                let next_number = ring.next_number;
                *ring = Ring {
                    next_number,
                    ..Ring::default()
                };
            }
            Some(tenant) => {
                let tenant = Wanted::new(tenant);
                let entries = std::mem::take(&mut ring.entries);
                let (gone, kept): (VecDeque<_>, VecDeque<_>) =
                    entries.into_iter().partition(|e| e.of_tenant(&tenant));
                ring.bytes -= gone.iter().map(Stored::cost).sum::<usize>();
                ring.entries = kept;
            }
        }
    }

    /// The logical requests of `tenant`, in the order their first attempts arrived. One
    /// logical request is the attempts with one `clientRequestId`; for a client that sends
    /// none, a chain of requests with the same app, method, path and body digest that starts
    /// at a request without `Retry-Attempt` and counts up from 1.
    #[must_use]
    pub fn summary(&self, tenant: &str) -> Vec<Logical> {
        type Key = (Option<String>, String, String, Option<String>);
        let wanted = Wanted::new(tenant);
        // Taken a run at a time under the lock, grouped after it.
        let (entries, _) = self.newest(&|e| e.of_tenant(&wanted), usize::MAX);
        let mut groups: Vec<Vec<(&Stored, Kept)>> = Vec::new();
        let mut by_client_id: HashMap<String, usize> = HashMap::new();
        let mut chains: HashMap<Key, usize> = HashMap::new();
        for entry in &entries {
            let Some(attempt) = entry.ids() else {
                continue;
            };
            if let Some(id) = attempt.client_request_id.clone() {
                let at = *by_client_id.entry(id).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[at].push((entry, attempt));
                continue;
            }
            let key = (
                attempt.app.clone(),
                attempt.method.clone(),
                attempt.path.clone(),
                attempt.body_digest.clone(),
            );
            let follows = chains.get(&key).copied().filter(|&at| {
                let last = groups[at]
                    .last()
                    .and_then(|(_, a)| a.retry_attempt)
                    .unwrap_or(0);
                attempt.retry_attempt == Some(last + 1)
            });
            if let Some(at) = follows {
                groups[at].push((entry, attempt));
            } else {
                groups.push(vec![(entry, attempt)]);
                chains.insert(key, groups.len() - 1);
            }
        }
        groups.iter().map(|attempts| logical(attempts)).collect()
    }
}

fn logical(attempts: &[(&Stored, Kept)]) -> Logical {
    let (_, first_fields) = &attempts[0];
    let retry_after_ms: Vec<Option<u64>> = attempts
        .iter()
        .map(|(e, _)| e.retry_after.map(|s| s * 1000))
        .collect();
    let waits_ms: Vec<i64> = attempts
        .windows(2)
        .map(|pair| {
            let (answered, next) = (pair[0].0.answered, pair[1].0.at);
            match next.duration_since(answered) {
                Ok(wait) => i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                Err(early) => -i64::try_from(early.duration().as_millis()).unwrap_or(i64::MAX),
            }
        })
        .collect();
    let honoured = waits_ms
        .iter()
        .zip(&retry_after_ms)
        .all(|(wait, retry_after)| {
            retry_after.is_none_or(|r| *wait >= i64::try_from(r).unwrap_or(i64::MAX))
        });
    Logical {
        client_request_id: first_fields.client_request_id.as_deref().map(Into::into),
        method: first_fields.method.as_str().into(),
        path: first_fields.path.as_str().into(),
        attempts: attempts.len(),
        statuses: attempts.iter().map(|(e, _)| e.status).collect(),
        waits_ms,
        retry_after_ms,
        honoured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(
        at_ms: u64,
        status: u16,
        retry_attempt: Option<u32>,
        client: Option<&'static str>,
    ) -> Entry<'static> {
        Entry {
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            tenant: Some("t"),
            app: None,
            operation: Some(Operation::Create),
            method: "POST",
            path: PathAndQuery {
                path: "/beta/identity/userFlows",
                query: "",
            },
            status: Some(status),
            duration: Duration::from_millis(2),
            request_id: uuid::Uuid::nil(),
            client_request_id: client,
            retry_attempt,
            body_digest: Some([0, 255, 0, 255, 0, 255, 0, 255]),
            batch: None,
            throttled: None,
            fault: None,
            seq: None,
            retry_after: (status == 429).then_some(1),
        }
    }

    #[test]
    fn entries_are_written_as_json_with_every_field_and_escapes_where_needed() {
        let rule: Arc<str> = Arc::from("slow \"create\"");
        let mut cases = Vec::new();
        for (i, micros) in [0_u64, 1, 10, 812, 1000, 12_500, 1_234_567]
            .into_iter()
            .enumerate()
        {
            let client = if i % 2 == 0 { Some("abc") } else { None };
            let mut e = entry(
                1_764_000_000_123 + micros,
                201,
                (i % 3 == 0).then_some(2),
                client,
            );
            e.tenant = Some("8f7d6c5b-4a39-4e28-9d17-0c6b5a493827");
            e.app = Some("app");
            e.duration = Duration::from_micros(micros);
            e.seq = Some(micros);
            cases.push(e);
        }
        let mut odd = entry(0, 503, None, Some("quote\"\\"));
        odd.app = Some("tab\there");
        odd.status = None;
        odd.path = PathAndQuery {
            path: "/beta/identity/userFlows",
            query: "$filter=id eq 'a\"b'",
        };
        odd.operation = None;
        odd.body_digest = None;
        odd.batch = Some(BatchItem {
            request_id: uuid::Uuid::from_u128(7),
            item_id: "é\n1".into(),
        });
        odd.throttled = Some(Throttled { retry_after: 3 });
        odd.fault = Some(FaultNote {
            rule,
            effect: Effect {
                status: Some(503),
                retry_after: Some(1),
                after_commit: true,
                ..Effect::default()
            },
        });
        odd.seq = Some(u64::MAX);
        let mut plain_query = entry(5, 200, None, None);
        plain_query.path.query = "$top=5";
        plain_query.tenant = None;
        cases.extend([odd, plain_query]);
        let json = |e: &Entry<'_>| {
            let mut out = Vec::new();
            e.write_json(&mut out);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let durations: Vec<serde_json::Value> = cases[..7]
            .iter()
            .map(|e| json(e)["durationMs"].clone())
            .collect();
        assert_eq!(
            durations,
            [0.0, 0.001, 0.01, 0.812, 1.0, 12.5, 1234.567].map(serde_json::Value::from)
        );
        let first = json(&cases[0]);
        assert_eq!(
            first,
            serde_json::json!({
                "at": "2025-11-24T16:00:00.123Z", "tenant": "8f7d6c5b-4a39-4e28-9d17-0c6b5a493827",
                "app": "app", "operation": "create", "method": "POST",
                "path": "/beta/identity/userFlows", "status": 201, "durationMs": 0.0,
                "requestId": "00000000-0000-0000-0000-000000000000", "clientRequestId": "abc",
                "retryAttempt": 2, "bodyDigest": "00ff00ff00ff00ff", "batch": null,
                "throttled": null, "fault": null, "seq": 0
            })
        );
        assert_eq!(
            json(&cases[7]),
            serde_json::json!({
                "at": "1970-01-01T00:00:00.000Z", "tenant": "t", "app": "tab\there",
                "operation": null, "method": "POST",
                "path": "/beta/identity/userFlows?$filter=id eq 'a\"b'", "status": null,
                "durationMs": 2.0, "requestId": "00000000-0000-0000-0000-000000000000",
                "clientRequestId": "quote\"\\", "retryAttempt": null, "bodyDigest": null,
                "batch": {"requestId": "00000000-0000-0000-0000-000000000007", "itemId": "é\n1"},
                "throttled": {"retryAfter": 3},
                "fault": {"rule": "slow \"create\"",
                          "effect": {"status": 503, "retryAfter": 1, "afterCommit": true}},
                "seq": u64::MAX
            })
        );
        assert_eq!(json(&cases[8])["path"], "/beta/identity/userFlows?$top=5");
        assert_eq!(json(&cases[8])["tenant"], serde_json::Value::Null);
    }

    fn read(journal: &Journal) -> serde_json::Value {
        let filter = Filter {
            limit: 100,
            ..Filter::default()
        };
        serde_json::from_slice(&journal.read(&filter)).unwrap()
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let mut json = Vec::new();
        entry(0, 201, None, None).write_json(&mut json);
        let size = json.len();
        // Room for three entries, each its JSON and allocation header, in a ring of four slots
        // (the smallest a ring grows to), but not for four.
        let slots = 4 * std::mem::size_of::<Stored>();
        let journal = Journal::new((size + ALLOCATION_HEADER) * 3 + slots);
        for at in 0..5 {
            journal.record(&entry(at, 201, None, None));
        }
        let page = read(&journal);
        assert_eq!(page["dropped"], 2);
        let kept: Vec<&str> = page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["at"].as_str().unwrap())
            .collect();
        assert_eq!(
            kept,
            [
                "1970-01-01T00:00:00.002Z",
                "1970-01-01T00:00:00.003Z",
                "1970-01-01T00:00:00.004Z"
            ]
        );
        assert_eq!(page["value"][0]["bodyDigest"], "00ff00ff00ff00ff");
        let off = Journal::new(0);
        off.record(&entry(0, 201, None, None));
        assert_eq!(read(&off)["value"], serde_json::json!([]));
    }

    #[test]
    fn filters_confirm_the_tenant_and_client_request_id_beyond_their_hash() {
        let journal = Journal::new(1 << 20);
        journal.record(&entry(0, 201, None, Some("a")));
        let mut other = entry(1, 201, None, Some("ab"));
        other.tenant = Some("tt");
        journal.record(&other);
        let tt: serde_json::Value = serde_json::from_slice(&journal.read(&Filter {
            tenant: Some("tt".to_owned()),
            limit: 100,
            ..Filter::default()
        }))
        .unwrap();
        assert_eq!(tt["value"][0]["at"], "1970-01-01T00:00:00.001Z");
        // Forge a collision: the second entry filed under the first's hashes.
        {
            let mut ring = journal.ring();
            let (tenant, client) = (ring.entries[0].tenant, ring.entries[0].client_request_id);
            ring.entries[1].tenant = tenant;
            ring.entries[1].client_request_id = client;
        }
        let ats = |filter: Filter| -> Vec<String> {
            let page: serde_json::Value = serde_json::from_slice(&journal.read(&Filter {
                limit: 100,
                ..filter
            }))
            .unwrap();
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["at"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = vec!["1970-01-01T00:00:00.000Z".to_owned()];
        let tenant = |t: &str| Filter {
            tenant: Some(t.to_owned()),
            ..Filter::default()
        };
        assert_eq!(ats(tenant("t")), first);
        let client = Filter {
            client_request_id: Some("a".to_owned()),
            ..Filter::default()
        };
        assert_eq!(ats(client), first);
        assert_eq!(journal.summary("t").len(), 1);
        journal.clear(Some("t"));
        assert_eq!(ats(Filter::default()), ["1970-01-01T00:00:00.001Z"]);
    }

    #[test]
    fn a_read_checks_a_run_of_entries_at_a_time_and_goes_on_where_it_stopped() {
        let journal = Journal::new(16 << 20);
        let n = 3 * ENTRIES_PER_LOCK as u64 + 5;
        for at in 0..n {
            let mut e = entry(at, 201, None, None);
            if at % 1000 != 0 {
                e.tenant = Some("u");
            }
            journal.record(&e);
        }
        let ats = |filter: Filter| -> Vec<u64> {
            let (kept, _) = journal.matching(&filter);
            kept.iter()
                .map(|e| e.at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64)
                .collect()
        };
        // Matches spread over every run, oldest first.
        let t = Filter {
            tenant: Some("t".to_owned()),
            limit: 100,
            ..Filter::default()
        };
        assert_eq!(ats(t), [0, 1000, 2000, 3000]);
        // A limit reached in the middle of a run, and one past every entry.
        let newest: Vec<u64> = ats(Filter {
            limit: 1500,
            ..Filter::default()
        });
        assert_eq!(newest, (n - 1500..n).collect::<Vec<_>>());
        assert_eq!(
            ats(Filter {
                limit: 10_000,
                ..Filter::default()
            })
            .len(),
            n as usize
        );
        // The ring changing between two runs: entries kept since are not in the read, and it
        // goes on below the entries it has checked, wherever they now are.
        let mut kept = Vec::new();
        let all = |_: &Stored| true;
        let before = journal.ring().scan(None, &all, &mut kept, usize::MAX);
        journal.record(&entry(n, 201, None, None));
        journal.ring().entries.pop_front();
        let mut before = before;
        while let Some(at) = before {
            before = journal.ring().scan(Some(at), &all, &mut kept, usize::MAX);
        }
        assert_eq!(
            kept.len(),
            n as usize - 1,
            "every entry but the one gone and the new one"
        );
        let numbers: Vec<u64> = kept.iter().map(|e| e.number).collect();
        assert_eq!(numbers, (1..n).rev().collect::<Vec<_>>());
    }

    #[test]
    fn retries_group_by_client_request_id_or_by_retry_attempt_chains() {
        let journal = Journal::new(1 << 20);
        // With an id: three attempts; the second came too soon after its 429.
        journal.record(&entry(0, 429, None, Some("a")));
        journal.record(&entry(1_500, 429, Some(1), Some("a")));
        journal.record(&entry(2_000, 201, Some(2), Some("a")));
        // Without: a chain 0, 1 that waits, then a new request (no Retry-Attempt) starts afresh.
        journal.record(&entry(10_000, 429, None, None));
        journal.record(&entry(11_100, 201, Some(1), None));
        journal.record(&entry(20_000, 201, None, None));
        let summary = journal.summary("t");
        assert_eq!(summary.len(), 3);
        assert_eq!(
            summary[0].statuses,
            [Some(429), Some(429), Some(201)],
            "{summary:?}"
        );
        assert_eq!(summary[0].waits_ms, [1_498, 498]);
        assert_eq!(summary[0].retry_after_ms, [Some(1_000), Some(1_000), None]);
        assert!(!summary[0].honoured);
        assert_eq!(summary[1].attempts, 2);
        assert!(summary[1].honoured);
        assert_eq!(summary[2].attempts, 1);
        assert!(journal.summary("other").is_empty());
    }
}
