//! The request journal: every Graph, batch-item and identity request the emulator answered,
//! with what it decided about it (tenant, app, operation, status, throttling, fault, the event
//! it appended), so that a client's test can assert what its client did. Bounded by the bytes
//! of each entry's JSON encoding, the oldest entries going first; read with filters and grouped
//! into logical requests (a request and its retries) by [`Journal::summary`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
#[cfg(test)]
use std::time::UNIX_EPOCH;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::chaos::{Effect, Operation};

/// (policy) The journal's default bound: 16 MiB of entries' JSON.
pub const DEFAULT_JOURNAL_BYTES: usize = 16 << 20;

/// One answered request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the request arrived.
    #[serde(serialize_with = "rfc3339_millis")]
    pub at: SystemTime,
    pub tenant: Option<Box<str>>,
    pub app: Option<Box<str>>,
    pub operation: Option<Operation>,
    pub method: Box<str>,
    /// The path with its query, as sent.
    pub path: Box<str>,
    /// `None`: no answer (a fault rule broke the connection).
    pub status: Option<u16>,
    #[serde(rename = "durationMs", serialize_with = "millis")]
    pub duration: Duration,
    #[serde(serialize_with = "hyphenated")]
    pub request_id: uuid::Uuid,
    pub client_request_id: Option<Box<str>>,
    pub retry_attempt: Option<u32>,
    /// SHA-256 of the request body, the first 8 bytes in hex.
    pub body_digest: Option<Box<str>>,
    pub batch: Option<BatchItem>,
    pub throttled: Option<Throttled>,
    pub fault: Option<FaultNote>,
    /// The log position of the event a committed write appended.
    pub seq: Option<u64>,
    /// The answer's `Retry-After`, in seconds (for the summary; not an entry field).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// Which batch, and which of its items, an entry is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    #[serde(serialize_with = "hyphenated")]
    pub request_id: uuid::Uuid,
    pub item_id: Box<str>,
}

/// A throttled request's `Retry-After`, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttled {
    pub retry_after: u64,
}

/// The fault rule a request met, and the effect it had.
#[derive(Debug, Clone, Serialize)]
pub struct FaultNote {
    #[serde(serialize_with = "shared_str")]
    pub rule: Arc<str>,
    pub effect: Effect,
}

fn shared_str<S: Serializer>(text: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(text)
}

fn rfc3339_millis<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*at))
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn hyphenated<S: Serializer>(id: &uuid::Uuid, s: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    s.serialize_str(id.hyphenated().encode_lower(&mut buffer))
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Entry {
    /// The length of its JSON encoding: what it counts against the bound.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        match serde_json::to_writer(&mut counter, self) {
            Ok(()) => counter.0,
            Err(_) => 0,
        }
    }

    fn answered_at(&self) -> SystemTime {
        self.at + self.duration
    }
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

impl Filter {
    fn keeps(&self, entry: &Entry) -> bool {
        self.tenant
            .as_deref()
            .is_none_or(|t| entry.tenant.as_deref() == Some(t))
            && self
                .client_request_id
                .as_deref()
                .is_none_or(|c| entry.client_request_id.as_deref() == Some(c))
            && self.operation.is_none_or(|o| entry.operation == Some(o))
            && self.status.is_none_or(|s| entry.status == s)
            && self.since.is_none_or(|since| entry.at >= since)
    }
}

/// What a read answers: `{"enabled", "dropped", "value"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub enabled: bool,
    pub dropped: u64,
    pub value: Vec<Entry>,
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

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
    dropped: u64,
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

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `entry`, dropping the oldest entries until the bound holds. An entry larger than
    /// the whole bound is dropped at once.
    pub fn record(&self, entry: Entry) {
        if !self.enabled() {
            return;
        }
        let size = entry.encoded_len();
        let mut ring = self.ring();
        ring.bytes += size;
        ring.entries.push_back((entry, size));
        while ring.bytes > self.limit {
            let Some((_, size)) = ring.entries.pop_front() else {
                break;
            };
            ring.bytes -= size;
            ring.dropped += 1;
        }
    }

    /// The newest `filter.limit` entries that match, oldest first.
    #[must_use]
    pub fn read(&self, filter: &Filter) -> Page {
        let ring = self.ring();
        let mut value: Vec<Entry> = ring
            .entries
            .iter()
            .rev()
            .map(|(entry, _)| entry)
            .filter(|entry| filter.keeps(entry))
            .take(filter.limit)
            .cloned()
            .collect();
        value.reverse();
        Page {
            enabled: self.enabled(),
            dropped: ring.dropped,
            value,
        }
    }

    /// Forgets every entry (and the dropped count), or one tenant's entries.
    pub fn clear(&self, tenant: Option<&str>) {
        let mut ring = self.ring();
        match tenant {
            None => *ring = Ring::default(),
            Some(tenant) => {
                let entries = std::mem::take(&mut ring.entries);
                let (gone, kept): (VecDeque<_>, VecDeque<_>) = entries
                    .into_iter()
                    .partition(|(e, _)| e.tenant.as_deref() == Some(tenant));
                ring.bytes -= gone.iter().map(|(_, size)| size).sum::<usize>();
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
        type Key<'a> = (Option<&'a str>, &'a str, &'a str, Option<&'a str>);
        let ring = self.ring();
        let mut groups: Vec<Vec<&Entry>> = Vec::new();
        let mut by_client_id: HashMap<&str, usize> = HashMap::new();
        let mut chains: HashMap<Key<'_>, usize> = HashMap::new();
        for (entry, _) in &ring.entries {
            if entry.tenant.as_deref() != Some(tenant) {
                continue;
            }
            if let Some(id) = entry.client_request_id.as_deref() {
                let at = *by_client_id.entry(id).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[at].push(entry);
                continue;
            }
            let key = (
                entry.app.as_deref(),
                &*entry.method,
                &*entry.path,
                entry.body_digest.as_deref(),
            );
            let follows = chains.get(&key).copied().filter(|&at| {
                let last = groups[at].last().and_then(|e| e.retry_attempt).unwrap_or(0);
                entry.retry_attempt == Some(last + 1)
            });
            if let Some(at) = follows {
                groups[at].push(entry);
            } else {
                groups.push(vec![entry]);
                chains.insert(key, groups.len() - 1);
            }
        }
        groups.iter().map(|attempts| logical(attempts)).collect()
    }
}

fn logical(attempts: &[&Entry]) -> Logical {
    let first = attempts[0];
    let retry_after_ms: Vec<Option<u64>> = attempts
        .iter()
        .map(|e| e.retry_after.map(|s| s * 1000))
        .collect();
    let waits_ms: Vec<i64> = attempts
        .windows(2)
        .map(|pair| {
            let (answered, next) = (pair[0].answered_at(), pair[1].at);
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
        client_request_id: first.client_request_id.clone(),
        method: first.method.clone(),
        path: first.path.clone(),
        attempts: attempts.len(),
        statuses: attempts.iter().map(|e| e.status).collect(),
        waits_ms,
        retry_after_ms,
        honoured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_millis(at: SystemTime) -> u128 {
        at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
    }

    fn entry(at_ms: u64, status: u16, retry_attempt: Option<u32>, client: Option<&str>) -> Entry {
        Entry {
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            tenant: Some("t".into()),
            app: None,
            operation: Some(Operation::Create),
            method: "POST".into(),
            path: "/beta/identity/userFlows".into(),
            status: Some(status),
            duration: Duration::from_millis(2),
            request_id: uuid::Uuid::nil(),
            client_request_id: client.map(Into::into),
            retry_attempt,
            body_digest: Some("00ff00ff00ff00ff".into()),
            batch: None,
            throttled: None,
            fault: None,
            seq: None,
            retry_after: (status == 429).then_some(1),
        }
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let one = entry(0, 201, None, None);
        let size = one.encoded_len();
        assert_eq!(size, serde_json::to_vec(&one).unwrap().len());
        let journal = Journal::new(size * 3);
        for at in 0..5 {
            journal.record(entry(at, 201, None, None));
        }
        let page = journal.read(&Filter {
            limit: 100,
            ..Filter::default()
        });
        assert_eq!(page.dropped, 2);
        let kept: Vec<u128> = page.value.iter().map(|e| unix_millis(e.at)).collect();
        assert_eq!(kept, [2, 3, 4]);
        let off = Journal::new(0);
        off.record(entry(0, 201, None, None));
        assert!(off.read(&Filter::default()).value.is_empty());
    }

    #[test]
    fn retries_group_by_client_request_id_or_by_retry_attempt_chains() {
        let journal = Journal::new(1 << 20);
        // With an id: three attempts; the second came too soon after its 429.
        journal.record(entry(0, 429, None, Some("a")));
        journal.record(entry(1_500, 429, Some(1), Some("a")));
        journal.record(entry(2_000, 201, Some(2), Some("a")));
        // Without: a chain 0, 1 that waits, then a new request (no Retry-Attempt) starts afresh.
        journal.record(entry(10_000, 429, None, None));
        journal.record(entry(11_100, 201, Some(1), None));
        journal.record(entry(20_000, 201, None, None));
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
