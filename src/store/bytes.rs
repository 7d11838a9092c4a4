//! The byte-level building blocks of stored values: LEB128 numbers and length-prefixed text,
//! written into a `Vec<u8>` and read back by a [`Reader`] that refuses anything but the one
//! shortest encoding. Shared by the framing of batched records here and by the codec's
//! compact record; knows nothing of events.

/// Appends `value` as LEB128.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `text` as its length (LEB128) and its UTF-8 bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Reads a stored value front to back; every error names what is wrong with the bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("length too large")?;
        let taken = self.bytes.get(self.at..end).ok_or("record cut short")?;
        self.at = end;
        Ok(taken)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// LEB128, in its shortest form only (one value, one encoding).
    pub(crate) fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7F);
            if shift == 63 && bits > 1 {
                return Err("number too large");
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err("number not in its shortest form");
                }
                return Ok(value);
            }
        }
        Err("number too long")
    }

    /// Text written by [`put_str`].
    pub(crate) fn str(&mut self) -> Result<&'a str, &'static str> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        std::str::from_utf8(self.take(len)?).map_err(|_| "text not UTF-8")
    }
}
