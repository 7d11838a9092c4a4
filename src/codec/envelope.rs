//! The envelope and its codec. What a client of the log sees (an export line, the event route,
//! `log events`) is one JSON object per event with the fields of [`Envelope`], `event_type` one
//! of the domain's fixed names, `payload` the event's data. The logs keep the same fields in
//! compact form (docs/adr/0005); records stored as JSON (before that, or imported lines that
//! do not render back exactly) are read as well. Reading goes through the upcaster chain, keyed
//! by (event type, version).

use std::borrow::Cow;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::compact::{self, Header, Text, Time};
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
    pub request_id: RequestId,
    /// As the client sent it; `None` when it sent none (the request id stands for it).
    pub client_request_id: Option<String>,
}

/// A request's id: the server's own UUID, kept as one (so the record takes its 16 bytes without
/// parsing text back), or any text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    Uuid(uuid::Uuid),
    Text(String),
}

impl RequestId {
    fn text(&self) -> Text<'_> {
        match self {
            Self::Uuid(id) => Text::Uuid(*id),
            Self::Text(text) => Text::of(text),
        }
    }
}

impl From<&str> for RequestId {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
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
    #[error("not a valid compact record: {0}")]
    Compact(&'static str),
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

/// Encodes one event at `seq` in the form the logs keep: the compact record (docs/adr/0005).
/// [`to_json`] renders it as the JSON envelope.
pub fn encode(seq: u64, meta: &EventMeta, event: &UserFlowEvent) -> Result<Vec<u8>, CodecError> {
    let request_id = match &meta.request_id {
        RequestId::Uuid(_) => uuid::fmt::Hyphenated::LENGTH,
        RequestId::Text(text) => text.len(),
    };
    let mut out = Vec::with_capacity(
        96 + request_id
            + meta.client_request_id.as_ref().map_or(0, String::len)
            + event.flow_id().as_str().len(),
    );
    encode_into(&mut out, seq, meta, event)?;
    Ok(out)
}

/// [`encode`], appending the record to `out` (a buffer reused from one event to the next).
pub fn encode_into(
    out: &mut Vec<u8>,
    seq: u64,
    meta: &EventMeta,
    event: &UserFlowEvent,
) -> Result<(), CodecError> {
    let header = Header {
        seq,
        schema_version: SCHEMA_VERSION,
        event_id: Text::Uuid(uuid::Uuid::new_v4()),
        recorded_at: Time::of(meta.recorded_at)
            .ok_or(CodecError::Compact("a time RFC 3339 cannot write"))?,
        request_id: meta.request_id.text(),
        client_request_id: meta.client_request_id.as_deref().map(Text::of),
    };
    compact::write(out, &header, event);
    Ok(())
}

/// A stored record of `tenant` as its JSON envelope, the line an NDJSON export holds: a
/// compact record rendered, a record kept as JSON as it is.
pub fn to_json<'a>(tenant: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, CodecError> {
    if bytes.first() != Some(&compact::MARKER) {
        return Ok(Cow::Borrowed(bytes));
    }
    let (header, event) = compact::read(bytes).map_err(CodecError::Compact)?;
    Ok(Cow::Owned(render(tenant, &header, &event)?))
}

/// The bytes `serde_json` writes for the [`Envelope`] of a compact record.
fn render(tenant: &str, header: &Header<'_>, event: &UserFlowEvent) -> Result<Vec<u8>, CodecError> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(400);
    let mut buffer = [0u8; 36];
    out.extend_from_slice(br#"{"tenant_id":"#);
    serde_json::to_writer(&mut out, tenant)?;
    write!(out, r#","seq":{},"event_id":"#, header.seq).map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut out, header.event_id.as_str(&mut buffer))?;
    out.extend_from_slice(br#","event_type":""#);
    out.extend_from_slice(event.event_type().as_bytes());
    write!(
        out,
        r#"","schema_version":{},"recorded_at":"#,
        header.schema_version
    )
    .map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut out, &header.recorded_at.to_rfc3339())?;
    out.extend_from_slice(br#","request_id":"#);
    serde_json::to_writer(&mut out, header.request_id.as_str(&mut buffer))?;
    out.extend_from_slice(br#","client_request_id":"#);
    let client = header.client_request_id.unwrap_or(header.request_id);
    serde_json::to_writer(&mut out, client.as_str(&mut buffer))?;
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

/// The form in which to store an imported line: its compact record when that renders back to
/// exactly the line, else the line itself (so an export gives back every line unchanged).
#[must_use]
pub fn stored_form<'a>(line: &'a [u8], stored: &StoredEvent) -> Cow<'a, [u8]> {
    let e = &stored.envelope;
    let recorded_at = humantime::parse_rfc3339(&e.recorded_at)
        .ok()
        .and_then(Time::of)
        .unwrap_or(Time::Str(&e.recorded_at));
    let header = Header {
        seq: e.seq,
        schema_version: e.schema_version,
        event_id: Text::of(&e.event_id),
        recorded_at,
        request_id: Text::of(&e.request_id),
        client_request_id: (e.client_request_id != e.request_id)
            .then(|| Text::of(&e.client_request_id)),
    };
    match render(&e.tenant_id, &header, &stored.event) {
        Ok(json) if json == line => {
            let mut out = Vec::with_capacity(line.len() / 2);
            compact::write(&mut out, &header, &stored.event);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(line),
    }
}

/// Decodes one stored record of `tenant` whole, upcasting older schema versions.
pub fn decode(tenant: &str, bytes: &[u8]) -> Result<StoredEvent, CodecError> {
    decode_json(&to_json(tenant, bytes)?)
}

/// Decodes one JSON envelope (a stored JSON record, or an NDJSON export line).
pub fn decode_json(bytes: &[u8]) -> Result<StoredEvent, CodecError> {
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

/// Decodes one stored record of `tenant` for recovery: the same checks as [`decode`], without
/// building the envelope's metadata. A compact record is read in place, a JSON record by
/// `serde_json`.
pub fn decode_event<'a>(tenant: &'a str, bytes: &'a [u8]) -> Result<EventRecord<'a>, CodecError> {
    if bytes.first() == Some(&compact::MARKER) {
        let (header, event) = compact::read(bytes).map_err(CodecError::Compact)?;
        if header.schema_version != SCHEMA_VERSION {
            return Err(CodecError::UnsupportedVersion {
                event_type: event.event_type().to_owned(),
                version: header.schema_version,
            });
        }
        return Ok(EventRecord {
            tenant_id: Cow::Borrowed(tenant),
            seq: header.seq,
            event,
        });
    }
    decode_event_general(bytes)
}

/// The JSON envelope of a new event: what [`encode`] stores, rendered as [`to_json`] shows it.
#[cfg(test)]
fn encode_json(tenant: &str, seq: u64, meta: &EventMeta, event: &UserFlowEvent) -> Vec<u8> {
    let record = encode(seq, meta, event).unwrap();
    to_json(tenant, &record).unwrap().into_owned()
}

/// [`decode_event`] for a record kept as JSON.
fn decode_event_general(bytes: &[u8]) -> Result<EventRecord<'_>, CodecError> {
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
            client_request_id: Some("client".into()),
        }
    }

    fn created(id: &str, kind: UserFlowType, version: f64) -> UserFlowEvent {
        UserFlowEvent::Created(UserFlow {
            id: UserFlowId::parse(id).unwrap(),
            user_flow_type: kind,
            user_flow_type_version: UserFlowTypeVersion::parse(version).unwrap(),
        })
    }

    fn deleted(id: &str) -> UserFlowEvent {
        UserFlowEvent::Deleted {
            id: UserFlowId::parse(id).unwrap(),
        }
    }

    fn events() -> Vec<UserFlowEvent> {
        let mut events = vec![deleted("B2C_1_Pol1"), deleted("b2c_1_lower")];
        for (i, kind) in UserFlowType::ALL.into_iter().enumerate() {
            events.push(created(&format!("Pol{i}"), kind, 1.0));
        }
        for version in [255.0, 256.0, 1.1, 3.75, 1e9, 1e-30] {
            events.push(created("b2c_1_Mixed-Case_9", UserFlowType::SignIn, version));
        }
        events
    }

    #[test]
    fn every_event_round_trips() {
        for event in events() {
            let bytes = encode(7, &meta(), &event).unwrap();
            let record = decode_event("t1", &bytes).unwrap();
            assert_eq!((record.tenant_id.as_ref(), record.seq), ("t1", 7));
            assert_eq!(record.event, event);
            let stored = decode("t1", &bytes).unwrap();
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
    fn the_json_form_is_exactly_what_serde_writes_for_the_envelope() {
        let flow = created("Pol_1-x", UserFlowType::SignIn, 1.0);
        let gone = deleted("B2C_1_x");
        for (request_id, client_request_id) in [
            ("req", "client"),
            ("quote\"back\\slash", "tab\tnew\nline\u{1}ctl"),
            ("", "\u{e9}t\u{e9} \u{1f600}"),
            (
                "9d1c4c2e-5b0a-4f0e-9a39-0c7f6c1e2d3a",
                "9d1c4c2e-5b0a-4f0e-9a39-0c7f6c1e2d3a",
            ),
            (
                "9D1C4C2E-5B0A-4F0E-9A39-0C7F6C1E2D3A",
                "{9d1c4c2e5b0a4f0e9a390c7f6c1e2d3a}",
            ),
        ] {
            let meta = EventMeta {
                recorded_at: SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_millis(1_700_000_000_123),
                request_id: request_id.into(),
                client_request_id: Some(client_request_id.into()),
            };
            for (tenant, seq, event) in [("t1", 1, &flow), ("a-b.c_d", u64::MAX, &gone)] {
                let bytes = encode(seq, &meta, event).unwrap();
                assert_eq!(bytes[0], compact::MARKER);
                let json = to_json(tenant, &bytes).unwrap();
                let stored = decode_json(&json).unwrap();
                assert_eq!(serde_json::to_vec(&stored.envelope).unwrap(), *json);
                assert_eq!(
                    (
                        stored.envelope.request_id.as_str(),
                        stored.envelope.client_request_id.as_str()
                    ),
                    (request_id, client_request_id)
                );
                assert_eq!(stored.envelope.recorded_at, "2023-11-14T22:13:20.123Z");
                assert_eq!(&stored.event, event);
            }
        }
    }

    /// What ADR 0005 is for: a create as a real request makes it (three UUIDs, an id of 27
    /// characters) is kept in a fifth of its JSON.
    #[test]
    fn a_real_create_is_kept_in_under_80_bytes() {
        let request_id = uuid::Uuid::new_v4();
        let meta = EventMeta {
            recorded_at: SystemTime::now(),
            request_id: RequestId::Uuid(request_id),
            client_request_id: None,
        };
        let event = created("b0123456789abt1n12345", UserFlowType::SignUpOrSignIn, 1.0);
        let bytes = encode(1_000_000, &meta, &event).unwrap();
        let json = to_json("bench-tenant", &bytes).unwrap();
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        assert!(json.len() > 350, "{} bytes of JSON", json.len());
        // Without a client request id, the request id stands for it.
        let envelope = decode_json(&json).unwrap().envelope;
        let ids = (envelope.request_id, envelope.client_request_id);
        assert_eq!(ids, (request_id.to_string(), request_id.to_string()));
    }

    /// The compact layout is a stored format: these bytes must read the same in every later
    /// version (a new layout gets a new marker or flag, and this test stays).
    #[test]
    fn a_frozen_compact_record_still_reads() {
        let frozen: &[u8] = &[
            // marker, flags (UUID event and request ids, no client request id, milliseconds,
            // `B2C_1_` prefix), seq 42, schema 1, `UserFlowCreated`
            0xFB, 0x37, 0x2A, 0x01, 0x01, // event id
            0x9D, 0x1C, 0x4C, 0x2E, 0x5B, 0x0A, 0x4F, 0x0E, 0x9A, 0x39, 0x0C, 0x7F, 0x6C, 0x1E,
            0x2D, 0x3A, // recorded at, in milliseconds
            0xFB, 0xDD, 0xB1, 0xEC, 0x9F, 0x34, // request id
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x47, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD,
            0xEE, 0xFF,
            // id without its prefix; signUpOrSignIn (2) with a one-byte version; version 1
            0x04, b'P', b'o', b'l', b'1', 0x82, 0x01,
        ];
        let json = to_json("t", frozen).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"tenant_id":"t","seq":42,"event_id":"9d1c4c2e-5b0a-4f0e-9a39-0c7f6c1e2d3a","event_type":"UserFlowCreated","schema_version":1,"recorded_at":"2026-11-21T10:00:01.531Z","request_id":"00112233-4455-6647-8899-aabbccddeeff","client_request_id":"00112233-4455-6647-8899-aabbccddeeff","payload":{"id":"B2C_1_Pol1","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}}"#
        );
        let stored = decode_json(&json).unwrap();
        assert_eq!(*stored_form(&json, &stored), *frozen);
    }

    #[test]
    fn imported_lines_are_compacted_only_when_they_render_back_exactly() {
        let line = encode_json("t", 3, &meta(), &created("Pol1", UserFlowType::SignIn, 1.0));
        let text = String::from_utf8(line.clone()).unwrap();
        let stored = decode_json(&line).unwrap();
        let kept = stored_form(&line, &stored);
        assert_eq!(kept[0], compact::MARKER);
        assert_eq!(*to_json("t", &kept).unwrap(), *line);
        for other in [
            text.replace(',', ", "),
            text.replace("\"event_type\":\"UserFlowCreated\",", "")
                .replace(
                    "\"seq\":3,",
                    "\"seq\":3,\"event_type\":\"UserFlowCreated\",",
                ),
            text.replace(".234Z", "Z"),
            text.replace("01.234Z", "01.234+00:00"),
            text.replace("\"userFlowTypeVersion\":1", "\"userFlowTypeVersion\":1.0"),
            text.replace("\"id\":\"B2C_1_Pol1\"", "\"id\":\"B2C_\\u0031_Pol1\""),
        ] {
            let stored = decode_json(other.as_bytes()).unwrap();
            let kept = stored_form(other.as_bytes(), &stored);
            assert_eq!(*kept, *other.as_bytes(), "{other}");
            assert_eq!(*to_json("t", &kept).unwrap(), *other.as_bytes());
        }
    }

    #[test]
    fn the_payload_is_the_flow_as_answered() {
        let created = created("Pol1", UserFlowType::SignUp, 1.0);
        let stored = decode("t", &encode(1, &meta(), &created).unwrap()).unwrap();
        assert_eq!(
            stored.envelope.payload.get(),
            r#"{"id":"B2C_1_Pol1","userFlowType":"signUp","userFlowTypeVersion":1}"#
        );
    }

    #[test]
    fn unknown_types_versions_and_garbage_are_named() {
        let text = String::from_utf8(encode_json("t", 1, &meta(), &deleted("a"))).unwrap();
        let unknown = text.replace("UserFlowDeleted", "UserFlowRenamed");
        assert!(matches!(
            decode_json(unknown.as_bytes()),
            Err(CodecError::UnknownEventType(t)) if t == "UserFlowRenamed"
        ));
        let future = text.replace("\"schema_version\":1", "\"schema_version\":99");
        assert!(matches!(
            decode_json(future.as_bytes()),
            Err(CodecError::UnsupportedVersion { version: 99, .. })
        ));
        assert!(matches!(
            decode_json(&text.as_bytes()[..20]),
            Err(CodecError::Json(_))
        ));
        let mut compact = encode(1, &meta(), &deleted("a")).unwrap();
        compact[3] = 99; // the schema version
        for result in [
            decode_event("t", &compact).map(|r| r.event),
            decode("t", &compact).map(|s| s.event),
        ] {
            assert!(matches!(
                result,
                Err(CodecError::UnsupportedVersion { version: 99, .. })
            ));
        }
        let cut = &compact[..compact.len() - 1];
        assert!(matches!(
            decode_event("t", cut),
            Err(CodecError::Compact(_))
        ));
        assert!(matches!(decode("t", cut), Err(CodecError::Compact(_))));
    }

    /// Every one-byte change and every truncation of compact records: recovery's reader and
    /// the tools' reader agree (both refuse, or both read the same event at the same seq), and
    /// neither panics.
    #[test]
    fn no_mutation_makes_the_readers_disagree() {
        let client = EventMeta {
            request_id: RequestId::Uuid(uuid::Uuid::new_v4()),
            client_request_id: Some("c-1".into()),
            ..meta()
        };
        let records: Vec<Vec<u8>> = [
            (&meta(), created("Pol1", UserFlowType::SignIn, 1.0)),
            (
                &client,
                created("b2c_1_x", UserFlowType::ResourceOwner, 2.5),
            ),
            (&client, deleted("Pol1")),
        ]
        .iter()
        .map(|(meta, event)| encode(9, meta, event).unwrap())
        .collect();
        let agree = |bytes: &[u8]| {
            let fast = decode_event("t", bytes).map(|r| (r.seq, r.event));
            let whole = decode("t", bytes).map(|s| (s.envelope.seq, s.event));
            match (fast, whole) {
                (Ok(a), Ok(b)) => a == b,
                (Err(_), Err(_)) => true,
                _ => false,
            }
        };
        for record in &records {
            for at in 0..record.len() {
                assert!(agree(&record[..at]), "truncated at {at}");
                for byte in 0..=u8::MAX {
                    let mut changed = record.clone();
                    changed[at] = byte;
                    assert!(agree(&changed), "{changed:02x?}");
                }
            }
        }
    }
}
