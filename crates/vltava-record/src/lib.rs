//! Kafka RecordBatch v2 over plain bytes, with no I/O.
//!
//! This crate owns the batch format: header field access ([`BatchHeader`]),
//! batch-level validation ([`validate_batch`]: lengths, magic, CRC32C, codec,
//! record count), splitting a record set into batches without copying
//! ([`batches`]), the in-place header patches the broker makes on append
//! ([`set_base_offset`], [`set_partition_leader_epoch`],
//! [`set_log_append_time`]), and full record decoding/encoding through the
//! `kafka-protocol` crate ([`decode_records`], [`BatchBuilder`]).
//!
//! Invariants:
//! - Nothing here panics on arbitrary input bytes: every read of the buffer is
//!   bounds-checked and reported as a [`RecordError`]. The header *setters* are
//!   the exception: they take batches the caller already validated and assert
//!   that precondition.
//! - The hot path ([`validate_batch`]) never decodes individual records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

pub use kafka_protocol::records::{Record, TimestampType};

/// Bytes before the part of a batch counted by `batch_length`: base offset
/// (i64) and batch length (i32).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, from base offset through records count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record format this crate accepts.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batch_length`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32;
/// Producer id of a batch written without an idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch of a batch written without an idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence of a batch written without an idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// Leader epoch a client writes before the broker patches it.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

// Byte offsets of the header fields inside a batch.
const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
pub const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6 (KIP-534): the base timestamp is the batch's delete
/// horizon. Never set by Vltava.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// What a control record (a record of a control batch) marks, from its key
/// (version, type) and value (version, coordinator epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecord {
    /// The end of an aborted transaction.
    Abort { coordinator_epoch: i32 },
    /// The end of a committed transaction.
    Commit { coordinator_epoch: i32 },
    /// Any other type id (KRaft's snapshot and voter records, ...), or -1
    /// when the key is too short to hold one.
    Other(i16),
}

impl ControlRecord {
    /// Reads a control record's key and value; short or missing fields
    /// give `Other(-1)` or epoch -1, never a panic.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> ControlRecord {
        let i16_at =
            |b: &[u8], at: usize| b.get(at..at + 2).map(|s| i16::from_be_bytes([s[0], s[1]]));
        let Some(kind) = key.and_then(|k| i16_at(k, 2)) else {
            return ControlRecord::Other(-1);
        };
        let coordinator_epoch = value
            .and_then(|v| v.get(2..6))
            .map_or(-1, |s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        match kind {
            0 => ControlRecord::Abort { coordinator_epoch },
            1 => ControlRecord::Commit { coordinator_epoch },
            other => ControlRecord::Other(other),
        }
    }
}

/// The smallest encoding of one record: length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// Why a byte range is not an acceptable v2 record batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RecordError {
    /// The buffer ends before the batch (or its header) does.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// Magic byte other than 2 (v0/v1 message sets are not supported).
    #[error("unsupported record batch magic {0}")]
    BadMagic(i8),
    /// `batch_length` smaller than an empty v2 batch.
    #[error("invalid batch length {0}")]
    BadLength(i32),
    /// The buffer holds more bytes than the batch declares.
    #[error("batch declares {declared} bytes but buffer holds {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    /// The stored CRC32C does not match the batch contents.
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Compression codec bits 5, 6 or 7.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// Negative record count, or one that disagrees with `last_offset_delta`.
    #[error("bad record count {records_count} with last offset delta {last_offset_delta}")]
    BadRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// A record inside the batch could not be decoded (or encoded).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A compressed batch inflates past the bound its reader was given.
    #[error("the batch's records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
}

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec named by the low three attribute bits.
    pub fn from_attributes(attributes: i16) -> Result<Compression, RecordError> {
        match attributes & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnknownCompression(other as u8)),
        }
    }

    fn to_kafka(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as K;
        match self {
            Compression::None => K::None,
            Compression::Gzip => K::Gzip,
            Compression::Snappy => K::Snappy,
            Compression::Lz4 => K::Lz4,
            Compression::Zstd => K::Zstd,
        }
    }
}

/// The fixed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn get_array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], RecordError> {
    buf.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(RecordError::Truncated {
            needed: at + N,
            available: buf.len(),
        })
}

fn get_i64(buf: &[u8], at: usize) -> Result<i64, RecordError> {
    get_array(buf, at).map(i64::from_be_bytes)
}

fn get_i32(buf: &[u8], at: usize) -> Result<i32, RecordError> {
    get_array(buf, at).map(i32::from_be_bytes)
}

fn get_i16(buf: &[u8], at: usize) -> Result<i16, RecordError> {
    get_array(buf, at).map(i16::from_be_bytes)
}

/// Reads the batch length field and returns the batch's total size in bytes
/// (including [`LOG_OVERHEAD`]). Needs only the first 12 bytes.
pub fn batch_total_bytes(buf: &[u8]) -> Result<usize, RecordError> {
    let batch_length = get_i32(buf, BATCH_LENGTH_AT)?;
    if batch_length < BATCH_LENGTH_MIN {
        return Err(RecordError::BadLength(batch_length));
    }
    Ok(batch_length as usize + LOG_OVERHEAD)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (at least 61 bytes). Checks the
    /// magic byte and that `batch_length` can hold a header. Does not look at
    /// the records, the CRC or the codec; [`validate_batch`] does.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::BadMagic(magic));
        }
        let batch_length = get_i32(buf, BATCH_LENGTH_AT)?;
        if batch_length < BATCH_LENGTH_MIN {
            return Err(RecordError::BadLength(batch_length));
        }
        let attributes = get_i16(buf, ATTRIBUTES_AT)?;
        Ok(BatchHeader {
            base_offset: get_i64(buf, BASE_OFFSET_AT)?,
            batch_length,
            partition_leader_epoch: get_i32(buf, PARTITION_LEADER_EPOCH_AT)?,
            magic,
            crc: get_array(buf, CRC_AT).map(u32::from_be_bytes)?,
            attributes,
            last_offset_delta: get_i32(buf, LAST_OFFSET_DELTA_AT)?,
            base_timestamp: get_i64(buf, BASE_TIMESTAMP_AT)?,
            max_timestamp: get_i64(buf, MAX_TIMESTAMP_AT)?,
            producer_id: get_i64(buf, PRODUCER_ID_AT)?,
            producer_epoch: get_i16(buf, PRODUCER_EPOCH_AT)?,
            base_sequence: get_i32(buf, BASE_SEQUENCE_AT)?,
            records_count: get_i32(buf, RECORDS_COUNT_AT)?,
        })
    }

    /// Size of the whole batch in bytes, including [`LOG_OVERHEAD`].
    pub fn total_bytes(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset the next batch starts at.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The batch's codec. Headers from [`validate_batch`] always carry a
    /// known one; for codec bits 5-7 (which `validate_batch` rejects) this
    /// reports `None`. Use [`Compression::from_attributes`] to tell them apart.
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes).unwrap_or(Compression::None)
    }

    /// Timestamp type bit: the broker stamped `max_timestamp` on append.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// The delete horizon (KIP-534) when the batch carries one.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Sequence number of the last record; sequences wrap from `i32::MAX` to 0
    /// as in Kafka. `NO_SEQUENCE` stays `NO_SEQUENCE`.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Adds `increment` to a producer sequence, wrapping past `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment.max(0) {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence.wrapping_add(increment)
    }
}

/// Validates one complete batch at batch level: `buf` is exactly one batch,
/// magic 2, CRC32C over bytes 21.. matches, then a known codec and a record
/// count of at least one that equals `last_offset_delta + 1`. Records are not
/// decoded; [`check_records`] walks them.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, RecordError> {
    validate(buf, CountRule::Exact)
}

/// Validates a batch as stored in a log. Like [`validate_batch`], except
/// that the record count may be smaller than the offset range: compaction
/// removes records from a batch but keeps its base and last offsets (so the
/// producer's sequence range survives), as Kafka does. Produce requests must
/// use [`validate_batch`]; this is for batches read back from disk.
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, RecordError> {
    validate(buf, CountRule::AtMostOffsetRange)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CountRule {
    /// `records_count == last_offset_delta + 1 >= 1`: what a producer
    /// sends. An empty batch, or one whose header claims offsets it has no
    /// records for, would move the log end by a number nobody wrote.
    Exact,
    /// `records_count <= last_offset_delta + 1`.
    AtMostOffsetRange,
}

fn validate(buf: &[u8], rule: CountRule) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(buf)?;
    let declared = header.total_bytes();
    if buf.len() < declared {
        return Err(RecordError::Truncated {
            needed: declared,
            available: buf.len(),
        });
    }
    if buf.len() > declared {
        return Err(RecordError::LengthMismatch {
            declared,
            actual: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[CRC_COVERED_FROM..]);
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    // Checked after the CRC so that corruption is reported as such.
    Compression::from_attributes(header.attributes)?;
    let count = i64::from(header.records_count);
    let range = i64::from(header.last_offset_delta) + 1;
    let count_ok = count >= 0
        && match rule {
            CountRule::Exact => count >= 1 && range == count,
            CountRule::AtMostOffsetRange => count == 0 || (range >= count && range >= 1),
        };
    if !count_ok {
        return Err(RecordError::BadRecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Splits a record set (concatenated batches) into one `Bytes` per batch,
/// sharing the underlying buffer. Only the length fields are checked; call
/// [`validate_batch`] on each item. Yields an error for a partial or
/// malformed trailing batch and then stops.
pub fn batches(records: &Bytes) -> impl Iterator<Item = Result<Bytes, RecordError>> {
    let records = records.clone();
    let mut position = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || position >= records.len() {
            return None;
        }
        let rest = &records[position..];
        let item = batch_total_bytes(rest).and_then(|total| {
            if rest.len() < total {
                Err(RecordError::Truncated {
                    needed: total,
                    available: rest.len(),
                })
            } else {
                Ok(total)
            }
        });
        match item {
            Ok(total) => {
                let batch = records.slice(position..position + total);
                position += total;
                Some(Ok(batch))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn assert_header(batch: &[u8]) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "batch of {} bytes is shorter than a v2 header; callers must validate first",
        batch.len()
    );
}

/// Writes the base offset. The CRC does not cover it, so no recomputation.
///
/// # Panics
/// If `batch` is shorter than a batch header (callers pass validated batches).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert_header(batch);
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch. The CRC does not cover it.
///
/// # Panics
/// If `batch` is shorter than a batch header (callers pass validated batches).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert_header(batch);
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Turns a batch into LogAppendTime: sets the timestamp-type bit, stores
/// `now_ms` as `max_timestamp` and recomputes the CRC (both fields are
/// covered by it).
///
/// # Panics
/// If `batch` is shorter than a batch header (callers pass validated batches).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert_header(batch);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
        .copy_from_slice(&(attributes | TIMESTAMP_TYPE_BIT).to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Decodes (and decompresses) every record of one batch. The batch is
/// validated first with [`validate_stored_batch`] (so compacted batches
/// decode; produce validates with [`validate_batch`] before this). Record
/// offsets must increase and stay within the batch's offset range. For
/// LogAppendTime batches every record reports the batch's `max_timestamp`,
/// as Kafka does.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, RecordError> {
    decode_records_bounded(batch, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT)
}

/// [`decode_records`] with an explicit bound on the plain bytes a compressed
/// batch may inflate to.
pub fn decode_records_bounded(
    batch: &[u8],
    decompressed_bytes_max: usize,
) -> Result<Vec<Record>, RecordError> {
    let header = validate_stored_batch(batch)?;
    let count = header.records_count as usize;
    let payload_bytes = batch.len() - BATCH_HEADER_BYTES;
    // Bound the record count by the bytes available before the decoder
    // reserves memory for it; a hostile count could otherwise ask for
    // gigabytes.
    if header.compression() == Compression::None && count > payload_bytes / RECORD_BYTES_MIN {
        return Err(invalid_count(&header));
    }
    let compression = header.compression();
    let mut input = Bytes::copy_from_slice(batch);
    // The decoder adds record deltas to the base offset and timestamp with
    // plain arithmetic, which panics on overflow in debug builds. A batch with
    // a valid CRC can still carry such values, so contain that here rather
    // than let a client's bytes take the broker down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RecordBatchDecoder::decode_with_custom_compression(
            &mut input,
            Some(|buf: &mut Bytes, _| {
                let plain = Bytes::from(decompress_bounded(
                    compression,
                    buf,
                    decompressed_bytes_max,
                )?);
                if count > plain.len() / RECORD_BYTES_MIN {
                    return Err(invalid_count(&header).into());
                }
                Ok(plain)
            }),
        )
    }))
    .map_err(|_| RecordError::InvalidRecord("record fields overflow".to_string()))?
    .map_err(|e| match e.downcast::<RecordError>() {
        Ok(e) => e,
        Err(e) => RecordError::InvalidRecord(format!("{e:#}")),
    })?;
    let mut records = decoded.records;
    if records.len() != count {
        return Err(invalid_count(&header));
    }
    // Saturating: a batch from disk or another broker may carry any base
    // offset, i64::MIN included (found by the record_batch fuzz smoke test).
    let mut previous = header.base_offset.saturating_sub(1);
    for (i, record) in records.iter().enumerate() {
        let increasing =
            record.offset > previous || (i == 0 && record.offset == header.base_offset);
        if !increasing || record.offset > header.last_offset() {
            return Err(RecordError::InvalidRecord(format!(
                "record offset {} outside batch range {}..={} or not increasing",
                record.offset,
                header.base_offset,
                header.last_offset()
            )));
        }
        previous = record.offset;
    }
    if header.is_log_append_time() {
        for record in &mut records {
            record.timestamp = header.max_timestamp;
        }
    }
    Ok(records)
}

fn invalid_count(header: &BatchHeader) -> RecordError {
    RecordError::BadRecordCount {
        records_count: header.records_count,
        last_offset_delta: header.last_offset_delta,
    }
}

/// Builds one v2 batch with base offset 0 and offset deltas `0..n`, for
/// tests, the metadata log and clients. Wraps `kafka-protocol`'s encoder.
///
/// ```
/// use bytes::Bytes;
/// use vltava_record::{BatchBuilder, Compression, validate_batch};
/// let batch = BatchBuilder::new(Compression::None)
///     .record(None, Some(Bytes::from_static(b"v")), vec![], 1_000)
///     .build();
/// assert_eq!(validate_batch(&batch).unwrap().records_count, 1);
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    partition_leader_epoch: i32,
    records: Vec<PendingRecord>,
}

#[derive(Debug, Clone)]
struct PendingRecord {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    timestamp: i64,
}

impl BatchBuilder {
    /// A builder for a non-idempotent, non-transactional batch.
    pub fn new(compression: Compression) -> BatchBuilder {
        BatchBuilder {
            compression,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            records: Vec::new(),
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Appends a record; its offset delta is its position in the builder.
    pub fn record(
        mut self,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<(String, Option<Bytes>)>,
        timestamp: i64,
    ) -> Self {
        self.records.push(PendingRecord {
            key,
            value,
            headers,
            timestamp,
        });
        self
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch. With no records this is a valid empty batch
    /// (records count 0, timestamps -1).
    ///
    /// # Panics
    /// If the encoder fails, which only happens for batches over `i32::MAX`
    /// bytes or a codec failing to write to memory.
    pub fn build(&self) -> BytesMut {
        if self.records.is_empty() {
            return self.build_empty();
        }
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| self.to_record(i, r))
            .collect();
        let options = RecordEncodeOptions {
            version: MAGIC_V2,
            compression: self.compression.to_kafka(),
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &options)
            .unwrap_or_else(|e| panic!("encoding a record batch failed: {e:#}"));
        buf
    }

    fn to_record(&self, index: usize, r: &PendingRecord) -> Record {
        let delta = index as i32;
        let sequence = if self.base_sequence == NO_SEQUENCE {
            NO_SEQUENCE.wrapping_add(delta)
        } else {
            increment_sequence(self.base_sequence, delta)
        };
        let headers: IndexMap<StrBytes, Option<Bytes>> = r
            .headers
            .iter()
            .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
            .collect();
        Record {
            transactional: self.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: self.partition_leader_epoch,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(delta),
            sequence,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers,
        }
    }

    fn build_empty(&self) -> BytesMut {
        let mut attributes = match self.compression {
            Compression::None => 0i16,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES);
        buf.extend_from_slice(&0i64.to_be_bytes());
        buf.extend_from_slice(&BATCH_LENGTH_MIN.to_be_bytes());
        buf.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        buf.extend_from_slice(&[MAGIC_V2 as u8]);
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&attributes.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&(-1i64).to_be_bytes());
        buf.extend_from_slice(&(-1i64).to_be_bytes());
        buf.extend_from_slice(&self.producer_id.to_be_bytes());
        buf.extend_from_slice(&self.producer_epoch.to_be_bytes());
        buf.extend_from_slice(&self.base_sequence.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_COVERED_FROM..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }
}

mod check;
mod decompress;
mod rebuild;

pub use check::{
    check_records, RecordFault, RecordRules, RecordsRefused, SchemaIdRule, RECORD_FAULTS_MAX,
    SCHEMA_ID_PREFIX_BYTES,
};
pub use decompress::{
    decompress_bounded, decompressing_reader, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT,
};
pub use rebuild::{empty_batch_like, rebuild_batch};

#[cfg(test)]
mod tests;
