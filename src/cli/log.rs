//! The `log` command: offline inspection, replay, verification, export and import of a stopped
//! server's data directory. It reads records with the server's own codec ([`codec::decode`] and
//! its upcasters), shows them as their JSON envelopes ([`codec::to_json`]), and folds them with
//! the server's own [`replay`] (the one `evolve`); it never creates a tenant's stream except
//! when importing one.
//!
//! [`codec::decode`]: crate::codec::decode
//! [`codec::to_json`]: crate::codec::to_json

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{decode_json, stored_form, to_json, StoredEvent};
use crate::domain::{UserFlow, USER_FLOW_CREATED, USER_FLOW_DELETED};
use crate::store::{EventLog, EventStream, RecordBatch, SledEventLog, StoreError};
use crate::tenant::{replay, TenantId};

/// Separates the fields of one event in the digest. JSON cannot hold it unescaped, and the
/// other fields are numbers, UUIDs and fixed names, so no field can forge a boundary.
const FIELD_SEPARATOR: u8 = 0x1f;
/// Ends one event in the digest.
const RECORD_SEPARATOR: u8 = 0x1e;
/// Problems listed when an import is refused; the rest are counted.
const PROBLEMS_SHOWN: usize = 20;

/// Work on the event log of a stopped server's data directory.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// One row per tenant: events, last seq, live flows (from a full replay), and when its
    /// first and last events were recorded; a tenant whose log is broken shows why.
    Tenants(DataDir),
    /// A tenant's events as a table, or as the stored NDJSON; forwards or backwards.
    Events(EventsArgs),
    /// A tenant's flows as they stood after a seq or at a time, as {"value": [...]}.
    Replay(ReplayArgs),
    /// Check every tenant's log (contiguous seqs, decodable records, a full replay) and print
    /// a digest of each; exits non-zero naming tenant and seq on any fault.
    Verify(VerifyArgs),
    /// Write every stored envelope as NDJSON (its JSON envelope), by tenant then seq.
    Export(ExportArgs),
    /// Append an NDJSON export to tenants that have no events yet; checks the whole file
    /// first and writes nothing if anything is wrong.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct DataDir {
    /// The data directory (a sled database) of a STOPPED server: sled locks it while a server
    /// runs.
    #[arg(long, env = "USERFLOWS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EventType {
    #[value(name = "UserFlowCreated")]
    Created,
    #[value(name = "UserFlowDeleted")]
    Deleted,
}

impl EventType {
    const fn stored_name(self) -> &'static str {
        match self {
            Self::Created => USER_FLOW_CREATED,
            Self::Deleted => USER_FLOW_DELETED,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Columns: seq, recorded at, event type, flow id, request id.
    Table,
    /// The stored envelopes, byte for byte, one per line.
    Ndjson,
}

#[derive(Debug, Args)]
struct EventsArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The tenant whose events to show.
    #[arg(long, value_parser = tenant_arg)]
    tenant: String,
    /// The first seq shown [default: 1, or the newest with --backwards].
    #[arg(long)]
    from: Option<u64>,
    /// Show at most this many events (after --type).
    #[arg(long)]
    limit: Option<usize>,
    /// Newest first, from --from going down.
    #[arg(long)]
    backwards: bool,
    /// Only events of this type.
    #[arg(long = "type", value_enum)]
    event_type: Option<EventType>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The tenant to replay.
    #[arg(long, value_parser = tenant_arg)]
    tenant: String,
    /// Stop after this seq [default: replay everything].
    #[arg(long, conflicts_with = "until_time")]
    until_seq: Option<u64>,
    /// Stop before the first event recorded after this time (RFC 3339, e.g.
    /// 2026-11-20T10:00:02Z, 2026-11-20T11:00:02+01:00, or 2026-11-20 10:00:02.500 in UTC).
    #[arg(long, value_parser = parse_time)]
    until_time: Option<SystemTime>,
    /// Print each applied event (seq, type, id) to stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Only this tenant [default: every tenant].
    #[arg(long, value_parser = tenant_arg)]
    tenant: Option<String>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Only this tenant [default: every tenant].
    #[arg(long, value_parser = tenant_arg)]
    tenant: Option<String>,
    /// Write here instead of stdout (via a `.partial` file renamed when complete).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The data directory to import into; created when missing. The server must be stopped.
    #[arg(long, env = "USERFLOWS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// An NDJSON file as `log export` writes it.
    file: PathBuf,
}

/// An RFC 3339 time with any offset (`Z`, `+01:00`), or without one (then UTC), with `T` or
/// a space between date and time.
fn parse_time(raw: &str) -> Result<SystemTime, String> {
    if let Some(at) = crate::journal::parse_rfc3339(raw) {
        return Ok(at);
    }
    humantime::parse_rfc3339_weak(raw).map_err(|e| {
        format!("not an RFC 3339 time (2026-11-20T10:00:02Z, 2026-11-20T11:00:02+01:00): {e}")
    })
}

/// Runs one `log` subcommand.
pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let result = match args.command {
        LogCommand::Tenants(dir) => tenants(&dir.data_dir),
        LogCommand::Events(args) => events(&args),
        LogCommand::Replay(args) => replay_to(&args),
        LogCommand::Verify(args) => verify(&args),
        LogCommand::Export(args) => export(&args),
        LogCommand::Import(args) => import(&args),
    };
    // `log events | head` closes the pipe early: that is not a failure.
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Opens an existing data directory, refusing a missing one rather than creating it.
fn open_existing(dir: &Path) -> anyhow::Result<SledEventLog> {
    if !dir.exists() {
        bail!("the data directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if !SledEventLog::exists_in(dir) {
        bail!(
            "{} holds no event log (it is not a data directory the emulator wrote)",
            dir.display()
        );
    }
    // No group-commit thread: these commands flush once, themselves.
    Ok(SledEventLog::open(dir, false)?)
}

/// A `--tenant` as the log files it: a GUID lower-cased, any other id as given; refused when it
/// is no tenant id, since no log holds one.
fn tenant_arg(raw: &str) -> Result<String, String> {
    TenantId::parse(raw)
        .map(|t| t.as_str().to_owned())
        .ok_or_else(|| format!("'{raw}' is not a tenant id (1-128 of A-Z a-z 0-9 . _ -)"))
}

/// Every tenant, sorted.
fn sorted_tenants(log: &dyn EventLog) -> Result<Vec<String>, StoreError> {
    let mut tenants = log.tenants()?;
    tenants.sort();
    Ok(tenants)
}

/// One tenant's stream, refusing a tenant that has none (without creating one).
fn open_tenant(
    log: &dyn EventLog,
    dir: &Path,
    tenant: &str,
) -> anyhow::Result<Box<dyn EventStream>> {
    if !log.has_tenant(tenant)? {
        bail!(
            "unknown tenant {tenant}: the data directory {} has no events of it",
            dir.display()
        );
    }
    Ok(log.open(tenant)?)
}

/// `--tenant T` or every tenant, each with its stream.
fn selected_streams(
    log: &dyn EventLog,
    dir: &Path,
    tenant: Option<&str>,
) -> anyhow::Result<Vec<(String, Box<dyn EventStream>)>> {
    let tenants = match tenant {
        Some(t) => vec![t.to_owned()],
        None => sorted_tenants(log)?,
    };
    tenants
        .into_iter()
        .map(|t| {
            let stream = open_tenant(log, dir, &t)?;
            Ok((t, stream))
        })
        .collect()
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress(len: u64, what: &'static str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{wide_bar}] {pos}/{len} events, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what);
    bar
}

/// Writes rows as aligned columns (two spaces apart; the last column is not padded).
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

// ---- tenants ----------------------------------------------------------------------------

fn tenants(dir: &Path) -> anyhow::Result<()> {
    let log = open_existing(dir)?;
    let streams = selected_streams(&log, dir, None)?;
    let bar = progress(streams.iter().map(|(_, s)| s.last_seq()).sum(), "replaying");
    let mut rows = Vec::new();
    for (tenant, stream) in &streams {
        let mut first: Option<String> = None;
        let mut last: Option<String> = None;
        let mut events = 0_u64;
        let replayed = replay(stream.as_ref(), tenant, None, |stored| {
            events += 1;
            bar.inc(1);
            if first.is_none() {
                first = Some(stored.envelope.recorded_at.clone());
            }
            last = Some(stored.envelope.recorded_at.clone());
        });
        rows.push(match replayed {
            Ok(recovered) => vec![
                tenant.clone(),
                events.to_string(),
                recovered.last_seq.to_string(),
                recovered.flows.len().to_string(),
                first.unwrap_or_else(|| "-".to_owned()),
                last.unwrap_or_else(|| "-".to_owned()),
            ],
            Err(e) => vec![tenant.clone(), format!("ERROR: {e}")],
        });
    }
    bar.finish_and_clear();
    let mut out = io::stdout().lock();
    write_table(
        &mut out,
        &[
            "TENANT",
            "EVENTS",
            "LAST_SEQ",
            "FLOWS",
            "FIRST_RECORDED_AT",
            "LAST_RECORDED_AT",
        ],
        &rows,
    )?;
    out.flush()?;
    Ok(())
}

// ---- events -----------------------------------------------------------------------------

/// The envelope fields a table row shows, read even when the record as a whole cannot be
/// decoded (so damage can be looked at).
#[derive(Deserialize)]
struct RowFields {
    #[serde(default)]
    recorded_at: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

fn events(args: &EventsArgs) -> anyhow::Result<()> {
    let dir = &args.dir.data_dir;
    let log = open_existing(dir)?;
    let stream = open_tenant(&log, dir, &args.tenant)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    let wanted = args.event_type.map(EventType::stored_name);
    let seq_width = stream.last_seq().max(1).to_string().len().max(3);

    let mut out = BufWriter::new(io::stdout().lock());
    if args.format == Format::Table {
        writeln!(
            out,
            "{:>seq_width$}  {:<24}  {:<15}  {:<30}  REQUEST_ID",
            "SEQ", "RECORDED_AT", "EVENT_TYPE", "ID"
        )?;
    }
    let mut shown = 0_usize;
    let mut failure: Option<io::Error> = None;
    let mut visit = |seq: u64, bytes: &[u8]| -> Result<bool, StoreError> {
        if shown >= limit {
            return Ok(false);
        }
        let json = to_json(&args.tenant, bytes);
        let fields: Option<RowFields> = json
            .as_deref()
            .ok()
            .and_then(|json| serde_json::from_slice(json).ok());
        let event_type = fields.as_ref().and_then(|f| f.event_type.as_deref());
        if wanted.is_some() && event_type != wanted {
            return Ok(true);
        }
        shown += 1;
        let written = match args.format {
            Format::Ndjson => match &json {
                Ok(json) => out.write_all(json).and_then(|()| out.write_all(b"\n")),
                Err(e) => writeln!(out, "<seq {seq} undecodable: {e}>"),
            },
            Format::Table => {
                // The record was rendered as JSON above; decode that, not the record again.
                let id = match json.as_deref().map(decode_json) {
                    Ok(Ok(stored)) => stored.event.flow_id().to_string(),
                    Ok(Err(e)) => format!("<undecodable: {e}>"),
                    Err(e) => format!("<undecodable: {e}>"),
                };
                let field = |f: Option<&str>| f.unwrap_or("-").to_owned();
                writeln!(
                    out,
                    "{seq:>seq_width$}  {:<24}  {:<15}  {id:<30}  {}",
                    field(fields.as_ref().and_then(|f| f.recorded_at.as_deref())),
                    field(event_type),
                    field(fields.as_ref().and_then(|f| f.request_id.as_deref())),
                )
            }
        };
        match written {
            Ok(()) => Ok(true),
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        }
    };
    if args.backwards {
        stream.scan_back(args.from.unwrap_or(u64::MAX), &mut visit)?;
    } else {
        stream.scan(args.from.unwrap_or(1), &mut visit)?;
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    out.flush()?;
    Ok(())
}

// ---- replay -----------------------------------------------------------------------------

/// The list route's collection shape without the OData annotations.
#[derive(Serialize)]
struct Collection<'a> {
    value: Vec<&'a UserFlow>,
}

#[derive(Deserialize)]
struct RecordedAt {
    recorded_at: String,
}

/// The last seq of the longest prefix of the log recorded at or before `time`. A record whose
/// time cannot be read ends the prefix *including* it, so the replay meets it and names it.
fn last_seq_at(
    stream: &dyn EventStream,
    tenant: &str,
    time: SystemTime,
) -> Result<u64, StoreError> {
    let mut until = 0;
    stream.scan(1, &mut |seq, bytes| {
        let at = to_json(tenant, bytes)
            .ok()
            .and_then(|json| serde_json::from_slice::<RecordedAt>(&json).ok())
            .and_then(|r| humantime::parse_rfc3339_weak(&r.recorded_at).ok());
        match at {
            Some(at) if at > time => Ok(false),
            Some(_) => {
                until = seq;
                Ok(true)
            }
            None => {
                until = seq;
                Ok(false)
            }
        }
    })?;
    Ok(until)
}

fn replay_to(args: &ReplayArgs) -> anyhow::Result<()> {
    let dir = &args.dir.data_dir;
    let log = open_existing(dir)?;
    let stream = open_tenant(&log, dir, &args.tenant)?;
    let until = match (args.until_seq, args.until_time) {
        (Some(seq), _) => Some(seq),
        (None, Some(time)) => Some(last_seq_at(stream.as_ref(), &args.tenant, time)?),
        (None, None) => None,
    };
    let last = stream.last_seq();
    if let Some(seq) = args.until_seq.filter(|s| *s > last) {
        eprintln!("note: --until-seq {seq} is past the log's last seq {last}");
    }
    let bar = progress(until.map_or(last, |u| u.min(last)), "replaying");
    let recovered = replay(stream.as_ref(), &args.tenant, until, |stored| {
        bar.inc(1);
        if args.verbose {
            let e = &stored.envelope;
            bar.suspend(|| {
                eprintln!("seq {} {} {}", e.seq, e.event_type, stored.event.flow_id());
            });
        }
    })?;
    bar.finish_and_clear();
    let collection = Collection {
        value: recovered.flows.iter().collect(),
    };
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &collection)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

// ---- verify -----------------------------------------------------------------------------

/// Adds one event to a tenant's digest: seq, event id, event type, schema version and the
/// payload's raw JSON, each followed by a separator.
fn digest_event(hasher: &mut Sha256, stored: &StoredEvent) {
    let e = &stored.envelope;
    for field in [
        e.seq.to_string().as_bytes(),
        e.event_id.as_bytes(),
        e.event_type.as_bytes(),
        e.schema_version.to_string().as_bytes(),
    ] {
        hasher.update(field);
        hasher.update([FIELD_SEPARATOR]);
    }
    hasher.update(e.payload.get().as_bytes());
    hasher.update([RECORD_SEPARATOR]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let dir = &args.dir.data_dir;
    let log = open_existing(dir)?;
    let streams = selected_streams(&log, dir, args.tenant.as_deref())?;
    let bar = progress(streams.iter().map(|(_, s)| s.last_seq()).sum(), "verifying");
    let mut rows = Vec::new();
    let mut faults = Vec::new();
    for (tenant, stream) in &streams {
        let mut hasher = Sha256::new();
        let mut events = 0_u64;
        let replayed = replay(stream.as_ref(), tenant, None, |stored| {
            bar.inc(1);
            events += 1;
            digest_event(&mut hasher, stored);
        });
        match replayed {
            Ok(recovered) => rows.push(vec![
                tenant.clone(),
                events.to_string(),
                recovered.flows.len().to_string(),
                hex(&hasher.finalize()),
            ]),
            Err(e) => {
                rows.push(vec![tenant.clone(), format!("FAULT: {e}")]);
                faults.push(e.to_string());
            }
        }
    }
    bar.finish_and_clear();
    let mut out = io::stdout().lock();
    write_table(&mut out, &["TENANT", "EVENTS", "FLOWS", "SHA256"], &rows)?;
    out.flush()?;
    if !faults.is_empty() {
        bail!(
            "{} of {} tenants failed verification:\n  {}",
            faults.len(),
            streams.len(),
            faults.join("\n  ")
        );
    }
    Ok(())
}

// ---- export -----------------------------------------------------------------------------

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let dir = &args.dir.data_dir;
    let log = open_existing(dir)?;
    let streams = selected_streams(&log, dir, args.tenant.as_deref())?;
    let partial = args.output.as_ref().map(|path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    });
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(match &partial {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    });
    let target = partial
        .as_ref()
        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    let bar = progress(streams.iter().map(|(_, s)| s.last_seq()).sum(), "exporting");
    let mut exported = 0_u64;
    let mut write_all = || -> anyhow::Result<()> {
        for (tenant, stream) in &streams {
            let mut failure: Option<anyhow::Error> = None;
            // From 0: every record stored, even one a replay would refuse.
            stream.scan(0, &mut |seq, bytes| {
                let json = match to_json(tenant, bytes) {
                    Ok(json) => json,
                    Err(e) => {
                        failure = Some(anyhow::anyhow!(
                        "tenant {tenant}: the record at seq {seq} cannot be read: {e} (the log \
                         is damaged; see `log verify`)"
                    ));
                        return Ok(false);
                    }
                };
                if json.contains(&b'\n') {
                    failure = Some(anyhow::anyhow!(
                    "tenant {tenant}: the record at seq {seq} holds a line break, so it cannot be \
                     one NDJSON line (the log is damaged; see `log verify`)"
                ));
                    return Ok(false);
                }
                match out.write_all(&json).and_then(|()| out.write_all(b"\n")) {
                    Ok(()) => {
                        exported += 1;
                        bar.inc(1);
                        Ok(true)
                    }
                    Err(e) => {
                        failure =
                            Some(anyhow::Error::new(e).context(format!("cannot write {target}")));
                        Ok(false)
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        out.flush()
            .with_context(|| format!("cannot write {target}"))
    };
    let written = write_all();
    drop(out);
    bar.finish_and_clear();
    if let Err(e) = written {
        // A half-written export is no export: nothing is left behind but the reason.
        if let Some(partial) = &partial {
            let _ = fs::remove_file(partial);
        }
        return Err(e);
    }
    if let (Some(partial), Some(output)) = (&partial, &args.output) {
        fs::rename(partial, output).with_context(|| {
            format!(
                "cannot rename {} to {}",
                partial.display(),
                output.display()
            )
        })?;
        eprintln!(
            "exported {exported} events of {} tenants to {}",
            streams.len(),
            output.display()
        );
    }
    Ok(())
}

// ---- import -----------------------------------------------------------------------------

/// The tenant and seq of a line, read even when the line is not a valid event, to name it.
#[derive(Deserialize)]
struct LineIds {
    tenant_id: String,
    seq: u64,
}

/// A checked import: each tenant's records in seq order (1, 2, 3 …).
/// Each line is kept in the form it is stored in ([`stored_form`]).
type Plan<'a> = BTreeMap<String, Vec<Cow<'a, [u8]>>>;

/// Checks every line of an NDJSON export; the plan, or every problem found (a tenant's
/// later lines are not checked after its first fault).
fn plan_import(text: &[u8]) -> Result<Plan<'_>, Vec<String>> {
    // A byte-order mark, as some Windows tools write, is no part of the first line.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut plan: Plan<'_> = BTreeMap::new();
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let mut problems = Vec::new();
    for (index, line) in text.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let stored = match decode_json(line) {
            Ok(stored) => stored,
            Err(e) => {
                match serde_json::from_slice::<LineIds>(line) {
                    Ok(ids) => {
                        problems.push(format!(
                            "line {number}: tenant {} seq {} cannot be decoded: {e}",
                            ids.tenant_id, ids.seq
                        ));
                        broken.insert(ids.tenant_id);
                    }
                    Err(_) => problems.push(format!("line {number} cannot be decoded: {e}")),
                }
                continue;
            }
        };
        let (tenant, seq) = (stored.envelope.tenant_id.clone(), stored.envelope.seq);
        if broken.contains(&tenant) {
            continue;
        }
        // A GUID names one tenant whatever its letter case: its lines go to one stream.
        let Some(parsed) = TenantId::parse(&tenant) else {
            problems.push(format!(
                "line {number}: '{tenant}' is not a tenant id (1-128 of A-Z a-z 0-9 . _ -)"
            ));
            broken.insert(tenant);
            continue;
        };
        let tenant = parsed.as_str().to_owned();
        if broken.contains(&tenant) {
            continue;
        }
        let records = plan.entry(tenant.clone()).or_default();
        let expected = records.len() as u64 + 1;
        if seq != expected {
            let what = if seq < expected {
                "a duplicate"
            } else {
                "a gap"
            };
            problems.push(format!(
                "line {number}: tenant {tenant} seq {seq}: expected seq {expected} ({what})"
            ));
            broken.insert(tenant);
            continue;
        }
        records.push(stored_form(line, &stored));
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// Whether a stream holds no record at all (a record under any key counts).
fn is_empty(stream: &dyn EventStream) -> Result<bool, StoreError> {
    if stream.last_seq() > 0 {
        return Ok(false);
    }
    let mut any = false;
    stream.scan_back(u64::MAX, &mut |_, _| {
        any = true;
        Ok(false)
    })?;
    Ok(!any)
}

fn refuse(file: &Path, problems: &[String]) -> anyhow::Error {
    let mut shown: Vec<&str> = problems
        .iter()
        .take(PROBLEMS_SHOWN)
        .map(String::as_str)
        .collect();
    let more = problems.len().saturating_sub(PROBLEMS_SHOWN);
    let more_line = format!("… and {more} more");
    if more > 0 {
        shown.push(&more_line);
    }
    anyhow::anyhow!(
        "refused to import {}; nothing was written:\n  {}",
        file.display(),
        shown.join("\n  ")
    )
}

/// (policy) Records per stored value on import: the most a tenant's actor writes at once, so
/// an imported log takes the disk, and replays at the speed, of one written live under load.
const IMPORT_BATCH: usize = 128;

fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    let text =
        fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let plan = plan_import(&text).map_err(|problems| refuse(&args.file, &problems))?;
    let events: u64 = plan.values().map(|r| r.len() as u64).sum();

    if !dir.exists() {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let log = SledEventLog::open(dir, false)?;
    let mut problems = Vec::new();
    for tenant in plan.keys() {
        if log.has_tenant(tenant)? && !is_empty(log.open(tenant)?.as_ref())? {
            problems.push(format!(
                "tenant {tenant} already has events in {}: import only adds tenants that have none",
                dir.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(refuse(&args.file, &problems));
    }

    let bar = progress(events, "importing");
    for (tenant, records) in &plan {
        let mut stream = log.open(tenant)?;
        let mut batch = RecordBatch::starting_at(1);
        for chunk in records.chunks(IMPORT_BATCH) {
            for record in chunk {
                batch.push(record);
            }
            stream.append(&batch)?;
            bar.inc(batch.len());
            batch.restart();
        }
    }
    log.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "imported {events} events of {} tenants into {}",
        plan.len(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tenant: &str, seq: u64) -> String {
        format!(
            r#"{{"tenant_id":"{tenant}","seq":{seq},"event_id":"e","event_type":"UserFlowDeleted","schema_version":1,"recorded_at":"2026-11-20T10:00:00.000Z","request_id":"r","client_request_id":"c","payload":{{"id":"B2C_1_a"}}}}"#
        )
    }

    #[test]
    fn a_plan_keeps_each_tenants_lines_in_order_across_interleaving() {
        let text = [line("a", 1), line("b", 1), line("a", 2), String::new()].join("\n");
        let plan = plan_import(text.as_bytes()).unwrap();
        assert_eq!(plan["a"].len(), 2);
        assert_eq!(plan["b"].len(), 1);
    }

    #[test]
    fn times_take_any_offset_and_a_missing_one_is_utc() {
        let utc = parse_time("2026-11-20T10:00:02Z").unwrap();
        assert_eq!(parse_time("2026-11-20T11:00:02+01:00"), Ok(utc));
        assert_eq!(parse_time("2026-11-20T05:30:02-04:30"), Ok(utc));
        assert_eq!(parse_time("2026-11-20 10:00:02"), Ok(utc));
        assert_eq!(
            parse_time("2026-11-20 10:00:02.500"),
            Ok(utc + std::time::Duration::from_millis(500))
        );
        assert!(parse_time("yesterday")
            .unwrap_err()
            .contains("not an RFC 3339 time"));
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_skipped() {
        let text = format!("\u{feff}{}\r\n{}\r\n", line("a", 1), line("a", 2));
        assert_eq!(plan_import(text.as_bytes()).unwrap()["a"].len(), 2);
        // Anywhere else it is a byte of a line, which is then no JSON.
        let text = format!("{}\n\u{feff}{}\n", line("a", 1), line("a", 2));
        let problems = plan_import(text.as_bytes()).unwrap_err();
        assert!(
            problems[0].starts_with("line 2 cannot be decoded"),
            "{problems:?}"
        );
    }

    #[test]
    fn gaps_duplicates_and_garbage_are_named_by_line_tenant_and_seq() {
        let text = [line("a", 1), line("a", 1), line("b", 2), "{\"ten".into()].join("\n");
        let problems = plan_import(text.as_bytes()).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("line 2: tenant a seq 1") && problems[0].contains("duplicate")
        );
        assert!(problems[1].contains("line 3: tenant b seq 2") && problems[1].contains("gap"));
        assert!(problems[2].starts_with("line 4 cannot be decoded"));
    }

    #[test]
    fn the_digest_covers_the_payload_and_the_ids() {
        let digest = |text: &str| {
            let mut hasher = Sha256::new();
            digest_event(&mut hasher, &decode_json(text.as_bytes()).unwrap());
            hex(&hasher.finalize())
        };
        let base = line("t", 1);
        assert_eq!(digest(&base), digest(&base));
        assert_eq!(digest(&base).len(), 64);
        for changed in [
            base.replace("B2C_1_a", "B2C_1_b"),
            base.replace("\"event_id\":\"e\"", "\"event_id\":\"f\""),
            line("t", 2),
        ] {
            assert_ne!(digest(&base), digest(&changed), "{changed}");
        }
        // Fields outside the digest (time, request ids) do not change it.
        assert_eq!(digest(&base), digest(&base.replace("\"r\"", "\"other\"")));
    }
}
