//! JSON on the wire, below serde: a string writer that copies what needs no escaping (batch
//! answers), and a scanner for the plain literals of the common create body (which bytes
//! those are is `json_text`'s rule).

use crate::json_text::{is_plain, needs_escape};

/// Appends `value` as a JSON string: copied as it is when no byte needs escaping (ids, names,
/// header values, paths: nearly always), else escaped by serde.
pub(super) fn write_string(out: &mut Vec<u8>, value: &str) {
    if is_plain(value.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// [`needs_escape`] for every byte, looked up by the scan.
const STRING_STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        stop[byte] = needs_escape(byte as u8);
        byte += 1;
    }
    stop
};

/// A cursor over a JSON text that reads the plain literals of the common create body.
pub(super) struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Whether every byte has been read.
    pub(super) fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub(super) fn next(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    /// JSON's whitespace: space, tab, line feed and carriage return.
    pub(super) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Whitespace, then `byte`.
    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.next()? == byte).then_some(())
    }

    /// Whitespace, then a string literal with no escapes and no control characters: its bytes.
    pub(super) fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let rest = self.bytes.get(self.at..)?;
        let len = rest.iter().position(|&b| STRING_STOP[usize::from(b)])?;
        if rest[len] != b'"' {
            return None;
        }
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// Whitespace, then a number literal as JSON writes them: its bytes.
    pub(super) fn number(&mut self) -> Option<&'a [u8]> {
        self.skip_whitespace();
        let start = self.at;
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            self.one_or_more_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            self.one_or_more_digits()?;
        }
        self.bytes.get(start..self.at)
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

/// The value of a JSON number literal: a small integer (every version a client sends) read
/// directly, anything else by `serde_json`, as the general path reads it.
pub(super) fn number_value(literal: &[u8]) -> Option<f64> {
    if literal.len() <= 9 && literal.iter().all(u8::is_ascii_digit) {
        let n = literal
            .iter()
            .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'));
        return Some(f64::from(n));
    }
    serde_json::from_slice(literal).ok()
}
