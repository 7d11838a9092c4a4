//! The compact binary form in which the logs keep each event (docs/adr/0005): the envelope's
//! fields without their names, ids as 16-byte UUIDs, the time as milliseconds, and no tenant
//! (the stream a record lives in is its tenant). It holds exactly what the JSON envelope says,
//! so [`super::to_json`] renders every record back to the same bytes; exports, the event
//! routes and the tools show that JSON and never these bytes.
//!
//! Layout: `MARKER`, flags, seq (LEB128), schema version (LEB128), event type, event id,
//! recorded-at, request id, client request id (absent when it is the request id), payload.
//! A text field is 16 bytes when a flag says it is a UUID in lower-case hyphenated form, else
//! a length (LEB128) and UTF-8; the time is LEB128 milliseconds since the epoch or text.
//! A `Created` payload is the id (its `B2C_1_` prefix left out when a flag says so), one byte
//! of flow type (high bit: the version is a whole number under 256, in one byte) and the
//! version (one byte, or an `f32`, little-endian); a `Deleted` payload is the id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::domain::{
    UserFlow, UserFlowEvent, UserFlowId, UserFlowType, UserFlowTypeVersion, ID_PREFIX,
};
use crate::store::bytes::{put_str, put_varint, Reader};

/// The first byte of every compact record. It never starts UTF-8 text, so never a JSON record:
/// a log may hold both (records written before ADR 0005, or imported lines that do not
/// render back exactly).
pub(super) const MARKER: u8 = 0xFB;

const EVENT_ID_UUID: u8 = 1;
const REQUEST_ID_UUID: u8 = 1 << 1;
const CLIENT_SAME: u8 = 1 << 2;
const CLIENT_UUID: u8 = 1 << 3;
const TIME_MILLIS: u8 = 1 << 4;
const ID_PREFIXED: u8 = 1 << 5;
const KNOWN_FLAGS: u8 = (1 << 6) - 1;

const CREATED: u8 = 1;
const DELETED: u8 = 2;
const SMALL_VERSION: u8 = 0x80;

/// The flow types by their stored code (the index). Part of the stored format: append only.
const TYPES: [UserFlowType; 6] = [
    UserFlowType::SignUp,
    UserFlowType::SignIn,
    UserFlowType::SignUpOrSignIn,
    UserFlowType::PasswordReset,
    UserFlowType::ProfileUpdate,
    UserFlowType::ResourceOwner,
];

/// The stored code of a flow type: its index in [`TYPES`].
const fn type_code(kind: UserFlowType) -> u8 {
    match kind {
        UserFlowType::SignUp => 0,
        UserFlowType::SignIn => 1,
        UserFlowType::SignUpOrSignIn => 2,
        UserFlowType::PasswordReset => 3,
        UserFlowType::ProfileUpdate => 4,
        UserFlowType::ResourceOwner => 5,
    }
}

/// The first millisecond RFC 3339 cannot write (year 10000).
const END_OF_TIME_MS: u64 = 253_402_300_800_000;

/// A text field: a UUID kept as 16 bytes, or any other text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text<'a> {
    Uuid(Uuid),
    Str(&'a str),
}

impl<'a> Text<'a> {
    /// `text` as a UUID when it is exactly one written lower-case and hyphenated (so it renders
    /// back to the same text), else as text.
    pub(super) fn of(text: &'a str) -> Self {
        if text.len() == uuid::fmt::Hyphenated::LENGTH {
            if let Ok(id) = Uuid::try_parse(text) {
                let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
                if id.hyphenated().encode_lower(&mut buffer).as_bytes() == text.as_bytes() {
                    return Self::Uuid(id);
                }
            }
        }
        Self::Str(text)
    }

    /// Writes the text, unescaped, into `buffer` (for a UUID) and returns it.
    pub(super) fn as_str<'b>(&'b self, buffer: &'b mut [u8; 36]) -> &'b str {
        match self {
            Self::Uuid(id) => id.hyphenated().encode_lower(buffer),
            Self::Str(text) => text,
        }
    }
}

/// When an event was recorded: milliseconds since the epoch, or text that is not such a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Time<'a> {
    Millis(u64),
    Str(&'a str),
}

impl Time<'_> {
    /// A clock reading, cut to the millisecond as the JSON envelope writes it; `None` when RFC
    /// 3339 cannot write it (before 1970 or after 9999).
    pub(super) fn of(at: SystemTime) -> Option<Self> {
        let ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        (ms < END_OF_TIME_MS).then_some(Self::Millis(ms))
    }

    /// The time as the JSON envelope writes it: RFC 3339, UTC, milliseconds.
    pub(super) fn to_rfc3339(self) -> String {
        match self {
            Self::Millis(ms) => {
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
            }
            Self::Str(text) => text.to_owned(),
        }
    }
}

/// Everything in a record but its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header<'a> {
    pub seq: u64,
    pub schema_version: u32,
    pub event_id: Text<'a>,
    pub recorded_at: Time<'a>,
    pub request_id: Text<'a>,
    /// `None`: the same as the request id (no `client-request-id` was sent).
    pub client_request_id: Option<Text<'a>>,
}

/// Appends the compact record of `event` to `out`.
pub(super) fn write(out: &mut Vec<u8>, header: &Header<'_>, event: &UserFlowEvent) {
    let id = event.flow_id();
    let name = id.as_str().strip_prefix(ID_PREFIX);
    let mut flags = 0;
    for (set, flag) in [
        (matches!(header.event_id, Text::Uuid(_)), EVENT_ID_UUID),
        (matches!(header.request_id, Text::Uuid(_)), REQUEST_ID_UUID),
        (header.client_request_id.is_none(), CLIENT_SAME),
        (
            matches!(header.client_request_id, Some(Text::Uuid(_))),
            CLIENT_UUID,
        ),
        (matches!(header.recorded_at, Time::Millis(_)), TIME_MILLIS),
        (name.is_some(), ID_PREFIXED),
    ] {
        if set {
            flags |= flag;
        }
    }
    out.extend_from_slice(&[MARKER, flags]);
    put_varint(out, header.seq);
    put_varint(out, u64::from(header.schema_version));
    out.push(match event {
        UserFlowEvent::Created(_) => CREATED,
        UserFlowEvent::Deleted { .. } => DELETED,
    });
    put_text(out, header.event_id);
    match header.recorded_at {
        Time::Millis(ms) => put_varint(out, ms),
        Time::Str(text) => put_str(out, text),
    }
    put_text(out, header.request_id);
    if let Some(client) = header.client_request_id {
        put_text(out, client);
    }
    put_str(out, name.unwrap_or(id.as_str()));
    if let UserFlowEvent::Created(flow) = event {
        let kind = type_code(flow.user_flow_type);
        let version = flow.user_flow_type_version.value();
        if version.fract() == 0.0 && (1.0..256.0).contains(&version) {
            out.extend_from_slice(&[kind | SMALL_VERSION, version as u8]);
        } else {
            out.push(kind);
            out.extend_from_slice(&version.to_le_bytes());
        }
    }
}

/// Reads a compact record whole, or says what is wrong with it.
pub(super) fn read(bytes: &[u8]) -> Result<(Header<'_>, UserFlowEvent), &'static str> {
    let mut r = Reader::new(bytes);
    if r.byte()? != MARKER {
        return Err("no compact marker");
    }
    let flags = r.byte()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err("unknown flags");
    }
    let seq = r.varint()?;
    let schema_version = u32::try_from(r.varint()?).map_err(|_| "schema version too large")?;
    let event_type = r.byte()?;
    let event_id = read_text(&mut r, flags & EVENT_ID_UUID != 0)?;
    let recorded_at = if flags & TIME_MILLIS != 0 {
        let ms = r.varint()?;
        if ms >= END_OF_TIME_MS {
            return Err("time after year 9999");
        }
        Time::Millis(ms)
    } else {
        Time::Str(r.str()?)
    };
    let request_id = read_text(&mut r, flags & REQUEST_ID_UUID != 0)?;
    let client_request_id = if flags & CLIENT_SAME != 0 {
        if flags & CLIENT_UUID != 0 {
            return Err("contradictory client request id flags");
        }
        None
    } else {
        Some(read_text(&mut r, flags & CLIENT_UUID != 0)?)
    };
    let name = r.str()?;
    let id = if flags & ID_PREFIXED != 0 {
        let mut full = String::with_capacity(ID_PREFIX.len() + name.len());
        full.push_str(ID_PREFIX);
        full.push_str(name);
        UserFlowId::from_stored(&full)
    } else {
        UserFlowId::from_stored(name)
    };
    let event = match event_type {
        CREATED => {
            let kind = r.byte()?;
            let user_flow_type = *TYPES
                .get(usize::from(kind & !SMALL_VERSION))
                .ok_or("unknown user flow type")?;
            let version = if kind & SMALL_VERSION != 0 {
                match r.byte()? {
                    0 => return Err("version 0"),
                    small => f32::from(small),
                }
            } else {
                let raw = r.take(4)?;
                f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])
            };
            if !version.is_finite() {
                return Err("version not a finite number");
            }
            UserFlowEvent::Created(UserFlow {
                id,
                user_flow_type,
                user_flow_type_version: UserFlowTypeVersion::from_stored(version),
            })
        }
        DELETED => UserFlowEvent::Deleted { id },
        _ => return Err("unknown event type"),
    };
    if !r.at_end() {
        return Err("bytes after the payload");
    }
    let header = Header {
        seq,
        schema_version,
        event_id,
        recorded_at,
        request_id,
        client_request_id,
    };
    Ok((header, event))
}

fn put_text(out: &mut Vec<u8>, text: Text<'_>) {
    match text {
        Text::Uuid(id) => out.extend_from_slice(id.as_bytes()),
        Text::Str(text) => put_str(out, text),
    }
}

/// A text field of the header: 16 bytes when the flag says it is a UUID, else text.
fn read_text<'a>(r: &mut Reader<'a>, uuid: bool) -> Result<Text<'a>, &'static str> {
    if uuid {
        let raw = r.take(16)?;
        Uuid::from_slice(raw)
            .map(Text::Uuid)
            .map_err(|_| "bad UUID")
    } else {
        r.str().map(Text::Str)
    }
}
