//! `loadtest`: goose scenarios against a running emulator. Takes every goose option (`--host`,
//! `-u`, `-r`/`--increase-rate`, `-t`, `--scenarios`, `--report-file`, `--threshold` …) plus
//! ours (tenant, contested ids, limits); exits non-zero when the run breaks a limit, when a
//! contested id did not get exactly one 201, or when goose itself fails.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use goose::config::GooseConfiguration;
use userflows_loadtests::{Limits, RunOptions};

/// Load tests of userflows-emulator (goose). Scenarios: create, mixed, churn, conflict,
/// multitenant, query, batch, faults (pick with --scenarios; all run when none is given).
#[derive(Parser)]
#[command(
    name = "loadtest",
    disable_version_flag = true,
    after_help = "Example: loadtest -H http://127.0.0.1:8080 --scenarios mixed -u 16 -r 8 -t 30s --report-file report.html --max-p99-ms 50"
)]
struct Cli {
    #[command(flatten)]
    goose: GooseConfiguration,

    /// Tenant of every scenario but multitenant (each of its users gets a tenant of its own).
    #[arg(long, default_value = "loadtest-tenant", help_heading = "Emulator")]
    tenant: String,

    /// How many ids the conflict scenario's users all try to create.
    #[arg(long, default_value_t = 16, help_heading = "Emulator")]
    conflict_ids: usize,

    /// A fault rule set (JSON, as `PUT /_emulator/faults` takes it) to put in force for the
    /// run and clear after it. The `faults` scenario's report compares what its users saw with
    /// what the rules configure.
    #[arg(long, value_name = "FILE", help_heading = "Emulator")]
    faults: Option<std::path::PathBuf>,

    /// The emulator's --admin-key, for its fault route.
    #[arg(long, env = "USERFLOWS_ADMIN_KEY", help_heading = "Emulator")]
    admin_key: Option<String>,

    /// Fail the run (exit 1) when more than PERCENT of requests fail. Any unexpected status
    /// is a failure, so the default 0 fails on the first one.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 0.0,
        help_heading = "Limits"
    )]
    max_error_rate: f64,

    /// Fail the run (exit 1) when the 99th percentile response time over all requests is
    /// above MS milliseconds.
    #[arg(long, value_name = "MS", help_heading = "Limits")]
    max_p99_ms: Option<f64>,
}

/// goose matches `--scenarios` against machine names (letters and digits only), so the
/// `multi-tenant` scenario is `multitenant` there; accept the name as the docs spell it too.
fn spell_scenarios(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut after_flag = false;
    args.map(|arg| {
        let is_value = std::mem::replace(&mut after_flag, arg == "--scenarios");
        match arg.to_str() {
            Some(text) if is_value || text.starts_with("--scenarios=") => {
                text.replace("multi-tenant", "multitenant").into()
            }
            _ => arg,
        }
    })
    .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse_from(spell_scenarios(std::env::args_os()));
    let faults = match &cli.faults {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read the fault profile {}", path.display()))?;
            Some(
                userflows_emulator::chaos::RuleSet::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let options = RunOptions {
        tenant: cli.tenant,
        conflict_ids: cli.conflict_ids,
        faults,
        admin_key: cli.admin_key,
    };
    let max_p99 = cli
        .max_p99_ms
        .map(|ms| Duration::try_from_secs_f64(ms / 1e3))
        .transpose()
        .context("--max-p99-ms must be a positive number of milliseconds")?;
    let limits = Limits {
        max_error_rate_percent: cli.max_error_rate,
        max_p99,
    };
    let outcome = userflows_loadtests::run(cli.goose, &options, &limits)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the load test could not run")?;
    eprintln!("{outcome}");
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
