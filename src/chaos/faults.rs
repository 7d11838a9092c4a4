//! Fault rules: which requests fail, and how. A rule set is JSON (`--faults FILE` or
//! `PUT /_emulator/faults`), checked whole before it replaces the one in force. Rules are tried
//! in order; the first whose `match` fits decides alone, through its `after`, `times` and
//! `probability`. Each rule draws from its own stream, seeded from the set's `seed` and the
//! rule's id, so the same requests in the same order meet the same faults, and adding or
//! removing another rule does not change when this one fires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tenant::{is_guid, TenantId};

/// What a request does, as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    List,
    Get,
    Delete,
    Count,
    /// The `$batch` envelope itself (its items are faulted as their own operations).
    Batch,
    /// The token endpoint.
    Token,
}

impl Operation {
    /// Its name, as rules and the journal write it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::List => "list",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Count => "count",
            Self::Batch => "batch",
            Self::Token => "token",
        }
    }
}

/// Statuses a rule may answer with.
const STATUSES: [u16; 6] = [429, 500, 502, 503, 504, 507];

/// A rule set as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule as written. `fired` and `matched` are what `GET /_emulator/faults` reports; they are
/// read-only and ignored when a set is given, so a set read can be given back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    #[serde(default, rename = "match")]
    pub matches: Match,
    #[serde(default = "one")]
    pub probability: f64,
    #[serde(default)]
    pub after: u64,
    #[serde(default)]
    pub times: Option<u64>,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// None: every Graph request and batch item, but neither the `$batch` envelope nor token
    /// requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// What a firing rule does, as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Effect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_commit: bool,
}

/// What a transport effect does to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Reset it (TCP RST): the client reads "connection reset by peer".
    Reset,
    /// Close it with no answer (FIN): the client reads an end of stream.
    Close,
    /// Never answer; closed once the client gives up or the server stops.
    Hang,
}

/// The longest latency a rule may add, as `retryAfter` is at most an hour.
const MAX_LATENCY_MS: u64 = 3_600_000;

/// A fixed latency or a uniform range, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Latency {
    Fixed(u64),
    Range([u64; 2]),
}

/// A fault decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail the request; with `after_commit`, only once the write has been made durable.
    Fail {
        failure: Failure,
        after_commit: bool,
    },
    /// Wait this long, then proceed.
    Latency(Duration),
}

/// How a failing request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answer this status in the Graph envelope, with `Retry-After` when given.
    Status {
        status: u16,
        retry_after: Option<u32>,
    },
    /// Break the connection instead of answering.
    Transport(Transport),
}

/// A fault and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub rule: Arc<str>,
    pub fault: Fault,
}

/// Why a rule set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRules(pub String);

/// A rule in force, with its counts and stream.
#[derive(Debug)]
struct Active {
    spec: Rule,
    id: Arc<str>,
    state: Mutex<Stream>,
}

#[derive(Debug)]
struct Stream {
    matched: u64,
    fired: u64,
    /// The `SplitMix64` generator's state.
    state: u64,
}

impl Stream {
    /// The next draw, uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The rule set in force.
#[derive(Debug, Default)]
pub struct Faults {
    rules: RwLock<Arc<(Option<u64>, Vec<Active>)>>,
    /// Whether any rule is in force, so that a server without rules takes no lock.
    any: AtomicBool,
}

impl RuleSet {
    /// Parses and checks a rule set.
    pub fn parse(json: &[u8]) -> Result<Self, InvalidRules> {
        let invalid = |e: serde_json::Error| InvalidRules(format!("Invalid fault rules: {e}."));
        let value: serde_json::Value = serde_json::from_slice(json).map_err(invalid)?;
        if !value.is_object() {
            return Err(InvalidRules(
                "Invalid fault rules: the rule set is a JSON object {\"seed\", \"rules\"}.".into(),
            ));
        }
        let set: Self = serde_json::from_value(value).map_err(invalid)?;
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), InvalidRules> {
        let bad = |id: &str, what: &str| InvalidRules(format!("Invalid fault rule '{id}': {what}"));
        let mut ids = std::collections::HashSet::new();
        for rule in &self.rules {
            let id = rule.id.as_str();
            if id.is_empty() {
                return Err(InvalidRules(
                    "Invalid fault rules: a rule has an empty id.".into(),
                ));
            }
            if !ids.insert(id) {
                return Err(bad(id, "the id appears more than once."));
            }
            if rule
                .matches
                .tenant
                .as_deref()
                .is_some_and(|t| TenantId::parse(t).is_none())
            {
                return Err(bad(
                    id,
                    "match.tenant must be a tenant id: 1 to 128 of A-Z a-z 0-9 . _ -.",
                ));
            }
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(bad(id, "probability must be between 0 and 1."));
            }
            let effect = &rule.effect;
            let kinds = usize::from(effect.status.is_some())
                + usize::from(effect.latency_ms.is_some())
                + usize::from(effect.transport.is_some());
            if kinds != 1 {
                return Err(bad(
                    id,
                    "the effect needs exactly one of status, latencyMs, transport.",
                ));
            }
            if let Some(status) = effect.status {
                if !STATUSES.contains(&status) {
                    return Err(bad(
                        id,
                        "status must be one of 429, 500, 502, 503, 504, 507.",
                    ));
                }
            } else if effect.retry_after.is_some() {
                return Err(bad(id, "retryAfter goes with a status."));
            }
            if effect.retry_after.is_some_and(|s| !(1..=3600).contains(&s)) {
                return Err(bad(id, "retryAfter must be whole seconds from 1 to 3600."));
            }
            let longest = match effect.latency_ms {
                Some(Latency::Fixed(ms)) => ms,
                Some(Latency::Range([min, max])) => {
                    if min > max {
                        return Err(bad(id, "latencyMs range is reversed."));
                    }
                    max
                }
                None => 0,
            };
            if longest > MAX_LATENCY_MS {
                return Err(bad(
                    id,
                    "latencyMs must be at most 3600000 (an hour; a transport hang holds a \
                     request for good).",
                ));
            }
            if effect.after_commit
                && (effect.latency_ms.is_some()
                    || !matches!(
                        rule.matches.operation,
                        Some(Operation::Create | Operation::Delete)
                    ))
            {
                return Err(bad(
                    id,
                    "afterCommit goes with a status or a transport effect, on a rule matching \
                     operation create or delete.",
                ));
            }
        }
        Ok(())
    }
}

/// The stream of rule `id` under `seed`.
fn stream_seed(seed: u64, id: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

impl Faults {
    #[must_use]
    pub fn new(set: RuleSet) -> Self {
        let faults = Self::default();
        faults.replace(set);
        faults
    }

    /// Puts `set` in force; counts and streams start afresh. Without a seed, one is drawn.
    pub fn replace(&self, set: RuleSet) {
        let seed = set
            .seed
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let rules: Vec<Active> = set
            .rules
            .into_iter()
            .map(|mut spec| {
                spec.fired = None;
                spec.matched = None;
                // Checked by `RuleSet::check`; a GUID is lower-cased, as a token's `tid` is.
                if let Some(tenant) = spec.matches.tenant.as_deref().and_then(TenantId::parse) {
                    spec.matches.tenant = Some(tenant.as_str().to_owned());
                }
                Active {
                    id: Arc::from(spec.id.as_str()),
                    state: Mutex::new(Stream {
                        matched: 0,
                        fired: 0,
                        state: stream_seed(seed, &spec.id),
                    }),
                    spec,
                }
            })
            .collect();
        self.any.store(!rules.is_empty(), Ordering::Relaxed);
        *self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new((set.seed, rules));
    }

    /// The set in force, with each rule's `fired` and `matched` counts.
    #[must_use]
    pub fn current(&self) -> RuleSet {
        let active = self.active();
        RuleSet {
            seed: active.0,
            rules: active
                .1
                .iter()
                .map(|rule| {
                    let state = lock(&rule.state);
                    let mut spec = rule.spec.clone();
                    spec.fired = Some(state.fired);
                    spec.matched = Some(state.matched);
                    spec
                })
                .collect(),
        }
    }

    fn active(&self) -> Arc<(Option<u64>, Vec<Active>)> {
        Arc::clone(
            &self
                .rules
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The fault, if any, for a request of `operation` (None: a Graph request of no known
    /// operation) by `tenant` and `app`.
    pub fn decide(
        &self,
        operation: Option<Operation>,
        tenant: Option<&str>,
        app: Option<&str>,
    ) -> Option<Injected> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let active = self.active();
        let rule = active.1.iter().find(|rule| {
            let m = &rule.spec.matches;
            let operation_fits = match m.operation {
                None => !matches!(operation, Some(Operation::Batch | Operation::Token)),
                Some(named) => operation == Some(named),
            };
            // Tenants are both in `TenantId` form; an app id that is a GUID matches in any case.
            let fits = |wanted: &Option<String>, given: Option<&str>| {
                wanted.as_deref().is_none_or(|w| {
                    given.is_some_and(|g| g == w || (is_guid(w) && w.eq_ignore_ascii_case(g)))
                })
            };
            operation_fits && fits(&m.tenant, tenant) && fits(&m.app, app)
        })?;
        let mut state = lock(&rule.state);
        state.matched += 1;
        if state.matched <= rule.spec.after
            || rule.spec.times.is_some_and(|times| state.fired >= times)
        {
            return None;
        }
        if state.next() >= rule.spec.probability {
            return None;
        }
        state.fired += 1;
        let effect = &rule.spec.effect;
        let fail = |failure| Fault::Fail {
            failure,
            after_commit: effect.after_commit,
        };
        let fault = match (effect.status, effect.transport, effect.latency_ms) {
            (Some(status), _, _) => fail(Failure::Status {
                status,
                retry_after: effect
                    .retry_after
                    .or_else(|| matches!(status, 429 | 503).then_some(1)),
            }),
            (None, Some(transport), _) => fail(Failure::Transport(transport)),
            (None, None, Some(Latency::Fixed(ms))) => Fault::Latency(Duration::from_millis(ms)),
            (None, None, Some(Latency::Range([min, max]))) => {
                let span = (max - min) as f64;
                Fault::Latency(Duration::from_millis(
                    min + (state.next() * (span + 1.0)).min(span) as u64,
                ))
            }
            (None, None, None) => return None,
        };
        Some(Injected {
            rule: Arc::clone(&rule.id),
            fault,
        })
    }

    /// Takes back a fault `decide` chose but the request never carried out: an `afterCommit`
    /// failure for a write that failed on its own and so got its real answer. The rule's fired
    /// count (and with it its `times` budget and the metrics) counts only faults injected. A
    /// rule of a set since replaced is left alone: its counts went with it.
    pub fn spare(&self, rule: &Arc<str>) {
        let active = self.active();
        if let Some(rule) = active.1.iter().find(|r| Arc::ptr_eq(&r.id, rule)) {
            let mut state = lock(&rule.state);
            state.fired = state.fired.saturating_sub(1);
        }
    }
}

fn lock(stream: &Mutex<Stream>) -> std::sync::MutexGuard<'_, Stream> {
    stream
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: &str) -> RuleSet {
        RuleSet::parse(json.as_bytes()).unwrap()
    }

    fn pattern(faults: &Faults, n: usize) -> Vec<bool> {
        (0..n)
            .map(|_| {
                faults
                    .decide(Some(Operation::Create), Some("t"), None)
                    .is_some()
            })
            .collect()
    }

    #[test]
    fn after_times_and_probability_zero_and_one() {
        let faults = Faults::new(set(
            r#"{"rules":[{"id":"r","after":2,"times":3,"effect":{"status":503}}]}"#,
        ));
        assert_eq!(
            pattern(&faults, 7),
            [false, false, true, true, true, false, false]
        );
        let never = Faults::new(set(
            r#"{"rules":[{"id":"r","probability":0,"effect":{"status":500}}]}"#,
        ));
        assert!(pattern(&never, 100).iter().all(|f| !f));
        let fired = faults.current().rules[0].fired;
        assert_eq!(fired, Some(3));
    }

    #[test]
    fn a_seed_gives_the_same_pattern_and_other_rules_do_not_shift_it() {
        let one =
            r#"{"seed":7,"rules":[{"id":"flaky","probability":0.3,"effect":{"status":503}}]}"#;
        let two = r#"{"seed":7,"rules":[{"id":"other","match":{"operation":"list"},"probability":0.5,"effect":{"status":500}},
                                        {"id":"flaky","probability":0.3,"effect":{"status":503}}]}"#;
        let a = pattern(&Faults::new(set(one)), 200);
        assert_eq!(a, pattern(&Faults::new(set(one)), 200));
        assert_eq!(a, pattern(&Faults::new(set(two)), 200));
        let fired = a.iter().filter(|f| **f).count();
        assert!((30..=90).contains(&fired), "{fired} of 200 at p=0.3");
        let other_seed = one.replace("\"seed\":7", "\"seed\":8");
        assert_ne!(a, pattern(&Faults::new(set(&other_seed)), 200));
    }

    #[test]
    fn the_first_rule_that_fits_decides_alone_also_once_spent() {
        let faults = Faults::new(set(
            r#"{"rules":[{"id":"first","times":1,"effect":{"status":503}},
                         {"id":"second","effect":{"status":500}}]}"#,
        ));
        assert_eq!(pattern(&faults, 4), [true, false, false, false]);
        let counts = faults.current();
        assert_eq!(counts.rules[0].matched, Some(4));
        assert_eq!(counts.rules[1].matched, Some(0));
    }

    #[test]
    fn matching_by_operation_tenant_and_app() {
        let faults = Faults::new(set(
            r#"{"rules":[{"id":"b","match":{"operation":"batch"},"effect":{"status":502}},
                         {"id":"g","match":{"tenant":"AAAAAAAA-0000-0000-0000-000000000001","app":"x"},"effect":{"latencyMs":[5,5]}},
                         {"id":"any","match":{"tenant":"other"},"effect":{"status":503}}]}"#,
        ));
        let guid = "aaaaaaaa-0000-0000-0000-000000000001";
        let got = faults
            .decide(Some(Operation::Get), Some(guid), Some("x"))
            .unwrap();
        assert_eq!(
            (got.rule.as_ref(), got.fault),
            ("g", Fault::Latency(Duration::from_millis(5)))
        );
        assert!(faults
            .decide(Some(Operation::Get), Some(guid), None)
            .is_none());
        let by_app = Faults::new(set(
            r#"{"rules":[{"id":"a","match":{"app":"BBBBBBBB-0000-0000-0000-000000000002"},"effect":{"status":503}}]}"#,
        ));
        assert!(by_app
            .decide(
                Some(Operation::Get),
                Some("t"),
                Some("bbbbbbbb-0000-0000-0000-000000000002")
            )
            .is_some());
        assert_eq!(
            faults
                .decide(Some(Operation::Batch), None, None)
                .unwrap()
                .rule
                .as_ref(),
            "b"
        );
        // A rule without an operation never takes the batch envelope or a token request.
        assert!(faults
            .decide(Some(Operation::Token), Some("other"), None)
            .is_none());
        let any = faults.decide(None, Some("other"), None).unwrap();
        assert_eq!(
            any.fault,
            Fault::Fail {
                failure: Failure::Status {
                    status: 503,
                    retry_after: Some(1)
                },
                after_commit: false
            }
        );
    }

    #[test]
    fn bad_rule_sets_are_refused_whole() {
        for bad in [
            r#"{"rules":[{"id":"a","effect":{"status":503}},{"id":"a","effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","match":{"operation":"patch"},"effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","probability":1.5,"effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","times":-1,"effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"status":404}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"status":503,"retryAfter":0}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"latencyMs":[9,1]}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"latencyMs":-1}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"latencyMs":3600001}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"latencyMs":[0,18446744073709551615]}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"status":503,"afterCommit":true}}]}"#,
            r#"{"rules":[{"id":"a","match":{"operation":"list"},"effect":{"status":503,"afterCommit":true}}]}"#,
            r#"{"rules":[{"id":"a","effect":{}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"transport":"explode"}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"transport":"reset","status":503}}]}"#,
            r#"{"rules":[{"id":"a","match":{"operation":"create"},"effect":{"latencyMs":5,"afterCommit":true}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"status":503},"colour":"red"}]}"#,
            r#"{"rules":[{"id":"a","match":{"tenant":"not a tenant"},"effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","match":{"tenant":""},"effect":{"status":503}}]}"#,
            r#"{"seed":-3}"#,
            "[]",
        ] {
            assert!(RuleSet::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        for good in [
            r#"{"rules":[{"id":"a","effect":{"transport":"hang"}}]}"#,
            r#"{"rules":[{"id":"a","effect":{"latencyMs":[0,3600000]}}]}"#,
            r#"{"rules":[{"id":"a","match":{"tenant":"contoso.onmicrosoft.com"},"effect":{"status":503}}]}"#,
            r#"{"rules":[{"id":"a","match":{"operation":"delete"},"effect":{"transport":"reset","afterCommit":true}}]}"#,
        ] {
            assert!(RuleSet::parse(good.as_bytes()).is_ok(), "{good}");
        }
        // What GET answers can be given back.
        let faults = Faults::new(set(
            r#"{"seed":1,"rules":[{"id":"a","effect":{"status":503}}]}"#,
        ));
        let read = serde_json::to_vec(&faults.current()).unwrap();
        assert!(RuleSet::parse(&read).is_ok());
    }
}
