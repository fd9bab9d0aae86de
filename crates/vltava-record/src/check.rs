//! Record-level validation of a produced batch, the way Kafka's log
//! validator checks every record before it accepts a batch.
//!
//! [`check_records`] walks the records of one batch (inflating a compressed
//! one through [`crate::decompressing_reader`], within its bound) and checks
//! each record's framing: a length that covers exactly the fields inside it,
//! varints of legal width, key, value and header lengths that fit, offset
//! deltas `0, 1, 2, …`, the declared record count and no trailing bytes. It
//! allocates nothing per record: keys and values are skipped, not copied.
//! Problems that concern single records (a missing key on a compacted
//! topic, a malformed record) come back as [`RecordFault`]s carrying the
//! record's index in the batch, which is what Produce v8+ reports as
//! `record_errors` (KIP-467) so that a client fails just those records.
//! With [`SchemaIdRule`], keys and/or values must start with Confluent's
//! wire-format prefix (magic byte 0 and a 4-byte schema id) naming an id the
//! rule accepts; only those five bytes are read.

use std::io::{self, BufRead};

use crate::decompress::{decompressing_reader, io_to_record_error, is_over_limit};
use crate::{BatchHeader, Compression, RecordError, BATCH_HEADER_BYTES};

/// What the caller requires of every record.
#[derive(Clone, Copy)]
pub struct RecordRules<'a> {
    /// Compacted topics refuse records without a key.
    pub key_required: bool,
    /// The most plain bytes a compressed batch may inflate to.
    pub decompressed_bytes_max: usize,
    /// Keys and/or values must carry a schema id this rule accepts.
    pub schema_ids: Option<&'a SchemaIdRule<'a>>,
}

/// Which fields of a record must start with a schema id in Confluent's
/// wire format, and which ids are acceptable.
pub struct SchemaIdRule<'a> {
    pub key: bool,
    pub value: bool,
    /// Why `id` is not acceptable for the key (`true`) or the value
    /// (`false`); `None` when it is.
    #[allow(clippy::type_complexity)]
    pub check: &'a (dyn Fn(bool, i32) -> Option<String> + Sync),
}

/// The bytes of Confluent's prefix: magic byte 0, then the schema id as a
/// big-endian i32.
pub const SCHEMA_ID_PREFIX_BYTES: usize = 5;

/// One record that cannot be accepted: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFault {
    pub batch_index: i32,
    pub message: String,
}

/// Why a batch's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsRefused {
    /// The batch as a whole is unusable (it inflates past the bound).
    #[error("{0}")]
    Batch(RecordError),
    /// These records are invalid; at most [`RECORD_FAULTS_MAX`] are listed,
    /// `total` counts them all. A malformed record ends the walk, so records
    /// after it are neither listed nor counted.
    #[error("{total} invalid record(s); first: {}", faults.first().map_or("", |f| f.message.as_str()))]
    Records {
        faults: Vec<RecordFault>,
        total: usize,
    },
}

/// Faults listed per batch; a batch of a million keyless records reports the
/// first ones and the total, not a million messages.
pub const RECORD_FAULTS_MAX: usize = 10_000;

/// Widest legal varint (zig-zag i32) and varlong (zig-zag i64), in bytes.
const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

/// Checks every record of `batch`, whose header `validate_batch` already
/// accepted (so CRC, codec and record count vs offset range hold).
pub fn check_records(
    batch: &[u8],
    header: &BatchHeader,
    rules: &RecordRules,
) -> Result<(), RecordsRefused> {
    let payload = &batch[BATCH_HEADER_BYTES.min(batch.len())..];
    let limit = rules.decompressed_bytes_max;
    // The uncompressed hot path walks the slice itself (no virtual call per
    // byte); compressed batches stream out of their decompressor.
    if header.compression() == Compression::None {
        return walk(&mut &payload[..], header, rules);
    }
    let mut reader = decompressing_reader(header.compression(), payload, limit)
        .map_err(RecordsRefused::Batch)?;
    walk(&mut reader, header, rules)
}

fn walk<R: BufRead + ?Sized>(
    reader: &mut R,
    header: &BatchHeader,
    rules: &RecordRules,
) -> Result<(), RecordsRefused> {
    let limit = rules.decompressed_bytes_max;
    let mut faults = Faults::default();
    for index in 0..header.records_count.max(0) {
        match check_one(reader, index, rules) {
            Ok(None) => {}
            Ok(Some(message)) => faults.push(index, message),
            Err(e) if is_over_limit(&e) => {
                return Err(RecordsRefused::Batch(io_to_record_error(e, limit)));
            }
            Err(e) => {
                faults.push(index, malformed(index, &e));
                return Err(faults.into_refusal());
            }
        }
    }
    match reader.fill_buf() {
        Ok([]) => {}
        Ok(rest) => {
            let message = format!(
                "{} bytes follow the last of the batch's {} records",
                rest.len(),
                header.records_count
            );
            faults.push(header.records_count.saturating_sub(1).max(0), message);
        }
        Err(e) if is_over_limit(&e) => {
            return Err(RecordsRefused::Batch(io_to_record_error(e, limit)));
        }
        Err(e) => faults.push(header.records_count, malformed(header.records_count, &e)),
    }
    if faults.total > 0 {
        return Err(faults.into_refusal());
    }
    Ok(())
}

#[derive(Default)]
struct Faults {
    listed: Vec<RecordFault>,
    total: usize,
}

impl Faults {
    fn push(&mut self, batch_index: i32, message: String) {
        self.total += 1;
        if self.listed.len() < RECORD_FAULTS_MAX {
            self.listed.push(RecordFault {
                batch_index,
                message,
            });
        }
    }

    fn into_refusal(self) -> RecordsRefused {
        RecordsRefused::Records {
            faults: self.listed,
            total: self.total,
        }
    }
}

fn malformed(index: i32, error: &io::Error) -> String {
    format!("record {index} is malformed: {error}")
}

/// Walks one record. `Ok(Some(_))` is a well-formed record the rules refuse;
/// `Err` is a record that cannot be read (the walk stops there).
fn check_one<R: BufRead + ?Sized>(
    reader: &mut R,
    index: i32,
    rules: &RecordRules,
) -> io::Result<Option<String>> {
    let mut stream = Stream(reader);
    let length = read_varint(&mut stream)?;
    if length < 0 {
        return Err(bad(format!("negative record length {length}")));
    }
    let mut body = Counted {
        inner: stream,
        left: length as usize,
    };
    body.skip(1)?; // attributes: unused in v2
    read_varlong(&mut body)?; // timestamp delta
    let offset_delta = read_varint(&mut body)?;
    if offset_delta != index {
        return Err(bad(format!(
            "offset delta {offset_delta} where {index} was expected"
        )));
    }
    let ids = rules.schema_ids;
    let key_length = read_varint(&mut body)?;
    let key_fault = prefixed_field(&mut body, key_length, "key", ids.filter(|r| r.key), true)?;
    let value_length = read_varint(&mut body)?;
    let value_fault = prefixed_field(
        &mut body,
        value_length,
        "value",
        ids.filter(|r| r.value),
        false,
    )?;
    let headers = read_varint(&mut body)?;
    if headers < 0 {
        return Err(bad(format!("negative header count {headers}")));
    }
    for _ in 0..headers {
        let key_length = read_varint(&mut body)?;
        if key_length < 0 {
            return Err(bad(format!("negative header key length {key_length}")));
        }
        skip_field(&mut body, key_length, "header key")?;
        let value_length = read_varint(&mut body)?;
        skip_field(&mut body, value_length, "header value")?;
    }
    if body.left != 0 {
        return Err(bad(format!(
            "record length {length} leaves {} bytes unread",
            body.left
        )));
    }
    if rules.key_required && key_length < 0 {
        return Ok(Some(
            "Compacted topic cannot accept a record without a key".to_string(),
        ));
    }
    Ok(key_fault.or(value_fault))
}

/// Skips a key or value; when `rule` asks, first reads its schema-id
/// prefix and returns why it is not acceptable (as a record fault).
fn prefixed_field(
    source: &mut impl ByteSource,
    length: i32,
    what: &str,
    rule: Option<&SchemaIdRule>,
    is_key: bool,
) -> io::Result<Option<String>> {
    // A null key or value carries no data to check: a tombstone on a
    // validated compacted topic still deletes.
    let Some(rule) = rule.filter(|_| length >= 0) else {
        skip_field(source, length, what)?;
        return Ok(None);
    };
    if length < SCHEMA_ID_PREFIX_BYTES as i32 {
        skip_field(source, length, what)?;
        return Ok(Some(format!(
            "the {what} must start with a schema id (magic byte 0 and a 4-byte id), but it is {length} bytes"
        )));
    }
    let mut prefix = [0u8; SCHEMA_ID_PREFIX_BYTES];
    for byte in &mut prefix {
        *byte = source.next_byte()?;
    }
    source.skip(length as usize - SCHEMA_ID_PREFIX_BYTES)?;
    if prefix[0] != 0 {
        return Ok(Some(format!(
            "the {what} must start with magic byte 0 and a schema id, but starts with byte {}",
            prefix[0]
        )));
    }
    let id = i32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    Ok((rule.check)(is_key, id))
}

/// The records stream, one byte or one skip at a time.
struct Stream<'a, R: ?Sized>(&'a mut R);

/// A record body: reads may not pass the record's declared length.
struct Counted<'a, R: ?Sized> {
    inner: Stream<'a, R>,
    left: usize,
}

trait ByteSource {
    fn next_byte(&mut self) -> io::Result<u8>;
    fn skip(&mut self, n: usize) -> io::Result<()>;
}

impl<R: BufRead + ?Sized> ByteSource for Stream<'_, R> {
    fn next_byte(&mut self) -> io::Result<u8> {
        let byte = *self
            .0
            .fill_buf()?
            .first()
            .ok_or_else(|| bad("records end early".to_string()))?;
        self.0.consume(1);
        Ok(byte)
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let available = self.0.fill_buf()?.len();
            if available == 0 {
                return Err(bad("records end early".to_string()));
            }
            let step = available.min(n);
            self.0.consume(step);
            n -= step;
        }
        Ok(())
    }
}

impl<R: BufRead + ?Sized> ByteSource for Counted<'_, R> {
    fn next_byte(&mut self) -> io::Result<u8> {
        if self.left == 0 {
            return Err(bad("a field runs past the record's length".to_string()));
        }
        self.left -= 1;
        self.inner.next_byte()
    }

    fn skip(&mut self, n: usize) -> io::Result<()> {
        if n > self.left {
            return Err(bad("a field runs past the record's length".to_string()));
        }
        self.left -= n;
        self.inner.skip(n)
    }
}

fn skip_field(source: &mut impl ByteSource, length: i32, what: &str) -> io::Result<()> {
    match length {
        -1 => Ok(()),
        n if n < -1 => Err(bad(format!("invalid {what} length {n}"))),
        n => source.skip(n as usize),
    }
}

fn read_varint(source: &mut impl ByteSource) -> io::Result<i32> {
    let raw = read_unsigned(source, VARINT_BYTES_MAX)?;
    let raw = u32::try_from(raw).map_err(|_| bad("varint overflows 32 bits".to_string()))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn read_varlong(source: &mut impl ByteSource) -> io::Result<i64> {
    let raw = read_unsigned(source, VARLONG_BYTES_MAX)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(source: &mut impl ByteSource, bytes_max: usize) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..bytes_max {
        let byte = source.next_byte()?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad(format!("varint longer than {bytes_max} bytes")))
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_batch, BatchBuilder, Compression};
    use bytes::Bytes;

    const RULES: RecordRules = RecordRules {
        key_required: false,
        decompressed_bytes_max: 1 << 20,
        schema_ids: None,
    };
    const COMPACTED: RecordRules = RecordRules {
        key_required: true,
        decompressed_bytes_max: 1 << 20,
        schema_ids: None,
    };

    fn zigzag(value: i64, out: &mut Vec<u8>) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// One record's bytes with `key_length`/`value_length` as written (the
    /// payloads are `len` zero bytes), and `headers` declared.
    fn record(offset_delta: i64, key_length: i64, headers: i64) -> Vec<u8> {
        let mut body = vec![0u8]; // attributes
        zigzag(0, &mut body); // timestamp delta
        zigzag(offset_delta, &mut body);
        zigzag(key_length, &mut body);
        body.extend(std::iter::repeat_n(b'k', key_length.max(0) as usize));
        zigzag(1, &mut body);
        body.push(b'v');
        zigzag(headers, &mut body);
        let mut out = Vec::new();
        zigzag(body.len() as i64, &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// A batch whose header says `count` records over `records`, with a
    /// correct CRC, so only record-level checks can refuse it.
    fn batch(records: &[u8], count: i32) -> Vec<u8> {
        let mut batch = BatchBuilder::new(Compression::None).build().to_vec();
        batch.extend_from_slice(records);
        let len = (batch.len() - crate::LOG_OVERHEAD) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&batch[crate::CRC_COVERED_FROM..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    fn check(batch: &[u8], rules: &RecordRules) -> Result<(), RecordsRefused> {
        let header = validate_batch(batch).expect("header-valid test batch");
        check_records(batch, &header, rules)
    }

    fn faults(result: Result<(), RecordsRefused>) -> Vec<(i32, String)> {
        match result {
            Err(RecordsRefused::Records { faults, total }) => {
                assert_eq!(faults.len(), total);
                faults
                    .into_iter()
                    .map(|f| (f.batch_index, f.message))
                    .collect()
            }
            other => panic!("expected record faults, got {other:?}"),
        }
    }

    #[test]
    fn built_batches_pass_in_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = (0..50)
                .fold(BatchBuilder::new(codec), |b, i| {
                    let key = Some(Bytes::from(format!("key-{i}")));
                    let headers = vec![("h".to_string(), Some(Bytes::from_static(b"x")))];
                    b.record(
                        key,
                        Some(Bytes::from(vec![7u8; i])),
                        headers,
                        1_000 + i as i64,
                    )
                })
                .build();
            assert_eq!(check(&batch, &COMPACTED), Ok(()), "{codec:?}");
        }
    }

    #[test]
    fn schema_ids_are_read_from_keys_and_values_in_every_codec() {
        let with_id = |id: i32, body: &[u8]| {
            let mut v = vec![0u8];
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(body);
            Bytes::from(v)
        };
        let values = [
            Some(with_id(1, b"ok")),
            Some(with_id(7, b"unregistered")),
            Some(Bytes::from_static(b"\x01\x00\x00\x00\x01x")),
            Some(Bytes::from_static(b"\x00\x00")),
            // A null value (a tombstone) has nothing to check.
            None,
            Some(with_id(1, b"")),
        ];
        let check_id = |is_key: bool, id: i32| {
            (id != 1).then(|| {
                format!(
                    "{} id {id} is not registered",
                    if is_key { "key" } else { "value" }
                )
            })
        };
        let value_rule = SchemaIdRule {
            key: false,
            value: true,
            check: &check_id,
        };
        let key_rule = SchemaIdRule {
            key: true,
            value: false,
            check: &check_id,
        };
        let rules = |rule| RecordRules {
            key_required: false,
            decompressed_bytes_max: 1 << 20,
            schema_ids: Some(rule),
        };
        for codec in [Compression::None, Compression::Zstd] {
            let batch = values
                .iter()
                .enumerate()
                .fold(BatchBuilder::new(codec), |b, (i, v)| {
                    b.record(
                        Some(with_id(1, format!("k{i}").as_bytes())),
                        v.clone(),
                        vec![],
                        1_000,
                    )
                })
                .build();
            assert_eq!(
                faults(check(&batch, &rules(&value_rule))),
                vec![
                    (1, "value id 7 is not registered".to_string()),
                    (2, "the value must start with magic byte 0 and a schema id, but starts with byte 1".to_string()),
                    (3, "the value must start with a schema id (magic byte 0 and a 4-byte id), but it is 2 bytes".to_string()),
                ],
                "{codec:?}"
            );
            // Every key carries id 1: the key rule passes the same batch.
            assert_eq!(check(&batch, &rules(&key_rule)), Ok(()), "{codec:?}");
        }
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_named_one_by_one() {
        let mut records = Vec::new();
        for i in 0..10 {
            records.extend(record(i, if i % 3 == 0 { -1 } else { 2 }, 0));
        }
        let batch = batch(&records, 10);
        assert_eq!(check(&batch, &RULES), Ok(()));
        let indexes: Vec<i32> = faults(check(&batch, &COMPACTED))
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(indexes, vec![0, 3, 6, 9]);
    }

    #[test]
    fn malformed_records_stop_the_walk_at_their_index() {
        let mut negative_key = record(0, 2, 0);
        negative_key.extend(record(1, -5, 0));
        // Twelve continuation bytes where a varint (the key length) should be.
        let mut long_varint = record(0, 2, 0);
        let mut body = vec![0u8, 0, 2];
        body.extend([0xff; 11]);
        body.push(0x01);
        zigzag(body.len() as i64, &mut long_varint);
        long_varint.extend(body);
        let mut too_many_headers = record(0, 2, 0);
        too_many_headers.extend(record(1, 2, 1_000));
        let mut wrong_delta = record(0, 2, 0);
        wrong_delta.extend(record(5, 2, 0));
        for (name, records) in [
            ("negative key length", negative_key),
            ("12-byte varint", long_varint),
            ("header count past the bytes", too_many_headers),
            ("offset delta out of order", wrong_delta),
        ] {
            let found = faults(check(&batch(&records, 2), &RULES));
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            assert_eq!(found[0].0, 1, "{name}: {found:?}");
            assert!(found[0].1.starts_with("record 1 is malformed"), "{name}");
        }
    }

    #[test]
    fn a_count_larger_than_the_records_is_refused() {
        let found = faults(check(&batch(&record(0, 2, 0), 1_000_000), &RULES));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1);
    }

    #[test]
    fn trailing_bytes_after_the_last_record_are_refused() {
        let mut records = record(0, 2, 0);
        records.extend([1, 2, 3]);
        let found = faults(check(&batch(&records, 1), &RULES));
        assert_eq!(
            found,
            vec![(0, "3 bytes follow the last of the batch's 1 records".into())]
        );
    }

    #[test]
    fn a_compressed_bomb_is_refused_as_a_batch() {
        let batch = BatchBuilder::new(Compression::Zstd)
            .record(None, Some(Bytes::from(vec![0u8; 4 << 20])), vec![], 1)
            .build();
        assert_eq!(
            check(&batch, &RULES),
            Err(RecordsRefused::Batch(RecordError::DecompressedTooLarge {
                limit: 1 << 20
            }))
        );
    }
}
