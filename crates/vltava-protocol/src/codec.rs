//! Frames, request headers and response encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions::supported_range;

/// Every frame starts with a big-endian `i32` byte count of what follows.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why a frame could not become a request. Every variant ends the connection
/// except [`DecodeError::UnsupportedVersion`] of ApiVersions, which KIP-511
/// answers with a v0 error response so old clients can downgrade.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {bytes} bytes exceeds socket.request.max.bytes={max_bytes}")]
    FrameTooLarge { bytes: i32, max_bytes: usize },
    #[error("frame length prefix {0} is negative")]
    NegativeLength(i32),
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API {0:?} is not enabled on this broker")]
    UnsupportedApi(ApiKey),
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        preamble: RequestPreamble,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Checks a frame's length prefix before any buffer is sized from it.
pub fn frame_length(
    prefix: [u8; FRAME_PREFIX_BYTES],
    request_bytes_max: usize,
) -> Result<usize, DecodeError> {
    let bytes = i32::from_be_bytes(prefix);
    if bytes < 0 {
        return Err(DecodeError::NegativeLength(bytes));
    }
    if bytes as usize > request_bytes_max {
        return Err(DecodeError::FrameTooLarge {
            bytes,
            max_bytes: request_bytes_max,
        });
    }
    Ok(bytes as usize)
}

/// The fixed first eight bytes of every request header: enough to answer a
/// request whose version we cannot parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPreamble {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestPreamble {
    pub fn parse(frame: &[u8]) -> Result<RequestPreamble, DecodeError> {
        if frame.len() < 8 {
            return Err(DecodeError::TooShort(frame.len()));
        }
        let mut buf = &frame[..8];
        Ok(RequestPreamble {
            api_key: buf.get_i16(),
            api_version: buf.get_i16(),
            correlation_id: buf.get_i32(),
        })
    }
}

/// A decoded request: the header and the typed body.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Decodes one frame (without its length prefix) into a request, refusing
/// APIs and versions outside [`crate::SUPPORTED_APIS`].
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    let preamble = RequestPreamble::parse(&frame)?;
    let api_key = ApiKey::try_from(preamble.api_key)
        .map_err(|()| DecodeError::UnknownApiKey(preamble.api_key))?;
    let (min, max) = supported_range(api_key).ok_or(DecodeError::UnsupportedApi(api_key))?;
    let version = preamble.api_version;
    if version < min || version > max {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            version,
            preamble,
        });
    }
    let malformed = |e: anyhow::Error| DecodeError::Malformed {
        api_key,
        version,
        reason: e.to_string(),
    };
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// Encodes a response with its header, length prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // patched below once the length is known
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api_key.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let frame_bytes = i32::try_from(buf.len() - FRAME_PREFIX_BYTES)?;
    buf[..FRAME_PREFIX_BYTES].copy_from_slice(&frame_bytes.to_be_bytes());
    Ok(buf.freeze())
}

/// Bytes that stand in for a records field while a response is encoded,
/// to be replaced by `len` bytes the writer supplies (e.g. with `sendfile`
/// straight from a segment file). The marker must be unique in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsPlaceholder {
    pub marker: [u8; RECORDS_MARKER_BYTES],
    pub len: usize,
}

pub const RECORDS_MARKER_BYTES: usize = 16;

/// Encodes a response whose records fields hold the placeholders' markers,
/// in order, and cuts it around them: the frame on the wire is
/// `pieces[0] + content(0) + pieces[1] + … + content(n-1) + pieces[n]`,
/// where `content(i)` is `placeholders[i].len` bytes. Length prefixes (the
/// frame's and each records field's) are rewritten for the real lengths.
pub fn encode_response_spliced(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    placeholders: &[RecordsPlaceholder],
) -> anyhow::Result<Vec<Bytes>> {
    let encoded = encode_response(api_key, version, correlation_id, body)?;
    if placeholders.is_empty() {
        return Ok(vec![encoded]);
    }
    // Flexible versions (those with a v1 response header) encode records
    // as COMPACT_RECORDS: an unsigned varint of length + 1.
    let flexible = api_key.response_header_version(version) >= 1;
    let mut pieces = Vec::with_capacity(placeholders.len() + 1);
    let mut cursor = 0;
    let mut frame_bytes = encoded.len() - FRAME_PREFIX_BYTES;
    let mut piece = BytesMut::new();
    for placeholder in placeholders {
        let found = find(&encoded[cursor..], &placeholder.marker)
            .ok_or_else(|| anyhow::anyhow!("records placeholder not found in the response"))?;
        let marker_at = cursor + found;
        let (prefix_bytes, expected): (usize, &[u8]) = if flexible {
            (1, &[RECORDS_MARKER_BYTES as u8 + 1])
        } else {
            (4, &(RECORDS_MARKER_BYTES as i32).to_be_bytes())
        };
        let prefix_at = marker_at
            .checked_sub(prefix_bytes)
            .filter(|&at| {
                at >= cursor.max(FRAME_PREFIX_BYTES) && &encoded[at..marker_at] == expected
            })
            .ok_or_else(|| anyhow::anyhow!("records placeholder is not a records field"))?;
        piece.extend_from_slice(&encoded[cursor..prefix_at]);
        let before = piece.len();
        if flexible {
            put_unsigned_varint(&mut piece, placeholder.len as u64 + 1);
        } else {
            piece.put_i32(i32::try_from(placeholder.len)?);
        }
        frame_bytes = frame_bytes - prefix_bytes - RECORDS_MARKER_BYTES
            + (piece.len() - before)
            + placeholder.len;
        pieces.push(std::mem::take(&mut piece).freeze());
        cursor = marker_at + RECORDS_MARKER_BYTES;
    }
    piece.extend_from_slice(&encoded[cursor..]);
    pieces.push(piece.freeze());
    let mut first = BytesMut::from(&pieces[0][..]);
    first[..FRAME_PREFIX_BYTES].copy_from_slice(&i32::try_from(frame_bytes)?.to_be_bytes());
    pieces[0] = first.freeze();
    Ok(pieces)
}

fn put_unsigned_varint(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::StrBytes;

    fn frame_of(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")))
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn round_trips_a_flexible_request() {
        let body = RequestKind::Metadata(MetadataRequest::default());
        let request = decode_request(frame_of(ApiKey::Metadata, 12, &body)).unwrap();
        assert_eq!(request.api_key, ApiKey::Metadata);
        assert_eq!(request.header.correlation_id, 7);
        assert_eq!(request.body, body);
    }

    #[test]
    fn refuses_lengths_before_allocating() {
        assert!(matches!(
            frame_length(i32::MAX.to_be_bytes(), 100 << 20),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            frame_length((-5i32).to_be_bytes(), 100),
            Err(DecodeError::NegativeLength(-5))
        ));
        assert_eq!(frame_length(10i32.to_be_bytes(), 100).unwrap(), 10);
    }

    #[test]
    fn unsupported_version_keeps_the_preamble() {
        let body = RequestKind::Metadata(MetadataRequest::default());
        let mut frame = frame_of(ApiKey::Metadata, 12, &body).to_vec();
        frame[2..4].copy_from_slice(&99i16.to_be_bytes());
        match decode_request(Bytes::from(frame)) {
            Err(DecodeError::UnsupportedVersion { preamble, .. }) => {
                assert_eq!(preamble.correlation_id, 7);
                assert_eq!(preamble.api_version, 99);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn huge_array_length_is_an_error_not_an_abort() {
        // Metadata v0: topics array claiming i32::MAX entries with no bytes behind it.
        let mut buf = BytesMut::new();
        buf.put_i16(ApiKey::Metadata as i16);
        buf.put_i16(0);
        buf.put_i32(1);
        buf.put_i16(-1);
        buf.put_i32(i32::MAX);
        assert!(matches!(
            decode_request(buf.freeze()),
            Err(DecodeError::Malformed { .. })
        ));
    }

    /// A spliced response with the content put back is byte for byte the
    /// response encoded with that content inline, for flexible and older
    /// Fetch versions and content sizes whose varint needs several bytes.
    #[test]
    fn spliced_fetch_responses_equal_inline_ones() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let contents = [vec![7u8; 3], vec![9u8; 300], vec![1u8; 70_000]];
        let response = |records: Vec<Bytes>| {
            let partitions = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_records(Some(r))
                })
                .collect();
            ResponseKind::Fetch(FetchResponse::default().with_responses(
                vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)],
            ))
        };
        for version in [4, 11, 12, 16] {
            let placeholders: Vec<RecordsPlaceholder> = contents
                .iter()
                .enumerate()
                .map(|(i, c)| RecordsPlaceholder {
                    marker: [i as u8 + 0xA0; RECORDS_MARKER_BYTES],
                    len: c.len(),
                })
                .collect();
            let with_markers = response(
                placeholders
                    .iter()
                    .map(|p| Bytes::copy_from_slice(&p.marker))
                    .collect(),
            );
            let pieces =
                encode_response_spliced(ApiKey::Fetch, version, 9, &with_markers, &placeholders)
                    .unwrap();
            assert_eq!(pieces.len(), contents.len() + 1);
            let mut spliced = pieces[0].to_vec();
            for (content, piece) in contents.iter().zip(&pieces[1..]) {
                spliced.extend_from_slice(content);
                spliced.extend_from_slice(piece);
            }
            let inline = encode_response(
                ApiKey::Fetch,
                version,
                9,
                &response(contents.iter().map(|c| Bytes::copy_from_slice(c)).collect()),
            )
            .unwrap();
            let first_difference = spliced.iter().zip(inline.iter()).position(|(a, b)| a != b);
            assert_eq!(
                (spliced.len(), first_difference),
                (inline.len(), None),
                "version {version}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let mut framed = bytes.clone();
            if framed.len() >= 4 {
                // Aim at real APIs so the body decoders get exercised.
                let key = (seed % 70) as i16;
                framed[0..2].copy_from_slice(&key.to_be_bytes());
                framed[2..4].copy_from_slice(&((seed >> 8) as i16 % 13).to_be_bytes());
            }
            let _ = decode_request(Bytes::from(framed));
        }
    }
}
