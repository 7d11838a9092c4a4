//! Throttling: one bucket per tenant and one per (tenant, app), each holding a minute's
//! requests (a burst of N is admitted at once) and refilling continuously. Kept as the generic
//! cell rate algorithm: a bucket is its "theoretical arrival time", so checking both buckets
//! and charging both is one step under one lock, and the wait until a refused request would be
//! admitted is exact. (`governor` charges a bucket as it checks it, so it cannot check two and
//! charge both or neither.) A bucket that has refilled is dropped: throttling leaves nothing
//! behind for a tenant that stops sending.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Graph's documented limit for user flows: requests per minute per tenant.
pub const GRAPH_TENANT_RPM: u32 = 300;
/// Graph's documented limit for user flows: requests per minute per app per tenant.
pub const GRAPH_APP_RPM: u32 = 200;

/// Buckets kept before the full ones are swept out.
const SWEEP_AT: usize = 4096;

/// Requests per minute allowed per tenant and per app in a tenant (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub tenant_rpm: Option<u32>,
    pub app_rpm: Option<u32>,
}

impl Limits {
    /// Graph's documented limits for user flows.
    pub const GRAPH: Self = Self {
        tenant_rpm: Some(GRAPH_TENANT_RPM),
        app_rpm: Some(GRAPH_APP_RPM),
    };

    /// Whether any limit is set.
    #[must_use]
    pub fn any(self) -> bool {
        self.tenant_rpm.is_some() || self.app_rpm.is_some()
    }
}

/// A refused request: how long until it would be admitted, in whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// The buckets of every tenant and app, and the limits they follow.
#[derive(Debug)]
pub struct Throttle {
    inner: Mutex<Buckets>,
    /// Mirrors `Buckets::limits.any()`, so that a server without limits never takes the lock.
    on: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Buckets {
    limits: Limits,
    /// The moment bucket times count from.
    epoch: Instant,
    /// Tenant → the time (since `epoch`) at which its bucket is full again.
    tenants: HashMap<Box<str>, Duration>,
    /// (tenant, app) → the same.
    apps: HashMap<(Box<str>, Box<str>), Duration>,
}

/// One bucket's rule: its emission interval and how far ahead of now it may run.
#[derive(Clone, Copy)]
struct Rate {
    interval: Duration,
    tolerance: Duration,
}

impl Rate {
    fn per_minute(n: u32) -> Self {
        let interval = Duration::from_secs(60) / n.max(1);
        Self {
            interval,
            tolerance: Duration::from_secs(60).saturating_sub(interval),
        }
    }

    /// How long from `now` until a request on a bucket full again at `full_at` is admitted.
    fn wait(self, full_at: Duration, now: Duration) -> Duration {
        full_at.saturating_sub(now + self.tolerance)
    }

    fn charged(self, full_at: Duration, now: Duration) -> Duration {
        full_at.max(now) + self.interval
    }
}

impl Throttle {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Mutex::new(Buckets {
                limits,
                epoch: Instant::now(),
                tenants: HashMap::new(),
                apps: HashMap::new(),
            }),
            on: std::sync::atomic::AtomicBool::new(limits.any()),
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.lock().limits
    }

    /// Replaces the limits; every bucket starts full.
    pub fn set_limits(&self, limits: Limits) {
        let mut buckets = self.lock();
        buckets.limits = limits;
        buckets.tenants.clear();
        buckets.apps.clear();
        self.on
            .store(limits.any(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Buckets held now (tenants, apps): those not yet refilled.
    #[must_use]
    pub fn buckets(&self) -> (usize, usize) {
        let buckets = self.lock();
        (buckets.tenants.len(), buckets.apps.len())
    }

    /// Admits one request of `tenant` (and `app`, when the token names one) and charges its
    /// buckets, or refuses it and charges nothing.
    pub fn admit(&self, tenant: &str, app: Option<&str>) -> Result<(), Throttled> {
        if !self.on.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut guard = self.lock();
        let buckets = &mut *guard;
        let now = buckets.epoch.elapsed();
        let tenant_rate = buckets.limits.tenant_rpm.map(Rate::per_minute);
        let app_rate = buckets
            .limits
            .app_rpm
            .map(Rate::per_minute)
            .filter(|_| app.is_some());
        let tenant_full = buckets.tenants.get(tenant).copied().unwrap_or(now);
        let app_key = app.map(|app| (Box::<str>::from(tenant), Box::<str>::from(app)));
        let app_full = app_key
            .as_ref()
            .and_then(|key| buckets.apps.get(key).copied())
            .unwrap_or(now);
        let wait = [
            tenant_rate.map(|r| r.wait(tenant_full, now)),
            app_rate.map(|r| r.wait(app_full, now)),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
        if !wait.is_zero() {
            // Whole seconds, rounded up: a client that waits as told is admitted.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Throttled {
                retry_after_secs: secs.max(1),
            });
        }
        if buckets.tenants.len() + buckets.apps.len() >= SWEEP_AT {
            buckets.tenants.retain(|_, full| *full > now);
            buckets.apps.retain(|_, full| *full > now);
        }
        if let Some(rate) = tenant_rate {
            buckets
                .tenants
                .insert(tenant.into(), rate.charged(tenant_full, now));
        }
        if let (Some(rate), Some(key)) = (app_rate, app_key) {
            buckets.apps.insert(key, rate.charged(app_full, now));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // A panic while holding the lock leaves the buckets consistent: every update is one
        // insert.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_is_admitted_then_the_wait_is_one_interval() {
        let throttle = Throttle::new(Limits {
            tenant_rpm: Some(6),
            app_rpm: None,
        });
        for _ in 0..6 {
            throttle.admit("t", None).unwrap();
        }
        // One request refills every 10 s.
        let refused = throttle.admit("t", None).unwrap_err();
        assert!((9..=10).contains(&refused.retry_after_secs), "{refused:?}");
        // Another tenant has its own bucket.
        throttle.admit("u", None).unwrap();
    }

    #[test]
    fn both_buckets_are_checked_and_a_refusal_charges_neither() {
        let throttle = Throttle::new(Limits {
            tenant_rpm: Some(3),
            app_rpm: Some(2),
        });
        throttle.admit("t", Some("a")).unwrap();
        throttle.admit("t", Some("a")).unwrap();
        // The app's bucket is empty; the tenant's still has one.
        assert!(throttle.admit("t", Some("a")).is_err());
        // The refusal took nothing from the tenant's bucket: another app gets its last token.
        throttle.admit("t", Some("b")).unwrap();
        let refused = throttle.admit("t", None).unwrap_err();
        assert!(refused.retry_after_secs >= 1);
    }

    #[test]
    fn new_limits_start_every_bucket_full_and_none_admits_everything() {
        let throttle = Throttle::new(Limits {
            tenant_rpm: Some(1),
            app_rpm: None,
        });
        throttle.admit("t", None).unwrap();
        assert!(throttle.admit("t", None).is_err());
        throttle.set_limits(Limits {
            tenant_rpm: Some(1),
            app_rpm: None,
        });
        throttle.admit("t", None).unwrap();
        throttle.set_limits(Limits::default());
        for _ in 0..1000 {
            throttle.admit("t", None).unwrap();
        }
        assert_eq!(throttle.buckets(), (0, 0));
    }

    #[test]
    fn the_wait_is_exact_and_rounded_up() {
        let rate = Rate::per_minute(60);
        let now = Duration::from_secs(100);
        // A bucket full again 59.5 s from now is 0.5 s past its tolerance of 59 s.
        let full_at = now + Duration::from_millis(59_500);
        assert_eq!(rate.wait(full_at, now), Duration::from_millis(500));
        assert_eq!(rate.wait(now, now), Duration::ZERO);
    }
}
