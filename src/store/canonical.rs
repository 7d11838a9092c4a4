//! Recovery's fast reader for records stored as JSON (before docs/adr/0005, or imported lines
//! kept as they were): an envelope in exactly the layout [`super::to_json`] writes (its field
//! order, no whitespace, strings without escapes, the current schema version) is read here
//! without a general JSON parser. Anything else, including every malformed record, is left to
//! the `serde_json` reader, which alone names errors: this one only ever answers "the same as
//! `serde_json` would" or "not mine".

use std::borrow::Cow;

use crate::domain::{
    UserFlow, UserFlowEvent, UserFlowId, UserFlowType, UserFlowTypeVersion, USER_FLOW_CREATED,
    USER_FLOW_DELETED,
};

use super::envelope::{EventRecord, SCHEMA_VERSION};

/// Reads `bytes` if it is an envelope in the canonical layout; `None` means "use the general
/// reader" (which may still accept it, or name what is wrong).
pub(super) fn read(bytes: &[u8]) -> Option<EventRecord<'_>> {
    // With no escape and no control character anywhere, every string ends at its next quote;
    // and a record that is UTF-8 as a whole has UTF-8 strings (quotes are ASCII).
    // A fold without early exit, so the compiler checks many bytes per instruction.
    let plain = bytes.iter().fold(0u8, |seen, &b| {
        seen | u8::from(b < 0x20) | u8::from(b == b'\\')
    }) == 0;
    if !plain {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader { text, bytes, at: 0 };
    r.literal(b"{\"tenant_id\":")?;
    let tenant_id = r.string()?;
    r.literal(b",\"seq\":")?;
    let seq = r.unsigned()?;
    r.literal(b",\"event_id\":")?;
    r.string()?;
    r.literal(b",\"event_type\":")?;
    let event_type = r.string()?;
    r.literal(b",\"schema_version\":")?;
    if r.unsigned()? != u64::from(SCHEMA_VERSION) {
        return None;
    }
    r.literal(b",\"recorded_at\":")?;
    r.string()?;
    r.literal(b",\"request_id\":")?;
    r.string()?;
    r.literal(b",\"client_request_id\":")?;
    r.string()?;
    r.literal(b",\"payload\":{\"id\":")?;
    let id = UserFlowId::from_stored(r.string()?);
    let event = match event_type {
        USER_FLOW_CREATED => {
            r.literal(b",\"userFlowType\":")?;
            let user_flow_type = UserFlowType::parse(r.string()?).ok()?;
            r.literal(b",\"userFlowTypeVersion\":")?;
            let version = r.version()?;
            UserFlowEvent::Created(UserFlow {
                id,
                user_flow_type,
                user_flow_type_version: version,
            })
        }
        USER_FLOW_DELETED => UserFlowEvent::Deleted { id },
        _ => return None,
    };
    r.literal(b"}}")?;
    (r.at == bytes.len()).then_some(EventRecord {
        tenant_id: Cow::Borrowed(tenant_id),
        seq,
        event,
    })
}

struct Reader<'a> {
    /// The record, checked to be UTF-8 once; `bytes` is the same record.
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let end = self.at + expected.len();
        (self.bytes.get(self.at..end)? == expected).then(|| self.at = end)
    }

    /// A string: up to the next quote, since [`read`] has checked the record has no escapes.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let rest = self.bytes.get(self.at..)?;
        let end = self.at + memchr::memchr(b'"', rest)?;
        // Both ends are at ASCII bytes, so this slice of the UTF-8 record is a whole string.
        let string = self.text.get(self.at..end)?;
        self.at = end + 1;
        Some(string)
    }

    /// A JSON integer that fits a `u64` without leading zeros, as `serde_json` reads one.
    fn unsigned(&mut self) -> Option<u64> {
        let digits = self.digits();
        let first = *digits.first()?;
        if (first == b'0' && digits.len() > 1) || digits.len() > 19 {
            return None;
        }
        let value = digits.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        self.at += digits.len();
        Some(value)
    }

    /// `userFlowTypeVersion`: a whole number is read here; any other number by `serde_json`
    /// itself, so the `f32` is exactly the one the general reader gives.
    fn version(&mut self) -> Option<UserFlowTypeVersion> {
        let rest = self.bytes.get(self.at..)?;
        let len = rest
            .iter()
            .position(|&b| !(b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
            .unwrap_or(rest.len());
        let number = &rest[..len];
        let value: f32 = if number.iter().all(u8::is_ascii_digit) {
            // Whole numbers are what `encode` writes; serde_json reads them as a u64 and casts.
            #[allow(clippy::cast_precision_loss)]
            let whole = self.unsigned()? as f32;
            whole
        } else {
            let value = serde_json::from_slice(number).ok()?;
            self.at += len;
            value
        };
        Some(UserFlowTypeVersion::from_stored(value))
    }

    fn digits(&self) -> &'a [u8] {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        &rest[..len]
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::store::envelope::{decode_event_general, encode_json as encode, EventMeta};

    fn meta(request_id: &str) -> EventMeta {
        EventMeta {
            recorded_at: SystemTime::UNIX_EPOCH,
            request_id: request_id.into(),
            client_request_id: Some("c-1".to_owned()),
        }
    }

    fn created(id: &str, version: f64) -> UserFlowEvent {
        UserFlowEvent::Created(UserFlow {
            id: UserFlowId::parse(id).unwrap(),
            user_flow_type: UserFlowType::SignUpOrSignIn,
            user_flow_type_version: UserFlowTypeVersion::parse(version).unwrap(),
        })
    }

    fn deleted(id: &str) -> UserFlowEvent {
        UserFlowEvent::Deleted {
            id: UserFlowId::parse(id).unwrap(),
        }
    }

    /// Whenever the fast reader accepts a record, the general one reads the same record.
    fn agrees(bytes: &[u8]) -> bool {
        match read(bytes) {
            None => true,
            Some(fast) => decode_event_general(bytes).is_ok_and(|general| general == fast),
        }
    }

    #[test]
    fn what_encode_writes_is_read_fast_and_the_same() {
        for event in [
            created("Pol1", 1.0),
            created("b2c_1_Mixed-Case_9", 3.0),
            created("Pol2", 1.1),
            deleted("Pol1"),
        ] {
            for request_id in ["r", "9d1c4c2e-5b0a-4f0e-9a39-0c7f6c1e2d3a", "naïve-ü"] {
                let bytes = encode("tenant-1", 42, &meta(request_id), &event);
                let fast = read(&bytes).expect("the canonical layout");
                assert_eq!(fast, decode_event_general(&bytes).unwrap());
                assert_eq!((fast.tenant_id.as_ref(), fast.seq), ("tenant-1", 42));
                assert_eq!(fast.event, event);
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_reader() {
        let escaped = encode("t", 1, &meta("quote\"and\\slash"), &deleted("a"));
        assert!(read(&escaped).is_none());
        assert!(decode_event_general(&escaped).is_ok());
        let text = String::from_utf8(encode("t", 1, &meta("r"), &deleted("a"))).unwrap();
        for other in [
            text.replace(',', ", "),
            text.replace("\"schema_version\":1", "\"schema_version\":01"),
            text.replace("\"seq\":1", "\"seq\":99999999999999999999"),
            text.replace("UserFlowDeleted", "UserFlowRenamed"),
            format!("{text} "),
            format!("{text}x"),
            text.replace("\"tenant_id\":\"t\"", "\"tenant_id\":\"t\u{1}\""),
        ] {
            assert!(read(other.as_bytes()).is_none(), "{other}");
        }
    }

    /// Every one-byte change and every truncation of real records: the fast reader either
    /// declines or agrees with the general reader, so it can never accept a bad record.
    #[test]
    fn no_mutation_makes_the_readers_disagree() {
        let records = [
            encode("t", 7, &meta("r"), &created("Pol1", 1.0)),
            encode("t", 8, &meta("r"), &created("Pol1", 2.5)),
            encode("t", 9, &meta("r"), &deleted("Pol1")),
        ];
        let replacements = [
            b'"', b'\\', b'0', b'1', b'9', b'-', b'.', b'e', b'}', b'{', b',', b':', b' ', b'x',
            0x01, 0x7f, 0xc3, 0xff,
        ];
        for record in &records {
            for at in 0..record.len() {
                assert!(agrees(&record[..at]), "truncated at {at}");
                for &byte in &replacements {
                    let mut changed = record.clone();
                    changed[at] = byte;
                    assert!(agrees(&changed), "{}", String::from_utf8_lossy(&changed));
                }
            }
        }
    }
}
