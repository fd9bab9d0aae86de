//! Re-encoding a stored batch after compaction removed some of its records.
//!
//! Kafka's cleaner (`MemoryRecords.filterTo`) keeps a batch's identity when
//! it drops records from it: the base offset, the last offset delta (so the
//! producer's sequence range is unchanged), the partition leader epoch, the
//! producer id/epoch/base sequence, the attributes (codec, timestamp type,
//! transactional, control) and, for LogAppendTime, the max timestamp. Each
//! kept record keeps its offset delta, timestamp, key, value and headers.
//! These functions produce exactly that; [`kafka_protocol`]'s encoder cannot,
//! because it derives the base offset and last offset delta from the records.

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::{
    BatchHeader, Compression, Record, RecordError, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN,
    COMPRESSION_MASK, CRC_AT, CRC_COVERED_FROM, DELETE_HORIZON_BIT, LOG_OVERHEAD, MAGIC_V2,
};

// DELETE_HORIZON_BIT is cleared on rebuild because the base timestamp
// below is a plain timestamp.

/// Re-encodes `original` holding only `records` (a non-empty, increasing
/// subset of its records as [`crate::decode_records`] returned them), with
/// the batch's own codec. See the module docs for what is preserved.
pub fn rebuild_batch(original: &BatchHeader, records: &[Record]) -> Result<BytesMut, RecordError> {
    let first = records
        .first()
        .ok_or_else(|| RecordError::InvalidRecord("rebuild of an empty record list".into()))?;
    let base_timestamp = if original.is_log_append_time() {
        original.max_timestamp
    } else {
        first.timestamp
    };
    let mut plain = BytesMut::new();
    for record in records {
        let offset_delta = record.offset - original.base_offset;
        if !(0..=i64::from(original.last_offset_delta)).contains(&offset_delta) {
            return Err(RecordError::InvalidRecord(format!(
                "record offset {} outside batch {}..={}",
                record.offset,
                original.base_offset,
                original.last_offset()
            )));
        }
        encode_record(&mut plain, record, offset_delta as i32, base_timestamp);
    }
    let payload = compress(original.compression(), plain)?;
    let max_timestamp = if original.is_log_append_time() {
        original.max_timestamp
    } else {
        records.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let fields = HeaderFields {
        attributes: original.attributes & !DELETE_HORIZON_BIT,
        base_timestamp,
        max_timestamp,
        records_count: records.len() as i32,
    };
    Ok(write_batch(original, &fields, &payload))
}

/// The empty batch Kafka leaves in place of a batch whose records were all
/// removed when it must keep the producer's last sequence
/// (`DefaultRecordBatch.writeEmptyHeader`): same base offset, last offset
/// delta, leader epoch, producer id/epoch/base sequence, timestamp type,
/// transactional and control bits; no codec; both timestamps set to the
/// original max timestamp; zero records.
pub fn empty_batch_like(original: &BatchHeader) -> BytesMut {
    let fields = HeaderFields {
        attributes: original.attributes & !(COMPRESSION_MASK | DELETE_HORIZON_BIT),
        base_timestamp: original.max_timestamp,
        max_timestamp: original.max_timestamp,
        records_count: 0,
    };
    write_batch(original, &fields, &[])
}

struct HeaderFields {
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    records_count: i32,
}

fn write_batch(original: &BatchHeader, fields: &HeaderFields, payload: &[u8]) -> BytesMut {
    let batch_length = BATCH_LENGTH_MIN as usize + payload.len();
    let mut buf = BytesMut::with_capacity(LOG_OVERHEAD + batch_length);
    buf.put_i64(original.base_offset);
    buf.put_i32(batch_length as i32);
    buf.put_i32(original.partition_leader_epoch);
    buf.put_i8(MAGIC_V2);
    buf.put_u32(0);
    buf.put_i16(fields.attributes);
    buf.put_i32(original.last_offset_delta);
    buf.put_i64(fields.base_timestamp);
    buf.put_i64(fields.max_timestamp);
    buf.put_i64(original.producer_id);
    buf.put_i16(original.producer_epoch);
    buf.put_i32(original.base_sequence);
    buf.put_i32(fields.records_count);
    debug_assert_eq!(buf.len(), BATCH_HEADER_BYTES);
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[CRC_COVERED_FROM..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    buf
}

fn compress(codec: Compression, plain: BytesMut) -> Result<BytesMut, RecordError> {
    let mut out = BytesMut::new();
    let fill = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(&plain);
        Ok(())
    };
    let done = match codec {
        Compression::None => return Ok(plain),
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    done.map_err(|e| RecordError::InvalidRecord(format!("recompression failed: {e:#}")))?;
    Ok(out)
}

/// One v2 record: length, attributes, timestamp delta, offset delta, key,
/// value, headers, with zigzag varints as Kafka encodes them.
fn encode_record(out: &mut BytesMut, record: &Record, offset_delta: i32, base_timestamp: i64) {
    let mut body = BytesMut::new();
    body.put_i8(0);
    put_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
    put_varlong(&mut body, i64::from(offset_delta));
    put_nullable(&mut body, record.key.as_deref());
    put_nullable(&mut body, record.value.as_deref());
    put_varlong(&mut body, record.headers.len() as i64);
    for (key, value) in &record.headers {
        put_nullable(&mut body, Some(key.as_bytes()));
        put_nullable(&mut body, value.as_deref());
    }
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn put_nullable(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Zigzag varint; for values that fit an i32 this is also the varint
/// encoding Kafka uses for 32-bit fields.
fn put_varlong(out: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}
