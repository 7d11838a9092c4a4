//! Fault profiles: the rule set a run puts in force on the emulator (`loadtest --faults FILE`),
//! and the report of what the `faults` scenario's users saw, request by request, next to what
//! the rules configure (the first matching rule's probability) and what the server counted
//! (each rule's `fired` and `matched`).

use std::collections::BTreeMap;
use std::fmt;

use userflows_emulator::chaos::{Operation, Rule, RuleSet};
use userflows_emulator::http::ADMIN_KEY_HEADER;

use crate::scenario::FAULTS_REQUESTS;

/// The statuses a fault rule answers with; with 0 (goose's status of a request that got no
/// answer: reset, closed, timed out), what the `faults` scenario counts as an injected failure.
pub const INJECTED: [u16; 7] = [0, 429, 500, 502, 503, 504, 507];

/// How far (in standard errors) a client-visible rate may stray from a configured one before
/// the run fails.
const TOLERANCE_SIGMAS: f64 = 4.0;
/// Fewer requests than this are reported but never judged.
const MIN_JUDGED: usize = 100;

/// The emulator's `/_emulator/faults` route.
pub struct FaultsRoute {
    client: reqwest::Client,
    url: String,
    admin_key: Option<String>,
}

impl FaultsRoute {
    #[must_use]
    pub fn new(host: &str, admin_key: Option<String>) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{}/_emulator/faults", host.trim_end_matches('/')),
            admin_key,
        }
    }

    async fn send(&self, method: reqwest::Method, body: Option<String>) -> Result<String, String> {
        let mut request = self.client.request(method.clone(), &self.url);
        if let Some(key) = &self.admin_key {
            request = request.header(ADMIN_KEY_HEADER, key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {}: {e}", self.url))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {}: {e}", self.url))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{method} {} answered {status}: {text}", self.url))
        }
    }

    /// Puts `set` in force (its counts and streams start afresh).
    pub async fn replace(&self, set: &RuleSet) -> Result<(), String> {
        let body = serde_json::to_string(set).map_err(|e| e.to_string())?;
        self.send(reqwest::Method::PUT, Some(body)).await.map(drop)
    }

    /// The rules in force with their counts.
    pub async fn current(&self) -> Result<RuleSet, String> {
        let text = self.send(reqwest::Method::GET, None).await?;
        RuleSet::parse(text.as_bytes()).map_err(|e| e.to_string())
    }

    /// Clears the rules.
    pub async fn clear(&self) -> Result<(), String> {
        self.send(reqwest::Method::DELETE, None).await.map(drop)
    }
}

/// The rule that decides a request, and the failure rate it configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Configured {
    pub rule: String,
    /// The share of requests it fails: its probability for a status or transport effect, 0
    /// for a latency.
    pub rate: f64,
    /// The effect as written, for the report.
    pub effect: String,
    /// False when `after` or `times` make the rate change during the run (not judged).
    pub stationary: bool,
}

/// What one request of the `faults` scenario met.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRow {
    /// goose's request name (method and name).
    pub request: String,
    pub sent: usize,
    /// Answers with an injectable status, by status (0: no answer).
    pub failed: BTreeMap<u16, usize>,
    /// The rule deciding this request; `None` when no rule matches it.
    pub configured: Option<Configured>,
}

impl FaultRow {
    /// Failed requests of any injected kind.
    #[must_use]
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }

    /// The client-visible failure rate.
    #[must_use]
    pub fn visible_rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.failures() as f64 / self.sent as f64
        }
    }
}

/// The `faults` scenario's requests against the rules in force.
#[derive(Debug, Clone)]
pub struct FaultReport {
    pub seed: Option<u64>,
    pub rows: Vec<FaultRow>,
    /// The rules with the server's `fired` and `matched` counts at the end of the run.
    pub rules: Vec<Rule>,
}

/// Whether `rule` applies to a request of `operation` by `tenant` (the run's tokens name no
/// app).
fn applies(rule: &Rule, operation: Operation, tenant: &str) -> bool {
    let m = &rule.matches;
    m.operation.is_none_or(|o| o == operation)
        && m.tenant
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case(tenant))
        && m.app.is_none()
}

impl FaultReport {
    /// The report of a run whose requests answered `statuses` (goose's request name → status
    /// → count), under `rules` (as read at the end), for users of `tenant`.
    #[must_use]
    pub fn build(
        statuses: &BTreeMap<String, BTreeMap<u16, usize>>,
        rules: RuleSet,
        tenant: &str,
    ) -> Self {
        let rows = FAULTS_REQUESTS
            .iter()
            .map(|(request, operation)| {
                let seen = statuses.get(*request).cloned().unwrap_or_default();
                let configured = rules
                    .rules
                    .iter()
                    .find(|rule| applies(rule, *operation, tenant))
                    .map(|rule| Configured {
                        rule: rule.id.clone(),
                        rate: if rule.effect.latency_ms.is_some() {
                            0.0
                        } else {
                            rule.probability
                        },
                        effect: serde_json::to_string(&rule.effect).unwrap_or_default(),
                        stationary: rule.after == 0 && rule.times.is_none(),
                    });
                FaultRow {
                    request: (*request).to_owned(),
                    sent: seen.values().sum(),
                    failed: seen
                        .into_iter()
                        .filter(|(status, _)| INJECTED.contains(status))
                        .collect(),
                    configured,
                }
            })
            .collect();
        Self {
            seed: rules.seed,
            rows,
            rules: rules.rules,
        }
    }

    /// Rows whose client-visible rate strays from the configured one by more than
    /// [`TOLERANCE_SIGMAS`] standard errors of a binomial (stationary rules, enough requests).
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|row| row.sent >= MIN_JUDGED)
            .filter_map(|row| {
                let (expected, rule) = match &row.configured {
                    Some(c) if !c.stationary => return None,
                    Some(c) => (c.rate, c.rule.as_str()),
                    None => (0.0, "no rule"),
                };
                let sigma = (expected * (1.0 - expected) / row.sent as f64).sqrt();
                let off = (row.visible_rate() - expected).abs();
                // A rate of 0 or 1 has no spread: any difference is a real one.
                (off > TOLERANCE_SIGMAS * sigma + f64::EPSILON).then(|| {
                    format!(
                        "{}: the client saw {:.4} failed against {expected} configured ({rule})",
                        row.request,
                        row.visible_rate()
                    )
                })
            })
            .collect()
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seed = self
            .seed
            .map_or_else(|| "none (drawn at each PUT)".to_owned(), |s| s.to_string());
        writeln!(f, "faults: client-visible against configured (seed {seed})")?;
        for row in &self.rows {
            let failed: Vec<String> = row
                .failed
                .iter()
                .map(|(status, n)| match status {
                    0 => format!("no answer:{n}"),
                    status => format!("{status}:{n}"),
                })
                .collect();
            let configured = row.configured.as_ref().map_or_else(
                || "no rule: 0".to_owned(),
                |c| {
                    let note = if c.stationary {
                        ""
                    } else {
                        ", after/times: not judged"
                    };
                    format!("{} {}: {}{note}", c.rule, c.effect, c.rate)
                },
            );
            writeln!(
                f,
                "  {}: {} sent, {} failed ({}) = {:.4}; configured {configured}",
                row.request,
                row.sent,
                row.failures(),
                failed.join(" "),
                row.visible_rate(),
            )?;
        }
        for rule in &self.rules {
            writeln!(
                f,
                "  rule {}: fired {} of {} matched (server's counts, every scenario)",
                rule.id,
                rule.fired.unwrap_or(0),
                rule.matched.unwrap_or(0)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> RuleSet {
        RuleSet::parse(json.as_bytes()).unwrap()
    }

    fn seen(pairs: &[(&str, &[(u16, usize)])]) -> BTreeMap<String, BTreeMap<u16, usize>> {
        pairs
            .iter()
            .map(|(name, statuses)| ((*name).to_owned(), statuses.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn rows_take_the_first_rule_that_applies_and_judge_stationary_rates() {
        let set = rules(
            r#"{"seed":3,"rules":[
                {"id":"elsewhere","match":{"tenant":"other"},"effect":{"status":500}},
                {"id":"flaky","match":{"operation":"create"},"probability":0.2,"effect":{"status":503}},
                {"id":"drop","match":{"operation":"get"},"times":5,"effect":{"transport":"reset"}},
                {"id":"slow","match":{"operation":"list"},"effect":{"latencyMs":5}}]}"#,
        );
        let statuses = seen(&[
            ("POST userFlows (faults)", &[(201, 800), (503, 200)]),
            ("GET userFlows/{id} (faults)", &[(200, 995), (0, 5)]),
            ("GET userFlows (faults)", &[(200, 1000)]),
            ("DELETE userFlows/{id} (faults)", &[(204, 990), (500, 10)]),
        ]);
        let report = FaultReport::build(&statuses, set, "loadtest-tenant");
        let create = &report.rows[0];
        assert_eq!(create.configured.as_ref().map(|c| c.rate), Some(0.2));
        assert!((create.visible_rate() - 0.2).abs() < 1e-9);
        let get = &report.rows[1];
        assert_eq!(get.failed.get(&0), Some(&5));
        assert_eq!(get.configured.as_ref().map(|c| c.stationary), Some(false));
        assert_eq!(
            report.rows[2].configured.as_ref().map(|c| c.rate),
            Some(0.0)
        );
        // No rule matches the deletes, yet 1 % failed: that is the one violation.
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("DELETE"), "{violations:?}");
        assert!(report.to_string().contains("no answer:5"));
    }

    fn report_rules(report: &FaultReport) -> RuleSet {
        RuleSet {
            seed: report.seed,
            rules: report.rules.clone(),
        }
    }

    #[test]
    fn a_rate_far_from_the_configured_one_is_a_violation() {
        let set = rules(
            r#"{"rules":[{"id":"half","match":{"operation":"create"},"probability":0.5,"effect":{"status":503}}]}"#,
        );
        let statuses = seen(&[("POST userFlows (faults)", &[(201, 600), (503, 400)])]);
        let report = FaultReport::build(&statuses, set, "t");
        assert_eq!(report.violations().len(), 1);
        let close = seen(&[("POST userFlows (faults)", &[(201, 520), (503, 480)])]);
        let report = FaultReport::build(&close, report_rules(&report), "t");
        assert!(report.violations().is_empty());
    }
}
