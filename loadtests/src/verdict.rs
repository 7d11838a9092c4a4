//! Judging a finished run from goose's metrics: totals, error rate, p99 over every request,
//! statuses per request name, the `conflict` tally, and the limits that fail the run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};

use crate::scenario::{ConflictTally, RunContext};

/// When a run counts as failed. Each limit is checked against the whole run.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Most failed requests allowed, as a percent of all requests (0: none may fail).
    pub max_error_rate_percent: f64,
    /// Slowest allowed 99th percentile response time over all requests.
    pub max_p99: Option<Duration>,
}

/// What one run did, and whether it passed.
#[derive(Debug)]
pub struct Outcome {
    /// The run's random tag (it appears in every id the run created).
    pub tag: String,
    pub requests: usize,
    pub failures: usize,
    /// `failures / requests` as a percent (0 without requests).
    pub error_rate_percent: f64,
    /// 99th percentile response time over every request.
    pub p99: Duration,
    /// Seconds goose measured (after the ramp-up, unless `--no-reset-metrics`).
    pub duration_secs: usize,
    /// Per request as goose names it (`POST userFlows`, `GET userFlows/{id}`, …): status → count.
    pub statuses: BTreeMap<String, BTreeMap<u16, usize>>,
    /// What the `conflict` scenario saw (all zero when it did not run).
    pub conflict: ConflictTally,
    /// Every reason the run failed; empty when it passed.
    pub violations: Vec<String>,
    /// What the `faults` scenario saw against the rules (when it ran).
    pub faults: Option<crate::faults::FaultReport>,
    /// goose's metrics, for anything not summarized here.
    pub metrics: GooseMetrics,
}

impl Outcome {
    /// Whether the run stayed within every limit.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Requests per second over the measured time.
    #[must_use]
    pub fn requests_per_second(&self) -> f64 {
        if self.duration_secs == 0 {
            0.0
        } else {
            self.requests as f64 / self.duration_secs as f64
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run {}: {} requests in {} s ({:.0}/s), {} failed ({:.3}%), p99 {:.2} ms",
            self.tag,
            self.requests,
            self.duration_secs,
            self.requests_per_second(),
            self.failures,
            self.error_rate_percent,
            self.p99.as_secs_f64() * 1e3,
        )?;
        for (name, statuses) in &self.statuses {
            let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            writeln!(f, "  {name}: {}", statuses.join(" "))?;
        }
        if self.conflict.answered > 0 {
            writeln!(
                f,
                "  conflict: {} ids contested, {} creates answered, {} ids without exactly one 201",
                self.conflict.tried,
                self.conflict.answered,
                self.conflict.wrong.len()
            )?;
        }
        if let Some(faults) = &self.faults {
            write!(f, "{faults}")?;
        }
        if self.passed() {
            write!(f, "PASS")
        } else {
            write!(f, "FAIL: {}", self.violations.join("; "))
        }
    }
}

/// Summarizes `metrics` and checks the run against `limits` and the conflict rule.
#[must_use]
pub fn judge(metrics: GooseMetrics, context: &RunContext, limits: &Limits) -> Outcome {
    let mut requests = 0;
    let mut failures = 0;
    let mut all_times = GooseRequestMetricTimingData::default();
    let mut statuses: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for (name, aggregate) in &metrics.requests {
        requests += aggregate.success_count + aggregate.fail_count;
        failures += aggregate.fail_count;
        add_times(&mut all_times, &aggregate.raw_data);
        let by_status = statuses.entry(name.clone()).or_default();
        for (status, count) in &aggregate.status_code_counts {
            *by_status.entry(*status).or_default() += count;
        }
    }
    let error_rate_percent = if requests == 0 {
        0.0
    } else {
        failures as f64 * 100.0 / requests as f64
    };
    let p99 = Duration::from_micros(all_times.percentile_us(0.99));

    let mut violations = Vec::new();
    if requests == 0 {
        violations.push("no requests were made (is the emulator running at --host?)".to_owned());
    }
    if error_rate_percent > limits.max_error_rate_percent {
        violations.push(format!(
            "error rate {error_rate_percent:.3}% ({failures} of {requests}) is above the limit of {}%",
            limits.max_error_rate_percent
        ));
    }
    if let Some(max) = limits.max_p99 {
        if p99 > max {
            violations.push(format!(
                "p99 {:.2} ms is above the limit of {:.2} ms",
                p99.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            ));
        }
    }
    let conflict = context.conflict_tally();
    if !conflict.wrong.is_empty() {
        let examples: Vec<String> = conflict
            .wrong
            .iter()
            .take(5)
            .map(|(id, created)| format!("{id} got {created}"))
            .collect();
        violations.push(format!(
            "{} contested ids did not get exactly one 201 ({})",
            conflict.wrong.len(),
            examples.join(", ")
        ));
    }
    Outcome {
        tag: context.tag().to_owned(),
        requests,
        failures,
        error_rate_percent,
        p99,
        duration_secs: metrics.duration,
        statuses,
        conflict,
        violations,
        faults: None,
        metrics,
    }
}

/// Adds every response time of `from` to `into` (goose's own merge is private).
fn add_times(into: &mut GooseRequestMetricTimingData, from: &GooseRequestMetricTimingData) {
    if from.counter == 0 {
        return;
    }
    for (&bucket, &count) in from.times_us.iter() {
        let before = into.times_us.get(&bucket).copied().unwrap_or(0);
        into.times_us.insert(bucket, before + count);
    }
    if into.counter == 0 || from.minimum_time_us < into.minimum_time_us {
        into.minimum_time_us = from.minimum_time_us;
    }
    into.maximum_time_us = into.maximum_time_us.max(from.maximum_time_us);
    into.total_time_us += from.total_time_us;
    into.counter += from.counter;
}
