//! Tenants: one actix actor per tenant, the only writer of that tenant's log; the registry that
//! hands out exactly one actor per tenant; recovery of every tenant from its log at start.
//! Knows nothing of HTTP; reads stored bytes through [`crate::codec`].

mod actor;
mod handle;
mod pending;
mod pool;
mod recovery;
mod registry;
mod startup;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use crate::domain::{
    Cursor, DomainError, Filter, FlowKey, ListRequest, OrderKey, UserFlow, UserFlowId, UserFlows,
};
use crate::store::StoreError;

pub use handle::TenantHandle;
pub use pool::Placement;
pub use recovery::{recover, replay, Recovered, Recovery, RecoveryError};
pub use registry::{RegistryOptions, TenantRegistry, TenantView};
pub use startup::{canonical_stream_names, RecoverySummary, StreamNameError};

/// (policy) Longest tenant id accepted from a token.
const MAX_TENANT_LEN: usize = 128;

/// A tenant id (a token's `tid`), the partition key of everything. Shared, so that a clone per
/// request costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// (policy) 1 to 128 characters of `A-Z a-z 0-9 . _ -`: every real `tid` (a GUID) fits, and
    /// the id can name a storage key and a file safely. A GUID is lower-cased, so it names one
    /// tenant whatever its letter case; any other id is kept exactly.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_TENANT_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return None;
        }
        // Entra tenant ids are GUIDs, and one GUID names one tenant whatever its letter case.
        if is_guid(raw) && raw.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(Self(Arc::from(raw.to_ascii_lowercase())));
        }
        Some(Self(Arc::from(raw)))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `raw` is a GUID in its 8-4-4-4-12 hex form.
#[must_use]
pub fn is_guid(raw: &str) -> bool {
    raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who asked for a change: copied into the event's envelope.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The server's id of the request.
    pub request_id: uuid::Uuid,
    /// As the client sent it; `None` when it sent none.
    pub client_request_id: Option<String>,
    /// More writes of the same caller follow at once (a `$batch`): the tenant holds this
    /// write's event until [`TenantRegistry::release`] or a write that is not held, so that
    /// they all share one append and one flush.
    pub hold: bool,
}

/// What a write did, and the position of the event it appended in its tenant's log.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Created(UserFlow, u64),
    Deleted(UserFlowId, u64),
}

/// A page of a listing, as the HTTP layer parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// Empty: creation order.
    pub order: Vec<OrderKey>,
    /// The horizon and cursor of a later page; `None` on the first.
    pub resume: Option<(u64, Cursor)>,
    /// Matches passed over on the first page.
    pub skip: usize,
    pub size: usize,
    /// Whether the first page counts the matches.
    pub count: bool,
}

/// A question about a tenant's flows.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Get(FlowKey),
    List(ListQuery),
    /// How many flows match.
    Count(Option<Filter>),
    /// The tenant's position and health, for the admin routes.
    Summary,
}

/// Where a tenant stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    /// The seq of the last durable event applied (what reads see).
    pub applied_seq: u64,
    pub flows: usize,
    /// Why the tenant answers 503, when it does.
    pub broken: Option<String>,
}

/// The answer to a [`Read`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    Flow(Option<UserFlow>),
    Page {
        flows: Vec<UserFlow>,
        /// Where the next page starts, when another match follows.
        next: Option<Cursor>,
        /// The walk's horizon: the next page lists only flows created before it.
        horizon: u64,
        /// How many flows match, when the first page asked.
        count: Option<usize>,
    },
    Count(usize),
    Summary(TenantSummary),
}

/// Answers a read from a state: the one place reads are computed.
#[must_use]
pub fn answer(flows: &UserFlows, read: &Read) -> ReadOutcome {
    match read {
        Read::Get(key) => {
            ReadOutcome::Flow(crate::domain::FlowLookup::find(flows, key.as_str()).cloned())
        }
        Read::List(query) => {
            let (horizon, after) = match &query.resume {
                Some((horizon, cursor)) => (*horizon, Some(cursor)),
                None => (flows.next_position(), None),
            };
            let listing = flows.list(&ListRequest {
                filter: query.filter.as_ref(),
                order: &query.order,
                horizon,
                after,
                skip: if after.is_some() { 0 } else { query.skip },
                size: query.size,
            });
            let first = query.resume.is_none();
            ReadOutcome::Page {
                flows: listing.flows.into_iter().cloned().collect(),
                next: listing.next,
                horizon,
                count: (first && query.count).then(|| flows.count(query.filter.as_ref())),
            }
        }
        Read::Count(filter) => ReadOutcome::Count(flows.count(filter.as_ref())),
        Read::Summary => ReadOutcome::Summary(TenantSummary {
            applied_seq: 0,
            flows: flows.len(),
            broken: None,
        }),
    }
}

/// Why a tenant could not answer. HTTP maps `Domain` by its variant, `Busy`, `Unavailable`,
/// `ShuttingDown`, `Recovering` and `Storage` to 503 `serviceNotAvailable` with `Retry-After`,
/// `CannotWrite` to 507 `insufficientStorage` with `Retry-After`, and `Internal` to 500.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("tenant {tenant} has too many requests waiting; retry shortly")]
    Busy { tenant: TenantId },
    #[error("tenant {tenant} is unavailable: {reason}")]
    Unavailable { tenant: TenantId, reason: String },
    #[error("the emulator is shutting down")]
    ShuttingDown,
    #[error("the emulator is still recovering tenants from the event log; retry shortly")]
    Recovering,
    #[error("storage failure: {0}")]
    Storage(String),
    /// The write cannot be stored now (a full disk, a failed flush); nothing was stored.
    #[error("{0}")]
    CannotWrite(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for TenantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StorageFull { .. } => Self::CannotWrite(e.to_string()),
            e => Self::Storage(e.to_string()),
        }
    }
}
