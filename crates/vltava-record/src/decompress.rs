//! Bounded, streaming decompression of a batch's records section.
//!
//! A compressed batch is a few bytes on the wire that may claim gigabytes
//! once inflated. Every decompression in Vltava goes through
//! [`decompressing_reader`], which yields the plain records bytes as a
//! `BufRead` and fails with [`RecordError::DecompressedTooLarge`] as soon as
//! more than `decompressed_bytes_max` bytes come out. Nothing here sizes a
//! buffer from a length the input claims without checking it against that
//! bound first, so the memory one batch can cost is the codec's own state
//! (at most a 128 MiB zstd window) plus one block.

use std::io::{self, BufRead, BufReader, Read};

use crate::{Compression, RecordError};

/// Decompressed bytes `decode_records` accepts from one batch when the
/// caller names no limit of its own: batches are at most
/// `message.max.bytes` (1 MiB by default) compressed, and a 64× ratio is
/// beyond what real producers reach with any codec on real data.
pub const DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Buffer between a decompressor and the record parser.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// The xerial framing header Kafka's Java client writes before snappy blocks.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// The plain bytes of a records section compressed with `compression`, as a
/// reader that never yields more than `decompressed_bytes_max` bytes: the
/// read that would pass the bound fails instead (see
/// [`is_over_limit`]).
pub fn decompressing_reader<'a>(
    compression: Compression,
    compressed: &'a [u8],
    decompressed_bytes_max: usize,
) -> Result<Box<dyn BufRead + 'a>, RecordError> {
    let inner: Box<dyn Read + 'a> = match compression {
        Compression::None => return Ok(Box::new(compressed)),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(compressed)),
        Compression::Snappy => Box::new(SnappyReader::new(compressed, decompressed_bytes_max)?),
        Compression::Lz4 => Box::new(
            lz4::Decoder::new(compressed)
                .map_err(|e| RecordError::InvalidRecord(format!("lz4: {e}")))?,
        ),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|e| RecordError::InvalidRecord(format!("zstd: {e}")))?;
            // A frame may ask for a window up to 2^31 bytes.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_CEILING)
                .map_err(|e| RecordError::InvalidRecord(format!("zstd: {e}")))?;
            Box::new(decoder)
        }
    };
    Ok(Box::new(BufReader::with_capacity(
        READ_BUFFER_BYTES,
        Bounded {
            inner,
            left: decompressed_bytes_max,
            limit: decompressed_bytes_max,
        },
    )))
}

/// Decompresses a whole records section into memory, within the bound.
pub fn decompress_bounded(
    compression: Compression,
    compressed: &[u8],
    decompressed_bytes_max: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut reader = decompressing_reader(compression, compressed, decompressed_bytes_max)?;
    let mut plain = Vec::with_capacity(compressed.len().min(decompressed_bytes_max));
    reader
        .read_to_end(&mut plain)
        .map_err(|e| io_to_record_error(e, decompressed_bytes_max))?;
    Ok(plain)
}

/// Turns an error from a [`decompressing_reader`] into a [`RecordError`].
pub fn io_to_record_error(error: io::Error, decompressed_bytes_max: usize) -> RecordError {
    if is_over_limit(&error) {
        RecordError::DecompressedTooLarge {
            limit: decompressed_bytes_max,
        }
    } else {
        RecordError::InvalidRecord(format!("cannot decompress records: {error}"))
    }
}

/// True for the error a [`decompressing_reader`] returns at its bound.
pub fn is_over_limit(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<OverLimit>().is_some())
}

/// zstd's own default ceiling on a frame's window (128 MiB), which the Java
/// broker's zstd binding also keeps. Producers compress in streaming mode
/// without declaring the content size, so their frames ask for the window of
/// their compression level (2^21 at the default level, up to 2^27) however
/// small the batch: the window cannot be tied to the decompression bound.
const ZSTD_WINDOW_LOG_CEILING: u32 = 27;

#[derive(Debug)]
struct OverLimit(usize);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed records exceed {} bytes", self.0)
    }
}

impl std::error::Error for OverLimit {}

/// Counts the bytes a decompressor produces and fails past the limit.
struct Bounded<R> {
    inner: R,
    left: usize,
    limit: usize,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Ask for one byte more than is allowed, so that reaching the bound
        // exactly is fine and passing it is seen.
        let want = buf.len().min(self.left.saturating_add(1));
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            return Err(io::Error::other(OverLimit(self.limit)));
        }
        self.left -= n;
        Ok(n)
    }
}

/// Snappy as Kafka clients write it: xerial framing (a 16-byte header, then
/// blocks each prefixed by a big-endian u32 compressed length), or, without
/// that header, one raw snappy block. Each block is inflated only after its
/// declared plain length has been checked against what the bound still
/// allows.
struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    at: usize,
    left: usize,
    limit: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(compressed: &'a [u8], limit: usize) -> Result<SnappyReader<'a>, RecordError> {
        let framed = compressed.starts_with(XERIAL_MAGIC);
        let rest = if framed {
            &compressed[XERIAL_MAGIC.len()..]
        } else {
            compressed
        };
        Ok(SnappyReader {
            rest,
            framed,
            block: Vec::new(),
            at: 0,
            left: limit,
            limit,
        })
    }

    /// Inflates the next block into `self.block`; false at the end.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let block = if self.framed {
            let Some((len, tail)) = self.rest.split_first_chunk::<4>() else {
                return Err(invalid("snappy block length cut short"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(invalid("snappy block cut short"));
            }
            let (block, tail) = tail.split_at(len);
            self.rest = tail;
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let plain = snap::raw::decompress_len(block).map_err(|e| invalid(&e.to_string()))?;
        if plain > self.left {
            return Err(io::Error::other(OverLimit(self.limit)));
        }
        self.left -= plain;
        self.block.resize(plain, 0);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(|e| invalid(&e.to_string()))?;
        self.block.truncate(n);
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(plain: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(plain).unwrap();
        encoder.finish().unwrap()
    }

    fn xerial_snappy(plain: &[u8]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        for chunk in plain.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    fn lz4(plain: &[u8]) -> Vec<u8> {
        let mut encoder = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        encoder.write_all(plain).unwrap();
        let (out, result) = encoder.finish();
        result.unwrap();
        out
    }

    fn compressed(compression: Compression, plain: &[u8]) -> Vec<u8> {
        match compression {
            Compression::None => plain.to_vec(),
            Compression::Gzip => gzip(plain),
            Compression::Snappy => xerial_snappy(plain),
            Compression::Lz4 => lz4(plain),
            Compression::Zstd => zstd::encode_all(plain, 19).unwrap(),
        }
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_up_to_the_bound_exactly() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in ALL {
            let packed = compressed(codec, &plain);
            let out = decompress_bounded(codec, &packed, plain.len()).unwrap();
            assert_eq!(out, plain, "{codec:?}");
        }
    }

    #[test]
    fn every_compressed_codec_stops_one_byte_past_the_bound() {
        let plain = vec![0u8; 1 << 20];
        for codec in ALL.into_iter().filter(|c| *c != Compression::None) {
            let packed = compressed(codec, &plain);
            let err = decompress_bounded(codec, &packed, plain.len() - 1).unwrap_err();
            assert_eq!(
                err,
                RecordError::DecompressedTooLarge {
                    limit: plain.len() - 1
                },
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_snappy_block_claiming_gigabytes_is_refused_before_allocating() {
        // A raw snappy block whose varint length header says 4 GiB - 1.
        let mut bomb = XERIAL_MAGIC.to_vec();
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        bomb.extend_from_slice(&(block.len() as u32).to_be_bytes());
        bomb.extend_from_slice(&block);
        let err = decompress_bounded(Compression::Snappy, &bomb, 1 << 20).unwrap_err();
        assert_eq!(err, RecordError::DecompressedTooLarge { limit: 1 << 20 });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL.into_iter().filter(|c| *c != Compression::None) {
            let result = decompress_bounded(codec, b"\x82SNAPPY\x00garbage-bytes", 1 << 20);
            assert!(
                matches!(result, Err(RecordError::InvalidRecord(_))),
                "{codec:?}: {result:?}"
            );
        }
    }
}
