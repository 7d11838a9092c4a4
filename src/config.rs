//! Settings of a server run, built from the command line (or by tests) and read by `app`.

use std::path::PathBuf;

use crate::chaos::{Limits, RuleSet};
use crate::http::AuthMode;
use crate::identity::App;

/// (policy) Events between two snapshots of a tenant, by default.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// (policy) How long a tenant with no request keeps its actor, by default.
pub const DEFAULT_TENANT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// (policy) Free space kept on the data directory's disk by default: 64 MiB.
pub const DEFAULT_DISK_RESERVE: u64 = 64 * 1024 * 1024;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A sled database in `dir`.
    Disk {
        dir: PathBuf,
        durability: Durability,
    },
    /// Process memory: gone at exit.
    Memory,
}

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// After a group-commit flush covering it: survives a killed process.
    Flush,
    /// At once, written within 5 ms; sled flushes every 500 ms, so a crash loses up to the
    /// last ~0.5 s.
    Relaxed,
}

/// Everything a server run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    pub storage: Storage,
    pub auth: AuthMode,
    pub max_body_bytes: usize,
    /// (policy) How long a create body may take to arrive (a client sending it a byte at a time
    /// holds a connection no longer than this).
    pub body_timeout: std::time::Duration,
    /// (policy) Bytes that must stay free on the data directory's disk; below, writes get 507
    /// (0: no guard).
    pub disk_reserve: u64,
    /// HTTP worker threads; the tenant actors run on their arbiters (docs/adr/0009).
    pub workers: usize,
    /// Requests one tenant may have waiting to be taken up before it answers 503.
    pub queue_limit: usize,
    /// Whether SIGINT/SIGTERM stop the server (off in tests, which stop it by handle).
    pub handle_signals: bool,
    /// Save a tenant snapshot every this many events (`None`: no snapshots).
    pub snapshot_every: Option<u64>,
    /// Park a tenant after about this long without a request: its actor and in-memory state
    /// go, and its next request rebuilds them from the log (`None`: never). Only on disk: in
    /// memory the log is the only copy, and a tenant's state is smaller than its log.
    pub tenant_idle: Option<std::time::Duration>,
    /// Key required by the admin routes (header `X-Emulator-Admin-Key`).
    pub admin_key: Option<String>,
    /// An HTTPS listener beside the plain one.
    pub tls: Option<TlsSettings>,
    /// Where the generated CA, server certificate and signing key are kept (`<data-dir>/tls`).
    pub identity_dir: PathBuf,
    /// A PEM file with the RS256 key tokens are signed with, instead of the kept or generated
    /// one.
    pub signing_key: Option<PathBuf>,
    /// The apps the token endpoint issues tokens to (none: any app, read-write).
    pub apps: Vec<App>,
    /// Throttling limits at start (none by default: the emulator is a load-test target).
    pub throttle: Limits,
    /// Fault rules at start (none by default).
    pub faults: RuleSet,
    /// The request journal's bound in bytes of entries' JSON (0: no journal).
    pub journal_bytes: usize,
}

/// The HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    /// A certificate chain and key (PEM) to serve instead of the generated ones.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
}

impl Settings {
    /// Defaults for a server on `listen` with `storage`: lenient auth, 64 KiB bodies, one worker
    /// per core.
    #[must_use]
    pub fn new(listen: impl Into<String>, storage: Storage) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let identity_dir = match &storage {
            Storage::Disk { dir, .. } => dir.join("tls"),
            Storage::Memory => PathBuf::from("data").join("tls"),
        };
        Self {
            listen: listen.into(),
            storage,
            auth: AuthMode::Lenient,
            max_body_bytes: 64 * 1024,
            body_timeout: std::time::Duration::from_secs(10),
            disk_reserve: DEFAULT_DISK_RESERVE,
            workers: cores,
            queue_limit: 1024,
            handle_signals: true,
            snapshot_every: Some(DEFAULT_SNAPSHOT_EVERY),
            tenant_idle: Some(DEFAULT_TENANT_IDLE),
            admin_key: None,
            tls: None,
            identity_dir,
            signing_key: None,
            apps: Vec::new(),
            throttle: Limits::default(),
            faults: RuleSet::default(),
            journal_bytes: crate::journal::DEFAULT_JOURNAL_BYTES,
        }
    }

    /// A durable server over `dir` on an ephemeral loopback port, without signal handling,
    /// with two workers: what the API tests and the goose smoke run embed.
    #[must_use]
    pub fn embedded(dir: PathBuf) -> Self {
        let mut settings = Self::new(
            "127.0.0.1:0",
            Storage::Disk {
                dir,
                durability: Durability::Flush,
            },
        );
        settings.handle_signals = false;
        settings.workers = 2;
        settings
    }
}
