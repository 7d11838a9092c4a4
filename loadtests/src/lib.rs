//! The emulator's load-test kit, as a library so the `loadtest` binary and the CI smoke test
//! run the very same scenarios.
//!
//! - [`scenario`] defines the goose scenarios (`create`, `mixed`, `churn`, `conflict`,
//!   `multitenant`, `query`, `batch`, `faults`) and the per-run state they share ([`scenario::RunContext`]): the run's
//!   random tag (so ids never collide across users or runs), the tokens, and the tally of
//!   `201`s per contested id that the `conflict` scenario is judged by.
//! - [`verdict`] reads goose's metrics after a run: totals, error rate, p99, statuses per
//!   request, and the limits that turn a run into a failure (non-zero exit).
//! - [`faults`] puts a fault profile in force for a run and reports what the `faults`
//!   scenario's users saw against what the rules configure.
//!
//! Flow: [`run`] registers the scenarios on a `GooseAttack`, executes it, and hands the
//! metrics and the run context to [`verdict::judge`].

pub mod faults;
pub mod scenario;
pub mod verdict;

use std::sync::Arc;

use goose::config::GooseConfiguration;
use goose::prelude::*;

pub use scenario::{RunContext, RunOptions};
pub use verdict::{Limits, Outcome};

/// Where the emulator listens by default (`userflows-emulator serve`).
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8080";

/// Runs one load test with `config` (goose's own options) and `options` (ours), then judges
/// it against `limits`. An `Err` means goose could not run at all (bad options, no host);
/// a run that ran but failed its limits is an `Ok` whose [`Outcome::passed`] is false.
pub async fn run(
    config: GooseConfiguration,
    options: &RunOptions,
    limits: &Limits,
) -> Result<Outcome, Box<GooseError>> {
    let context = Arc::new(RunContext::new(options).map_err(|e| {
        Box::new(GooseError::InvalidOption {
            option: "--tenant".to_owned(),
            value: options.tenant.clone(),
            detail: e,
        })
    })?);
    let host = config
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let route = faults::FaultsRoute::new(&host, options.admin_key.clone());
    if let Some(profile) = &options.faults {
        route.replace(profile).await.map_err(|detail| {
            Box::new(GooseError::InvalidOption {
                option: "--faults".to_owned(),
                value: host.clone(),
                detail: format!("the fault profile could not be put in force: {detail}"),
            })
        })?;
    }
    let mut attack = *GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::Host, DEFAULT_HOST)?;
    // No telnet controller: a load test here needs no remote control and should open no port.
    attack = *attack.set_default(GooseDefault::NoTelnet, true)?;
    for scenario in scenario::all(&context)? {
        attack = attack.register_scenario(scenario);
    }
    let (metrics, goose_failed) = match Box::pin(attack.execute()).await {
        Ok(metrics) => (metrics, Vec::new()),
        // goose's own `--threshold` rules: keep the metrics, report the rules that failed.
        Err(error) => match error {
            GooseError::ThresholdsFailed { failed, metrics } => {
                let rules = failed
                    .iter()
                    .map(|r| {
                        format!(
                            "goose threshold {} failed (observed {})",
                            r.rule, r.observed
                        )
                    })
                    .collect();
                (*metrics.0, rules)
            }
            other => return Err(Box::new(other)),
        },
    };
    let mut outcome = verdict::judge(metrics, &context, limits);
    outcome.violations.extend(goose_failed);
    let faulted = scenario::FAULTS_REQUESTS
        .iter()
        .any(|(name, _)| outcome.statuses.contains_key(*name));
    if faulted {
        match route.current().await {
            Ok(rules) => {
                let report = faults::FaultReport::build(&outcome.statuses, rules, &options.tenant);
                outcome.violations.extend(report.violations());
                outcome.faults = Some(report);
            }
            Err(e) => outcome
                .violations
                .push(format!("the fault rules could not be read back: {e}")),
        }
    }
    if options.faults.is_some() {
        if let Err(e) = route.clear().await {
            outcome
                .violations
                .push(format!("the fault profile could not be cleared: {e}"));
        }
    }
    Ok(outcome)
}
