//! Request counters and the latency histogram behind `GET /_emulator/metrics`, lock-free so
//! that counting costs the request path a few atomic adds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which API operation a request was, for the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    Create,
    List,
    Count,
    Get,
    Delete,
    /// `POST /beta/$batch` itself; its items count under their own routes.
    Batch,
    /// The identity routes: discovery, keys and the token endpoint.
    Identity,
    Admin,
    Other,
}

impl RouteLabel {
    const ALL: [Self; 9] = [
        Self::Create,
        Self::List,
        Self::Count,
        Self::Get,
        Self::Delete,
        Self::Batch,
        Self::Identity,
        Self::Admin,
        Self::Other,
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::List => "list",
            Self::Count => "count",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Batch => "batch",
            Self::Identity => "identity",
            Self::Admin => "admin",
            Self::Other => "other",
        }
    }
}

/// Statuses counted one by one; any other is counted as `other`.
/// 0 stands for no answer (a fault rule broke the connection), shown as `none`.
const STATUSES: [u16; 20] = [
    0, 200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 424, 429, 500, 502, 503, 504,
    507,
];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters of the HTTP front end.
pub struct Metrics {
    /// `[route][status index]`, the last index for other statuses.
    requests: Vec<Vec<AtomicU64>>,
    /// Requests at or below each bucket's bound (not cumulative; summed when rendered).
    latency: Vec<AtomicU64>,
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: RouteLabel::ALL
                .iter()
                .map(|_| (0..=STATUSES.len()).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            latency: (0..=BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            latency_sum_micros: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: RouteLabel, status: u16, elapsed: Duration) {
        let route_index = RouteLabel::ALL
            .iter()
            .position(|r| *r == route)
            .unwrap_or(0);
        let status_index = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        if let Some(counter) = self
            .requests
            .get(route_index)
            .and_then(|row| row.get(status_index))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        if let Some(counter) = self.latency.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP userflows_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE userflows_requests_total counter");
        for (route, row) in RouteLabel::ALL.iter().zip(&self.requests) {
            for (i, counter) in row.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = match STATUSES.get(i) {
                    Some(0) => "none".to_owned(),
                    Some(status) => status.to_string(),
                    None => "other".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "userflows_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    route.name()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP userflows_request_duration_seconds Time from request to response."
        );
        let _ = writeln!(out, "# TYPE userflows_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, counter) in self.latency.iter().enumerate() {
            cumulative += counter.load(Ordering::Relaxed);
            let bound = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                out,
                "userflows_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "userflows_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "userflows_request_duration_seconds_count {}",
            self.latency_count.load(Ordering::Relaxed)
        );
    }
}

/// Appends one gauge or counter with its help and type lines.
pub fn render_value(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_by_route_status_and_bucket() {
        let m = Metrics::default();
        m.record(RouteLabel::Create, 201, Duration::from_micros(300));
        m.record(RouteLabel::Create, 201, Duration::from_millis(3));
        m.record(RouteLabel::Get, 418, Duration::from_secs(2));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("userflows_requests_total{route=\"create\",status=\"201\"} 2"));
        assert!(out.contains("userflows_requests_total{route=\"get\",status=\"other\"} 1"));
        assert!(out.contains("userflows_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(out.contains("userflows_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(out.contains("userflows_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(out.contains("userflows_request_duration_seconds_count 3"));
    }
}
