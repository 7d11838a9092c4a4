//! The command line: `serve` (the default), `log` (offline work on a data directory) and `token`.
//! Each flag has an environment fallback.

mod log;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::Application;
use crate::chaos::{Limits, RuleSet};
use crate::config::{
    Durability, Settings, Storage, TlsSettings, DEFAULT_SNAPSHOT_EVERY, DEFAULT_TENANT_IDLE,
};
use crate::http::auth::{mint, Claims};
use crate::http::AuthMode;
use crate::identity::keys::sign_hs256;
use crate::identity::{App, SigningKey};
use crate::sched::{self, CpuScheduling};
use crate::tenant::TenantId;

/// A local, durable emulator of Microsoft Graph's /beta/identity/userFlows API.
#[derive(Debug, Parser)]
#[command(
    name = "userflows-emulator",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, the emulator serves with these options.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only move the bytes"
)]
enum Command {
    /// Serve the Graph API (the default).
    Serve(ServeArgs),
    /// Print a bearer token (a JWT) for a tenant, for curl, SDKs and load tests.
    Token(TokenArgs),
    /// Inspect, replay, verify, export or import the event log of a stopped server.
    Log(log::LogArgs),
    /// Wait until a server is ready (GET URL/_emulator/ready answers 200): exit 0 then, or
    /// non-zero with the reason once the timeout passes.
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// How long to wait, as `30s`, `2m` or `500ms`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// A CA file to trust for an https URL (the emulator's `<data-dir>/tls/ca.pem`).
    #[arg(long)]
    ca: Option<PathBuf>,
}

/// How requests are tied to tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthKind {
    /// A bearer JWT whose payload has a `tid`; signature, audience and expiry are not checked.
    Lenient,
    /// As lenient, plus a verified signature (RS256 by the emulator's key, or HS256 with
    /// --jwt-secret), `exp`/`nbf` (60 s skew), Graph's audience, and `scp`/`roles` holding
    /// IdentityUserFlow.ReadWrite.All (writes) or .Read.All (reads).
    Strict,
    /// No token needed: every request belongs to --default-tenant.
    None,
}

/// Throttling presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ThrottleKind {
    Off,
    Graph,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "USERFLOWS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory of the event log (a sled database).
    #[arg(long, env = "USERFLOWS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Keep the event log in memory only: EVERYTHING is lost when the process exits.
    #[arg(long, env = "USERFLOWS_IN_MEMORY")]
    in_memory: bool,
    /// flush: a 201/204 is sent only after a flush covering its event (survives a killed
    /// process; no loss window). relaxed: acknowledged at once, written within 5 ms and flushed
    /// every 500 ms, so a crash may lose up to the last ~0.5 s of acknowledged writes.
    #[arg(long, env = "USERFLOWS_DURABILITY", value_enum, default_value_t = Durability::Flush)]
    durability: Durability,
    /// How requests are tied to tenants.
    #[arg(long, env = "USERFLOWS_AUTH", value_enum, default_value_t = AuthKind::Lenient)]
    auth: AuthKind,
    /// The HS256 secret --auth strict verifies tokens with (RS256 tokens of the emulator's own
    /// key are accepted as well).
    #[arg(long, env = "USERFLOWS_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// Also serve HTTPS on this address (Graph, the identity routes and the admin routes).
    #[arg(long, env = "USERFLOWS_TLS_LISTEN")]
    tls_listen: Option<String>,
    /// The certificate chain (PEM) to serve on --tls-listen [default: a local CA and server
    /// certificate made at first start in <data-dir>/tls/; clients trust its ca.pem].
    #[arg(long, env = "USERFLOWS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "USERFLOWS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The RSA key (PEM) tokens are signed with [default: made at first start and kept in
    /// <data-dir>/tls/signing-key.pem; with --in-memory, made for this process].
    #[arg(long, env = "USERFLOWS_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// An app the token endpoint issues tokens to, as `CLIENT_ID:SECRET` (read-write) or
    /// `CLIENT_ID:SECRET:ROLE,ROLE...` (repeatable). With none, any client id and secret get a
    /// read-write token.
    #[arg(long = "app", env = "USERFLOWS_APPS", value_delimiter = ' ')]
    apps: Vec<App>,
    /// The tenant of every request with --auth none.
    #[arg(
        long,
        env = "USERFLOWS_DEFAULT_TENANT",
        default_value = "00000000-0000-0000-0000-000000000001"
    )]
    default_tenant: String,
    /// Throttling: `graph` applies Graph's documented user-flow limits (300 requests a minute
    /// per tenant, 200 per app per tenant), answering 429 `TooManyRequests` with `Retry-After`;
    /// `off` (the default) throttles nothing unless a --throttle-*-rpm is given. Changeable at
    /// run time through PUT /_emulator/throttle.
    #[arg(long, env = "USERFLOWS_THROTTLE", value_enum, default_value_t = ThrottleKind::Off)]
    throttle: ThrottleKind,
    /// Requests a minute one tenant may send (a burst of N, refilled continuously); overrides
    /// --throttle graph's 300.
    #[arg(long, env = "USERFLOWS_THROTTLE_TENANT_RPM", value_parser = clap::value_parser!(u32).range(1..))]
    throttle_tenant_rpm: Option<u32>,
    /// Requests a minute one app (the token's appid, else azp) may send in one tenant;
    /// overrides --throttle graph's 200.
    #[arg(long, env = "USERFLOWS_THROTTLE_APP_RPM", value_parser = clap::value_parser!(u32).range(1..))]
    throttle_app_rpm: Option<u32>,
    /// A JSON file of fault rules to start with (docs/resilience.md); a file that does not check
    /// stops the start with the reason. Changeable at run time through /_emulator/faults.
    #[arg(long, env = "USERFLOWS_FAULTS")]
    faults: Option<PathBuf>,
    /// The request journal's bound, in bytes of its entries' JSON (read at /_emulator/requests;
    /// the oldest entries go first); 0 keeps no journal.
    #[arg(long, env = "USERFLOWS_JOURNAL_BYTES", default_value_t = crate::journal::DEFAULT_JOURNAL_BYTES)]
    journal_bytes: usize,
    /// Once listening, write the bound addresses to FILE as JSON, {"http": "127.0.0.1:PORT",
    /// "https": … or null}: with port 0 in --listen or --tls-listen, this is how a script
    /// learns the ports.
    #[arg(long, env = "USERFLOWS_PORT_FILE")]
    port_file: Option<PathBuf>,
    /// Largest create body accepted; larger ones get 413 and store nothing.
    #[arg(long, env = "USERFLOWS_MAX_BODY_BYTES", default_value_t = 65_536)]
    max_body_bytes: usize,
    /// Seconds a request body may take to arrive; a slower one gets 408 and changes nothing.
    #[arg(long, env = "USERFLOWS_BODY_TIMEOUT", default_value_t = 10)]
    body_timeout: u64,
    /// MiB that must stay free on the data directory's disk: below it every write gets 507
    /// insufficientStorage and stores nothing, and writes resume by themselves once space is
    /// free again. 0 turns the guard off (sled itself then meets the full disk, and a restart
    /// is needed after it).
    #[arg(long, env = "USERFLOWS_DISK_RESERVE_MIB", default_value_t = 64)]
    disk_reserve_mib: u64,
    /// HTTP worker threads; the tenant actors run on them [default: one per core].
    #[arg(long, env = "USERFLOWS_WORKERS")]
    workers: Option<usize>,
    /// Requests one tenant may have queued before it answers 503 with Retry-After.
    #[arg(long, env = "USERFLOWS_MAX_QUEUE", default_value_t = 1024)]
    max_queue: usize,
    /// Save a snapshot of a tenant after N events (or after as many events as it has flows,
    /// when that is more), so start-up replays at most that many events per tenant.
    #[arg(long, env = "USERFLOWS_SNAPSHOT_EVERY", default_value_t = DEFAULT_SNAPSHOT_EVERY)]
    snapshot_every: u64,
    /// Park a tenant after about N seconds without a request: its actor and in-memory state
    /// are dropped, and its next request rebuilds them from its latest snapshot and the events
    /// after it. 0: never. Ignored with --in-memory.
    #[arg(long, env = "USERFLOWS_TENANT_IDLE_SECS", default_value_t = DEFAULT_TENANT_IDLE.as_secs())]
    tenant_idle_secs: u64,
    /// Neither save nor use snapshots: recovery replays every event.
    #[arg(long, env = "USERFLOWS_NO_SNAPSHOTS")]
    no_snapshots: bool,
    /// Key the /_emulator admin routes require in the X-Emulator-Admin-Key header (health and
    /// ready excepted). Without it, those routes answer only a loopback client that names a
    /// loopback Host.
    #[arg(long, env = "USERFLOWS_ADMIN_KEY")]
    admin_key: Option<String>,
    /// CPU scheduling of the server's threads. batch (Linux `SCHED_BATCH`): a woken thread does
    /// not preempt a running one, so the HTTP workers, tenant actors and a load generator on the
    /// same cores switch far less (docs/BENCHMARKS.md); normal: the operating system's default,
    /// a lower p99 when one busy tenant saturates the cores (docs/adr/0009).
    #[arg(long, env = "USERFLOWS_CPU_SCHEDULING", value_enum, default_value_t = CpuScheduling::Batch)]
    cpu_scheduling: CpuScheduling,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The tenant id (the token's `tid`).
    #[arg(long, env = "USERFLOWS_TENANT")]
    tenant: String,
    /// A delegated scope for `scp` (repeatable) [default: IdentityUserFlow.ReadWrite.All].
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// An application role for `roles` (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    valid_for: u64,
    /// A token that expired an hour ago (for testing a client's handling of 401).
    #[arg(long, conflicts_with = "valid_for")]
    expired: bool,
    /// Sign HS256 with this secret (what `serve --auth strict --jwt-secret` verifies).
    #[arg(long, env = "USERFLOWS_JWT_SECRET", conflicts_with_all = ["signing_key", "data_dir"])]
    secret: Option<String>,
    /// Sign RS256 with this RSA key (PEM), as the emulator's token endpoint does.
    #[arg(long, conflicts_with = "data_dir")]
    signing_key: Option<PathBuf>,
    /// Sign RS256 with the key the emulator keeps in DATA_DIR/tls/signing-key.pem.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ServeArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let storage = if self.in_memory {
            Storage::Memory
        } else {
            Storage::Disk {
                dir: self.data_dir.clone(),
                durability: self.durability,
            }
        };
        let mut settings = Settings::new(self.listen.clone(), storage);
        settings.auth = match self.auth {
            AuthKind::Lenient => AuthMode::Lenient,
            AuthKind::Strict => AuthMode::Strict {
                jwt_secret: self.jwt_secret.clone().filter(|s| !s.is_empty()),
            },
            AuthKind::None => AuthMode::None {
                default_tenant: TenantId::parse(&self.default_tenant).with_context(|| {
                    format!(
                        "--default-tenant '{}' is not a tenant id (1-128 of A-Z a-z 0-9 . _ -)",
                        self.default_tenant
                    )
                })?,
            },
        };
        settings.max_body_bytes = self.max_body_bytes;
        settings.journal_bytes = self.journal_bytes;
        settings.disk_reserve = self.disk_reserve_mib.saturating_mul(1024 * 1024);
        settings.body_timeout = std::time::Duration::from_secs(self.body_timeout.max(1));
        if let Some(workers) = self.workers {
            settings.workers = workers.max(1);
        }
        settings.queue_limit = self.max_queue.max(1);
        settings.snapshot_every = (!self.no_snapshots).then_some(self.snapshot_every.max(1));
        settings.tenant_idle = (self.tenant_idle_secs > 0)
            .then(|| std::time::Duration::from_secs(self.tenant_idle_secs));
        settings.admin_key = self.admin_key.clone().filter(|k| !k.is_empty());
        settings.identity_dir = self.data_dir.join("tls");
        settings.tls = self.tls_listen.clone().map(|listen| TlsSettings {
            listen,
            cert_and_key: self.tls_cert.clone().zip(self.tls_key.clone()),
        });
        settings.signing_key.clone_from(&self.signing_key);
        settings.apps.clone_from(&self.apps);
        let base = match self.throttle {
            ThrottleKind::Graph => Limits::GRAPH,
            ThrottleKind::Off => Limits::default(),
        };
        if let Some(file) = &self.faults {
            let text = std::fs::read(file)
                .with_context(|| format!("cannot read --faults {}", file.display()))?;
            settings.faults = RuleSet::parse(&text)
                .map_err(|e| anyhow::anyhow!("--faults {}: {e}", file.display()))?;
        }
        settings.throttle = Limits {
            tenant_rpm: self.throttle_tenant_rpm.or(base.tenant_rpm),
            app_rpm: self.throttle_app_rpm.or(base.app_rpm),
        };
        Ok(settings)
    }
}

/// Runs the command line.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(&args),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Log(args)) => log::run(args),
        Some(Command::Wait(args)) => wait(&args),
        None => serve(&cli.serve),
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    // A GUID is written lower-cased, as every answer shows it.
    let tenant = TenantId::parse(&args.tenant).with_context(|| {
        format!(
            "'{}' is not a tenant id (1-128 of A-Z a-z 0-9 . _ -)",
            args.tenant
        )
    })?;
    let mut claims = Claims::for_tenant(tenant.as_str(), &args.scopes, &args.roles, args.valid_for);
    if args.expired {
        let now = claims.iat.unwrap_or_default();
        claims.iat = Some(now.saturating_sub(7200));
        claims.nbf = claims.iat;
        claims.exp = Some(now.saturating_sub(3600));
    }
    let token = match (&args.secret, &args.signing_key, &args.data_dir) {
        (Some(secret), _, _) => sign_hs256(secret.as_bytes(), &claims)?,
        // The error names the file and why it cannot be used.
        (None, Some(path), _) => SigningKey::load(path)?.sign(&claims)?,
        (None, None, Some(dir)) => {
            let path = dir.join("tls").join("signing-key.pem");
            if !path.exists() {
                anyhow::bail!(
                    "no signing key at {}: the emulator makes it at its first start on that \
                     data directory",
                    path.display()
                );
            }
            SigningKey::load(&path)?.sign(&claims)?
        }
        (None, None, None) => mint(&claims)?,
    };
    println!("{token}");
    Ok(())
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init("info");
    let settings = args.settings()?;
    // Before any other thread starts, so that every thread inherits it.
    if let Err(e) = sched::apply_to_new_threads(args.cpu_scheduling) {
        tracing::warn!(
            policy = ?args.cpu_scheduling,
            "could not set the CPU scheduling policy ({e}); running with the default"
        );
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings)?;
        let data = match &settings.storage {
            Storage::Disk { dir, durability } => {
                format!("{} (durability: {durability:?})", dir.display())
            }
            Storage::Memory => "in memory (lost at exit)".to_owned(),
        };
        tracing::info!(
            address = %app.address(),
            data = %data,
            auth = ?args.auth,
            cpu_scheduling = ?args.cpu_scheduling,
            "userflows-emulator listening on http://{}/beta/identity/userFlows (ready once recovered: GET /_emulator/ready)",
            app.address()
        );
        if let Some(tls) = app.tls_address() {
            let trust = app.ca_file().map_or_else(
                || "the given certificate".to_owned(),
                |ca| {
                    format!(
                        "clients trust {} (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS)",
                        ca.display()
                    )
                },
            );
            tracing::info!(address = %tls, "HTTPS on https://{tls}/beta/identity/userFlows; {trust}");
        }
        if let Some(file) = &args.port_file {
            let ports = serde_json::json!({
                "http": app.address().to_string(),
                "https": app.tls_address().map(|a| a.to_string()),
            });
            write_port_file(file, &ports.to_string())
                .with_context(|| format!("cannot write --port-file {}", file.display()))?;
        }
        app.run_until_stopped().await?;
        Ok(())
    })
}

/// `userflows-emulator wait`: polls `URL/_emulator/ready` every 100 ms until it answers 200.
fn wait(args: &WaitArgs) -> anyhow::Result<()> {
    let mut agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(2));
    if let Some(ca) = &args.ca {
        agent = agent.tls_config(Arc::new(client_tls(ca)?));
    }
    let agent = agent.build();
    let url = format!("{}/_emulator/ready", args.url.trim_end_matches('/'));
    let deadline = std::time::Instant::now() + args.timeout;
    loop {
        let last = match agent.get(&url).call() {
            Ok(answer) if answer.status() == 200 => {
                println!("ready: {url}");
                return Ok(());
            }
            Ok(answer) => format!("it answered {}", answer.status()),
            Err(ureq::Error::Status(status, answer)) => {
                let body = answer.into_string().unwrap_or_default();
                format!("it answered {status} {}", body.trim())
            }
            // No wait makes a URL well-formed: say so at once.
            Err(ureq::Error::Transport(e))
                if matches!(
                    e.kind(),
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
                ) =>
            {
                anyhow::bail!("--url {}: {e}", args.url);
            }
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{url} was not ready within {}: {last}",
                humantime::format_duration(args.timeout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A TLS client configuration trusting the CA certificates in `ca` (PEM) only.
fn client_tls(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read --ca {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("--ca {}", ca.display()))?)?;
    }
    if roots.is_empty() {
        anyhow::bail!(
            "--ca {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ca.display()
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Writes `text` to `file` whole: to a temporary file beside it, then renamed, so a reader
/// never sees half of it.
fn write_port_file(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, file)
}
