//! The meaning of stored bytes: the event envelope and its two forms (the compact record the
//! logs keep, the JSON envelope that exports, the admin events route and the log tools show),
//! the upcaster chain for older schema versions, and the snapshot format. It turns domain
//! events into bytes and back; it knows nothing of where the bytes live (that is
//! [`crate::store`]), of actors or of HTTP.

mod compact;
mod envelope;
mod snapshot;

pub use envelope::{
    decode, decode_event, decode_json, encode, encode_into, stored_form, to_json, CodecError,
    Envelope, EventMeta, EventRecord, RequestId, StoredEvent, SCHEMA_VERSION,
};
pub use snapshot::{decode_snapshot, encode_snapshot, SNAPSHOT_SCHEMA_VERSION};
