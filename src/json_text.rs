//! What a JSON string literal can hold raw: the one rule that the request reader (where the
//! plain part of a literal ends), the answer writers and the journal (when a string must be
//! escaped) share.

/// Whether JSON cannot hold `byte` raw inside a string: a control character, a quote or a
/// backslash. Reading, it ends the plain part of a literal; writing, it must be escaped.
#[must_use]
pub const fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether no byte of `text` needs escaping, so that it goes between quotes as it is.
///
/// Sixteen bytes at a time, with no early exit inside a chunk, which the compiler turns into
/// vector compares: the strings checked on every answer (header values, URLs, ids) are tens of
/// bytes long, and a byte-at-a-time scan with a branch per byte was a visible part of a
/// `$batch` answer's cost.
#[must_use]
pub fn is_plain(text: &[u8]) -> bool {
    let mut chunks = text.chunks_exact(16);
    if !chunks.all(plain_chunk) {
        return false;
    }
    // The last bytes padded with a plain one, so that short strings take the same path.
    let rest = chunks.remainder();
    let mut last = [b'a'; 16];
    last[..rest.len()].copy_from_slice(rest);
    plain_chunk(&last)
}

/// [`is_plain`] of 16 bytes: flags or-ed as bytes, without a branch, the form the compiler
/// turns into vector compares.
fn plain_chunk(chunk: &[u8]) -> bool {
    let mut bad = 0u8;
    for &b in chunk {
        bad |= u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    }
    bad == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_control_character_quote_or_backslash_anywhere() {
        assert!(is_plain(b""));
        assert!(is_plain(
            "https://graph.microsoft.com/beta/identity/userFlows('B2C_1_a')".as_bytes()
        ));
        assert!(is_plain("é ü 😀 \u{7f}".as_bytes()));
        // Each refused byte at every position, in and past the first 16-byte chunk.
        for bad in [b'"', b'\\', b'\n', b'\t', 0, 0x1f] {
            for len in [1, 15, 16, 17, 31, 32, 40] {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = bad;
                    assert!(!is_plain(&text), "{bad:#x} at {at} of {len}");
                }
            }
        }
        for byte in 0..=255u8 {
            assert_eq!(
                is_plain(&[byte]),
                !(byte < 0x20 || byte == b'"' || byte == b'\\')
            );
        }
    }
}
