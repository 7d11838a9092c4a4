//! The stored envelope and its JSON codec. The on-disk format: one JSON object per event with
//! the fields of [`Envelope`], `event_type` one of the domain's fixed names, `payload` the
//! event's data. Reading goes through the upcaster chain, keyed by (event type, version).

use std::borrow::Cow;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::{UserFlow, UserFlowEvent, UserFlowId, USER_FLOW_CREATED, USER_FLOW_DELETED};

/// The schema version written with every new event.
pub const SCHEMA_VERSION: u32 = 1;

/// One stored event, exactly as it is on disk and in an NDJSON export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub tenant_id: String,
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    /// RFC 3339 UTC with milliseconds.
    pub recorded_at: String,
    pub request_id: String,
    pub client_request_id: String,
    pub payload: Box<RawValue>,
}

/// An envelope read in place: every field checked for presence and type, strings borrowed from
/// the record (unless they hold escapes), so reading one allocates nothing. [`decode`] and
/// [`decode_event`] both start here: one parser for tools and recovery.
#[derive(Deserialize)]
struct EnvelopeView<'a> {
    #[serde(borrow)]
    tenant_id: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    schema_version: u32,
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    #[serde(borrow)]
    client_request_id: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// What recovery needs of a record: where it claims to be, and its event.
#[derive(Debug, PartialEq)]
pub struct EventRecord<'a> {
    pub tenant_id: Cow<'a, str>,
    pub seq: u64,
    pub event: UserFlowEvent,
}

/// Who caused an event and when; the store adds the event id.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub recorded_at: SystemTime,
    pub request_id: String,
    pub client_request_id: String,
}

/// A decoded record: the envelope and the domain event it carries.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub envelope: Envelope,
    pub event: UserFlowEvent,
}

/// Why a record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a valid envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type '{0}'")]
    UnknownEventType(String),
    #[error("no upcaster for {event_type} schema version {version} (this build writes {SCHEMA_VERSION})")]
    UnsupportedVersion { event_type: String, version: u32 },
}

/// The payload of a `UserFlowDeleted`: read as owned, written from a borrowed id.
#[derive(Serialize, Deserialize)]
struct DeletedPayload<I> {
    id: I,
}

/// Encodes one event of `tenant` at `seq`: the bytes `serde_json` writes for an [`Envelope`],
/// written straight into one buffer (no intermediate strings for the ids, the time or the
/// payload), as this runs once per write.
pub fn encode(
    tenant: &str,
    seq: u64,
    meta: &EventMeta,
    event: &UserFlowEvent,
) -> Result<Vec<u8>, CodecError> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(
        320 + tenant.len() + meta.request_id.len() + meta.client_request_id.len(),
    );
    let mut event_id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let event_id = uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut event_id);
    out.extend_from_slice(br#"{"tenant_id":"#);
    serde_json::to_writer(&mut out, tenant)?;
    write!(out, r#","seq":{seq},"event_id":""#).map_err(serde_json::Error::io)?;
    out.extend_from_slice(event_id.as_bytes());
    out.extend_from_slice(br#"","event_type":""#);
    out.extend_from_slice(event.event_type().as_bytes());
    write!(
        out,
        r#"","schema_version":{SCHEMA_VERSION},"recorded_at":"{}","request_id":"#,
        humantime::format_rfc3339_millis(meta.recorded_at)
    )
    .map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut out, &meta.request_id)?;
    out.extend_from_slice(br#","client_request_id":"#);
    serde_json::to_writer(&mut out, &meta.client_request_id)?;
    out.extend_from_slice(br#","payload":"#);
    match event {
        UserFlowEvent::Created(flow) => serde_json::to_writer(&mut out, flow)?,
        UserFlowEvent::Deleted { id } => {
            serde_json::to_writer(&mut out, &DeletedPayload { id })?;
        }
    }
    out.push(b'}');
    Ok(out)
}

/// Decodes one record, upcasting older schema versions.
pub fn decode(bytes: &[u8]) -> Result<StoredEvent, CodecError> {
    let view: EnvelopeView<'_> = serde_json::from_slice(bytes)?;
    let event = event_of(&view)?;
    let envelope = Envelope {
        tenant_id: view.tenant_id.into_owned(),
        seq: view.seq,
        event_id: view.event_id.into_owned(),
        event_type: view.event_type.into_owned(),
        schema_version: view.schema_version,
        recorded_at: view.recorded_at.into_owned(),
        request_id: view.request_id.into_owned(),
        client_request_id: view.client_request_id.into_owned(),
        payload: view.payload.to_owned(),
    };
    Ok(StoredEvent { envelope, event })
}

/// Decodes one record for recovery: the same checks as [`decode`], without copying the
/// envelope's metadata.
/// Records in the layout [`encode`] writes take a fast path that gives the same result.
pub fn decode_event(bytes: &[u8]) -> Result<EventRecord<'_>, CodecError> {
    super::canonical::read(bytes).map_or_else(|| decode_event_general(bytes), Ok)
}

/// [`decode_event`] for any record `serde_json` accepts as an envelope.
pub(super) fn decode_event_general(bytes: &[u8]) -> Result<EventRecord<'_>, CodecError> {
    let view: EnvelopeView<'_> = serde_json::from_slice(bytes)?;
    let event = event_of(&view)?;
    Ok(EventRecord {
        tenant_id: view.tenant_id,
        seq: view.seq,
        event,
    })
}

fn event_of(view: &EnvelopeView<'_>) -> Result<UserFlowEvent, CodecError> {
    let payload = upcast(&view.event_type, view.schema_version, view.payload)?;
    Ok(match view.event_type.as_ref() {
        USER_FLOW_CREATED => {
            UserFlowEvent::Created(serde_json::from_str::<UserFlow>(payload.get())?)
        }
        USER_FLOW_DELETED => {
            let deleted: DeletedPayload<UserFlowId> = serde_json::from_str(payload.get())?;
            UserFlowEvent::Deleted { id: deleted.id }
        }
        other => return Err(CodecError::UnknownEventType(other.to_owned())),
    })
}

/// The upcaster chain: brings a payload of (event type, version) to [`SCHEMA_VERSION`]. Empty
/// until the format first changes; a new version adds one step here and a frozen fixture of
/// the old format to the tests.
fn upcast<'a>(
    event_type: &str,
    version: u32,
    payload: &'a RawValue,
) -> Result<&'a RawValue, CodecError> {
    if version == SCHEMA_VERSION {
        Ok(payload)
    } else {
        Err(CodecError::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{UserFlowType, UserFlowTypeVersion};

    fn meta() -> EventMeta {
        EventMeta {
            recorded_at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_234),
            request_id: "req".into(),
            client_request_id: "client".into(),
        }
    }

    fn round_trip(event: &UserFlowEvent) -> StoredEvent {
        let bytes = encode("t1", 7, &meta(), event).unwrap();
        decode(&bytes).unwrap()
    }

    #[test]
    fn every_event_round_trips() {
        let created = UserFlowEvent::Created(UserFlow {
            id: UserFlowId::parse("Pol1").unwrap(),
            user_flow_type: UserFlowType::PasswordReset,
            user_flow_type_version: UserFlowTypeVersion::parse(1.1).unwrap(),
        });
        let deleted = UserFlowEvent::Deleted {
            id: UserFlowId::parse("B2C_1_Pol1").unwrap(),
        };
        for event in [created, deleted] {
            let bytes = encode("t1", 7, &meta(), &event).unwrap();
            let record = decode_event(&bytes).unwrap();
            assert_eq!((record.tenant_id.as_ref(), record.seq), ("t1", 7));
            assert_eq!(record.event, event);
            let stored = round_trip(&event);
            assert_eq!(stored.event, event);
            let e = &stored.envelope;
            assert_eq!((e.tenant_id.as_str(), e.seq), ("t1", 7));
            assert_eq!(e.event_type, event.event_type());
            assert_eq!(e.schema_version, SCHEMA_VERSION);
            assert_eq!(e.recorded_at, "1970-01-01T00:00:01.234Z");
            assert_eq!(
                (e.request_id.as_str(), e.client_request_id.as_str()),
                ("req", "client")
            );
            assert!(uuid::Uuid::parse_str(&e.event_id).is_ok());
        }
    }

    #[test]
    fn encode_writes_exactly_what_serde_writes_for_the_envelope() {
        let flow = UserFlowEvent::Created(UserFlow::sample("Pol_1-x"));
        let gone = UserFlowEvent::Deleted {
            id: UserFlowId::parse("B2C_1_x").unwrap(),
        };
        for (request_id, client_request_id) in [
            ("req", "client"),
            ("quote\"back\\slash", "tab\tnew\nline\u{1}ctl"),
            ("", "\u{e9}t\u{e9} \u{1f600}"),
        ] {
            let meta = EventMeta {
                recorded_at: SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_millis(1_700_000_000_123),
                request_id: request_id.into(),
                client_request_id: client_request_id.into(),
            };
            for (tenant, seq, event) in [("t1", 1, &flow), ("a-b.c_d", u64::MAX, &gone)] {
                let bytes = encode(tenant, seq, &meta, event).unwrap();
                let stored = decode(&bytes).unwrap();
                assert_eq!(serde_json::to_vec(&stored.envelope).unwrap(), bytes);
                assert_eq!(
                    (
                        stored.envelope.request_id.as_str(),
                        stored.envelope.client_request_id.as_str()
                    ),
                    (request_id, client_request_id)
                );
                assert_eq!(&stored.event, event);
            }
        }
    }

    #[test]
    fn the_payload_is_the_flow_as_answered() {
        let created = UserFlowEvent::Created(UserFlow {
            id: UserFlowId::parse("Pol1").unwrap(),
            user_flow_type: UserFlowType::SignUp,
            user_flow_type_version: UserFlowTypeVersion::parse(1.0).unwrap(),
        });
        let stored = round_trip(&created);
        assert_eq!(
            stored.envelope.payload.get(),
            r#"{"id":"B2C_1_Pol1","userFlowType":"signUp","userFlowTypeVersion":1}"#
        );
    }

    #[test]
    fn unknown_types_versions_and_garbage_are_named() {
        let bytes = encode(
            "t",
            1,
            &meta(),
            &UserFlowEvent::Deleted {
                id: UserFlowId::parse("a").unwrap(),
            },
        )
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let unknown = text.replace("UserFlowDeleted", "UserFlowRenamed");
        assert!(matches!(
            decode(unknown.as_bytes()),
            Err(CodecError::UnknownEventType(t)) if t == "UserFlowRenamed"
        ));
        let future = text.replace("\"schema_version\":1", "\"schema_version\":99");
        assert!(matches!(
            decode(future.as_bytes()),
            Err(CodecError::UnsupportedVersion { version: 99, .. })
        ));
        assert!(matches!(
            decode(&text.as_bytes()[..20]),
            Err(CodecError::Json(_))
        ));
    }
}
