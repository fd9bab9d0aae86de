//! The Kafka wire protocol as Vltava speaks it, with no I/O.
//!
//! This crate owns the frame format (an `i32` length prefix), request-header
//! parsing, the single table of supported API versions (ApiVersions is derived
//! from it, so the broker never advertises what it does not implement), and
//! response encoding. Message bodies are the `kafka-protocol` crate's generated
//! types; record sets inside them stay `Bytes` and are never decoded here.
//!
//! Invariant: nothing in this crate touches sockets, files or clocks.

mod codec;
mod versions;

pub use codec::{
    decode_request, encode_response, encode_response_spliced, frame_length, DecodeError,
    RecordsPlaceholder, Request, RequestPreamble, FRAME_PREFIX_BYTES, RECORDS_MARKER_BYTES,
};
pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
pub use versions::{api_versions_entries, supported_range, SUPPORTED_APIS};

/// The numeric Kafka error code of `error`, or 0 for success.
pub fn error_code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
