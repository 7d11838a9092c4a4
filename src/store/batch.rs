//! Records for consecutive seqs written as one (docs/adr/0007). A tenant actor gathers the
//! events it decides in one pass over its mailbox into a [`RecordBatch`] and appends them with
//! one write: sled's cost is per insert, not per byte.
//!
//! Stored form: one record alone is stored as itself (compact or JSON, as before), under its
//! seq. Two or more are stored under the seq of the first, as `MARKER` followed by each record
//! as its length (LEB128) and bytes; the records' seqs follow from the key.

use super::bytes::{put_varint, Reader};
use super::{StoreError, Visit};

/// The first byte of a stored value holding several records. It never starts UTF-8 text (so
/// never a JSON record) and differs from the compact record's marker.
pub(super) const MARKER: u8 = 0xFC;

/// Records for consecutive seqs, appended to a stream with one write.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    first_seq: u64,
    count: u64,
    /// `MARKER`, then each record as its length and bytes.
    framed: Vec<u8>,
    /// Where the first record's bytes start in `framed`.
    first_at: usize,
}

impl RecordBatch {
    /// An empty batch whose first record will have seq `first_seq`.
    #[must_use]
    pub fn starting_at(first_seq: u64) -> Self {
        Self {
            first_seq,
            count: 0,
            framed: vec![MARKER],
            first_at: 1,
        }
    }

    /// A batch of one record.
    #[must_use]
    pub fn single(seq: u64, record: &[u8]) -> Self {
        let mut batch = Self::starting_at(seq);
        batch.push(record);
        batch
    }

    /// Adds the record of seq [`Self::next_seq`].
    pub fn push(&mut self, record: &[u8]) {
        put_varint(&mut self.framed, record.len() as u64);
        if self.count == 0 {
            self.first_at = self.framed.len();
        }
        self.framed.extend_from_slice(record);
        self.count += 1;
    }

    /// Empties the batch; the next record pushed gets the seq after its last one.
    pub fn restart(&mut self) {
        self.first_seq += self.count;
        self.count = 0;
        self.framed.truncate(1);
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The number of records.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.count
    }

    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The seq the next record pushed gets.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.count
    }

    /// The seq of the last record (`first_seq - 1` when empty).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.next_seq() - 1
    }

    /// What a store keeps under the key `first_seq`: a lone record as itself, several framed.
    pub(super) fn stored(&self) -> &[u8] {
        if self.count == 1 {
            &self.framed[self.first_at..]
        } else {
            &self.framed
        }
    }

    /// The records with their seqs.
    pub fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        // The batch wrote the framing itself, so reading it back cannot fail.
        Records::of(self.first_seq, &self.framed).map_while(Result::ok)
    }
}

/// Visits the records of the value stored under `first_seq` whose seq is `from` or later, in
/// order; `Ok(false)` once `visit` says stop. A framing fault names `tenant` and the seq.
pub(super) fn visit_from(
    tenant: &str,
    first_seq: u64,
    value: &[u8],
    from: u64,
    visit: &mut Visit<'_>,
) -> Result<bool, StoreError> {
    for record in Records::of(first_seq, value) {
        let (seq, bytes) = record.map_err(|fault| bad_batch(tenant, fault))?;
        if seq >= from && !visit(seq, bytes)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`visit_from`] backwards: the records whose seq is `through` or earlier, last first.
pub(super) fn visit_back(
    tenant: &str,
    first_seq: u64,
    value: &[u8],
    through: u64,
    visit: &mut Visit<'_>,
) -> Result<bool, StoreError> {
    let records: Vec<_> = Records::of(first_seq, value).collect();
    for record in records.into_iter().rev() {
        let (seq, bytes) = record.map_err(|fault| bad_batch(tenant, fault))?;
        if seq <= through && !visit(seq, bytes)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn bad_batch(tenant: &str, (seq, reason): (u64, &'static str)) -> StoreError {
    StoreError::BadBatch {
        tenant: tenant.to_owned(),
        seq,
        reason,
    }
}

/// The records of a stored value kept under key `first_seq`, with their seqs: a value that is
/// not framed is one record. A framing fault ends the iteration with an error naming the seq.
pub(super) struct Records<'a> {
    seq: u64,
    state: State<'a>,
}

enum State<'a> {
    Single(&'a [u8]),
    Framed(Reader<'a>),
    /// The marker and nothing after it.
    Empty,
    Done,
}

impl<'a> Records<'a> {
    pub(super) fn of(first_seq: u64, value: &'a [u8]) -> Self {
        let state = match value {
            [MARKER] => State::Empty,
            [MARKER, framed @ ..] => State::Framed(Reader::new(framed)),
            _ => State::Single(value),
        };
        Self {
            seq: first_seq,
            state,
        }
    }
}

fn framed<'a>(reader: &mut Reader<'a>) -> Result<&'a [u8], &'static str> {
    let len = usize::try_from(reader.varint()?).map_err(|_| "length too large")?;
    if len == 0 {
        return Err("an empty record in a batch");
    }
    reader.take(len)
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u64, &'a [u8]), (u64, &'static str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let seq = self.seq;
        let record = match std::mem::replace(&mut self.state, State::Done) {
            State::Done => return None,
            State::Empty => return Some(Err((seq, "an empty batch"))),
            State::Single(record) => record,
            State::Framed(mut reader) => {
                if reader.at_end() {
                    return None;
                }
                match framed(&mut reader) {
                    Ok(record) => {
                        self.state = State::Framed(reader);
                        record
                    }
                    Err(reason) => return Some(Err((seq, reason))),
                }
            }
        };
        self.seq += 1;
        Some(Ok((seq, record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = Result<(u64, Vec<u8>), (u64, &'static str)>;

    fn read(first: u64, value: &[u8]) -> Vec<Read> {
        Records::of(first, value)
            .map(|r| r.map(|(s, b)| (s, b.to_vec())))
            .collect()
    }

    #[test]
    fn a_lone_record_is_stored_as_itself_and_several_are_framed() {
        let one = RecordBatch::single(7, b"\xFBabc");
        assert_eq!(one.stored(), b"\xFBabc");
        assert_eq!(read(7, one.stored()), [Ok((7, b"\xFBabc".to_vec()))]);

        let mut batch = RecordBatch::starting_at(3);
        for record in [&b"{\"a\":1}"[..], b"\xFBxy", &[0xFB; 200]] {
            assert_eq!(batch.next_seq(), 3 + batch.len());
            batch.push(record);
        }
        assert_eq!(batch.last_seq(), 5);
        let stored = batch.stored();
        assert_eq!(&stored[..3], b"\xFC\x07{");
        let back = read(3, stored);
        assert_eq!(
            back,
            [
                Ok((3, b"{\"a\":1}".to_vec())),
                Ok((4, b"\xFBxy".to_vec())),
                Ok((5, vec![0xFB; 200])),
            ]
        );
        let listed: Vec<_> = batch.records().map(|(s, b)| (s, b.to_vec())).collect();
        assert_eq!(
            listed,
            back.into_iter().map(Result::unwrap).collect::<Vec<_>>()
        );

        batch.restart();
        assert!(batch.is_empty());
        assert_eq!(batch.next_seq(), 6);
        batch.push(b"\xFBz");
        assert_eq!(batch.stored(), b"\xFBz");
    }

    #[test]
    fn bad_framing_is_named_with_the_seq_it_stops_at() {
        assert_eq!(read(9, b"\xFC"), [Err((9, "an empty batch"))]);
        assert_eq!(
            read(9, b"\xFC\x01a\x00"),
            [
                Ok((9, b"a".to_vec())),
                Err((10, "an empty record in a batch"))
            ]
        );
        assert_eq!(
            read(9, b"\xFC\x01a\x05ab"),
            [Ok((9, b"a".to_vec())), Err((10, "record cut short"))]
        );
        assert_eq!(read(9, b"\xFC\x80"), [Err((9, "record cut short"))]);
    }

    #[test]
    fn no_damage_to_a_stored_batch_panics() {
        let mut batch = RecordBatch::starting_at(1);
        for i in 0..5u8 {
            batch.push(&[0xFB, i, i, i]);
        }
        let stored = batch.stored().to_vec();
        for cut in 0..stored.len() {
            let _ = read(1, &stored[..cut]);
        }
        for at in 0..stored.len() {
            for byte in [0x00, 0x7F, 0x80, 0xFC, 0xFF] {
                let mut damaged = stored.clone();
                damaged[at] = byte;
                let records = read(1, &damaged);
                let seqs: Vec<u64> = records
                    .iter()
                    .map(|r| match r {
                        Ok((s, _)) | Err((s, _)) => *s,
                    })
                    .collect();
                let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
                assert_eq!(seqs, expected, "seqs count up from the key");
            }
        }
    }
}
